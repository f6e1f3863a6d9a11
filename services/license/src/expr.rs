//! Declared licences as SPDX expressions: strict parsing, explicit normalisation of inputs
//! that are almost right (every change reported), and rejection with suggestions.
//!
//! The `spdx` crate's lax mode is used only as a tokenizer whose guesses are checked: its
//! imprecise-name table maps "gnu gpl v2" to GPL-3.0-only, so a guess whose version numbers
//! differ from the input's is refused.

use serde::Serialize;
use spdx::{Expression, LicenseItem, ParseMode, expression::ExprNode, expression::Operator};

use crate::catalog::{Catalog, catalog};

/// A licence expression over canonical requirement strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Leaf(String),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// Alternatives are capped so that a hostile `A OR B OR ...` AND chain cannot explode.
const MAX_ALTERNATIVES: usize = 256;

impl Expr {
    pub fn and(parts: Vec<Expr>) -> Expr {
        let mut flat: Vec<Expr> = Vec::new();
        for p in parts {
            match p {
                Expr::And(inner) => {
                    for i in inner {
                        if !flat.contains(&i) {
                            flat.push(i);
                        }
                    }
                }
                other => {
                    if !flat.contains(&other) {
                        flat.push(other);
                    }
                }
            }
        }
        if flat.len() == 1 {
            flat.pop().expect("one")
        } else {
            Expr::And(flat)
        }
    }

    /// Disjunctive normal form: each alternative is the set of licences one must honour.
    pub fn alternatives(&self) -> Vec<Vec<String>> {
        match self {
            Expr::Leaf(l) => vec![vec![l.clone()]],
            Expr::Or(parts) => {
                let mut out = Vec::new();
                for p in parts {
                    for alt in p.alternatives() {
                        if !out.contains(&alt) && out.len() < MAX_ALTERNATIVES {
                            out.push(alt);
                        }
                    }
                }
                out
            }
            Expr::And(parts) => {
                let mut acc: Vec<Vec<String>> = vec![vec![]];
                for p in parts {
                    let mut next = Vec::new();
                    for left in &acc {
                        for right in p.alternatives() {
                            let mut merged = left.clone();
                            for r in right {
                                if !merged.contains(&r) {
                                    merged.push(r);
                                }
                            }
                            if next.len() < MAX_ALTERNATIVES {
                                next.push(merged);
                            }
                        }
                    }
                    acc = next;
                }
                acc
            }
        }
    }

    pub fn leaves(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<String>) {
        match self {
            Expr::Leaf(l) => {
                if !out.contains(l) {
                    out.push(l.clone())
                }
            }
            Expr::And(p) | Expr::Or(p) => p.iter().for_each(|e| e.collect(out)),
        }
    }

    pub fn is_disjunction(&self) -> bool {
        matches!(self, Expr::Or(_))
    }

    fn render(&self, nested: bool) -> String {
        match self {
            Expr::Leaf(l) => l.clone(),
            Expr::And(p) => {
                let s = p
                    .iter()
                    .map(|e| e.render(true))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                if nested && p.len() > 1 {
                    format!("({s})")
                } else {
                    s
                }
            }
            Expr::Or(p) => {
                let s = p
                    .iter()
                    .map(|e| e.render(true))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                if nested && p.len() > 1 {
                    format!("({s})")
                } else {
                    s
                }
            }
        }
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(false))
    }
}

/// What became of a declared licence.
#[derive(Debug, Clone)]
pub enum Declared {
    /// Nothing declared.
    Missing,
    /// `NOASSERTION`, `NONE`, `unknown`, or `other` without a resolvable `license_name`.
    NoAssertion(String),
    /// A valid expression, with the changes made to reach it (empty when already canonical).
    Valid { expr: Expr, changes: Vec<String> },
    /// Not understood.
    Invalid {
        message: String,
        suggestions: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub input: String,
    pub candidates: Vec<String>,
}

/// Interprets a card's `license` (+ `license_name` for `other`) or an API-declared expression.
pub fn interpret(license: &str, license_name: Option<&str>) -> Declared {
    let input = license.trim();
    if input.is_empty() {
        return Declared::Missing;
    }
    let lower = input.to_lowercase();
    if lower == "other" {
        return match license_name.map(str::trim).filter(|n| !n.is_empty()) {
            None => Declared::NoAssertion("license: other without license_name".into()),
            Some(name) => match catalog().resolve_key(name) {
                Some(id) => Declared::Valid {
                    changes: vec![format!(
                        "`other` with license_name `{name}` resolved to {id}"
                    )],
                    expr: Expr::Leaf(id),
                },
                None => Declared::NoAssertion(format!(
                    "license: other with license_name `{name}`, which the catalog does not know"
                )),
            },
        };
    }
    if ["noassertion", "none", "unknown"].contains(&lower.as_str()) {
        return Declared::NoAssertion(format!("`{input}` states no licence"));
    }
    if NO_LICENCE_WORDS.contains(&lower.as_str()) {
        return Declared::NoAssertion(format!(
            "`{input}` means that no licence is granted (all rights reserved)"
        ));
    }
    normalize(input)
}

/// Declared values that mean "no licence" (npm's `UNLICENSED`, "proprietary"): never read as a
/// licence, and never answered with a suggestion such as `Unlicense`, which grants everything.
const NO_LICENCE_WORDS: &[&str] = &[
    "unlicensed",
    "proprietary",
    "all rights reserved",
    "all-rights-reserved",
    "closed",
    "closed-source",
    "private",
    "restricted",
];

/// Parses an SPDX expression, normalising near misses and reporting each change.
pub fn normalize(input: &str) -> Declared {
    let cat = catalog();
    // A whole-input HF tag or alias (`apache-2.0`, `llama3.1`, `openmdw-1.1`).
    if let Some(id) = cat.resolve_key(input) {
        let changes = if id == input {
            vec![]
        } else {
            vec![format!(
                "`{input}` mapped to {id} (Hugging Face tag or alias)"
            )]
        };
        return Declared::Valid {
            expr: Expr::Leaf(id),
            changes,
        };
    }
    // A licence written by name (`MIT License`, `Apache License, Version 2.0`, `gnu gpl v2`).
    if let Some((id, how)) = licence_by_name(input) {
        return Declared::Valid {
            changes: vec![format!("`{input}` read as {id} ({how})")],
            expr: Expr::Leaf(id),
        };
    }
    if let Ok(expr) = Expression::parse_mode(input, ParseMode::STRICT) {
        let mut changes = Vec::new();
        let e = convert(&expr, input, &mut changes, cat);
        return match e {
            Ok(e) => Declared::Valid { expr: e, changes },
            Err(message) => Declared::Invalid {
                message,
                suggestions: vec![],
            },
        };
    }
    // Token-level repairs: HF tags and aliases inside expressions, operator case.
    let mut changes = Vec::new();
    let joined = join_versions(input, cat, &mut changes);
    let repaired = repair_tokens(&joined, cat, &mut changes);
    let strict_err = match Expression::parse_mode(&repaired, ParseMode::STRICT) {
        Ok(expr) => {
            return match convert(&expr, &repaired, &mut changes, cat) {
                Ok(e) => Declared::Valid { expr: e, changes },
                Err(message) => Declared::Invalid {
                    message,
                    suggestions: vec![],
                },
            };
        }
        Err(e) => e,
    };
    let lax = ParseMode {
        allow_slash_as_or_operator: true,
        allow_imprecise_license_names: true,
        allow_postfix_plus_on_gpl: true,
        allow_deprecated: true,
        allow_unknown: false,
    };
    match Expression::parse_mode(&repaired, lax) {
        Ok(expr) => {
            if repaired.contains('/') {
                changes.push("`/` is not an SPDX operator: read as OR".into());
            }
            match convert(&expr, &repaired, &mut changes, cat) {
                Ok(e) => Declared::Valid { expr: e, changes },
                Err(message) => Declared::Invalid {
                    suggestions: suggest_all(input),
                    message,
                },
            }
        }
        Err(_) => Declared::Invalid {
            message: strict_err.to_string(),
            suggestions: suggest_all(input),
        },
    }
}

/// Lower-case words of a licence name; "version" and punctuation dropped.
fn name_words(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '+' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .filter(|w| !["version", "the"].contains(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Full names of SPDX licences and catalog entries, by their words; names shared by two
/// licences are left out, so that a name never picks one of several.
fn names() -> &'static std::collections::HashMap<String, String> {
    static NAMES: std::sync::OnceLock<std::collections::HashMap<String, String>> =
        std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut seen: std::collections::HashMap<String, Option<String>> = Default::default();
        let mut add = |name: &str, id: &str| {
            let key = name_words(name);
            if key.is_empty() {
                return;
            }
            let entry = seen.entry(key).or_insert_with(|| Some(id.to_string()));
            if entry.as_deref() != Some(id) {
                *entry = None;
            }
        };
        for l in spdx::identifiers::LICENSES {
            if l.flags & spdx::flags::IS_DEPRECATED == 0 {
                add(l.full_name, l.name);
            }
        }
        for t in catalog().licenses() {
            add(&t.name, &t.id);
        }
        seen.into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    })
}

/// A whole input that names one licence: its full name, or a GNU licence in free text.
fn licence_by_name(input: &str) -> Option<(String, &'static str)> {
    if let Some(id) = names().get(&name_words(input)) {
        return Some((id.clone(), "licence name"));
    }
    if let Some(id) = creative_commons_short_name(input) {
        return Some((id, "Creative Commons short name"));
    }
    gnu_name(input).map(|id| {
        (
            id,
            "GNU licence name; `-only` unless \"or later\" is stated",
        )
    })
}

/// "CC BY 4.0", "CC BY-NC-SA 3.0", "cc0 1.0" (Creative Commons' own short names, spaces
/// where SPDX has hyphens) -> the listed SPDX id; anything not on the list is left alone.
fn creative_commons_short_name(input: &str) -> Option<String> {
    let upper = input.trim().to_uppercase();
    if !(upper.starts_with("CC ") || upper.starts_with("CC0 ") || upper.starts_with("CC-")) {
        return None;
    }
    let id = upper.split_whitespace().collect::<Vec<_>>().join("-");
    spdx::license_id(&id)
        .filter(|l| !l.is_deprecated())
        .map(|l| l.name.to_string())
}

/// "gnu gpl v2", "GNU Lesser General Public License 2.1 or later", "AGPLv3+" -> SPDX id.
fn gnu_name(input: &str) -> Option<String> {
    const WORDS: &[&str] = &[
        "gnu",
        "gpl",
        "lgpl",
        "agpl",
        "fdl",
        "gfdl",
        "general",
        "public",
        "license",
        "licence",
        "lesser",
        "library",
        "affero",
        "free",
        "documentation",
        "or",
        "later",
        "only",
        "any",
        "v",
        "+",
    ];
    let lower = input.to_lowercase().replace('+', " + ");
    let mut words: Vec<String> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '+'))
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches('.').to_string())
        .collect();
    // "gplv2", "agplv3" -> "gpl", "2".
    let mut split = vec![];
    for w in words.drain(..) {
        match w
            .find('v')
            .filter(|&i| i > 0 && w[i + 1..].starts_with(|c: char| c.is_ascii_digit()))
        {
            Some(i) => {
                split.push(w[..i].to_string());
                split.push(w[i + 1..].to_string());
            }
            None => split.push(w),
        }
    }
    let is_version = |w: &str| {
        let w = w.strip_prefix('v').unwrap_or(w);
        !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '.')
    };
    if split
        .iter()
        .any(|w| !WORDS.contains(&w.as_str()) && !is_version(w))
    {
        return None;
    }
    let has = |w: &str| split.iter().any(|x| x == w);
    let kind = if has("agpl") || has("affero") {
        "AGPL"
    } else if has("lgpl") || has("lesser") || has("library") {
        "LGPL"
    } else if has("fdl") || has("gfdl") || has("documentation") {
        "GFDL"
    } else if has("gpl") || (has("general") && has("public")) {
        "GPL"
    } else {
        return None;
    };
    let version = split.iter().find(|w| is_version(w))?;
    let version = version.strip_prefix('v').unwrap_or(version);
    let version = if version.contains('.') {
        version.to_string()
    } else {
        format!("{version}.0")
    };
    let later = has("later") || has("+") || has("any");
    let id = format!(
        "{kind}-{version}-{}",
        if later { "or-later" } else { "only" }
    );
    spdx::license_id(&id).map(|_| id)
}

fn is_operator(tok: &str) -> bool {
    ["and", "or", "with"].contains(&tok.to_lowercase().as_str())
}

/// Replaces HF tags and aliases found as whole tokens by canonical ids, and upper-cases
/// operators written in mixed case.
fn repair_tokens(input: &str, cat: &Catalog, changes: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String, changes: &mut Vec<String>| {
        if token.is_empty() {
            return;
        }
        if is_operator(token) {
            let upper = token.to_uppercase();
            if *token != upper && *token != token.to_lowercase() {
                changes.push(format!("operator `{token}` written as {upper}"));
            }
            out.push_str(&upper);
        } else if spdx::license_id(token).is_some()
            || spdx::exception_id(token).is_some()
            || token.starts_with("LicenseRef-")
            || token.starts_with("DocumentRef-")
        {
            out.push_str(token);
        } else if let Some(e) = spdx::identifiers::EXCEPTIONS
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(token))
        {
            changes.push(format!("exception `{token}` written as {}", e.name));
            out.push_str(e.name);
        } else if let Some(id) = cat.resolve_key(token) {
            changes.push(format!(
                "`{token}` mapped to {id} (Hugging Face tag or alias)"
            ));
            out.push_str(&id);
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for ch in input.chars() {
        if ch.is_whitespace() || ch == '(' || ch == ')' || ch == '/' {
            flush(&mut token, &mut out, changes);
            out.push(ch);
        } else {
            token.push(ch);
        }
    }
    flush(&mut token, &mut out, changes);
    out
}

/// Joins a name and a separate version ("Apache 2", "MIT License") into a listed id when
/// the joined form is one.
fn join_versions(input: &str, cat: &Catalog, changes: &mut Vec<String>) -> String {
    let words: Vec<&str> = input.split(' ').collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if let Some(next) = words.get(i + 1) {
            let version = next.trim_start_matches(['v', 'V']);
            let is_version =
                !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.');
            if is_version
                && !is_operator(w)
                && cat.resolve_key(w).is_none()
                && spdx::license_id(w).is_none()
            {
                let candidates = [format!("{w}-{version}"), format!("{w}-{version}.0")];
                if let Some(id) = candidates.iter().find_map(|c| cat.resolve_key(c)) {
                    changes.push(format!("`{w} {next}` read as {id}"));
                    out.push(id);
                    i += 2;
                    continue;
                }
            }
        }
        out.push(w.to_string());
        i += 1;
    }
    out.join(" ")
}

/// Numbers in a licence name: "gnu gpl v2" -> ["2"], "GPL-3.0-only" -> ["3"].
fn version_numbers(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in s.split(|c: char| !c.is_ascii_digit() && c != '.') {
        let trimmed = part.trim_matches('.');
        if trimmed.is_empty() {
            continue;
        }
        // "2.0" and "2" are the same version.
        let mut n = trimmed.to_string();
        while n.ends_with(".0") {
            n.truncate(n.len() - 2);
        }
        out.push(n);
    }
    out
}

/// Converts a parsed expression into canonical form, recording every change.
fn convert(
    expr: &Expression,
    original: &str,
    changes: &mut Vec<String>,
    cat: &Catalog,
) -> Result<Expr, String> {
    let mut stack: Vec<Expr> = Vec::new();
    for node in expr.iter() {
        match node {
            ExprNode::Req(req) => {
                let written = original
                    .get(req.span.start as usize..req.span.end as usize)
                    .unwrap_or("")
                    .trim();
                let leaf = canonical_requirement(&req.req, written, changes, cat)?;
                stack.push(Expr::Leaf(leaf));
            }
            ExprNode::Op(op) => {
                let right = stack.pop().ok_or("malformed expression")?;
                let left = stack.pop().ok_or("malformed expression")?;
                stack.push(match op {
                    Operator::And => merge(left, right, true),
                    Operator::Or => merge(left, right, false),
                });
            }
        }
    }
    let result = stack.pop().ok_or("empty expression")?;
    if !stack.is_empty() {
        return Err("malformed expression".into());
    }
    Ok(result)
}

fn merge(left: Expr, right: Expr, and: bool) -> Expr {
    let mut parts = Vec::new();
    for side in [left, right] {
        match (side, and) {
            (Expr::And(p), true) | (Expr::Or(p), false) => parts.extend(p),
            (other, _) => parts.push(other),
        }
    }
    if and {
        Expr::And(parts)
    } else {
        Expr::Or(parts)
    }
}

/// The canonical text of one requirement; deprecated ids replaced, guesses checked.
fn canonical_requirement(
    req: &spdx::LicenseReq,
    written: &str,
    changes: &mut Vec<String>,
    cat: &Catalog,
) -> Result<String, String> {
    let license = match &req.license {
        LicenseItem::Spdx { id, or_later } => {
            let mut name = id.name.to_string();
            let mut or_later = *or_later;
            if id.is_deprecated() {
                let replaced = replace_deprecated(id.name, or_later);
                match replaced {
                    Some(new) => {
                        changes.push(format!("deprecated id `{written}` replaced by {new}"));
                        name = new;
                        or_later = false;
                    }
                    None => changes.push(format!("`{}` is a deprecated SPDX id", id.name)),
                }
            } else {
                let written_base = written.split_whitespace().next().unwrap_or(written);
                let exact = written_base == id.name
                    || written_base.trim_end_matches('+') == id.name
                    || written.starts_with(id.name);
                if !exact {
                    // A guess from the lax tables: only accept it when the numbers agree, so
                    // that neither a version nor a variant (`bsd` -> BSD-2-Clause) is invented.
                    let (want, got) = (version_numbers(written), version_numbers(id.name));
                    let head = |v: &[String]| v.first().cloned();
                    if head(&want) != head(&got) {
                        return Err(format!(
                            "`{written}` is not an SPDX id; the closest listed licence {} has a version or variant the input does not state, so it is not assumed",
                            id.name
                        ));
                    }
                    changes.push(format!("`{written}` read as {}", id.name));
                }
            }
            if or_later && !id.is_gnu() {
                format!("{name}+")
            } else {
                name
            }
        }
        LicenseItem::Other(r) => {
            let text = r.to_string();
            match cat.resolve_key(&text) {
                Some(id) if id != text && r.doc_ref.is_none() => {
                    changes.push(format!("{text} is known as {id}"));
                    id
                }
                _ => text,
            }
        }
    };
    Ok(match &req.addition {
        Some(add) => format!("{license} WITH {add}"),
        None => license,
    })
}

/// Deprecated SPDX ids and their current replacements.
pub(crate) fn replace_deprecated(name: &str, or_later: bool) -> Option<String> {
    let suffix = if or_later || name.ends_with('+') {
        "-or-later"
    } else {
        "-only"
    };
    let base = name.trim_end_matches('+');
    for gnu in [
        "GPL-1.0", "GPL-2.0", "GPL-3.0", "LGPL-2.0", "LGPL-2.1", "LGPL-3.0", "AGPL-1.0",
        "AGPL-3.0", "GFDL-1.1", "GFDL-1.2", "GFDL-1.3",
    ] {
        if base == gnu {
            return Some(format!("{gnu}{suffix}"));
        }
    }
    match base {
        "StandardML-NJ" => Some("SMLNJ".into()),
        "wxWindows" => Some("LGPL-2.0-or-later WITH WxWindows-exception-3.1".into()),
        "Nunit" => Some("zlib-acknowledgement".into()),
        _ => None,
    }
}

/// Suggestions for each token the parser could not place.
fn suggest_all(input: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tok in input.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '/') {
        if tok.is_empty() || is_operator(tok) || spdx::license_id(tok).is_some() {
            continue;
        }
        for s in suggest(tok) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out.truncate(5);
    out
}

/// The closest SPDX ids, catalog ids and HF tags to an unknown token.
pub fn suggest(token: &str) -> Vec<String> {
    let lower = token.to_lowercase();
    if NO_LICENCE_WORDS.contains(&lower.as_str()) {
        return vec![];
    }
    let cat = catalog();
    let mut scored: Vec<(f64, String)> = Vec::new();
    let mut consider = |candidate: &str, canonical: &str| {
        let score = strsim::jaro_winkler(&lower, &candidate.to_lowercase());
        if score >= 0.85 {
            scored.push((score, canonical.to_string()));
        }
    };
    for l in spdx::identifiers::LICENSES {
        if l.flags & spdx::flags::IS_DEPRECATED == 0 {
            consider(l.name, l.name);
        }
    }
    for t in cat.licenses() {
        consider(&t.id, &t.id);
        for tag in &t.hf_tags {
            consider(tag, &t.id);
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<String> = Vec::new();
    for (_, c) in scored {
        if !out.contains(&c) {
            out.push(c);
        }
        if out.len() == 3 {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(input: &str) -> (String, Vec<String>) {
        match normalize(input) {
            Declared::Valid { expr, changes } => (expr.to_string(), changes),
            other => panic!("{input}: {other:?}"),
        }
    }

    #[test]
    fn canonical_expressions_pass_unchanged() {
        for s in [
            "MIT",
            "Apache-2.0 OR MIT",
            "Apache-2.0 WITH LLVM-exception",
            "LicenseRef-Custom-1",
            "DocumentRef-base:LicenseRef-llama3",
        ] {
            let (e, changes) = valid(s);
            assert_eq!(e, s);
            assert!(changes.is_empty(), "{s}: {changes:?}");
        }
    }

    #[test]
    fn near_misses_are_normalised_with_reasons() {
        assert_eq!(valid("apache-2.0").0, "Apache-2.0");
        assert_eq!(valid("GPL-2.0+").0, "GPL-2.0-or-later");
        assert_eq!(valid("GPL-2.0").0, "GPL-2.0-only");
        assert_eq!(valid("AGPL-3.0").0, "AGPL-3.0-only");
        assert_eq!(valid("MIT/Apache-2.0").0, "MIT OR Apache-2.0");
        assert_eq!(valid("Apache 2").0, "Apache-2.0");
        assert_eq!(valid("llama3").0, "LicenseRef-Llama-3-Community");
        assert_eq!(valid("OpenMDW-1.1").0, "LicenseRef-scancode-openmdw-1.1");
        assert_eq!(valid("apache-2.0 OR mit").0, "Apache-2.0 OR MIT");
        assert_eq!(valid("Apache-2.0 Or MIT").0, "Apache-2.0 OR MIT");
        let (e, changes) = valid("mit AND cc-by-nc-4.0");
        assert_eq!(e, "MIT AND CC-BY-NC-4.0");
        assert_eq!(changes.len(), 2, "{changes:?}");
    }

    #[test]
    fn wrong_guesses_and_garbage_are_refused() {
        match normalize("Apache-2.0 WITH MIT") {
            Declared::Invalid {
                message,
                suggestions,
            } => {
                assert_eq!(
                    message,
                    "Apache-2.0 WITH MIT\n                ^^^ expected a `<addition>` here"
                );
                assert!(suggestions.is_empty(), "{suggestions:?}");
            }
            other => panic!("{other:?}"),
        }
        // A licence name with a version the list lacks is not guessed.
        assert!(matches!(
            normalize("GNU General Public License v4"),
            Declared::Invalid { .. }
        ));
        match normalize("Apache-2.1") {
            Declared::Invalid { suggestions, .. } => assert!(
                suggestions.contains(&"Apache-2.0".to_string()),
                "{suggestions:?}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(normalize("(MIT"), Declared::Invalid { .. }));
        assert!(matches!(
            normalize("CC-BY-4.0 OR"),
            Declared::Invalid { .. }
        ));
    }

    #[test]
    fn licence_names_and_gnu_free_text_are_read_with_the_change_reported() {
        // The crate's lax table maps "gnu gpl v2" to GPL-3.0-only; the version written wins.
        for (input, want) in [
            ("gnu gpl v2", "GPL-2.0-only"),
            ("GNU GPL v3 or later", "GPL-3.0-or-later"),
            ("GPLv3+", "GPL-3.0-or-later"),
            ("LGPL v2.1", "LGPL-2.1-only"),
            ("GNU Affero General Public License v3", "AGPL-3.0-only"),
            ("MIT License", "MIT"),
            ("Apache License 2.0", "Apache-2.0"),
            ("Apache License, Version 2.0", "Apache-2.0"),
            ("BSD 3-Clause License", "BSD-3-Clause"),
            ("Gemma Terms of Use", "LicenseRef-Gemma-ToU"),
            ("CC BY 4.0", "CC-BY-4.0"),
            ("CC BY-NC-SA 3.0", "CC-BY-NC-SA-3.0"),
            ("cc0 1.0", "CC0-1.0"),
        ] {
            let (e, changes) = valid(input);
            assert_eq!(e, want, "{input}");
            assert_eq!(changes.len(), 1, "{input}: {changes:?}");
            assert!(changes[0].contains(input), "{changes:?}");
        }
    }

    #[test]
    fn lowercase_exception_ids_are_normalised() {
        let (e, changes) = valid("gpl-2.0 with autoconf-exception-2.0");
        assert_eq!(e, "GPL-2.0-only WITH Autoconf-exception-2.0");
        assert!(
            changes.iter().any(|c| c.contains("Autoconf-exception-2.0")),
            "{changes:?}"
        );
        assert_eq!(
            valid("Apache-2.0 WITH llvm-exception").0,
            "Apache-2.0 WITH LLVM-exception"
        );
    }

    #[test]
    fn no_licence_words_are_never_turned_into_a_licence() {
        for input in ["UNLICENSED", "proprietary", "All Rights Reserved"] {
            assert!(
                matches!(interpret(input, None), Declared::NoAssertion(_)),
                "{input}"
            );
        }
        // Not even as a suggestion: `Unlicense` grants everything, `UNLICENSED` nothing.
        assert!(suggest("UNLICENSED").is_empty());
        match normalize("UNLICENSED") {
            Declared::Invalid { suggestions, .. } => assert!(suggestions.is_empty()),
            other => panic!("{other:?}"),
        }
        assert!(suggest("Unlicence").contains(&"Unlicense".to_string()));
    }

    #[test]
    fn no_assertion_is_its_own_state() {
        assert!(matches!(
            interpret("NOASSERTION", None),
            Declared::NoAssertion(_)
        ));
        assert!(matches!(interpret("other", None), Declared::NoAssertion(_)));
        assert!(matches!(interpret("", None), Declared::Missing));
        match interpret("other", Some("deepseek")) {
            Declared::Valid { expr, .. } => {
                assert_eq!(expr.to_string(), "LicenseRef-scancode-deepseek-la-1.0")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn alternatives_distribute_and_over_or() {
        let Declared::Valid { expr, .. } = normalize("MIT AND (Apache-2.0 OR GPL-3.0-only)") else {
            panic!()
        };
        assert_eq!(
            expr.alternatives(),
            vec![
                vec!["MIT".to_string(), "Apache-2.0".into()],
                vec!["MIT".into(), "GPL-3.0-only".into()]
            ]
        );
        assert_eq!(expr.to_string(), "MIT AND (Apache-2.0 OR GPL-3.0-only)");
    }
}
