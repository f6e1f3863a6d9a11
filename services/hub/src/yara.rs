//! Community YARA rules over blob bytes, with yara-x. Compiled once per rule set version;
//! each scan reads at most `MAX_BYTES` of the blob and stops after `TIMEOUT`, so a rule can
//! slow a scan but never stop the scanner.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes of a blob the rules see (the scanner's own formats are parsed whole, streaming).
pub const MAX_BYTES: u64 = 64 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Compiles a rule source, answering the compiler's message on error.
pub fn compile(source: &str) -> Result<yara_x::Rules, String> {
    yara_x::compile(source).map_err(|e| e.to_string())
}

fn cached(version: i32, source: &str) -> Result<Arc<yara_x::Rules>, String> {
    static CACHE: Mutex<Option<(i32, Arc<yara_x::Rules>)>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((v, rules)) = cache.as_ref()
        && *v == version
    {
        return Ok(rules.clone());
    }
    let rules = Arc::new(compile(source)?);
    *cache = Some((version, rules.clone()));
    Ok(rules)
}

/// Identifiers of the rules that match the first `MAX_BYTES` of `reader`. Errors (a rule
/// that times out) are returned as text for the report, never panics.
pub fn matches(version: i32, source: &str, reader: &mut dyn Read) -> Result<Vec<String>, String> {
    let rules = cached(version, source)?;
    let mut data = Vec::new();
    reader
        .take(MAX_BYTES)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    let mut scanner = yara_x::Scanner::new(&rules);
    scanner.set_timeout(TIMEOUT);
    let results = scanner.scan(&data).map_err(|e| e.to_string())?;
    Ok(results
        .matching_rules()
        .map(|r| r.identifier().to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rules_match_and_broken_rules_name_the_problem() {
        let src = r#"rule evil { strings: $a = "EVIL-MARKER" condition: $a }"#;
        let hits = super::matches(1, src, &mut &b"a model with EVIL-MARKER inside"[..]).unwrap();
        assert_eq!(hits, ["evil"]);
        assert!(
            super::matches(1, src, &mut &b"clean"[..])
                .unwrap()
                .is_empty()
        );
        let err = super::compile("rule broken { condition: $nope }").unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }
}
