//! The hub under a hostile or failing world: request bodies that never end or trickle, a chunked
//! body that lies, `kill -9` of the hub during concurrent uploads and commits, `kill -9` of a
//! mirror in the middle of a fetch, `kill -9` of its embedded PostgreSQL, and its database pool
//! hammered from several runtimes at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kaiyuan_tests::{
    TestApp, expect_error, expect_status, kaiyuan_binary, pseudo_random_bytes, sha256_hex,
    slow_relay, spawn_app_with,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn strict_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, kaiyuan_tests::Backend::Local, |s| {
        s.limits.body_idle_secs = 1;
        s.limits.body_min_rate = 1000;
    })
    .await
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn bodies_that_stall_or_trickle_are_answered_408_and_released(pool: PgPool) {
    let app = strict_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let address = app.base.trim_start_matches("http://").to_string();

    // Content-Length 100, ten bytes sent, then silence.
    let head = format!(
        "POST /api/v1/repos/alice/m/uploads HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {alice}\r\nContent-Length: 100\r\n\r\n"
    );
    let (answer, after) = tokio::task::spawn_blocking({
        let base = app.base.clone();
        move || RawApp { base }.exchange(&head, &[7u8; 10], Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");
    assert!(after < Duration::from_secs(5), "answered after {after:?}");

    // One byte every 300 ms never pauses for a second, but averages far below the minimum rate.
    let address2 = address.clone();
    let token = alice.clone();
    let trickle = tokio::task::spawn_blocking(move || {
        let mut socket = TcpStream::connect(&address2).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let body = br#"{"namespace": "alice", "name": "x", "visibility": "public"}"#;
        write!(
            socket,
            "POST /api/v1/repos HTTP/1.1\r\nHost: {address2}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        let started = Instant::now();
        socket.set_nonblocking(false).unwrap();
        for byte in body {
            if socket.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            let mut peek = [0u8; 1];
            socket.set_nonblocking(true).unwrap();
            let answered = matches!(socket.peek(&mut peek), Ok(n) if n > 0);
            socket.set_nonblocking(false).unwrap();
            if answered {
                break;
            }
        }
        let mut answer = String::new();
        let _ = socket.read_to_string(&mut answer);
        (answer, started.elapsed())
    })
    .await
    .unwrap();
    assert!(trickle.0.starts_with("HTTP/1.1 408"), "{}", trickle.0);
    assert!(trickle.1 < Duration::from_secs(10), "{:?}", trickle.1);

    // A multipart commit whose closing boundary never comes.
    let (answer, _) = tokio::task::spawn_blocking({
        let base = app.base.clone();
        let alice = alice.clone();
        move || {
            let boundary = "XBOUNDARYX";
            let commit = json!({"message": "m", "operations": []}).to_string();
            let mut body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"commit\"\r\nContent-Type: application/json\r\n\r\n{commit}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .into_bytes();
            body.extend(vec![1u8; 3 * 1024 * 1024]);
            let address = base.trim_start_matches("http://");
            let head = format!(
                "POST /api/v1/repos/alice/m/commits/main HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {alice}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let chunk = [format!("{:x}\r\n", body.len()).into_bytes(), body, b"\r\n".to_vec()].concat();
            RawApp { base }.exchange(&head, &chunk, Duration::from_secs(15))
        }
    })
    .await
    .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "{}",
        &answer[..answer.len().min(300)]
    );
    let history = expect_status(
        app.get("/api/v1/repos/alice/m/commits", None).await,
        StatusCode::OK,
    )
    .await;
    assert!(!history.to_string().contains("big.bin"), "{history}");

    // The hub still serves.
    expect_status(app.get("/api/v1/repos/alice/m", None).await, StatusCode::OK).await;
}

/// A hub to open raw connections to (a `TestApp` cannot cross into a blocking thread).
struct RawApp {
    base: String,
}

impl RawApp {
    /// Sends `head` and `body` on a raw connection, then reads until the server closes it or
    /// `within` passes; returns what came back and when its first byte arrived.
    fn exchange(&self, head: &str, body: &[u8], within: Duration) -> (String, Duration) {
        let address = self.base.trim_start_matches("http://");
        let mut socket = TcpStream::connect(address).unwrap();
        socket.set_read_timeout(Some(within)).unwrap();
        let started = Instant::now();
        socket.write_all(head.as_bytes()).unwrap();
        let _ = socket.write_all(body);
        let mut answer = Vec::new();
        let mut first = None;
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    first.get_or_insert_with(|| started.elapsed());
                    answer.extend_from_slice(&buf[..n]);
                }
                Err(_) => break,
            }
        }
        (
            String::from_utf8_lossy(&answer).into_owned(),
            first.unwrap_or(within),
        )
    }
}

/// A request refused before its body was read: actix-http would drain a chunked body forever to
/// keep the connection; the hub closes it with the answer instead.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn an_answer_before_the_body_ends_closes_the_connection(pool: PgPool) {
    let app = strict_app(pool).await;
    let address = app.base.trim_start_matches("http://").to_string();
    for framing in ["Transfer-Encoding: chunked", "Content-Length: 100000"] {
        let head = format!(
            "POST /api/v1/repos/alice/m/uploads HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer ky_not_a_token\r\n{framing}\r\n\r\n"
        );
        let base = app.base.clone();
        let started = Instant::now();
        let (answer, _) = tokio::task::spawn_blocking(move || {
            RawApp { base }.exchange(&head, b"a\r\n0123456789\r\n", Duration::from_secs(20))
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{framing}: the connection was held for {:?}",
            started.elapsed()
        );
    }
}

/// actix-http ends a connection whose chunk-size line is malformed without writing the 400 it
/// queues (the handler is already reading the body); what the hub guarantees is that the
/// connection is released at once and nothing of the body is kept.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_chunked_body_with_a_bad_size_line_is_dropped_at_once(pool: PgPool) {
    let app = strict_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let address = app.base.trim_start_matches("http://").to_string();
    let head = format!(
        "POST /api/v1/repos/alice/m/uploads HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {alice}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let base = app.base.clone();
    let started = Instant::now();
    let (answer, _) = tokio::task::spawn_blocking(move || {
        RawApp { base }.exchange(&head, b"zz-not-hex\r\nabc\r\n", Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the connection was held for {:?}",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer:?}"
    );
    expect_status(app.get("/api/v1/repos/alice/m", None).await, StatusCode::OK).await;
}

/// The `kaiyuan serve` child of a test; killed (SIGKILL) when dropped.
struct Hub {
    child: Child,
    base: String,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_hub(envs: &[(&str, String)], log: &Path) -> Hub {
    let port = envs
        .iter()
        .find(|(k, _)| *k == "KAIYUAN_LISTEN")
        .map(|(_, v)| v.rsplit(':').next().unwrap().to_string())
        .unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(kaiyuan_binary());
    cmd.arg("serve")
        .env_remove("DATABASE_URL")
        .env("KAIYUAN_WORKERS", "0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Hub {
        child: cmd.spawn().expect("kaiyuan serve starts"),
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_ready(http: &reqwest::Client, hub: &Hub, within: Duration, log: &Path) {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Ok(res) = http.get(format!("{}/readyz", hub.base)).send().await
            && res.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "the hub was not ready within {within:?}; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// The URL of the test's own database, for a `kaiyuan serve` child to use.
async fn database_url(pool: &PgPool) -> url::Url {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    url.set_path(&database);
    url
}

/// Files in `dir` and below.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[derive(Debug, Clone)]
struct Acknowledged {
    commit: String,
    path: String,
    sha256: String,
}

/// One client: uploads a file, commits it, records what the hub acknowledged; until an error.
async fn client_loop(
    http: reqwest::Client,
    base: String,
    token: String,
    round: usize,
    client: usize,
) -> Vec<Acknowledged> {
    let mut acknowledged = Vec::new();
    for n in 0.. {
        let size = 64 * 1024 + ((round * 31 + client * 7 + n * 13) % 24) * 128 * 1024;
        let bytes = pseudo_random_bytes(size, (round * 1000 + client * 100 + n) as u64);
        let sha = sha256_hex(&bytes);
        let up = http
            .post(format!("{base}/api/v1/repos/alice/crash/uploads"))
            .bearer_auth(&token)
            .header("x-expected-sha256", &sha)
            .body(bytes)
            .send()
            .await;
        if !matches!(&up, Ok(r) if r.status() == StatusCode::CREATED) {
            break;
        }
        let path = format!("r{round}/c{client}/f{n}.bin");
        let commit = http
            .post(format!("{base}/api/v1/repos/alice/crash/commits/main"))
            .bearer_auth(&token)
            .json(&json!({"message": format!("{path}"), "operations": [{"op": "put", "path": path, "sha256": sha}]}))
            .send()
            .await;
        let Ok(commit) = commit else { break };
        if commit.status() != StatusCode::CREATED {
            break;
        }
        let Ok(body) = commit.json::<Value>().await else {
            break;
        };
        acknowledged.push(Acknowledged {
            commit: body["id"].as_str().unwrap().to_string(),
            path,
            sha256: sha,
        });
    }
    acknowledged
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn kill_9_during_uploads_loses_nothing_acknowledged(pool: PgPool) {
    const ROUNDS: usize = 3;
    const CLIENTS: usize = 8;
    let url = database_url(&pool).await;
    let nobody = kaiyuan_hub::domain::actor::Actor::default();
    let alice = kaiyuan_hub::domain::accounts::create_user(&pool, &nobody, "alice", false)
        .await
        .unwrap()
        .token;
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("hub.log");
    let port = free_port();
    let envs = [
        ("DATABASE_URL", url.to_string()),
        ("KAIYUAN_DATA_DIR", data.path().display().to_string()),
        ("KAIYUAN_LISTEN", format!("127.0.0.1:{port}")),
    ];
    kaiyuan_storage::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut acknowledged: Vec<Acknowledged> = Vec::new();
    for round in 0..ROUNDS {
        let hub = start_hub(&envs, &log);
        wait_ready(&http, &hub, Duration::from_secs(60), &log).await;
        if round == 0 {
            expect_status(
                http.post(format!("{}/api/v1/repos", hub.base))
                    .bearer_auth(&alice)
                    .json(&json!({"namespace": "alice", "name": "crash", "visibility": "private"}))
                    .send()
                    .await
                    .unwrap(),
                StatusCode::CREATED,
            )
            .await;
        }
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(client_loop(
                    http.clone(),
                    hub.base.clone(),
                    alice.clone(),
                    round,
                    c,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1500 + 400 * round as u64)).await;
        drop(hub); // SIGKILL, mid-flight
        for c in clients {
            acknowledged.extend(c.await.unwrap());
        }
    }
    let hub = start_hub(&envs, &log);
    wait_ready(&http, &hub, Duration::from_secs(60), &log).await;
    assert!(
        acknowledged.len() >= ROUNDS,
        "the clients got {} commits acknowledged",
        acknowledged.len()
    );

    // Every acknowledged file is there, byte for byte, at the commit that acknowledged it.
    for a in &acknowledged {
        let res = http
            .get(format!(
                "{}/alice/crash/resolve/{}/{}",
                hub.base, a.commit, a.path
            ))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{a:?}");
        let bytes = res.bytes().await.unwrap();
        assert_eq!(sha256_hex(&bytes), a.sha256, "{a:?}");
    }
    // Nothing partial is visible: every file of the head downloads and matches its digest.
    let tree = expect_status(
        http.get(format!("{}/api/v1/repos/alice/crash/tree/main", hub.base))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let files = tree["files"]
        .as_array()
        .or(tree.as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        files.len() >= acknowledged.len(),
        "{} files for {} acknowledged",
        files.len(),
        acknowledged.len()
    );
    for f in &files {
        let path = f["path"].as_str().unwrap();
        let res = http
            .get(format!("{}/alice/crash/resolve/main/{path}", hub.base))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let bytes = res.bytes().await.unwrap();
        assert_eq!(
            Some(sha256_hex(&bytes).as_str()),
            f["sha256"].as_str(),
            "{path}"
        );
    }
    // What the killed processes left in staging was removed when the hub started again.
    let staging = files_under(&data.path().join("objects/staging"));
    assert!(staging.is_empty(), "staging leftovers: {staging:?}");
    println!(
        "{ROUNDS} kill -9 rounds, {} acknowledged commits checked, {} head files verified",
        acknowledged.len(),
        files.len()
    );
}

/// `kill -9` of a mirror in the middle of a fetch from its upstream: after the restart nothing
/// of that fetch is visible or kept, and the next read fetches the model again, whole.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn kill_9_of_a_mirror_mid_fetch_leaves_nothing_and_the_next_read_fetches_again(pool: PgPool) {
    let upstream = super::mirror::upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "m", "public").await;
    let weights = pseudo_random_bytes(16 << 20, 71);
    let card = b"---\nlicense: mit\n---\n# m\n".as_slice();
    upstream
        .commit_files(
            &alice,
            "alice/m",
            &[("README.md", card), ("model.safetensors", &weights)],
        )
        .await;
    // 8 MiB/s: the fetch of the weights lasts about 2 s.
    let relay = slow_relay(&upstream.base, 8 << 20).await.base;
    let url = database_url(&pool).await;
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("mirror.log");
    let envs = [
        ("DATABASE_URL", url.to_string()),
        ("KAIYUAN_DATA_DIR", data.path().display().to_string()),
        ("KAIYUAN_LISTEN", format!("127.0.0.1:{}", free_port())),
        ("KAIYUAN_UPSTREAM", relay),
    ];
    kaiyuan_storage::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let staging = data.path().join("objects/staging");
    let staged = || -> u64 {
        files_under(&staging)
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum()
    };

    let mirror = start_hub(&envs, &log);
    wait_ready(&http, &mirror, Duration::from_secs(60), &log).await;
    let url = format!("{}/alice/m/resolve/main/model.safetensors", mirror.base);
    let asking = tokio::spawn(http.get(&url).send());
    let started = Instant::now();
    while staged() < 4 << 20 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the fetch never staged 4 MiB; the mirror's log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mid_fetch = staged();
    drop(mirror); // SIGKILL, mid-fetch
    assert!(asking.await.unwrap().is_err(), "the client got an answer");
    let (repos, commits, blobs): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM repositories WHERE name = 'm'),
                (SELECT count(*) FROM mirrored_commits),
                (SELECT count(*) FROM blobs WHERE encode(sha256, 'hex') = $1)",
    )
    .bind(sha256_hex(&weights))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((repos, commits, blobs), (0, 0, 0), "visible after the kill");

    let mirror = start_hub(&envs, &log);
    wait_ready(&http, &mirror, Duration::from_secs(60), &log).await;
    let left = files_under(&staging);
    assert!(
        left.is_empty(),
        "staging leftovers of the killed fetch: {left:?}"
    );
    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let bytes = res.bytes().await.unwrap();
    assert_eq!(sha256_hex(&bytes), sha256_hex(&weights));
    let commits: i64 = sqlx::query_scalar("SELECT count(*) FROM mirrored_commits")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(commits, 1);
    println!("killed with {mid_fetch} bytes staged; fetched whole after the restart");
}

/// Kills the embedded cluster's postmaster (whatever happens to the test).
struct Postmaster(PathBuf);

impl Postmaster {
    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.0.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
    }

    fn kill(&self) -> Option<String> {
        let pid = self.pid()?;
        Command::new("kill").args(["-9", &pid]).status().ok()?;
        Some(pid)
    }
}

impl Drop for Postmaster {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn the_embedded_postgres_is_restarted_after_kill_9() {
    let data = tempfile::tempdir().unwrap();
    // The cluster may belong to the `postgres` user, who must reach the directory.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let log =
        std::env::temp_dir().join(format!("kaiyuan-pg-supervision-{}.log", std::process::id()));
    let envs = [
        ("KAIYUAN_DATA_DIR", data.path().display().to_string()),
        ("KAIYUAN_LISTEN", format!("127.0.0.1:{}", free_port())),
        ("KAIYUAN_EMBEDDED_PG_PORT", free_port().to_string()),
    ];
    let postmaster = Postmaster(data.path().join("postgres"));
    let hub = start_hub(&envs, &log);
    kaiyuan_storage::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_ready(&http, &hub, Duration::from_secs(120), &log).await;
    let before = postmaster.kill().expect("the cluster runs");

    // While it is down, readiness answers at once, and says why.
    let mut saw_down = false;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let asked = Instant::now();
        let res = http
            .get(format!("{}/readyz", hub.base))
            .send()
            .await
            .unwrap();
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "/readyz took {:?}",
            asked.elapsed()
        );
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            saw_down = true;
            let body: Value = res.json().await.unwrap();
            assert!(
                body["database"]
                    .as_str()
                    .unwrap()
                    .starts_with("unavailable"),
                "{body}"
            );
            let api = http
                .get(format!("{}/api/v1/repos", hub.base))
                .send()
                .await
                .unwrap();
            if api.status() != StatusCode::OK {
                expect_error(api, StatusCode::SERVICE_UNAVAILABLE, "service-unavailable").await;
            }
        } else if saw_down && res.status() == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(saw_down, "readiness never reported the outage");
    let res = http
        .get(format!("{}/readyz", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "not restarted within 60 s; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let after = postmaster.pid().expect("a new postmaster");
    assert_ne!(before, after, "a new server process runs");
    expect_status(
        http.get(format!("{}/api/v1/repos", hub.base))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    drop(hub);
    let _ = std::fs::remove_file(&log);
}

/// The hub's pool is shared by every actix worker, each on a runtime of its own. sqlx 0.9.0 made a
/// returned connection acquirable before it counted it idle, so a worker that took it at once
/// counted one idle connection fewer than none: the count wrapped to `usize::MAX`, and the
/// pool's idle sweep (every ten minutes) then looped that many times, a core at 100% for good
/// (sqlx#3645; seen here as a test that spun for 24 minutes). Workers hammer one pool, and each
/// checks the count right after it takes a connection.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_shared_pool_never_counts_more_idle_connections_than_it_holds(pool: PgPool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const MAX: u32 = 3;
    let url = database_url(&pool).await;
    let shared = kaiyuan_hub::db::connect(url.as_str(), MAX).await.unwrap();
    let worst = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(4);
    const WORKERS: usize = 4;
    // A connection answers through the runtime that opened it: every runtime keeps running
    // until all are done, and this one is not blocked while they run.
    let all_done = Arc::new(tokio::sync::Barrier::new(WORKERS));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (shared, worst, all_done) = (shared.clone(), worst.clone(), all_done.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                // A failure is returned, not raised: the others wait for this worker.
                let work = async {
                    while Instant::now() < until {
                        let connection = match shared.acquire().await {
                            Ok(connection) => connection,
                            Err(e) => return Some(e.to_string()),
                        };
                        worst.fetch_max(shared.num_idle(), Ordering::Relaxed);
                        drop(connection);
                        tokio::task::yield_now().await;
                    }
                    None
                };
                runtime.block_on(async {
                    let failed = work.await;
                    all_done.wait().await;
                    failed
                })
            })
        })
        .collect();
    let failed: Vec<String> = tokio::task::spawn_blocking(move || {
        workers
            .into_iter()
            .filter_map(|worker| worker.join().unwrap())
            .collect()
    })
    .await
    .unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    let worst = worst.load(Ordering::Relaxed);
    assert!(
        worst <= MAX as usize,
        "the pool counted {worst} idle connections of {MAX}"
    );
}
