//! What an outside probe found, each with the test that would have caught it: private data that
//! leaked outside status codes, read tokens that wrote, errors that were 500s, paths unsafe on
//! disk, and HTTP details (HEAD, 405, metrics labels).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kaiyuan_tests::{TestApp, expect_error, expect_status, sha256_hex, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

/// The error body and the headers a client can compare, with the request id left out.
async fn shape(res: reqwest::Response) -> (StatusCode, Vec<String>, Value) {
    let status = res.status();
    let mut headers: Vec<String> = res
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "x-request-id" | "date"))
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
        .collect();
    headers.sort();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_case_variant_of_a_private_name_answers_like_a_missing_repository(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let mallory = app.create_user("mallory").await;
    app.create_repo(&alice, "alice", "SecretMixed", "private")
        .await;
    for (existing, missing) in [
        (
            "/api/v1/repos/alice/secretmixed",
            "/api/v1/repos/alice/nosuchrepo1",
        ),
        (
            "/api/models/alice/SECRETMIXED",
            "/api/models/alice/NOSUCHREPO1",
        ),
        (
            "/alice/secretMIXED/resolve/main/README.md",
            "/alice/nosuchREPO1/resolve/main/README.md",
        ),
    ] {
        for token in [None, Some(mallory.as_str())] {
            let (s1, h1, b1) = shape(app.get(existing, token).await).await;
            let (s2, h2, b2) = shape(app.get(missing, token).await).await;
            assert_eq!(s1, StatusCode::NOT_FOUND, "{existing}");
            assert_eq!((s1, h1.len()), (s2, h2.len()), "{existing} vs {missing}");
            let text = b1.to_string();
            assert!(
                !text.contains("SecretMixed"),
                "the stored spelling leaks: {text}"
            );
            // Same message but for the name, which is the one asked for.
            let normalise = |b: &Value, asked: &str| {
                b.to_string()
                    .to_lowercase()
                    .replace(&asked.to_lowercase(), "NAME")
            };
            assert_eq!(normalise(&b1, "secretmixed"), normalise(&b2, "nosuchrepo1"));
        }
    }
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_public_log_seals_private_events_and_their_readers_open_them(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let mallory = app.create_user("mallory").await;
    app.create_repo(&alice, "alice", "deal", "private").await;
    let commit = app
        .commit_files(&alice, "alice/deal", &[("notes.txt", b"confidential")])
        .await;
    let commit_id = commit["id"].as_str().unwrap().to_string();
    expect_status(
        app.send_json(
            Method::PUT,
            "/api/v1/repos/alice/deal/branches/acquisition-of-bigco",
            Some(&alice),
            &json!({"target": "main"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    app.create_repo(&alice, "alice", "open", "public").await;
    app.commit_files(&alice, "alice/open", &[("a.txt", b"public")])
        .await;

    let log = expect_status(
        app.get("/api/v1/log/entries?start=0&end=1000", None).await,
        StatusCode::OK,
    )
    .await;
    let entries = log["entries"].as_array().unwrap();
    let text = serde_json::to_string(entries).unwrap();
    for secret in ["deal", "acquisition", &commit_id, "private:", "notes"] {
        assert!(!text.contains(secret), "the public log shows `{secret}`");
    }
    // Every body is base64 of what the event shows; decode them to be sure.
    for e in entries {
        let body =
            String::from_utf8(STANDARD.decode(e["body"].as_str().unwrap()).unwrap()).unwrap();
        assert!(
            !body.contains("deal") && !body.contains(&commit_id),
            "{body}"
        );
    }
    let sealed: Vec<&Value> = entries
        .iter()
        .filter(|e| e["event"]["kind"] == "sealed")
        .collect();
    assert!(sealed.len() >= 2, "the commit and the branch are sealed");
    assert!(
        entries
            .iter()
            .any(|e| e["event"]["repository"] == "alice/open"),
        "public events stay readable"
    );

    // Outsiders cannot open them; the owner can, and each opening matches its commitment.
    for token in [None, Some(mallory.as_str())] {
        expect_error(
            app.get("/api/v1/repos/alice/deal/log", token).await,
            StatusCode::NOT_FOUND,
            "repository-not-found",
        )
        .await;
    }
    let opened = expect_status(
        app.get("/api/v1/repos/alice/deal/log", Some(&alice)).await,
        StatusCode::OK,
    )
    .await;
    let opened = opened["entries"].as_array().unwrap();
    assert_eq!(opened.len(), sealed.len());
    assert!(opened.iter().any(|o| o["event"]["branch"] == "main"
        && o["event"]["commit"] == commit_id.as_str()
        && o["event"]["repository"] == "alice/deal"));
    assert!(
        opened
            .iter()
            .any(|o| o["event"]["ref"] == "acquisition-of-bigco")
    );
    for o in opened {
        let nonce = hex::decode(o["nonce"].as_str().unwrap()).unwrap();
        let body = STANDARD.decode(o["body"].as_str().unwrap()).unwrap();
        let mut preimage = nonce.clone();
        preimage.extend_from_slice(&body);
        let expected = format!("sha256:{}", sha256_hex(&preimage));
        let index = o["index"].as_i64().unwrap();
        let public = entries
            .iter()
            .find(|e| e["index"] == index)
            .expect("the sealed entry is in the public log");
        assert_eq!(public["event"]["commitment"], expected.as_str());
        assert_eq!(public["leaf_hash"], o["leaf_hash"]);
    }
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_published_advisory_names_only_the_locations_the_reader_may_see(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let reviewer = app.create_user("reviewer").await;
    let bob = app.create_user("bob").await;
    app.make_reviewer("reviewer").await;
    let evil = b"bad bytes that a reviewer flags".as_slice();
    app.create_repo(&alice, "alice", "hidden", "private").await;
    app.commit_files(&alice, "alice/hidden", &[("secret-weights.bin", evil)])
        .await;
    app.create_repo(&bob, "bob", "mirror", "public").await;
    app.commit_files(&bob, "bob/mirror", &[("copy.bin", evil)])
        .await;
    let report = app
        .report(&alice, "alice/hidden", Some("secret-weights.bin"))
        .await;
    let id = app.publish_advisory(&reviewer, report).await;
    for token in [None, Some(bob.as_str())] {
        for path in [
            "/api/v1/advisories".to_string(),
            format!("/api/v1/advisories/{id}"),
            format!("/api/v1/advisories/{id}/osv"),
        ] {
            let text = expect_status(app.get(&path, token).await, StatusCode::OK)
                .await
                .to_string();
            assert!(text.contains(&id), "{path}: {text}");
            assert!(
                !text.contains("alice/hidden") && !text.contains("secret-weights"),
                "{path} leaks the private location: {text}"
            );
        }
    }
    let owner_view = expect_status(
        app.get(&format!("/api/v1/advisories/{id}"), Some(&alice))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(owner_view.to_string().contains("alice/hidden"));
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn uploads_never_tell_that_another_repository_holds_the_bytes(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let mallory = app.create_user("mallory").await;
    app.create_repo(&alice, "alice", "hidden", "private").await;
    app.create_repo(&mallory, "mallory", "probe", "public")
        .await;
    let bytes = b"the private weights".to_vec();
    let first = expect_status(
        app.upload(&alice, "alice/hidden", bytes.clone(), None)
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(first["newly_stored"], true);
    let probe = expect_status(
        app.upload(&mallory, "mallory/probe", bytes.clone(), None)
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        probe["newly_stored"], true,
        "new to this repository, whatever the hub holds"
    );
    let again = expect_status(
        app.upload(&mallory, "mallory/probe", bytes, None).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(again["newly_stored"], false, "this repository has them now");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn read_tokens_change_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    app.commit_files(&alice, "alice/m", &[("a.txt", b"a")])
        .await;
    let report = expect_status(
        app.post_json(
            "/api/v1/repos/alice/m/reports",
            Some(&bob),
            &json!({"category": "other", "description": "x"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let report = report["id"].as_i64().unwrap();
    let read = app.read_token(&bob).await;
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/v1/repos/alice/m/reports".into(),
            Some(json!({"category": "other", "description": "x"})),
        ),
        (
            Method::POST,
            format!("/api/v1/reports/{report}/comments"),
            Some(json!({"body": "x"})),
        ),
        (
            Method::POST,
            format!("/api/v1/reports/{report}/attachments"),
            None,
        ),
        (Method::PUT, "/api/v1/repos/alice/m/watch".into(), None),
        (Method::DELETE, "/api/v1/repos/alice/m/watch".into(), None),
        (Method::POST, "/api/v1/notifications/1/read".into(), None),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({"name": "escalate", "scope": "write"})),
        ),
    ];
    for (method, path, body) in attempts {
        let req = app.request(method.clone(), &path, Some(&read));
        let req = match &body {
            Some(b) => req.json(b),
            None => req.body(vec![1u8; 1024]),
        };
        let res = req.send().await.unwrap();
        let message = expect_error(res, StatusCode::FORBIDDEN, "token-read-only").await;
        assert!(
            message.contains("write scope"),
            "{method} {path}: {message}"
        );
    }
    // Nothing of it happened.
    let thread = expect_status(
        app.get(&format!("/api/v1/reports/{report}"), Some(&bob))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(thread["comments"], json!([]));
    let tokens = expect_status(app.get("/api/v1/tokens", Some(&bob)).await, StatusCode::OK).await;
    assert_eq!(tokens.as_array().unwrap().len(), 2, "{tokens}");
    // Reads that travel as POST stay open to read tokens.
    expect_status(
        app.post_json("/api/v1/repos/alice/m/compliance", Some(&read), &json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn nul_characters_are_a_clear_400_never_a_500(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    for path in [
        "/api/v1/repos?q=a%00b",
        "/api/models?search=a%00",
        "/api/v1/repos/alice/m/tree/ma%00in",
        "/api/v1/repos/alice/m/commits?revision=a%00",
    ] {
        let res = app.get(path, None).await;
        assert!(res.status().is_client_error(), "{path}: {}", res.status());
        let body: Value = res.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
    expect_error(
        app.get("/api/v1/repos?q=a%00b", None).await,
        StatusCode::BAD_REQUEST,
        "invalid-text",
    )
    .await;
    let res = app.get("/?q=a%00", None).await;
    assert!(res.status().is_client_error(), "{}", res.status());
    // JSON strings with U+0000: a commit message, a description, a token name.
    expect_error(
        app.post_json(
            "/api/v1/repos/alice/m/commits/main",
            Some(&alice),
            &json!({"message": "a\u{0}b", "operations": [{"op": "put", "path": "x.txt", "content_base64": "eA=="}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid-text",
    )
    .await;
    expect_error(
        app.send_json(
            Method::PATCH,
            "/api/v1/repos/alice/m",
            Some(&alice),
            &json!({"description": "x\u{0}"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid-text",
    )
    .await;
    expect_error(
        app.post_json(
            "/api/v1/tokens",
            Some(&alice),
            &json!({"name": "t\u{0}", "scope": "read"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-token-name",
    )
    .await;
    // A README with a NUL byte is a file like any other; its card is stored without it.
    app.commit_files(
        &alice,
        "alice/m",
        &[("README.md", b"# Title\0 with a NUL\n")],
    )
    .await;
    let repo = expect_status(app.get("/api/v1/repos/alice/m", None).await, StatusCode::OK).await;
    let card = repo["card"].as_str().unwrap_or_default();
    assert!(!card.contains('\0'), "{repo}");
    let raw = app.get("/alice/m/resolve/main/README.md", None).await;
    assert_eq!(
        raw.bytes().await.unwrap().as_ref(),
        b"# Title\0 with a NUL\n"
    );
}

/// Found by Schemathesis: `start + 100` overflowed (a panic, answered 500).
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn log_ranges_at_the_edges_of_i64_are_a_400(pool: PgPool) {
    let app = spawn_app(pool).await;
    for query in [
        "start=9223372036854775806&end=-9223372036854775808",
        "start=9223372036854775807",
        "start=-9223372036854775808&end=9223372036854775807",
    ] {
        expect_error(
            app.get(&format!("/api/v1/log/entries?{query}"), None).await,
            StatusCode::BAD_REQUEST,
            "invalid-range",
        )
        .await;
    }
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn token_lifetimes_are_bounded(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    for days in [0u64, 3651, 2_932_896, 134_217_728, u32::MAX as u64] {
        let message = expect_error(
            app.post_json(
                "/api/v1/tokens",
                Some(&alice),
                &json!({"name": "t", "scope": "read", "expires_in_days": days}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-expiry",
        )
        .await;
        assert!(message.contains("3650"), "{message}");
    }
    let made = expect_status(
        app.post_json(
            "/api/v1/tokens",
            Some(&alice),
            &json!({"name": "t", "scope": "read", "expires_in_days": 3650}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let year: i32 = made["expires_at"].as_str().unwrap()[..4].parse().unwrap();
    assert!(year < 2100, "{made}");
    let list = expect_status(
        app.get("/api/v1/tokens", Some(&alice)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn head_and_wrong_methods_answer_as_http_says(pool: PgPool) {
    let app = spawn_app(pool).await;
    for path in [
        "/api/v1/repos",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.json",
    ] {
        let get = app.get(path, None).await;
        assert_eq!(get.status(), StatusCode::OK, "GET {path}");
        let length = get.bytes().await.unwrap().len();
        let head = app.request(Method::HEAD, path, None).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        let declared = head
            .headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap().to_string());
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has no body"
        );
        if let Some(declared) = declared
            && path != "/metrics"
        {
            assert_eq!(declared.parse::<usize>().unwrap(), length, "HEAD {path}");
        }
    }
    let res = app
        .request(Method::DELETE, "/api/v1/repos", Some(&app.admin_token))
        .send()
        .await
        .unwrap();
    let allow = res.headers()["allow"].to_str().unwrap().to_string();
    expect_error(res, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let res = app
        .request(
            Method::PUT,
            "/api/v1/repos/alice/m/commits",
            Some(&app.admin_token),
        )
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    // A path nothing documents stays a 404.
    expect_error(
        app.get("/api/v1/no-such-thing", None).await,
        StatusCode::NOT_FOUND,
        "route-not-found",
    )
    .await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn made_up_methods_do_not_grow_the_metrics(pool: PgPool) {
    let app = spawn_app(pool).await;
    for i in 0..50 {
        let method = Method::from_bytes(format!("PROBE{i}").as_bytes()).unwrap();
        app.request(method, "/api/v1/repos", None)
            .send()
            .await
            .unwrap();
    }
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(!metrics.contains("PROBE"), "{metrics}");
    let other: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("kaiyuan_http_requests_total{method=\"OTHER\""))
        .collect();
    assert_eq!(
        other.len(),
        1,
        "one series for every unknown method: {other:?}"
    );
    assert!(other[0].ends_with(" 50"), "{other:?}");
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn paths_unsafe_on_some_disk_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let long = "a".repeat(300);
    for path in [
        "CON",
        "models/nul.txt",
        "a:b",
        "trailing.",
        long.as_str(),
        "\u{202e}exe.txt",
        ".git/config",
        "x/.git/hooks/post-checkout",
    ] {
        let res = app
            .post_json(
                "/api/v1/repos/alice/m/commits/main",
                Some(&alice),
                &json!({"message": "m", "operations": [{"op": "put", "path": path, "content_base64": "eA=="}]}),
            )
            .await;
        let message = expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-path").await;
        assert!(
            message.contains("not a valid file path"),
            "{path:?}: {message}"
        );
    }
    assert_eq!(
        expect_status(
            app.get("/api/v1/repos/alice/m/tree/main", None).await,
            StatusCode::OK
        )
        .await
        .to_string()
        .matches("\"path\"")
        .count(),
        0,
        "nothing was committed"
    );
}

/// A hub whose database went away answers 503 everywhere, and `/readyz` says so fast.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_database_outage_is_503_everywhere(pool: PgPool) {
    let app: TestApp = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    app.state.db.close().await;
    let started = std::time::Instant::now();
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    for (method, path) in [
        (Method::GET, "/api/v1/repos"),
        (Method::GET, "/api/v1/repos/alice/m"),
        (Method::GET, "/alice/m/resolve/main/README.md"),
        (Method::GET, "/api/v1/log/checkpoint"),
    ] {
        let res = app
            .request(method, path, Some(&alice))
            .send()
            .await
            .unwrap();
        expect_error(res, StatusCode::SERVICE_UNAVAILABLE, "service-unavailable").await;
    }
    let res = app
        .post_json(
            "/api/v1/repos/alice/m/commits/main",
            Some(&alice),
            &json!({"message": "m", "operations": []}),
        )
        .await;
    expect_error(res, StatusCode::SERVICE_UNAVAILABLE, "service-unavailable").await;
}

/// Shared caches may keep only what anyone may read: a public file at a commit id is immutable;
/// a private one, or one behind gating or a licence to accept, is `private` whatever the revision.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn only_public_ungated_bytes_are_cacheable_by_shared_caches(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    for (name, visibility) in [("open", "public"), ("closed", "private")] {
        app.create_repo(&alice, "alice", name, visibility).await;
    }
    let open = app
        .commit_files(&alice, "alice/open", &[("w.bin", b"weights")])
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let closed = app
        .commit_files(&alice, "alice/closed", &[("w.bin", b"weights")])
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cache =
        |res: &reqwest::Response| res.headers()["cache-control"].to_str().unwrap().to_string();
    let res = app
        .get(&format!("/alice/open/resolve/{open}/w.bin"), None)
        .await;
    assert_eq!(cache(&res), "public, max-age=31536000, immutable");
    let res = app.get("/alice/open/resolve/main/w.bin", None).await;
    assert_eq!(cache(&res), "no-cache");
    let res = app
        .get(
            &format!("/alice/closed/resolve/{closed}/w.bin"),
            Some(&alice),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cache(&res), "private, no-cache");
    // Gated: members download, but the bytes stay out of shared caches.
    expect_status(
        app.send_json(
            Method::PATCH,
            "/api/v1/repos/alice/open",
            Some(&alice),
            &json!({"gated": "manual"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let res = app
        .get(&format!("/alice/open/resolve/{open}/w.bin"), Some(&alice))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cache(&res), "private, no-cache");
}
