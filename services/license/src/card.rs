//! The licence-relevant keys of a model card's YAML front matter.

use serde::Serialize;
use serde_norway::Value;

/// Front matter larger than this is not parsed (a card is a few KiB).
const MAX_FRONT_MATTER: usize = 256 * 1024;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CardMeta {
    pub license: Option<String>,
    pub license_name: Option<String>,
    pub license_link: Option<String>,
    pub base_models: Vec<String>,
    pub base_model_relation: Option<String>,
    pub datasets: Vec<String>,
    /// Models whose outputs trained this one (kaiyuan's `distilled_from` key).
    pub distilled_from: Vec<String>,
    pub tags: Vec<String>,
    pub pipeline_tag: Option<String>,
    /// `extra_gated_prompt`: gated repositories often put the licence text there.
    pub gated_prompt: Option<String>,
    /// Where the model was built from (kaiyuan's `source_repository` / `source_commit`).
    pub source_repository: Option<String>,
    pub source_commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CardError(pub String);

/// The YAML between the leading `---` lines, if any.
pub fn front_matter(card: &str) -> Option<&str> {
    let rest = card.strip_prefix('\u{feff}').unwrap_or(card);
    let rest = rest.strip_prefix("---")?;
    let rest = rest
        .strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'))?;
    let end = rest
        .find("\n---")
        .map(|i| i + 1)
        .or_else(|| rest.starts_with("---").then_some(0))?;
    Some(&rest[..end])
}

/// The card's body after the front matter.
pub fn body(card: &str) -> &str {
    match front_matter(card) {
        Some(fm) => {
            let start = card.find(fm).unwrap_or(0) + fm.len();
            let rest = &card[start..];
            rest.strip_prefix("---").unwrap_or(rest)
        }
        None => card,
    }
}

pub fn parse(card: &str) -> Result<CardMeta, CardError> {
    let Some(yaml) = front_matter(card) else {
        return Ok(CardMeta::default());
    };
    if yaml.len() > MAX_FRONT_MATTER {
        return Err(CardError(format!(
            "front matter is larger than {MAX_FRONT_MATTER} bytes"
        )));
    }
    let value: Value = serde_norway::from_str(yaml)
        .map_err(|e| CardError(format!("front matter is not valid YAML: {e}")))?;
    if value.is_null() {
        return Ok(CardMeta::default());
    }
    let Value::Mapping(map) = value else {
        return Err(CardError("front matter is not a mapping".into()));
    };
    let get = |k: &str| map.get(Value::String(k.into()));
    Ok(CardMeta {
        license: get("license").and_then(scalar_or_joined),
        license_name: get("license_name").and_then(scalar),
        license_link: get("license_link").and_then(scalar),
        base_models: get("base_model").map(list).unwrap_or_default(),
        base_model_relation: get("base_model_relation")
            .and_then(scalar)
            .map(|s| s.to_lowercase()),
        datasets: get("datasets").map(list).unwrap_or_default(),
        distilled_from: get("distilled_from").map(list).unwrap_or_default(),
        tags: get("tags").map(list).unwrap_or_default(),
        pipeline_tag: get("pipeline_tag").and_then(scalar),
        gated_prompt: get("extra_gated_prompt").and_then(scalar),
        source_repository: get("source_repository").and_then(scalar),
        source_commit: get("source_commit").and_then(scalar),
    })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `license:` may be a list on some cards: all listed licences apply.
fn scalar_or_joined(v: &Value) -> Option<String> {
    match v {
        Value::Sequence(items) => {
            let parts: Vec<String> = items.iter().filter_map(scalar).collect();
            (!parts.is_empty()).then(|| parts.join(" AND "))
        }
        other => scalar(other),
    }
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

impl CardMeta {
    /// Whether the card describes a model that takes or produces more than text.
    pub fn multimodal(&self) -> bool {
        const PIPELINES: &[&str] = &[
            "image-text-to-text",
            "visual-question-answering",
            "image-to-text",
            "text-to-image",
            "image-to-image",
            "any-to-any",
            "video-text-to-text",
            "audio-text-to-text",
            "text-to-video",
            "text-to-speech",
            "automatic-speech-recognition",
            "depth-estimation",
        ];
        self.pipeline_tag
            .as_deref()
            .is_some_and(|p| PIPELINES.contains(&p))
            || self.tags.iter().any(|t| {
                ["multimodal", "vision", "image-text-to-text"].contains(&t.to_lowercase().as_str())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_licence_lineage_and_datasets() {
        let card = "---\nlicense: other\nlicense_name: deepseek\nlicense_link: LICENSE\nbase_model:\n- a/b\n- c/d\nbase_model_relation: merge\ndatasets: x/y\n---\n# Title\n";
        let m = parse(card).unwrap();
        assert_eq!(m.license.as_deref(), Some("other"));
        assert_eq!(m.license_name.as_deref(), Some("deepseek"));
        assert_eq!(m.base_models, vec!["a/b", "c/d"]);
        assert_eq!(m.base_model_relation.as_deref(), Some("merge"));
        assert_eq!(m.datasets, vec!["x/y"]);
        assert_eq!(body(card), "\n# Title\n");
    }

    #[test]
    fn cards_without_front_matter_or_with_broken_yaml() {
        assert_eq!(parse("# just markdown").unwrap(), CardMeta::default());
        assert!(parse("---\nlicense: [unclosed\n---\n").is_err());
        assert!(parse("---\n- a\n- b\n---\n").is_err());
    }
}
