//! Where the licences of base models, teachers and datasets come from: the publisher's own
//! lineage file, the hub's records, then the curated upstream file.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::catalog::catalog;
use crate::expr::{Declared, Expr, interpret};

/// An upstream model as a source knows it.
#[derive(Debug, Clone)]
pub struct UpstreamModel {
    /// Licence as a tag, `other:<name>` or an SPDX expression.
    pub license: String,
    /// `lineage-file`, `hub` or `curated`.
    pub source: String,
    /// Its own bases, when the source knows them (hub repositories).
    pub base_models: Vec<String>,
    pub relation: Option<String>,
    pub multimodal: bool,
}

/// A source of upstream facts. The hub implements it over its database.
pub trait Resolver {
    fn model(&self, id: &str) -> Option<UpstreamModel>;
    fn dataset(&self, id: &str) -> Option<(String, String)>;
}

/// The `--lineage` document: licences for bases and datasets the curated file lacks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineageFile {
    #[serde(default)]
    pub models: HashMap<String, String>,
    #[serde(default)]
    pub datasets: HashMap<String, String>,
}

impl LineageFile {
    pub fn from_json_or_yaml(text: &str) -> Result<LineageFile, String> {
        match serde_json::from_str(text) {
            Ok(l) => Ok(l),
            Err(json_err) => serde_norway::from_str(text).map_err(|e| {
                format!("lineage file is neither valid JSON ({json_err}) nor YAML ({e})")
            }),
        }
    }
}

fn lookup<'a>(map: &'a HashMap<String, String>, id: &str) -> Option<&'a String> {
    map.get(id).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(id))
            .map(|(_, v)| v)
    })
}

/// Publisher file, then an optional inner resolver (the hub), then the curated file.
pub struct Chain<'a> {
    pub file: Option<&'a LineageFile>,
    pub inner: Option<&'a dyn Resolver>,
}

impl Resolver for Chain<'_> {
    fn model(&self, id: &str) -> Option<UpstreamModel> {
        if let Some(l) = self.file.and_then(|f| lookup(&f.models, id)) {
            return Some(UpstreamModel {
                license: l.clone(),
                source: "lineage-file".into(),
                base_models: vec![],
                relation: None,
                multimodal: catalog().upstream_model(id).is_some_and(|e| e.multimodal),
            });
        }
        if let Some(m) = self.inner.and_then(|r| r.model(id)) {
            return Some(m);
        }
        catalog().upstream_model(id).map(|e| UpstreamModel {
            license: e.license.clone(),
            source: "curated".into(),
            base_models: vec![],
            relation: None,
            multimodal: e.multimodal,
        })
    }

    fn dataset(&self, id: &str) -> Option<(String, String)> {
        if let Some(l) = self.file.and_then(|f| lookup(&f.datasets, id)) {
            return Some((l.clone(), "lineage-file".into()));
        }
        if let Some(d) = self.inner.and_then(|r| r.dataset(id)) {
            return Some(d);
        }
        catalog()
            .upstream_dataset(id)
            .map(|e| (e.license.clone(), "curated".into()))
    }
}

/// Reads a licence value as a tag, `other:<name>` or an expression.
pub fn license_expr(value: &str) -> Result<Expr, String> {
    let (license, name) = match value.split_once(':') {
        Some((head, name)) if head.eq_ignore_ascii_case("other") => ("other", Some(name)),
        _ => (value, None),
    };
    match interpret(license, name) {
        Declared::Valid { expr, .. } => Ok(expr),
        Declared::Missing => Err("no licence".into()),
        Declared::NoAssertion(why) => Err(why),
        Declared::Invalid { message, .. } => Err(message),
    }
}

/// The effective licence of an upstream model, following its own bases (bounded depth,
/// cycles cut). Err names why it is unknown.
pub fn effective_of(
    resolver: &dyn Resolver,
    id: &str,
    depth: usize,
    seen: &mut Vec<String>,
) -> Result<Expr, String> {
    if depth > 8 || seen.iter().any(|s| s.eq_ignore_ascii_case(id)) {
        return Err(format!("lineage of {id} is too deep or cyclic"));
    }
    seen.push(id.to_string());
    let m = resolver
        .model(id)
        .ok_or_else(|| format!("licence of {id} is unknown"))?;
    let own = license_expr(&m.license).map_err(|e| format!("licence of {id}: {e}"))?;
    let quantized = m.relation.as_deref() == Some("quantized");
    let mut parts = if quantized { vec![] } else { vec![own.clone()] };
    for base in &m.base_models {
        match effective_of(resolver, base, depth + 1, seen) {
            Ok(e) => parts.push(e),
            Err(_) if !quantized => {}
            Err(e) => return Err(e),
        }
    }
    if parts.is_empty() {
        parts.push(own);
    }
    Ok(Expr::and(parts))
}
