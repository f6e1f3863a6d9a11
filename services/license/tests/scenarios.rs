//! Compliance questions beyond the shared corpus, each pinned to the clause that decides it.

use kaiyuan_license::card::CardMeta;
use kaiyuan_license::catalog::catalog;
use kaiyuan_license::lineage::{Chain, LineageFile};
use kaiyuan_license::{
    Decision, ModelFacts, Policy, Purpose, Report, TextFile, UseContext, evaluate,
};

const LLAMA31: &str = "LicenseRef-scancode-llama-3.1-license-2024";

fn text(id: &str) -> String {
    catalog().texts(id)[0].replace("<year> <copyright holders>", "2026 Acme")
}

struct Model {
    facts: ModelFacts,
    lineage: LineageFile,
}

fn model(name: &str, license: &str) -> Model {
    let facts = ModelFacts {
        name: Some(name.into()),
        card: CardMeta {
            license: Some(license.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Model {
        facts,
        lineage: LineageFile::default(),
    }
}

impl Model {
    fn base(mut self, id: &str, license: &str, relation: &str) -> Self {
        self.facts.card.base_models.push(id.into());
        self.facts.card.base_model_relation = Some(relation.into());
        if !license.is_empty() {
            self.lineage.models.insert(id.into(), license.into());
        }
        self
    }
    fn file(mut self, path: &str, body: String) -> Self {
        self.facts.license_files.push(TextFile {
            path: path.into(),
            text: body,
        });
        self
    }
    fn teacher(mut self, id: &str) -> Self {
        self.facts.card.distilled_from.push(id.into());
        self
    }
    fn run(&self, ctx: UseContext, policy: Option<&str>) -> Report {
        let policy = policy.map(|p| Policy::from_json_or_yaml(p).unwrap());
        evaluate(
            &self.facts,
            &Chain {
                file: Some(&self.lineage),
                inner: None,
            },
            policy.as_ref(),
            &ctx,
        )
    }
    fn commercial(&self) -> Report {
        self.run(UseContext::default(), None)
    }
}

fn codes(r: &Report) -> Vec<&str> {
    r.findings.iter().map(|f| f.code.as_str()).collect()
}

#[test]
fn llama_3_names_need_the_llama_3_prefix_with_any_separator() {
    let ok =
        model("acme/Llama-3-Acme-8B", "llama3").base("meta-llama/Meta-Llama-3-8B", "", "finetune");
    assert!(
        !codes(&ok.commercial()).contains(&"naming-violation"),
        "{:?}",
        ok.commercial().findings
    );
    let bad =
        model("acme/Acme-Llama-3-8B", "llama3").base("meta-llama/Meta-Llama-3-8B", "", "finetune");
    let r = bad.commercial();
    assert_eq!(r.decision, Decision::Deny);
    assert!(codes(&r).contains(&"naming-violation"));
}

#[test]
fn llama_3_outputs_may_not_train_other_families_but_may_train_llama_3() {
    let mistral = model("acme/mistral-distilled", "apache-2.0")
        .base("mistralai/Mistral-7B-v0.1", "", "finetune")
        .teacher("meta-llama/Meta-Llama-3-70B-Instruct");
    let r = mistral.commercial();
    assert_eq!(r.decision, Decision::Deny);
    assert!(
        codes(&r).contains(&"base-license-violation"),
        "{:?}",
        r.findings
    );
    let llama = model("acme/Llama-3-distilled", "llama3")
        .base("meta-llama/Meta-Llama-3-8B", "", "finetune")
        .teacher("meta-llama/Meta-Llama-3-70B-Instruct");
    assert!(
        !llama
            .commercial()
            .findings
            .iter()
            .any(|f| f.message.contains("improve any other"))
    );
}

#[test]
fn a_rail_derivative_under_apache_passes_when_it_ships_attachment_a() {
    let rail = "LicenseRef-scancode-bigscience-open-rail-m";
    let canonical = text(rail);
    let attachment = &canonical[canonical.to_lowercase().rfind("attachment a").unwrap()..];
    let without = model("acme/bloomz-ft", "apache-2.0")
        .base("bigscience/bloomz", "bigscience-openrail-m", "finetune")
        .file("LICENSE", text("Apache-2.0"));
    assert!(codes(&without.commercial()).contains(&"restriction-not-passed-down"));
    let with = model("acme/bloomz-ft", "apache-2.0")
        .base("bigscience/bloomz", "bigscience-openrail-m", "finetune")
        .file(
            "LICENSE",
            format!("{}\n\nUSE RESTRICTIONS\n\n{attachment}", text("Apache-2.0")),
        );
    let r = with.commercial();
    assert!(
        !codes(&r).contains(&"restriction-not-passed-down"),
        "{:?}",
        r.findings
    );
}

#[test]
fn share_alike_bases_cannot_be_relabelled() {
    let r = model("acme/wiki-ft", "mit")
        .base("someone/wiki-base", "cc-by-sa-4.0", "finetune")
        .commercial();
    assert_eq!(r.decision, Decision::Deny);
    assert!(codes(&r).contains(&"base-license-violation"));
    let r = model("acme/wiki-ft", "cc-by-sa-4.0")
        .base("someone/wiki-base", "cc-by-sa-4.0", "finetune")
        .commercial();
    assert!(
        !codes(&r).contains(&"base-license-violation"),
        "{:?}",
        r.findings
    );
}

#[test]
fn merges_of_llama_3_with_another_family_and_of_two_copylefts_need_review() {
    let r = model("acme/Llama-3-gemma-merge", "llama3")
        .base("meta-llama/Meta-Llama-3-8B", "", "merge")
        .base("google/gemma-7b", "", "merge")
        .commercial();
    assert!(
        codes(&r).contains(&"incompatible-licenses"),
        "{:?}",
        r.findings
    );
    let r = model("acme/copyleft-merge", "gpl-3.0")
        .base("a/gpl", "gpl-3.0", "merge")
        .base("b/sa", "cc-by-sa-4.0", "merge")
        .commercial();
    assert!(codes(&r).contains(&"incompatible-licenses"));
    assert_ne!(r.decision, Decision::Allow);
}

#[test]
fn thresholds_regions_domains_and_termination() {
    let qwen = model("Qwen/Qwen2.5-72B-Instruct", "other")
        .file("LICENSE", text("LicenseRef-scancode-qwen-2024"));
    let big = UseContext {
        mau: Some(150_000_000),
        ..Default::default()
    };
    assert_eq!(
        qwen.run(big, None).decision,
        Decision::Deny,
        "Qwen's 100M MAU test is current"
    );
    let small = UseContext {
        mau: Some(5_000_000),
        ..Default::default()
    };
    assert_eq!(
        qwen.run(small, None).decision,
        Decision::AllowWithObligations
    );

    let llama = model("meta-llama/Llama-3.1-8B", "llama3.1").file("LICENSE", text(LLAMA31));
    let mut at_release = UseContext::default();
    at_release.mau_history.insert("2024-06".into(), 800_000_000);
    assert_eq!(
        llama.run(at_release, None).decision,
        Decision::Deny,
        "over 700M in the month before release"
    );

    let mut vision = model("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama3.2");
    vision.facts.card.pipeline_tag = Some("image-text-to-text".into());
    let eu = UseContext {
        region: Some("FR".into()),
        ..Default::default()
    };
    let r = vision.run(eu.clone(), None);
    assert_eq!(r.decision, Decision::Deny);
    assert!(codes(&r).contains(&"use-not-permitted"));
    let end_user = UseContext {
        integrated_end_user: true,
        ..eu
    };
    assert_ne!(
        vision.run(end_user, None).decision,
        Decision::Deny,
        "end users of products are not affected"
    );

    let rail = model("acme/sd-ft", "creativeml-openrail-m");
    let medical = UseContext {
        domains: vec!["medical-advice".into()],
        ..Default::default()
    };
    assert_eq!(rail.run(medical, None).decision, Decision::Deny);

    let sued = UseContext {
        events: vec!["patent-litigation".into()],
        ..Default::default()
    };
    assert_eq!(
        llama.run(sued.clone(), None).decision,
        Decision::Deny,
        "an IP suit against Meta ends the licence"
    );
    assert_ne!(
        model("acme/mit", "mit").run(sued, None).decision,
        Decision::Deny,
        "MIT has no termination clause"
    );
}

#[test]
fn unknown_and_missing_licences_are_never_permissive() {
    let r = model("acme/x", "NOASSERTION").commercial();
    assert_eq!(r.decision, Decision::Deny);
    assert!(codes(&r).contains(&"missing-license"));
    let r = model("acme/x", "LicenseRef-Acme-Custom-1").commercial();
    assert_eq!(r.decision, Decision::FlagReview);
    let r = model("acme/x", "LicenseRef-Acme-Custom-1")
        .run(UseContext::default(), Some(r#"{"allow": ["permissive"]}"#));
    assert_eq!(r.decision, Decision::Deny);
    let r = model("acme/x", "openrail").commercial();
    assert_eq!(
        r.decision,
        Decision::FlagReview,
        "the generic tag needs the licence file: {:?}",
        r.findings
    );
}

#[test]
fn spdx_ids_without_an_spdx_signal_are_decided_by_their_scancode_category() {
    let research = UseContext {
        purpose: Purpose::Research,
        ..Default::default()
    };
    let with_text = |id: &str| model("acme/x", id).file("LICENSE", text(id));
    // ScanCode Permissive (the zlib-style Cube licence): allowed, no review.
    let r = with_text("Cube").commercial();
    assert_eq!(r.decision, Decision::Allow, "{:?}", r.findings);
    // ScanCode Source-available (BUSL 1.1 allows non-production use): research is allowed,
    // commercial use goes to a person.
    let r = with_text("BUSL-1.1").commercial();
    assert_eq!(r.decision, Decision::FlagReview, "{:?}", r.findings);
    assert_eq!(
        with_text("BUSL-1.1").run(research.clone(), None).decision,
        Decision::Allow
    );
    // Non-Commercial Government Licence: denied for commercial use.
    let r = with_text("NCGL-UK-2.0").commercial();
    assert_eq!(r.decision, Decision::Deny, "{:?}", r.findings);
    // Newer on the SPDX list than the ScanCode data: the category reviewed from the text
    // (catalog/reviewed-categories.toml). The ESA licence's permissive type is allowed; UnRAR,
    // which may not be used to re-create the RAR algorithm, goes to a person.
    let r = with_text("ESA-PL-permissive-2.4").commercial();
    assert_eq!(r.decision, Decision::Allow, "{:?}", r.findings);
    assert!(!codes(&r).contains(&"unknown-license"));
    let r = with_text("UnRAR").commercial();
    assert_eq!(r.decision, Decision::FlagReview, "{:?}", r.findings);
    // NOASSERTION is not a licence: still unknown.
    let r = model("acme/x", "NOASSERTION").commercial();
    assert_ne!(r.decision, Decision::Allow, "{:?}", r.findings);
}

#[test]
fn license_links_and_gated_prompts_are_evidence() {
    let mut m = model("acme/x", "apache-2.0");
    m.facts.card.license_link = Some("https://ai.google.dev/gemma/terms".into());
    let r = m.commercial();
    assert!(
        codes(&r).contains(&"declared-detected-mismatch"),
        "{:?}",
        r.findings
    );
    assert!(
        r.effective
            .as_deref()
            .unwrap()
            .contains("LicenseRef-Gemma-ToU")
    );

    let mut m = model("acme/y", "mit");
    m.facts.card.gated_prompt = Some(text(LLAMA31));
    let r = m.commercial();
    assert!(codes(&r).contains(&"declared-detected-mismatch"));
    assert!(r.detected.iter().any(|d| d.id == LLAMA31));
}

#[test]
fn research_use_of_research_licences_is_allowed() {
    let m = model("apple/DepthPro", "apple-amlr");
    let research = UseContext {
        purpose: Purpose::Research,
        ..Default::default()
    };
    assert!(matches!(
        m.run(research, None).decision,
        Decision::Allow | Decision::AllowWithObligations
    ));
    assert_eq!(m.commercial().decision, Decision::Deny);
}

#[test]
fn revenue_thresholds_and_ambiguous_tags() {
    let m = model("stabilityai/stable-diffusion-3.5-medium", "other");
    let mut m = m;
    m.facts.card.license_name = Some("stabilityai-ai-community".into());
    let small = UseContext {
        annual_revenue: Some(200_000),
        ..Default::default()
    };
    assert_eq!(m.run(small, None).decision, Decision::AllowWithObligations);
    let big = UseContext {
        annual_revenue: Some(5_000_000),
        ..Default::default()
    };
    assert_eq!(m.run(big, None).decision, Decision::Deny);
    assert_eq!(
        m.commercial().decision,
        Decision::FlagReview,
        "revenue unknown"
    );
    // Tags that name a family, not a licence, are accepted but never guessed: the licence
    // file must say which variant applies, and until it does a person reviews.
    for tag in ["bsd", "gpl", "lgpl", "cc", "gfdl", "openrail"] {
        let r = model("acme/x", tag).commercial();
        assert!(
            !r.has("invalid-expression") && r.has("unknown-license"),
            "{tag}: {:?}",
            r.findings
        );
        assert_eq!(r.decision, Decision::FlagReview, "{tag}");
    }
    // The shipped text resolves the family: a `gpl` model with the GPL-3.0 text.
    let gpl = model("acme/x", "gpl")
        .file("LICENSE", text("GPL-3.0-only"))
        .commercial();
    assert_eq!(
        gpl.effective.as_deref(),
        Some("GPL-3.0-only"),
        "{:?}",
        gpl.findings
    );
    assert!(gpl.has("variant-resolved") && !gpl.has("declared-detected-mismatch"));
    assert_eq!(gpl.decision, Decision::Allow, "{:?}", gpl.findings);
    assert_eq!(
        model("acme/x", "lgpl-lr")
            .commercial()
            .expression
            .as_deref(),
        Some("LGPLLR")
    );
    assert_eq!(
        model("acme/x", "fair-noncommercial-research-license")
            .commercial()
            .decision,
        Decision::Deny
    );
}
