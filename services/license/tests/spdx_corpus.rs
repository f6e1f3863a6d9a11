//! Every licence text on the SPDX list (the texts the `spdx` crate ships), audited as a model
//! that declares that licence and ships its text; every Hugging Face licence tag; and declared
//! licences contradicted by a shipped text of another licence.

#[path = "support/lists.rs"]
mod lists;
use kaiyuan_license::card::CardMeta;
use kaiyuan_license::catalog::catalog;
use kaiyuan_license::detect::same_text;
use kaiyuan_license::expr::{Declared, interpret};
use kaiyuan_license::lineage::{Chain, LineageFile};
use kaiyuan_license::{ModelFacts, Report, TextFile, UseContext, evaluate};
use lists::{DISTINCT_SPDX, HF_TAGS};

fn audit(declared: &str, text: &str) -> Report {
    let facts = ModelFacts {
        name: Some("acme/model".into()),
        card: CardMeta {
            license: Some(declared.into()),
            ..Default::default()
        },
        license_files: vec![TextFile {
            path: "LICENSE".into(),
            text: text.into(),
        }],
        ..Default::default()
    };
    let lineage = LineageFile::default();
    let chain = Chain {
        file: Some(&lineage),
        inner: None,
    };
    evaluate(&facts, &chain, None, &UseContext::default())
}

fn listed() -> impl Iterator<Item = spdx::LicenseId> {
    spdx::identifiers::LICENSES
        .iter()
        .filter(|l| l.flags & spdx::flags::IS_DEPRECATED == 0)
        .filter_map(|l| spdx::license_id(l.name))
        .filter(|l| !["NOASSERTION", "NONE"].contains(&l.name))
}

fn corpus() -> Vec<spdx::LicenseId> {
    listed().collect()
}

#[test]
fn spdx_texts_audited_as_their_own_ids_are_recognised_and_never_contradict_a_shared_text() {
    let corpus = corpus();
    assert!(corpus.len() >= 700, "only {} texts", corpus.len());
    let (mut exact, mut family, mut unknown_terms) = (0, 0, vec![]);
    let mut other = vec![];
    let mut false_mismatch = vec![];
    for l in &corpus {
        let r = audit(l.name, l.text());
        let ids: Vec<&str> = r.detected.iter().map(|d| d.id.as_str()).collect();
        if ids.contains(&l.name) {
            exact += 1;
        } else if ids.iter().any(|d| same_text(d, l.name)) {
            family += 1;
        } else {
            other.push(format!("{} -> {ids:?}", l.name));
        }
        if r.has("declared-detected-mismatch") && ids.iter().all(|d| same_text(d, l.name)) {
            false_mismatch.push(l.name);
        }
        if catalog().terms(l.name).is_unknown() {
            unknown_terms.push(l.name);
        }
    }
    let recognised = exact + family;
    println!(
        "{} texts: {exact} exact, {family} same text family, {} other; {} with unknown terms",
        corpus.len(),
        other.len(),
        unknown_terms.len()
    );
    assert!(
        recognised * 100 >= corpus.len() * 97,
        "{recognised} of {} recognised: {other:#?}",
        corpus.len()
    );
    assert!(false_mismatch.is_empty(), "{false_mismatch:?}");
    // Known permissive, copyleft and Creative Commons licences have default terms.
    for l in &corpus {
        if l.is_osi_approved() || l.name.starts_with("CC") || l.name.contains("GPL") {
            assert!(!catalog().terms(l.name).is_unknown(), "{}", l.name);
        }
    }
}

#[test]
fn the_gnu_family_and_shared_text_variants_are_no_mismatch() {
    for (declared, text_of) in [
        ("gpl-3.0", "GPL-3.0-only"),
        ("gpl-2.0", "GPL-2.0-only"),
        ("agpl-3.0", "AGPL-3.0-only"),
        ("lgpl-3.0", "LGPL-3.0-only"),
        ("lgpl-2.1", "LGPL-2.1-only"),
        ("LGPL-2.0-only", "LGPL-2.0-only"),
        ("GPL-3.0-or-later", "GPL-3.0-only"),
        ("GPL-2.0-only WITH Classpath-exception-2.0", "GPL-2.0-only"),
        ("MPL-2.0-no-copyleft-exception", "MPL-2.0"),
        ("OFL-1.1-RFN", "OFL-1.1"),
        ("OFL-1.1-no-RFN", "OFL-1.1"),
        ("CAL-1.0-Combined-Work-Exception", "CAL-1.0"),
        ("GFDL-1.3-invariants-only", "GFDL-1.3-only"),
        ("GFDL-1.3-no-invariants-or-later", "GFDL-1.3-only"),
    ] {
        let r = audit(declared, spdx::license_id(text_of).unwrap().text());
        assert!(
            !r.has("declared-detected-mismatch") && !r.has("invalid-expression"),
            "{declared}: {:?}",
            r.findings
        );
        // The declared variant stands.
        let Declared::Valid { expr, .. } = interpret(declared, None) else {
            panic!("{declared}")
        };
        assert_eq!(r.effective, Some(expr.to_string()), "{declared}");
    }
}

/// Licences of distinct families, for contradicted declarations: the SPDX ones and AI licences.
fn distinct() -> Vec<&'static str> {
    let ai = [
        "OpenMDW-1.0",
        "LicenseRef-scancode-llama-3.1-license-2024",
        "LicenseRef-Gemma-ToU",
        "LicenseRef-scancode-deepseek-la-1.0",
        "LicenseRef-scancode-qwen-2024",
    ];
    DISTINCT_SPDX.iter().copied().chain(ai).collect()
}

#[test]
fn a_hundred_contradicted_declarations_are_all_reported() {
    let mut pairs = vec![];
    let distinct = distinct();
    for (i, declared) in distinct.iter().enumerate() {
        for step in [1, 5, 9, 13] {
            let shipped = distinct[(i + step) % distinct.len()];
            pairs.push((*declared, shipped));
        }
    }
    assert_eq!(pairs.len(), 100);
    let mut missed = vec![];
    for (declared, shipped) in &pairs {
        let text = catalog().texts(shipped)[0].replace("<year> <copyright holders>", "2026 Acme");
        let r = audit(declared, &text);
        if !r.has("declared-detected-mismatch") {
            missed.push(format!("{declared} shipping {shipped}: {:?}", r.detected));
        }
    }
    assert!(missed.is_empty(), "{missed:#?}");
}

#[test]
fn every_hugging_face_licence_tag_maps_to_a_licence_with_terms() {
    for (tag, want) in HF_TAGS {
        match interpret(tag, None) {
            Declared::Valid { expr, changes } => {
                assert_eq!(expr.to_string(), *want, "{tag}");
                assert_eq!(changes.is_empty(), tag == want, "{tag}: {changes:?}");
            }
            other => panic!("{tag}: {other:?}"),
        }
        let t = catalog().terms(want);
        // Family tags (`cc`) may leave the terms to the shipped text; all others have terms.
        assert!(
            !t.is_unknown() || t.needs_text,
            "{tag}: {want} has no terms"
        );
    }
    // `unknown` and `other` (without a licence name) state no licence.
    for tag in ["unknown", "other"] {
        assert!(
            matches!(interpret(tag, None), Declared::NoAssertion(_)),
            "{tag}"
        );
    }
}
