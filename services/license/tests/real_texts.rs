//! The licensors' own licence files (tests/real_texts/, sources in tests/real_texts/SOURCES.md)
//! audited as a model repository ships them, with the scenarios their clauses define.

use kaiyuan_license::card::CardMeta;
use kaiyuan_license::catalog::{Commercial, catalog};
use kaiyuan_license::detect::detect_text;
use kaiyuan_license::lineage::{Chain, LineageFile};
use kaiyuan_license::{Decision, ModelFacts, Purpose, Report, TextFile, UseContext, evaluate};

fn real(name: &str) -> String {
    let path = format!("{}/tests/real_texts/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn audit(
    license: &str,
    license_name: Option<&str>,
    files: &[(&str, String)],
    ctx: UseContext,
) -> Report {
    let facts = ModelFacts {
        name: Some("acme/model".into()),
        card: CardMeta {
            license: Some(license.into()),
            license_name: license_name.map(String::from),
            ..Default::default()
        },
        license_files: files
            .iter()
            .map(|(path, text)| TextFile {
                path: path.to_string(),
                text: text.clone(),
            })
            .collect(),
        ..Default::default()
    };
    let lineage = LineageFile::default();
    evaluate(
        &facts,
        &Chain {
            file: Some(&lineage),
            inner: None,
        },
        None,
        &ctx,
    )
}

fn purpose(p: Purpose) -> UseContext {
    UseContext {
        purpose: p,
        ..Default::default()
    }
}

/// (fixture, licence it must be read as, commercial use allowed by its terms)
const OFFICIAL: &[(&str, &str, Commercial)] = &[
    (
        "llama3-LICENSE.txt",
        "LicenseRef-Llama-3-Community",
        Commercial::Conditional,
    ),
    (
        "tongyi-qianwen-research-LICENSE.txt",
        "LicenseRef-Tongyi-Qianwen-Research",
        Commercial::No,
    ),
    (
        "stability-ai-nc-research-community-WEIGHTS_LICENSE.txt",
        "LicenseRef-StabilityAI-NC-Research-Community",
        Commercial::No,
    ),
    (
        "deepfloyd-if-LICENSE-MODEL.txt",
        "LicenseRef-DeepFloyd-IF",
        Commercial::No,
    ),
    (
        "minimax-LICENSE-MODEL.txt",
        "LicenseRef-MiniMax-Model",
        Commercial::Yes,
    ),
    (
        "sdxl-openrail++-m-LICENSE.txt",
        "LicenseRef-scancode-bigscience-open-rail-m2",
        Commercial::Yes,
    ),
    (
        "sd2-openrail++-m-LICENSE-MODEL.txt",
        "LicenseRef-scancode-bigscience-open-rail-m2",
        Commercial::Yes,
    ),
    (
        "llama2-LICENSE.txt",
        "LicenseRef-scancode-llama-2-license-2023",
        Commercial::Conditional,
    ),
    (
        "llama3_1-LICENSE.txt",
        "LicenseRef-scancode-llama-3.1-license-2024",
        Commercial::Conditional,
    ),
    (
        "llama3_2-LICENSE.txt",
        "LicenseRef-scancode-llama-3.2-license-2024",
        Commercial::Conditional,
    ),
    (
        "llama3_3-LICENSE.txt",
        "LicenseRef-scancode-llama-3.3-license-2024",
        Commercial::Conditional,
    ),
    (
        "llama4-LICENSE.txt",
        "LicenseRef-scancode-llama-4-cla-2025",
        Commercial::Conditional,
    ),
    (
        "deepseek-v3-LICENSE-MODEL.txt",
        "LicenseRef-scancode-deepseek-la-1.0",
        Commercial::Yes,
    ),
    (
        "tongyi-qianwen-LICENSE.txt",
        "LicenseRef-scancode-tongyi-qianwen-2023",
        Commercial::Conditional,
    ),
    (
        "tongyi-qianwen-qwen-vl-LICENSE.txt",
        "LicenseRef-scancode-tongyi-qianwen-2023",
        Commercial::Conditional,
    ),
    (
        "apple-amlr-ml-starflow-LICENSE_MODEL.txt",
        "LicenseRef-Apple-AMLR",
        Commercial::No,
    ),
    (
        "apple-ascl-ml-depth-pro-LICENSE.txt",
        "AML",
        Commercial::Yes,
    ),
    (
        "stability-ai-nc-community-sv3d-LICENSE.txt",
        "LicenseRef-StabilityAI-NC-Research-Community",
        Commercial::No,
    ),
    (
        "stability-ai-community-marble-LICENSE.txt",
        "LicenseRef-StabilityAI-Community",
        Commercial::Conditional,
    ),
];

#[test]
fn every_official_text_is_read_as_its_own_unmodified_licence() {
    let mut wrong = vec![];
    for (file, id, _) in OFFICIAL {
        let d = detect_text(file, &real(file));
        if d.len() != 1 || d[0].id != *id || d[0].modified || d[0].confidence < 0.95 {
            wrong.push(format!("{file}: {d:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    for (file, id, commercial) in OFFICIAL {
        let d = detect_text(file, &real(file));
        assert_eq!(d.len(), 1, "{file}: {d:?}");
        assert_eq!(d[0].id, *id, "{file}");
        assert_eq!(d[0].method, "text", "{file}");
        assert!(d[0].confidence >= 0.95, "{file}: {d:?}");
        assert!(!d[0].modified, "{file}: {:?}", d[0].added_text);
        assert_eq!(catalog().terms(id).commercial, *commercial, "{file}");
    }
}

#[test]
fn each_official_text_shipped_under_its_own_tag_is_no_mismatch() {
    let tags = [
        ("llama3-LICENSE.txt", "llama3", None),
        (
            "tongyi-qianwen-research-LICENSE.txt",
            "other",
            Some("tongyi-qianwen-research"),
        ),
        (
            "stability-ai-nc-research-community-WEIGHTS_LICENSE.txt",
            "other",
            Some("sai-nc-community"),
        ),
        (
            "deepfloyd-if-LICENSE-MODEL.txt",
            "deepfloyd-if-license",
            None,
        ),
        ("minimax-LICENSE-MODEL.txt", "other", Some("minimax")),
        ("sdxl-openrail++-m-LICENSE.txt", "openrail++", None),
        ("sd2-openrail++-m-LICENSE-MODEL.txt", "openrail++", None),
        (
            "tongyi-qianwen-LICENSE.txt",
            "other",
            Some("tongyi-qianwen"),
        ),
        (
            "tongyi-qianwen-qwen-vl-LICENSE.txt",
            "other",
            Some("tongyi-qianwen"),
        ),
        (
            "apple-amlr-ml-starflow-LICENSE_MODEL.txt",
            "apple-amlr",
            None,
        ),
        ("apple-ascl-ml-depth-pro-LICENSE.txt", "apple-ascl", None),
        (
            "stability-ai-nc-community-sv3d-LICENSE.txt",
            "other",
            Some("sai-nc-community"),
        ),
        (
            "stability-ai-community-marble-LICENSE.txt",
            "other",
            Some("stability-ai-community"),
        ),
    ];
    for (file, tag, name) in tags {
        let r = audit(
            tag,
            name,
            &[("LICENSE", real(file))],
            purpose(Purpose::Research),
        );
        assert!(
            !r.has("declared-detected-mismatch") && !r.has("modified-license"),
            "{file}: {:?}",
            r.findings
        );
        assert!(
            matches!(r.decision, Decision::Allow | Decision::AllowWithObligations),
            "{file}: research use {:?} {:?}",
            r.decision,
            r.findings
        );
    }
}

#[test]
fn llama_3_text_is_llama_3_with_its_own_naming_and_threshold() {
    let r = audit(
        "llama3",
        None,
        &[("LICENSE", real("llama3-LICENSE.txt"))],
        purpose(Purpose::Commercial),
    );
    assert_eq!(r.effective.as_deref(), Some("LicenseRef-Llama-3-Community"));
    assert_eq!(r.detected[0].id, "LicenseRef-Llama-3-Community");
    assert_eq!(
        r.decision,
        Decision::AllowWithObligations,
        "{:?}",
        r.findings
    );
    // §2: above 700M MAU in the month before the 18 April 2024 release, no rights at all.
    let mut big = purpose(Purpose::Commercial);
    big.mau_history.insert("2024-03".into(), 800_000_000);
    let r = audit(
        "llama3",
        None,
        &[("LICENSE", real("llama3-LICENSE.txt"))],
        big,
    );
    assert_eq!(r.decision, Decision::Deny, "{:?}", r.findings);
    // Declaring Llama 4 over Meta's Llama 3 text is a real mismatch.
    let r = audit(
        "llama4",
        None,
        &[("LICENSE", real("llama3-LICENSE.txt"))],
        purpose(Purpose::Research),
    );
    assert!(r.has("declared-detected-mismatch"), "{:?}", r.findings);
}

#[test]
fn research_licences_deny_commercial_use_and_allow_research() {
    for (tag, name, file) in [
        (
            "other",
            Some("tongyi-qianwen-research"),
            "tongyi-qianwen-research-LICENSE.txt",
        ),
        (
            "other",
            Some("sai-nc-community"),
            "stability-ai-nc-research-community-WEIGHTS_LICENSE.txt",
        ),
        (
            "deepfloyd-if-license",
            None,
            "deepfloyd-if-LICENSE-MODEL.txt",
        ),
        (
            "apple-amlr",
            None,
            "apple-amlr-ml-starflow-LICENSE_MODEL.txt",
        ),
        (
            "other",
            Some("sai-nc-community"),
            "stability-ai-nc-community-sv3d-LICENSE.txt",
        ),
    ] {
        let files = [("LICENSE", real(file))];
        let r = audit(tag, name, &files, purpose(Purpose::Commercial));
        assert_eq!(r.decision, Decision::Deny, "{file}: {:?}", r.findings);
        assert!(r.has("use-not-permitted"), "{file}");
        let r = audit(tag, name, &files, purpose(Purpose::Research));
        assert_ne!(r.decision, Decision::Deny, "{file}: {:?}", r.findings);
    }
    // The same research text declared as the commercial Tongyi Qianwen licence is caught.
    let r = audit(
        "other",
        Some("tongyi-qianwen"),
        &[("LICENSE", real("tongyi-qianwen-research-LICENSE.txt"))],
        purpose(Purpose::Commercial),
    );
    assert!(r.has("declared-detected-mismatch"), "{:?}", r.findings);
    assert_eq!(r.decision, Decision::Deny, "{:?}", r.findings);
}

#[test]
fn minimax_grants_commercial_use_with_its_prohibited_uses() {
    let files = [("LICENSE-MODEL", real("minimax-LICENSE-MODEL.txt"))];
    let r = audit(
        "other",
        Some("minimax"),
        &files,
        purpose(Purpose::Commercial),
    );
    assert_eq!(
        r.decision,
        Decision::AllowWithObligations,
        "{:?}",
        r.findings
    );
    assert!(
        r.obligations.iter().any(|o| o.contains("use restrictions")),
        "{:?}",
        r.obligations
    );
    let mut military = purpose(Purpose::Commercial);
    military.domains.push("military".into());
    assert_eq!(
        audit("other", Some("minimax"), &files, military).decision,
        Decision::Deny
    );
}

#[test]
fn rail_licences_pass_their_use_restrictions_on() {
    for tag in [
        "openrail++",
        "creativeml-openrail-m",
        "bigscience-openrail-m",
        "bigcode-openrail-m",
        "bigscience-bloom-rail-1.0",
    ] {
        let r = audit(tag, None, &[], purpose(Purpose::Commercial));
        assert_eq!(r.decision, Decision::AllowWithObligations, "{tag}");
        assert!(
            r.obligations
                .iter()
                .any(|o| o.starts_with("pass the use restrictions")),
            "{tag}: {:?}",
            r.obligations
        );
    }
    // The licensor's own files, SDXL's LICENSE.md and Stable Diffusion 2's LICENSE-MODEL:
    // paragraph 5's restrictions are passed down.
    for (file, text) in [
        ("LICENSE.md", "sdxl-openrail++-m-LICENSE.txt"),
        ("LICENSE-MODEL", "sd2-openrail++-m-LICENSE-MODEL.txt"),
    ] {
        let r = audit(
            "openrail++",
            None,
            &[(file, real(text))],
            purpose(Purpose::Commercial),
        );
        assert_eq!(
            r.decision,
            Decision::AllowWithObligations,
            "{text}: {:?}",
            r.findings
        );
        assert!(
            r.obligations
                .iter()
                .any(|o| o.starts_with("pass the use restrictions")),
            "{text}: {:?}",
            r.obligations
        );
    }
}

#[test]
fn code_and_model_licences_are_told_apart() {
    // DeepSeek's layout: MIT for the code, the DeepSeek licence for the weights.
    let mit = spdx::license_id("MIT")
        .unwrap()
        .text()
        .replace("<year> <copyright holders>", "2023 DeepSeek");
    let model = catalog().texts("LicenseRef-scancode-deepseek-la-1.0")[0].to_string();
    let files = [
        ("LICENSE-CODE", mit.clone()),
        ("LICENSE-MODEL", model.clone()),
    ];
    let r = audit(
        "other",
        Some("deepseek"),
        &files,
        purpose(Purpose::Commercial),
    );
    assert!(!r.has("declared-detected-mismatch"), "{:?}", r.findings);
    assert!(r.has("code-license"), "{:?}", r.findings);
    let scopes: Vec<(&str, Option<&str>)> = r
        .detected
        .iter()
        .map(|d| (d.id.as_str(), d.scope.as_deref()))
        .collect();
    assert!(scopes.contains(&("MIT", Some("code"))), "{scopes:?}");
    assert!(
        scopes.contains(&("LicenseRef-scancode-deepseek-la-1.0", Some("model"))),
        "{scopes:?}"
    );
    // Declaring the code's licence for the model is still a mismatch.
    let r = audit("mit", None, &files, purpose(Purpose::Commercial));
    assert!(r.has("declared-detected-mismatch"), "{:?}", r.findings);
    // A use policy beside the licence is neither unknown nor a second licence.
    let aup = real("llama3-LICENSE.txt");
    let aup = &aup[aup.find("Meta Llama 3 Acceptable Use Policy").unwrap()..];
    let r = audit(
        "llama3",
        None,
        &[
            ("LICENSE", real("llama3-LICENSE.txt")),
            ("USE_POLICY.md", aup.to_string()),
        ],
        purpose(Purpose::Research),
    );
    assert!(
        !r.has("unknown-license") && !r.has("declared-detected-mismatch"),
        "{:?}",
        r.findings
    );
    // A licence in a subfolder belongs to a component, not to the model.
    let r = audit(
        "llama3",
        None,
        &[
            ("LICENSE", real("llama3-LICENSE.txt")),
            ("text_encoder/LICENSE", mit),
        ],
        purpose(Purpose::Research),
    );
    assert!(!r.has("declared-detected-mismatch"), "{:?}", r.findings);
}

/// Meta's own LICENSE files, version by version: (fixture, card tag, catalog id, the month
/// before the version's release date, whether the version names derivatives "Llama..." and
/// asks for "Built with Llama", whether EU-domiciled users lose rights for multimodal models).
const LLAMA: &[(&str, &str, &str, &str, bool, bool)] = &[
    (
        "llama2-LICENSE.txt",
        "llama2",
        "LicenseRef-scancode-llama-2-license-2023",
        "2023-06",
        false,
        false,
    ),
    (
        "llama3_1-LICENSE.txt",
        "llama3.1",
        "LicenseRef-scancode-llama-3.1-license-2024",
        "2024-06",
        true,
        false,
    ),
    (
        "llama3_2-LICENSE.txt",
        "llama3.2",
        "LicenseRef-scancode-llama-3.2-license-2024",
        "2024-08",
        true,
        true,
    ),
    (
        "llama3_3-LICENSE.txt",
        "llama3.3",
        "LicenseRef-scancode-llama-3.3-license-2024",
        "2024-11",
        true,
        true,
    ),
    (
        "llama4-LICENSE.txt",
        "llama4",
        "LicenseRef-scancode-llama-4-cla-2025",
        "2025-03",
        true,
        true,
    ),
];

fn words(s: &str) -> String {
    s.to_lowercase()
        .replace(['“', '”'], "\"")
        .replace("©", "(c)")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn each_llama_version_is_its_own_licence_with_its_release_date_threshold_and_notice() {
    for (file, tag, id, month_before, llama_naming, eu_multimodal) in LLAMA {
        let text = real(file);
        let files = [("LICENSE", text.clone())];
        // Read as this version, not a sibling (the texts differ only in names and dates).
        let d = detect_text(file, &text);
        assert_eq!(d.len(), 1, "{file}: {d:?}");
        assert_eq!(d[0].id, *id, "{file}");
        let r = audit(tag, None, &files, purpose(Purpose::Commercial));
        assert_eq!(r.effective.as_deref(), Some(*id), "{file}");
        assert!(
            !r.has("declared-detected-mismatch"),
            "{file}: {:?}",
            r.findings
        );
        assert_eq!(
            r.decision,
            Decision::AllowWithObligations,
            "{file}: {:?}",
            r.findings
        );
        // §1.b.iii: the Notice sentence the catalog asks derivatives to ship is the one this
        // text states.
        let terms = catalog().terms(id);
        let notice = terms
            .notice_file
            .as_deref()
            .unwrap_or_else(|| panic!("{file}: no notice sentence"));
        assert!(
            words(&text).contains(&words(notice)),
            "{file}: the notice {notice:?} is not the licence's own"
        );
        // §1.b.i (3.1 and later): "Built with Llama" and the "Llama" name prefix.
        assert_eq!(
            terms.name_prefix.as_deref() == Some("Llama"),
            *llama_naming,
            "{file}: {:?}",
            terms.name_prefix
        );
        assert_eq!(
            terms.display.iter().any(|p| p == "Built with Llama"),
            *llama_naming,
            "{file}: {:?}",
            terms.display
        );
        // §2: 700M monthly active users in the calendar month before the release date.
        let mut big = purpose(Purpose::Commercial);
        big.mau_history
            .insert(month_before.to_string(), 701_000_000);
        let r = audit(tag, None, &files, big);
        assert_eq!(r.decision, Decision::Deny, "{file}: {:?}", r.findings);
        let mut grew_later = purpose(Purpose::Commercial);
        grew_later
            .mau_history
            .insert(month_before.to_string(), 699_000_000);
        grew_later.mau = Some(2_000_000_000);
        let r = audit(tag, None, &files, grew_later);
        assert_eq!(
            r.decision,
            Decision::AllowWithObligations,
            "{file}: {:?}",
            r.findings
        );
        // §2 does not apply to end users of an integrated product.
        let mut end_user = purpose(Purpose::Commercial);
        end_user
            .mau_history
            .insert(month_before.to_string(), 900_000_000);
        end_user.integrated_end_user = true;
        let r = audit(tag, None, &files, end_user);
        assert_ne!(r.decision, Decision::Deny, "{file}: {:?}", r.findings);
        // The 3.2+ use policies withhold multimodal rights from EU-domiciled users.
        assert_eq!(terms.eu_multimodal_excluded, *eu_multimodal, "{file}");
    }
    // Llama 4 models are all multimodal: an EU company gets no rights; Llama 3.1 has no
    // such clause.
    let mut eu = purpose(Purpose::Commercial);
    eu.region = Some("EU".into());
    let r = audit(
        "llama4",
        None,
        &[("LICENSE", real("llama4-LICENSE.txt"))],
        eu.clone(),
    );
    assert_eq!(r.decision, Decision::Deny, "{:?}", r.findings);
    let r = audit(
        "llama3.1",
        None,
        &[("LICENSE", real("llama3_1-LICENSE.txt"))],
        eu,
    );
    assert_ne!(r.decision, Decision::Deny, "{:?}", r.findings);
}

#[test]
fn a_llama_text_declared_as_another_llama_version_is_a_mismatch() {
    for (file, _, id, ..) in LLAMA {
        for (_, other_tag, other_id, ..) in LLAMA {
            if id == other_id {
                continue;
            }
            let r = audit(
                other_tag,
                None,
                &[("LICENSE", real(file))],
                purpose(Purpose::Research),
            );
            assert!(
                r.has("declared-detected-mismatch"),
                "{file} declared {other_tag}: {:?}",
                r.findings
            );
        }
    }
}

#[test]
fn deepseek_model_licence_passes_its_restrictions_on_and_forbids_military_use() {
    let files = [
        ("LICENSE-MODEL", real("deepseek-v3-LICENSE-MODEL.txt")),
        (
            "LICENSE-CODE",
            spdx::license_id("MIT")
                .unwrap()
                .text()
                .replace("<year> <copyright holders>", "2023 DeepSeek"),
        ),
    ];
    let r = audit(
        "other",
        Some("deepseek"),
        &files,
        purpose(Purpose::Commercial),
    );
    assert_eq!(
        r.effective.as_deref(),
        Some("LicenseRef-scancode-deepseek-la-1.0")
    );
    assert!(!r.has("declared-detected-mismatch"), "{:?}", r.findings);
    assert_eq!(
        r.decision,
        Decision::AllowWithObligations,
        "{:?}",
        r.findings
    );
    // §4.a: Attachment A must be an enforceable provision of any downstream licence.
    assert!(
        r.obligations
            .iter()
            .any(|o| o.contains("use restrictions") && o.contains("enforceable")),
        "{:?}",
        r.obligations
    );
    // §4.b-c: a copy of the licence goes to every recipient, modified files are marked.
    let terms = catalog().terms("LicenseRef-scancode-deepseek-la-1.0");
    assert_ne!(
        terms.license_copy,
        kaiyuan_license::catalog::LicenseCopy::None
    );
    assert!(terms.mark_changes);
    // Attachment A: "For military use in any way".
    let mut military = purpose(Purpose::Commercial);
    military.domains.push("military".into());
    assert_eq!(
        audit("other", Some("deepseek"), &files, military).decision,
        Decision::Deny
    );
    // The text carries its own restrictions: a derivative shipping it passes them on.
    assert!(kaiyuan_license::detect::carries_restrictions(
        "LicenseRef-scancode-deepseek-la-1.0",
        &[&real("deepseek-v3-LICENSE-MODEL.txt")]
    ));
}

/// A fine-tune of `base` (under `base_license`) published under `own`, shipping `files`.
fn derivative(
    own: &str,
    base: &str,
    base_license: &str,
    files: &[(&str, String)],
    notice: Option<&str>,
    ctx: UseContext,
) -> Report {
    let facts = ModelFacts {
        name: Some("acme/model-ft".into()),
        card: CardMeta {
            license: Some(own.into()),
            base_models: vec![base.into()],
            base_model_relation: Some("finetune".into()),
            ..Default::default()
        },
        license_files: files
            .iter()
            .map(|(path, text)| TextFile {
                path: path.to_string(),
                text: text.clone(),
            })
            .collect(),
        notice_files: notice
            .map(|n| TextFile {
                path: "NOTICE".into(),
                text: n.into(),
            })
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let mut lineage = LineageFile::default();
    lineage.models.insert(base.into(), base_license.into());
    evaluate(
        &facts,
        &Chain {
            file: Some(&lineage),
            inner: None,
        },
        None,
        &ctx,
    )
}

#[test]
fn tongyi_qianwen_texts_threshold_notice_and_outputs() {
    const ID: &str = "LicenseRef-scancode-tongyi-qianwen-2023";
    for file in [
        "tongyi-qianwen-LICENSE.txt",
        "tongyi-qianwen-qwen-vl-LICENSE.txt",
    ] {
        let text = real(file);
        let files = [("LICENSE", text.clone())];
        let r = audit(
            "other",
            Some("tongyi-qianwen"),
            &files,
            purpose(Purpose::Commercial),
        );
        assert_eq!(r.effective.as_deref(), Some(ID), "{file}");
        assert_eq!(
            r.decision,
            Decision::AllowWithObligations,
            "{file}: {:?}",
            r.findings
        );
        // §4: commercial use by a product above 100 million monthly active users needs
        // Alibaba Cloud's licence ("You cannot exercise your rights ... without").
        let mut big = purpose(Purpose::Commercial);
        big.mau = Some(150_000_000);
        let r = audit("other", Some("tongyi-qianwen"), &files, big);
        assert_eq!(r.decision, Decision::Deny, "{file}: {:?}", r.findings);
        // The commercial text is not the research licence (nor the later Qwen licence).
        for other in ["tongyi-qianwen-research", "qwen-research"] {
            let r = audit("other", Some(other), &files, purpose(Purpose::Research));
            assert!(
                r.has("declared-detected-mismatch"),
                "{file} declared {other}: {:?}",
                r.findings
            );
        }
        // §3.c: the Notice sentence the catalog asks for is the licence's own.
        let terms = catalog().terms(ID);
        let notice = terms.notice_file.as_deref().expect("notice sentence");
        assert!(words(&text).contains(&words(notice)), "{file}: {notice:?}");
        assert!(terms.mark_changes, "§3.b");
    }
    // A fine-tune shipping the licence but no NOTICE file misses §3.c's condition.
    let files = [("LICENSE", real("tongyi-qianwen-LICENSE.txt"))];
    let r = derivative(
        "other",
        "Qwen/Qwen-7B",
        ID,
        &files,
        None,
        purpose(Purpose::Research),
    );
    assert!(r.has("missing-notice"), "{:?}", r.findings);
    let notice = catalog().terms(ID).notice_file.unwrap();
    let mut notice_findings = derivative(
        "other",
        "Qwen/Qwen-7B",
        ID,
        &files,
        Some(&notice),
        purpose(Purpose::Research),
    );
    notice_findings
        .findings
        .retain(|f| f.code == "missing-notice");
    assert!(
        notice_findings.findings.is_empty(),
        "{:?}",
        notice_findings.findings
    );
    // Relabelled as Apache-2.0, the derivative breaks "keep the terms" (§3.d).
    let apache = spdx::license_id("Apache-2.0").unwrap().text().to_string();
    let r = derivative(
        "apache-2.0",
        "Qwen/Qwen-7B",
        ID,
        &[("LICENSE", apache)],
        Some(&notice),
        purpose(Purpose::Research),
    );
    assert!(r.has("base-license-violation"), "{:?}", r.findings);
    // §5.b: its outputs may not improve another large language model.
    let r = model_distilled_from("Qwen/Qwen-7B", ID)(&files);
    assert!(r.has("base-license-violation"), "{:?}", r.findings);
    let r = model_distilled_from("Qwen/Qwen-7B", "Apache-2.0")(&files);
    assert!(!r.has("base-license-violation"), "{:?}", r.findings);
}

/// A Llama 3.1 fine-tune distilled from `teacher` (under `teacher_license`).
fn model_distilled_from(
    teacher: &str,
    teacher_license: &str,
) -> impl Fn(&[(&str, String)]) -> Report {
    let teacher = teacher.to_string();
    let teacher_license = teacher_license.to_string();
    move |_files| {
        let facts = ModelFacts {
            name: Some("acme/Llama-student".into()),
            card: CardMeta {
                license: Some("llama3.1".into()),
                base_models: vec!["meta-llama/Llama-3.1-8B".into()],
                base_model_relation: Some("finetune".into()),
                distilled_from: vec![teacher.clone()],
                ..Default::default()
            },
            license_files: vec![TextFile {
                path: "LICENSE".into(),
                text: real("llama3_1-LICENSE.txt"),
            }],
            ..Default::default()
        };
        let mut lineage = LineageFile::default();
        lineage.models.insert(
            "meta-llama/Llama-3.1-8B".into(),
            "LicenseRef-scancode-llama-3.1-license-2024".into(),
        );
        lineage
            .models
            .insert(teacher.clone(), teacher_license.clone());
        evaluate(
            &facts,
            &Chain {
                file: Some(&lineage),
                inner: None,
            },
            None,
            &purpose(Purpose::Research),
        )
    }
}

#[test]
fn apple_amlr_is_research_only_for_the_model_and_its_derivatives() {
    const ID: &str = "LicenseRef-Apple-AMLR";
    let text = real("apple-amlr-ml-starflow-LICENSE_MODEL.txt");
    let files = [("LICENSE_MODEL", text.clone())];
    // §1: "exclusively for Research Purposes", which exclude any commercial product.
    for (p, allowed) in [
        (Purpose::Commercial, false),
        (Purpose::Production, false),
        (Purpose::Research, true),
    ] {
        let r = audit("apple-amlr", None, &files, purpose(p));
        assert_eq!(r.effective.as_deref(), Some(ID));
        assert_eq!(
            r.decision != Decision::Deny,
            allowed,
            "{p:?}: {:?}",
            r.findings
        );
    }
    // §2: the attribution notice is the text's own sentence; derivatives disclose changes.
    let terms = catalog().terms(ID);
    let notice = terms.notice_file.as_deref().expect("notice sentence");
    assert!(words(&text).contains(&words(notice)), "{notice:?}");
    assert!(terms.mark_changes);
    // §1: derivatives are limited to Research Purposes too: relabelling one MIT is a violation,
    // and a derivative without the Agreement or the notice misses §2's conditions.
    let r = derivative(
        "mit",
        "apple/starflow",
        ID,
        &[],
        None,
        purpose(Purpose::Research),
    );
    assert!(r.has("base-license-violation"), "{:?}", r.findings);
    assert!(r.has("missing-notice"), "{:?}", r.findings);
    let r = derivative(
        "apple-amlr",
        "apple/starflow",
        ID,
        &files,
        Some(notice),
        purpose(Purpose::Commercial),
    );
    assert_eq!(r.decision, Decision::Deny, "{:?}", r.findings);
    // Not Apple's permissive sample-code licence.
    let r = audit("apple-ascl", None, &files, purpose(Purpose::Research));
    assert!(r.has("declared-detected-mismatch"), "{:?}", r.findings);
}

#[test]
fn apple_sample_code_licence_is_the_spdx_apple_mit_licence() {
    let text = real("apple-ascl-ml-depth-pro-LICENSE.txt");
    let files = [("LICENSE", text)];
    let r = audit("apple-ascl", None, &files, purpose(Purpose::Commercial));
    assert_eq!(r.effective.as_deref(), Some("AML"));
    assert_eq!(r.decision, Decision::Allow, "{:?}", r.findings);
    assert!(!r.has("modified-license"), "{:?}", r.findings);
    // The catalog's former id still means it.
    let r = audit(
        "LicenseRef-Apple-ASCL",
        None,
        &files,
        purpose(Purpose::Commercial),
    );
    assert!(!r.has("declared-detected-mismatch"), "{:?}", r.findings);
    // Declared as the research-only AMLR, the permissive text contradicts the card.
    let r = audit("apple-amlr", None, &files, purpose(Purpose::Research));
    assert!(r.has("declared-detected-mismatch"), "{:?}", r.findings);
    // A clause added to it is still a modification.
    let added = format!(
        "{}\n\nYou may not use the Apple Software in any commercial product or service whatsoever.\n",
        files[0].1
    );
    let d = detect_text("LICENSE", &added);
    assert!(d[0].modified, "{d:?}");
}

#[test]
fn stability_non_commercial_community_2024_is_the_research_community_licence() {
    const ID: &str = "LicenseRef-StabilityAI-NC-Research-Community";
    let text = real("stability-ai-nc-community-sv3d-LICENSE.txt");
    let files = [("LICENSE", text.clone())];
    // §1.a: Non-Commercial Uses only, which exclude "any production use".
    for (p, allowed) in [
        (Purpose::Commercial, false),
        (Purpose::Production, false),
        (Purpose::Research, true),
    ] {
        let r = audit("other", Some("sai-nc-community"), &files, purpose(p));
        assert_eq!(r.effective.as_deref(), Some(ID));
        assert_eq!(
            r.decision != Decision::Deny,
            allowed,
            "{p:?}: {:?}",
            r.findings
        );
    }
    // §1.c: the Notice sentence is the one both versions state.
    let notice = catalog().terms(ID).notice_file.expect("notice sentence");
    assert!(words(&text).contains(&words(&notice)));
    assert!(
        words(&real(
            "stability-ai-nc-research-community-WEIGHTS_LICENSE.txt"
        ))
        .contains(&words(&notice))
    );
    // Not the commercial Stability AI Community licence.
    let r = audit(
        "other",
        Some("stability-ai-community"),
        &files,
        purpose(Purpose::Research),
    );
    assert!(r.has("declared-detected-mismatch"), "{:?}", r.findings);
}

#[test]
fn stability_community_licence_is_free_below_a_million_in_revenue() {
    const ID: &str = "LicenseRef-StabilityAI-Community";
    let text = real("stability-ai-community-marble-LICENSE.txt");
    let files = [("LICENSE", text.clone())];
    let with_revenue = |revenue: Option<u64>| UseContext {
        annual_revenue: revenue,
        ..Default::default()
    };
    // §III: commercial use is licensed until annual revenue exceeds USD 1,000,000.
    let r = audit(
        "other",
        Some("stability-ai-community"),
        &files,
        with_revenue(Some(500_000)),
    );
    assert_eq!(r.effective.as_deref(), Some(ID));
    assert_eq!(
        r.decision,
        Decision::AllowWithObligations,
        "{:?}",
        r.findings
    );
    let r = audit(
        "other",
        Some("stability-ai-community"),
        &files,
        with_revenue(Some(2_000_000)),
    );
    assert_eq!(r.decision, Decision::Deny, "{:?}", r.findings);
    let r = audit(
        "other",
        Some("stability-ai-community"),
        &files,
        with_revenue(None),
    );
    assert_eq!(r.decision, Decision::FlagReview, "{:?}", r.findings);
    // §II: research and non-commercial use whatever the revenue.
    let r = audit(
        "other",
        Some("stability-ai-community"),
        &files,
        purpose(Purpose::Research),
    );
    assert!(matches!(
        r.decision,
        Decision::Allow | Decision::AllowWithObligations
    ));
    // §IV.a: "Powered by Stability AI" is displayed.
    let t = catalog().terms(ID);
    assert!(t.display.iter().any(|d| text.contains(d.as_str())));
    // Not the non-commercial research community licence.
    let r = audit(
        "other",
        Some("sai-nc-community"),
        &files,
        purpose(Purpose::Research),
    );
    assert!(r.has("declared-detected-mismatch"), "{:?}", r.findings);
}
