//! The compliance decision: declared licence, detected texts, lineage, data, the user's
//! context and the organisation's policy, reduced to allow / allow_with_obligations /
//! flag_review / deny with every reason and obligation in words.

use crate::card::CardMeta;
use crate::catalog::{Commercial, Derivatives, LicenseCopy, Outputs, Terms, catalog};
use crate::detect::{Detection, carries_restrictions, detect_text, same_text};
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

/// What a licence file covers, by its name and folder.
#[derive(Debug, Clone, PartialEq)]
enum Scope {
    /// LICENSE, LICENSE.md: the repository's licence.
    Main,
    /// LICENSE-MODEL, LICENSE-WEIGHTS: the model's licence.
    Model,
    /// LICENSE-CODE: the code's licence, not the weights'.
    Code,
    /// USE_POLICY.md: a use policy that a licence incorporates.
    Policy,
    /// A licence file in a subfolder: a component's licence (a text encoder, a tokenizer).
    Component,
    /// LICENSE-APACHE beside the model's own licence: a retained copy.
    Copy,
}

impl Scope {
    fn of(path: &str) -> Scope {
        let file = path.rsplit('/').next().unwrap_or(path);
        let upper = file.to_uppercase();
        if [
            "USE_POLICY",
            "USE-POLICY",
            "ACCEPTABLE_USE",
            "ACCEPTABLE-USE",
        ]
        .iter()
        .any(|p| upper.starts_with(p))
        {
            return Scope::Policy;
        }
        if path.contains('/') {
            return Scope::Component;
        }
        match licence_suffix(file).map(|s| s.to_uppercase()).as_deref() {
            None | Some("") => Scope::Main,
            Some("MODEL" | "WEIGHTS" | "MODEL_LICENSE" | "MODEL-LICENSE") => Scope::Model,
            Some("CODE" | "SOFTWARE" | "SOURCE") => Scope::Code,
            Some(_) if named_copy(path).is_some() => Scope::Copy,
            Some(_) => Scope::Main,
        }
    }

    fn name(&self) -> Option<&'static str> {
        match self {
            Scope::Main => None,
            Scope::Model => Some("model"),
            Scope::Code => Some("code"),
            Scope::Policy => Some("policy"),
            Scope::Component => Some("component"),
            Scope::Copy => Some("copy"),
        }
    }
}

/// `LICENSE-APACHE.txt` -> `APACHE`; `LICENSE` -> ``.
fn licence_suffix(file: &str) -> Option<&str> {
    let upper = file.to_uppercase();
    let stem = ["LICENSE", "LICENCE", "COPYING"]
        .iter()
        .find_map(|p| upper.strip_prefix(p).map(|_| &file[p.len()..]))?;
    let suffix = stem.trim_start_matches(['-', '.', '_']);
    Some(
        suffix
            .strip_suffix(".txt")
            .or_else(|| suffix.strip_suffix(".md"))
            .unwrap_or(suffix),
    )
}

/// Whether a licence file is a retained copy of a named licence (LICENSE-APACHE,
/// LICENSE.OpenMDW-1.0) rather than the repository's own licence.
fn named_copy(path: &str) -> Option<String> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let suffix = licence_suffix(file)?;
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

impl<'a> Ctx<'a> {
    fn new(policy: Option<&'a Policy>, use_ctx: &'a UseContext) -> Self {
        Ctx {
            findings: vec![],
            obligations: vec![],
            policy,
            use_ctx,
        }
    }

    /// Takes over the findings and obligations of another context, without duplicates.
    fn absorb(&mut self, other: Ctx) {
        for f in other.findings {
            self.find(&f.code, f.severity, f.message);
        }
        for o in other.obligations {
            self.oblige(o);
        }
    }

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
    let mut cx = Ctx::new(policy, use_ctx);

    // 1. The declaration.
    let declaration = Declaration::read(&mut cx, &facts.card);
    // 2. Evidence: licence texts and file metadata.
    let evidence = Evidence::gather(&mut cx, facts);
    // 3. The repository's own licence: declaration reconciled with evidence.
    let own = own_licence(&mut cx, &declaration, &evidence);
    // 4. Lineage: bases, teachers, datasets.
    let mut upstream = Upstream::trace(&mut cx, &facts.card, resolver);
    // 5. Effective licence.
    let effective = effective_licence(&mut cx, own.as_ref(), &upstream);
    // 6. Derivative rules.
    derivative_rules(
        &mut cx,
        facts,
        own.as_ref(),
        &upstream,
        &evidence.texts_present,
    );
    // 7. Training data.
    let risk = training_data(&mut cx, resolver, &upstream.datasets, &mut upstream.nodes);
    // 8. Use in context, per alternative of the effective expression.
    let derivative = upstream.weights() && !facts.card.base_models.is_empty();
    let (chosen, terms) = match &effective {
        Some(eff) => use_in_context(&mut cx, eff, upstream.multimodal, derivative),
        None => (vec![], vec![]),
    };
    require_detected_match(&mut cx);

    let decision = decide(&cx.findings, &cx.obligations);
    Report {
        decision,
        name: facts.name.clone(),
        declared: declaration.raw,
        license_name: facts.card.license_name.clone(),
        license_link: facts.card.license_link.clone(),
        expression: declaration.expr.map(|e| e.to_string()),
        normalization: declaration.normalization,
        detected: evidence.detected,
        effective: effective.map(|e| e.to_string()),
        chosen,
        terms,
        lineage: upstream.nodes,
        data_license_risk: risk.into(),
        findings: cx.findings,
        obligations: cx.obligations,
        context: use_ctx.clone(),
        policy: policy.map(|p| p.name.clone().unwrap_or_else(|| "custom".into())),
        catalog_version: catalog().version.clone(),
    }
}

/// Phase 1: the card's licence declaration.
struct Declaration {
    /// The card's `license` value as written.
    raw: Option<String>,
    parsed: Declared,
    /// Canonical expression of a valid declaration.
    expr: Option<Expr>,
    /// Every change made to reach `expr`.
    normalization: Vec<String>,
}

impl Declaration {
    fn read(cx: &mut Ctx, card: &CardMeta) -> Self {
        let raw = card.license.clone();
        let parsed = interpret(raw.as_deref().unwrap_or(""), card.license_name.as_deref());
        let mut normalization = vec![];
        let expr = match &parsed {
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
                        raw.as_deref().unwrap_or("")
                    ),
                );
                None
            }
            _ => None,
        };
        if let Some(e) = &expr {
            unknown_leaves(cx, e);
        }
        Declaration {
            raw,
            parsed,
            expr,
            normalization,
        }
    }
}

/// Declared licences the catalog has no terms for.
fn unknown_leaves(cx: &mut Ctx, declared: &Expr) {
    let cat = catalog();
    for leaf in declared.leaves() {
        if cat.terms(&leaf).is_unknown() {
            cx.find(
                "unknown-license",
                Severity::Review,
                format!("{leaf}: the catalog has no terms for this licence; a person must read it"),
            );
        }
    }
}

/// Phase 2: what the shipped files say about the licence.
struct Evidence {
    detected: Vec<Detection>,
    /// Licences the evidence gives the repository itself; retained copies of other licences
    /// (LICENSE-APACHE beside the model's own licence) are not among them.
    primary: Vec<String>,
    /// Licences whose text is shipped.
    texts_present: Vec<String>,
}

impl Evidence {
    fn gather(cx: &mut Ctx, facts: &ModelFacts) -> Self {
        let mut ev = Evidence {
            detected: vec![],
            primary: vec![],
            texts_present: vec![],
        };
        // Where a model licence file is shipped (LICENSE-MODEL), it alone states the model's
        // licence; a plain LICENSE beside it usually covers the code.
        let model_file = facts
            .license_files
            .iter()
            .any(|f| Scope::of(&f.path) == Scope::Model);
        for f in &facts.license_files {
            ev.license_file(cx, &facts.card, f, model_file);
        }
        // The gated prompt often holds the licence text; a `license_link` URL names a licence.
        ev.gated_prompt(&facts.card);
        ev.license_link(&facts.card);
        for (file, value) in &facts.metadata_licenses {
            ev.metadata_license(cx, file, value);
        }
        ev
    }

    fn add_primary(&mut self, id: &str) {
        if !self.primary.iter().any(|p| p == id) {
            self.primary.push(id.to_string());
        }
    }

    fn license_file(&mut self, cx: &mut Ctx, card: &CardMeta, f: &TextFile, model_file: bool) {
        let mut found = detect_text(&f.path, &f.text);
        let linked = card
            .license_link
            .as_deref()
            .is_some_and(|l| l.trim_start_matches("./") == f.path);
        let scope = if linked {
            Scope::Main
        } else {
            Scope::of(&f.path)
        };
        if found.is_empty() && scope != Scope::Policy {
            cx.find(
                "unknown-license",
                Severity::Review,
                format!("{}: the text matches no known licence", f.path),
            );
        }
        let primary = match scope {
            Scope::Model => true,
            Scope::Main => !model_file || linked,
            _ => false,
        };
        if scope == Scope::Code && !found.is_empty() {
            let ids: Vec<&str> = found.iter().map(|d| d.id.as_str()).collect();
            cx.find(
                "code-license",
                Severity::Info,
                format!(
                    "{} licenses the code ({}), not the model weights",
                    f.path,
                    ids.join(" AND ")
                ),
            );
        }
        for d in &mut found {
            d.scope = scope.name().map(String::from);
            if scope != Scope::Policy && (d.method == "text" || d.confidence >= 0.5) {
                self.texts_present.push(d.id.clone());
            }
            if primary {
                self.add_primary(&d.id);
            }
            if matches!(scope, Scope::Main | Scope::Model | Scope::Copy) {
                modified_text(cx, d);
            }
        }
        self.detected.extend(found);
    }

    fn gated_prompt(&mut self, card: &CardMeta) {
        let Some(prompt) = card
            .gated_prompt
            .as_deref()
            .filter(|p| p.split_whitespace().count() >= 50)
        else {
            return;
        };
        for d in detect_text("README.md (extra_gated_prompt)", prompt) {
            if d.method == "text" {
                self.texts_present.push(d.id.clone());
                self.add_primary(&d.id);
                self.detected.push(d);
            }
        }
    }

    fn license_link(&mut self, card: &CardMeta) {
        if let Some(link) = card
            .license_link
            .as_deref()
            .filter(|l| l.contains("://") || l.starts_with("www."))
            && let Some(t) = catalog().by_url(link)
        {
            self.detected.push(Detection {
                file: format!("license_link {link}"),
                id: t.id.clone(),
                confidence: 0.7,
                method: "link".into(),
                added_text: vec![],
                modified: false,
                scope: None,
            });
            self.add_primary(&t.id);
        }
    }

    fn metadata_license(&mut self, cx: &mut Ctx, file: &str, value: &str) {
        match license_expr(value) {
            Ok(e) => {
                for id in e.leaves() {
                    self.detected.push(Detection {
                        file: file.to_string(),
                        id: id.clone(),
                        confidence: 1.0,
                        method: "metadata".into(),
                        added_text: vec![],
                        modified: false,
                        scope: None,
                    });
                    self.add_primary(&id);
                }
            }
            Err(e) => cx.find(
                "unknown-license",
                Severity::Warning,
                format!("{file}: metadata licence `{value}` is not understood ({e})"),
            ),
        }
    }
}

/// A shipped licence text that departs from the canonical one.
fn modified_text(cx: &mut Ctx, d: &Detection) {
    if d.modified && d.method == "text" && !d.added_text.is_empty() {
        cx.find(
            "modified-license",
            Severity::Review,
            format!(
                "{} is {} with added text (similarity {:.2}): \"{}\"; it is a different licence",
                d.file,
                d.id,
                d.confidence,
                d.added_text.join(" ")
            ),
        );
    } else if d.modified && d.method == "title" {
        cx.find("modified-license", Severity::Review, format!(
            "{} is titled as {} but its text does not match the canonical agreement (similarity {:.2}); ship the canonical text",
            d.file, d.id, d.confidence
        ));
    }
}

/// Phase 3: the repository's own licence, the declaration reconciled with the evidence.
fn own_licence(cx: &mut Ctx, decl: &Declaration, ev: &Evidence) -> Option<Expr> {
    let primary = &ev.primary;
    match (&decl.expr, primary.is_empty()) {
        (Some(d), true) => Some(d.clone()),
        (Some(d), false) => Some(reconcile(cx, d, ev)),
        (None, false) => {
            if !matches!(decl.parsed, Declared::Invalid { .. }) {
                cx.find("missing-license", Severity::Warning, format!(
                    "the card declares no usable licence; the licence files say {}: declare it in the card",
                    primary.join(" AND ")
                ));
            }
            Some(Expr::and(primary.iter().cloned().map(Expr::Leaf).collect()))
        }
        (None, true) => {
            match &decl.parsed {
                Declared::Missing => cx.find("missing-license", Severity::Error, "no licence is declared and no licence file is shipped: nobody has been granted any rights"),
                Declared::NoAssertion(why) => cx.find("missing-license", Severity::Error, format!("{why}, and no licence file says more: nobody has been granted any rights")),
                _ => {}
            }
            None
        }
    }
}

/// The declared leaf a detected licence stands for: the same licence, a variant that shares
/// its text (GPL-3.0-only for a GPL text), or a family tag the text resolves (`gpl`, `bsd`,
/// `openrail`). Returns the leaf and whether the detection resolved a family tag.
fn declared_form<'d>(detected: &str, declared: &'d [String]) -> Option<(&'d String, bool)> {
    if let Some(d) = declared.iter().find(|d| same_text(d, detected)) {
        return Some((d, false));
    }
    let cat = catalog();
    declared
        .iter()
        .find(|d| {
            let t = cat.terms(d);
            t.needs_text && t.variants.iter().any(|v| detected.starts_with(v.as_str()))
        })
        .map(|d| (d, true))
}

/// An expression with one leaf replaced.
fn substitute(e: &Expr, from: &str, to: &str) -> Expr {
    match e {
        Expr::Leaf(l) if l == from => Expr::Leaf(to.to_string()),
        Expr::Leaf(l) => Expr::Leaf(l.clone()),
        Expr::And(p) => Expr::And(p.iter().map(|x| substitute(x, from, to)).collect()),
        Expr::Or(p) => Expr::Or(p.iter().map(|x| substitute(x, from, to)).collect()),
    }
}

/// A valid declaration checked against the licence files that the evidence found.
fn reconcile(cx: &mut Ctx, declared: &Expr, ev: &Evidence) -> Expr {
    let dl = declared.leaves();
    // Detected licences in the declaration's own terms; family tags the texts resolve.
    let mut resolved: Vec<(String, String)> = vec![];
    let mut primary: Vec<String> = vec![];
    for p in &ev.primary {
        let named = match declared_form(p, &dl) {
            Some((d, true)) => {
                // The text cannot say "or later"; like the `gpl-3.0` tag, read it as `-only`.
                let only = p.replace("-or-later", "-only");
                let variant = if spdx::license_id(&only).is_some() {
                    only
                } else {
                    p.clone()
                };
                if !resolved.iter().any(|(from, _)| from == d) {
                    resolved.push((d.clone(), variant));
                }
                d.clone()
            }
            Some((d, false)) => d.clone(),
            None => p.clone(),
        };
        if !primary.contains(&named) {
            primary.push(named);
        }
    }
    let declared = &resolved
        .iter()
        .fold(declared.clone(), |e, (from, to)| substitute(&e, from, to));
    for (from, to) in &resolved {
        cx.find(
            "variant-resolved",
            Severity::Info,
            format!("{from} names a licence family; the shipped text says which: {to}"),
        );
    }
    let primary: Vec<String> = primary
        .into_iter()
        .map(|p| {
            resolved
                .iter()
                .find(|(from, _)| *from == p)
                .map_or(p, |(_, to)| to.clone())
        })
        .collect();
    let primary = &primary;
    let dl = declared.leaves();
    let modified_ids: Vec<String> = ev
        .detected
        .iter()
        .filter(|d| d.modified)
        .map(|d| declared_form(&d.id, &dl).map_or_else(|| d.id.clone(), |(l, _)| l.clone()))
        .collect();
    let agree = if declared.is_disjunction() {
        primary.iter().all(|p| dl.contains(p))
    } else {
        primary.len() == dl.len() && primary.iter().all(|p| dl.contains(p))
    };
    let tampered: Vec<&String> = dl.iter().filter(|l| modified_ids.contains(l)).collect();
    if agree && tampered.is_empty() {
        declared.clone()
    } else if agree {
        cx.find("declared-detected-mismatch", Severity::Review, format!(
            "declared {declared}, but the shipped text of {} differs from the canonical licence",
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
        Expr::and(leaves)
    } else {
        cx.find("declared-detected-mismatch", Severity::Review, format!(
            "declared {declared}, but the licence files say {}; until the publisher resolves it the stricter licence applies",
            primary.join(" AND ")
        ));
        stricter_reading(&dl, primary)
    }
}

/// What declaration and files agree on, and the most restrictive of the licences they dispute.
fn stricter_reading(declared: &[String], primary: &[String]) -> Expr {
    let cat = catalog();
    let agreed: Vec<String> = declared
        .iter()
        .filter(|l| primary.contains(l))
        .cloned()
        .collect();
    let disputed: Vec<String> = declared
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
    Expr::and(parts)
}

/// Phase 4: the models and data this one was built from.
struct Upstream {
    nodes: Vec<LineageNode>,
    /// How the model derives from its bases (finetune, adapter, merge, quantized, ...).
    relation: String,
    multimodal: bool,
    /// Effective licences of the base models.
    inherited: Vec<(String, Expr)>,
    /// Effective licences of the models whose outputs trained this one.
    teachers: Vec<(String, Expr)>,
    datasets: Vec<String>,
}

impl Upstream {
    fn trace(cx: &mut Ctx, card: &CardMeta, resolver: &dyn Resolver) -> Self {
        let multi = card.base_models.len() > 1;
        let relation = card.base_model_relation.clone().unwrap_or_else(|| {
            if multi {
                "merge".into()
            } else {
                "finetune".into()
            }
        });
        let mut up = Upstream {
            nodes: vec![],
            relation,
            multimodal: card.multimodal(),
            inherited: vec![],
            teachers: vec![],
            datasets: vec![],
        };
        for base in &card.base_models {
            up.base(cx, resolver, base);
        }
        let mut teachers: Vec<String> = card.distilled_from.clone();
        for d in &card.datasets {
            if resolver.dataset(d).is_none() && resolver.model(d).is_some() {
                teachers.push(d.clone()); // a model id listed as training data: its outputs
            } else {
                up.datasets.push(d.clone());
            }
        }
        for t in &teachers {
            up.teacher(cx, resolver, t);
        }
        up
    }

    fn base(&mut self, cx: &mut Ctx, resolver: &dyn Resolver, base: &str) {
        let up = resolver.model(base);
        self.multimodal |= up.as_ref().is_some_and(|u| u.multimodal);
        match effective_of(resolver, base, 0, &mut vec![]) {
            Ok(e) => {
                self.nodes.push(LineageNode {
                    id: base.to_string(),
                    kind: "base".into(),
                    relation: Some(self.relation.clone()),
                    license: Some(e.to_string()),
                    source: up.map(|u| u.source).unwrap_or_default(),
                });
                self.inherited.push((base.to_string(), e));
            }
            Err(why) => {
                self.nodes.push(LineageNode {
                    id: base.to_string(),
                    kind: "base".into(),
                    relation: Some(self.relation.clone()),
                    license: None,
                    source: "unknown".into(),
                });
                cx.find("unknown-license", Severity::Review, format!("base model {base}: {why}; give its licence in the lineage so that compatibility can be checked"));
            }
        }
    }

    fn teacher(&mut self, cx: &mut Ctx, resolver: &dyn Resolver, t: &str) {
        match effective_of(resolver, t, 0, &mut vec![]) {
            Ok(e) => {
                self.nodes.push(LineageNode {
                    id: t.to_string(),
                    kind: "teacher".into(),
                    relation: Some("distillation".into()),
                    license: Some(e.to_string()),
                    source: resolver.model(t).map(|u| u.source).unwrap_or_default(),
                });
                self.teachers.push((t.to_string(), e));
            }
            Err(why) => {
                self.nodes.push(LineageNode {
                    id: t.to_string(),
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

    /// A quantization of a known base: a copy of it.
    fn quantized(&self) -> bool {
        self.relation == "quantized" && !self.inherited.is_empty()
    }

    /// Whether the model contains copies of its bases' weights.
    fn weights(&self) -> bool {
        contains_weights(&self.relation)
    }

    /// Teacher licences that make a model trained on the teacher's outputs a derivative of it,
    /// as (teacher, licence).
    fn distilled_bases(&self) -> Vec<(String, String)> {
        let cat = catalog();
        let mut out = vec![];
        for (t, e) in &self.teachers {
            for leaf in e.leaves() {
                if cat.terms(&leaf).outputs == Outputs::DerivativeIfDistilled {
                    out.push((t.clone(), leaf));
                }
            }
        }
        out
    }
}

/// Phase 5: the effective licence, what a user of this model must honour.
fn effective_licence(cx: &mut Ctx, own: Option<&Expr>, up: &Upstream) -> Option<Expr> {
    let mut parts: Vec<Expr> = vec![];
    if up.quantized() {
        parts.extend(up.inherited.iter().map(|(_, e)| e.clone()));
        if let Some(o) = own {
            let base_leaves: Vec<String> = parts.iter().flat_map(|e| e.leaves()).collect();
            if o.leaves().iter().any(|l| !base_leaves.contains(l)) {
                cx.find("base-license-violation", Severity::Error, format!(
                    "a quantization is a copy of its base and keeps its licence ({}); it cannot be published as {o}",
                    base_leaves.join(" AND ")
                ));
            }
        }
    } else {
        parts.extend(own.cloned());
        parts.extend(up.inherited.iter().map(|(_, e)| e.clone()));
    }
    parts.extend(
        up.distilled_bases()
            .into_iter()
            .map(|(_, leaf)| Expr::Leaf(leaf)),
    );
    (!parts.is_empty()).then(|| Expr::and(parts))
}

/// Phase 6: what the upstream licences require of this model as their derivative.
fn derivative_rules(
    cx: &mut Ctx,
    facts: &ModelFacts,
    own: Option<&Expr>,
    up: &Upstream,
    texts_present: &[String],
) {
    let dv = Derivation::new(facts, own, up, texts_present);
    let base_leaves = upstream_leaves(up);
    for (base, leaf) in &base_leaves {
        dv.upstream_duties(cx, base, leaf);
    }
    dv.teacher_outputs(cx, &up.teachers, &base_leaves);
    if facts.card.base_models.len() > 1 || base_leaves.len() > 1 {
        merge_conflicts(cx, &base_leaves);
    }
}

/// Every upstream licence a derivative inherits, as (upstream, licence): the least restrictive
/// alternative of each base, then the teachers' licences that reach a distilled model.
fn upstream_leaves(up: &Upstream) -> Vec<(String, String)> {
    let mut leaves: Vec<(String, String)> = up
        .inherited
        .iter()
        .flat_map(|(b, e)| {
            least_restrictive(e)
                .into_iter()
                .map(move |l| (b.clone(), l))
        })
        .collect();
    leaves.extend(up.distilled_bases());
    leaves
}

/// The model as the derivative rules see it.
struct Derivation<'a> {
    name: Option<&'a str>,
    /// The model card's body.
    body: &'a str,
    /// All NOTICE files, joined.
    notices: String,
    /// Whether the model contains copies of its bases' weights.
    weights: bool,
    /// Licence files and card body: where passed-down restrictions can be carried.
    shipped_texts: Vec<&'a str>,
    /// Licences whose text is shipped.
    texts_present: &'a [String],
    /// Leaves of the repository's own licence.
    own_leaves: Vec<String>,
    /// Whether the model is published under a licence of its own (not as a quantized copy).
    own_licence: bool,
}

impl<'a> Derivation<'a> {
    fn new(
        facts: &'a ModelFacts,
        own: Option<&Expr>,
        up: &Upstream,
        texts_present: &'a [String],
    ) -> Self {
        let body = facts.card_body.as_str();
        Derivation {
            name: facts.name.as_deref(),
            body,
            notices: facts
                .notice_files
                .iter()
                .map(|f| f.text.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            weights: up.weights(),
            shipped_texts: facts
                .license_files
                .iter()
                .map(|f| f.text.as_str())
                .chain([body])
                .collect(),
            texts_present,
            own_leaves: own.map(|o| o.leaves()).unwrap_or_default(),
            own_licence: !up.quantized() && own.is_some(),
        }
    }

    /// Whether the model is published under its own licence, which lacks this upstream one.
    fn relabelled(&self, leaf: &str) -> bool {
        self.own_licence && !self.own_leaves.iter().any(|l| l == leaf)
    }

    /// Everything one upstream licence asks of this model.
    fn upstream_duties(&self, cx: &mut Ctx, base: &str, leaf: &str) {
        let t = catalog().terms(leaf);
        self.relabelling(cx, base, leaf, &t);
        if matches!(t.derivatives, Derivatives::RestrictionsFlowDown) {
            cx.oblige(format!("include the use restrictions of the {} as enforceable terms in the licence of this model, and tell recipients they apply", t.name));
        }
        self.licence_copy(cx, leaf, &t);
        self.notice_file(cx, &t);
        credit_duties(cx, base, &t);
        naming_rules(cx, &t, self.name, self.body, base);
        if let Some(aup) = &t.use_policy {
            cx.oblige(format!(
                "pass the {aup} on to your users: it binds every use of this model"
            ));
        }
    }

    /// Whether the upstream licence lets its derivative be shared, and under the licence it has.
    fn relabelling(&self, cx: &mut Ctx, base: &str, leaf: &str, t: &Terms) {
        let cat = catalog();
        let tn = terms_name(t);
        let relabelled = self.relabelled(leaf);
        let own_leaves = &self.own_leaves;
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
                if relabelled && !carries_restrictions(leaf, &self.shipped_texts) =>
            {
                cx.find("restriction-not-passed-down", Severity::Error, format!("{base} is under {tn}: its use restrictions must be an enforceable part of this model's licence, and {} alone does not carry them", own_leaves.join(" AND ")));
            }
            _ => {}
        }
    }

    /// A copy of the upstream licence that must travel with the model.
    fn licence_copy(&self, cx: &mut Ctx, leaf: &str, t: &Terms) {
        if t.license_copy == LicenseCopy::None {
            return;
        }
        if !self.texts_present.iter().any(|p| p == leaf) {
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
        cx.oblige(format!("ship a copy of the {} with the model", t.name));
    }

    /// The NOTICE text the upstream licence requires of anything containing its weights.
    fn notice_file(&self, cx: &mut Ctx, t: &Terms) {
        let Some(notice) = t.notice_file.as_ref().filter(|_| self.weights) else {
            return;
        };
        if !contains_phrase(&self.notices, notice) {
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

    /// What teacher licences say about training this model on their outputs.
    fn teacher_outputs(
        &self,
        cx: &mut Ctx,
        teachers: &[(String, Expr)],
        base_leaves: &[(String, String)],
    ) {
        let cat = catalog();
        let student_families: Vec<String> = base_leaves
            .iter()
            .filter_map(|(_, l)| cat.terms(l).family)
            .chain(self.own_leaves.iter().filter_map(|l| cat.terms(l).family))
            .collect();
        for (teacher, e) in teachers {
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
                        naming_rules(cx, &t, self.name, self.body, teacher)
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Credit the upstream licence asks for: notices, change marks, documentation, attribution.
fn credit_duties(cx: &mut Ctx, base: &str, t: &Terms) {
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
}

/// Training-data risk levels, least serious first.
const DATA_RISKS: [&str; 5] = [
    "clear",
    "attribution",
    "unknown",
    "share-alike-unsettled",
    "non-commercial-unsettled",
];

/// The more serious of two training-data risk levels.
fn graver(a: &'static str, b: &'static str) -> &'static str {
    let rank = |r: &str| DATA_RISKS.iter().position(|x| *x == r).unwrap_or(0);
    if rank(b) > rank(a) { b } else { a }
}

/// Phase 7: the training data, its lineage nodes, and the overall risk its licences carry.
fn training_data(
    cx: &mut Ctx,
    resolver: &dyn Resolver,
    datasets: &[String],
    lineage: &mut Vec<LineageNode>,
) -> &'static str {
    let mut risk = "clear";
    for d in datasets {
        risk = graver(risk, dataset(cx, resolver, d, lineage));
    }
    risk
}

/// One dataset's lineage node, findings and risk level (`clear` adds nothing to the overall
/// risk).
fn dataset(
    cx: &mut Ctx,
    resolver: &dyn Resolver,
    d: &str,
    lineage: &mut Vec<LineageNode>,
) -> &'static str {
    let Some((lic, source)) = resolver.dataset(d) else {
        lineage.push(LineageNode {
            id: d.to_string(),
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
        return "unknown";
    };
    let expr = license_expr(&lic);
    lineage.push(LineageNode {
        id: d.to_string(),
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
        return "clear";
    };
    let mut risk = "clear";
    for leaf in least_restrictive(&expr) {
        risk = graver(risk, data_licence(cx, d, &leaf));
    }
    risk
}

/// The risk one licence of a dataset carries for a model trained on it.
fn data_licence(cx: &mut Ctx, d: &str, leaf: &str) -> &'static str {
    let t = catalog().terms(leaf);
    if t.results_unrestricted || t.has_category("public-domain") {
        "clear"
    } else if t.commercial == Commercial::No {
        noncommercial_data(cx, d, leaf);
        "non-commercial-unsettled"
    } else if t.share_alike {
        let rule = cx
            .policy
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
    }
}

/// Non-commercial training data, judged by the intended use and the policy.
fn noncommercial_data(cx: &mut Ctx, d: &str, leaf: &str) {
    let rule = cx
        .policy
        .map(|p| p.noncommercial_training_data)
        .unwrap_or_default();
    if cx.use_ctx.purpose.is_production() {
        match rule {
            DataRule::Deny => cx.find("noncommercial-training-data", Severity::Error, format!("dataset {d} is {leaf} (non-commercial) and the policy blocks non-commercial training data for commercial use")),
            DataRule::Review => cx.find("noncommercial-training-data", Severity::Review, format!("dataset {d} is {leaf} (non-commercial): whether the licence reaches a model trained on it is legally unsettled; a person must decide")),
            DataRule::Allow => cx.find("noncommercial-training-data", Severity::Info, format!("dataset {d} is {leaf} (non-commercial); the policy accepts the risk")),
        }
    } else {
        cx.find(
            "noncommercial-training-data",
            Severity::Info,
            format!("dataset {d} is {leaf} (non-commercial); the intended use is not commercial"),
        );
    }
}

/// Phase 8: the use checked against each alternative of the effective licence; the one that
/// decides best is chosen. Returns the chosen licences and their terms.
fn use_in_context(
    cx: &mut Ctx,
    effective: &Expr,
    multimodal: bool,
    derivative: bool,
) -> (Vec<String>, Vec<Terms>) {
    let alts = effective.alternatives();
    let Some((alt, ac)) = best_alternative(cx, &alts, multimodal, derivative) else {
        return (vec![], vec![]);
    };
    if alts.len() > 1 {
        cx.oblige(format!(
            "choose {} where the licence offers alternatives, and honour its terms",
            alt.join(" AND ")
        ));
    }
    cx.absorb(ac);
    let cat = catalog();
    let terms = alt.iter().map(|l| cat.terms(l)).collect();
    (alt, terms)
}

/// The alternative with the best decision, then the fewest obligations, with the findings and
/// obligations of its use.
fn best_alternative<'a>(
    cx: &Ctx<'a>,
    alts: &[Vec<String>],
    multimodal: bool,
    derivative: bool,
) -> Option<(Vec<String>, Ctx<'a>)> {
    let mut best: Option<(Decision, usize, Vec<String>, Ctx)> = None;
    for alt in alts {
        let mut ac = Ctx::new(cx.policy, cx.use_ctx);
        for leaf in alt {
            use_rules(&mut ac, leaf, multimodal, derivative);
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
    best.map(|(_, _, alt, ac)| (alt, ac))
}

/// A policy may insist that the shipped licence text matches the declaration.
fn require_detected_match(cx: &mut Ctx) {
    if cx.policy.is_some_and(|p| p.require_detected_match)
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
    if t.passes_down_restrictions() && !end_user {
        cx.oblige(format!(
            "pass the use restrictions of the {} on to everyone you give the model or a derivative to, as enforceable terms, and tell them the restrictions apply",
            t.name
        ));
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
