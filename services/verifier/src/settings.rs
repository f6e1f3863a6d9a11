//! What a verification run may be told: by the model card's `verification:` block, the hub's
//! configuration, or `kaiyuan verify` flags.
//!
//! ```yaml
//! verification:
//!   seed: 7                 # input generator seed
//!   runs: 20                # timed runs for p50/p95
//!   dims: {batch: 1, sequence: 16}   # values for symbolic dimensions
//!   tolerance:              # per element type, or `default`
//!     float32: {rtol: 1.0e-4, atol: 1.0e-6}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::tensor::ElemType;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dims: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tolerance: BTreeMap<String, Tolerance>,
}

pub const DEFAULT_SEED: u64 = 0x006b_6169_7975_616e; // "kaiyuan"
pub const DEFAULT_RUNS: u32 = 10;
pub const MAX_RUNS: u32 = 1000;

impl VerifySettings {
    /// Checks values a card may get wrong, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(runs) = self.runs
            && !(1..=MAX_RUNS).contains(&runs)
        {
            return Err(format!(
                "verification.runs must be 1 to {MAX_RUNS}, not {runs}"
            ));
        }
        for (name, value) in &self.dims {
            if !(0..=1 << 20).contains(value) {
                return Err(format!(
                    "verification.dims.{name} must be 0 to 1048576, not {value}"
                ));
            }
        }
        for (key, tol) in &self.tolerance {
            if key != "default" && !KNOWN_TYPES.contains(&key.as_str()) {
                return Err(format!(
                    "verification.tolerance.{key}: unknown element type (one of default, {})",
                    KNOWN_TYPES.join(", ")
                ));
            }
            if !(tol.rtol >= 0.0 && tol.atol >= 0.0 && tol.rtol.is_finite() && tol.atol.is_finite())
            {
                return Err(format!(
                    "verification.tolerance.{key}: rtol and atol must be finite and not negative"
                ));
            }
        }
        Ok(())
    }

    /// Tolerance for an element type: the card's, else the default for floats (the ONNX
    /// backend tests' rtol 1e-3, atol 1e-7; half-precision types 1e-2 / 1e-3), exact otherwise.
    pub fn tolerance_for(&self, elem: ElemType) -> Tolerance {
        if let Some(t) = self
            .tolerance
            .get(elem.name())
            .or_else(|| self.tolerance.get("default").filter(|_| elem.is_float()))
        {
            return *t;
        }
        match elem {
            ElemType::Float16 | ElemType::Bfloat16 => Tolerance {
                rtol: 1e-2,
                atol: 1e-3,
            },
            e if e.is_float() => Tolerance {
                rtol: 1e-3,
                atol: 1e-7,
            },
            _ => Tolerance {
                rtol: 0.0,
                atol: 0.0,
            },
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(DEFAULT_SEED)
    }

    pub fn runs(&self) -> u32 {
        self.runs.unwrap_or(DEFAULT_RUNS).clamp(1, MAX_RUNS)
    }
}

const KNOWN_TYPES: [&str; 13] = [
    "float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8",
    "uint16", "uint32", "uint64", "bool",
];

/// The `verification:` block of a model card's YAML front matter, if any.
pub fn from_card(card: &str) -> Result<Option<VerifySettings>, String> {
    let Some(rest) = card.strip_prefix("---") else {
        return Ok(None);
    };
    let Some(end) = rest.find("\n---") else {
        return Ok(None);
    };
    // A card whose YAML does not parse is the licence check's finding; here it has no block.
    let Ok(front) = serde_norway::from_str::<serde_norway::Value>(&rest[..end]) else {
        return Ok(None);
    };
    let Some(block) = front.get("verification") else {
        return Ok(None);
    };
    let settings: VerifySettings = serde_norway::from_value(block.clone())
        .map_err(|e| format!("model card `verification:` block: {e}"))?;
    settings.validate()?;
    Ok(Some(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_card_block_and_names_bad_keys() {
        let card = "---\nlicense: mit\nverification:\n  runs: 3\n  dims: {batch: 2}\n  tolerance:\n    float32: {rtol: 0.01, atol: 0.0001}\n---\n# Model\n";
        let s = from_card(card).unwrap().unwrap();
        assert_eq!(s.runs(), 3);
        assert_eq!(s.dims["batch"], 2);
        assert_eq!(s.tolerance_for(ElemType::Float32).rtol, 0.01);
        assert_eq!(s.tolerance_for(ElemType::Float64).rtol, 1e-3);
        assert_eq!(s.tolerance_for(ElemType::Int64).atol, 0.0);
        let bad = "---\nverification:\n  tolerance:\n    float33: {rtol: 1, atol: 1}\n---\n";
        assert!(from_card(bad).unwrap_err().contains("float33"));
        let typo = "---\nverification:\n  rune: 3\n---\n";
        assert!(from_card(typo).unwrap_err().contains("rune"));
        assert_eq!(from_card("# no front matter").unwrap(), None);
    }
}
