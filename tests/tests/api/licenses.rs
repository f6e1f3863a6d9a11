//! Licence compliance through the API: reports per revision, decisions for a use context,
//! organisation policies, stored evaluations, hub lineage and who may see what.

use kaiyuan_license::catalog::catalog;
use kaiyuan_tests::{expect_error, expect_status, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

fn text(id: &str) -> String {
    catalog().texts(id)[0].replace("<year> <copyright holders>", "2026 Acme")
}

const LLAMA: &str = "LicenseRef-scancode-llama-3.1-license-2024";

fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn a_relabelled_llama_finetune_is_denied_and_listed_for_auditors(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    expect_status(
        app.post_json("/api/v1/orgs", Some(&alice), &json!({"name": "acme"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    app.create_repo(&alice, "acme", "Acme-8B", "public").await;
    let card = "---\nlicense: apache-2.0\nbase_model: meta-llama/Llama-3.1-8B\n---\n# Acme 8B\n";
    app.commit_files(
        &alice,
        "acme/Acme-8B",
        &[
            ("README.md", card.as_bytes()),
            ("LICENSE", text("Apache-2.0").as_bytes()),
        ],
    )
    .await;

    let r = expect_status(
        app.get("/api/v1/repos/acme/Acme-8B/license", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["decision"], "deny");
    assert_eq!(r["declared"], "apache-2.0");
    assert_eq!(r["expression"], "Apache-2.0");
    assert_eq!(r["detected"][0]["id"], "Apache-2.0");
    assert_eq!(r["lineage"][0]["source"], "curated");
    let effective = r["effective"].as_str().unwrap();
    assert!(
        effective.contains(LLAMA) && effective.contains("Apache-2.0"),
        "{effective}"
    );
    for code in [
        "base-license-violation",
        "naming-violation",
        "missing-notice",
    ] {
        assert!(codes(&r).contains(&code.to_string()), "{code}: {r}");
    }
    assert_eq!(
        r["stored_evaluation"],
        Value::Null,
        "the job has not run yet"
    );

    // The commit's job stores the evaluation; the auditor's report lists it.
    app.run_jobs().await;
    let r = expect_status(
        app.get("/api/v1/repos/acme/Acme-8B/license", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["stored_evaluation"]["decision"], "deny");
    let report = expect_status(
        app.get(
            "/api/v1/orgs/acme/license-report?decision=deny",
            Some(&alice),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(report["repositories"][0]["repository"], "acme/Acme-8B");
    assert_eq!(report["repositories"].as_array().unwrap().len(), 1);
    let report = expect_status(
        app.get(
            "/api/v1/orgs/acme/license-report?decision=allow",
            Some(&alice),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(report["repositories"].as_array().unwrap().is_empty());
    expect_error(
        app.get(
            "/api/v1/orgs/acme/license-report?decision=maybe",
            Some(&alice),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid-query",
    )
    .await;

    // Hugging Face clients are told why, on every download.
    app.commit_files(&alice, "acme/Acme-8B", &[("w.bin", b"weights")])
        .await;
    app.run_jobs().await;
    let res = app
        .request(
            Method::HEAD,
            "/acme/Acme-8B/resolve/main/w.bin",
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    let warning = res.headers()["x-hf-warning"].to_str().unwrap().to_string();
    assert!(
        warning.starts_with("kaiyuan-license; acme/Acme-8B (deny for commercial use): "),
        "{warning}"
    );
    assert!(
        warning.contains("/api/v1/repos/acme/Acme-8B/license"),
        "{warning}"
    );

    // The fix: keep the Llama agreement and NOTICE, rename, say "Built with Llama".
    app.create_repo(&alice, "acme", "Llama-3.1-Acme-8B", "public")
        .await;
    let card = "---\nlicense: llama3.1\nbase_model: meta-llama/Llama-3.1-8B\n---\n# Llama 3.1 Acme 8B\n\nBuilt with Llama.\n";
    let notice = catalog().get(LLAMA).unwrap().notice_file.clone().unwrap();
    app.commit_files(
        &alice,
        "acme/Llama-3.1-Acme-8B",
        &[
            ("README.md", card.as_bytes()),
            ("LICENSE", text(LLAMA).as_bytes()),
            ("NOTICE", notice.as_bytes()),
        ],
    )
    .await;
    let r = expect_status(
        app.get("/api/v1/repos/acme/Llama-3.1-Acme-8B/license", None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["decision"], "allow_with_obligations", "{r}");
    assert!(
        r["obligations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o.as_str().unwrap().contains("Acceptable Use Policy"))
    );
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn decisions_follow_policies_contexts_and_hub_lineage(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    expect_status(
        app.post_json("/api/v1/orgs", Some(&alice), &json!({"name": "acme"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    // A base on this hub, and a fine-tune of it: the base's licence comes from the hub.
    app.create_repo(&alice, "acme", "base-nc", "public").await;
    app.commit_files(
        &alice,
        "acme/base-nc",
        &[("README.md", b"---\nlicense: cc-by-nc-4.0\n---\n")],
    )
    .await;
    app.create_repo(&alice, "acme", "tuned", "private").await;
    app.commit_files(
        &alice,
        "acme/tuned",
        &[(
            "README.md",
            b"---\nlicense: cc-by-nc-4.0\nbase_model: acme/base-nc\n---\n",
        )],
    )
    .await;

    let r = expect_status(
        app.get("/api/v1/repos/acme/tuned/license", Some(&alice))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["lineage"][0]["source"], "hub");
    assert_eq!(r["lineage"][0]["license"], "CC-BY-NC-4.0");
    assert_eq!(
        r["decision"], "deny",
        "commercial use of a non-commercial model"
    );
    assert!(codes(&r).contains(&"use-not-permitted".to_string()));

    // Research use is fine; a policy can still forbid it.
    let research = json!({"context": {"purpose": "research"}});
    let r = expect_status(
        app.post_json(
            "/api/v1/repos/acme/tuned/compliance",
            Some(&alice),
            &research,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["decision"], "allow_with_obligations", "{r}");
    let strict =
        json!({"context": {"purpose": "research"}, "policy": {"require_commercial_use": true}});
    let r = expect_status(
        app.post_json("/api/v1/repos/acme/tuned/compliance", Some(&alice), &strict)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["decision"], "deny");
    assert!(codes(&r).contains(&"policy-denied".to_string()));

    // "What if we published it under Apache-2.0?": the declared licence through the API.
    let what_if = json!({"declared": "apache-2.0", "context": {"purpose": "research"}});
    let r = expect_status(
        app.post_json(
            "/api/v1/repos/acme/tuned/compliance",
            Some(&alice),
            &what_if,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["expression"], "Apache-2.0");
    assert_eq!(r["decision"], "deny");
    assert!(
        codes(&r).contains(&"base-license-violation".to_string()),
        "{r}"
    );

    // Bad input: 422 naming the problem.
    let msg = expect_error(
        app.post_json(
            "/api/v1/repos/acme/tuned/compliance",
            Some(&alice),
            &json!({"context": {"region": "Mars"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-context",
    )
    .await;
    assert!(msg.contains("Mars"));
    let msg = expect_error(
        app.post_json(
            "/api/v1/repos/acme/tuned/compliance",
            Some(&alice),
            &json!({"policy": {"deny": ["frobnicate-9"]}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-policy",
    )
    .await;
    assert!(msg.contains("frobnicate-9"));
    expect_error(
        app.post_json(
            "/api/v1/repos/acme/tuned/compliance",
            Some(&alice),
            &json!({"context": {"purpose": "world domination"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-json",
    )
    .await;

    // The organisation's policy: admins set it, members read it, outsiders see nothing.
    let policy = json!({"name": "research-ok", "allow": ["permissive", "noncommercial"]});
    expect_error(
        app.send_json(
            Method::PUT,
            "/api/v1/orgs/acme/license-policy",
            Some(&bob),
            &policy,
        )
        .await,
        StatusCode::NOT_FOUND,
        "namespace-not-found",
    )
    .await;
    let set = expect_status(
        app.send_json(
            Method::PUT,
            "/api/v1/orgs/acme/license-policy",
            Some(&alice),
            &policy,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(set["version"], 1);
    assert_eq!(set["reevaluations_queued"], 2);
    let got = expect_status(
        app.get("/api/v1/orgs/acme/license-policy", Some(&alice))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        got["policy"]["allow"],
        json!(["permissive", "noncommercial"])
    );
    expect_error(
        app.get("/api/v1/orgs/acme/license-policy", Some(&bob))
            .await,
        StatusCode::NOT_FOUND,
        "namespace-not-found",
    )
    .await;
    expect_error(
        app.send_json(
            Method::PUT,
            "/api/v1/orgs/acme/license-policy",
            Some(&alice),
            &json!({"allow": ["nonsense-xyz"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-policy",
    )
    .await;
    app.run_jobs().await;
    let r = expect_status(
        app.get("/api/v1/repos/acme/tuned/license", Some(&alice))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["policy"], "research-ok");
    assert_eq!(r["stored_evaluation"]["policy_version"], 1);

    // A private repository's licence report is as invisible as the repository.
    expect_error(
        app.get("/api/v1/repos/acme/tuned/license", Some(&bob))
            .await,
        StatusCode::NOT_FOUND,
        "repository-not-found",
    )
    .await;
    expect_error(
        app.post_json("/api/v1/repos/acme/tuned/compliance", None, &json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "repository-not-found",
    )
    .await;

    // Bob's own model built on alice's private repository learns nothing about it.
    app.create_repo(&bob, "bob", "derived", "public").await;
    app.commit_files(
        &bob,
        "bob/derived",
        &[(
            "README.md",
            b"---\nlicense: mit\nbase_model: acme/tuned\n---\n",
        )],
    )
    .await;
    let r = expect_status(
        app.get("/api/v1/repos/bob/derived/license", Some(&bob))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["lineage"][0]["source"], "unknown");
    assert_eq!(r["lineage"][0]["license"], Value::Null);
    assert_eq!(r["decision"], "flag_review");

    let deleted = app
        .request(
            Method::DELETE,
            "/api/v1/orgs/acme/license-policy",
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    expect_error(
        app.get("/api/v1/orgs/acme/license-policy", Some(&alice))
            .await,
        StatusCode::NOT_FOUND,
        "policy-not-found",
    )
    .await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn spdx3_and_cyclonedx_exports_pass_the_official_validators(pool: PgPool) {
    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "Llama-3.1-Support-8B", "public")
        .await;
    let card = "---\nlicense: llama3.1\nbase_model: meta-llama/Llama-3.1-8B\ndatasets: [acme/support-chats]\n---\nBuilt with Llama.\n";
    let weights = vec![7u8; 4096];
    app.commit_files(
        &alice,
        "alice/Llama-3.1-Support-8B",
        &[
            ("README.md", card.as_bytes()),
            ("LICENSE", text(LLAMA).as_bytes()),
            ("model.safetensors", &weights),
        ],
    )
    .await;

    let spdx = expect_status(
        app.get(
            "/api/v1/repos/alice/Llama-3.1-Support-8B/sbom?format=spdx3",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let (ok, out) = kaiyuan_tests::run_validator("validate_spdx3.py", &spdx);
    assert!(ok, "{out}\n{spdx:#}");
    let graph = spdx["@graph"].as_array().unwrap();
    let model = graph
        .iter()
        .find(|e| e["type"] == "ai_AIPackage" && e["name"] == "alice/Llama-3.1-Support-8B")
        .unwrap();
    assert_eq!(model["software_primaryPurpose"], "model");
    let weights_file = graph
        .iter()
        .find(|e| e["type"] == "software_File" && e["name"] == "model.safetensors")
        .unwrap();
    assert_eq!(
        weights_file["verifiedUsing"][0]["hashValue"],
        kaiyuan_tests::sha256_hex(&weights)
    );
    let rels: Vec<&str> = graph
        .iter()
        .filter(|e| e["type"] == "Relationship")
        .map(|e| e["relationshipType"].as_str().unwrap())
        .collect();
    for kind in [
        "hasDeclaredLicense",
        "hasConcludedLicense",
        "descendantOf",
        "trainedOn",
        "contains",
    ] {
        assert!(rels.contains(&kind), "{kind} missing: {rels:?}");
    }
    assert!(
        graph
            .iter()
            .any(|e| e["type"] == "dataset_DatasetPackage" && e["name"] == "acme/support-chats")
    );
    assert!(
        graph
            .iter()
            .any(|e| e["simplelicensing_licenseExpression"] == LLAMA)
    );

    // Negative checks: the validator is not a rubber stamp.
    let mut broken = spdx.clone();
    for e in broken["@graph"].as_array_mut().unwrap() {
        if e["type"] == "ai_AIPackage" {
            e["type"] = json!("AIPackage");
        }
    }
    assert!(
        !kaiyuan_tests::run_validator("validate_spdx3.py", &broken).0,
        "a bare type name must fail"
    );
    let mut broken = spdx.clone();
    broken["@graph"][0]
        .as_object_mut()
        .unwrap()
        .remove("specVersion");
    assert!(
        !kaiyuan_tests::run_validator("validate_spdx3.py", &broken).0,
        "a missing specVersion must fail"
    );
    let mut broken = spdx.clone();
    let rel = broken["@graph"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["type"] == "Relationship")
        .unwrap();
    rel["to"] = json!(["https://nowhere.example/missing"]);
    assert!(
        !kaiyuan_tests::run_validator("validate_spdx3.py", &broken).0,
        "a dangling reference must fail"
    );

    let cdx = expect_status(
        app.get(
            "/api/v1/repos/alice/Llama-3.1-Support-8B/sbom?format=cyclonedx",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let (ok, out) = kaiyuan_tests::run_validator("validate_cdx.py", &cdx);
    assert!(ok, "{out}\n{cdx:#}");
    assert_eq!(cdx["specVersion"], "1.6");
    let model = &cdx["components"][0];
    assert_eq!(model["type"], "machine-learning-model");
    assert_eq!(
        model["pedigree"]["ancestors"][0]["name"],
        "meta-llama/Llama-3.1-8B"
    );
    assert!(
        model["licenses"][0]["expression"]
            .as_str()
            .unwrap()
            .contains(LLAMA)
    );
    let file = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "model.safetensors")
        .unwrap();
    assert_eq!(
        file["hashes"][0]["content"],
        kaiyuan_tests::sha256_hex(&weights)
    );
    let mut broken = cdx.clone();
    broken["components"][0]["type"] = json!("model");
    assert!(
        !kaiyuan_tests::run_validator("validate_cdx.py", &broken).0,
        "an unknown component type must fail"
    );
    let mut broken = cdx.clone();
    broken["components"][0]["licenses"] =
        json!([{"expression": "MIT"}, {"license": {"id": "MIT"}}]);
    assert!(
        !kaiyuan_tests::run_validator("validate_cdx.py", &broken).0,
        "mixing expression and license must fail"
    );

    expect_error(
        app.get(
            "/api/v1/repos/alice/Llama-3.1-Support-8B/sbom?format=docx",
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid-query",
    )
    .await;
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn licences_that_require_acceptance_gate_downloads_until_accepted(pool: PgPool) {
    let app = spawn_app(pool).await;
    let meta = app.create_user("meta").await;
    let bob = app.create_user("bob").await;
    app.create_repo(&meta, "meta", "Llama-3.1-8B", "public")
        .await;
    let card = "---\nlicense: llama3.1\n---\nBuilt with Llama.\n";
    app.commit_files(
        &meta,
        "meta/Llama-3.1-8B",
        &[
            ("README.md", card.as_bytes()),
            ("LICENSE", text(LLAMA).as_bytes()),
            ("weights.bin", b"0123"),
        ],
    )
    .await;
    let file = "/meta/Llama-3.1-8B/resolve/main/weights.bin";

    // Owners download freely; anyone else is told which licence to accept and how.
    assert_eq!(app.get(file, Some(&meta)).await.status(), StatusCode::OK);
    let msg = expect_error(app.get(file, None).await, StatusCode::UNAUTHORIZED, "gated").await;
    assert!(
        msg.contains("Llama 3.1 Community License Agreement") && msg.contains("license-acceptance"),
        "{msg}"
    );
    let msg = expect_error(
        app.get(file, Some(&bob)).await,
        StatusCode::FORBIDDEN,
        "gated",
    )
    .await;
    assert!(msg.contains("2024-07-23"), "{msg}");
    expect_error(
        app.get("/api/models/meta/Llama-3.1-8B/auth-check", Some(&bob))
            .await,
        StatusCode::FORBIDDEN,
        "gated",
    )
    .await;

    // Accepting the wrong licence or version is refused with the right one named.
    let accept = |license: &str, version: &str| json!({"license": license, "version": version});
    let msg = expect_error(
        app.post_json(
            "/api/v1/repos/meta/Llama-3.1-8B/license-acceptance",
            Some(&bob),
            &accept("MIT", "1"),
        )
        .await,
        StatusCode::CONFLICT,
        "license-not-required",
    )
    .await;
    assert!(msg.contains(LLAMA), "{msg}");
    expect_error(
        app.post_json(
            "/api/v1/repos/meta/Llama-3.1-8B/license-acceptance",
            Some(&bob),
            &accept(LLAMA, "2023-01-01"),
        )
        .await,
        StatusCode::CONFLICT,
        "license-version-mismatch",
    )
    .await;
    expect_error(
        app.post_json(
            "/api/v1/repos/meta/Llama-3.1-8B/license-acceptance",
            None,
            &accept(LLAMA, "2024-07-23"),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "authentication-required",
    )
    .await;
    let ok = expect_status(
        app.post_json(
            "/api/v1/repos/meta/Llama-3.1-8B/license-acceptance",
            Some(&bob),
            &accept(LLAMA, "2024-07-23"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ok["license"], LLAMA);

    let res = app.get(file, Some(&bob)).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Bytes behind an acceptance are never for shared caches, even at an immutable commit.
    assert_eq!(res.headers()["cache-control"], "private, no-cache");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"0123");
    let commit_url = file.replace(
        "/main/",
        &format!(
            "/{}/",
            expect_status(
                app.get("/api/v1/repos/meta/Llama-3.1-8B", Some(&bob)).await,
                StatusCode::OK
            )
            .await["head"]
                .as_str()
                .unwrap_or("main")
        ),
    );
    let pinned = app.get(&commit_url, Some(&bob)).await;
    assert_eq!(pinned.status(), StatusCode::OK);
    assert_eq!(pinned.headers()["cache-control"], "private, no-cache");
    assert_eq!(
        app.get("/api/models/meta/Llama-3.1-8B/auth-check", Some(&bob))
            .await
            .status(),
        StatusCode::OK
    );

    // Owners can export who accepted what; others cannot.
    let list = expect_status(
        app.get(
            "/api/v1/repos/meta/Llama-3.1-8B/license-acceptances",
            Some(&meta),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["acceptances"][0]["user"], "bob");
    assert_eq!(list["acceptances"][0]["license_version"], "2024-07-23");
    expect_error(
        app.get(
            "/api/v1/repos/meta/Llama-3.1-8B/license-acceptances",
            Some(&bob),
        )
        .await,
        StatusCode::FORBIDDEN,
        "insufficient-role",
    )
    .await;

    // A permissive model needs no acceptance.
    app.create_repo(&meta, "meta", "tiny", "public").await;
    app.commit_files(
        &meta,
        "meta/tiny",
        &[("README.md", b"---\nlicense: mit\n---\n"), ("w.bin", b"x")],
    )
    .await;
    assert_eq!(
        app.get("/meta/tiny/resolve/main/w.bin", None)
            .await
            .status(),
        StatusCode::OK
    );
}
