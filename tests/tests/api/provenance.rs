//! Publisher signatures on commits, the keys and anchors namespaces trust, and the hub's
//! attestations, including round trips with the real `model_signing` tool.

use std::path::{Path, PathBuf};

use kaiyuan_provenance::bundle;
use kaiyuan_provenance::keys::PrivateKey;
use kaiyuan_provenance::manifest::{self, Resource};
use kaiyuan_tests::{Backend, TestApp, expect_error, expect_status, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;
use sqlx::PgPool;

fn key(seed: u8) -> PrivateKey {
    PrivateKey::p256_from_bytes(&[seed; 32]).unwrap()
}

const FILES: &[(&str, &[u8])] = &[
    ("README.md", b"# tiny\n"),
    ("config.json", b"{\"layers\": 2}\n"),
    ("tokenizer/vocab.txt", b"a b c\n"),
    ("tokenizer.json", b"{}\n"),
    (".gitattributes", b"*.bin filter=lfs\n"),
];

/// A bundle over `files` (git metadata aside), as `kaiyuan sign` writes it into the folder.
fn sign(files: &[(&str, &[u8])], key: &PrivateKey) -> Vec<u8> {
    let git: Vec<String> = manifest::GIT_PATHS.iter().map(|s| s.to_string()).collect();
    let mut resources: Vec<Resource> = files
        .iter()
        .filter(|(p, _)| !manifest::is_ignored(p, &git))
        .map(|(p, b)| Resource {
            name: p.to_string(),
            digest: sha2::Sha256::digest(b).into(),
        })
        .collect();
    manifest::sort(&mut resources);
    bundle::sign(
        &bundle::statement("tiny", &resources, &["model.sig".to_string()], None),
        key,
        None,
    )
}

async fn add_key(app: &TestApp, token: &str, ns: &str, body: Value) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/orgs/{ns}/signing-keys"),
        Some(token),
        &body,
    )
    .await
}

async fn signature(app: &TestApp, token: &str, repo: &str, revision: &str) -> Value {
    expect_status(
        app.get(
            &format!("/api/v1/repos/{repo}/signature?revision={revision}"),
            Some(token),
        )
        .await,
        StatusCode::OK,
    )
    .await
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn commits_signed_with_registered_keys_verify_and_tampering_is_named(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    expect_status(
        app.post_json("/api/v1/orgs", Some(&alice), &json!({"name": "acme"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let release = key(1);
    let pem = release.public_key().to_pem();

    // Keys: admins register them; bad or repeated ones are refused; outsiders see nothing.
    let added = expect_status(
        add_key(
            &app,
            &alice,
            "acme",
            json!({"name": "acme release key", "public_key": pem}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(added["fingerprint"], release.public_key().fingerprint());
    expect_error(
        add_key(
            &app,
            &alice,
            "acme",
            json!({"name": "again", "public_key": pem}),
        )
        .await,
        StatusCode::CONFLICT,
        "key-exists",
    )
    .await;
    expect_error(add_key(&app, &alice, "acme", json!({"name": "x", "public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"})).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-key").await;
    expect_error(
        add_key(
            &app,
            &bob,
            "acme",
            json!({"name": "mine", "public_key": key(2).public_key().to_pem()}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "namespace-not-found",
    )
    .await;

    // A signed commit verifies, naming the signer; git metadata is reported as unprotected.
    app.create_repo(&alice, "acme", "tiny", "public").await;
    let bundle = sign(FILES, &release);
    let mut files = FILES.to_vec();
    files.push(("model.sig", &bundle));
    let first = app.commit_files(&alice, "acme/tiny", &files).await;
    let first_id = first["id"].as_str().unwrap().to_string();
    let v = signature(&app, &bob, "acme/tiny", "main").await;
    assert_eq!(v["status"], "verified", "{v}");
    assert_eq!(v["signer"]["identity"], "acme release key");
    assert_eq!(v["signer"]["kind"], "key");
    assert_eq!(v["unprotected"], json!([".gitattributes"]));

    // Changing a file under the same signature: invalid, the file named.
    app.commit_files(
        &alice,
        "acme/tiny",
        &[("config.json", b"{\"layers\": 3}\n")],
    )
    .await;
    let v = signature(&app, &bob, "acme/tiny", "main").await;
    assert_eq!(v["status"], "invalid");
    assert_eq!(v["modified"], json!(["config.json"]));
    assert!(v["reason"].as_str().unwrap().contains("config.json"));
    // The earlier revision still verifies on its own.
    assert_eq!(
        signature(&app, &bob, "acme/tiny", &first_id).await["status"],
        "verified"
    );

    // The commit jobs store each result.
    app.run_jobs().await;
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT commit_id, status FROM signature_verifications ORDER BY verified_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        stored.contains(&(first_id.clone(), "verified".to_string())),
        "{stored:?}"
    );
    assert!(stored.iter().any(|(_, s)| s == "invalid"));

    // A signature by a key nobody registered, and a repository without one.
    app.create_repo(&alice, "acme", "stranger", "public").await;
    let foreign = sign(FILES, &key(9));
    app.commit_files(
        &alice,
        "acme/stranger",
        &[
            FILES[0],
            FILES[1],
            FILES[2],
            FILES[3],
            ("model.sig", &foreign),
        ],
    )
    .await;
    let v = signature(&app, &alice, "acme/stranger", "main").await;
    assert_eq!(v["status"], "invalid");
    assert!(
        v["reason"].as_str().unwrap().starts_with("unknown key"),
        "{v}"
    );
    app.create_repo(&alice, "acme", "plain", "public").await;
    app.commit_files(&alice, "acme/plain", &FILES[..2]).await;
    assert_eq!(
        signature(&app, &alice, "acme/plain", "main").await["status"],
        "unsigned"
    );

    // Revoking the key: its signatures no longer verify.
    let id = added["id"].as_i64().unwrap();
    expect_error(
        app.request(
            Method::DELETE,
            &format!("/api/v1/orgs/acme/signing-keys/{id}"),
            Some(&bob),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::NOT_FOUND,
        "namespace-not-found",
    )
    .await;
    let res = app
        .request(
            Method::DELETE,
            &format!("/api/v1/orgs/acme/signing-keys/{id}"),
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        signature(&app, &alice, "acme/tiny", &first_id).await["status"],
        "invalid"
    );
    let keys = expect_status(
        app.get("/api/v1/orgs/acme/signing-keys", Some(&alice))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(keys["keys"][0]["revoked_at"].is_string());
}

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/provenance")
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn certificate_signed_commits_verify_against_namespace_anchors(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let ca = std::fs::read_to_string(corpus().join("keys/ca.cert.pem")).unwrap();
    expect_status(
        add_key(
            &app,
            &alice,
            "alice",
            json!({"name": "acme CA", "certificate": ca}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    app.create_repo(&alice, "alice", "model", "public").await;
    push_certificate_signed_fixture(&app, &alice, "model.sig").await;
    let v = signature(&app, &alice, "alice/model", "main").await;
    assert_eq!(v["status"], "verified", "{v}");
    assert_eq!(v["signer"]["kind"], "certificate");
    assert!(
        v["signer"]["identity"].as_str().unwrap().contains("CN="),
        "{v}"
    );
}

/// Anchors the hub trusts for everyone, from the configuration, on S3 storage this time; and a
/// configured signature file name.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn hub_wide_anchors_and_the_signature_file_name_come_from_the_configuration(pool: PgPool) {
    let app = spawn_app_with(pool, Backend::S3, |s| {
        s.provenance.trust_anchors = vec![corpus().join("keys/ca.cert.pem")];
        s.provenance.signature_file = "signatures/model.sig".into();
    })
    .await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "model", "public").await;
    push_certificate_signed_fixture(&app, &alice, "signatures/model.sig").await;
    let v = signature(&app, &alice, "alice/model", "main").await;
    assert_eq!(v["status"], "verified", "{v}");
    assert_eq!(v["signature_file"], "signatures/model.sig");
}

/// Commits the shared fixture model to alice/model with its certificate-signed bundle at `sig`.
async fn push_certificate_signed_fixture(app: &TestApp, token: &str, sig: &str) {
    let dir = corpus().join("model");
    let mut owned: Vec<(String, Vec<u8>)> = Vec::new();
    collect(&dir, &dir, &mut owned);
    owned.push((
        sig.into(),
        std::fs::read(corpus().join("model.cert.sig.json")).unwrap(),
    ));
    let files: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    app.commit_files(token, "alice/model", &files).await;
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            collect(root, &e.path(), out);
        } else {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, std::fs::read(e.path()).unwrap()));
        }
    }
}

fn tool(args: &[&str]) -> std::process::Output {
    let python = std::env::var("KAIYUAN_TEST_PYTHON")
        .expect("KAIYUAN_TEST_PYTHON is not set: run the suite through scripts/test.sh");
    std::process::Command::new(Path::new(&python).parent().unwrap().join("model_signing"))
        .args(args)
        .output()
        .unwrap()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_real_tool_signs_pushes_and_verifies_the_hubs_attestation(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let work = tempfile::tempdir().unwrap();
    // The publisher signs a folder with model_signing and a fresh key.
    let model = work.path().join("tiny");
    for (path, bytes) in FILES {
        let target = model.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
    let publisher = key(7);
    std::fs::write(work.path().join("key.pem"), publisher.to_pkcs8_pem()).unwrap();
    let sig = model.join("model.sig");
    let out = tool(&[
        "sign",
        "key",
        model.to_str().unwrap(),
        "--private_key",
        work.path().join("key.pem").to_str().unwrap(),
        "--signature",
        sig.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_status(
        add_key(
            &app,
            &alice,
            "alice",
            json!({"name": "alice", "public_key": publisher.public_key().to_pem()}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;

    // Pushed, it verifies.
    app.create_repo(&alice, "alice", "tiny", "public").await;
    let bundle_bytes = std::fs::read(&sig).unwrap();
    let mut files = FILES.to_vec();
    files.push(("model.sig", &bundle_bytes));
    app.commit_files(&alice, "alice/tiny", &files).await;
    let v = signature(&app, &alice, "alice/tiny", "main").await;
    assert_eq!(v["status"], "verified", "{v}");

    // Downloaded with the hub's attestation, the files verify with model_signing and the
    // hub's published key.
    let download = work.path().join("download");
    for (path, _) in &files {
        let res = app
            .get(&format!("/alice/tiny/resolve/main/{path}"), None)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let target = download.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, res.bytes().await.unwrap()).unwrap();
    }
    let attestation = app.get("/api/v1/repos/alice/tiny/attestation", None).await;
    assert_eq!(attestation.status(), StatusCode::OK);
    let attestation = attestation.bytes().await.unwrap();
    let statement: Value = serde_json::from_slice(
        &bundle::decode_b64(
            serde_json::from_slice::<Value>(&attestation).unwrap()["dsseEnvelope"]["payload"]
                .as_str()
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        statement["predicate"]["kaiyuan"]["publisher_signature"]["status"],
        "verified"
    );
    let att_path = work.path().join("hub.sig");
    std::fs::write(&att_path, &attestation).unwrap();
    let hub_key = app
        .get("/.well-known/kaiyuan/attestation-key.pem", None)
        .await
        .text()
        .await
        .unwrap();
    let key_path = work.path().join("hub.pem");
    std::fs::write(&key_path, hub_key).unwrap();
    let verify = || {
        tool(&[
            "verify",
            "key",
            download.to_str().unwrap(),
            "--signature",
            att_path.to_str().unwrap(),
            "--public_key",
            key_path.to_str().unwrap(),
        ])
    };
    let out = verify();
    assert!(
        out.status.success(),
        "model_signing rejected the hub's attestation: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(download.join("config.json"), b"{\"layers\": 99}\n").unwrap();
    assert!(!verify().status.success(), "a changed download must fail");
    let keys = expect_status(
        app.get("/.well-known/kaiyuan/attestation-keys", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert!(
        keys["keys"][0].get("private_pem").is_none(),
        "the private key never leaves the hub"
    );

    // Rotation: new attestations use the new key; the old key stays published, retired, and
    // the old attestation still verifies with it.
    std::fs::write(download.join("config.json"), b"{\"layers\": 2}\n").unwrap();
    expect_error(
        app.post_json(
            "/api/v1/admin/attestation-keys/rotate",
            Some(&alice),
            &json!({}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "admin-required",
    )
    .await;
    let rotated = expect_status(
        app.post_json(
            "/api/v1/admin/attestation-keys/rotate",
            Some(&app.admin_token),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let keys = expect_status(
        app.get("/.well-known/kaiyuan/attestation-keys", None).await,
        StatusCode::OK,
    )
    .await;
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys[0]["retired_at"].is_string() && keys[1]["retired_at"].is_null());
    assert_eq!(keys[1]["fingerprint"], rotated["fingerprint"]);
    assert!(
        verify().status.success(),
        "the old attestation verifies with the retired key"
    );
    let new_key = app
        .get("/.well-known/kaiyuan/attestation-key.pem", None)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(new_key, keys[1]["public_pem"].as_str().unwrap());
    std::fs::write(
        &att_path,
        app.get("/api/v1/repos/alice/tiny/attestation", None)
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    std::fs::write(&key_path, new_key).unwrap();
    assert!(
        verify().status.success(),
        "a fresh attestation verifies with the new key"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn provenance_records_say_who_pushed_what_from_where(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "ft", "public").await;
    let card = "---\nlicense: apache-2.0\nbase_model: mistralai/Mistral-7B-v0.1\ndatasets: [acme/chats]\nsource_repository: https://git.example/acme/training\nsource_commit: 0123abcd\n---\n";
    let res = app
        .request(
            Method::POST,
            "/api/v1/repos/alice/ft/commits/main",
            Some(&alice),
        )
        .header("user-agent", "huggingface_hub/2.4.0; python/3.11")
        .json(&json!({"message": "fine-tune v1", "operations": [
            {"op": "put", "path": "README.md", "content_base64": base64(card.as_bytes())},
            {"op": "put", "path": "w.bin", "content_base64": base64(b"weights")},
        ]}))
        .send()
        .await
        .unwrap();
    let commit = expect_status(res, StatusCode::CREATED).await;
    let record = expect_status(
        app.get("/api/v1/repos/alice/ft/provenance", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(record["commit"], commit["id"]);
    assert_eq!(record["pushed_by"]["user"], "alice");
    assert!(record["pushed_by"]["token_id"].is_i64());
    assert_eq!(
        record["pushed_by"]["client"],
        "huggingface_hub/2.4.0; python/3.11"
    );
    assert_eq!(
        record["source"],
        json!({"repository": "https://git.example/acme/training", "commit": "0123abcd"})
    );
    assert_eq!(record["base_models"][0]["id"], "mistralai/Mistral-7B-v0.1");
    assert_eq!(record["base_models"][0]["license"], "Apache-2.0");
    assert_eq!(record["datasets"][0]["id"], "acme/chats");
    assert_eq!(record["signature"]["status"], "unsigned");
    let slsa = &record["slsa"];
    assert_eq!(
        slsa["subject"][0]["digest"]["sha256"]
            .as_str()
            .map(|d| format!("sha256:{d}")),
        record["manifest_digest"].as_str().map(String::from)
    );

    // The statement passes the in-toto attestation framework's own definitions; a broken
    // one does not.
    let (ok, out) = kaiyuan_tests::run_validator("validate_slsa.py", slsa);
    assert!(ok, "{out}\n{slsa:#}");
    let mut broken = slsa.clone();
    broken["predicate"]["buildDefinition"]["buildTyp"] = json!("x");
    assert!(!kaiyuan_tests::run_validator("validate_slsa.py", &broken).0);
    let mut broken = slsa.clone();
    broken["predicate"]["runDetails"]["builder"] = json!({});
    assert!(!kaiyuan_tests::run_validator("validate_slsa.py", &broken).0);
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
