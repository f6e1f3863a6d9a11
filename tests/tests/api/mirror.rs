//! Mirror mode against a real upstream: a second kaiyuan on loopback (it speaks the same API as
//! the public hub), with its own database. The stock client reads through the mirror; a
//! malicious file, bytes that do not match the upstream's digest, an upstream that goes away,
//! concurrent clients and a private upstream model are each checked.

use kaiyuan_tests::{Backend, TestApp, expect_error, expect_status, noise, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::hf::run_client;

/// An upstream hub with its own database on the same PostgreSQL server.
pub(super) async fn upstream_app(pool: &PgPool) -> TestApp {
    upstream_app_with(pool, Backend::Local, |_| {}).await
}

/// An upstream hub on `backend`, with its own database, configured by `configure`.
async fn upstream_app_with(
    pool: &PgPool,
    backend: Backend,
    configure: impl FnOnce(&mut kaiyuan_hub::config::Settings),
) -> TestApp {
    spawn_app_with(own_database(pool).await, backend, configure).await
}

/// A new database on the server of `pool`, migrated: for a second hub in one test.
async fn own_database(pool: &PgPool) -> PgPool {
    let name = format!("upstream_{:016x}", rand::random::<u64>());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(pool)
        .await
        .unwrap();
    let options = pool.connect_options().as_ref().clone().database(&name);
    let database = PgPoolOptions::new()
        .max_connections(20)
        .connect_with(options)
        .await
        .unwrap();
    kaiyuan_hub::db::MIGRATOR.run(&database).await.unwrap();
    database
}

async fn mirror_of(pool: PgPool, upstream: &TestApp, token: Option<&str>) -> TestApp {
    let base = upstream.base.clone();
    let token = token.map(str::to_string);
    spawn_app_with(pool, Backend::Local, move |s| {
        s.mirror.upstream = Some(base);
        s.mirror.upstream_token = token;
        s.mirror.timeout_secs = 5;
    })
    .await
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Asserts that the stock client, at its default settings, can neither `hf_hub_download` `path`
/// of `repo` at main nor `snapshot_download` it, and that its error gives `reason`.
async fn stock_client_is_refused(app: &TestApp, repo: &str, path: &str, reason: &str) {
    run_client(
        app,
        "KAIYUAN_TEST_PYTHON",
        "hf_download_refused.py",
        &[
            ("KY_REPO", repo),
            ("KY_PATH", path),
            ("KY_REVISION", "main"),
            ("KY_REASON", reason),
        ],
    )
    .await;
}

/// Asserts that the stock client, at its default settings and signed out, downloads `path` of
/// `repo` at `revision` from `app` as `bytes`.
async fn stock_client_downloads(
    app: &TestApp,
    repo: &str,
    path: &str,
    revision: &str,
    bytes: &[u8],
) {
    run_client(
        app,
        "KAIYUAN_TEST_PYTHON",
        "hf_download_one.py",
        &[
            ("KY_REPO", repo),
            ("KY_PATH", path),
            ("KY_REVISION", revision),
            ("KY_SHA256", &sha(bytes)),
            ("KY_SIZE", &bytes.len().to_string()),
        ],
    )
    .await;
}

/// Tags `target` as `name` in `repo` on `app`.
async fn tag(app: &TestApp, token: &str, repo: &str, name: &str, target: &str) {
    let res = app
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/v1/repos/{repo}/tags/{name}"),
            Some(token),
            &json!({"target": target}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
}

/// A mirror of `upstream` gated by the licence policy of its organisation `acme` (created, with
/// no policy document: the engine's defaults), and the token of acme's owner.
async fn mirror_gated_by_acme(pool: &PgPool, upstream: &TestApp) -> (TestApp, String) {
    let base = upstream.base.clone();
    let mirror = spawn_app_with(pool.clone(), Backend::Local, move |s| {
        s.mirror.upstream = Some(base);
        s.mirror.policy = Some("acme".into());
    })
    .await;
    let owner = mirror.create_user("owner").await;
    let res = mirror
        .post_json("/api/v1/orgs", Some(&owner), &json!({"name": "acme"}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    (mirror, owner)
}

/// The Xet hash under which a hub whose database is `pool` keeps `bytes`.
async fn xet_hash(pool: &PgPool, bytes: &[u8]) -> kaiyuan_xet::MerkleHash {
    let hash: Vec<u8> = sqlx::query_scalar("SELECT file_hash FROM xet_files WHERE sha256 = $1")
        .bind(Sha256::digest(bytes).to_vec())
        .fetch_one(pool)
        .await
        .unwrap();
    kaiyuan_xet::MerkleHash::from_slice(&hash).unwrap()
}

/// `alice/m` on a new upstream: a card, `config.json` and 3 MiB of weights tagged `v1`, then a
/// second `config.json` on main.
struct TaggedModel {
    upstream: TestApp,
    /// Alice's token there.
    alice: String,
    weights: Vec<u8>,
    /// The tagged commit's id.
    first: String,
    /// What `hf_mirror_client.py` is to find: each file's sha256 at main (`KY_FILES`), and
    /// files at each revision (`KY_REVISIONS`).
    files: String,
    revisions: String,
}

async fn upstream_with_tagged_model(pool: &PgPool) -> TaggedModel {
    let upstream = upstream_app(pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "m", "public").await;
    let weights = noise(3 << 20, 1);
    let first = upstream
        .commit_files(
            &alice,
            "alice/m",
            &[
                ("README.md", b"---\nlicense: mit\n---\n# m\n"),
                ("config.json", b"{\"v\": 1}"),
                ("model.safetensors", &weights),
            ],
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    tag(&upstream, &alice, "alice/m", "v1", &first).await;
    upstream
        .commit_files(&alice, "alice/m", &[("config.json", b"{\"v\": 2}")])
        .await;
    let files = json!({
        "README.md": sha(b"---\nlicense: mit\n---\n# m\n"),
        "config.json": sha(b"{\"v\": 2}"),
        "model.safetensors": sha(&weights),
    });
    let revisions = json!({
        "main": {"config.json": sha(b"{\"v\": 2}")},
        "v1": {"config.json": sha(b"{\"v\": 1}"), "model.safetensors": sha(&weights)},
        first.clone(): {"config.json": sha(b"{\"v\": 1}")},
    });
    TaggedModel {
        upstream,
        alice,
        weights,
        first,
        files: files.to_string(),
        revisions: revisions.to_string(),
    }
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_stock_client_reads_through_the_mirror(pool: PgPool) {
    let TaggedModel {
        upstream,
        weights,
        first,
        files,
        revisions,
        ..
    } = upstream_with_tagged_model(&pool).await;
    let mirror = mirror_of(pool.clone(), &upstream, None).await;
    run_client(
        &mirror,
        "KAIYUAN_TEST_PYTHON",
        "hf_mirror_client.py",
        &[
            ("KY_REPO", "alice/m"),
            ("KY_FILES", &files),
            ("KY_REVISIONS", &revisions),
            ("KY_LICENSE", "mit"),
        ],
    )
    .await;
    // The weights were kept as Xet chunks under the file hash the real client computes for
    // them, stored once (no whole copy beside the chunks), and the stock client downloaded
    // them through the mirror's CAS; the card stayed a whole object.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, &weights).unwrap();
    let oracle: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        kaiyuan_tests::run_python("xet_hash_files.py", &[path.as_os_str()]).trim(),
    )
    .unwrap();
    let head = mirror
        .request(
            reqwest::Method::HEAD,
            "/alice/m/resolve/main/model.safetensors",
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.headers()["x-xet-hash"].to_str().unwrap(),
        oracle[&path.display().to_string()].as_str().unwrap()
    );
    let head = mirror
        .request(
            reqwest::Method::HEAD,
            "/alice/m/resolve/main/README.md",
            None,
        )
        .send()
        .await
        .unwrap();
    assert!(head.headers().get("x-xet-hash").is_none());
    // The card's licence is the repository's, as for a commit made here: listed by licence,
    // and no "declares no licence" notice on its downloads.
    assert!(
        head.headers().get("x-hf-warning").is_none(),
        "{:?}",
        head.headers().get("x-hf-warning")
    );
    let listed = expect_status(
        mirror.get("/api/models?filter=license:mit", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed[0]["id"], "alice/m", "{listed}");
    assert!(
        !files_under(mirror.local_store_dir().unwrap())
            .iter()
            .any(|f| f.ends_with(&sha(&weights))),
        "the weights are stored once, as chunks"
    );
    assert!(route_requests(&mirror, "GET", "/cas/v1/fetch/{xorb}").await > 0);
    // Recorded as a mirror, with the upstream's commit ids; the weights were scanned.
    let mirrored: Vec<String> =
        sqlx::query_scalar("SELECT upstream_commit FROM mirrored_commits ORDER BY fetched_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(mirrored.contains(&first), "{mirrored:?}");
    let unscanned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM blobs WHERE scan_verdict IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        unscanned, 0,
        "every mirrored file was scanned before it was served"
    );
    // The model page says where it came from.
    let page = mirror.get("/alice/m", None).await.text().await.unwrap();
    assert!(
        page.contains("<strong>Mirrored</strong> from")
            && page.contains(upstream.base.trim_start_matches("http://")),
        "{page}"
    );
    // With the upstream gone, what is mirrored is still served; anything else fails fast.
    upstream.stop().await;
    let res = mirror
        .get("/alice/m/resolve/main/model.safetensors", None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), weights.as_slice());
    let started = std::time::Instant::now();
    let res = mirror.get("/alice/other/resolve/main/x.bin", None).await;
    expect_error(res, StatusCode::GATEWAY_TIMEOUT, "upstream-unreachable").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_mirror_serves_nothing_unchecked(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream
        .create_repo(&alice, "alice", "evil", "public")
        .await;
    let pickle = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
    // The same call behind 1 MiB of string data (BINSTRING, then POP): large enough for the
    // mirror to keep it as Xet chunks.
    let mut big = b"\x80\x02T".to_vec();
    big.extend_from_slice(&(1u32 << 20).to_le_bytes());
    big.extend(std::iter::repeat_n(b'A', 1 << 20));
    big.push(b'0');
    big.extend_from_slice(&pickle[2..]);
    upstream
        .commit_files(
            &alice,
            "alice/evil",
            &[("model.pkl", pickle), ("big.pkl", &big)],
        )
        .await;
    upstream
        .create_repo(&alice, "alice", "lying", "public")
        .await;
    let honest = noise(100_000, 2);
    upstream
        .commit_files(&alice, "alice/lying", &[("w.bin", &honest)])
        .await;
    upstream
        .create_repo(&alice, "alice", "secret", "private")
        .await;
    upstream
        .commit_files(&alice, "alice/secret", &[("w.bin", b"private weights")])
        .await;
    // The upstream's bytes change behind its back: it now serves what its digest does not say.
    let digest = kaiyuan_storage::Sha256Digest::from_bytes(Sha256::digest(&honest).into());
    let hex = digest.to_hex();
    let dir = upstream.local_store_dir().expect("a local store");
    let object = dir.join(format!("blobs/sha256/{}/{}/{hex}", &hex[..2], &hex[2..4]));
    std::fs::write(&object, noise(100_000, 3)).unwrap();

    // The mirror fetches with the organisation's token (alice's), so it can read the private one.
    let mirror = mirror_of(pool.clone(), &upstream, Some(&alice)).await;
    let bob = mirror.create_user("bob").await;
    let res = mirror.get("/alice/evil/resolve/main/model.pkl", None).await;
    expect_error(res, StatusCode::FORBIDDEN, "quarantined").await;
    // Kept as chunks, but never offered through the CAS: the stock client, at its default
    // settings, asks resolve and shows the scan's reason.
    let chunked: i64 = sqlx::query_scalar("SELECT count(*) FROM xet_files WHERE sha256 = $1")
        .bind(Sha256::digest(&big).to_vec())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(chunked, 1);
    stock_client_is_refused(&mirror, "alice/evil", "big.pkl", "posix.system").await;
    let res = mirror.get("/alice/lying/resolve/main/w.bin", None).await;
    let message = expect_error(res, StatusCode::BAD_GATEWAY, "upstream-failed").await;
    assert!(message.contains("nothing was kept"), "{message}");
    let res = mirror.get("/api/models/alice/lying", None).await;
    assert_ne!(
        res.status(),
        StatusCode::OK,
        "the lying repository never appeared"
    );
    let lying: i64 = sqlx::query_scalar("SELECT count(*) FROM repositories WHERE name = 'lying'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(lying, 0);
    // The private upstream model is mirrored as a private repository: bob cannot see it.
    let res = mirror
        .get("/alice/secret/resolve/main/w.bin", Some(&bob))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let private: String =
        sqlx::query_scalar("SELECT visibility FROM repositories WHERE name = 'secret'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(private, "private");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn concurrent_clients_share_one_upstream_fetch(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "big", "public").await;
    // 200 MiB, as the issue asks: the fetch lasts long enough for every client to arrive
    // while it runs.
    let weights = noise(200 << 20, 4);
    let expected = Sha256::digest(&weights).to_vec();
    let res = upstream.upload(&alice, "alice/big", weights, None).await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let res = upstream
        .post_json(
            "/api/v1/repos/alice/big/commits/main",
            Some(&alice),
            &json!({"message": "weights", "operations": [
                {"op": "put", "path": "model.bin", "sha256": hex::encode(&expected)}
            ]}),
        )
        .await;
    expect_status(res, StatusCode::CREATED).await;
    let base = upstream.base.clone();
    let mirror = spawn_app_with(pool, Backend::Local, move |s| {
        s.mirror.upstream = Some(base);
        s.mirror.timeout_secs = 30;
        // Every client waits for the shared fetch (a debug build on two cores).
        s.mirror.wait_secs = 300;
    })
    .await;
    let url = mirror.url("/alice/big/resolve/main/model.bin");
    let mut clients = Vec::new();
    for _ in 0..20 {
        let http = mirror.http.clone();
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            use futures_util::StreamExt;
            let res = http.get(&url).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            // Hashed as it streams: twenty copies of the file are never held at once.
            let mut hasher = Sha256::new();
            let mut body = res.bytes_stream();
            while let Some(piece) = body.next().await {
                hasher.update(piece.unwrap());
            }
            hasher.finalize().to_vec()
        }));
    }
    for client in clients {
        assert_eq!(client.await.unwrap(), expected);
    }
    assert_eq!(
        upstream_resolve_gets(&upstream).await,
        1,
        "one upstream fetch for twenty clients"
    );
}

/// GETs of the upstream's resolve route so far, from its metrics.
pub(super) async fn upstream_resolve_gets(upstream: &TestApp) -> u64 {
    route_requests(
        upstream,
        "GET",
        "/{namespace}/{name}/resolve/{revision}/{path:.*}",
    )
    .await
}

/// Asserts that reading `path` (`/{ns}/{name}/resolve/...`) through the mirror fails as an
/// upstream failure that kept nothing, and that no repository of that name appeared; returns
/// the error's message.
pub(super) async fn refused_leaving_no_repository(
    mirror: &TestApp,
    pool: &PgPool,
    path: &str,
) -> String {
    let res = mirror.get(path, None).await;
    let message = expect_error(res, StatusCode::BAD_GATEWAY, "upstream-failed").await;
    assert!(message.contains("nothing was kept"), "{message}");
    let name = path.split('/').nth(2).unwrap();
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM repositories WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(found, 0, "`{name}` appeared after a refused fetch");
    message
}

/// Every file under `dir`, as paths.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        if entry.file_type().unwrap().is_dir() {
            found.extend(files_under(&entry.path()));
        } else {
            found.push(entry.path().display().to_string());
        }
    }
    found
}

/// The objects of `app`'s local store under any of `folders`, once their number is `expected`
/// or five seconds have passed (staged objects of a failed fetch are removed in the background).
pub(super) async fn objects_once_settled(
    app: &TestApp,
    folders: &[&str],
    expected: usize,
) -> Vec<String> {
    let store = app.local_store_dir().unwrap().to_path_buf();
    let mut left = Vec::new();
    for _ in 0..50 {
        left = files_under(&store)
            .into_iter()
            .filter(|f| folders.iter().any(|folder| f.contains(folder)))
            .collect();
        if left.len() == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    left
}

/// Requests a hub answered on one route so far, from its metrics.
pub(super) async fn route_requests(app: &TestApp, method: &str, route: &str) -> u64 {
    requests_labelled(app, &[("route", route), ("method", method)]).await
}

/// Requests a hub answered so far whose metrics carry every one of `labels`.
async fn requests_labelled(app: &TestApp, labels: &[(&str, &str)]) -> u64 {
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    metrics
        .lines()
        .filter(|l| {
            labels
                .iter()
                .all(|(name, value)| l.contains(&format!("{name}=\"{value}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_large_file_is_checked_whole_before_it_appears(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "big", "public").await;
    upstream.create_repo(&alice, "alice", "bad", "public").await;
    let weights = noise((40 << 20) + 12_345, 5);
    let tampered = noise(33 << 20, 6);
    for (repo, bytes) in [("alice/big", &weights), ("alice/bad", &tampered)] {
        let res = upstream.upload(&alice, repo, bytes.clone(), None).await;
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
        let res = upstream
            .post_json(
                &format!("/api/v1/repos/{repo}/commits/main"),
                Some(&alice),
                &json!({"message": "weights", "operations": [
                    {"op": "put", "path": "model.bin", "sha256": sha(bytes)}
                ]}),
            )
            .await;
        expect_status(res, StatusCode::CREATED).await;
    }
    // One byte in the middle of the second file changes behind the upstream's back.
    let hex = sha(&tampered);
    let dir = upstream.local_store_dir().expect("a local store");
    let object = dir.join(format!("blobs/sha256/{}/{}/{hex}", &hex[..2], &hex[2..4]));
    let mut changed = tampered.clone();
    changed[20 << 20] ^= 1;
    std::fs::write(&object, changed).unwrap();

    let mirror = mirror_of(pool.clone(), &upstream, None).await;
    let res = mirror.get("/alice/big/resolve/main/model.bin", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let served = res.bytes().await.unwrap();
    assert!(served.as_ref() == weights.as_slice());
    // A file one bit off its digest never appears.
    refused_leaving_no_repository(&mirror, &pool, "/alice/bad/resolve/main/model.bin").await;
    // Both files were cut into Xet chunks as they arrived. Of the tampered one nothing was
    // kept: no blob, no file record, and its staged xorbs were removed; every xorb left in the
    // store is recorded and belongs to the good file.
    let (blobs, files): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM blobs WHERE encode(sha256, 'hex') = $1),
                (SELECT count(*) FROM xet_files WHERE encode(sha256, 'hex') = $1)",
    )
    .bind(&hex)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((blobs, files), (0, 0));
    let recorded: Vec<String> = sqlx::query_scalar(
        "SELECT x.xorb_hash::text FROM xet_file_xorbs x JOIN xet_files f USING (file_hash)
         WHERE encode(f.sha256, 'hex') = $1",
    )
    .bind(sha(&weights))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(recorded.len(), 1, "40 MiB fit one 64 MiB xorb");
    let left = objects_once_settled(&mirror, &["/xorbs/", "/staging/"], 1).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains("/xorbs/default/"), "{left:?}");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn each_repository_comes_from_the_first_upstream_that_admits_it(pool: PgPool) {
    // An organisation's own hub for its models, the public hub for everything else.
    let internal = upstream_app(&pool).await;
    let public = upstream_app(&pool).await;
    for (hub, repos) in [
        (&internal, &["acme/m", "acme/secret"][..]),
        (&public, &["acme/m", "acme/secret", "bob/n"][..]),
    ] {
        let mut tokens = std::collections::HashMap::new();
        for repo in repos {
            let (owner, name) = repo.split_once('/').unwrap();
            if !tokens.contains_key(owner) {
                tokens.insert(owner, hub.create_user(owner).await);
            }
            let token = &tokens[owner];
            hub.create_repo(token, owner, name, "public").await;
            let bytes = format!("{repo} at {}", hub.base);
            hub.commit_files(token, repo, &[("w.bin", bytes.as_bytes())])
                .await;
        }
    }
    let (internal_base, public_base) = (internal.base.clone(), public.base.clone());
    let mirror = spawn_app_with(pool.clone(), Backend::Local, move |s| {
        s.mirror.upstreams = vec![kaiyuan_hub::config::MoreUpstream {
            url: internal_base,
            token: None,
            allow: vec!["acme/*".into()],
            deny: vec!["acme/secret".into()],
        }];
        s.mirror.upstream = Some(public_base);
        s.mirror.timeout_secs = 5;
    })
    .await;
    for (repo, from) in [
        ("acme/m", &internal),
        ("acme/secret", &public),
        ("bob/n", &public),
    ] {
        let res = mirror
            .get(&format!("/{repo}/resolve/main/w.bin"), None)
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{repo}");
        assert_eq!(
            res.text().await.unwrap(),
            format!("{repo} at {}", from.base),
            "{repo} comes from {}",
            from.base
        );
    }
    let recorded: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.full_name, m.upstream FROM mirrored_repos m
         JOIN repositories r ON r.id = m.repository_id ORDER BY r.full_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        recorded,
        [
            ("acme/m".to_string(), internal.base.clone()),
            ("acme/secret".to_string(), public.base.clone()),
            ("bob/n".to_string(), public.base.clone()),
        ]
    );
}

/// Uploads `files` to `repo` of `hub` with the stock client, so its large files go through the
/// hub's Xet CAS, as they do on the public hub.
pub(super) async fn upload_with_xet(
    hub: &TestApp,
    token: &str,
    repo: &str,
    files: &[(&str, &[u8])],
) {
    let folder = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(folder.path().join(name), bytes).unwrap();
    }
    let folder = folder.path().display().to_string();
    run_client(
        hub,
        "KAIYUAN_TEST_PYTHON",
        "hf_upload_folder.py",
        &[
            ("KY_TOKEN", token),
            ("KY_REPO", repo),
            ("KY_FOLDER", &folder),
        ],
    )
    .await;
}

/// An upstream holding `alice/m` with one file, `w.bin`, uploaded by the stock client through
/// Xet, so that its CAS serves it (the client sends files under 10 MB inline); and alice's
/// token.
pub(super) async fn upstream_with_xet_file(pool: &PgPool, weights: &[u8]) -> (TestApp, String) {
    upstream_with_xet_file_configured(pool, weights, |_| {}).await
}

/// The same, with the upstream configured by `configure`.
async fn upstream_with_xet_file_configured(
    pool: &PgPool,
    weights: &[u8],
    configure: impl FnOnce(&mut kaiyuan_hub::config::Settings),
) -> (TestApp, String) {
    assert!(
        weights.len() > 10_000_000,
        "the client would send it inline"
    );
    let upstream = upstream_app_with(pool, Backend::Local, configure).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "m", "public").await;
    upload_with_xet(&upstream, &alice, "alice/m", &[("w.bin", weights)]).await;
    (upstream, alice)
}

/// Gates `repo` on `hub` (`auto`: access is granted on request), as its admin `token`.
async fn gate(hub: &TestApp, token: &str, repo: &str) {
    let res = hub
        .send_json(
            reqwest::Method::PATCH,
            &format!("/api/v1/repos/{repo}"),
            Some(token),
            &json!({"gated": "auto"}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn files_the_upstream_serves_through_xet_are_read_from_its_cas(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "x", "public").await;
    upstream.create_repo(&alice, "alice", "bad", "public").await;
    // Over 10 MB, so that the client sends them as LFS files (through the CAS), not inline.
    let weights = noise(12 << 20, 11);
    let card = b"---\nlicense: mit\n---\n# x\n";
    upload_with_xet(
        &upstream,
        &alice,
        "alice/x",
        &[("README.md", card), ("model.safetensors", &weights)],
    )
    .await;
    let store = upstream.local_store_dir().unwrap().to_path_buf();
    let xorbs = |store: &std::path::Path| -> Vec<String> {
        files_under(store)
            .into_iter()
            .filter(|f| f.contains("/xorbs/"))
            .collect()
    };
    let before = xorbs(&store);
    assert!(
        !before.is_empty(),
        "the client uploaded through the CAS: {:?}",
        files_under(&store)
    );
    // The second model's chunks change behind the upstream's back: one byte of its xorb.
    upload_with_xet(
        &upstream,
        &alice,
        "alice/bad",
        &[("w.bin", &noise(11 << 20, 12))],
    )
    .await;
    let added: Vec<String> = xorbs(&store)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    let mut xorb = std::fs::read(&added[0]).unwrap();
    let middle = xorb.len() / 2;
    xorb[middle] ^= 1;
    std::fs::write(&added[0], xorb).unwrap();

    let mirror = mirror_of(pool.clone(), &upstream, None).await;
    let res = mirror
        .get("/alice/x/resolve/main/model.safetensors", None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().as_ref() == weights.as_slice());
    // The weights came from the upstream's CAS, chunk ranges by signed URL; only the card
    // (too small to chunk) came through resolve. The mirror's Xet hash is the upstream's.
    assert_eq!(upstream_resolve_gets(&upstream).await, 1);
    assert_eq!(
        route_requests(&upstream, "GET", "/cas/v1/reconstructions/{file_id}").await,
        1
    );
    assert!(route_requests(&upstream, "GET", "/cas/v1/fetch/{xorb}").await >= 1);
    let xet_hash = |app: &TestApp| {
        let request = app.request(
            reqwest::Method::HEAD,
            "/alice/x/resolve/main/model.safetensors",
            None,
        );
        async move {
            let head = request.send().await.unwrap();
            head.headers()["x-xet-hash"].to_str().unwrap().to_string()
        }
    };
    assert_eq!(xet_hash(&mirror).await, xet_hash(&upstream).await);

    // Altered chunks are refused, and leave nothing: no repository, no blob, no staged xorb.
    refused_leaving_no_repository(&mirror, &pool, "/alice/bad/resolve/main/w.bin").await;
    let left = objects_once_settled(&mirror, &["/xorbs/", "/staging/"], 1).await;
    assert_eq!(left.len(), 1, "only the good file's xorb: {left:?}");
}

/// Clients in use besides the newest read through a cold mirror too: huggingface_hub 0.36 (what
/// transformers 4.x installs), with Xet and through resolve, and the newest through resolve.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn older_clients_and_plain_downloads_read_through_a_cold_mirror(pool: PgPool) {
    let TaggedModel {
        upstream,
        files,
        revisions,
        ..
    } = upstream_with_tagged_model(&pool).await;
    for (python, xet) in [
        ("KAIYUAN_TEST_PYTHON_HF0", ""),
        ("KAIYUAN_TEST_PYTHON_HF0", "1"),
        ("KAIYUAN_TEST_PYTHON", "1"),
    ] {
        // A fresh mirror each time, so that every client meets the cold path.
        let mirror = spawn_app_with(own_database(&pool).await, Backend::Local, {
            let base = upstream.base.clone();
            move |s| s.mirror.upstream = Some(base)
        })
        .await;
        run_client(
            &mirror,
            python,
            "hf_mirror_client.py",
            &[
                ("KY_REPO", "alice/m"),
                ("KY_FILES", &files),
                ("KY_REVISIONS", &revisions),
                ("KY_LICENSE", "mit"),
                ("HF_HUB_DISABLE_XET", xet),
            ],
        )
        .await;
        let through_cas = route_requests(&mirror, "GET", "/cas/v1/fetch/{xorb}").await;
        assert_eq!(
            through_cas > 0,
            xet.is_empty(),
            "{python} HF_HUB_DISABLE_XET={xet:?}"
        );
        mirror.stop().await;
    }
}

/// The client's listings and its file system interface are reads like any other: as the first
/// requests to a mirror, they fetch what they list (a 404 before, for a model the upstream has).
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn listings_and_the_file_system_interface_read_through(pool: PgPool) {
    let TaggedModel {
        upstream, alice, ..
    } = upstream_with_tagged_model(&pool).await;
    upstream.create_repo(&alice, "alice", "n", "public").await;
    upstream
        .commit_files(&alice, "alice/n", &[("config.json", b"{\"v\": 1}")])
        .await;
    let mirror = mirror_of(pool.clone(), &upstream, None).await;
    run_client(
        &mirror,
        "KAIYUAN_TEST_PYTHON",
        "hf_mirror_listings.py",
        &[
            ("KY_REPO", "alice/m"),
            ("KY_FS_REPO", "alice/n"),
            ("KY_TAG", "v1"),
            ("KY_PATH", "config.json"),
            ("KY_SHA256", &sha(b"{\"v\": 1}")),
        ],
    )
    .await;
    let mirrored: i64 = sqlx::query_scalar("SELECT count(*) FROM mirrored_commits")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        mirrored, 3,
        "the tag and the default branch, and the second repository"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn mirror_add_and_status_from_the_command_line(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "m", "public").await;
    upstream
        .commit_files(&alice, "alice/m", &[("config.json", b"{}")])
        .await;
    let mut database =
        url::Url::parse(&std::env::var("DATABASE_URL").expect("DATABASE_URL")).expect("a URL");
    database.set_path(
        pool.connect_options()
            .get_database()
            .expect("a database name"),
    );
    let store = tempfile::tempdir().unwrap();
    // Asynchronous: the upstream serves from this test's runtime while the command runs.
    let kaiyuan = |args: &[&str]| {
        tokio::process::Command::new(kaiyuan_tests::kaiyuan_binary())
            .args(args)
            .env("DATABASE_URL", database.as_str())
            .env(
                "KAIYUAN_STORE_URL",
                format!("file://{}", store.path().display()),
            )
            .env("KAIYUAN_UPSTREAM", &upstream.base)
            .output()
    };
    let added = kaiyuan(&["mirror", "add", "alice/m@main"]).await.unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(String::from_utf8_lossy(&added.stdout).contains("mirrored alice/m@main"));
    let missing = kaiyuan(&["mirror", "add", "alice/nothing"]).await.unwrap();
    assert!(!missing.status.success());
    let unnamed = kaiyuan(&["mirror", "add", "alice/m?expand=1"])
        .await
        .unwrap();
    assert!(!unnamed.status.success());
    let said = String::from_utf8_lossy(&unnamed.stderr);
    assert!(
        said.contains("`m?expand=1` is not a valid repository name"),
        "{said}"
    );
    let status = kaiyuan(&["mirror", "status"]).await.unwrap();
    let listed = String::from_utf8_lossy(&status.stdout);
    assert!(
        listed.contains("alice/m")
            && listed.contains(&upstream.base)
            && listed.contains("1 commits"),
        "{listed}"
    );
    // A new upstream commit: the re-sync mirrors it; a second re-sync has nothing to do.
    upstream
        .commit_files(&alice, "alice/m", &[("config.json", b"{\"v\": 2}")])
        .await;
    let synced = kaiyuan(&["mirror", "sync"]).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&synced.stdout).trim(),
        r#"{"unchanged":0,"updated":1,"refused":0,"failed":0}"#,
        "{}",
        String::from_utf8_lossy(&synced.stderr)
    );
    let again = kaiyuan(&["mirror", "sync"]).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        r#"{"unchanged":1,"updated":0,"refused":0,"failed":0}"#
    );
    let status = kaiyuan(&["mirror", "status"]).await.unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("2 commits"));
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_organisations_licence_policy_gates_what_is_mirrored(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "nc", "public").await;
    upstream
        .commit_files(
            &alice,
            "alice/nc",
            &[
                (
                    "README.md",
                    b"---\nlicense: cc-by-nc-4.0\n---\n# research only\n",
                ),
                ("w.bin", b"weights"),
            ],
        )
        .await;
    upstream.create_repo(&alice, "alice", "mit", "public").await;
    upstream
        .commit_files(
            &alice,
            "alice/mit",
            &[
                ("README.md", b"---\nlicense: mit\n---\n# open\n"),
                ("w.bin", b"weights"),
            ],
        )
        .await;
    let (mirror, _) = mirror_gated_by_acme(&pool, &upstream).await;
    let res = mirror.get("/alice/nc/resolve/main/w.bin", None).await;
    let message = expect_error(res, StatusCode::FORBIDDEN, "mirror-policy-denied").await;
    assert!(
        message.contains("acme's licence policy denies `alice/nc`"),
        "{message}"
    );
    // Refused on its card before its weights were asked for: the upstream served the README
    // alone, and nothing of it was recorded here.
    assert_eq!(upstream_resolve_gets(&upstream).await, 1);
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM repositories WHERE name = 'nc'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded, 0);
    // The reason is the finding that denies, not the first note of the evaluation.
    assert!(
        message.ends_with("does not permit commercial use"),
        "{message}"
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'mirror.refuse' AND target = 'namespace:acme'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        audited, 1,
        "the refusal is in the policy organisation's audit log"
    );
    // The stock client says why, from its first request on.
    stock_client_is_refused(
        &mirror,
        "alice/nc",
        "w.bin",
        "does not permit commercial use",
    )
    .await;
    assert!(
        !files_under(mirror.local_store_dir().unwrap())
            .iter()
            .any(|f| f.ends_with(&sha(b"weights"))),
        "the denied model's weights were downloaded"
    );
    let res = mirror.get("/alice/mit/resolve/main/w.bin", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"weights");
    // Upstream, the model moves to a non-commercial licence: the re-sync refuses the new head
    // (its weights are never fetched) and main keeps the commit it had.
    upstream
        .commit_files(
            &alice,
            "alice/mit",
            &[
                (
                    "README.md",
                    b"---\nlicense: cc-by-nc-4.0\n---\n# now research only\n",
                ),
                ("w.bin", b"new weights"),
            ],
        )
        .await;
    let report = kaiyuan_hub::mirror::sync(&mirror.state).await.unwrap();
    assert_eq!(
        (report.updated, report.refused, report.failed),
        (0, 1, 0),
        "{report:?}"
    );
    let res = mirror.get("/alice/mit/resolve/main/w.bin", None).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"weights");
}

/// A commit the licence policy denies is refused on every path the stock client can take: the
/// resolve route (GET and HEAD), the Xet token route, and the CAS, which names bytes and not
/// commits. Its refusal is written with it, so it is never visible unrefused. An allowed
/// commit of the same repository is still served. (The denied commit ships a GGUF file, whose
/// header could state a licence too, so it is fetched whole and decided, not refused on its
/// card alone.)
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_denied_licence_holds_on_every_download_path(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "m", "public").await;
    // Over 1 MiB, so that the mirror keeps them as Xet chunks and offers them through its CAS.
    let (open_weights, nc_weights) = (noise(2 << 20, 7), noise(2 << 20, 8));
    let first = upstream
        .commit_files(
            &alice,
            "alice/m",
            &[
                ("README.md", b"---\nlicense: mit\n---\n# m\n"),
                ("w.safetensors", &open_weights),
            ],
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    tag(&upstream, &alice, "alice/m", "v1", &first).await;
    upstream
        .commit_files(
            &alice,
            "alice/m",
            &[
                (
                    "README.md",
                    b"---\nlicense: cc-by-nc-4.0\n---\n# research only\n",
                ),
                ("w.safetensors", &nc_weights),
                ("w-q4.gguf", b"GGUF, or not quite"),
            ],
        )
        .await;
    let (mirror, _) = mirror_gated_by_acme(&pool, &upstream).await;

    // While the denied revision is fetched, no mirrored commit is ever recorded unrefused.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (pool, stop) = (pool.clone(), stop.clone());
        async move {
            let mut unrefused = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                unrefused += sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM mirrored_commits WHERE refusal IS NULL",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
            }
            unrefused
        }
    });
    let res = mirror
        .get("/alice/m/resolve/main/w.safetensors", None)
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reason = "acme's licence policy denies `alice/m`";
    let message = expect_error(res, StatusCode::FORBIDDEN, "mirror-policy-denied").await;
    assert!(message.contains(reason), "{message}");
    assert_eq!(
        watcher.await.unwrap(),
        0,
        "the denied commit was visible without its refusal"
    );

    let page = mirror.get("/alice/m", None).await.text().await.unwrap();
    assert!(page.contains("Not served by this mirror"), "{page}");
    // A HEAD names no Xet hash for refused bytes: the client would fetch them from the CAS
    // without asking resolve again (and it gets the reason from resolve's GET).
    let head = mirror
        .request(
            reqwest::Method::HEAD,
            "/alice/m/resolve/main/w.safetensors",
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.headers().get("x-xet-hash").is_none());
    let res = mirror
        .get("/api/models/alice/m/xet-read-token/main", None)
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "mirror-policy-denied").await;

    // The allowed tag is served, through Xet as well; a CAS token of it reads its own bytes and
    // not the denied commit's, which only the denied commit holds.
    stock_client_downloads(&mirror, "alice/m", "w.safetensors", "v1", &open_weights).await;
    let body = expect_status(
        mirror
            .get("/api/models/alice/m/xet-read-token/v1", None)
            .await,
        StatusCode::OK,
    )
    .await;
    let cas_token = body["accessToken"].as_str().unwrap();
    let reconstruction = |file: kaiyuan_xet::MerkleHash| {
        mirror
            .http
            .get(format!("{}/cas/v1/reconstructions/{file}", mirror.base))
            .bearer_auth(cas_token)
            .send()
    };
    let res = reconstruction(xet_hash(&pool, &nc_weights).await)
        .await
        .unwrap();
    let message = expect_error(res, StatusCode::FORBIDDEN, "mirror-policy-denied").await;
    assert!(message.contains(reason), "{message}");
    let res = reconstruction(xet_hash(&pool, &open_weights).await)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // The stock client, at its default settings, is refused with the policy's reason.
    stock_client_is_refused(&mirror, "alice/m", "w.safetensors", reason).await;
}

/// A change of the organisation's licence policy reaches what was mirrored before it: the next
/// read decides each mirrored commit again (a CAS token taken before the change included), and
/// each change of verdict is audited.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_policy_change_reaches_what_was_mirrored_before_it(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "m", "public").await;
    let weights = noise(2 << 20, 9);
    upstream
        .commit_files(
            &alice,
            "alice/m",
            &[
                ("README.md", b"---\nlicense: mit\n---\n# m\n"),
                ("w.safetensors", &weights),
            ],
        )
        .await;
    let (mirror, owner) = mirror_gated_by_acme(&pool, &upstream).await;
    let res = mirror
        .get("/alice/m/resolve/main/w.safetensors", None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), weights.as_slice());
    let body = expect_status(
        mirror
            .get("/api/models/alice/m/xet-read-token/main", None)
            .await,
        StatusCode::OK,
    )
    .await;
    let cas_token = body["accessToken"].as_str().unwrap().to_string();
    let file_hash = xet_hash(&pool, &weights).await;
    let audited = |action: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_events WHERE action = $1")
                .bind(action)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };

    // acme now denies MIT: the token taken before cannot read the bytes, nor can anyone else.
    let res = mirror
        .send_json(
            reqwest::Method::PUT,
            "/api/v1/orgs/acme/license-policy",
            Some(&owner),
            &json!({"deny": ["MIT"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let reason = "acme's licence policy denies `alice/m`";
    let res = mirror
        .http
        .get(format!(
            "{}/cas/v1/reconstructions/{file_hash}",
            mirror.base
        ))
        .bearer_auth(&cas_token)
        .send()
        .await
        .unwrap();
    let message = expect_error(res, StatusCode::FORBIDDEN, "mirror-policy-denied").await;
    assert!(message.contains(reason), "{message}");
    let res = mirror
        .get("/alice/m/resolve/main/w.safetensors", None)
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "mirror-policy-denied").await;
    stock_client_is_refused(&mirror, "alice/m", "w.safetensors", reason).await;
    assert_eq!(
        audited("mirror.refuse").await,
        1,
        "decided once, audited once"
    );

    // Without a policy of its own, acme's defaults allow MIT again.
    let res = mirror
        .request(
            reqwest::Method::DELETE,
            "/api/v1/orgs/acme/license-policy",
            Some(&owner),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = mirror
        .get("/alice/m/resolve/main/w.safetensors", None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), weights.as_slice());
    assert_eq!(audited("mirror.admit").await, 1);
}

/// Hub admins mirror ahead of time over HTTP, and list what is mirrored; nobody else may.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn admins_mirror_ahead_of_time_over_http(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "m", "public").await;
    upstream
        .commit_files(
            &alice,
            "alice/m",
            &[
                ("README.md", b"---\nlicense: mit\n---\n# m\n"),
                ("w.bin", b"weights"),
            ],
        )
        .await;
    let mirror = mirror_of(pool.clone(), &upstream, None).await;
    let bob = mirror.create_user("bob").await;
    let ask = |token: Option<String>, body: serde_json::Value| {
        let mirror = &mirror;
        async move {
            mirror
                .post_json("/api/v1/admin/mirror", token.as_deref(), &body)
                .await
        }
    };
    let admin = Some(mirror.admin_token.clone());
    let res = ask(Some(bob.clone()), json!({"repo": "alice/m"})).await;
    expect_error(res, StatusCode::FORBIDDEN, "admin-required").await;
    assert_eq!(
        upstream_resolve_gets(&upstream).await,
        0,
        "nothing was fetched for bob"
    );

    let body = expect_status(
        ask(
            admin.clone(),
            json!({"repo": "alice/m", "revision": "main"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let commit = body["commit"].as_str().unwrap().to_string();
    assert_eq!(body["mirrored"], true);
    let res = mirror.get("/alice/m/resolve/main/w.bin", Some(&bob)).await;
    assert_eq!(res.headers()["x-repo-commit"], commit.as_str());
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"weights");
    // Asked again, it is already here.
    let fetched = upstream_resolve_gets(&upstream).await;
    let again = expect_status(
        ask(admin.clone(), json!({"repo": "alice/m"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["commit"], commit.as_str());
    assert_eq!(upstream_resolve_gets(&upstream).await, fetched);

    let listed = expect_status(
        mirror.get("/api/v1/admin/mirror", admin.as_deref()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["repos"][0]["repo"], "alice/m", "{listed}");
    assert_eq!(listed["repos"][0]["upstream"], upstream.base.as_str());
    assert_eq!(listed["repos"][0]["commits"], 1);
    let res = mirror.get("/api/v1/admin/mirror", Some(&bob)).await;
    expect_error(res, StatusCode::FORBIDDEN, "admin-required").await;

    let res = ask(admin.clone(), json!({"repo": "alice/nothing"})).await;
    let message = expect_error(res, StatusCode::NOT_FOUND, "revision-not-found").await;
    assert!(
        message.contains("the upstream has no `alice/nothing`"),
        "{message}"
    );
    for bad in ["alice", "alice/m?expand=1", "../m"] {
        let res = ask(admin.clone(), json!({"repo": bad})).await;
        expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-name").await;
    }
    let plain = kaiyuan_tests::spawn_app(own_database(&pool).await).await;
    let res = plain
        .post_json(
            "/api/v1/admin/mirror",
            Some(&plain.admin_token),
            &json!({"repo": "alice/m"}),
        )
        .await;
    expect_error(res, StatusCode::CONFLICT, "mirror-not-configured").await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_client_that_cannot_wait_is_told_to_retry(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "big", "public").await;
    let weights = noise(20 << 20, 5);
    upstream
        .commit_files(&alice, "alice/big", &[("model.bin", &weights)])
        .await;
    let base = upstream.base.clone();
    let mirror = spawn_app_with(pool, Backend::Local, move |s| {
        s.mirror.upstream = Some(base);
        s.mirror.wait_secs = 0;
    })
    .await;
    // The stock client retries a 503 after `Retry-After` (its metadata request does): the same
    // run gets the bytes once the fetch is done.
    stock_client_downloads(&mirror, "alice/big", "model.bin", "main", &weights).await;
    let metrics = mirror.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("resolve") && l.contains("status=\"503\"")),
        "the client was told to wait at least once:\n{metrics}"
    );
    // The same over plain HTTP, for another repository.
    let other = noise(20 << 20, 6);
    upstream
        .create_repo(&alice, "alice", "big2", "public")
        .await;
    upstream
        .commit_files(&alice, "alice/big2", &[("model.bin", &other)])
        .await;
    let res = mirror.get("/alice/big2/resolve/main/model.bin", None).await;
    assert_eq!(res.headers()["retry-after"], "5");
    let message = expect_error(res, StatusCode::SERVICE_UNAVAILABLE, "mirror-in-progress").await;
    assert!(message.contains("being mirrored and checked"), "{message}");
    // The fetch went on without the client; a later request gets the bytes.
    let mut served = None;
    for _ in 0..100 {
        let res = mirror.get("/alice/big2/resolve/main/model.bin", None).await;
        if res.status() == StatusCode::OK {
            served = Some(res.bytes().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        served.expect("served in the end").as_ref(),
        other.as_slice()
    );
    // The admin API says 202 while its fetch goes on, then 200 with the commit.
    upstream
        .create_repo(&alice, "alice", "big3", "public")
        .await;
    upstream
        .commit_files(&alice, "alice/big3", &[("model.bin", &noise(20 << 20, 7))])
        .await;
    let wanted = json!({"repo": "alice/big3"});
    let prefetch = || mirror.post_json("/api/v1/admin/mirror", Some(&mirror.admin_token), &wanted);
    let started = expect_status(prefetch().await, StatusCode::ACCEPTED).await;
    assert_eq!(started["mirrored"], false, "{started}");
    let mut commit = None;
    for _ in 0..100 {
        let res = prefetch().await;
        if res.status() == StatusCode::OK {
            commit = Some(expect_status(res, StatusCode::OK).await["commit"].clone());
            break;
        }
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        commit.expect("mirrored in the end").as_str().unwrap().len(),
        40
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_storage_budget_evicts_the_least_recently_used(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    let mut weights = Vec::new();
    for (i, name) in ["pinned", "a", "b"].iter().enumerate() {
        upstream.create_repo(&alice, "alice", name, "public").await;
        let bytes = noise(3 << 20, 10 + i as u64);
        upstream
            .commit_files(&alice, &format!("alice/{name}"), &[("w.bin", &bytes)])
            .await;
        weights.push(bytes);
    }
    let base = upstream.base.clone();
    let mirror = spawn_app_with(pool.clone(), Backend::Local, move |s| {
        s.mirror.upstream = Some(base);
        s.mirror.budget_bytes = 7 << 20;
        s.mirror.pinned = vec!["alice/pinned".into()];
    })
    .await;
    let read = |name: &'static str| {
        let mirror = &mirror;
        async move {
            let res = mirror
                .get(&format!("/alice/{name}/resolve/main/w.bin"), None)
                .await;
            assert_eq!(res.status(), StatusCode::OK, "{name}");
            res.bytes().await.unwrap()
        }
    };
    let held = |name: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM commit_files f JOIN repositories r ON r.id = f.repository_id WHERE r.name = $1",
            )
            .bind(name)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    read("pinned").await;
    read("a").await;
    assert!(held("pinned").await > 0 && held("a").await > 0, "6 MiB fit");
    read("b").await;
    // 9 MiB > 7 MiB: the least recently read unpinned repository goes.
    assert_eq!(held("a").await, 0, "alice/a was evicted");
    assert!(held("pinned").await > 0 && held("b").await > 0);
    // Its bytes are collected next; read again, it comes back (and alice/b goes in turn).
    let report = kaiyuan_hub::gc::collect(&pool, &mirror.store, &mirror.state.settings.gc)
        .await
        .unwrap();
    assert_eq!(report.blobs_removed, 1, "{report:?}");
    assert_eq!(read("a").await.as_ref(), weights[1].as_slice());
    assert_eq!(held("b").await, 0, "alice/b was evicted in turn");
    assert!(held("pinned").await > 0, "pinned repositories stay");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_gated_upstream_model_is_fetched_only_for_users_let_through_here(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream
        .create_repo(&alice, "alice", "llama", "public")
        .await;
    upstream
        .commit_files(
            &alice,
            "alice/llama",
            &[
                ("README.md", b"---\nlicense: mit\n---\n# gated\n"),
                ("w.bin", b"gated weights"),
            ],
        )
        .await;
    gate(&upstream, &alice, "alice/llama").await;
    // The organisation's upstream identity was let through the upstream's gate.
    let bot = upstream.create_user("acme-bot").await;
    let res = upstream
        .post_json(
            "/api/v1/repos/alice/llama/access-request",
            Some(&bot),
            &json!({}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let mirror = mirror_of(pool.clone(), &upstream, Some(&bot)).await;
    let carol = mirror.create_user("carol").await;
    let dave = mirror.create_user("dave").await;

    // Nobody was let through here yet: refused with the way in, and nothing is fetched.
    let res = mirror.get("/alice/llama/resolve/main/w.bin", None).await;
    assert_eq!(res.headers()["x-error-code"], "GatedRepo");
    expect_error(res, StatusCode::UNAUTHORIZED, "gated").await;
    let res = mirror
        .get("/alice/llama/resolve/main/w.bin", Some(&carol))
        .await;
    let message = expect_error(res, StatusCode::FORBIDDEN, "gated").await;
    assert!(
        message.contains("/api/v1/repos/alice/llama/access-request"),
        "{message}"
    );
    let fetched: i64 = sqlx::query_scalar("SELECT count(*) FROM mirrored_commits")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        fetched, 0,
        "no upstream file is fetched for a caller refused here"
    );
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs WHERE sha256 = $1")
        .bind(Sha256::digest(b"gated weights").to_vec())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(held, 0);

    // The local repository is gated like the upstream; carol asks for access and is let in.
    let info = mirror.get("/api/v1/repos/alice/llama", Some(&carol)).await;
    assert_eq!(expect_status(info, StatusCode::OK).await["gated"], "auto");
    let res = mirror
        .post_json(
            "/api/v1/repos/alice/llama/access-request",
            Some(&carol),
            &json!({}),
        )
        .await;
    assert_eq!(
        expect_status(res, StatusCode::OK).await["status"],
        "accepted"
    );
    let res = mirror
        .get("/alice/llama/resolve/main/w.bin", Some(&carol))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"gated weights");

    // The fetch is attributed to carol; dave, not let through, still gets nothing.
    let actor: Option<String> = sqlx::query_scalar(
        "SELECT n.name FROM audit_events a JOIN namespaces n ON n.id = a.actor_id
         WHERE a.action = 'mirror.fetch'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(actor.as_deref(), Some("carol"));
    let res = mirror
        .get("/alice/llama/resolve/main/w.bin", Some(&dave))
        .await;
    expect_error(res, StatusCode::FORBIDDEN, "gated").await;
}

/// A TCP proxy to `upstream` that closes each connection once it has passed `cut_after` bytes
/// towards the client: an upstream that breaks off in the middle of a file.
async fn cutting_proxy(upstream: &str, cut_after: u64) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = upstream.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let requests = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut passed = 0u64;
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(n) = server_read.read(&mut buffer).await {
                    if n == 0 || passed >= cut_after {
                        break;
                    }
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                    passed += n as u64;
                }
                // Both directions dropped: the client sees the connection close mid-body.
                requests.abort();
            });
        }
    });
    format!("http://{address}")
}

/// A revision of many small files (tokenizers, configurations, variants) from a distant
/// upstream waits for their round trips, not their bytes: they are asked several at a time.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_small_files_of_a_distant_upstream_are_fetched_several_at_once(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    upstream
        .create_repo(&alice, "alice", "many", "public")
        .await;
    let files: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| {
            (
                format!("configs/{i:02}.json"),
                format!("{{\"n\": {i}}}").into_bytes(),
            )
        })
        .collect();
    let listed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
        .collect();
    upstream.commit_files(&alice, "alice/many", &listed).await;
    // A round trip of 250 ms: 24 requests one after another would take 6 s at the least.
    let one_way = std::time::Duration::from_millis(125);
    let limits = kaiyuan_tests::link::Limits {
        one_way,
        ..Default::default()
    };
    let far = kaiyuan_tests::link::start(&upstream.base, limits).await;
    let mirror = patient_mirror_of(&pool, &far).await;
    let started = std::time::Instant::now();
    let info = expect_status(
        mirror.get("/api/models/alice/many", None).await,
        StatusCode::OK,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        info["siblings"].as_array().unwrap().len(),
        files.len(),
        "{info}"
    );
    assert!(
        took < std::time::Duration::from_millis(4500),
        "the fetch took {took:?}"
    );
    for (path, bytes) in &files {
        let res = mirror
            .get(&format!("/alice/many/resolve/main/{path}"), None)
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(
            res.bytes().await.unwrap().as_ref(),
            bytes.as_slice(),
            "{path}"
        );
    }
}

/// An upstream holding `alice/cut` with a file of 8 MiB outside Xet, `model.safetensors`, and a
/// mirror reading it through a [`cutting_proxy`]; and alice's token and the file's bytes.
async fn mirror_through_cuts(pool: &PgPool, cut_after: u64) -> (TestApp, TestApp, String, Vec<u8>) {
    let upstream = upstream_app(pool).await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "cut", "public").await;
    let weights = noise(8 << 20, 8);
    upstream
        .commit_files(&alice, "alice/cut", &[("model.safetensors", &weights)])
        .await;
    let proxy = cutting_proxy(&upstream.base, cut_after).await;
    let mirror = spawn_app_with(pool.clone(), Backend::Local, move |s| {
        s.mirror.upstream = Some(proxy);
        s.mirror.timeout_secs = 5;
    })
    .await;
    (upstream, mirror, alice, weights)
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn an_upstream_that_breaks_off_mid_file_leaves_nothing(pool: PgPool) {
    // Every connection breaks off after 1 MiB: the file needs more tries than a fetch makes.
    let (upstream, mirror, alice, weights) = mirror_through_cuts(&pool, 1 << 20).await;
    let res = mirror
        .get("/alice/cut/resolve/main/model.safetensors", None)
        .await;
    let message = expect_error(res, StatusCode::BAD_GATEWAY, "upstream-failed").await;
    assert!(
        message.contains("broke off") && message.contains("nothing was kept"),
        "{message}"
    );
    // Nothing of it is visible or kept: no repository, no blob, no Xet file; the xorb being
    // written was aborted and no staging object is left.
    let (repos, blobs, files): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM repositories WHERE name = 'cut'),
                (SELECT count(*) FROM blobs WHERE encode(sha256, 'hex') = $1),
                (SELECT count(*) FROM xet_files)",
    )
    .bind(sha(&weights))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((repos, blobs, files), (0, 0, 0));
    let left = objects_once_settled(&mirror, &["/xorbs/", "/staging/", "/blobs/"], 0).await;
    assert!(left.is_empty(), "{left:?}");
    let res = mirror.get("/api/models/alice/cut", None).await;
    assert_ne!(res.status(), StatusCode::OK);

    // The same through the upstream's CAS: its ranges are read in pieces, on several
    // connections, and each connection breaks off. (Over 10 MB: the client sends it through
    // Xet, not inline.)
    upstream
        .create_repo(&alice, "alice", "cutx", "public")
        .await;
    let chunked = noise(12 << 20, 9);
    upload_with_xet(&upstream, &alice, "alice/cutx", &[("w.bin", &chunked)]).await;
    let res = mirror.get("/alice/cutx/resolve/main/w.bin", None).await;
    let message = expect_error(res, StatusCode::BAD_GATEWAY, "upstream-failed").await;
    assert!(
        message.contains("broke off") && message.contains("nothing was kept"),
        "{message}"
    );
    assert!(route_requests(&upstream, "GET", "/cas/v1/fetch/{xorb}").await >= 1);
    let (repos, files): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM repositories WHERE name = 'cutx'),
                (SELECT count(*) FROM xet_files)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((repos, files), (0, 0));
    let left = objects_once_settled(&mirror, &["/xorbs/", "/staging/", "/blobs/"], 0).await;
    assert!(left.is_empty(), "{left:?}");
}

/// A download through resolve that breaks off is read on from where it stopped, with a range
/// request, as the stock client does: a file of 8 MiB arrives whole over connections that each
/// carry 3 MiB, and is checked whole against the upstream's digest.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_download_that_breaks_off_is_read_on_from_where_it_stopped(pool: PgPool) {
    let (upstream, mirror, _, weights) = mirror_through_cuts(&pool, 3 << 20).await;
    let res = mirror
        .get("/alice/cut/resolve/main/model.safetensors", None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), weights.as_slice());
    // Three reads of the file upstream (3 + 3 + 2 MiB), not one per try of the whole.
    assert_eq!(upstream_resolve_gets(&upstream).await, 3);
}

/// A mirror of the upstream at `base` on a slow link: reads wait up to 30 s, clients a minute.
async fn patient_mirror_of(pool: &PgPool, base: &str) -> TestApp {
    patient_mirror_with(pool, base, |_| {}).await
}

/// The same, configured further by `configure`.
async fn patient_mirror_with(
    pool: &PgPool,
    base: &str,
    configure: impl FnOnce(&mut kaiyuan_hub::config::Settings) + Send + 'static,
) -> TestApp {
    let base = base.to_string();
    spawn_app_with(pool.clone(), Backend::Local, move |s| {
        s.mirror.upstream = Some(base);
        s.mirror.timeout_secs = 30;
        s.mirror.wait_secs = 60;
        configure(s);
    })
    .await
}

/// Fetches of two models at once share one budget of pieces: the upstream never has more piece
/// requests of the mirror's open than `mirror.connections`, and both fetches finish.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn fetches_at_once_share_one_budget_of_pieces(pool: PgPool) {
    let first = noise(24 << 20, 85);
    let second = noise(24 << 20, 86);
    let (upstream, alice) = upstream_with_xet_file(&pool, &first).await;
    upstream.create_repo(&alice, "alice", "n", "public").await;
    upload_with_xet(&upstream, &alice, "alice/n", &[("w.bin", &second)]).await;
    let (paced, pieces) = super::mirror_hostile::paced_proxy(&upstream.base, 8 << 20).await;
    let mirror = patient_mirror_with(&pool, &paced, |s| s.mirror.connections = 3).await;
    let (a, b) = tokio::join!(
        mirror.get("/alice/m/resolve/main/w.bin", None),
        mirror.get("/alice/n/resolve/main/w.bin", None),
    );
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    assert!(a.bytes().await.unwrap().as_ref() == first.as_slice());
    assert!(b.bytes().await.unwrap().as_ref() == second.as_slice());
    // Without the shared budget each fetch would read three at once.
    let at_once = pieces.most();
    assert_eq!(
        at_once, 3,
        "the upstream sent {at_once} pieces at once at most"
    );
}

/// A distant upstream gives each connection a rate of its own, so the mirror reads a file's
/// xorb ranges in pieces on several connections at once, as the stock client does; the pieces
/// still make the file, byte for byte.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_distant_upstream_is_read_on_several_connections_at_once(pool: PgPool) {
    let weights = noise(40 << 20, 81);
    let (upstream, _) = upstream_with_xet_file(&pool, &weights).await;
    let relay = kaiyuan_tests::slow_relay(&upstream.base, 32 << 20).await;
    let mirror = patient_mirror_of(&pool, &relay.base).await;
    let res = mirror.get("/alice/m/resolve/main/w.bin", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().as_ref() == weights.as_slice());
    let at_once = relay.most_sending_at_once();
    assert!(
        at_once >= 3,
        "the upstream sent on {at_once} connections at once at most"
    );
}

/// Signed fetch URLs expire (the public hub's within the hour), and a fetch of a large file on a
/// slow link outlasts them: the mirror asks for the file's reconstruction again, with a fresh
/// read token, and reads on with the new URLs. Here they last one or two seconds, and the last
/// four of ten pieces start after two.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_fetch_that_outlasts_its_signed_urls_has_them_signed_again(pool: PgPool) {
    let weights = noise(40 << 20, 84);
    let short_lived = |s: &mut kaiyuan_hub::config::Settings| s.xet.fetch_url_secs = 1;
    let (upstream, _) = upstream_with_xet_file_configured(&pool, &weights, short_lived).await;
    let relay = kaiyuan_tests::slow_relay(&upstream.base, 2 << 20).await;
    // Six of the ten pieces at once: the last four start after the URLs expired.
    let mirror = patient_mirror_with(&pool, &relay.base, |s| s.mirror.connections = 6).await;
    let res = mirror.get("/alice/m/resolve/main/w.bin", None).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    assert!(res.bytes().await.unwrap().as_ref() == weights.as_slice());
    let reconstructions =
        route_requests(&upstream, "GET", "/cas/v1/reconstructions/{file_id}").await;
    assert!(reconstructions >= 2, "{reconstructions} reconstructions");
}

/// A fetch that fails while it records what it fetched (here: the database refuses the mirror's
/// record, as a crash or a lost connection would end the transaction) leaves no repository
/// behind, gated or not: a repository left without its mirror record would be served as an
/// empty local one for good, and never fetched again.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_fetch_that_fails_at_its_record_leaves_nothing_and_is_fetched_again(pool: PgPool) {
    let upstream = upstream_app(&pool).await;
    let alice = upstream.create_user("alice").await;
    let card = b"---\nlicense: mit\n---\n# m\n".as_slice();
    let weights = noise(300_000, 61);
    for name in ["open", "gated"] {
        upstream.create_repo(&alice, "alice", name, "public").await;
        upstream
            .commit_files(
                &alice,
                &format!("alice/{name}"),
                &[("README.md", card), ("w.bin", &weights)],
            )
            .await;
    }
    gate(&upstream, &alice, "alice/gated").await;
    let mirror = mirror_of(pool.clone(), &upstream, Some(&alice)).await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_mirror_record() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'injected: the mirror record is refused'; END $$;
         CREATE TRIGGER refuse_mirror_record BEFORE INSERT ON mirrored_repos
           FOR EACH ROW EXECUTE FUNCTION refuse_mirror_record();",
    )
    .execute(&pool)
    .await
    .unwrap();
    for name in ["open", "gated"] {
        let res = mirror
            .get(&format!("/alice/{name}/resolve/main/w.bin"), None)
            .await;
        expect_status(res, StatusCode::INTERNAL_SERVER_ERROR).await;
    }
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM repositories WHERE name IN ('open', 'gated')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(left, 0, "a failed fetch left a repository behind");

    sqlx::raw_sql("DROP TRIGGER refuse_mirror_record ON mirrored_repos")
        .execute(&pool)
        .await
        .unwrap();
    let res = mirror.get("/alice/open/resolve/main/w.bin", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().as_ref() == weights.as_slice());
    // The gated one is now mirrored behind its gate, as if the first try had never happened.
    let res = mirror.get("/alice/gated/resolve/main/w.bin", None).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "gated").await;
}

/// An internal upstream on S3 that redirects downloads to presigned URLs: the mirror follows
/// them only when the configuration names the S3 server (a non-public host), and then without
/// the organisation's token, which S3 would refuse beside the URL's signature.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn an_upstream_on_s3_is_followed_to_the_s3_server_the_configuration_names(pool: PgPool) {
    let upstream = upstream_app_with(&pool, Backend::S3, |s| {
        s.downloads.presigned_redirects = true;
    })
    .await;
    let alice = upstream.create_user("alice").await;
    upstream.create_repo(&alice, "alice", "m", "private").await;
    let weights = noise(200_000, 51);
    upstream
        .commit_files(&alice, "alice/m", &[("w.bin", &weights)])
        .await;
    let s3 = std::env::var("KAIYUAN_TEST_S3_ENDPOINT").expect("the test S3 server");
    let s3_host = s3.trim_start_matches("http://").to_string();
    let mirror_with = |pool: PgPool, internal_hosts: Vec<String>| {
        let (base, token) = (upstream.base.clone(), alice.clone());
        spawn_app_with(pool, Backend::Local, move |s| {
            s.mirror.upstream = Some(base);
            s.mirror.upstream_token = Some(token);
            s.mirror.timeout_secs = 5;
            s.mirror.internal_hosts = internal_hosts;
        })
    };

    let closed = mirror_with(pool.clone(), Vec::new()).await;
    let message =
        refused_leaving_no_repository(&closed, &pool, "/alice/m/resolve/main/w.bin").await;
    assert!(
        message.contains(&format!("redirected to {s3}"))
            && message.contains("not a public address"),
        "{message}"
    );

    let open = mirror_with(own_database(&pool).await, vec![s3_host]).await;
    let res = open
        .get("/alice/m/resolve/main/w.bin", Some(&open.admin_token))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().as_ref() == weights.as_slice());
    let resolve = "/{namespace}/{name}/resolve/{revision}/{path:.*}";
    let redirected = requests_labelled(&upstream, &[("route", resolve), ("status", "302")]).await;
    assert!(
        redirected >= 2,
        "both mirrors were sent to S3: {redirected}"
    );
}

/// A new version of a file upstream, uploaded through Xet, shares most chunks with the old one;
/// the mirror holds the old one's xorb under its upstream hash, so it fetches only the rest.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_new_version_fetches_only_the_chunks_it_does_not_share(pool: PgPool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let old = noise(12 << 20, 61);
    let (upstream, alice) = upstream_with_xet_file(&pool, &old).await;
    // Bytes of xorb ranges the upstream's CAS sent, counted on their way to the mirror.
    let fetched = Arc::new(AtomicU64::new(0));
    let counted = fetched.clone();
    let counting: super::mirror_hostile::Tamper = Arc::new(move |_, target, answer| {
        if target.starts_with("/cas/v1/fetch/") {
            counted.fetch_add(answer.body.len() as u64, Ordering::SeqCst);
        }
    });
    let proxy = super::mirror_hostile::rewriting_proxy(&upstream.base, counting).await;
    let mirror = spawn_app_with(pool.clone(), Backend::Local, move |s| {
        s.mirror.upstream = Some(proxy);
        s.mirror.timeout_secs = 5;
    })
    .await;
    let res = mirror.get("/alice/m/resolve/main/w.bin", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().as_ref() == old.as_slice());
    let first = fetched.load(Ordering::SeqCst);
    assert!(
        first >= old.len() as u64,
        "the first version came from the CAS: {first}"
    );

    let mut new = old.clone();
    new[6 << 20..(6 << 20) + 1024].copy_from_slice(&noise(1024, 62));
    upload_with_xet(&upstream, &alice, "alice/m", &[("w.bin", &new)]).await;
    let head = expect_status(
        upstream
            .get("/api/models/alice/m/revision/main", None)
            .await,
        StatusCode::OK,
    )
    .await;
    let commit = head["sha"].as_str().unwrap();
    let path = format!("/alice/m/resolve/{commit}/w.bin");
    let res = mirror.get(&path, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().as_ref() == new.as_slice());
    let second = fetched.load(Ordering::SeqCst) - first;
    assert!(
        second * 8 < first,
        "the new version fetched {second} bytes, the first {first}"
    );
    let xet_hash = |app: &TestApp| {
        let request = app.request(reqwest::Method::HEAD, &path, None);
        async move {
            let head = request.send().await.unwrap();
            head.headers()["x-xet-hash"].to_str().unwrap().to_string()
        }
    };
    assert_eq!(xet_hash(&mirror).await, xet_hash(&upstream).await);
}
