//! Licence-text detection: the `spdx` crate's detector with the catalog's AI licence texts
//! added to its store, multi-licence scanning for concatenated files, title claims checked
//! against canonical text, and a sentence diff that finds clauses added to a known text.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::Serialize;
use spdx::detection::{Store, TextData, scan::Scanner};

use crate::catalog::catalog;

/// At or above this score a whole-file match identifies the licence.
const IDENTIFY: f32 = 0.9;
/// Longest text analysed; licence files are a few tens of KiB.
pub const MAX_TEXT: usize = 512 * 1024;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Detection {
    pub file: String,
    pub id: String,
    pub confidence: f32,
    /// `text` (full-text match), `title` (the file claims the licence by title only) or
    /// `metadata` (a GGUF header or similar).
    pub method: String,
    /// Sentences present in the file but not in the canonical text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added_text: Vec<String>,
    /// True when the text differs materially from the canonical one.
    pub modified: bool,
    /// What the file covers when its name or folder says so: `model` (LICENSE-MODEL),
    /// `code` (LICENSE-CODE), `policy` (USE_POLICY.md), `component` (a licence file in a
    /// subfolder) or `copy` (LICENSE-APACHE beside the model's own licence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut store = Store::load_inline().expect("spdx inline cache loads");
        for t in catalog().licenses() {
            for (i, text) in catalog().texts(&t.id).into_iter().enumerate() {
                if spdx::license_id(&t.id).is_some() {
                    continue; // already in the SPDX store
                }
                let name = if i == 0 {
                    t.id.clone()
                } else {
                    format!("{}#{i}", t.id)
                };
                store.add_license(name, TextData::new(text));
            }
        }
        store
    })
}

/// The catalog or SPDX id of a store entry; the store also holds deprecated SPDX names
/// (`GPL-2.0+`), which are reported under their current ids.
fn store_name_to_id(name: &str) -> String {
    let name = name.split('#').next().unwrap_or(name);
    match spdx::license_id(name) {
        Some(l) if l.is_deprecated() => {
            crate::expr::replace_deprecated(name, false).unwrap_or_else(|| name.to_string())
        }
        _ => name.to_string(),
    }
}

/// Suffixes of SPDX variants whose text is the base licence's text: the text cannot say which
/// of them applies.
const SHARED_TEXT_SUFFIXES: &[&str] = &[
    "-only",
    "-or-later",
    "+",
    "-no-invariants",
    "-invariants",
    "-no-RFN",
    "-RFN",
    "-no-copyleft-exception",
    "-Combined-Work-Exception",
];

/// An id without the variant suffixes its text does not show, and without `WITH` exceptions.
fn text_base(id: &str) -> &str {
    let mut base = id.split(" WITH ").next().unwrap_or(id).trim();
    loop {
        let before = base;
        for suffix in SHARED_TEXT_SUFFIXES {
            base = base.strip_suffix(suffix).unwrap_or(base);
        }
        if base == before {
            return base;
        }
    }
}

/// Whether two licences share one text, so that a shipped text of one of them is no evidence
/// against the other (GPL-3.0-only and GPL-3.0-or-later, MPL-2.0 and its no-copyleft-exception
/// variant, the GFDL invariants variants, OFL-1.1-RFN and OFL-1.1).
pub fn same_text(a: &str, b: &str) -> bool {
    if a == b || text_base(a) == text_base(b) {
        return true;
    }
    // Two names of one catalog licence (C-UDA-1.0 and LicenseRef-C-UDA-1.0).
    let cat = catalog();
    if let (Some(x), Some(y)) = (cat.resolve_key(text_base(a)), cat.resolve_key(text_base(b)))
        && x == y
    {
        return true;
    }
    let (Some(la), Some(lb)) = (
        spdx::license_id(text_base(a)),
        spdx::license_id(text_base(b)),
    ) else {
        return false;
    };
    la.text() == lb.text()
}

/// Detects the licences in one file's text.
pub fn detect_text(file: &str, text: &str) -> Vec<Detection> {
    let text = truncate(text);
    if text.split_whitespace().count() < 8 {
        return vec![];
    }
    let data = TextData::new(text);
    let best = store().analyze(&data);
    let mut found: Vec<(String, f32)> = Vec::new();
    if best.score >= IDENTIFY {
        found.push((store_name_to_id(best.name), best.score));
    } else {
        // Several licences in one file (or one with additions): scan for contained matches.
        let scanner = Scanner::new(store())
            .confidence_threshold(0.8)
            .optimize(true)
            .max_passes(8);
        for c in &scanner.scan(&data).containing {
            let id = store_name_to_id(c.license.name);
            if !found.iter().any(|(f, _)| *f == id) {
                found.push((id, c.score));
            }
        }
        if found.is_empty() && best.score >= 0.8 {
            found.push((store_name_to_id(best.name), best.score));
        }
    }
    // Near-identical agreements (Llama 3 / 3.1 / 4, Qwen and its research licence) differ in
    // their titles and a few clauses: the title the file carries decides between siblings.
    let head = head_words(text);
    for (id, score) in &mut found {
        if let Some(sibling) = titled_sibling(id, &head) {
            let data = TextData::new(text);
            if let Some(s) = catalog()
                .texts(&sibling)
                .iter()
                .map(|c| data.match_score(&TextData::new(c)))
                .reduce(f32::max)
            {
                *score = s.max(*score);
            }
            *id = sibling;
        }
    }
    // Sentences that none of the identified licences contain were added by someone.
    // Variants that share a text (LGPL-3.0-only and -or-later) are one canonical text; the
    // SPDX list's copies of them differ in the appendices they carry.
    let canonical: String = found
        .iter()
        .flat_map(|(id, _)| {
            [
                id.clone(),
                id.replace("-or-later", "-only"),
                id.replace("-only", "-or-later"),
            ]
        })
        .flat_map(|id| catalog().texts(&id))
        .collect::<Vec<_>>()
        .join("\n\n");
    let added = if found.is_empty() {
        vec![]
    } else {
        added_sentences(text, &canonical)
    };
    let mut out: Vec<Detection> = found
        .into_iter()
        .map(|(id, score)| Detection {
            file: file.to_string(),
            id,
            confidence: (score * 1000.0).round() / 1000.0,
            method: "text".into(),
            modified: !added.is_empty(),
            added_text: added.clone(),
            scope: None,
        })
        .collect();
    if out.is_empty()
        && let Some(d) = title_claim(file, text)
    {
        out.push(d);
    }
    out
}

fn truncate(text: &str) -> &str {
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The first non-empty lines of a text, normalised, where licences state their title.
fn head_words(text: &str) -> String {
    let head: String = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join(" ");
    normalize_words(&head)
}

/// The catalog licence whose title the head carries (the longest title wins).
fn titled(head: &str) -> Option<&'static crate::catalog::Terms> {
    catalog()
        .licenses()
        .iter()
        .filter_map(|t| {
            t.titles
                .iter()
                .map(|title| normalize_words(title))
                .filter(|title| contains_words(head, title))
                .map(|title| title.len())
                .max()
                .map(|len| (len, t))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, t)| t)
}

/// Whether `phrase` occurs in `haystack` on word boundaries.
fn contains_words(haystack: &str, phrase: &str) -> bool {
    format!(" {haystack} ").contains(&format!(" {phrase} "))
}

/// Another licence of the same family that the file's title names, when the text matched
/// `id`: the title tells near-identical versions apart.
fn titled_sibling(id: &str, head: &str) -> Option<String> {
    let t = titled(head)?;
    if t.id == id {
        return None;
    }
    let matched = catalog().get(id)?;
    let same_family = matched.family.is_some() && matched.family == t.family;
    same_family.then(|| t.id.clone())
}

/// A file whose first lines claim a catalog licence by title, compared with the canonical
/// text when the catalog has one (third parties ship invented texts under real titles).
fn title_claim(file: &str, text: &str) -> Option<Detection> {
    let t = titled(&head_words(text))?;
    let canonical = catalog().texts(&t.id);
    if canonical.is_empty() {
        return Some(Detection {
            file: file.into(),
            id: t.id.clone(),
            confidence: 0.5,
            method: "title".into(),
            added_text: vec![],
            modified: false,
            scope: None,
        });
    }
    let data = TextData::new(text);
    let similarity = canonical
        .iter()
        .map(|c| data.match_score(&TextData::new(c)))
        .fold(0.0f32, f32::max);
    Some(Detection {
        file: file.into(),
        id: t.id.clone(),
        confidence: (similarity * 1000.0).round() / 1000.0,
        method: "title".into(),
        added_text: vec![],
        modified: true,
        scope: None,
    })
}

fn normalize_words(s: &str) -> String {
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
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sentences of `text` (eight words or more) whose word 4-grams mostly do not occur in
/// `canonical`: clauses someone added to a known licence. Copyright lines are ignored.
pub fn added_sentences(text: &str, canonical: &str) -> Vec<String> {
    let canon_words = content_words(canonical);
    let grams: HashSet<String> = canon_words.windows(4).map(|w| w.join(" ")).collect();
    let mut added = Vec::new();
    for sentence in sentences(text) {
        let lower = sentence.trim().to_lowercase();
        // Copyright lines, and the pointer to bundled components' own notices that Apple's
        // and others' files end with ("subcomponents with separate copyright notices and
        // license terms"), are not terms.
        if lower.starts_with("copyright")
            || lower.contains("all rights reserved")
            || lower.contains("separate copyright notices and license terms")
        {
            continue;
        }
        let words = content_words(&sentence);
        if words.len() < 8 {
            continue;
        }
        let windows: Vec<String> = words.windows(4).map(|w| w.join(" ")).collect();
        let known = windows.iter().filter(|w| grams.contains(*w)).count();
        if (known as f32) < windows.len() as f32 * 0.5 {
            added.push(sentence.trim().chars().take(300).collect());
        }
    }
    added
}

/// Normalised words without enumerators (`7`, `a`, `iv`, `1.b.i`): versions of one licence
/// number their clauses differently.
fn content_words(text: &str) -> Vec<String> {
    const ROMAN: &[&str] = &["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x"];
    normalize_words(text)
        .split(' ')
        .filter(|w| {
            !(w.is_empty()
                || w.chars().all(|c| c.is_ascii_digit())
                || w.len() == 1
                || ROMAN.contains(w))
        })
        .map(String::from)
        .collect()
}

fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let joined = para.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut current = String::new();
        let chars: Vec<char> = joined.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            current.push(c);
            let end = matches!(c, '.' | ';' | '!' | '?')
                && chars.get(i + 1).is_none_or(|n| n.is_whitespace());
            if end {
                out.push(std::mem::take(&mut current));
            }
        }
        if !current.trim().is_empty() {
            out.push(current);
        }
    }
    out
}

/// Whether `shipped` carries the use restrictions of licence `id` (its "Attachment A"):
/// at least 60% of the restriction section's word 4-grams appear in the shipped texts. This
/// is how a derivative under another licence shows that the restrictions flow down.
pub fn carries_restrictions(id: &str, shipped: &[&str]) -> bool {
    let shipped_words: Vec<String> = shipped
        .iter()
        .flat_map(|t| {
            normalize_words(t)
                .split(' ')
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    let shipped_grams: HashSet<String> = shipped_words.windows(4).map(|w| w.join(" ")).collect();
    catalog().texts(id).iter().any(|text| {
        let lower = text.to_lowercase();
        let Some(at) = lower.rfind("attachment a") else {
            return false;
        };
        let section: Vec<String> = normalize_words(&lower[at..])
            .split(' ')
            .map(String::from)
            .collect();
        let grams: Vec<String> = section.windows(4).map(|w| w.join(" ")).collect();
        grams.len() >= 20
            && grams.iter().filter(|g| shipped_grams.contains(*g)).count() * 10 >= grams.len() * 6
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mit() -> String {
        spdx::license_id("MIT")
            .unwrap()
            .text()
            .replace("<year> <copyright holders>", "2025 Acme")
    }

    #[test]
    fn spdx_and_catalog_texts_are_identified() {
        let d = detect_text("LICENSE", &mit());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].id, "MIT");
        assert!(!d[0].modified, "{d:?}");
        let llama = catalog().texts("LicenseRef-scancode-llama-3.1-license-2024")[0];
        let d = detect_text("LICENSE", llama);
        assert_eq!(d[0].id, "LicenseRef-scancode-llama-3.1-license-2024");
        assert!(d[0].confidence > 0.99);
    }

    #[test]
    fn an_added_clause_is_reported_as_modification() {
        let text = format!(
            "{}\n\nIf the Software is used in a commercial product with more than 100 million monthly active users, you shall prominently display the name of the model on the user interface of that product.\n",
            mit()
        );
        let d = detect_text("LICENSE", &text);
        assert_eq!(d[0].id, "MIT");
        assert!(d[0].modified);
        assert_eq!(d[0].added_text.len(), 1, "{d:?}");
    }

    #[test]
    fn concatenated_licences_are_both_found() {
        let apache = spdx::license_id("Apache-2.0").unwrap().text();
        let llama = catalog().texts("LicenseRef-scancode-llama-3.1-license-2024")[0];
        let d = detect_text("LICENSE", &format!("{llama}\n\n{apache}"));
        let ids: Vec<&str> = d.iter().map(|d| d.id.as_str()).collect();
        assert!(
            ids.contains(&"Apache-2.0")
                && ids.contains(&"LicenseRef-scancode-llama-3.1-license-2024"),
            "{d:?}"
        );
    }

    #[test]
    fn a_title_over_an_invented_body_is_not_identity() {
        let text = "NVIDIA Open Model License Agreement - Version 1.0\n\nYou may use this model for anything you like, provided that you keep this notice. The authors give no warranty of any kind and accept no liability for its use.\n";
        let d = detect_text("LICENSE", text);
        assert_eq!(d[0].id, "LicenseRef-NVIDIA-OML");
        assert_eq!(d[0].method, "title");
        assert!(d[0].modified && d[0].confidence < 0.5, "{d:?}");
    }
}
