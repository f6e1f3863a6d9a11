//! The web UI end to end, in a real headless Chromium (Debian's chromium + chromedriver): sign
//! in, create a repository, upload through the page, see the scan, licence and verification
//! results appear, search, privacy against another user, a quarantined upload, and a model card
//! whose `<script>` stays inert. Screenshots of the main pages go to target/screenshots/.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use kaiyuan_tests::browser::{Browser, screenshot_dir};
use kaiyuan_tests::{expect_status, run_python, spawn_app};

const CARD: &str = "---\nlicense: apache-2.0\ntags:\n- image-classification\n---\n# Demo adder\n\nAdds a bias, then ReLU.\n\n<script>window.__pwned = 1; document.title = 'pwned'</script>\n\n<img src=\"https://tracker.example/pixel.gif\" onerror=\"window.__pwned = 2\">\n";

#[sqlx::test(migrations = "../migrations")]
async fn a_publisher_and_an_adopter_use_the_hub_in_a_browser(pool: PgPool) {
    let app = spawn_app(pool).await;
    let shots = screenshot_dir();
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let cases = tempfile::tempdir().unwrap();
    run_python("make_verify_cases.py", &[cases.path().as_os_str()]);
    let upload_dir = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("ok/model.onnx", "model.onnx"),
        (
            "ok/model.test_vectors.safetensors",
            "model.test_vectors.safetensors",
        ),
    ] {
        std::fs::copy(cases.path().join(from), upload_dir.path().join(to)).unwrap();
    }
    std::fs::write(upload_dir.path().join("README.md"), CARD).unwrap();

    let browser = Browser::start().await;
    // Sign in with a token.
    sign_in(&browser, &app, "alice", &alice).await;
    browser.screenshot(&shots, "01-home-signed-in").await;

    // Create a repository through the form, then upload through the page.
    browser.goto(&app.url("/new")).await;
    browser.type_into("#name", "demo").await;
    browser.type_into("#description", "A tiny ONNX adder").await;
    browser
        .click("form[action='/new'] button[type=submit]")
        .await;
    browser
        .wait_for_text(10, "the upload page", |t| t.contains("Upload to"))
        .await;
    let paths: Vec<String> = ["model.onnx", "model.test_vectors.safetensors", "README.md"]
        .iter()
        .map(|f| upload_dir.path().join(f).to_string_lossy().into_owned())
        .collect();
    browser.type_into("#files", &paths.join("\n")).await;
    browser.screenshot(&shots, "02-upload").await;
    browser.click("#upload button[type=submit]").await;
    browser
        .wait_for_text(30, "the model page after the commit", |t| {
            t.contains("alice/demo")
                && t.contains("model.test_vectors.safetensors")
                && t.contains("Verification")
        })
        .await;
    assert!(browser.url().await.ends_with("/alice/demo"));

    // The checks run; the page shows their results.
    app.run_jobs().await;
    browser.goto(&app.url("/alice/demo")).await;
    let text = browser
        .wait_for_text(20, "scan, licence and verification results", |t| {
            t.contains("passed") && t.contains("clean")
        })
        .await;
    assert!(
        text.contains("Apache-2.0") || text.contains("apache-2.0"),
        "{text}"
    );
    assert!(
        text.contains("cpu") && text.contains("1.31.1"),
        "verification details: {text}"
    );
    assert!(
        text.contains("model.test_vectors.safetensors: passed"),
        "{text}"
    );
    assert!(
        !text.contains("scan pending") && !text.contains("Quarantined"),
        "{text}"
    );
    // The card's script is text, never run; the remote image is a link, never loaded.
    let pwned = browser
        .execute(
            "return window.__pwned === undefined && document.title !== 'pwned'",
            json!([]),
        )
        .await;
    assert_eq!(pwned, json!(true), "the card's script ran");
    assert!(
        text.contains("<script>window.__pwned = 1"),
        "shown as text: {text}"
    );
    let images = browser
        .execute(
            "return document.querySelectorAll('.card-body img').length",
            json!([]),
        )
        .await;
    assert_eq!(images, json!(0));
    browser.screenshot(&shots, "03-model-page").await;
    browser.goto(&app.url("/alice/demo#verification")).await;
    browser.screenshot(&shots, "04-verification-panel").await;
    // "Verify again" queues a run; the page shows it pending, then passed once it ran.
    browser
        .click("form[aria-label='Verify again'] button")
        .await;
    browser
        .wait_for_text(10, "the re-run pending", |t| {
            t.contains("Sample inference: pending")
        })
        .await;
    app.run_jobs().await;
    browser.goto(&app.url("/alice/demo#verification")).await;
    browser
        .wait_for_text(10, "the re-run passed", |t| {
            t.contains("Sample inference: passed")
        })
        .await;
    // Readable at phone width: nothing wider than the screen (wide tables scroll in place).
    browser.resize(390, 844).await;
    browser.goto(&app.url("/alice/demo")).await;
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            json!([]),
        )
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is wider than a phone by {overflow} px"
    );
    // The latency chart's labels are text at the page's size, not a scaled-down picture.
    let label_px = browser
        .execute(
            "const l = document.querySelector('ul.chart .label'); return l ? parseFloat(getComputedStyle(l).fontSize) : 0",
            json!([]),
        )
        .await;
    assert!(
        label_px.as_f64().unwrap() >= 12.0,
        "chart label at {label_px} px"
    );
    browser.screenshot(&shots, "09-model-page-phone").await;
    browser.resize(1280, 1600).await;

    // "Can I use this?" answers with the owner's policy.
    browser
        .goto(&app.url("/alice/demo?purpose=commercial&mau=1000#license"))
        .await;
    let answer = browser
        .wait_for_text(10, "the use-case answer", |t| t.contains("policy:"))
        .await;
    assert!(answer.contains("Under alice's policy"), "{answer}");
    browser.screenshot(&shots, "05-license-panel").await;

    // Search finds it, and its filters apply.
    browser.goto(&app.url("/?q=adder")).await;
    let found = browser
        .wait_for_text(10, "search results", |t| {
            t.contains("Results") || t.contains("alice/demo")
        })
        .await;
    assert!(found.contains("alice/demo"), "{found}");
    browser
        .goto(&app.url("/?verification=passed&scan=clean&tag=image-classification"))
        .await;
    assert!(browser.text().await.contains("alice/demo"));
    browser.goto(&app.url("/?verification=failed")).await;
    assert!(!browser.text().await.contains("alice/demo"));
    browser.screenshot(&shots, "06-search").await;
    let wide_open = browser
        .execute(
            "return document.querySelector('details.more-filters').open",
            json!([]),
        )
        .await;
    assert_eq!(
        wide_open,
        json!(true),
        "filters are unfolded where there is room"
    );
    // At phone width the secondary filters fold away: the first result is on the first screen.
    browser.resize(390, 844).await;
    browser.goto(&app.url("/?q=adder")).await;
    let folded = browser
        .execute(
            "return [document.querySelector('details.more-filters').open, document.querySelector('.results li').getBoundingClientRect().top]",
            json!([]),
        )
        .await;
    assert_eq!(folded[0], json!(false), "{folded}");
    assert!(
        folded[1].as_f64().unwrap() < 400.0,
        "the first result starts at {folded}"
    );
    browser.screenshot(&shots, "25-search-phone").await;
    browser.resize(1280, 1600).await;

    // A private repository and a malicious upload.
    expect_status(
        app.post_json(
            "/api/v1/repos",
            Some(&alice),
            &json!({"name": "secret-weights", "visibility": "private"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let evil: &[u8] = b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
    app.commit_files(&alice, "alice/demo", &[("evil.pkl", evil)])
        .await;
    app.run_jobs().await;
    browser.goto(&app.url("/alice/demo")).await;
    let text = browser
        .wait_for_text(10, "the quarantine banner", |t| t.contains("Quarantined"))
        .await;
    assert!(
        text.contains("evil.pkl") && text.contains("malicious"),
        "{text}"
    );
    browser.screenshot(&shots, "07-quarantined").await;
    browser.goto(&app.url("/alice/secret-weights")).await;
    assert!(
        browser.text().await.contains("secret-weights"),
        "the owner sees it"
    );

    // Another user: the private repository is invisible everywhere.
    browser.click("form[action='/sign-out'] button").await;
    browser
        .wait_for_text(10, "signed out", |t| t.contains("Sign in"))
        .await;
    sign_in(&browser, &app, "bob", &bob).await;
    browser.goto(&app.url("/alice/secret-weights")).await;
    let denied = browser.text().await;
    assert!(
        denied.contains("404") && !denied.contains("Upload files"),
        "{denied}"
    );
    browser
        .screenshot(&shots, "08-private-for-another-user")
        .await;
    browser.goto(&app.url("/?q=secret")).await;
    assert!(!browser.text().await.contains("secret-weights"));
    browser.goto(&app.url("/alice")).await;
    let listing = browser.text().await;
    assert!(
        listing.contains("alice/demo") && !listing.contains("secret-weights"),
        "{listing}"
    );

    // Bob reports a problem from the model page, then discusses it on the report's page.
    browser.goto(&app.url("/alice/demo#security")).await;
    browser.click("#security details summary").await;
    browser.type_into("#report-path", "evil.pkl").await;
    browser
        .type_into("#report-description", "evil.pkl runs os.system when loaded")
        .await;
    browser.click("#security form button[type=submit]").await;
    let sent = browser
        .wait_for_text(10, "the report confirmation", |t| {
            t.contains("sent; reviewers will look at it")
        })
        .await;
    let id: i64 = sent
        .split("Report #")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .trim_end_matches(';')
        .parse()
        .unwrap();
    browser.goto(&app.url(&format!("/reports/{id}"))).await;
    browser
        .wait_for_text(10, "the report page", |t| t.contains("runs os.system"))
        .await;
    browser
        .type_into("#comment-body", "Loading it in a sandbox shows the call.")
        .await;
    browser.click("form[aria-label=Comment] button").await;
    browser
        .wait_for_text(10, "the comment", |t| {
            t.contains("Loading it in a sandbox shows the call.") && t.contains("bob")
        })
        .await;
    browser.screenshot(&shots, "10-report").await;

    // A hub reviewer triages it from the queue, drafts and publishes an advisory; the model
    // page then carries it.
    browser.click("form[action='/sign-out'] button").await;
    browser
        .wait_for_text(10, "signed out", |t| t.contains("Sign in"))
        .await;
    sign_in(&browser, &app, "hubadmin", &app.admin_token).await;
    browser.goto(&app.url("/reviews")).await;
    browser
        .wait_for_text(10, "the queue", |t| t.contains("runs os.system"))
        .await;
    browser.screenshot(&shots, "11-review-queue").await;
    browser.click(&format!("a[href='/reports/{id}']")).await;
    browser
        .wait_for_text(10, "the triage form", |t| t.contains("Triage"))
        .await;
    browser.click("form[aria-label=Triage] button").await;
    browser
        .wait_for_text(10, "the confirmed report", |t| {
            t.contains("confirmed") && t.contains("Draft an advisory")
        })
        .await;
    browser
        .type_into("#adv-summary", "evil.pkl runs a shell command when loaded")
        .await;
    browser
        .type_into("#adv-details", "The pickle imports os.system.")
        .await;
    browser
        .type_into(
            "#adv-remediation",
            "Do not load evil.pkl; use the safetensors weights.",
        )
        .await;
    browser
        .click("form[aria-label='Draft an advisory'] button")
        .await;
    let draft = browser
        .wait_for_text(10, "the advisory draft", |t| t.contains("KYSA-"))
        .await;
    let advisory = format!(
        "KYSA-{}",
        draft
            .split("KYSA-")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    );
    browser
        .click("form[aria-label='Publish advisory'] button")
        .await;
    browser
        .wait_for_text(10, "the published advisory", |t| t.contains("published"))
        .await;
    browser.goto(&app.url("/alice/demo")).await;
    let page = browser
        .wait_for_text(10, "the advisory banner", |t| t.contains(&advisory))
        .await;
    assert!(
        page.contains("evil.pkl runs a shell command when loaded"),
        "{page}"
    );
    browser
        .screenshot(&shots, "12-advisory-on-model-page")
        .await;
    browser.quit().await;
}

/// The search page shows each model's scan state as the API's `scan_summary` has it, and its
/// scan filter, used in the browser, keeps exactly the models in that state.
#[sqlx::test(migrations = "../migrations")]
async fn the_search_page_shows_scan_states_as_the_api_does(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/scan");
    let models = [
        ("broken-header", "malformed_st_nonjson.safetensors"),
        ("custom-class", "susp_main_class.pkl"),
        ("plain-weights", "clean_model.safetensors"),
    ];
    for (name, file) in models {
        app.create_repo(&alice, "alice", name, "public").await;
        let bytes = std::fs::read(corpus.join(file)).unwrap();
        app.commit_files(&alice, &format!("alice/{name}"), &[(file, &bytes)])
            .await;
    }
    app.run_jobs().await;
    let mut states = vec![];
    for (name, _) in models {
        let repo = expect_status(
            app.get(&format!("/api/v1/repos/alice/{name}"), None).await,
            StatusCode::OK,
        )
        .await;
        states.push((
            name,
            repo["scan_summary"]["overall"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
    }
    assert_eq!(
        states.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        ["malformed", "suspicious", "clean"]
    );

    let browser = Browser::start().await;
    browser.goto(&app.url("/?namespace=alice")).await;
    let listing = browser
        .wait_for_text(10, "the search results", |t| t.contains("broken-header"))
        .await;
    for (name, state) in &states {
        let line = listing
            .lines()
            .skip_while(|l| !l.contains(name))
            .take(8)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(line.contains(&format!("scan {state}")), "{name}: {line}");
    }
    for (name, state) in &states {
        // Choose the state in the filter; the form submits itself.
        browser
            .execute(
                "const s = document.querySelector('#scan-f'); s.value = arguments[0]; s.form.submit(); return true",
                json!([state]),
            )
            .await;
        // The filtered page, not the one before it.
        for _ in 0..100 {
            if browser.url().await.contains(&format!("scan={state}")) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let text = browser
            .wait_for_text(10, "the filtered results", |t| t.contains(name))
            .await;
        for (other, other_state) in &states {
            assert_eq!(
                text.contains(other),
                other_state == state,
                "filter {state}: {other} ({other_state})"
            );
        }
    }
    browser.quit().await;
}

async fn sign_in(browser: &Browser, app: &kaiyuan_tests::TestApp, name: &str, token: &str) {
    // A fresh browser's first navigation has, now and then in CI, left it on a page without
    // the form for more than the implicit wait: go again before giving up (`find` then says
    // where the browser is and what it shows).
    for _ in 0..3 {
        browser.goto(&app.url("/sign-in")).await;
        if browser.count("#token").await > 0 {
            break;
        }
    }
    browser.type_into("#token", token).await;
    browser.click("form[action='/sign-in'] button").await;
    browser
        .wait_for_text(10, "the signed-in home page", |t| {
            t.contains(name) && t.contains("Sign out")
        })
        .await;
}

/// The bugs a walk through the UI found (issue 21), each checked where it showed: a finished
/// page that reloaded itself, a licence the owner was asked to accept, error pages that forgot
/// who is signed in, a token form that created a token again on reload, a second upload on a
/// second click, a form mistake that replaced the page, and a threshold question the form could
/// not answer.
#[sqlx::test(migrations = "../migrations")]
async fn model_pages_settle_agree_with_the_gates_and_keep_the_viewer(pool: PgPool) {
    let app = spawn_app(pool).await;
    let shots = screenshot_dir();
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let cases = tempfile::tempdir().unwrap();
    run_python("make_verify_cases.py", &[cases.path().as_os_str()]);
    let model = std::fs::read(cases.path().join("ok/model.onnx")).unwrap();
    let card = b"---\nlicense: llama3.1\n---\n# A Llama 3.1 fine-tune\n";
    app.create_repo(&alice, "alice", "llama-ft", "public").await;
    app.commit_files(
        &alice,
        "alice/llama-ft",
        &[("model.onnx", &model), ("README.md", card)],
    )
    .await;
    app.run_jobs().await;

    let browser = Browser::start().await;
    sign_in(&browser, &app, "alice", &alice).await;
    browser.goto(&app.url("/alice/llama-ft")).await;
    let page = browser
        .wait_for_text(10, "the finished model page", |t| {
            t.contains("Sample inference: passed")
        })
        .await;
    // The owner may download, so the page asks them to accept nothing (the gate agrees).
    assert!(!page.contains("I accept"), "{page}");
    // Every check finished: the page stays put.
    browser
        .execute("window.__stayed = 1; return true", json!([]))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    assert_eq!(
        browser
            .execute("return window.__stayed === 1", json!([]))
            .await,
        json!(true),
        "the finished page reloaded itself"
    );

    // A mistake in "Can I use this?" is said beside the form; the page stays.
    browser
        .goto(&app.url("/alice/llama-ft?purpose=commercial&mau=lots"))
        .await;
    let page = browser.text().await;
    assert!(page.contains("is not a whole number"), "{page}");
    assert!(
        page.contains("Files") && page.contains("llama-ft"),
        "{page}"
    );
    // The Llama threshold is counted in the month before the release: the form asks for it.
    browser
        .goto(&app.url(
            "/alice/llama-ft?purpose=commercial&mau=1000&mau_month=2024-06&mau_then=800000000",
        ))
        .await;
    let answer = browser
        .execute(
            "return [...document.querySelectorAll('.answer')].map(a => a.innerText).join(' | ')",
            json!([]),
        )
        .await;
    let answer = answer.as_str().unwrap_or_default();
    assert!(answer.contains("deny"), "800M users in June 2024: {answer}");
    browser.screenshot(&shots, "21-can-i-use-this").await;

    // The file viewer and the model page's head.
    browser
        .goto(&app.url("/alice/llama-ft/blob/main/README.md"))
        .await;
    browser
        .wait_for_text(10, "the file viewer", |t| {
            t.contains("A Llama 3.1 fine-tune")
        })
        .await;
    browser.screenshot(&shots, "22-file-viewer").await;
    browser.goto(&app.url("/alice/llama-ft")).await;
    browser.screenshot(&shots, "24-model-head-chips").await;

    // Error pages keep the signed-in header.
    browser.goto(&app.url("/alice/no-such-model")).await;
    let page = browser.text().await;
    assert!(
        page.contains("Sign out") && page.contains("alice"),
        "{page}"
    );

    // A token is created once: the POST redirects, a reload shows no secret and creates none,
    // and a second token of the same name is refused.
    browser.goto(&app.url("/settings/tokens")).await;
    browser.type_into("#token-name", "ci").await;
    browser
        .click("form[action='/settings/tokens'] button[type=submit]")
        .await;
    let page = browser
        .wait_for_text(10, "the new token", |t| t.contains("Copy it now"))
        .await;
    assert!(page.contains("ky_"), "{page}");
    browser.screenshot(&shots, "23-token-created-once").await;
    browser.goto(&app.url("/settings/tokens")).await;
    let page = browser.text().await;
    assert!(
        !page.contains("Copy it now") && !page.contains("ky_"),
        "{page}"
    );
    let named_ci = browser
        .execute(
            "return [...document.querySelectorAll('tbody tr td:first-child')].filter(td => td.textContent === 'ci').length",
            json!([]),
        )
        .await;
    assert_eq!(named_ci, json!(1));
    browser.type_into("#token-name", "ci").await;
    browser
        .click("form[action='/settings/tokens'] button[type=submit]")
        .await;
    browser
        .wait_for_text(10, "the refusal", |t| {
            t.contains("already have a token named")
        })
        .await;

    // One upload at a time: the button is disabled as soon as the upload starts.
    browser.goto(&app.url("/alice/llama-ft/upload")).await;
    let file = cases.path().join("ok/model.onnx");
    browser.type_into("#files", &file.to_string_lossy()).await;
    let disabled = browser
        .execute(
            "const b = document.querySelector('#upload button[type=submit]'); b.click(); return b.disabled",
            json!([]),
        )
        .await;
    assert_eq!(disabled, json!(true), "a second click would upload again");

    // Someone outside the namespace is asked to accept the licence before downloading.
    browser.goto(&app.url("/")).await;
    browser.click("form[action='/sign-out'] button").await;
    sign_in(&browser, &app, "bob", &bob).await;
    browser.goto(&app.url("/alice/llama-ft")).await;
    let page = browser.text().await;
    assert!(page.contains("I accept"), "{page}");

    // The favicon exists (every page asked for it).
    let icon = app.get("/favicon.ico", None).await;
    assert_eq!(icon.status(), StatusCode::SEE_OTHER);
    let icon = app.get("/static/favicon.svg", None).await;
    assert_eq!(icon.status(), StatusCode::OK);
    browser.quit().await;
}
