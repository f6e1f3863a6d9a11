//! The web UI over plain HTTP: session cookies and their flags, CSRF on forms and on API calls
//! made with a session, security headers, sanitised cards, and the API's permissions on pages.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use kaiyuan_tests::{TestApp, expect_status, spawn_app};

/// Posts the sign-in form (fetched first, for its double-submit token) with `token`.
async fn sign_in_attempt(app: &TestApp, token: &str) -> reqwest::Response {
    let page = app.http.get(app.url("/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let pre = page.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let form_token = html
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    app.http
        .post(app.url("/sign-in"))
        .header(COOKIE, &pre)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form(&[("token", token), ("form_token", &form_token)]))
        .send()
        .await
        .unwrap()
}

/// Signs in through the form; returns the session cookie pair `kaiyuan_session=...` and the
/// full `Set-Cookie` header.
async fn sign_in(app: &TestApp, token: &str) -> (String, String) {
    let res = sign_in_attempt(app, token).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set = res.headers()[SET_COOKIE].to_str().unwrap().to_string();
    (set.split(';').next().unwrap().to_string(), set)
}

/// A page's HTML, with a session `cookie` or anonymously.
async fn page_html(app: &TestApp, path: &str, cookie: Option<&str>) -> String {
    let mut req = app.http.get(app.url(path));
    if let Some(cookie) = cookie {
        req = req.header(COOKIE, cookie);
    }
    req.send().await.unwrap().text().await.unwrap()
}

/// Posts an HTML form with the session `cookie`.
async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .header(COOKIE, cookie)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form(fields))
        .send()
        .await
        .unwrap()
}

/// An `application/x-www-form-urlencoded` body.
fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

fn csrf_of(html: &str) -> String {
    html.split("data-csrf=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

#[sqlx::test(migrations = "../migrations")]
async fn sessions_are_httponly_samesite_secure_and_bounded_by_their_token(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let (cookie, set) = sign_in(&app, &alice).await;
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Secure"),
        "{set}"
    );
    let home = app
        .http
        .get(app.url("/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let csp = home.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("img-src 'self' data:"),
        "{csp}"
    );
    assert_eq!(home.headers()["x-frame-options"], "DENY");
    assert!(home.text().await.unwrap().contains("Sign out"));
    // The cookie's secret is stored hashed only.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT id_hash FROM web_sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let secret = cookie.split_once('=').unwrap().1;
    assert_ne!(stored, secret.as_bytes());
    assert_eq!(stored, kaiyuan_hub::auth::hash_token(secret));

    // A wrong token gets the form again with the reason; a forged form is a CSRF refusal.
    let wrong = sign_in_attempt(&app, "ky_not-a-token").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("unknown, expired or revoked")
    );
    let res = app
        .http
        .post(app.url("/sign-in"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form(&[("token", "ky_nope"), ("form_token", "x")]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Revoking the token ends the session.
    let tokens = expect_status(
        app.get("/api/v1/tokens", Some(&alice)).await,
        StatusCode::OK,
    )
    .await;
    let id = tokens
        .as_array()
        .or_else(|| tokens["tokens"].as_array())
        .unwrap()[0]["id"]
        .as_i64()
        .unwrap();
    let page = page_html(&app, "/settings/tokens", Some(&cookie)).await;
    let csrf = csrf_of(&page);
    let res = post_form(
        &app,
        &format!("/settings/tokens/{id}/revoke"),
        &cookie,
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let after = page_html(&app, "/", Some(&cookie)).await;
    assert!(
        after.contains("Sign in") && !after.contains("Sign out"),
        "the session ended with its token"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn state_changes_need_the_sessions_csrf_token(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let (cookie, _) = sign_in(&app, &alice).await;
    let page = page_html(&app, "/new", Some(&cookie)).await;
    let csrf = csrf_of(&page);

    // A cross-site form post without the token is refused and creates nothing.
    let forged = post_form(
        &app,
        "/new",
        &cookie,
        &[
            ("csrf", "forged"),
            ("namespace", "alice"),
            ("name", "x"),
            ("visibility", "public"),
        ],
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.text().await.unwrap().contains("csrf-token-invalid"));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM repositories")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
    let made = post_form(
        &app,
        "/new",
        &cookie,
        &[
            ("csrf", csrf.as_str()),
            ("namespace", "alice"),
            ("name", "demo"),
            ("visibility", "private"),
        ],
    )
    .await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    assert_eq!(made.headers()[LOCATION], "/alice/demo/upload");
    // A bad name shows the form again with the reason, as a 422 page.
    let bad = post_form(
        &app,
        "/new",
        &cookie,
        &[
            ("csrf", csrf.as_str()),
            ("namespace", "alice"),
            ("name", "../x"),
            ("visibility", "public"),
        ],
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // The API with a session cookie: reads work, writes need the X-CSRF-Token header.
    let read = app
        .http
        .get(app.url("/api/v1/repos/alice/demo"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.status(),
        StatusCode::OK,
        "the owner reads her private repository through the session"
    );
    let body = json!({"message": "m", "operations": [{"op": "put", "path": "a.txt", "content_base64": "aGk="}]});
    let res = app
        .http
        .post(app.url("/api/v1/repos/alice/demo/commits/main"))
        .header(COOKIE, &cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    kaiyuan_tests::expect_error(res, StatusCode::FORBIDDEN, "csrf-token-required").await;
    let res = app
        .http
        .post(app.url("/api/v1/repos/alice/demo/commits/main"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[sqlx::test(migrations = "../migrations")]
async fn pages_follow_the_apis_permissions_and_never_run_a_cards_script(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&alice, "alice", "open", "public").await;
    app.create_repo(&alice, "alice", "hidden", "private").await;
    let card = "---\nlicense: mit\n---\n# Open\n<script>alert('x')</script>\n[click](javascript:alert(1))\n![px](https://tracker.example/p.gif)\n";
    const MIT: &str = "MIT License\n\nCopyright (c) 2026 Alice\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\nof this software and associated documentation files (the \"Software\"), to deal\nin the Software without restriction, including without limitation the rights\nto use, copy, modify, merge, publish, distribute, sublicense, and/or sell\ncopies of the Software, and to permit persons to whom the Software is\nfurnished to do so, subject to the following conditions:\n\nThe above copyright notice and this permission notice shall be included in all\ncopies or substantial portions of the Software.\n\nTHE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR\nIMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,\nFITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE\nAUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER\nLIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,\nOUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE\nSOFTWARE.\n";
    app.commit_files(
        &alice,
        "alice/open",
        &[("README.md", card.as_bytes()), ("LICENSE", MIT.as_bytes())],
    )
    .await;
    app.run_jobs().await;
    app.commit_files(
        &alice,
        "alice/hidden",
        &[("README.md", b"# hidden weights")],
    )
    .await;

    let anonymous = app.http.get(app.url("/alice/open")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::OK);
    let html = anonymous.text().await.unwrap();
    assert!(
        html.contains("&lt;script&gt;alert"),
        "the script is shown as text"
    );
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("javascript:alert"));
    assert!(!html.contains("<img src=\"https://tracker"));
    assert!(
        html.contains("MIT in <code>LICENSE</code>"),
        "the licence panel names the detected text"
    );

    let (bob_cookie, _) = sign_in(&app, &bob).await;
    for path in [
        "/alice/hidden",
        "/alice/hidden/commits",
        "/alice/hidden/upload",
    ] {
        let res = app
            .http
            .get(app.url(path))
            .header(COOKIE, &bob_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!res.text().await.unwrap().contains("hidden weights"));
    }
    for path in ["/?q=hidden", "/alice", "/?namespace=alice"] {
        let html = page_html(&app, path, Some(&bob_cookie)).await;
        assert!(
            html.contains("alice/open") || path == "/?q=hidden",
            "{path}"
        );
        assert!(
            !html.contains("alice/hidden"),
            "{path} leaks the private repository"
        );
    }
    let (alice_cookie, _) = sign_in(&app, &alice).await;
    let html = page_html(&app, "/alice", Some(&alice_cookie)).await;
    assert!(html.contains("alice/hidden"), "the owner sees it");
    // Unknown pages are HTML errors, not JSON, and never 500.
    let res = app.http.get(app.url("/nobody-here")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let res = app
        .http
        .get(app.url("/alice/open?purpose=space-travel"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .http
        .get(app.url("/alice/open/commit/0000"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = "../migrations")]
async fn namespace_admins_edit_the_licence_policy_in_the_page(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let (cookie, _) = sign_in(&app, &alice).await;
    let page = app
        .http
        .get(app.url("/orgs/alice/policy"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await.unwrap());
    let bad = post_form(
        &app,
        "/orgs/alice/policy",
        &cookie,
        &[("csrf", csrf.as_str()), ("policy", "{not json")],
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text().await.unwrap().contains("not valid JSON"));
    let unknown = post_form(
        &app,
        "/orgs/alice/policy",
        &cookie,
        &[
            ("csrf", csrf.as_str()),
            ("policy", "{\"deny\": [\"GPL-3.0-only\"], \"denny\": []}"),
        ],
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let saved = post_form(
        &app,
        "/orgs/alice/policy",
        &cookie,
        &[
            ("csrf", csrf.as_str()),
            ("policy", "{\"deny\": [\"GPL-3.0-only\"]}"),
        ],
    )
    .await;
    assert_eq!(saved.status(), StatusCode::OK);
    assert!(saved.text().await.unwrap().contains("Saved as version 1"));
    let stored = expect_status(
        app.get("/api/v1/orgs/alice/license-policy", Some(&alice))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stored["policy"]["deny"], json!(["GPL-3.0-only"]));
    let (bob_cookie, _) = sign_in(&app, &bob).await;
    let res = app
        .http
        .get(app.url("/orgs/alice/policy"))
        .header(COOKIE, &bob_cookie)
        .send()
        .await
        .unwrap();
    assert!(
        res.status() == StatusCode::FORBIDDEN || res.status() == StatusCode::NOT_FOUND,
        "{}",
        res.status()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn model_pages_show_the_decision_under_the_viewers_organisation_policies(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&bob, "bob", "model", "public").await;
    app.commit_files(
        &bob,
        "bob/model",
        &[("README.md", b"---\nlicense: cc-by-nc-4.0\n---\n# M\n")],
    )
    .await;
    expect_status(
        app.post_json("/api/v1/orgs", Some(&alice), &json!({"name": "acme"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let res = app
        .send_json(
            reqwest::Method::PUT,
            "/api/v1/orgs/acme/license-policy",
            Some(&alice),
            &json!({"require_commercial_use": true}),
        )
        .await;
    expect_status(res, StatusCode::OK).await;
    let (cookie, _) = sign_in(&app, &alice).await;
    let html = page_html(&app, "/bob/model", Some(&cookie)).await;
    let answer = html
        .split("Under <strong>acme</strong>")
        .nth(1)
        .expect("a decision under acme's policy");
    assert!(
        answer.contains("decision-deny") || answer.contains("decision-flag_review"),
        "{answer}"
    );
    // Bob is in no organisation: no such answer for him.
    let (bob_cookie, _) = sign_in(&app, &bob).await;
    let html = page_html(&app, "/bob/model", Some(&bob_cookie)).await;
    assert!(!html.contains("Under <strong>acme</strong>"));
}

#[sqlx::test(migrations = "../migrations")]
async fn report_pages_are_visible_only_to_whoever_the_api_shows_the_report(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    app.commit_files(&alice, "alice/m", &[("w.bin", b"weights")])
        .await;
    let report = expect_status(
        app.post_json(
            "/api/v1/repos/alice/m/reports",
            Some(&bob),
            &json!({"category": "backdoor", "description": "a trigger phrase flips the output"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!("/reports/{}", report["id"]);
    for (who, token, visible) in [
        ("bob", &bob, true),
        ("alice", &alice, true),
        ("carol", &carol, false),
    ] {
        let (cookie, _) = sign_in(&app, token).await;
        let res = app
            .http
            .get(app.url(&path))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let html = res.text().await.unwrap();
        assert_eq!(status == StatusCode::OK, visible, "{who}: {status}");
        assert_eq!(
            html.contains("a trigger phrase flips the output"),
            visible,
            "{who}"
        );
    }
    let anonymous = app.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = "../migrations")]
async fn search_pages_keep_their_filters(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    for i in 0..51 {
        app.create_repo(&alice, "alice", &format!("model-{i:02}"), "public")
            .await;
    }
    let first = page_html(&app, "/?namespace=alice&sort=name", None).await;
    assert_eq!(first.matches("class=\"name\"").count(), 50);
    // Secondary filters fold away unless one is set (then the fold says how many).
    assert!(
        first.contains("data-open-wide open>") && first.contains("Filters and sort (1 set)"),
        "{first}"
    );
    let plain = page_html(&app, "/", None).await;
    assert!(
        plain.contains("data-open-wide>") && !plain.contains(" set)"),
        "{plain}"
    );
    assert!(first.contains("alice/model-00") && !first.contains("alice/model-50"));
    let next = first
        .split("rel=\"next\"")
        .next()
        .unwrap()
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let next = next.replace("&amp;", "&").replace("&#x2f;", "/");
    assert!(
        next.contains("namespace=alice") && next.contains("sort=name") && next.contains("page=2"),
        "{next}"
    );
    let second = page_html(&app, &next, None).await;
    assert_eq!(second.matches("class=\"name\"").count(), 1, "{next}");
    assert!(
        second.contains("alice/model-50")
            && second.contains("rel=\"prev\"")
            && !second.contains("rel=\"next\"")
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn gates_and_licences_to_accept_are_guarded_on_the_page(pool: PgPool) {
    let app = spawn_app(pool).await;
    let meta = app.create_user("meta").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&meta, "meta", "llama", "public").await;
    app.commit_files(
        &meta,
        "meta/llama",
        &[
            (
                "README.md",
                b"---\nlicense: llama3.1\n---\nBuilt with Llama.\n",
            ),
            ("weights.bin", b"0123"),
        ],
    )
    .await;
    let res = app
        .send_json(
            reqwest::Method::PATCH,
            "/api/v1/repos/meta/llama",
            Some(&meta),
            &json!({"gated": "manual"}),
        )
        .await;
    expect_status(res, StatusCode::OK).await;
    app.run_jobs().await;

    let (owner, _) = sign_in(&app, &meta).await;
    let html = page_html(&app, "/meta/llama", Some(&owner)).await;
    assert!(
        !html.contains("Request access"),
        "the owner needs no access"
    );

    let (cookie, _) = sign_in(&app, &bob).await;
    let html = page_html(&app, "/meta/llama", Some(&cookie)).await;
    assert!(
        html.contains("Gated:") && html.contains("Request access"),
        "{html}"
    );
    assert!(
        html.contains("must be accepted before the files can be downloaded"),
        "the licence to accept is named"
    );
    let csrf = csrf_of(&html);
    // What the page's script sends: the API with the session and its CSRF token.
    let res = app
        .http
        .post(app.url("/api/v1/repos/meta/llama/access-request"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let version = html
        .split("name=\"version\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let license = html
        .split("name=\"license\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let res = app
        .http
        .post(app.url("/api/v1/repos/meta/llama/license-acceptance"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"license": license, "version": version}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = page_html(&app, "/meta/llama", Some(&cookie)).await;
    assert!(
        html.contains("waiting for the owner") && !html.contains("must be accepted"),
        "{html}"
    );
    // Anonymous visitors are told to sign in; the files stay guarded.
    let html = page_html(&app, "/meta/llama", None).await;
    assert!(html.contains("Sign in</a> to ask for access"));
    assert_eq!(
        app.http
            .get(app.url("/meta/llama/resolve/main/weights.bin"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn hugging_face_page_links_carry_over(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    app.commit_files(&alice, "alice/m", &[("configs/config.json", b"{}")])
        .await;
    let tree = app
        .http
        .get(app.url("/alice/m/tree/main"))
        .send()
        .await
        .unwrap();
    assert_eq!(tree.status(), StatusCode::SEE_OTHER, "{:?}", tree.headers());
    assert_eq!(tree.headers()[LOCATION], "/alice/m?rev=main#files");
    let blob = app
        .http
        .get(app.url("/alice/m/blob/main/configs/config.json"))
        .send()
        .await
        .unwrap();
    // Hugging Face's blob link is a page showing the file, which links to its bytes.
    assert_eq!(blob.status(), StatusCode::OK);
    let page = blob.text().await.unwrap();
    assert!(page.contains("/alice/m/resolve/"), "{page}");
    assert!(page.contains("config.json"), "{page}");
    let file = app
        .http
        .get(app.url("/alice/m/resolve/main/configs/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(file.text().await.unwrap(), "{}");
}

#[sqlx::test(migrations = "../migrations")]
async fn every_link_on_a_model_page_leads_somewhere(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    app.commit_files(
        &alice,
        "alice/m",
        &[
            (
                "README.md",
                b"---\nlicense: mit\n---\n# M\n[docs](docs/a.md)\n",
            ),
            ("w.bin", b"weights"),
        ],
    )
    .await;
    app.commit_files(&alice, "alice/m", &[("docs/a.md", b"# A")])
        .await;
    app.run_jobs().await;
    let (cookie, _) = sign_in(&app, &alice).await;
    let html = page_html(&app, "/alice/m", Some(&cookie)).await;
    let mut checked = 0;
    for part in html.split("href=\"").skip(1) {
        let link = part
            .split('"')
            .next()
            .unwrap()
            .replace("&#x2f;", "/")
            .replace("&amp;", "&");
        if !link.starts_with('/') || link.starts_with("/static/") {
            continue;
        }
        let link = link.split('#').next().unwrap().to_string();
        if link.is_empty() {
            continue;
        }
        let res = app
            .http
            .get(app.url(&link))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success() || res.status().is_redirection(),
            "{link}: {}",
            res.status()
        );
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} links");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_card_shown_is_the_revisions(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let first = app
        .commit_files(&alice, "alice/m", &[("README.md", b"# First card")])
        .await;
    app.commit_files(&alice, "alice/m", &[("README.md", b"# Second card")])
        .await;
    app.create_repo(&alice, "alice", "big", "public").await;
    let huge = format!("# Big\n{}", "x".repeat(1 << 20));
    app.commit_files(&alice, "alice/big", &[("README.md", huge.as_bytes())])
        .await;
    let main = page_html(&app, "/alice/m", None).await;
    assert!(main.contains("Second card") && !main.contains("First card"));
    let old = page_html(
        &app,
        &format!("/alice/m?rev={}", first["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert!(
        old.contains("First card") && !old.contains("Second card"),
        "{old}"
    );
    assert!(
        page_html(&app, "/alice/big", None)
            .await
            .contains("too large to show")
    );
}

/// One scan rule (`domain::scan`): the search page's badge and its scan filter say what the
/// API's `scan_summary.overall` says, for every state the corpus gives.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_search_page_and_the_api_agree_on_every_scan_state(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/scan");
    let models = [
        (
            "broken-header",
            "malformed_st_nonjson.safetensors",
            "malformed",
        ),
        ("custom-class", "susp_main_class.pkl", "suspicious"),
        ("plain-weights", "clean_model.safetensors", "clean"),
    ];
    for (name, file, _) in models {
        app.create_repo(&alice, "alice", name, "public").await;
        let bytes = std::fs::read(corpus.join(file)).unwrap();
        app.commit_files(&alice, &format!("alice/{name}"), &[(file, &bytes)])
            .await;
    }
    app.create_repo(&alice, "alice", "not-yet-scanned", "public")
        .await;
    app.commit_files(&alice, "alice/not-yet-scanned", &[("w.bin", b"x")])
        .await;
    // Scan all but the last commit's file: run the jobs, then add one more file unscanned.
    app.run_jobs().await;
    app.commit_files(&alice, "alice/not-yet-scanned", &[("v.bin", b"y")])
        .await;

    let mut expected: Vec<(&str, &str)> = models
        .iter()
        .map(|(name, _, state)| (*name, *state))
        .collect();
    expected.push(("not-yet-scanned", "pending"));
    for (name, state) in &expected {
        let repo = expect_status(
            app.get(&format!("/api/v1/repos/alice/{name}"), None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            repo["scan_summary"]["overall"], *state,
            "API, {name}: {repo}"
        );
        // The page lists the model with the API's state in its badge, under that filter only.
        let html = page_html(&app, &format!("/?q={name}"), None).await;
        assert!(
            html.contains(&format!("scan {state}</span>")),
            "{name}: {html}"
        );
        for filter in [
            "clean",
            "suspicious",
            "malformed",
            "error",
            "malicious",
            "pending",
        ] {
            let html = page_html(&app, &format!("/?namespace=alice&scan={filter}"), None).await;
            assert_eq!(
                html.contains(&format!("/alice/{name}\"")),
                filter == *state,
                "filter {filter}, {name} ({state})"
            );
        }
    }
    // Every state is offered by the filter.
    let html = page_html(&app, "/", None).await;
    for state in [
        "clean",
        "suspicious",
        "malformed",
        "error",
        "malicious",
        "pending",
        "quarantined",
    ] {
        assert!(
            html.contains(&format!("<option value=\"{state}\"")),
            "{state}"
        );
    }
}

/// One search (`db::repos::search`) behind the API, Hugging Face's `list_models` and the web
/// page: the same text, owner, licence and tag filters find the same repositories, and private
/// ones only for their members.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_api_the_hub_client_route_and_the_page_search_alike(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let card = |license: &str, tag: &str| {
        format!(
            "---\nlicense: {license}\npipeline_tag: {tag}\ntags:\n- summarisation-demo\n---\n# model\n"
        )
    };
    for (name, visibility, license, tag) in [
        ("sum-small", "public", "mit", "summarization"),
        ("sum-secret", "private", "mit", "summarization"),
        ("gen-large", "public", "apache-2.0", "text-generation"),
    ] {
        app.create_repo(&alice, "alice", name, visibility).await;
        app.commit_files(
            &alice,
            &format!("alice/{name}"),
            &[("README.md", card(license, tag).as_bytes())],
        )
        .await;
    }
    app.run_jobs().await;
    let names = |v: &Value, key: &str| -> Vec<String> {
        let mut n: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[key].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    for (viewer, cookie_user) in [
        (None, None),
        (Some(bob.as_str()), None),
        (Some(alice.as_str()), Some(())),
    ] {
        for (api, hf, page) in [
            ("q=sum", "search=sum", "q=sum"),
            ("namespace=alice", "author=alice", "namespace=alice"),
            ("license=mit", "filter=license:mit", "license=mit"),
            (
                "license=Apache-2.0",
                "filter=license:Apache-2.0",
                "license=Apache-2.0",
            ),
        ] {
            let api_items = expect_status(
                app.get(&format!("/api/v1/repos?{api}"), viewer).await,
                StatusCode::OK,
            )
            .await;
            let from_api = names(&api_items["items"], "id");
            let from_hf = names(
                &expect_status(
                    app.get(&format!("/api/models?{hf}"), viewer).await,
                    StatusCode::OK,
                )
                .await,
                "id",
            );
            assert_eq!(from_api, from_hf, "{api} / {hf} as {viewer:?}");
            if cookie_user.is_none() && viewer.is_none() {
                let html = page_html(&app, &format!("/?{page}"), None).await;
                for id in ["alice/sum-small", "alice/sum-secret", "alice/gen-large"] {
                    assert_eq!(
                        html.contains(&format!("/{id}\"")),
                        from_api.iter().any(|n| n == id),
                        "page {page}: {id}"
                    );
                }
            }
            assert_eq!(
                from_api.iter().any(|n| n == "alice/sum-secret"),
                viewer == Some(alice.as_str()) && !api.contains("Apache"),
                "{api} as {viewer:?}: {from_api:?}"
            );
        }
        // A tag: the card's pipeline tag or a `tags:` item, for the hub client and the page.
        let tagged = names(
            &expect_status(
                app.get("/api/models?filter=summarization", viewer).await,
                StatusCode::OK,
            )
            .await,
            "id",
        );
        assert!(
            tagged.contains(&"alice/sum-small".to_string()),
            "{tagged:?}"
        );
        assert!(
            !tagged.contains(&"alice/gen-large".to_string()),
            "{tagged:?}"
        );
        let both = names(
            &expect_status(
                app.get(
                    "/api/models?filter=text-generation&filter=summarisation-demo",
                    viewer,
                )
                .await,
                StatusCode::OK,
            )
            .await,
            "id",
        );
        assert_eq!(both, ["alice/gen-large"]);
    }
    let html = page_html(&app, "/?tag=summarization", None).await;
    assert!(html.contains("/alice/sum-small\"") && !html.contains("/alice/gen-large\""));
}

/// The review queue lists, besides what the viewer reviews, the open reports they filed and
/// those on their models: the reporter and the owner find there what they may open by URL.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_review_queue_lists_a_reporters_and_an_owners_reports(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    app.commit_files(&alice, "alice/m", &[("weights.bin", b"0123")])
        .await;
    let report = app.report(&bob, "alice/m", Some("weights.bin")).await;
    let link = format!("/reports/{report}");
    for (token, sees) in [(&bob, true), (&alice, true), (&carol, false)] {
        let (cookie, _) = sign_in(&app, token).await;
        let page = page_html(&app, "/reviews", Some(&cookie)).await;
        assert_eq!(page.contains(&link), sees, "{page}");
    }
}

/// A safetensors file's header as its writers lay it out: the length, the JSON, the data.
fn safetensors(tensors: &[(&str, &str, &[u64])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        let size = shape.iter().product::<u64>() * 4;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}),
        );
        offset += size;
    }
    let json = serde_json::to_vec(&header).unwrap();
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&json);
    bytes.resize(bytes.len() + offset as usize, 0);
    bytes
}

/// The file viewer shows text, JSON and a safetensors header in the page, behind the gates of
/// the download: the private file stays private, the quarantined one is not shown.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_file_viewer_shows_files_behind_the_download_gates(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    let weights = safetensors(&[
        ("lm_head.weight", "F32", &[16, 8]),
        ("embed.weight", "F32", &[32, 8]),
    ]);
    let evil = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus/scan/mal_builtins_eval_p2.pkl"),
    )
    .unwrap();
    app.commit_files(
        &alice,
        "alice/m",
        &[
            (
                "config.json",
                br#"{"hidden_size":8,"architectures":["Tiny"]}"#,
            ),
            ("model.safetensors", &weights),
            ("evil.pkl", &evil),
            ("blob.bin", &[0u8, 159, 146, 150]),
        ],
    )
    .await;
    app.run_jobs().await;

    let page = page_html(&app, "/alice/m/blob/main/config.json", None).await;
    assert!(
        page.contains("&quot;hidden_size&quot;: 8"),
        "pretty JSON: {page}"
    );
    assert!(
        page.contains("/alice/m/resolve/"),
        "a download link: {page}"
    );
    let page = page_html(&app, "/alice/m/blob/main/model.safetensors", None).await;
    for expected in [
        "lm_head.weight",
        "embed.weight",
        "F32",
        "[16, 8]",
        "384 parameters",
        "2 tensors",
    ] {
        assert!(page.contains(expected), "{expected}: {page}");
    }
    let page = page_html(&app, "/alice/m/blob/main/blob.bin", None).await;
    assert!(page.contains("A binary file"), "{page}");
    let res = app.get("/alice/m/blob/main/evil.pkl", None).await;
    assert_ne!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("quarantined"), "{page}");
    assert!(
        !page.contains("class=\"code\""),
        "quarantined bytes shown: {page}"
    );
    // The model page links each file to the viewer and to its download.
    let page = page_html(&app, "/alice/m", None).await;
    assert!(page.contains("/alice/m/blob/"), "{page}");

    app.create_repo(&alice, "alice", "secret", "private").await;
    app.commit_files(&alice, "alice/secret", &[("notes.txt", b"plans")])
        .await;
    let (cookie, _) = sign_in(&app, &bob).await;
    let res = app
        .request(Method::GET, "/alice/secret/blob/main/notes.txt", None)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(!res.text().await.unwrap().contains("plans"));
}

/// The head of a model page says what Hugging Face users look for: the licence by its human
/// name, the task and tags (also in search results), the size, and how to fetch the model from
/// this hub with the stock clients.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn model_pages_show_licence_task_tags_and_how_to_download(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "chat", "public").await;
    let card = b"---\nlicense: llama3.1\npipeline_tag: text-generation\ntags:\n- chat\n- llama\n---\n# Chat\n";
    app.commit_files(
        &alice,
        "alice/chat",
        &[("README.md", card), ("weights.bin", &[7u8; 2048])],
    )
    .await;
    app.run_jobs().await;
    // (The page escapes `/` in text as `&#x2f;`.)
    let page = page_html(&app, "/alice/chat", None)
        .await
        .replace("&#x2f;", "/");
    let chip = page
        .split("class=\"chip licence\"")
        .nth(1)
        .and_then(|rest| rest.split("</a>").next())
        .and_then(|tag| tag.split_once('>'))
        .map(|(_, text)| text)
        .unwrap_or_default();
    assert!(chip.contains("Llama 3.1"), "the licence's name: {chip}");
    assert!(!chip.contains("LicenseRef"), "{chip}");
    for expected in [
        "text-generation",
        ">chat<",
        ">llama<",
        "hf download alice/chat",
        "from_pretrained(",
    ] {
        assert!(page.contains(expected), "{expected}: {page}");
    }
    let results = page_html(&app, "/?q=chat", None).await;
    assert!(
        results.contains(">text-generation<") && results.contains(">chat<"),
        "{results}"
    );
}

/// Every form of the model page works without JavaScript: an ordinary post with the session's
/// CSRF token runs the API's operation and redirects to where the result shows.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_model_page_forms_work_without_javascript(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&alice, "alice", "llama-ft", "public").await;
    let card = b"---\nlicense: llama3.1\n---\n# A fine-tune\n";
    app.commit_files(
        &alice,
        "alice/llama-ft",
        &[("README.md", card), ("weights.bin", b"0123")],
    )
    .await;
    app.run_jobs().await;
    let (cookie, _) = sign_in(&app, &bob).await;
    let page = page_html(&app, "/alice/llama-ft", Some(&cookie)).await;
    let csrf = csrf_of(&page);
    assert!(
        page.contains("action=\"&#x2f;alice&#x2f;llama-ft&#x2f;accept\"")
            || page.contains("action=\"/alice/llama-ft/accept\""),
        "{page}"
    );

    // The report: filed, and its page is where the post leads.
    let res = post_form(
        &app,
        "/alice/llama-ft/report",
        &cookie,
        &[
            ("csrf", &csrf),
            ("category", "other"),
            ("description", "the card lies"),
            ("path", "weights.bin"),
            ("revision", "main"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(location.starts_with("/reports/"), "{location}");
    let report = page_html(&app, &location, Some(&cookie)).await;
    assert!(report.contains("the card lies"), "{report}");

    // The licence: accepted, so bob's download passes the gate.
    let blocked = app
        .get("/alice/llama-ft/resolve/main/weights.bin", Some(&bob))
        .await;
    assert_eq!(blocked.status(), StatusCode::FORBIDDEN);
    let license = page
        .split("name=\"license\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let version = page
        .split("name=\"version\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let res = post_form(
        &app,
        "/alice/llama-ft/accept",
        &cookie,
        &[
            ("csrf", &csrf),
            ("license", &license),
            ("version", &version),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let allowed = app
        .get("/alice/llama-ft/resolve/main/weights.bin", Some(&bob))
        .await;
    assert_eq!(allowed.status(), StatusCode::OK);

    // Without the session's token, nothing happens.
    let res = post_form(
        &app,
        "/alice/llama-ft/report",
        &cookie,
        &[
            ("csrf", "forged"),
            ("category", "other"),
            ("description", "x"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Access requests on a gated model, and "verify again" for its owner.
    app.send_json(
        Method::PATCH,
        "/api/v1/repos/alice/llama-ft",
        Some(&alice),
        &json!({"gated": "auto"}),
    )
    .await;
    let res = post_form(
        &app,
        "/alice/llama-ft/access-request",
        &cookie,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let requests = expect_status(
        app.get("/api/v1/repos/alice/llama-ft/access-requests", Some(&alice))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(requests[0]["user"], "bob", "{requests}");
    let res = post_form(
        &app,
        "/alice/llama-ft/verify",
        &cookie,
        &[("csrf", &csrf), ("revision", "main")],
    )
    .await;
    // bob may not; the owner's rerun needs ONNX models, which this revision lacks.
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// An organisation made and managed in the browser: created (its creator its owner), a member
/// added and their role set, the policy editor linked for admins, a member leaving; a taken name
/// said beside the form; an outsider cannot manage members.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn organisations_are_created_and_managed_in_the_browser(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    let (cookie, _) = sign_in(&app, &alice).await;
    let form_page = page_html(&app, "/orgs/new", Some(&cookie)).await;
    let csrf = csrf_of(&form_page);
    let res = post_form(
        &app,
        "/orgs/new",
        &cookie,
        &[("csrf", &csrf), ("name", "acme")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/acme");
    let again = post_form(
        &app,
        "/orgs/new",
        &cookie,
        &[("csrf", &csrf), ("name", "acme")],
    )
    .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().await.unwrap().contains("already taken"));

    let page = page_html(&app, "/acme", Some(&cookie)).await;
    assert!(
        page.contains("Add or change") && page.contains("Licence policy"),
        "{page}"
    );
    let res = post_form(
        &app,
        "/orgs/acme/members",
        &cookie,
        &[("csrf", &csrf), ("user", "bob"), ("role", "write")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = page_html(&app, "/acme", Some(&cookie)).await;
    assert!(page.contains("bob (write)"), "{page}");

    // An outsider sees no management and cannot add anyone.
    let (outsider, _) = sign_in(&app, &carol).await;
    let page = page_html(&app, "/acme", Some(&outsider)).await;
    assert!(!page.contains("Add or change"), "{page}");
    let carol_csrf = csrf_of(&page);
    let res = post_form(
        &app,
        "/orgs/acme/members",
        &outsider,
        &[("csrf", &carol_csrf), ("user", "carol"), ("role", "owner")],
    )
    .await;
    assert!(res.status().is_client_error(), "{}", res.status());

    // bob leaves.
    let (member, _) = sign_in(&app, &bob).await;
    let page = page_html(&app, "/acme", Some(&member)).await;
    let bob_csrf = csrf_of(&page);
    let res = post_form(
        &app,
        "/orgs/acme/members/bob/remove",
        &member,
        &[("csrf", &bob_csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = page_html(&app, "/acme", Some(&cookie)).await;
    assert!(!page.contains("bob (write)"), "{page}");
}

/// When the viewer's organisation decides otherwise than the model's owner, the licence panel
/// opens with that decision and its reason.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn an_organisations_different_decision_opens_the_licence_panel(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&bob, "bob", "model", "public").await;
    app.commit_files(
        &bob,
        "bob/model",
        &[("README.md", b"---\nlicense: mit\n---\n# M\n")],
    )
    .await;
    app.run_jobs().await;
    expect_status(
        app.post_json("/api/v1/orgs", Some(&alice), &json!({"name": "acme"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let res = app
        .send_json(
            Method::PUT,
            "/api/v1/orgs/acme/license-policy",
            Some(&alice),
            &json!({"deny": ["MIT"]}),
        )
        .await;
    expect_status(res, StatusCode::OK).await;
    let (cookie, _) = sign_in(&app, &alice).await;
    let html = page_html(&app, "/bob/model", Some(&cookie)).await;
    let panel = html.split("id=\"license-h\"").nth(1).unwrap_or_default();
    let banner = panel
        .split("org-decision")
        .nth(1)
        .and_then(|b| b.split("</div>").next())
        .unwrap_or_else(|| panic!("no banner: {panel}"));
    assert!(
        banner.contains("acme") && banner.contains("decision-deny"),
        "{banner}"
    );
    // Bob, in no organisation, sees the owner's decision alone.
    let (bob_cookie, _) = sign_in(&app, &bob).await;
    let html = page_html(&app, "/bob/model", Some(&bob_cookie)).await;
    assert!(!html.contains("org-decision"));
}

/// A model page lists its files a page at a time, while the security panel and the quarantine
/// banner still name every flagged file, wherever it sorts.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn model_pages_page_their_files_and_still_name_every_flagged_one(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "many", "public").await;
    let names: Vec<String> = (0..230).map(|i| format!("shard-{i:04}.txt")).collect();
    let contents: Vec<Vec<u8>> = (0..230)
        .map(|i| format!("shard {i}").into_bytes())
        .collect();
    let evil = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus/scan/mal_builtins_eval_p2.pkl"),
    )
    .unwrap();
    let mut files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&contents)
        .map(|(n, c)| (n.as_str(), c.as_slice()))
        .collect();
    files.push(("zzz-evil.pkl", &evil));
    app.commit_files(&alice, "alice/many", &files).await;
    app.run_jobs().await;
    let page = page_html(&app, "/alice/many", None).await;
    assert!(page.contains("200 of 231 files shown"), "{page}");
    assert!(page.contains("shard-0199.txt") && !page.contains("shard-0200.txt"));
    let banner = page.split("Quarantined:").nth(1).unwrap_or_default();
    assert!(
        banner.contains("zzz-evil.pkl"),
        "the flagged file past the first page: {page}"
    );
    assert!(page.contains("231 files; 1 quarantined"), "{page}");
    let next = page_html(&app, "/alice/many?files_after=shard-0199.txt", None).await;
    assert!(
        next.contains("shard-0200.txt") && next.contains("zzz-evil.pkl"),
        "{next}"
    );
    assert!(!next.contains("shard-0199.txt<"), "{next}");
}

/// A report from filing to a published advisory, every step an ordinary form post (no
/// JavaScript): the reporter comments, a reviewer confirms, drafts and publishes.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_report_reaches_a_published_advisory_without_javascript(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let rita = app.create_user("rita").await;
    app.make_reviewer("rita").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    app.commit_files(&alice, "alice/m", &[("weights.bin", b"0123")])
        .await;
    let report = app.report(&bob, "alice/m", Some("weights.bin")).await;
    let page_path = format!("/reports/{report}");

    let (bob_cookie, _) = sign_in(&app, &bob).await;
    let csrf = csrf_of(&page_html(&app, &page_path, Some(&bob_cookie)).await);
    let res = post_form(
        &app,
        &format!("{page_path}/comment"),
        &bob_cookie,
        &[("csrf", &csrf), ("body", "it phones home")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        page_html(&app, &page_path, Some(&bob_cookie))
            .await
            .contains("it phones home")
    );

    let (cookie, _) = sign_in(&app, &rita).await;
    let csrf = csrf_of(&page_html(&app, &page_path, Some(&cookie)).await);
    let steps: [(String, Vec<(&str, &str)>); 2] = [
        (format!("{page_path}/triage"), vec![("action", "confirm")]),
        (
            format!("{page_path}/advisory"),
            vec![
                ("severity", "high"),
                ("summary", "phones home"),
                ("details", "d"),
                ("remediation", "r"),
            ],
        ),
    ];
    for (path, fields) in steps {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend(fields);
        let res = post_form(&app, &path, &cookie, &all).await;
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "{path}: {}",
            res.text().await.unwrap()
        );
    }
    let page = page_html(&app, &page_path, Some(&cookie)).await;
    let advisory = page
        .split("action=\"&#x2f;advisories&#x2f;")
        .nth(1)
        .or_else(|| page.split("action=\"/advisories/").nth(1))
        .and_then(|rest| rest.split("&#x2f;publish").next())
        .and_then(|rest| rest.split("/publish").next())
        .unwrap_or_else(|| panic!("a publish form: {page}"))
        .to_string();
    let res = post_form(
        &app,
        &format!("/advisories/{advisory}/publish"),
        &cookie,
        &[("csrf", &csrf), ("report", &report.to_string())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let published = expect_status(
        app.get(&format!("/api/v1/advisories/{advisory}"), None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(published["published_at"].is_string(), "{published}");
    // The model page links the advisory from its banner, its security panel and the file.
    let model = page_html(&app, "/alice/m", None).await;
    let link = format!("href=\"/api/v1/advisories/{advisory}\"");
    assert_eq!(model.matches(&link).count(), 3, "{model}");
    let row = model
        .split("<tr>")
        .find(|row| row.contains(">weights.bin</a>"))
        .expect("the file row");
    assert!(row.contains(&link), "{row}");
}

/// The policy editor is a form (categories to deny, switches, data rules), with the JSON editor
/// as the advanced option; both save the same document.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_licence_policy_is_edited_as_a_form(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let (cookie, _) = sign_in(&app, &alice).await;
    let page = page_html(&app, "/orgs/alice/policy", Some(&cookie)).await;
    assert!(page.contains("name=\"deny:noncommercial\""), "{page}");
    let csrf = csrf_of(&page);
    let saved = post_form(
        &app,
        "/orgs/alice/policy",
        &cookie,
        &[
            ("csrf", csrf.as_str()),
            ("editor", "form"),
            ("deny:noncommercial", "on"),
            ("deny_ids", "GPL-3.0-only\nAGPL-3.0-only\n"),
            ("require_commercial_use", "on"),
            ("noncommercial_training_data", "deny"),
            ("sharealike_training_data", "allow"),
        ],
    )
    .await;
    assert_eq!(saved.status(), StatusCode::OK);
    let html = saved.text().await.unwrap();
    assert!(html.contains("Saved as version 1"), "{html}");
    let stored = expect_status(
        app.get("/api/v1/orgs/alice/license-policy", Some(&alice))
            .await,
        StatusCode::OK,
    )
    .await;
    let policy = &stored["policy"];
    assert_eq!(
        policy["deny"],
        json!(["noncommercial", "GPL-3.0-only", "AGPL-3.0-only"])
    );
    assert_eq!(policy["require_commercial_use"], true);
    assert_eq!(policy["require_osi"], false);
    assert_eq!(policy["noncommercial_training_data"], "deny");
    assert_eq!(policy["sharealike_training_data"], "allow");
    // The form shows what is stored.
    let page = page_html(&app, "/orgs/alice/policy", Some(&cookie)).await;
    assert!(
        page.contains("name=\"deny:noncommercial\" checked"),
        "{page}"
    );
    let bad = post_form(
        &app,
        "/orgs/alice/policy",
        &cookie,
        &[
            ("csrf", csrf.as_str()),
            ("editor", "form"),
            ("sharealike_training_data", "sometimes"),
        ],
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// A text search is ranked the same on the API, the Hugging Face route and the page: the
/// repository named by the text, then names, descriptions and cards that hold it, whatever
/// their recency; `sort=updated` still orders by recency, and a ranking pages by position.
#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_text_search_ranks_names_then_descriptions_then_cards_everywhere(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    // Oldest first: the ranking must undo the recency order.
    app.create_repo(&alice, "alice", "bert", "public").await;
    app.create_repo(&alice, "alice", "tiny-bert-x", "public")
        .await;
    app.create_repo(&alice, "alice", "plain", "public").await;
    let described = json!({"description": "a bert model, distilled"});
    let res = app
        .send_json(
            Method::PATCH,
            "/api/v1/repos/alice/plain",
            Some(&alice),
            &described,
        )
        .await;
    expect_status(res, StatusCode::OK).await;
    app.create_repo(&alice, "alice", "notes", "public").await;
    let card: &[u8] = b"# Notes\n\nFine-tuned from bert on our data.\n";
    app.commit_files(&alice, "alice/notes", &[("README.md", card)])
        .await;
    app.create_repo(&alice, "alice", "unrelated", "public")
        .await;

    let ranked = [
        "alice/bert",
        "alice/tiny-bert-x",
        "alice/plain",
        "alice/notes",
    ];
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let api = expect_status(app.get("/api/v1/repos?q=bert", None).await, StatusCode::OK).await;
    assert_eq!(ids(&api["items"]), ranked);
    let by_recency = expect_status(
        app.get("/api/v1/repos?q=bert&sort=updated", None).await,
        StatusCode::OK,
    )
    .await;
    let mut newest_first = ranked.to_vec();
    newest_first.reverse();
    assert_eq!(ids(&by_recency["items"]), newest_first);

    // Pages of two, by position.
    let first = expect_status(
        app.get("/api/v1/repos?q=bert&limit=2", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&first["items"]), ranked[..2]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = expect_status(
        app.get(
            &format!("/api/v1/repos?q=bert&limit=2&cursor={cursor}"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&second["items"]), ranked[2..]);
    assert!(second["next_cursor"].is_null(), "{second}");

    let hf = expect_status(
        app.get("/api/models?search=bert", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&hf), ranked);

    let html = page_html(&app, "/?q=bert", None).await;
    let positions: Vec<usize> = ranked
        .iter()
        .map(|id| {
            html.find(&format!("/{id}\""))
                .unwrap_or_else(|| panic!("{id} on the page"))
        })
        .collect();
    assert!(positions.is_sorted(), "page order {positions:?}");
    assert!(!html.contains("/alice/unrelated\""));
}
