//! Xet storage: the real huggingface_hub clients (default settings: hf_xet installed, Xet used)
//! against the hub's own CAS on both object stores; the CAS's answers to an attacker (tokens,
//! scopes, private content, malformed xorbs and shards) built with the format crate.

use kaiyuan_tests::{
    Backend, TestApp, expect_error, expect_status, noise, spawn_app, spawn_app_with,
};
use kaiyuan_xet::shard::{FileInfo, Term, encode_upload_shard};
use kaiyuan_xet::xorb::{SCHEME_LZ4, encode_xorb};
use kaiyuan_xet::{MerkleHash, chunk_hash, file_hash, verification_hash};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::hf::run_client;

/// The default client's upload, downloads, dedupe of a re-upload and of a second version.
async fn default_client_round_trip(app: &TestApp, pool: &PgPool, big_mib: u64) {
    let alice = app.create_user("alice").await;
    let mib = big_mib.to_string();
    run_client(
        app,
        "KAIYUAN_TEST_PYTHON",
        "hf_xet_client.py",
        &[("KY_TOKEN", &alice), ("KY_BIG_MIB", &mib)],
    )
    .await;
    let big = (big_mib * 1024 * 1024) as i64;
    // Stored once, as xorbs: no plain object for the weights, and the two versions together
    // take little more than one.
    let stored: i64 = sqlx::query_scalar("SELECT sum(stored_size)::bigint FROM xet_xorbs")
        .fetch_one(pool)
        .await
        .unwrap();
    // The script also uploads a 12 MiB file of its own.
    let extra = 12 * 1024 * 1024;
    assert!(
        stored - extra < big + big * 15 / 100,
        "two versions of {big} bytes take {stored} bytes of xorbs (with {extra} of another file)"
    );
    let files: Vec<(Vec<u8>, i64)> =
        sqlx::query_as("SELECT sha256, size FROM xet_files WHERE size = $1")
            .bind(big)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(files.len(), 2, "both versions of the weights are Xet files");
    for (sha, size) in &files {
        let digest = kaiyuan_storage::Sha256Digest::from_bytes(sha.as_slice().try_into().unwrap());
        assert_eq!(
            app.store.blob_size(&digest).await.unwrap(),
            Some(*size as u64),
            "the store reads the Xet file through its recipe"
        );
    }
    // Scans, licence and signature jobs read the same bytes through the recipe.
    app.run_jobs().await;
    let unscanned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM blobs b JOIN xet_files f ON f.sha256 = b.sha256 WHERE b.scan_verdict IS NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(unscanned, 0, "every Xet file was scanned");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn default_huggingface_hub_uploads_and_downloads_through_xet(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    default_client_round_trip(&app, &pool, 200).await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn xet_storage_on_the_s3_server(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), Backend::S3, |_| {}).await;
    default_client_round_trip(&app, &pool, 24).await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn older_clients_negotiate_or_download_through_resolve(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    // huggingface_hub 1.19 offers `xet` in the LFS batch request and gets it.
    run_client(
        &app,
        "KAIYUAN_TEST_PYTHON_HF1",
        "hf_xet_client.py",
        &[("KY_TOKEN", &alice), ("KY_BIG_MIB", "16")],
    )
    .await;
    let negotiated: i64 = sqlx::query_scalar("SELECT count(*) FROM xet_files")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(negotiated >= 2, "1.19 uploaded through the CAS");
    // So does 0.36.2, the last 0.x release (it negotiates the same way when hf_xet is installed).
    run_client(
        &app,
        "KAIYUAN_TEST_PYTHON_HF0",
        "hf_xet_client.py",
        &[
            ("KY_TOKEN", &alice),
            ("KY_BIG_MIB", "16"),
            ("KY_REPO", "alice/xet-from-0x"),
            ("KY_SEED", "8"),
        ],
    )
    .await;
    // 0.36.2 downloads the Xet-stored file, with Xet and without it (then through resolve).
    let (sha, size): (Vec<u8>, i64) =
        sqlx::query_as("SELECT sha256, size FROM xet_files ORDER BY created_at LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    let path: String = sqlx::query_scalar(
        "SELECT f.path FROM commit_files f JOIN repositories r ON r.id = f.repository_id
         WHERE f.sha256 = $1 AND r.name = 'xet-model' LIMIT 1",
    )
    .bind(&sha)
    .fetch_one(&pool)
    .await
    .unwrap();
    let sha = hex::encode(sha);
    for disable in ["0", "1"] {
        run_client(
            &app,
            "KAIYUAN_TEST_PYTHON_HF0",
            "hf_download_one.py",
            &[
                ("KY_TOKEN", &alice),
                ("KY_REPO", "alice/xet-model-copy"),
                ("KY_PATH", &path),
                ("KY_SHA256", &sha),
                ("KY_SIZE", &size.to_string()),
                ("HF_HUB_DISABLE_XET", disable),
            ],
        )
        .await;
    }
}

/// A CAS token of `repo` from the hub's token route.
async fn cas_token(app: &TestApp, token: Option<&str>, repo: &str, kind: &str) -> String {
    let res = app
        .get(&format!("/api/models/{repo}/xet-{kind}-token/main"), token)
        .await;
    let headers = res.headers().clone();
    let body = expect_status(res, StatusCode::OK).await;
    assert_eq!(
        headers["x-xet-access-token"],
        body["accessToken"].as_str().unwrap()
    );
    assert_eq!(
        headers["x-xet-cas-url"],
        format!("{}/cas", app.base).as_str()
    );
    assert!(body["exp"].as_i64().unwrap() > chrono::Utc::now().timestamp());
    body["accessToken"].as_str().unwrap().to_string()
}

fn cas(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
    app.http
        .request(method, format!("{}/cas{path}", app.base))
        .bearer_auth(token)
}

/// `GET /v1/reconstructions/{file}` with a CAS token and an optional `Range`.
async fn reconstruction(
    app: &TestApp,
    token: &str,
    file: &MerkleHash,
    range: Option<&str>,
) -> reqwest::Response {
    let mut request = cas(
        app,
        Method::GET,
        &format!("/v1/reconstructions/{file}"),
        token,
    );
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.unwrap()
}

/// A file cut into chunks, its xorb, and the shard that registers it.
struct Upload {
    xorb: MerkleHash,
    xorb_bytes: Vec<u8>,
    shard: Vec<u8>,
    file: MerkleHash,
    sha256: String,
    size: usize,
}

fn prepare(data: &[u8]) -> Upload {
    let chunks: Vec<&[u8]> = data.chunks(40_000).collect();
    let (xorb, xorb_bytes) = encode_xorb(&chunks, SCHEME_LZ4);
    let hashes: Vec<(MerkleHash, u64)> = chunks
        .iter()
        .map(|c| (chunk_hash(c), c.len() as u64))
        .collect();
    let file = file_hash(&hashes);
    let info = FileInfo {
        file_hash: file,
        terms: vec![Term {
            xorb,
            unpacked_len: data.len() as u32,
            chunk_start: 0,
            chunk_end: chunks.len() as u32,
        }],
        verification: vec![verification_hash(
            &hashes.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        )],
        sha256: Some(Sha256::digest(data).into()),
    };
    Upload {
        xorb,
        xorb_bytes,
        shard: encode_upload_shard(&[info], &[]),
        file,
        sha256: hex::encode(Sha256::digest(data)),
        size: data.len(),
    }
}

/// Uploads the xorb and the shard with a write CAS token, then commits the file by sha256.
async fn publish(app: &TestApp, token: &str, repo: &str, path: &str, upload: &Upload) {
    let write = cas_token(app, Some(token), repo, "write").await;
    let res = cas(
        app,
        Method::POST,
        &format!("/v1/xorbs/default/{}", upload.xorb),
        &write,
    )
    .body(upload.xorb_bytes.clone())
    .send()
    .await
    .unwrap();
    expect_status(res, StatusCode::OK).await;
    let res = cas(app, Method::POST, "/v1/shards", &write)
        .body(upload.shard.clone())
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::OK).await;
    let res = app
        .post_json(
            &format!("/api/v1/repos/{repo}/commits/main"),
            Some(token),
            &json!({"message": "through Xet", "operations": [{"op": "put", "path": path, "sha256": upload.sha256, "size": upload.size}]}),
        )
        .await;
    expect_status(res, StatusCode::CREATED).await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn cas_tokens_are_scoped_and_expire(pool: PgPool) {
    let app = spawn_app_with(pool, Backend::Local, |s| s.xet.token_secs = 2).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&alice, "alice", "open", "public").await;
    app.create_repo(&alice, "alice", "secret", "private").await;
    // A read-scoped hub token never gets a write CAS token; others' repositories neither.
    let read_only = app.read_token(&alice).await;
    let res = app
        .get(
            "/api/models/alice/open/xet-write-token/main",
            Some(&read_only),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .get("/api/models/alice/open/xet-write-token/main", Some(&bob))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .get("/api/models/alice/open/xet-write-token/main", None)
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A private repository is not found for others; a missing revision is 404.
    let res = app
        .get("/api/models/alice/secret/xet-read-token/main", Some(&bob))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .get("/api/models/alice/open/xet-read-token/nope", Some(&alice))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Anonymous readers of a public repository get a read token.
    let read = cas_token(&app, None, "alice/open", "read").await;
    // A read CAS token cannot upload; no token and a forged one are 401.
    let upload = prepare(&noise(100_000, 1));
    let path = format!("/v1/xorbs/default/{}", upload.xorb);
    let res = cas(&app, Method::POST, &path, &read)
        .body(upload.xorb_bytes.clone())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::FORBIDDEN, "xet-token-read-only").await;
    let res = app
        .http
        .post(format!("{}/cas{path}", app.base))
        .body(upload.xorb_bytes.clone())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid-xet-token").await;
    let forged = read.replacen(".r.", ".w.", 1);
    let res = cas(&app, Method::POST, &path, &forged)
        .body(upload.xorb_bytes.clone())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid-xet-token").await;
    // A hub token is not a CAS token.
    let res = cas(&app, Method::POST, &path, &alice)
        .body(upload.xorb_bytes.clone())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid-xet-token").await;
    // After its expiry the token is refused.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = reconstruction(&app, &read, &upload.file, None).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "xet-token-expired").await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn private_content_stays_private_on_the_cas(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&alice, "alice", "secret", "private").await;
    app.create_repo(&bob, "bob", "open", "public").await;
    let data = noise(300_000, 2);
    let upload = prepare(&data);
    publish(&app, &alice, "alice/secret", "w.bin", &upload).await;
    // Alice reads it back through her token: the plan, then the signed fetch URL.
    let alice_read = cas_token(&app, Some(&alice), "alice/secret", "read").await;
    let res = reconstruction(&app, &alice_read, &upload.file, None).await;
    let plan = expect_status(res, StatusCode::OK).await;
    assert_eq!(plan["offset_into_first_range"], 0);
    assert_eq!(plan["terms"][0]["hash"], upload.xorb.to_string());
    assert_eq!(plan["terms"][0]["unpacked_length"], data.len());
    let fetch = &plan["fetch_info"][upload.xorb.to_string()][0];
    let (start, end) = (
        fetch["url_range"]["start"].as_u64().unwrap(),
        fetch["url_range"]["end"].as_u64().unwrap(),
    );
    let res = app
        .http
        .get(fetch["url"].as_str().unwrap())
        .header("range", format!("bytes={start}-{end}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let fetched = res.bytes().await.unwrap();
    assert_eq!(
        fetched.as_ref(),
        &upload.xorb_bytes[start as usize..=end as usize],
        "the signed URL serves exactly the xorb bytes of the range"
    );
    // A part of the signed range is served alone, as by a presigned URL; a range past it is
    // refused.
    let part = (start + 7, end - 5);
    let res = app
        .http
        .get(fetch["url"].as_str().unwrap())
        .header("range", format!("bytes={}-{}", part.0, part.1))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes {}-{}/*", part.0, part.1).as_str()
    );
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        &upload.xorb_bytes[part.0 as usize..=part.1 as usize]
    );
    let res = app
        .http
        .get(fetch["url"].as_str().unwrap())
        .header("range", format!("bytes=0-{}", end + 1))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::FORBIDDEN, "invalid-fetch-url").await;
    // A range of the plan: the offset into the first chunk, and 416 past the end.
    let res = reconstruction(&app, &alice_read, &upload.file, Some("bytes=50000-50099")).await;
    let ranged = expect_status(res, StatusCode::OK).await;
    assert_eq!(
        ranged["offset_into_first_range"], 10_000,
        "chunk 1 starts at 40000"
    );
    assert_eq!(ranged["terms"][0]["range"], json!({"start": 1, "end": 2}));
    let res = reconstruction(
        &app,
        &alice_read,
        &upload.file,
        Some(&format!("bytes={}-", data.len())),
    )
    .await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // Bob's token of his public repository learns nothing about it.
    let bob_write = cas_token(&app, Some(&bob), "bob/open", "write").await;
    let res = reconstruction(&app, &bob_write, &upload.file, None).await;
    expect_error(res, StatusCode::NOT_FOUND, "xet-file-not-found").await;
    let res = cas(&app, Method::POST, "/v1/reconstructions", &bob_write)
        .json(&json!([{"prefix": "default", "hash": upload.file.to_string()}]))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_status(res, StatusCode::OK).await["files"], json!({}));
    let first_chunk = chunk_hash(&data[..40_000]);
    let res = cas(
        &app,
        Method::GET,
        &format!("/v1/chunks/default-merkledb/{first_chunk}"),
        &bob_write,
    )
    .send()
    .await
    .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "xet-chunk-not-found").await;
    // ... and cannot claim the file by uploading a shard that names Alice's xorb: the
    // verification hashes prove possession, and this one is wrong.
    let mut stolen = prepare(&data);
    stolen.shard = {
        let info = FileInfo {
            file_hash: upload.file,
            terms: vec![Term {
                xorb: upload.xorb,
                unpacked_len: data.len() as u32,
                chunk_start: 0,
                chunk_end: 8,
            }],
            verification: vec![MerkleHash([9; 32])],
            sha256: Some(Sha256::digest(&data).into()),
        };
        encode_upload_shard(&[info], &[])
    };
    let res = cas(&app, Method::POST, "/v1/shards", &bob_write)
        .body(stolen.shard)
        .send()
        .await
        .unwrap();
    let message = expect_error(res, StatusCode::BAD_REQUEST, "invalid-shard").await;
    assert!(message.contains("verification hash"), "{message}");
    // Alice's own token finds the chunk, keyed: the answer is a shard with a footer.
    let res = cas(
        &app,
        Method::GET,
        &format!("/v1/chunks/default-merkledb/{first_chunk}"),
        &alice_read,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let shard = res.bytes().await.unwrap();
    assert!(
        !shard
            .windows(32)
            .any(|w| w == first_chunk.as_bytes().as_slice()),
        "chunk hashes are never sent in the clear"
    );
    assert!(
        shard
            .windows(32)
            .any(|w| w == upload.xorb.as_bytes().as_slice()),
        "the answer names the xorb"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn malformed_xorbs_and_shards_are_refused_with_nothing_stored(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let write = cas_token(&app, Some(&alice), "alice/m", "write").await;
    let data = noise(200_000, 3);
    let upload = prepare(&data);
    let post_xorb = |hash: String, body: Vec<u8>| {
        cas(
            &app,
            Method::POST,
            &format!("/v1/xorbs/default/{hash}"),
            &write,
        )
        .body(body)
        .send()
    };
    // A body that does not hash to its name.
    let other = prepare(&noise(1000, 4));
    let res = post_xorb(other.xorb.to_string(), upload.xorb_bytes.clone())
        .await
        .unwrap();
    let message = expect_error(res, StatusCode::BAD_REQUEST, "invalid-xorb").await;
    assert!(message.contains("hash to"), "{message}");
    // Truncated in the middle of a frame.
    let res = post_xorb(upload.xorb.to_string(), upload.xorb_bytes[..5000].to_vec())
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "invalid-xorb").await;
    // A frame claiming a huge uncompressed size.
    let mut huge = upload.xorb_bytes.clone();
    huge[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    let res = post_xorb(upload.xorb.to_string(), huge).await.unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "invalid-xorb").await;
    // A hash that is not a hash, and a prefix other than `default`.
    let res = post_xorb("zz".into(), upload.xorb_bytes.clone())
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "invalid-xet-hash").await;
    // Nothing of those was stored.
    let xorbs: i64 = sqlx::query_scalar("SELECT count(*) FROM xet_xorbs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(xorbs, 0);
    assert_eq!(app.store.xorb_size(&upload.xorb).await.unwrap(), None);
    assert_eq!(
        app.store
            .collect_staging(std::time::Duration::ZERO)
            .await
            .unwrap(),
        0,
        "no staging object is left behind"
    );
    // A shard naming a xorb the hub does not hold.
    let res = cas(&app, Method::POST, "/v1/shards", &write)
        .body(upload.shard.clone())
        .send()
        .await
        .unwrap();
    let message = expect_error(res, StatusCode::BAD_REQUEST, "invalid-shard").await;
    assert!(message.contains("not stored"), "{message}");
    // Garbage as a shard.
    let res = cas(&app, Method::POST, "/v1/shards", &write)
        .body(vec![7u8; 300])
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "invalid-shard").await;
    // With the xorb stored: a shard whose sha256 lies is refused after the rebuild.
    let res = post_xorb(upload.xorb.to_string(), upload.xorb_bytes.clone())
        .await
        .unwrap();
    assert_eq!(
        expect_status(res, StatusCode::OK).await["was_inserted"],
        true
    );
    let res = post_xorb(upload.xorb.to_string(), upload.xorb_bytes.clone())
        .await
        .unwrap();
    assert_eq!(
        expect_status(res, StatusCode::OK).await["was_inserted"],
        false,
        "the same xorb again is not an error"
    );
    let hashes: Vec<(MerkleHash, u64)> = data
        .chunks(40_000)
        .map(|c| (chunk_hash(c), c.len() as u64))
        .collect();
    let lying = FileInfo {
        file_hash: upload.file,
        terms: vec![Term {
            xorb: upload.xorb,
            unpacked_len: data.len() as u32,
            chunk_start: 0,
            chunk_end: hashes.len() as u32,
        }],
        verification: vec![verification_hash(
            &hashes.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        )],
        sha256: Some([0u8; 32]),
    };
    let res = cas(&app, Method::POST, "/v1/shards", &write)
        .body(encode_upload_shard(&[lying], &[]))
        .send()
        .await
        .unwrap();
    let message = expect_error(res, StatusCode::BAD_REQUEST, "invalid-shard").await;
    assert!(message.contains("sha256"), "{message}");
    let files: i64 = sqlx::query_scalar("SELECT count(*) FROM xet_files")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(files, 0, "no file was registered");
    // A commit naming the bytes is refused until a valid shard registered them.
    let res = app
        .post_json(
            "/api/v1/repos/alice/m/commits/main",
            Some(&alice),
            &json!({"message": "x", "operations": [{"op": "put", "path": "w.bin", "sha256": upload.sha256, "size": upload.size}]}),
        )
        .await;
    assert!(res.status().is_client_error());
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn xet_files_are_scanned_gated_and_collected_like_any_other(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    // `posix.system("id")` as a pickle: the scanner reads it through the recipe.
    let pickle = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.".to_vec();
    let upload = prepare(&pickle);
    publish(&app, &alice, "alice/m", "model.pkl", &upload).await;
    app.run_jobs().await;
    let res = app
        .request(Method::HEAD, "/alice/m/resolve/main/model.pkl", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-kaiyuan-scan"], "malicious");
    // No Xet hash for bytes the CAS refuses: the client asks resolve, which says why.
    assert!(res.headers().get("x-xet-hash").is_none());
    let res = app.get("/alice/m/resolve/main/model.pkl", None).await;
    expect_error(res, StatusCode::FORBIDDEN, "quarantined").await;
    let read = cas_token(&app, None, "alice/m", "read").await;
    let res = reconstruction(&app, &read, &upload.file, None).await;
    expect_error(res, StatusCode::FORBIDDEN, "quarantined").await;
    run_client(
        &app,
        "KAIYUAN_TEST_PYTHON",
        "hf_download_refused.py",
        &[
            ("KY_REPO", "alice/m"),
            ("KY_PATH", "model.pkl"),
            ("KY_REVISION", "main"),
            ("KY_REASON", "posix.system"),
        ],
    )
    .await;
    // A clean file: resolve serves the rebuilt bytes, whole and in ranges.
    let data = noise(150_000, 6);
    let clean = prepare(&data);
    publish(&app, &alice, "alice/m", "w.bin", &clean).await;
    let res = app.get("/alice/m/resolve/main/w.bin", None).await;
    assert_eq!(res.headers()["x-xet-hash"], clean.file.to_string().as_str());
    let link = res.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.contains("/api/models/alice/m/xet-read-token/") && link.ends_with("rel=\"xet-auth\""),
        "{link}"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
    let res = app
        .request(Method::GET, "/alice/m/resolve/main/w.bin", None)
        .header("range", "bytes=39990-40009")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[39990..40010]);
    let tree: Vec<Value> = app
        .get("/api/models/alice/m/tree/main", None)
        .await
        .json()
        .await
        .unwrap();
    let entry = tree.iter().find(|e| e["path"] == "w.bin").unwrap();
    assert_eq!(entry["xetHash"], clean.file.to_string());
    let readme = tree.iter().find(|e| e["path"] == "README.md");
    assert!(readme.is_none_or(|e| e.get("xetHash").is_none()));
    // Deleted from the repository and past the grace period, the file and its xorb go.
    let res = app
        .post_json(
            "/api/v1/repos/alice/m/commits/main",
            Some(&alice),
            &json!({"message": "drop", "operations": [{"op": "delete", "path": "w.bin"}]}),
        )
        .await;
    expect_status(res, StatusCode::CREATED).await;
    let repo_id: i64 = sqlx::query_scalar("SELECT id FROM repositories WHERE name = 'm'")
        .fetch_one(&pool)
        .await
        .unwrap();
    // History keeps the bytes while a commit references them: purge the history as a deleted
    // repository would, then age everything past the grace period.
    sqlx::query("DELETE FROM commit_files WHERE repository_id = $1 AND path = 'w.bin'")
        .bind(repo_id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM repository_uploads")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE blobs SET last_seen_at = now() - interval '30 days'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE xet_xorbs SET last_seen_at = now() - interval '30 days'")
        .execute(&pool)
        .await
        .unwrap();
    let report = kaiyuan_hub::gc::collect(&pool, &app.store, &app.state.settings.gc)
        .await
        .unwrap();
    assert_eq!(report.xorbs_removed, 1, "{report:?}");
    assert_eq!(app.store.xorb_size(&clean.xorb).await.unwrap(), None);
    assert!(
        app.store.xorb_size(&upload.xorb).await.unwrap().is_some(),
        "the quarantined file is still referenced"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn xet_can_be_turned_off(pool: PgPool) {
    let app = spawn_app_with(pool, Backend::Local, |s| s.xet.enabled = false).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let res = app
        .get("/api/models/alice/m/xet-write-token/main", Some(&alice))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_IMPLEMENTED);
    assert!(
        res.headers()["x-error-message"]
            .to_str()
            .unwrap()
            .contains("HF_HUB_DISABLE_XET=1")
    );
    // The LFS batch answers `basic` even to clients that offer `xet`.
    let res = app
        .post_json(
            "/alice/m.git/info/lfs/objects/batch",
            Some(&alice),
            &json!({"operation": "upload", "transfers": ["basic", "multipart", "xet"], "objects": [{"oid": "a".repeat(64), "size": 20_000_000}]}),
        )
        .await;
    assert_eq!(
        expect_status(res, StatusCode::OK).await["transfer"],
        "basic"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn lfs_batch_offers_xet_to_clients_that_ask(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let batch = |transfers: Value| json!({"operation": "upload", "transfers": transfers, "objects": [{"oid": "a".repeat(64), "size": 20_000_000}]});
    let res = app
        .post_json(
            "/alice/m.git/info/lfs/objects/batch",
            Some(&alice),
            &batch(json!(["basic", "multipart", "xet"])),
        )
        .await;
    let body = expect_status(res, StatusCode::OK).await;
    assert_eq!(body["transfer"], "xet");
    assert!(body["objects"][0].get("actions").is_none());
    let res = app
        .post_json(
            "/alice/m.git/info/lfs/objects/batch",
            Some(&alice),
            &batch(json!(["basic", "multipart"])),
        )
        .await;
    assert_eq!(
        expect_status(res, StatusCode::OK).await["transfer"],
        "basic"
    );
}

/// Files the hub chunks itself (mirrored from an upstream) must get the Xet hash the real client
/// computes for the same bytes: then `X-Xet-Hash` is what clients expect, and chunks deduplicate
/// with theirs. Sizes around the chunk limits, bytes that never match the boundary mask, text
/// with repeating structure, random bytes, and a real safetensors file.
#[test]
fn the_hubs_own_chunking_gives_the_clients_file_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<u8> = (0..60_000)
        .flat_map(|i| format!("row {i}, weight {:.3}\n", f64::from(i % 977) / 7.0).into_bytes())
        .collect();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("one-byte".into(), vec![7]),
        ("below-min".into(), noise(8 * 1024 - 1, 1)),
        ("at-min".into(), noise(8 * 1024, 2)),
        ("above-min".into(), noise(8 * 1024 + 1, 3)),
        ("at-max".into(), noise(128 * 1024, 4)),
        ("zeros".into(), vec![0; (1 << 20) + 5]),
        ("text".into(), text),
        ("random".into(), noise(5 << 20, 5)),
    ];
    let real = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus/provenance/model/model.safetensors");
    cases.push(("safetensors".into(), std::fs::read(real).unwrap()));
    let mut paths = Vec::new();
    let mut ours = std::collections::BTreeMap::new();
    for (name, bytes) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut chunker = kaiyuan_xet::Chunker::new();
        let mut chunks = Vec::new();
        // Fed in uneven pieces, as a download arrives.
        for piece in bytes.chunks(50_003) {
            chunks.extend(chunker.feed(piece));
        }
        chunks.extend(chunker.finish());
        let leaves: Vec<(MerkleHash, u64)> = chunks
            .iter()
            .map(|c| (chunk_hash(c), c.len() as u64))
            .collect();
        ours.insert(path.display().to_string(), file_hash(&leaves).to_string());
        paths.push(path.into_os_string());
    }
    let args: Vec<&std::ffi::OsStr> = paths.iter().map(|p| p.as_os_str()).collect();
    let out = kaiyuan_tests::run_python("xet_hash_files.py", &args);
    let theirs: std::collections::BTreeMap<String, String> =
        serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ours, theirs);
}
