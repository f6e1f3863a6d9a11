//! JSON side files: tokenizer configs carry chat templates (code, see [`crate::jinja`]).

use std::io;

use serde_json::Value;

use crate::{Blob, Ctx, Verdict, jinja, read_at};

/// Top-level keys of a JSON object, refusing duplicates (loaders disagree on which one wins).
pub fn object_keys_unique(text: &str) -> Result<Vec<String>, String> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Result<Vec<String>, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut keys: Vec<String> = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if keys.contains(&key) {
                    return Ok(Err(format!("duplicate key `{key}`")));
                }
                keys.push(key);
            }
            Ok(Ok(keys))
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let keys = de.deserialize_map(Keys).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    keys
}

pub(crate) fn scan_json(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
    path: &str,
) -> io::Result<&'static str> {
    if len > ctx.limits.max_structure_bytes {
        return Ok("json");
    }
    let bytes = read_at(blob, 0, len, len, ctx.limits.max_structure_bytes)?;
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok("json");
    };
    let template = value.get("chat_template");
    let templates: Vec<&str> = match template {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.get("template").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    };
    for t in templates {
        jinja::check_template(ctx, t, "chat_template");
    }
    if path.ends_with("config.json") && value.get("class_name").is_some() {
        crate::keras::scan_keras_config(ctx, &bytes, "config.json");
    }
    let _ = Verdict::Clean;
    Ok("json")
}
