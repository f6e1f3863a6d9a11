//! Community security review: who sees a report, reviewer triage, advisories, OSV export,
//! and flagging of the same bytes in every repository.

use kaiyuan_tests::{expect_error, expect_status, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

const EVIL: &[u8] = b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R.not really";

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn reports_stay_private_until_an_advisory_is_published(pool: PgPool) {
    let app = spawn_app(pool).await;
    let owner = app.create_user("owner").await;
    let researcher = app.create_user("researcher").await;
    let outsider = app.create_user("outsider").await;
    let reviewer = app.create_user("reviewer").await;
    let copier = app.create_user("copier").await;
    app.create_repo(&owner, "owner", "model", "public").await;
    app.commit_files(
        &owner,
        "owner/model",
        &[
            ("README.md", b"---\nlicense: mit\n---\n"),
            ("weights.bin", EVIL),
        ],
    )
    .await;

    // A researcher files a report on a file; validation first.
    let bad = json!({"category": "spooky", "description": "x"});
    expect_error(
        app.post_json("/api/v1/repos/owner/model/reports", Some(&researcher), &bad)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-category",
    )
    .await;
    expect_error(
        app.post_json(
            "/api/v1/repos/owner/model/reports",
            None,
            &json!({"category": "other", "description": "x"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "authentication-required",
    )
    .await;
    let report = expect_status(
        app.post_json("/api/v1/repos/owner/model/reports", Some(&researcher), &json!({"category": "malicious-code", "description": "weights.bin runs a shell on load", "evidence": "pickle GLOBAL posix.system", "path": "weights.bin"})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = report["id"].as_i64().unwrap();
    assert_eq!(report["status"], "open");
    assert_eq!(report["sha256"], kaiyuan_tests::sha256_hex(EVIL));
    assert!(report["disclosure_at"].is_string());

    // Who sees it: the reporter and the owner; an outsider sees neither it nor that it exists.
    let url = format!("/api/v1/reports/{id}");
    expect_status(app.get(&url, Some(&researcher)).await, StatusCode::OK).await;
    expect_status(app.get(&url, Some(&owner)).await, StatusCode::OK).await;
    expect_error(
        app.get(&url, Some(&outsider)).await,
        StatusCode::NOT_FOUND,
        "report-not-found",
    )
    .await;
    expect_error(
        app.get(&url, None).await,
        StatusCode::NOT_FOUND,
        "report-not-found",
    )
    .await;
    let listed = expect_status(
        app.get("/api/v1/repos/owner/model/reports", Some(&outsider))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["reports"], json!([]));
    let listed = expect_status(
        app.get("/api/v1/repos/owner/model/reports", Some(&owner))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["reports"][0]["id"], id);
    expect_error(
        app.post_json(
            &format!("{url}/comments"),
            Some(&outsider),
            &json!({"body": "me too"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "report-not-found",
    )
    .await;

    // Reviewers: granted by a hub admin, then they see and triage it; others cannot triage.
    expect_error(
        app.send_json(
            Method::PUT,
            "/api/v1/admin/reviewers/reviewer",
            Some(&owner),
            &json!({"reviewer": true}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "admin-required",
    )
    .await;
    expect_error(
        app.get(&url, Some(&reviewer)).await,
        StatusCode::NOT_FOUND,
        "report-not-found",
    )
    .await;
    app.make_reviewer("reviewer").await;
    let queue = expect_status(
        app.get("/api/v1/reviews/queue", Some(&reviewer)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(queue["reports"][0]["id"], id);
    expect_error(
        app.post_json(
            &format!("{url}/triage"),
            Some(&owner),
            &json!({"action": "dismiss", "reason": "nope"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "reviewer-required",
    )
    .await;
    expect_error(
        app.post_json(
            &format!("{url}/triage"),
            Some(&reviewer),
            &json!({"action": "dismiss"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-reason",
    )
    .await;
    expect_status(
        app.post_json(
            &format!("{url}/triage"),
            Some(&reviewer),
            &json!({"action": "request-info", "reason": "which loader?"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_status(
        app.post_json(
            &format!("{url}/comments"),
            Some(&researcher),
            &json!({"body": "torch.load with weights_only=False"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let thread = expect_status(app.get(&url, Some(&owner)).await, StatusCode::OK).await;
    let authors: Vec<&str> = thread["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["author"].as_str().unwrap())
        .collect();
    assert_eq!(authors, ["reviewer", "researcher"]);

    // An advisory needs a confirmed report; drafts are not public.
    let advisory_body = json!({"severity": "critical", "summary": "Code execution on load", "details": "weights.bin is a pickle that calls posix.system.", "remediation": "Delete the file; use safetensors."});
    expect_error(
        app.post_json(&format!("{url}/advisory"), Some(&reviewer), &advisory_body)
            .await,
        StatusCode::CONFLICT,
        "report-not-confirmed",
    )
    .await;
    expect_status(
        app.post_json(
            &format!("{url}/triage"),
            Some(&reviewer),
            &json!({"action": "confirm"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let draft = expect_status(
        app.post_json(&format!("{url}/advisory"), Some(&reviewer), &advisory_body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let advisory = draft["id"].as_str().unwrap().to_string();
    assert!(
        advisory.starts_with("KYSA-") && advisory.ends_with("-0001"),
        "{advisory}"
    );
    expect_error(
        app.get(&format!("/api/v1/advisories/{advisory}"), Some(&outsider))
            .await,
        StatusCode::NOT_FOUND,
        "advisory-not-found",
    )
    .await;
    assert_eq!(
        expect_status(app.get("/api/v1/advisories", None).await, StatusCode::OK).await["advisories"],
        json!([])
    );

    // Published: everyone sees it, in OSV too, and the flagged bytes are flagged everywhere,
    // including a copy uploaded afterwards to another repository.
    expect_error(
        app.post_json(
            &format!("/api/v1/advisories/{advisory}/publish"),
            Some(&owner),
            &json!({}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "reviewer-required",
    )
    .await;
    expect_status(
        app.post_json(
            &format!("/api/v1/advisories/{advisory}/publish"),
            Some(&reviewer),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let public = expect_status(
        app.get(&format!("/api/v1/advisories/{advisory}"), None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(public["severity"], "critical");
    assert_eq!(
        public["affected"][0]["sha256"],
        kaiyuan_tests::sha256_hex(EVIL)
    );
    let osv = expect_status(
        app.get(&format!("/api/v1/advisories/{advisory}/osv"), None)
            .await,
        StatusCode::OK,
    )
    .await;
    let (ok, out) = kaiyuan_tests::run_validator("validate_osv.py", &osv);
    assert!(ok, "{out}\n{osv:#}");
    assert_eq!(osv["id"], advisory.as_str());
    let mut broken = osv.clone();
    broken["modified"] = json!("yesterday");
    assert!(
        !kaiyuan_tests::run_validator("validate_osv.py", &broken).0,
        "a broken OSV document must fail"
    );
    let mut broken = osv.clone();
    broken["affected"][0]["package"]["ecosystem"] = json!("Hugging Face Hub");
    assert!(!kaiyuan_tests::run_validator("validate_osv.py", &broken).0);

    app.create_repo(&copier, "copier", "mirror", "public").await;
    app.commit_files(&copier, "copier/mirror", &[("renamed.bin", EVIL)])
        .await;
    let flagged = expect_status(
        app.get("/api/v1/repos/copier/mirror/advisories", None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        flagged["files"],
        json!([{"path": "renamed.bin", "advisory": advisory}])
    );
    let res = app
        .request(
            Method::HEAD,
            "/copier/mirror/resolve/main/renamed.bin",
            Some(&copier),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-kaiyuan-advisory"], advisory.as_str());
    let report_now = expect_status(app.get(&url, Some(&researcher)).await, StatusCode::OK).await;
    assert_eq!(report_now["status"], "published");
    // The publication is in the transparency log.
    let log = expect_status(
        app.get("/api/v1/log/entries?start=0&end=100", None).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        log["entries"].as_array().unwrap().iter().any(
            |e| e["event"]["kind"] == "advisory" && e["event"]["advisory"] == advisory.as_str()
        )
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn organisation_reviewers_review_only_their_organisation(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let rita = app.create_user("rita").await;
    let bob = app.create_user("bob").await;
    expect_status(
        app.post_json("/api/v1/orgs", Some(&alice), &json!({"name": "acme"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    app.create_repo(&alice, "acme", "m", "public").await;
    app.create_repo(&bob, "bob", "other", "public").await;
    for repo in ["acme/m", "bob/other"] {
        expect_status(
            app.post_json(
                &format!("/api/v1/repos/{repo}/reports"),
                Some(&bob),
                &json!({"category": "leaked-data", "description": "an API key in config.json"}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    expect_error(
        app.send_json(
            Method::PUT,
            "/api/v1/orgs/acme/reviewers/rita",
            Some(&bob),
            &json!({"reviewer": true}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "namespace-not-found",
    )
    .await;
    expect_status(
        app.send_json(
            Method::PUT,
            "/api/v1/orgs/acme/reviewers/rita",
            Some(&alice),
            &json!({"reviewer": true}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let queue = expect_status(
        app.get("/api/v1/reviews/queue", Some(&rita)).await,
        StatusCode::OK,
    )
    .await;
    let repos: Vec<&str> = queue["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repository"].as_str().unwrap())
        .collect();
    assert_eq!(repos, ["acme/m"]);
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn reviewers_hold_files_and_attest_revisions(pool: PgPool) {
    let app = spawn_app(pool).await;
    let owner = app.create_user("owner").await;
    let researcher = app.create_user("researcher").await;
    let reviewer = app.create_user("reviewer").await;
    app.make_reviewer("reviewer").await;
    app.create_repo(&owner, "owner", "model", "public").await;
    let first = app
        .commit_files(
            &owner,
            "owner/model",
            &[("config.json", b"{\"api_key\": \"sk-live-123\"}")],
        )
        .await;
    let report = expect_status(
        app.post_json("/api/v1/repos/owner/model/reports", Some(&researcher), &json!({"category": "leaked-data", "description": "a live API key", "path": "config.json"})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = report["id"].as_i64().unwrap();

    // Held pending review: nobody downloads it, the owner included; the listing says so.
    expect_error(
        app.send_json(
            Method::PUT,
            &format!("/api/v1/reports/{id}/hold"),
            Some(&owner),
            &json!({"hold": true}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "reviewer-required",
    )
    .await;
    expect_status(
        app.send_json(
            Method::PUT,
            &format!("/api/v1/reports/{id}/hold"),
            Some(&reviewer),
            &json!({"hold": true, "reason": "checking the key"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let msg = expect_error(
        app.get("/owner/model/resolve/main/config.json", Some(&owner))
            .await,
        StatusCode::FORBIDDEN,
        "quarantined",
    )
    .await;
    assert!(msg.contains(&format!("report {id}")), "{msg}");
    let files = expect_status(
        app.get("/api/v1/repos/owner/model/tree/main", Some(&owner))
            .await,
        StatusCode::OK,
    )
    .await;
    let file = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "config.json")
        .cloned()
        .unwrap();
    assert_eq!(file["quarantined"], true);
    // Dismissed: the hold is lifted.
    expect_status(
        app.post_json(
            &format!("/api/v1/reports/{id}/triage"),
            Some(&reviewer),
            &json!({"action": "dismiss", "reason": "a revoked test key"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        app.get("/owner/model/resolve/main/config.json", Some(&owner))
            .await
            .status(),
        StatusCode::OK
    );

    // Attestations: signed by the hub for one revision, with the reviewer's identity.
    expect_error(
        app.post_json(
            "/api/v1/repos/owner/model/review-attestations",
            Some(&owner),
            &json!({"scope": "all files"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "reviewer-required",
    )
    .await;
    let made = expect_status(
        app.post_json(
            "/api/v1/repos/owner/model/review-attestations",
            Some(&reviewer),
            &json!({"scope": "all files", "notes": "loaded in a sandbox"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(made["revision"], first["id"]);
    let list = expect_status(
        app.get("/api/v1/repos/owner/model/review-attestations", None)
            .await,
        StatusCode::OK,
    )
    .await;
    let att = &list["attestations"][0];
    assert_eq!(att["reviewer"], "reviewer");
    let bundle = &att["bundle"];
    let payload =
        kaiyuan_provenance::bundle::decode_b64(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
    let sig = kaiyuan_provenance::bundle::decode_b64(
        bundle["dsseEnvelope"]["signatures"][0]["sig"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let hub = app
        .get("/.well-known/kaiyuan/attestation-key.pem", None)
        .await
        .text()
        .await
        .unwrap();
    let hub = kaiyuan_provenance::keys::PublicKey::from_pem(&hub).unwrap();
    assert!(
        hub.verify(
            &kaiyuan_provenance::bundle::pae(kaiyuan_provenance::bundle::PAYLOAD_TYPE, &payload),
            &sig
        ),
        "the hub's signature verifies"
    );
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["predicateType"], "https://kaiyuan.dev/review/v1");
    assert_eq!(statement["predicate"]["reviewer"]["name"], "reviewer");
    assert_eq!(statement["predicate"]["revision"], first["id"]);
    // A new revision needs its own attestation; the old one keeps its.
    app.commit_files(&owner, "owner/model", &[("config.json", b"{}")])
        .await;
    let now = expect_status(
        app.get("/api/v1/repos/owner/model/review-attestations", None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(now["attestations"], json!([]));
    let then = expect_status(
        app.get(
            &format!(
                "/api/v1/repos/owner/model/review-attestations?revision={}",
                first["id"].as_str().unwrap()
            ),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(then["attestations"].as_array().unwrap().len(), 1);
}

/// A pickle importing `evilpkg.run`: unknown to the built-in lists (suspicious), denied by a
/// community rule (malicious).
const EVILPKG: &[u8] = b"\x80\x02cevilpkg\nrun\nX\x02\x00\x00\x00hi\x85R.";

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn community_rules_rescan_and_open_reports(pool: PgPool) {
    let app = spawn_app(pool).await;
    let owner = app.create_user("owner").await;
    let reviewer = app.create_user("reviewer").await;
    app.create_repo(&owner, "owner", "model", "public").await;
    app.commit_files(&owner, "owner/model", &[("model.pkl", EVILPKG)])
        .await;
    app.run_jobs().await;
    let scan = expect_status(
        app.get("/api/v1/repos/owner/model/scan", Some(&owner))
            .await,
        StatusCode::OK,
    )
    .await;
    let file = scan["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "model.pkl")
        .cloned()
        .unwrap();
    assert_eq!(file["scan_status"], "suspicious", "{scan}");

    // Only hub reviewers change the rules; a malformed entry is refused, naming it.
    expect_error(
        app.send_json(
            Method::PUT,
            "/api/v1/rules",
            Some(&reviewer),
            &json!({"pickle_deny": ["evilpkg.run"]}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "reviewer-required",
    )
    .await;
    app.make_reviewer("reviewer").await;
    let msg = expect_error(
        app.send_json(
            Method::PUT,
            "/api/v1/rules",
            Some(&reviewer),
            &json!({"pickle_deny": ["evilpkg run"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-rule",
    )
    .await;
    assert!(msg.contains("evilpkg run"));
    let set = expect_status(
        app.send_json(
            Method::PUT,
            "/api/v1/rules",
            Some(&reviewer),
            &json!({"pickle_deny": ["evilpkg.run"], "note": "seen in the wild"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(set["version"], 1);
    assert!(set["rescans_queued"].as_u64().unwrap() >= 1);

    // The background rescan finds it malicious and opens a report the owner sees.
    app.run_jobs().await;
    let scan = expect_status(
        app.get("/api/v1/repos/owner/model/scan", Some(&owner))
            .await,
        StatusCode::OK,
    )
    .await;
    let file = scan["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "model.pkl")
        .cloned()
        .unwrap();
    assert_eq!(file["scan_status"], "malicious", "{scan}");
    let reports = expect_status(
        app.get("/api/v1/repos/owner/model/reports", Some(&owner))
            .await,
        StatusCode::OK,
    )
    .await;
    let report = &reports["reports"][0];
    assert_eq!(report["reporter"], "reviewer");
    assert!(
        report["description"]
            .as_str()
            .unwrap()
            .contains("evilpkg.run"),
        "{report}"
    );
    // Running the jobs again opens no second report for the same rule set.
    app.run_jobs().await;
    let reports = expect_status(
        app.get("/api/v1/repos/owner/model/reports", Some(&owner))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reports["reports"].as_array().unwrap().len(), 1);
    let history = expect_status(
        app.get("/api/v1/rules", Some(&reviewer)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        history["rule_sets"][0]["pickle_deny"],
        json!(["evilpkg.run"])
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn reporters_disclose_after_the_deadline(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let owner = app.create_user("owner").await;
    let researcher = app.create_user("researcher").await;
    let outsider = app.create_user("outsider").await;
    app.create_repo(&owner, "owner", "model", "public").await;
    let report = expect_status(
        app.post_json(
            "/api/v1/repos/owner/model/reports",
            Some(&researcher),
            &json!({"category": "unsafe-format", "description": "ships a pickle"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = report["id"].as_i64().unwrap();
    let msg = expect_error(
        app.post_json(
            &format!("/api/v1/reports/{id}/disclose"),
            Some(&researcher),
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "disclosure-not-due",
    )
    .await;
    assert!(msg.contains("may be disclosed"), "{msg}");
    expect_error(
        app.post_json(
            &format!("/api/v1/reports/{id}/disclose"),
            Some(&outsider),
            &json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "report-not-found",
    )
    .await;
    // The 90 days pass without a resolution.
    sqlx::query("UPDATE reports SET disclosure_at = now() - interval '1 day' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    expect_status(
        app.post_json(
            &format!("/api/v1/reports/{id}/disclose"),
            Some(&researcher),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let public = expect_status(
        app.get(&format!("/api/v1/reports/{id}"), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(public["status"], "published");
    let listed = expect_status(
        app.get("/api/v1/repos/owner/model/reports", Some(&outsider))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["reports"][0]["id"], id);
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn community_yara_rules_match_blob_bytes(pool: PgPool) {
    let app = spawn_app(pool).await;
    let owner = app.create_user("owner").await;
    let reviewer = app.create_user("reviewer").await;
    app.make_reviewer("reviewer").await;
    app.create_repo(&owner, "owner", "model", "public").await;
    app.commit_files(
        &owner,
        "owner/model",
        &[
            ("notes.txt", b"harmless text"),
            ("payload.bin", b"\x00\x01 STAGE2-IMPLANT-7f3a \x02"),
        ],
    )
    .await;
    app.run_jobs().await;

    let msg = expect_error(
        app.send_json(
            Method::PUT,
            "/api/v1/rules",
            Some(&reviewer),
            &json!({"yara": "rule broken { condition: $missing }"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-rule",
    )
    .await;
    assert!(
        msg.contains("do not compile") && msg.contains("missing"),
        "{msg}"
    );
    let rule = r#"rule stage2_implant { meta: author = "reviewer" strings: $m = "STAGE2-IMPLANT" condition: $m }"#;
    expect_status(
        app.send_json(
            Method::PUT,
            "/api/v1/rules",
            Some(&reviewer),
            &json!({"yara": rule}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    app.run_jobs().await;
    let scan = expect_status(
        app.get("/api/v1/repos/owner/model/scan", Some(&owner))
            .await,
        StatusCode::OK,
    )
    .await;
    let status = |p: &str| {
        scan["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == p)
            .unwrap()["scan_status"]
            .clone()
    };
    assert_eq!(status("payload.bin"), "malicious", "{scan}");
    assert_eq!(status("notes.txt"), "clean");
    let reports = expect_status(
        app.get("/api/v1/repos/owner/model/reports", Some(&owner))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        reports["reports"][0]["description"]
            .as_str()
            .unwrap()
            .contains("stage2_implant"),
        "{reports}"
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn evidence_is_stored_scanned_guarded_and_kept(pool: PgPool) {
    let app = kaiyuan_tests::spawn_app_with(pool, kaiyuan_tests::Backend::Local, |s| {
        s.gc.blob_grace_secs = 0
    })
    .await;
    let owner = app.create_user("owner").await;
    let researcher = app.create_user("researcher").await;
    let reviewer = app.create_user("reviewer").await;
    let outsider = app.create_user("outsider").await;
    app.make_reviewer("reviewer").await;
    app.create_repo(&owner, "owner", "model", "public").await;
    let report = expect_status(
        app.post_json(
            "/api/v1/repos/owner/model/reports",
            Some(&researcher),
            &json!({"category": "malicious-code", "description": "see the attached loader"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = report["id"].as_i64().unwrap();
    let attach = |token: &str, name: &str| {
        app.request(
            Method::POST,
            &format!("/api/v1/reports/{id}/attachments?name={name}"),
            Some(token),
        )
        .body(EVIL.to_vec())
    };
    expect_error(
        attach(&outsider, "x.pkl").send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "report-not-found",
    )
    .await;
    expect_error(
        attach(&researcher, "a%2Fb").send().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-name",
    )
    .await;
    let made = expect_status(
        attach(&researcher, "loader.pkl").send().await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(made["sha256"], kaiyuan_tests::sha256_hex(EVIL));
    let aid = made["id"].as_i64().unwrap();

    // Scanned like any blob; the malicious evidence reaches reviewers only.
    app.run_jobs().await;
    let seen = expect_status(
        app.get(&format!("/api/v1/reports/{id}"), Some(&owner))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen["attachments"][0]["scan_status"], "malicious");
    let url = format!("/api/v1/reports/{id}/attachments/{aid}");
    expect_error(
        app.get(&url, Some(&owner)).await,
        StatusCode::FORBIDDEN,
        "quarantined",
    )
    .await;
    expect_error(
        app.get(&url, Some(&outsider)).await,
        StatusCode::NOT_FOUND,
        "report-not-found",
    )
    .await;
    // Garbage collection keeps evidence while the report exists.
    expect_status(
        app.post_json("/api/v1/admin/gc", Some(&app.admin_token), &json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let res = app.get(&url, Some(&reviewer)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-kaiyuan-warning"));
    assert_eq!(res.bytes().await.unwrap().as_ref(), EVIL);
}
