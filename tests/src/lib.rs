//! Test support: spawn the real hub on a random port against a fresh PostgreSQL database (from
//! `#[sqlx::test]`) and a real object store (a temporary directory, or the S3-compatible server
//! that scripts/test.sh starts), plus request helpers.

use std::time::Duration;

use kaiyuan_hub::app::{AppState, Application};
use kaiyuan_hub::config::Settings;
use kaiyuan_hub::jobs::{self, JobContext};
use kaiyuan_storage::BlobStore;
use object_store_env::s3_store;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

/// The object-store backends every storage-related test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

pub mod browser;
pub mod link;

pub mod object_store_env {
    //! The S3-compatible server started by scripts/test.sh. Tests fail (never skip) without it.
    use kaiyuan_storage::BlobStore;
    use rand::Rng;

    pub fn s3_store() -> BlobStore {
        kaiyuan_storage::install_crypto_provider();
        let endpoint = std::env::var("KAIYUAN_TEST_S3_ENDPOINT").expect(
            "KAIYUAN_TEST_S3_ENDPOINT is not set: run the suite through scripts/test.sh, which starts the S3 server",
        );
        let bucket =
            std::env::var("KAIYUAN_TEST_S3_BUCKET").unwrap_or_else(|_| "kaiyuan-test".into());
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region(std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()))
            .with_access_key_id(std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default())
            .with_secret_access_key(std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default())
            .build()
            .expect("S3 client");
        // A prefix per store keeps concurrent tests apart in the shared bucket.
        let prefix = format!("t{:016x}", rand::rng().random::<u64>());
        BlobStore::s3(s3, prefix)
    }
}

/// A store of the given backend; the temporary directory lives as long as the returned guard.
pub fn test_store(backend: Backend) -> (BlobStore, Option<tempfile::TempDir>) {
    match backend {
        Backend::Local => {
            let dir = tempfile::tempdir().expect("temp dir");
            (
                BlobStore::local(dir.path()).expect("local store"),
                Some(dir),
            )
        }
        Backend::S3 => (s3_store(), None),
    }
}

pub struct TestApp {
    pub base: String,
    pub db: PgPool,
    pub store: BlobStore,
    pub http: reqwest::Client,
    /// Token of `hubadmin`, a hub administrator created for every test.
    pub admin_token: String,
    pub state: actix_web::web::Data<AppState>,
    handle: actix_web::dev::ServerHandle,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, Backend::Local, |_| {}).await
}

/// Starts the hub with in-process workers and GC disabled (tests drive them explicitly).
pub async fn spawn_app_with(
    pool: PgPool,
    backend: Backend,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    if std::env::var("KAIYUAN_TEST_LOG").is_ok() {
        kaiyuan_hub::telemetry::init();
    }
    let (store, dir) = test_store(backend);
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        ..Settings::default()
    };
    // Model verification runs each model in a child `kaiyuan` process.
    settings.verification.program = Some(kaiyuan_binary());
    settings.workers.in_process = 0;
    settings.gc.interval_secs = 0;
    configure(&mut settings);
    let app = Application::build(settings, pool.clone(), store.clone()).expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let nobody = kaiyuan_hub::domain::actor::Actor::default();
    let admin = kaiyuan_hub::domain::accounts::create_user(&pool, &nobody, "hubadmin", true)
        .await
        .expect("admin user");
    kaiyuan_storage::install_crypto_provider();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client");
    TestApp {
        base,
        db: pool,
        store: state.store.clone(),
        http,
        admin_token: admin.token,
        state,
        handle,
        _dir: dir,
    }
}

impl TestApp {
    /// Stops the server (an upstream that goes away).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// The directory of the local object store, when the app uses one.
    pub fn local_store_dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Response {
        self.request(method, path, token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send_json(Method::POST, path, token, body).await
    }

    /// Creates a user and returns their write token.
    pub async fn create_user(&self, name: &str) -> String {
        let res = self
            .post_json(
                "/api/v1/users",
                Some(&self.admin_token),
                &json!({"name": name}),
            )
            .await;
        let body = expect_status(res, StatusCode::CREATED).await;
        body["token"].as_str().expect("token").to_string()
    }

    pub async fn create_repo(
        &self,
        token: &str,
        namespace: &str,
        name: &str,
        visibility: &str,
    ) -> Value {
        let res = self
            .post_json(
                "/api/v1/repos",
                Some(token),
                &json!({"namespace": namespace, "name": name, "visibility": visibility}),
            )
            .await;
        expect_status(res, StatusCode::CREATED).await
    }

    /// Uploads raw bytes to a repository and returns the response.
    pub async fn upload(
        &self,
        token: &str,
        repo: &str,
        bytes: Vec<u8>,
        sha256: Option<&str>,
    ) -> Response {
        let mut req = self
            .request(
                Method::POST,
                &format!("/api/v1/repos/{repo}/uploads"),
                Some(token),
            )
            .body(bytes);
        if let Some(sha) = sha256 {
            req = req.header("x-expected-sha256", sha);
        }
        req.send().await.expect("request sent")
    }

    /// Commits files given as (path, bytes) inline on `main`; returns the commit JSON.
    pub async fn commit_files(&self, token: &str, repo: &str, files: &[(&str, &[u8])]) -> Value {
        use base64::Engine;
        let operations: Vec<Value> = files
            .iter()
            .map(|(path, bytes)| json!({"op": "put", "path": path, "content_base64": base64::engine::general_purpose::STANDARD.encode(bytes)}))
            .collect();
        let res = self
            .post_json(
                &format!("/api/v1/repos/{repo}/commits/main"),
                Some(token),
                &json!({"message": "add files", "operations": operations}),
            )
            .await;
        expect_status(res, StatusCode::CREATED).await
    }

    /// A read-scoped token of the user holding `token`.
    pub async fn read_token(&self, token: &str) -> String {
        let body = json!({"name": "read-only", "scope": "read"});
        let res = self.post_json("/api/v1/tokens", Some(token), &body).await;
        expect_status(res, StatusCode::CREATED).await["token"]
            .as_str()
            .expect("token")
            .to_string()
    }

    /// Makes an existing user a hub-wide reviewer (as the hub admin).
    pub async fn make_reviewer(&self, name: &str) {
        let res = self
            .send_json(
                Method::PUT,
                &format!("/api/v1/admin/reviewers/{name}"),
                Some(&self.admin_token),
                &json!({"reviewer": true}),
            )
            .await;
        expect_status(res, StatusCode::OK).await;
    }

    /// Files a report as `token` on `repo` (on the file `path` when given); returns its id.
    pub async fn report(&self, token: &str, repo: &str, path: Option<&str>) -> i64 {
        let mut body = json!({"category": "other", "description": "found by a test"});
        if let Some(path) = path {
            body["path"] = json!(path);
        }
        let res = self
            .post_json(&format!("/api/v1/repos/{repo}/reports"), Some(token), &body)
            .await;
        expect_status(res, StatusCode::CREATED).await["id"]
            .as_i64()
            .expect("report id")
    }

    /// Confirms a report, drafts its advisory and publishes it, as the reviewer `token`;
    /// returns the advisory's id.
    pub async fn publish_advisory(&self, token: &str, report: i64) -> String {
        let url = format!("/api/v1/reports/{report}");
        let confirm = json!({"action": "confirm"});
        let res = self
            .post_json(&format!("{url}/triage"), Some(token), &confirm)
            .await;
        expect_status(res, StatusCode::OK).await;
        let draft = json!({"severity": "high", "summary": "s", "details": "d", "remediation": "r"});
        let res = self
            .post_json(&format!("{url}/advisory"), Some(token), &draft)
            .await;
        let id = expect_status(res, StatusCode::CREATED).await["id"]
            .as_str()
            .expect("advisory id")
            .to_string();
        let res = self
            .post_json(
                &format!("/api/v1/advisories/{id}/publish"),
                Some(token),
                &json!({}),
            )
            .await;
        expect_status(res, StatusCode::OK).await;
        id
    }

    /// Runs every queued job now, as a worker would.
    pub async fn run_jobs(&self) -> usize {
        let ctx = JobContext {
            db: self.db.clone(),
            store: self.store.clone(),
            settings: self.state.settings.clone(),
        };
        jobs::run_until_idle(&ctx, 30).await.expect("jobs run")
    }
}

/// `n` pseudo-random bytes from `seed` (a linear congruential generator: incompressible enough
/// for storage and dedupe tests, and the same on every run).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

/// The `kaiyuan` executable built beside this test binary: the hub starts it as the child
/// process that verifies each model (a test binary cannot be that child).
pub fn kaiyuan_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target folder");
    let bin = dir.join("kaiyuan");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p kaiyuan-hub --bin kaiyuan` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Runs a Python helper from tests/python with the test venv; panics with its stderr on failure.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let python = std::env::var("KAIYUAN_TEST_PYTHON")
        .expect("KAIYUAN_TEST_PYTHON is not set: run the suite through scripts/test.sh");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let out = std::process::Command::new(python)
        .arg(path)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the status (printing the body when it differs) and returns the JSON body.
pub async fn expect_status(res: Response, status: StatusCode) -> Value {
    let actual = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// Asserts a JSON error with this status and code, and returns its message.
pub async fn expect_error(res: Response, status: StatusCode, code: &str) -> String {
    assert!(
        res.headers().contains_key("x-request-id"),
        "every response carries a request id"
    );
    let body = expect_status(res, status).await;
    assert_eq!(body["error"]["code"], code, "error body: {body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("message")
        .to_string();
    assert!(!message.is_empty());
    message
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Deterministic pseudo-random bytes, so that tests can assert on exact content.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Runs a validator script from `tests/python` on a JSON document with the test venv's
/// Python; returns whether it accepted the document, and what it printed.
pub fn run_validator(script: &str, doc: &Value) -> (bool, String) {
    let python = std::env::var("KAIYUAN_TEST_PYTHON")
        .expect("KAIYUAN_TEST_PYTHON is not set: run the suite through scripts/test.sh");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("doc.json");
    std::fs::write(&path, serde_json::to_vec_pretty(doc).expect("JSON")).expect("write document");
    let out = std::process::Command::new(python)
        .arg(format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR")))
        .arg(&path)
        .output()
        .expect("run the validator");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A TCP relay to a hub, in front of it as a distant server is: each connection gets at most
/// its own rate towards the client.
pub struct SlowRelay {
    /// The relay's URL; the `Host` a client sends passes on, so the URLs the hub writes into
    /// its answers (its CAS, signed fetch URLs) lead back through the relay.
    pub base: String,
    busiest: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SlowRelay {
    /// The most connections that were sending at once (each counts for 50 ms after it last
    /// sent a piece).
    pub fn most_sending_at_once(&self) -> usize {
        self.busiest.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A [`SlowRelay`] to `upstream` (`http://host:port`) passing at most `bytes_per_sec` towards
/// each client connection.
pub async fn slow_relay(upstream: &str, bytes_per_sec: usize) -> SlowRelay {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = upstream.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let busiest = Arc::new(AtomicUsize::new(0));
    let last_sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let record = busiest.clone();
    tokio::spawn(async move {
        for connection in 0u64.. {
            let Ok((client, _)) = listener.accept().await else {
                break;
            };
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_server, mut to_server) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
            });
            let (last_sent, record) = (last_sent.clone(), record.clone());
            tokio::spawn(async move {
                let mut piece = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = from_server.read(&mut piece).await {
                    if to_client.write_all(&piece[..n]).await.is_err() {
                        break;
                    }
                    {
                        let mut last_sent = last_sent.lock().unwrap();
                        let now = Instant::now();
                        last_sent.insert(connection, now);
                        let sending = last_sent
                            .values()
                            .filter(|t| now.duration_since(**t) < Duration::from_millis(50))
                            .count();
                        record.fetch_max(sending, Ordering::Relaxed);
                    }
                    let pause = Duration::from_secs_f64(n as f64 / bytes_per_sec as f64);
                    tokio::time::sleep(pause).await;
                }
            });
        }
    });
    SlowRelay {
        base: format!("http://{address}"),
        busiest,
    }
}
