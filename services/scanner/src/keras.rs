//! Keras: `config.json` of `.keras` zips and the `model_config` attribute of HDF5 `.h5` files.
//! Lambda layers carry marshalled bytecode; `module` or `class_name` references outside Keras can
//! name any Python callable (CVE-2025-1550); TFSMLayer loads external SavedModels.

use std::io;

use serde_json::Value;

use crate::{Blob, Ctx, Verdict, read_at};

/// Module roots a legitimate Keras config refers to.
const KERAS_MODULES: &[&str] = &[
    "keras",
    "keras_nlp",
    "keras_hub",
    "keras_cv",
    "tf_keras",
    "builtins",
];

fn walk(ctx: &mut Ctx, value: &Value, path: &str, location: &str, depth: usize) {
    if depth > 64 {
        return;
    }
    match value {
        Value::Object(map) => {
            let class = map.get("class_name").and_then(Value::as_str);
            if class == Some("Lambda")
                || map.contains_key("function_type")
                    && map.get("function_type").and_then(Value::as_str) == Some("lambda")
                || map.contains_key("__lambda__")
            {
                ctx.add(
                    "keras-lambda",
                    Verdict::Malicious,
                    format!("{location} {path}"),
                    "a Lambda layer: its serialised Python bytecode runs when the model loads",
                    Some("Lambda".into()),
                );
            }
            if class == Some("TFSMLayer") {
                ctx.add(
                    "keras-external-model",
                    Verdict::Suspicious,
                    format!("{location} {path}"),
                    "TFSMLayer loads an external SavedModel (CVE-2026-1462)",
                    Some("TFSMLayer".into()),
                );
            }
            if let Some(module) = map.get("module").and_then(Value::as_str) {
                let root = module.split('.').next().unwrap_or(module);
                if !KERAS_MODULES.contains(&root) {
                    let name = map.get("class_name").and_then(Value::as_str).unwrap_or("?");
                    ctx.add(
                        "keras-foreign-module",
                        Verdict::Malicious,
                        format!("{location} {path}"),
                        format!("the config names `{module}.{name}`, outside Keras: deserialising it imports and calls arbitrary code (CVE-2025-1550)"),
                        Some(format!("{module}.{name}")),
                    );
                }
            }
            if let Some(registered) = map.get("registered_name").and_then(Value::as_str)
                && registered.contains('>')
                && !registered.starts_with("keras")
            {
                ctx.add(
                    "keras-custom-object",
                    Verdict::Suspicious,
                    format!("{location} {path}"),
                    format!("custom registered object `{registered}`: its code is not in the file"),
                    Some(registered.to_string()),
                );
            }
            for (key, v) in map {
                walk(ctx, v, &format!("{path}/{key}"), location, depth + 1);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(ctx, v, &format!("{path}[{i}]"), location, depth + 1);
            }
        }
        _ => {}
    }
}

pub(crate) fn scan_keras_config(ctx: &mut Ctx, bytes: &[u8], location: &str) {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(config) => walk(ctx, &config, "", location, 0),
        Err(e) => ctx.add(
            "keras-malformed",
            Verdict::Malformed,
            location,
            format!("model config is not JSON: {e}"),
            None,
        ),
    }
}

/// HDF5 stores `model_config` as a string attribute; its JSON is found by its anchor rather
/// than by implementing HDF5 (only the config matters for code execution). The file is streamed
/// in windows, so memory stays bounded whatever its size.
pub(crate) fn scan_hdf5(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<&'static str> {
    const WINDOW: u64 = 1 << 20;
    const NEEDLE: &[u8] = b"{\"class_name\"";
    const MAX_CONFIGS: usize = 16;
    const MAX_CONFIG: u64 = 16 << 20;
    let mut found = 0usize;
    let mut offset = 0u64;
    while offset < len && found < MAX_CONFIGS {
        let size = WINDOW.min(len - offset);
        let window = read_at(blob, offset, size, len, WINDOW)?;
        let mut at = 0usize;
        while let Some(rel) = find(&window[at..], NEEDLE) {
            let start = offset + (at + rel) as u64;
            let cap = MAX_CONFIG.min(len - start);
            let candidate = read_at(blob, start, cap, len, MAX_CONFIG)?;
            if let Some(end) = json_end(&candidate)
                && serde_json::from_slice::<Value>(&candidate[..end]).is_ok()
            {
                found += 1;
                scan_keras_config(ctx, &candidate[..end], "model_config");
            }
            at += rel + 1;
            if found >= MAX_CONFIGS {
                break;
            }
        }
        // Overlap so an anchor split across two windows is still found.
        offset += size.saturating_sub(NEEDLE.len() as u64 - 1).max(1);
        if offset + NEEDLE.len() as u64 > len {
            break;
        }
    }
    Ok(if found > 0 { "keras-h5" } else { "hdf5" })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Length of the balanced JSON object at the start of `bytes`, honouring strings.
fn json_end(bytes: &[u8]) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0i64, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            0 => return None,
            _ => {}
        }
    }
    None
}
