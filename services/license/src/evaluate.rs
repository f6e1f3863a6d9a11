//! The compliance decision: declared licence, detected texts, lineage, data, the user's
//! context and the organisation's policy, reduced to allow / allow_with_obligations /
//! flag_review / deny with every reason and obligation in words.

use crate::card::CardMeta;
use crate::catalog::{Commercial, Derivatives, LicenseCopy, Outputs, Terms, catalog};
use crate::detect::{Detection, carries_restrictions, detect_text};
use crate::expr::{Declared, Expr, interpret};
use crate::lineage::{Resolver, effective_of, license_expr};
use crate::policy::{DataRule, Policy, UseContext, entry_matches};
use crate::report::{Decision, Finding, LineageNode, Report, Severity};

/// A text file shipped with the model.
#[derive(Debug, Clone)]
pub struct TextFile {
    pub path: String,
    pub text: String,
}

/// Everything the engine knows about one model revision.
#[derive(Debug, Clone, Default)]
pub struct ModelFacts {
    /// `namespace/name` it is (or will be) published under.
    pub name: Option<String>,
    pub card: CardMeta,
    pub card_body: String,
    /// LICENSE*, LICENCE*, COPYING* files.
    pub license_files: Vec<TextFile>,
    /// NOTICE* files.
    pub notice_files: Vec<TextFile>,
    /// Licences stated in model-file metadata (GGUF `general.license`), as (file, value).
    pub metadata_licenses: Vec<(String, String)>,
}

/// Relations that copy base weights into the artifact.
fn contains_weights(relation: &str) -> bool {
    matches!(relation, "finetune" | "adapter" | "merge" | "quantized")
}

/// Whether a licence file is a retained copy of a named licence (LICENSE-APACHE,
/// LICENSE.OpenMDW-1.0) rather than the repository's own licence.
fn named_copy(path: &str) -> Option<String> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let upper = file.to_uppercase();
    let stem = ["LICENSE", "LICENCE", "COPYING"]
        .iter()
        .find_map(|p| upper.strip_prefix(p).map(|_| &file[p.len()..]))?;
    let suffix = stem.trim_start_matches(['-', '.', '_']);
    let suffix = suffix
        .strip_suffix(".txt")
        .or_else(|| suffix.strip_suffix(".md"))
        .unwrap_or(suffix);
    if suffix.is_empty() || ["MODEL", "WEIGHTS", "CODE"].contains(&suffix.to_uppercase().as_str()) {
        return None;
    }
    let cat = catalog();
    cat.resolve_key(suffix).or_else(|| {
        let lower = suffix.to_lowercase();
        cat.licenses()
            .iter()
            .find(|t| t.id.to_lowercase().starts_with(&lower))
            .map(|t| t.id.clone())
    })
}

fn words(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn contains_phrase(haystack: &str, phrase: &str) -> bool {
    words(haystack).contains(&words(phrase))
}

fn name_part(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

struct Ctx<'a> {
    findings: Vec<Finding>,
    obligations: Vec<String>,
    policy: Option<&'a Policy>,
    use_ctx: &'a UseContext,
}

impl Ctx<'_> {
    fn find(&mut self, code: &str, severity: Severity, message: impl Into<String>) {
        let f = Finding::new(code, severity, message);
        if !self.findings.contains(&f) {
            self.findings.push(f);
        }
    }

    fn oblige(&mut self, text: impl Into<String>) {
        let text = text.into();
        if !self.obligations.contains(&text) {
            self.obligations.push(text);
        }
    }
}

fn terms_name(t: &Terms) -> String {
    if t.name == t.id {
        t.id.clone()
    } else {
        format!("{} ({})", t.name, t.id)
    }
}

/// Evaluates one model revision.
pub fn evaluate(
    facts: &ModelFacts,
    resolver: &dyn Resolver,
    policy: Option<&Policy>,
    use_ctx: &UseContext,
) -> Report {
    let cat = catalog();
    let mut cx = Ctx {
        findings: vec![],
        obligations: vec![],
        policy,
        use_ctx,
    };

    // 1. The declaration.
    let declared_raw = facts.card.license.clone();
    let declared = interpret(
        declared_raw.as_deref().unwrap_or(""),
        facts.card.license_name.as_deref(),
    );
    let mut normalization = vec![];
    let declared_expr = match &declared {
        Declared::Valid { expr, changes } => {
            if !changes.is_empty() {
                cx.find(
                    "normalized",
                    Severity::Info,
                    format!(
                        "declared licence normalised to {expr}: {}",
                        changes.join("; ")
                    ),
                );
                normalization = changes.clone();
            }
            Some(expr.clone())
        }
        Declared::Invalid {
            message,
            suggestions,
        } => {
            let hint = if suggestions.is_empty() {
                String::new()
            } else {
                format!("; did you mean {}?", suggestions.join(", "))
            };
            cx.find(
                "invalid-expression",
                Severity::Error,
                format!(
                    "`{}` is not a valid SPDX expression: {message}{hint}",
                    declared_raw.as_deref().unwrap_or("")
                ),
            );
            None
        }
        _ => None,
    };
    if let Some(e) = &declared_expr {
        for leaf in e.leaves() {
            if cat.terms(&leaf).is_unknown() {
                cx.find(
                    "unknown-license",
                    Severity::Review,
                    format!(
                        "{leaf}: the catalog has no terms for this licence; a person must read it"
                    ),
                );
            }
        }
    }

    // 2. Evidence: licence texts and file metadata.
    let mut detected: Vec<Detection> = Vec::new();
    let mut primary: Vec<String> = Vec::new();
    let mut texts_present: Vec<String> = Vec::new();
    for f in &facts.license_files {
        let found = detect_text(&f.path, &f.text);
        if found.is_empty() {
            cx.find(
                "unknown-license",
                Severity::Review,
                format!("{}: the text matches no known licence", f.path),
            );
        }
        let linked = facts
            .card
            .license_link
            .as_deref()
            .is_some_and(|l| l.trim_start_matches("./") == f.path);
        let copy_of = if linked { None } else { named_copy(&f.path) };
        for d in &found {
            if d.method == "text" || d.confidence >= 0.5 {
                texts_present.push(d.id.clone());
            }
            if copy_of.is_none() && !primary.contains(&d.id) {
                primary.push(d.id.clone());
            }
            if d.modified && d.method == "text" && !d.added_text.is_empty() {
                cx.find("modified-license", Severity::Review, format!(
                    "{} is {} with added text (similarity {:.2}): \"{}\"; it is a different licence",
                    d.file, d.id, d.confidence, d.added_text.join(" ")
                ));
            } else if d.modified && d.method == "title" {
                cx.find("modified-license", Severity::Review, format!(
                    "{} is titled as {} but its text does not match the canonical agreement (similarity {:.2}); ship the canonical text",
                    d.file, d.id, d.confidence
                ));
            }
        }
        detected.extend(found);
    }
    // The gated prompt often holds the licence text; a `license_link` URL names a licence.
    if let Some(prompt) = facts
        .card
        .gated_prompt
        .as_deref()
        .filter(|p| p.split_whitespace().count() >= 50)
    {
        for d in detect_text("README.md (extra_gated_prompt)", prompt) {
            if d.method == "text" {
                texts_present.push(d.id.clone());
                if !primary.contains(&d.id) {
                    primary.push(d.id.clone());
                }
                detected.push(d);
            }
        }
    }
    if let Some(link) = facts
        .card
        .license_link
        .as_deref()
        .filter(|l| l.contains("://") || l.starts_with("www."))
        && let Some(t) = cat.by_url(link)
    {
        detected.push(Detection {
            file: format!("license_link {link}"),
            id: t.id.clone(),
            confidence: 0.7,
            method: "link".into(),
            added_text: vec![],
            modified: false,
        });
        if !primary.contains(&t.id) {
            primary.push(t.id.clone());
        }
    }
    for (file, value) in &facts.metadata_licenses {
        match license_expr(value) {
            Ok(e) => {
                for id in e.leaves() {
                    detected.push(Detection {
                        file: file.clone(),
                        id: id.clone(),
                        confidence: 1.0,
                        method: "metadata".into(),
                        added_text: vec![],
                        modified: false,
                    });
                    if !primary.contains(&id) {
                        primary.push(id);
                    }
                }
            }
            Err(e) => cx.find(
                "unknown-license",
                Severity::Warning,
                format!("{file}: metadata licence `{value}` is not understood ({e})"),
            ),
        }
    }

    // 3. The repository's own licence: declaration reconciled with evidence.
    let modified_ids: Vec<String> = detected
        .iter()
        .filter(|d| d.modified)
        .map(|d| d.id.clone())
        .collect();
    let own: Option<Expr> = match (&declared_expr, primary.is_empty()) {
        (Some(d), true) => Some(d.clone()),
        (Some(d), false) => {
            let dl = d.leaves();
            let agree = if d.is_disjunction() {
                primary.iter().all(|p| dl.contains(p))
            } else {
                primary.len() == dl.len() && primary.iter().all(|p| dl.contains(p))
            };
            let tampered: Vec<&String> = dl.iter().filter(|l| modified_ids.contains(l)).collect();
            if agree && tampered.is_empty() {
                Some(d.clone())
            } else if agree {
                cx.find("declared-detected-mismatch", Severity::Review, format!(
                    "declared {d}, but the shipped text of {} differs from the canonical licence",
                    tampered.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ));
                let leaves = dl
                    .iter()
                    .map(|l| {
                        if modified_ids.contains(l) {
                            Expr::Leaf(format!("LicenseRef-kaiyuan-modified-{l}"))
                        } else {
                            Expr::Leaf(l.clone())
                        }
                    })
                    .collect();
                Some(Expr::and(leaves))
            } else {
                cx.find("declared-detected-mismatch", Severity::Review, format!(
                    "declared {d}, but the licence files say {}; until the publisher resolves it the stricter licence applies",
                    primary.join(" AND ")
                ));
                let agreed: Vec<String> =
                    dl.iter().filter(|l| primary.contains(l)).cloned().collect();
                let disputed: Vec<String> = dl
                    .iter()
                    .chain(primary.iter())
                    .filter(|l| !agreed.contains(l))
                    .cloned()
                    .collect();
                let mut parts: Vec<Expr> = agreed.into_iter().map(Expr::Leaf).collect();
                if let Some(strict) = disputed
                    .iter()
                    .max_by_key(|l| cat.terms(l).restrictiveness())
                {
                    let rank = cat.terms(strict).restrictiveness();
                    parts.extend(
                        disputed
                            .iter()
                            .filter(|l| cat.terms(l).restrictiveness() == rank)
                            .cloned()
                            .map(Expr::Leaf),
                    );
                }
                Some(Expr::and(parts))
            }
        }
        (None, false) => {
            if !matches!(declared, Declared::Invalid { .. }) {
                cx.find("missing-license", Severity::Warning, format!(
                    "the card declares no usable licence; the licence files say {}: declare it in the card",
                    primary.join(" AND ")
                ));
            }
            Some(Expr::and(primary.iter().cloned().map(Expr::Leaf).collect()))
        }
        (None, true) => {
            match &declared {
                Declared::Missing => cx.find("missing-license", Severity::Error, "no licence is declared and no licence file is shipped: nobody has been granted any rights"),
                Declared::NoAssertion(why) => cx.find("missing-license", Severity::Error, format!("{why}, and no licence file says more: nobody has been granted any rights")),
                _ => {}
            }
            None
        }
    };

    // 4. Lineage: bases, teachers, datasets.
    let mut lineage: Vec<LineageNode> = vec![];
    let multi = facts.card.base_models.len() > 1;
    let relation = facts.card.base_model_relation.clone().unwrap_or_else(|| {
        if multi {
            "merge".into()
        } else {
            "finetune".into()
        }
    });
    let mut multimodal = facts.card.multimodal();
    let mut inherited: Vec<(String, Expr)> = vec![];
    for base in &facts.card.base_models {
        let up = resolver.model(base);
        multimodal |= up.as_ref().is_some_and(|u| u.multimodal);
        match effective_of(resolver, base, 0, &mut vec![]) {
            Ok(e) => {
                lineage.push(LineageNode {
                    id: base.clone(),
                    kind: "base".into(),
                    relation: Some(relation.clone()),
                    license: Some(e.to_string()),
                    source: up.map(|u| u.source).unwrap_or_default(),
                });
                inherited.push((base.clone(), e));
            }
            Err(why) => {
                lineage.push(LineageNode {
                    id: base.clone(),
                    kind: "base".into(),
                    relation: Some(relation.clone()),
                    license: None,
                    source: "unknown".into(),
                });
                cx.find("unknown-license", Severity::Review, format!("base model {base}: {why}; give its licence in the lineage so that compatibility can be checked"));
            }
        }
    }
    let mut teachers: Vec<String> = facts.card.distilled_from.clone();
    let mut datasets: Vec<String> = vec![];
    for d in &facts.card.datasets {
        if resolver.dataset(d).is_none() && resolver.model(d).is_some() {
            teachers.push(d.clone()); // a model id listed as training data: its outputs
        } else {
            datasets.push(d.clone());
        }
    }
    let mut teacher_terms: Vec<(String, Expr)> = vec![];
    for t in &teachers {
        match effective_of(resolver, t, 0, &mut vec![]) {
            Ok(e) => {
                lineage.push(LineageNode {
                    id: t.clone(),
                    kind: "teacher".into(),
                    relation: Some("distillation".into()),
                    license: Some(e.to_string()),
                    source: resolver.model(t).map(|u| u.source).unwrap_or_default(),
                });
                teacher_terms.push((t.clone(), e));
            }
            Err(why) => {
                lineage.push(LineageNode {
                    id: t.clone(),
                    kind: "teacher".into(),
                    relation: Some("distillation".into()),
                    license: None,
                    source: "unknown".into(),
                });
                cx.find(
                    "unknown-license",
                    Severity::Review,
                    format!("teacher model {t}: {why}; its output terms cannot be checked"),
                );
            }
        }
    }

    // 5. Effective licence.
    let quantized = relation == "quantized" && !inherited.is_empty();
    let mut parts: Vec<Expr> = vec![];
    if quantized {
        parts.extend(inherited.iter().map(|(_, e)| e.clone()));
        if let Some(o) = &own {
            let base_leaves: Vec<String> = parts.iter().flat_map(|e| e.leaves()).collect();
            if o.leaves().iter().any(|l| !base_leaves.contains(l)) {
                cx.find("base-license-violation", Severity::Error, format!(
                    "a quantization is a copy of its base and keeps its licence ({}); it cannot be published as {o}",
                    base_leaves.join(" AND ")
                ));
            }
        }
    } else {
        parts.extend(own.iter().cloned());
        parts.extend(inherited.iter().map(|(_, e)| e.clone()));
    }
    for (_, e) in &teacher_terms {
        for leaf in e.leaves() {
            if cat.terms(&leaf).outputs == Outputs::DerivativeIfDistilled {
                parts.push(Expr::Leaf(leaf));
            }
        }
    }
    let effective = (!parts.is_empty()).then(|| Expr::and(parts));

    // 6. Derivative rules.
    let name = facts.name.clone();
    let own_leaves: Vec<String> = own.as_ref().map(|o| o.leaves()).unwrap_or_default();
    let body = &facts.card_body;
    let notices: String = facts
        .notice_files
        .iter()
        .map(|f| f.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let weights = contains_weights(&relation);
    let shipped_texts: Vec<&str> = facts
        .license_files
        .iter()
        .map(|f| f.text.as_str())
        .chain([body.as_str()])
        .collect();
    let mut distilled_bases: Vec<(String, String)> = vec![];
    for (t, e) in &teacher_terms {
        for leaf in e.leaves() {
            if cat.terms(&leaf).outputs == Outputs::DerivativeIfDistilled {
                distilled_bases.push((t.clone(), leaf));
            }
        }
    }
    let mut base_leaves: Vec<(String, String)> = inherited
        .iter()
        .flat_map(|(b, e)| {
            least_restrictive(e)
                .into_iter()
                .map(move |l| (b.clone(), l))
        })
        .collect();
    base_leaves.extend(distilled_bases);
    let student_families: Vec<String> = base_leaves
        .iter()
        .filter_map(|(_, l)| cat.terms(l).family)
        .chain(own_leaves.iter().filter_map(|l| cat.terms(l).family))
        .collect();
    for (base, leaf) in &base_leaves {
        let t = cat.terms(leaf);
        let tn = terms_name(&t);
        let relabelled = !quantized && own.is_some() && !own_leaves.contains(leaf);
        match t.derivatives {
            Derivatives::SameLicense
                if relabelled && !own_leaves.iter().any(|l| cat.terms(l).share_alike) =>
            {
                cx.find("base-license-violation", Severity::Error, format!("{base} is under {tn}, which requires derivatives under the same licence; this model declares {}", own_leaves.join(" AND ")));
            }
            Derivatives::NoncommercialOnly
                if relabelled
                    && own_leaves
                        .iter()
                        .any(|l| cat.terms(l).commercial != Commercial::No) =>
            {
                cx.find("base-license-violation", Severity::Error, format!("{base} is under {tn}, which forbids commercial use of derivatives; declaring {} does not lift that", own_leaves.join(" AND ")));
            }
            Derivatives::None => {
                cx.find(
                    "base-license-violation",
                    Severity::Error,
                    format!("{base} is under {tn}, which allows no derivatives to be shared"),
                );
            }
            Derivatives::KeepTerms if relabelled => {
                cx.find("base-license-violation", Severity::Error, format!("{base} is under {tn}: a derivative cannot be relabelled {}; the {} keeps governing the base material and must be part of the licence", own_leaves.join(" AND "), t.name));
            }
            Derivatives::RestrictionsFlowDown
                if relabelled && !carries_restrictions(leaf, &shipped_texts) =>
            {
                cx.find("restriction-not-passed-down", Severity::Error, format!("{base} is under {tn}: its use restrictions must be an enforceable part of this model's licence, and {} alone does not carry them", own_leaves.join(" AND ")));
            }
            _ => {}
        }
        if matches!(t.derivatives, Derivatives::RestrictionsFlowDown) {
            cx.oblige(format!("include the use restrictions of the {} as enforceable terms in the licence of this model, and tell recipients they apply", t.name));
        }
        if t.license_copy != LicenseCopy::None && !texts_present.contains(leaf) {
            let (sev, what) = if t.license_copy == LicenseCopy::Condition {
                (Severity::Error, "is a condition of the licence")
            } else {
                (Severity::Warning, "is required when it is distributed")
            };
            cx.find(
                "missing-notice",
                sev,
                format!(
                    "no copy of the {} is shipped; giving recipients a copy {what}",
                    t.name
                ),
            );
        }
        if t.license_copy != LicenseCopy::None {
            cx.oblige(format!("ship a copy of the {} with the model", t.name));
        }
        if let Some(notice) = &t.notice_file
            && weights
        {
            if !contains_phrase(&notices, notice) {
                let sev = if t.license_copy == LicenseCopy::Condition {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                cx.find(
                    "missing-notice",
                    sev,
                    format!("a NOTICE file must carry: \"{notice}\""),
                );
            }
            cx.oblige(format!("ship a NOTICE file that says \"{notice}\""));
        }
        if t.keep_notice_file {
            cx.oblige(format!(
                "keep the copyright notices and the NOTICE contents of {base} ({})",
                t.id
            ));
        }
        if t.mark_changes {
            cx.oblige("mark the files you modified with a prominent notice");
        }
        if t.keep_documentation {
            cx.oblige(format!(
                "keep {base}'s documentation and document your modifications to the same standard"
            ));
        }
        if t.attribution {
            cx.oblige(format!("credit {base} and link its licence ({})", t.id));
        }
        naming_rules(&mut cx, &t, name.as_deref(), body, base);
        if let Some(aup) = &t.use_policy {
            cx.oblige(format!(
                "pass the {aup} on to your users: it binds every use of this model"
            ));
        }
    }
    for (teacher, e) in &teacher_terms {
        for leaf in e.leaves() {
            let t = cat.terms(&leaf);
            match t.outputs {
                Outputs::NoTrainingOtherModels => {
                    let same_family = t
                        .family
                        .as_ref()
                        .is_some_and(|f| student_families.contains(f));
                    if !same_family {
                        cx.find("base-license-violation", Severity::Error, format!("{teacher} is under {}, which forbids using its outputs to improve any other large language model; this model is not a derivative of it", terms_name(&t)));
                    }
                }
                Outputs::NamingDuty | Outputs::DisplayDuty => {
                    naming_rules(&mut cx, &t, name.as_deref(), body, teacher)
                }
                _ => {}
            }
        }
    }
    if facts.card.base_models.len() > 1 || base_leaves.len() > 1 {
        merge_conflicts(&mut cx, &base_leaves);
    }

    // 7. Training data.
    let mut risk = "clear";
    let rank = |r: &str| {
        [
            "clear",
            "attribution",
            "unknown",
            "share-alike-unsettled",
            "non-commercial-unsettled",
        ]
        .iter()
        .position(|x| *x == r)
        .unwrap_or(0)
    };
    for d in &datasets {
        let Some((lic, source)) = resolver.dataset(d) else {
            lineage.push(LineageNode {
                id: d.clone(),
                kind: "dataset".into(),
                relation: None,
                license: None,
                source: "unknown".into(),
            });
            cx.find(
                "unknown-license",
                Severity::Warning,
                format!("dataset {d}: licence unknown; give it in the lineage"),
            );
            if rank("unknown") > rank(risk) {
                risk = "unknown";
            }
            continue;
        };
        let expr = license_expr(&lic);
        lineage.push(LineageNode {
            id: d.clone(),
            kind: "dataset".into(),
            relation: None,
            license: expr.as_ref().ok().map(|e| e.to_string()),
            source,
        });
        let Ok(expr) = expr else {
            cx.find(
                "unknown-license",
                Severity::Warning,
                format!("dataset {d}: licence `{lic}` is not understood"),
            );
            continue;
        };
        for leaf in least_restrictive(&expr) {
            let t = cat.terms(&leaf);
            let verdict = if t.results_unrestricted || t.has_category("public-domain") {
                "clear"
            } else if t.commercial == Commercial::No {
                let rule = policy
                    .map(|p| p.noncommercial_training_data)
                    .unwrap_or_default();
                if use_ctx.purpose.is_production() {
                    match rule {
                        DataRule::Deny => cx.find("noncommercial-training-data", Severity::Error, format!("dataset {d} is {leaf} (non-commercial) and the policy blocks non-commercial training data for commercial use")),
                        DataRule::Review => cx.find("noncommercial-training-data", Severity::Review, format!("dataset {d} is {leaf} (non-commercial): whether the licence reaches a model trained on it is legally unsettled; a person must decide")),
                        DataRule::Allow => cx.find("noncommercial-training-data", Severity::Info, format!("dataset {d} is {leaf} (non-commercial); the policy accepts the risk")),
                    }
                } else {
                    cx.find("noncommercial-training-data", Severity::Info, format!("dataset {d} is {leaf} (non-commercial); the intended use is not commercial"));
                }
                "non-commercial-unsettled"
            } else if t.share_alike {
                let rule = policy
                    .map(|p| p.sharealike_training_data)
                    .unwrap_or_default();
                let sev = match rule {
                    DataRule::Deny => Severity::Error,
                    DataRule::Review => Severity::Review,
                    DataRule::Allow => Severity::Info,
                };
                cx.find("sharealike-training-data", sev, format!("dataset {d} is {leaf} (share-alike): whether the model is adapted material that must be shared alike is legally unsettled"));
                cx.oblige(format!(
                    "credit dataset {d} ({leaf}) in the model card or NOTICE"
                ));
                "share-alike-unsettled"
            } else if t.is_unknown() {
                cx.find(
                    "unknown-license",
                    Severity::Warning,
                    format!("dataset {d}: terms of {leaf} unknown"),
                );
                "unknown"
            } else {
                if t.attribution || t.license_copy == LicenseCopy::Obligation {
                    cx.oblige(format!(
                        "credit dataset {d} ({leaf}) in the model card or NOTICE"
                    ));
                }
                "attribution"
            };
            if rank(verdict) > rank(risk) {
                risk = verdict;
            }
        }
    }

    // 8. Use in context, per alternative of the effective expression.
    let mut chosen = vec![];
    let mut terms_out = vec![];
    if let Some(eff) = &effective {
        let alts = eff.alternatives();
        let mut best: Option<(Decision, usize, Vec<String>, Ctx)> = None;
        for alt in &alts {
            let mut ac = Ctx {
                findings: vec![],
                obligations: vec![],
                policy,
                use_ctx,
            };
            for leaf in alt {
                use_rules(
                    &mut ac,
                    leaf,
                    multimodal,
                    weights && !facts.card.base_models.is_empty(),
                );
            }
            let d = decide(&ac.findings, &ac.obligations);
            let better = match &best {
                None => true,
                Some((bd, bo, _, _)) => (d, ac.obligations.len()) < (*bd, *bo),
            };
            if better {
                best = Some((d, ac.obligations.len(), alt.clone(), ac));
            }
        }
        if let Some((_, _, alt, ac)) = best {
            if alts.len() > 1 {
                cx.oblige(format!(
                    "choose {} where the licence offers alternatives, and honour its terms",
                    alt.join(" AND ")
                ));
            }
            for f in ac.findings {
                cx.find(&f.code, f.severity, f.message);
            }
            for o in ac.obligations {
                cx.oblige(o);
            }
            terms_out = alt.iter().map(|l| cat.terms(l)).collect();
            chosen = alt;
        }
    }
    if policy.is_some_and(|p| p.require_detected_match)
        && cx
            .findings
            .iter()
            .any(|f| f.code == "declared-detected-mismatch")
    {
        cx.find(
            "policy-denied",
            Severity::Error,
            "the policy requires the shipped licence text to match the declared licence",
        );
    }

    let decision = decide(&cx.findings, &cx.obligations);
    Report {
        decision,
        name,
        declared: declared_raw,
        license_name: facts.card.license_name.clone(),
        license_link: facts.card.license_link.clone(),
        expression: declared_expr.map(|e| e.to_string()),
        normalization,
        detected,
        effective: effective.map(|e| e.to_string()),
        chosen,
        terms: terms_out,
        lineage,
        data_license_risk: risk.into(),
        findings: cx.findings,
        obligations: cx.obligations,
        context: use_ctx.clone(),
        policy: policy.map(|p| p.name.clone().unwrap_or_else(|| "custom".into())),
        catalog_version: cat.version.clone(),
    }
}

fn decide(findings: &[Finding], obligations: &[String]) -> Decision {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => Decision::Deny,
        Some(Severity::Review) => Decision::FlagReview,
        _ if !obligations.is_empty() => Decision::AllowWithObligations,
        _ => Decision::Allow,
    }
}

/// The alternative of an upstream expression that constrains a derivative least.
fn least_restrictive(e: &Expr) -> Vec<String> {
    let cat = catalog();
    e.alternatives()
        .into_iter()
        .min_by_key(|alt| {
            alt.iter()
                .map(|l| cat.terms(l).restrictiveness())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or_default()
}

/// Name prefix and display duties of a licence on this model.
fn naming_rules(cx: &mut Ctx, t: &Terms, name: Option<&str>, body: &str, upstream: &str) {
    if let Some(prefix) = &t.name_prefix {
        match name {
            Some(n) if !words(name_part(n)).starts_with(&words(prefix)) => {
                cx.find("naming-violation", Severity::Error, format!(
                    "the {} requires the name of a model built from {upstream} to begin with \"{prefix}\" (e.g. {prefix}-{})",
                    t.name,
                    name_part(n)
                ));
            }
            None => cx.oblige(format!(
                "name the model so that it begins with \"{prefix}\""
            )),
            _ => {}
        }
    }
    if !t.display.is_empty() {
        let phrases = t
            .display
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        if !t.display.iter().any(|p| contains_phrase(body, p)) {
            cx.find("missing-notice", Severity::Warning, format!("the model card does not display {phrases}, which the {} requires on a related website, interface or documentation", t.name));
        }
        cx.oblige(format!(
            "display {phrases} prominently on the related website, user interface or documentation"
        ));
    }
}

/// Parents whose conditions cannot all hold at once.
fn merge_conflicts(cx: &mut Ctx, parents: &[(String, String)]) {
    let cat = catalog();
    let same: Vec<&String> = parents
        .iter()
        .map(|(_, l)| l)
        .filter(|l| cat.terms(l).derivatives == Derivatives::SameLicense)
        .collect();
    let mut distinct: Vec<&String> = same.clone();
    distinct.dedup();
    if distinct.len() > 1 {
        cx.find(
            "incompatible-licenses",
            Severity::Review,
            format!(
                "the parents require derivatives under different licences ({}); both cannot hold",
                distinct
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let nc = parents
        .iter()
        .any(|(_, l)| cat.terms(l).commercial == Commercial::No);
    let strong = parents.iter().any(|(_, l)| {
        cat.terms(l).has_category("copyleft") && cat.terms(l).commercial != Commercial::No
    });
    if nc && strong {
        cx.find("incompatible-licenses", Severity::Review, "a copyleft parent forbids adding the non-commercial restriction another parent requires");
    }
    let prefixes: Vec<String> = parents
        .iter()
        .filter_map(|(_, l)| cat.terms(l).name_prefix)
        .collect();
    if prefixes.iter().any(|p| {
        !prefixes
            .iter()
            .all(|q| q.starts_with(p.as_str()) || p.starts_with(q.as_str()))
    }) {
        cx.find(
            "naming-violation",
            Severity::Review,
            format!(
                "the parents require different name prefixes ({})",
                prefixes.join(", ")
            ),
        );
    }
    // Licences that forbid improving other models make a merge with another family doubtful.
    for (parent, leaf) in parents {
        let t = cat.terms(leaf);
        if t.outputs != Outputs::NoTrainingOtherModels {
            continue;
        }
        let foreign: Vec<&String> = parents
            .iter()
            .filter(|(_, l)| cat.terms(l).family != t.family)
            .map(|(p, _)| p)
            .collect();
        if !foreign.is_empty() {
            cx.find("incompatible-licenses", Severity::Review, format!(
                "{parent} is under the {}, which forbids using it to improve other models; merging it with {} is doubtful",
                t.name,
                foreign.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
}

/// What one licence allows for this use, and what the policy says about it.
fn use_rules(cx: &mut Ctx, leaf: &str, multimodal: bool, derivative: bool) {
    let t = catalog().terms(leaf);
    let tn = terms_name(&t);
    let u = cx.use_ctx;
    let end_user = u.integrated_end_user && t.end_user_exempt;
    if t.is_unknown() {
        cx.find(
            "unknown-license",
            Severity::Review,
            format!("{leaf}: terms unknown; a person must read the licence"),
        );
    }
    if t.needs_text {
        cx.find("unknown-license", Severity::Review, format!("{tn} names a family, not a licence: the licence file must say which variant applies"));
    }
    if u.purpose.is_production() && !t.production {
        cx.find("use-not-permitted", Severity::Error, format!("the {} grants rights only for research, testing or evaluation, not for production or commercial use", t.name));
    } else if u.purpose.is_production() && t.commercial == Commercial::No {
        cx.find(
            "use-not-permitted",
            Severity::Error,
            format!("the {} does not permit commercial use", t.name),
        );
    } else if u.purpose.is_production() && t.commercial == Commercial::Conditional && !end_user {
        commercial_condition(cx, &t);
    } else if u.purpose.is_production() && t.commercial == Commercial::Unknown && !t.is_unknown() {
        cx.find(
            "unknown-license",
            Severity::Review,
            format!("{tn}: whether commercial use is allowed is not known"),
        );
    }
    if u.in_eu()
        && t.eu_multimodal_excluded
        && (multimodal || t.always_multimodal)
        && !u.integrated_end_user
    {
        cx.find("use-not-permitted", Severity::Error, format!("the {} withholds its rights for multimodal models from individuals and companies domiciled in the EU", t.name));
    }
    for e in &u.events {
        // An IP suit against the licensor includes patent and copyright suits.
        let hit = t.termination.iter().any(|trigger| {
            trigger.eq_ignore_ascii_case(e)
                || (trigger == "ip-litigation" && e.ends_with("-litigation"))
        });
        if hit {
            cx.find(
                "use-not-permitted",
                Severity::Error,
                format!(
                    "the {} terminates on {e}: your rights under it have ended",
                    t.name
                ),
            );
        }
    }
    for d in &u.domains {
        if t.prohibited_uses.iter().any(|p| p.eq_ignore_ascii_case(d)) {
            cx.find(
                "use-not-permitted",
                Severity::Error,
                format!("the {} prohibits {d} use", t.name),
            );
        }
    }
    if let Some(aup) = &t.use_policy
        && !end_user
    {
        cx.oblige(format!("follow the {aup}"));
    }
    if t.network_source_offer {
        cx.oblige(format!("if you modify the model and let users interact with it over a network, offer them its corresponding source under the {}", t.name));
    }
    if derivative && t.share_alike {
        cx.oblige(format!("share this model under the {}", t.name));
    }
    let Some(policy) = cx.policy else { return };
    let pname = policy
        .name
        .clone()
        .unwrap_or_else(|| "the organisation's policy".into());
    if let Some(entry) = policy.deny.iter().find(|e| entry_matches(e, leaf, &t)) {
        cx.find(
            "policy-denied",
            Severity::Error,
            format!("{pname} denies {entry}, and this model requires the {tn}"),
        );
    }
    if let Some(allow) = &policy.allow
        && !allow.iter().any(|e| entry_matches(e, leaf, &t))
    {
        cx.find(
            "policy-denied",
            Severity::Error,
            format!(
                "{pname} allows only {}; the {tn} ({}) is not among them",
                allow.join(", "),
                t.categories.join(", ")
            ),
        );
    }
    if policy.require_osi
        && !t.osi_approved
        && spdx::license_id(leaf.split(' ').next().unwrap_or(leaf))
            .is_none_or(|l| !l.is_osi_approved())
    {
        cx.find(
            "policy-denied",
            Severity::Error,
            format!("{pname} requires OSI-approved licences; the {tn} is not"),
        );
    }
    if policy.require_commercial_use && t.commercial == Commercial::No {
        cx.find(
            "policy-denied",
            Severity::Error,
            format!("{pname} requires licences that permit commercial use; the {tn} does not"),
        );
    }
}

/// MAU thresholds, measured on the date the licence says.
fn commercial_condition(cx: &mut Ctx, t: &Terms) {
    let u = cx.use_ctx;
    let who = t.licensor.clone().unwrap_or_else(|| "the licensor".into());
    if let Some(limit) = t.revenue_over {
        let millions = limit as f64 / 1e6;
        match u.annual_revenue {
            Some(r) if r > limit => cx.find("use-not-permitted", Severity::Error, format!(
                "with USD {r} annual revenue you are above the USD {millions}M threshold of the {}: you need a licence from {who}", t.name)),
            Some(_) => cx.oblige(format!("the {} is free below USD {millions}M annual revenue; above it you need a licence from {who}", t.name)),
            None => cx.find("use-not-permitted", Severity::Review, format!(
                "the {} allows commercial use only below USD {millions}M annual revenue: give your annual revenue", t.name)),
        }
        if t.mau_over.is_none() {
            return;
        }
    }
    let Some(limit) = t.mau_over else {
        cx.find(
            "use-not-permitted",
            Severity::Review,
            format!(
                "the {} makes commercial use conditional; a person must check the conditions",
                t.name
            ),
        );
        return;
    };
    let millions = limit / 1_000_000;
    match t.mau_anchor {
        crate::catalog::MauAnchor::ReleaseDate => {
            let month = t.version_date.as_deref().and_then(month_before).unwrap_or_default();
            match u.mau_history.get(&month).copied() {
                Some(m) if m > limit => cx.find("use-not-permitted", Severity::Error, format!(
                    "your products had {m} monthly active users in {month}, above the {millions}M threshold of the {}: you need a separate licence from {who}", t.name)),
                Some(_) => cx.oblige(format!("the {millions}M monthly-active-user threshold of the {} is measured in {month} (before its release); you were below it, and later growth does not change that", t.name)),
                None => match u.mau {
                    Some(m) if m > limit => cx.find("use-not-permitted", Severity::Review, format!(
                        "you report {m} monthly active users today; the {} measures its {millions}M threshold in {month}: give that month's figure", t.name)),
                    _ => cx.oblige(format!("if your products had more than {millions}M monthly active users in {month}, you need a separate licence from {who}")),
                },
            }
        }
        crate::catalog::MauAnchor::Current => match u.mau {
            Some(m) if m > limit => cx.find("use-not-permitted", Severity::Error, format!(
                "with {m} monthly active users you are above the {millions}M threshold of the {}: request a licence from {who}", t.name)),
            _ => cx.oblige(format!("if your product or service exceeds {millions}M monthly active users, request a licence from {who}")),
        },
    }
}

/// "2024-07-23" -> "2024-06".
fn month_before(date: &str) -> Option<String> {
    let y: i32 = date.get(..4)?.parse().ok()?;
    let m: u32 = date.get(5..7)?.parse().ok()?;
    Some(if m == 1 {
        format!("{}-12", y - 1)
    } else {
        format!("{y}-{:02}", m - 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licence_copies_are_recognised_by_name() {
        assert_eq!(named_copy("LICENSE-APACHE").as_deref(), Some("Apache-2.0"));
        assert_eq!(
            named_copy("LICENSE.OpenMDW-1.0").as_deref(),
            Some("OpenMDW-1.0")
        );
        assert_eq!(named_copy("LICENSE"), None);
        assert_eq!(named_copy("LICENSE.txt"), None);
        assert_eq!(named_copy("LICENSE-MODEL"), None);
    }

    #[test]
    fn months_before_release() {
        assert_eq!(month_before("2024-07-23").as_deref(), Some("2024-06"));
        assert_eq!(month_before("2025-01-06").as_deref(), Some("2024-12"));
    }
}
