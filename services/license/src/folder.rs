//! Reads a local model folder into the facts the engine evaluates (the offline audit).

use std::fs;
use std::io::Read;
use std::path::Path;

use crate::card;
use crate::detect::MAX_TEXT;
use crate::evaluate::{ModelFacts, TextFile};
use crate::gguf;

/// Whether a file name is a licence text (LICENSE*, LICENCE*, COPYING*) or a use policy that
/// a licence incorporates (USE_POLICY.md).
pub fn is_license_file(name: &str) -> bool {
    let upper = name.to_uppercase();
    ["LICENSE", "LICENCE", "COPYING", "USE_POLICY", "USE-POLICY"]
        .iter()
        .any(|p| upper.starts_with(p))
}

/// Whether a path (`text_encoder/LICENSE`, `LICENSES/Apache-2.0.txt`) holds a licence text:
/// a licence file at the top or one folder down, or any text in a `LICENSES` folder.
pub fn is_license_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [file] => is_license_file(file),
        [dir, file] => {
            is_license_file(file)
                || (["LICENSES", "LICENCES"].contains(&dir.to_uppercase().as_str())
                    && !file.starts_with('.'))
        }
        _ => false,
    }
}

pub fn is_notice_file(name: &str) -> bool {
    name.to_uppercase().starts_with("NOTICE")
}

fn read_text(path: &Path) -> std::io::Result<String> {
    let mut buf = Vec::new();
    fs::File::open(path)?
        .take(MAX_TEXT as u64)
        .read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Reads the card, licence and notice files at the top of `dir`, and the licence keys of
/// GGUF files anywhere below it (two levels).
pub fn read_folder(dir: &Path, name: Option<String>) -> Result<ModelFacts, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut facts = ModelFacts {
        name,
        ..Default::default()
    };
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !file_name.starts_with('.') {
                sub_licences(&path, &file_name, &mut facts)?;
                gguf_licences(&path, &file_name, 1, &mut facts);
            }
            continue;
        }
        if !kind.is_file() {
            continue; // symlinks are not followed
        }
        if file_name.eq_ignore_ascii_case("README.md") {
            let text = read_text(&path).map_err(|e| format!("{file_name}: {e}"))?;
            facts.card = card::parse(&text).map_err(|e| format!("{file_name}: {}", e.0))?;
            facts.card_body = card::body(&text).to_string();
        } else if is_license_file(&file_name) {
            let text = read_text(&path).map_err(|e| format!("{file_name}: {e}"))?;
            facts.license_files.push(TextFile {
                path: file_name,
                text,
            });
        } else if is_notice_file(&file_name) {
            let text = read_text(&path).map_err(|e| format!("{file_name}: {e}"))?;
            facts.notice_files.push(TextFile {
                path: file_name,
                text,
            });
        } else if file_name.to_lowercase().ends_with(".gguf") {
            gguf_file(&path, &file_name, &mut facts);
        }
    }
    Ok(facts)
}

/// Licence texts one folder down (a component's LICENSE, a LICENSES folder).
fn sub_licences(dir: &Path, prefix: &str, facts: &mut ModelFacts) -> Result<(), String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().is_ok_and(|k| k.is_file()) && is_license_path(&name) {
            let text = read_text(&entry.path()).map_err(|e| format!("{name}: {e}"))?;
            facts.license_files.push(TextFile { path: name, text });
        }
    }
    Ok(())
}

fn gguf_licences(dir: &Path, prefix: &str, depth: u8, facts: &mut ModelFacts) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth < 2 {
            gguf_licences(&entry.path(), &name, depth + 1, facts);
        } else if kind.is_file() && name.to_lowercase().ends_with(".gguf") {
            gguf_file(&entry.path(), &name, facts);
        }
    }
}

/// GGUF headers read per folder: quantization folders hold many files with the same metadata.
const MAX_GGUF_HEADERS: usize = 3;

fn gguf_file(path: &Path, name: &str, facts: &mut ModelFacts) {
    if facts.metadata_licenses.len() >= MAX_GGUF_HEADERS {
        return;
    }
    let Ok(file) = fs::File::open(path) else {
        return;
    };
    if let Ok(Some(keys)) = gguf::licence_keys(std::io::BufReader::new(file)) {
        let license = keys
            .iter()
            .find(|(k, _)| k == "general.license")
            .map(|(_, v)| v.clone());
        let license_name = keys
            .iter()
            .find(|(k, _)| k == "general.license.name")
            .map(|(_, v)| v.clone());
        if let Some(l) = license {
            let value = match license_name {
                Some(n) if l.eq_ignore_ascii_case("other") => format!("other:{n}"),
                _ => l,
            };
            facts.metadata_licenses.push((name.to_string(), value));
        }
    }
}
