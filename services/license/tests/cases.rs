//! Every compliance question of `tests/corpus/license/cases.csv` (the project's licence corpus), turned into a model folder
//! (card, licence files, NOTICE, GGUF header, lineage file) and audited by the engine.
//!
//! The harness translates each row's English evidence into files; the engine sees only the
//! folder, the lineage file, the policy and the use context, as `kaiyuan license audit` does.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use kaiyuan_license::catalog::catalog;
use kaiyuan_license::folder::read_folder;
use kaiyuan_license::lineage::{Chain, LineageFile};
use kaiyuan_license::{Decision, Policy, Purpose, Report, UseContext, evaluate};

fn corpus() -> PathBuf {
    // The corpus lives in the repository, so that a clone alone runs the suite.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/license/cases.csv")
}

/// RFC 4180 rows.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = vec![];
    let mut row = vec![];
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            ('\r', false) => {}
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

struct Case {
    id: String,
    model_name: String,
    model_license: String,
    evidence: String,
    base_model: String,
    base_model_license: String,
    relation: String,
    datasets: String,
    intended_use: String,
    org_policy: String,
    question: String,
    expected: String,
    detail: String,
}

fn cases() -> Vec<Case> {
    let text = fs::read_to_string(corpus()).unwrap();
    let rows = parse_csv(&text);
    let header = &rows[0];
    let col =
        |row: &Vec<String>, name: &str| row[header.iter().position(|h| h == name).unwrap()].clone();
    rows[1..]
        .iter()
        .filter(|r| r.len() == header.len())
        .map(|r| Case {
            id: col(r, "case_id"),
            model_name: col(r, "model_name"),
            model_license: col(r, "model_license"),
            evidence: col(r, "license_file_evidence"),
            base_model: col(r, "base_model"),
            base_model_license: col(r, "base_model_license"),
            relation: col(r, "base_model_relation"),
            datasets: col(r, "dataset_licenses"),
            intended_use: col(r, "intended_use"),
            org_policy: col(r, "org_policy"),
            question: col(r, "question"),
            expected: col(r, "expected_answer"),
            detail: col(r, "expected_detail"),
        })
        .collect()
}

/// "[a, b]" or "a" -> items; parenthetical remarks dropped.
fn items(s: &str) -> Vec<String> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    s.split(',')
        .map(|i| i.split(" (").next().unwrap_or(i).trim().to_string())
        .filter(|i| !i.is_empty())
        .collect()
}

/// A licence named in English -> catalog or SPDX id.
fn licence_named(phrase: &str) -> Option<&'static str> {
    let p = phrase.to_lowercase();
    const NAMES: &[(&str, &str)] = &[
        ("llama 3.2", "LicenseRef-scancode-llama-3.2-license-2024"),
        ("llama 3.1", "LicenseRef-scancode-llama-3.1-license-2024"),
        ("llama 3.3", "LicenseRef-scancode-llama-3.3-license-2024"),
        ("qwen research", "LicenseRef-Qwen-Research"),
        ("deepseek license", "LicenseRef-scancode-deepseek-la-1.0"),
        (
            "bigcode openrail",
            "LicenseRef-scancode-bigcode-open-rail-m-v1",
        ),
        (
            "creativeml",
            "LicenseRef-scancode-stable-diffusion-2022-08-22",
        ),
        ("non-production", "LicenseRef-Mistral-MNPL-0.1"),
        ("apple machine learning research", "LicenseRef-Apple-AMLR"),
        ("nvidia oml", "LicenseRef-NVIDIA-OML"),
        (
            "openmdw license agreement, version 1.1",
            "LicenseRef-scancode-openmdw-1.1",
        ),
        ("openmdw-1.0", "OpenMDW-1.0"),
        ("falcon llm license 1.0", "LicenseRef-TII-Falcon-LLM-1.0"),
        ("noncommercial 4.0", "CC-BY-NC-4.0"),
        ("cc-by-nc-4.0", "CC-BY-NC-4.0"),
        ("cc by 4.0", "CC-BY-4.0"),
        ("gemma", "LicenseRef-Gemma-ToU"),
        ("apache", "Apache-2.0"),
        ("mit", "MIT"),
    ];
    NAMES
        .iter()
        .find(|(needle, _)| p.contains(needle))
        .map(|(_, id)| *id)
}

/// A licence text for an id: the catalog's canonical text, or a title-only stand-in for
/// licences whose text is not bundled.
fn licence_text(id: &str) -> String {
    let t = catalog().terms(id);
    match catalog().texts(id).first() {
        Some(text) => text.replace("<year> <copyright holders>", "2025 Acme Corp"),
        None => format!(
            "{}\n\n{}\n",
            t.titles
                .first()
                .cloned()
                .unwrap_or(t.name.clone())
                .to_uppercase(),
            "Terms of this agreement are available from the licensor. The licensee agrees to them by using the materials."
        ),
    }
}

const ADDED_CLAUSE: &str = "If the Software or any derivative works thereof is used for any commercial products or services that have more than 100 million monthly active users, or more than 20 million US dollars in monthly revenue, you shall prominently display the name of the model on the user interface of such product or service.";

struct Built {
    dir: tempfile::TempDir,
    lineage: LineageFile,
    ctx: UseContext,
    policy: Option<Policy>,
}

fn build(case: &Case) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut lineage = LineageFile::default();
    let mut card = String::from("---\n");
    let lic = case.model_license.trim();
    // "card: license: other, license_name: deepseek, license_link: LICENSE" in the evidence.
    let card_key = |key: &str| {
        case.evidence
            .split([',', ';'])
            .find_map(|p| p.trim().strip_prefix(key).map(|v| v.trim().to_string()))
    };
    if lic == "other"
        && let Some(name) = card_key("license_name:")
    {
        card += &format!("license: other\nlicense_name: {name}\n");
        if let Some(link) = card_key("license_link:") {
            card += &format!("license_link: {link}\n");
        }
    } else if let Some(name) = lic.strip_prefix("other:") {
        card += &format!("license: other\nlicense_name: {name}\n");
    } else if !lic.is_empty() {
        card += &format!("license: \"{lic}\"\n");
    }
    let bases = items(&case.base_model);
    let base_licences = items(&case.base_model_license);
    if !bases.is_empty() {
        card += "base_model:\n";
        for (i, b) in bases.iter().enumerate() {
            card += &format!("- {b}\n");
            if let Some(l) = base_licences.get(i) {
                lineage.models.insert(b.clone(), l.clone());
            }
        }
        if !case.relation.is_empty() {
            card += &format!("base_model_relation: {}\n", case.relation);
        }
    }
    let data = case.datasets.trim();
    if let Some(teacher) = data
        .strip_prefix("synthetic outputs of ")
        .or_else(|| data.strip_prefix("samples generated by "))
    {
        let id = teacher.split(" (").next().unwrap().trim().to_string();
        if let Some(paren) = teacher.split(" (").nth(1) {
            lineage
                .models
                .insert(id.clone(), paren.trim_end_matches(')').to_string());
        }
        card += &format!("distilled_from: {id}\n");
    } else if !data.is_empty() {
        card += "datasets:\n";
        for (i, d) in items(data).iter().enumerate() {
            let id = format!("acme/training-data-{i}");
            card += &format!("- {id}\n");
            lineage.datasets.insert(id, d.clone());
        }
    }
    card += "---\n# Model\n\n";
    // Evidence clauses.
    let mut involved: Vec<String> = vec![];
    for clause in case.evidence.split(';').map(str::trim) {
        let lower = clause.to_lowercase();
        if let Some(quote) = clause.split('\'').nth(1).filter(|_| {
            lower.starts_with("readme says")
                || lower.starts_with("docs say")
                || lower.starts_with("readme claims")
        }) {
            card += &format!("{quote}.\n\n");
        } else if lower.starts_with("model card documents") {
            card += "This model was fine-tuned from its base on SQL; training data, method and evaluation are documented below.\n\n";
        } else if lower.contains("gguf general.license") {
            let value = clause.split('\'').nth(1).unwrap();
            write_gguf(&root.join("model-Q4_K_M.gguf"), value);
        } else if lower.starts_with("notice present") || lower.starts_with("notice has") {
            involved.push("notice".into());
        } else if let Some((file, desc)) = clause.split_once(" = ") {
            let file = file.trim();
            if !(file.starts_with("LICENSE") || file.starts_with("NOTICE")) {
                continue;
            }
            let mut text = String::new();
            if let Some(title) = desc
                .split('\'')
                .nth(1)
                .filter(|_| desc.starts_with("titled") || clause.starts_with("LICENSE titled"))
            {
                text = format!(
                    "{title}\n\nYou may use, copy and share this model for any purpose. The model is provided as is, without warranty of any kind, and the authors accept no liability.\n"
                );
            } else {
                for part in desc.split(" plus ").flat_map(|p| p.split(" followed by ")) {
                    if part.contains("added clause") {
                        text += &format!("\n\n{ADDED_CLAUSE}\n");
                        continue;
                    }
                    let Some(id) = licence_named(part) else {
                        continue;
                    };
                    involved.push(id.into());
                    text += &licence_text(id);
                    text += "\n\n";
                }
            }
            if !text.is_empty() {
                fs::write(root.join(file), text).unwrap();
            }
        } else if lower.starts_with("license titled") {
            let title = clause.split('\'').nth(1).unwrap();
            fs::write(root.join("LICENSE"), format!("{title}\n\nYou may use, copy and share this model for any purpose. The model is provided as is, without warranty of any kind, and the authors accept no liability.\n")).unwrap();
        } else if lower.contains("kept as ") || lower.contains(" retained") {
            let file = clause
                .split_whitespace()
                .rfind(|w| w.starts_with("LICENSE"))
                .unwrap()
                .to_string();
            let id = licence_named(clause).unwrap();
            fs::write(root.join(file), licence_text(id)).unwrap();
        }
    }
    if involved.iter().any(|i| i == "notice") {
        // The NOTICE sentences of every licence in the lineage and the declaration.
        let mut sentences = vec![];
        for l in base_licences
            .iter()
            .chain([&case.model_license])
            .chain(involved.iter())
        {
            if let Ok(e) = kaiyuan_license::lineage::license_expr(l) {
                for leaf in e.leaves() {
                    if let Some(n) = catalog().terms(&leaf).notice_file {
                        sentences.push(n);
                    }
                }
            }
        }
        fs::write(root.join("NOTICE"), sentences.join("\n") + "\n").unwrap();
    }
    fs::write(root.join("README.md"), card).unwrap();

    Built {
        dir,
        lineage,
        ctx: context(case),
        policy: policy(&case.org_policy),
    }
}

/// The use context stated by the row's intended use and question.
fn context(case: &Case) -> UseContext {
    let use_ = case.intended_use.to_lowercase();
    let q = case.question.to_lowercase();
    let mut ctx = UseContext {
        purpose: Purpose::Commercial,
        ..Default::default()
    };
    if use_.starts_with("research") {
        ctx.purpose = Purpose::Research;
    } else if use_.contains("internal production") {
        ctx.purpose = Purpose::Production;
    }
    if ["military", "defense", "targeting"]
        .iter()
        .any(|w| use_.contains(w) || q.contains(w))
    {
        ctx.domains.push("military".into());
    }
    if q.contains(" eu ") || q.contains("eu company") {
        ctx.region = Some("EU".into());
    }
    if q.contains("end user") && (q.contains("integrated") || q.contains("app")) {
        ctx.integrated_end_user = true;
    }
    // "650M MAU in June 2024 and 900M today", "a company with 20M MAU", "1B MAU".
    let words: Vec<&str> = q.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let w = w.trim_matches(|c: char| c == ',' || c == '.');
        let n = if let Some(m) = w.strip_suffix('m') {
            m.parse::<u64>().ok().map(|v| v * 1_000_000)
        } else if let Some(b) = w.strip_suffix('b') {
            b.parse::<u64>().ok().map(|v| v * 1_000_000_000)
        } else {
            None
        };
        let Some(n) = n else { continue };
        let rest = &words[i + 1..words.len().min(i + 5)];
        let month = rest.iter().position(|r| *r == "in").and_then(|p| {
            let m = [
                "january",
                "february",
                "march",
                "april",
                "may",
                "june",
                "july",
                "august",
                "september",
                "october",
                "november",
                "december",
            ]
            .iter()
            .position(|m| rest.get(p + 1).is_some_and(|r| r == m))?;
            let year = rest.get(p + 2)?.trim_matches('.');
            Some(format!("{year}-{:02}", m + 1))
        });
        match month {
            Some(m) => {
                ctx.mau_history.insert(m, n);
            }
            None => ctx.mau = Some(ctx.mau.map_or(n, |c: u64| c.max(n))),
        }
    }
    ctx
}

/// The named policies of AI_LICENSES.md §8, as policy documents.
fn policy(name: &str) -> Option<Policy> {
    let doc = match name {
        "none" | "" => return None,
        "permissive-only" => {
            r#"{"name": "permissive-only", "allow": ["permissive", "public-domain"]}"#
        }
        "deny-copyleft" => r#"{"name": "deny-copyleft", "deny": ["weak-copyleft", "copyleft"]}"#,
        "no-noncommercial" => {
            r#"{"name": "no-noncommercial", "deny": ["noncommercial"], "noncommercial_training_data": "deny"}"#
        }
        "no-use-restrictions" => r#"{"name": "no-use-restrictions", "deny": ["use-restricted"]}"#,
        other => panic!("unknown policy {other}"),
    };
    Some(Policy::from_json_or_yaml(doc).unwrap())
}

fn write_gguf(path: &Path, license: &str) {
    let s = |v: &str| {
        let mut b = (v.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(v.as_bytes());
        b
    };
    let mut f = b"GGUF".to_vec();
    f.extend(3u32.to_le_bytes());
    f.extend(0u64.to_le_bytes());
    f.extend(2u64.to_le_bytes());
    f.extend(s("general.architecture"));
    f.extend(8u32.to_le_bytes());
    f.extend(s("llama"));
    f.extend(s("general.license"));
    f.extend(8u32.to_le_bytes());
    f.extend(s(license));
    fs::write(path, f).unwrap();
}

fn run(case: &Case) -> Report {
    let built = build(case);
    let name = if case.model_name.is_empty() {
        "acme/model".to_string()
    } else {
        case.model_name.split(" (").next().unwrap().to_string()
    };
    let facts = read_folder(built.dir.path(), Some(name)).unwrap();
    let chain = Chain {
        file: Some(&built.lineage),
        inner: None,
    };
    evaluate(&facts, &chain, built.policy.as_ref(), &built.ctx)
}

fn leaves(expr: &str) -> BTreeSet<String> {
    expr.split(" AND ")
        .map(|s| s.trim().trim_matches(['(', ')']).to_string())
        .collect()
}

/// `effective=A AND B` in the detail column.
fn expected_effective(detail: &str) -> Option<BTreeSet<String>> {
    let rest = detail.split("effective=").nth(1)?;
    let expr = rest.split([';', ',']).next()?.trim();
    Some(leaves(expr))
}

const VIOLATIONS: &[&str] = &[
    "base-license-violation",
    "naming-violation",
    "missing-notice",
    "restriction-not-passed-down",
];

fn check(case: &Case, r: &Report) -> Result<(), String> {
    let codes: Vec<&str> = r.findings.iter().map(|f| f.code.as_str()).collect();
    let fail = |what: String| {
        Err(format!(
            "{}: expected {} ({}) but {what}\n  findings: {:#?}\n  obligations: {:?}\n  effective: {:?}",
            case.id, case.expected, case.detail, r.findings, r.obligations, r.effective
        ))
    };
    match case.expected.as_str() {
        "allow" => {
            if r.decision != Decision::Allow {
                return fail(format!("decision {}", r.decision.as_str()));
            }
        }
        "allow_with_obligations" => {
            if r.decision != Decision::AllowWithObligations {
                return fail(format!("decision {}", r.decision.as_str()));
            }
        }
        "deny" => {
            if r.decision != Decision::Deny {
                return fail(format!("decision {}", r.decision.as_str()));
            }
        }
        "flag_review" => {
            if r.decision != Decision::FlagReview {
                return fail(format!("decision {}", r.decision.as_str()));
            }
        }
        "violation" => {
            if r.decision != Decision::Deny
                || !r.findings.iter().any(|f| {
                    VIOLATIONS.contains(&f.code.as_str())
                        && f.severity == kaiyuan_license::Severity::Error
                })
            {
                return fail(format!(
                    "decision {} with codes {codes:?}",
                    r.decision.as_str()
                ));
            }
        }
        "mismatch" => {
            if !codes.contains(&"declared-detected-mismatch") {
                return fail(format!("codes {codes:?}"));
            }
        }
        "parse_error" => {
            if !codes.contains(&"invalid-expression") || r.expression.is_some() {
                return fail(format!("codes {codes:?}, expression {:?}", r.expression));
            }
        }
        "normalize" => {
            let want = case
                .detail
                .split(" (")
                .next()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim();
            if r.expression.as_deref() != Some(want) || !codes.contains(&"normalized") {
                return fail(format!("expression {:?}, codes {codes:?}", r.expression));
            }
        }
        other => return Err(format!("{}: unknown expected answer {other}", case.id)),
    }
    if let Some(want) = expected_effective(&case.detail) {
        let got = r.effective.as_deref().map(leaves).unwrap_or_default();
        if got != want {
            return fail(format!("effective {got:?} (want {want:?})"));
        }
    }
    Ok(())
}

#[test]
fn every_corpus_case_gets_its_expected_answer() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases read", cases.len());
    let mut failures = vec![];
    for case in &cases {
        let report = run(case);
        if let Err(e) = check(case, &report) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
