//! Notifications: owners and watchers get events in the app, namespace webhooks get signed
//! deliveries that are retried and logged; report events never reach watchers.

use std::sync::{Arc, Mutex};

use kaiyuan_tests::{Backend, expect_error, expect_status, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A webhook receiver on a local port: records each request's head and body, answers 500 to
/// the first request and 200 afterwards.
async fn receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen: Received = Arc::default();
    let store = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < head_end + length {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let first = {
                let mut seen = store.lock().unwrap();
                seen.push((head, buf[head_end..].to_vec()));
                seen.len() == 1
            };
            let status = if first {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = socket
                .write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    (url, seen)
}

/// A report on `owner/model`'s `w.bin` by the reviewer holding `token`: an event that reaches
/// the owner and the namespace's webhooks.
async fn file_report(app: &kaiyuan_tests::TestApp, token: &str) -> Value {
    expect_status(
        app.post_json(
            "/api/v1/repos/owner/model/reports",
            Some(token),
            &json!({"category": "backdoor", "description": "a trigger phrase", "path": "w.bin"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await
}

/// The newest entry of the delivery log of `hook`, a webhook of the namespace `owner`.
async fn newest_delivery(app: &kaiyuan_tests::TestApp, token: &str, hook: &Value) -> Value {
    let log = expect_status(
        app.get(
            &format!("/api/v1/orgs/owner/webhooks/{}/deliveries", hook["id"]),
            Some(token),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    log["deliveries"][0].clone()
}

async fn notifications(app: &kaiyuan_tests::TestApp, token: &str) -> Vec<Value> {
    expect_status(
        app.get("/api/v1/notifications", Some(token)).await,
        StatusCode::OK,
    )
    .await["notifications"]
        .as_array()
        .unwrap()
        .clone()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn owners_watchers_and_webhooks_get_the_events_they_may_see(pool: PgPool) {
    // The receiver is on loopback, which webhooks reach only where the configuration says.
    let app = spawn_app_with(pool.clone(), Backend::Local, |s| {
        s.webhooks.internal_hosts = vec!["127.0.0.1".into()];
    })
    .await;
    let owner = app.create_user("owner").await;
    let watcher = app.create_user("watcher").await;
    let researcher = app.create_user("researcher").await;
    app.make_reviewer("researcher").await;
    app.create_repo(&owner, "owner", "model", "public").await;
    app.commit_files(&owner, "owner/model", &[("w.bin", b"suspicious bytes")])
        .await;
    let watch = app
        .request(
            Method::PUT,
            "/api/v1/repos/owner/model/watch",
            Some(&watcher),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), StatusCode::NO_CONTENT);

    let (url, received) = receiver().await;
    expect_error(
        app.post_json(
            "/api/v1/orgs/owner/webhooks",
            Some(&owner),
            &json!({"url": "ftp://x/y"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-url",
    )
    .await;
    expect_error(
        app.post_json(
            "/api/v1/orgs/owner/webhooks",
            Some(&watcher),
            &json!({"url": url}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "namespace-not-found",
    )
    .await;
    let hook = expect_status(
        app.post_json(
            "/api/v1/orgs/owner/webhooks",
            Some(&owner),
            &json!({"url": url, "secret": "a-long-webhook-secret"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let listed = expect_status(
        app.get("/api/v1/orgs/owner/webhooks", Some(&owner)).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        listed["webhooks"][0].get("secret").is_none(),
        "the secret is shown once"
    );

    // A report reaches the owner and the webhook, never a watcher.
    let report = file_report(&app, &researcher).await;
    let id = report["id"].as_i64().unwrap();
    let mine = notifications(&app, &owner).await;
    assert_eq!(mine[0]["kind"], "report.filed");
    assert_eq!(mine[0]["payload"]["data"]["report"], id);
    assert!(
        notifications(&app, &watcher).await.is_empty(),
        "a report's existence leaked to a watcher"
    );

    // Delivery: the first attempt fails (500) and is retried; both are logged; the signature
    // is HMAC-SHA256 of the body with the webhook's secret.
    app.run_jobs().await;
    sqlx::query("UPDATE jobs SET run_after = now() WHERE state = 'queued'")
        .execute(&pool)
        .await
        .unwrap();
    app.run_jobs().await;
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one failed attempt, one retry");
    let (head, body) = &got[1];
    assert!(head.starts_with("post /hook"));
    let signature = head
        .lines()
        .find_map(|l| l.strip_prefix("x-kaiyuan-signature-256:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        signature,
        format!(
            "sha256={}",
            kaiyuan_hub::hmac::hmac_sha256_hex(b"a-long-webhook-secret", body)
        )
    );
    assert!(head.contains("x-kaiyuan-event: report.filed"));
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["repository"], "owner/model");
    let delivery = newest_delivery(&app, &owner, &hook).await;
    assert_eq!(delivery["state"], "delivered");
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["response_status"], 200);

    // A published advisory reaches watchers too; notifications can be marked read.
    expect_status(
        app.post_json(
            &format!("/api/v1/reports/{id}/triage"),
            Some(&researcher),
            &json!({"action": "confirm"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let advisory = expect_status(app.post_json(&format!("/api/v1/reports/{id}/advisory"), Some(&researcher), &json!({"severity": "high", "summary": "Backdoor", "details": "A trigger phrase.", "remediation": "Remove w.bin."})).await, StatusCode::CREATED).await;
    expect_status(
        app.post_json(
            &format!(
                "/api/v1/advisories/{}/publish",
                advisory["id"].as_str().unwrap()
            ),
            Some(&researcher),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let seen = notifications(&app, &watcher).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["kind"], "advisory.published");
    let nid = seen[0]["id"].as_i64().unwrap();
    let res = app
        .request(
            Method::POST,
            &format!("/api/v1/notifications/{nid}/read"),
            Some(&watcher),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let unread = expect_status(
        app.get("/api/v1/notifications?unread=true", Some(&watcher))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unread["notifications"], json!([]));
    expect_error(
        app.request(
            Method::POST,
            &format!("/api/v1/notifications/{nid}/read"),
            Some(&owner),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::NOT_FOUND,
        "notification-not-found",
    )
    .await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn webhooks_deliver_only_to_public_addresses_or_configured_hosts(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let owner = app.create_user("owner").await;
    let researcher = app.create_user("researcher").await;
    app.make_reviewer("researcher").await;
    app.create_repo(&owner, "owner", "model", "public").await;
    app.commit_files(&owner, "owner/model", &[("w.bin", b"bytes")])
        .await;
    let (url, received) = receiver().await;
    let port = url::Url::parse(&url).unwrap().port().unwrap();
    // The hub's own services, the machine's loopback and the cloud metadata service: an
    // organisation admin must not be able to probe them through the delivery log.
    for internal in [
        url.clone(),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
    ] {
        let res = app
            .post_json(
                "/api/v1/orgs/owner/webhooks",
                Some(&owner),
                &json!({"url": internal}),
            )
            .await;
        let message = expect_error(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-url").await;
        assert!(
            message.contains("not a public address"),
            "{internal}: {message}"
        );
    }
    // A name is checked where it resolves: the machine's own name, where it resolves to a
    // non-public address (it does on this project's machines), is accepted as a URL but
    // never delivered to.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let hostname = hostname.trim();
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host((hostname, 0))
        .await
        .map(Iterator::collect)
        .unwrap_or_default();
    if resolved.is_empty()
        || resolved
            .iter()
            .any(|a| kaiyuan_hub::outbound::is_public(a.ip()))
    {
        eprintln!("{hostname} resolves to {resolved:?}: the resolver's check is not exercised");
        return;
    }
    let hook = expect_status(
        app.post_json(
            "/api/v1/orgs/owner/webhooks",
            Some(&owner),
            &json!({"url": format!("http://{hostname}:{port}/hook")}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    file_report(&app, &researcher).await;
    app.run_jobs().await;
    assert!(
        received.lock().unwrap().is_empty(),
        "delivered to {hostname}"
    );
    let delivery = newest_delivery(&app, &owner, &hook).await;
    assert_eq!(delivery["state"], "failed", "{delivery}");
    assert_eq!(delivery["attempts"], 1, "a refusal is not retried");
    let error = delivery["last_error"].as_str().unwrap();
    assert!(error.contains("not a public address"), "{error}");
}
