//! Organisation policies and the use context a decision is made for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{Terms, catalog};
use crate::expr::{Declared, normalize};

/// Categories a policy may name.
pub const CATEGORIES: &[&str] = &[
    "permissive",
    "public-domain",
    "weak-copyleft",
    "copyleft",
    "network-copyleft",
    "noncommercial",
    "research-only",
    "non-production",
    "use-restricted",
    "community",
    "no-derivatives",
    "unknown",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DataRule {
    Allow,
    #[default]
    Review,
    Deny,
}

/// An organisation's licence policy (the same document the API and `--policy` accept).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ids or categories; when present, nothing else is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Ids or categories that are never allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    #[serde(default)]
    pub require_osi: bool,
    #[serde(default)]
    pub require_detected_match: bool,
    /// Deny licences that do not permit commercial use, whatever the purpose.
    #[serde(default)]
    pub require_commercial_use: bool,
    #[serde(default)]
    pub noncommercial_training_data: DataRule,
    #[serde(default)]
    pub sharealike_training_data: DataRule,
}

impl Policy {
    /// Checks every entry and rewrites ids to their canonical form.
    pub fn validated(mut self) -> Result<Policy, String> {
        let canon = |entry: &str| -> Result<String, String> {
            let lower = entry.trim().to_lowercase();
            if CATEGORIES.contains(&lower.as_str()) {
                return Ok(lower);
            }
            match normalize(entry) {
                Declared::Valid { expr, .. } if expr.leaves().len() == 1 => Ok(expr.to_string()),
                _ => Err(format!(
                    "`{entry}` is neither a licence id nor a category (categories: {})",
                    CATEGORIES.join(", ")
                )),
            }
        };
        if let Some(allow) = &self.allow {
            self.allow = Some(allow.iter().map(|e| canon(e)).collect::<Result<_, _>>()?);
        }
        self.deny = self
            .deny
            .iter()
            .map(|e| canon(e))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    pub fn from_json_or_yaml(text: &str) -> Result<Policy, String> {
        let policy: Policy = match serde_json::from_str(text) {
            Ok(p) => p,
            Err(json_err) => serde_norway::from_str(text)
                .map_err(|e| format!("policy is neither valid JSON ({json_err}) nor YAML ({e})"))?,
        };
        policy.validated()
    }
}

/// Whether a policy entry (id or category) covers a licence.
pub fn entry_matches(entry: &str, requirement: &str, terms: &Terms) -> bool {
    if CATEGORIES.contains(&entry) {
        return terms.has_category(entry);
    }
    let base = requirement
        .split(" WITH ")
        .next()
        .unwrap_or(requirement)
        .trim_end_matches('+');
    entry == requirement || entry == base || catalog().resolve_key(entry).as_deref() == Some(base)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    #[default]
    Commercial,
    /// Non-commercial use in production (an internal tool).
    Production,
    Research,
    Evaluation,
    Personal,
}

impl Purpose {
    pub fn parse(s: &str) -> Option<Purpose> {
        serde_json::from_value(serde_json::Value::String(s.to_lowercase())).ok()
    }

    pub fn is_commercial(self) -> bool {
        self == Purpose::Commercial
    }

    pub fn is_production(self) -> bool {
        matches!(self, Purpose::Commercial | Purpose::Production)
    }
}

/// Facts about the user that licence conditions depend on.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UseContext {
    #[serde(default)]
    pub purpose: Purpose,
    /// Monthly active users of the user's products today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mau: Option<u64>,
    /// Annual revenue in USD, for licences with a revenue threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annual_revenue: Option<u64>,
    /// Monthly active users in past months (`YYYY-MM`), for thresholds anchored to a date.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mau_history: BTreeMap<String, u64>,
    /// ISO 3166 country code or `EU` (where the user is domiciled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Application domains (`military`, `medical-advice`, `law-enforcement`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// The user receives the model inside a licensee's integrated end-user product.
    #[serde(default)]
    pub integrated_end_user: bool,
    /// What the user did that licences name as termination triggers: `patent-litigation`,
    /// `copyright-litigation`, `ip-litigation` (against the licensor), `guardrail-bypass`, `breach`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// EU member states, for licences with EU carve-outs.
const EU: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

impl UseContext {
    pub fn in_eu(&self) -> bool {
        self.region.as_deref().is_some_and(|r| {
            r.eq_ignore_ascii_case("EU") || EU.contains(&r.to_uppercase().as_str())
        })
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(r) = &self.region
            && !(r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()))
        {
            return Err(format!(
                "region `{r}` is not an ISO 3166 alpha-2 code or EU"
            ));
        }
        for month in self.mau_history.keys() {
            let ok = month.len() == 7
                && month.as_bytes()[4] == b'-'
                && month[..4].parse::<u16>().is_ok()
                && month[5..]
                    .parse::<u8>()
                    .is_ok_and(|m| (1..=12).contains(&m));
            if !ok {
                return Err(format!("MAU month `{month}` is not YYYY-MM"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_validate_entries() {
        let p = Policy::from_json_or_yaml(
            r#"{"allow": ["permissive", "apache-2.0"], "deny": ["GPL-3.0"]}"#,
        )
        .unwrap();
        assert_eq!(p.allow.unwrap(), vec!["permissive", "Apache-2.0"]);
        assert_eq!(p.deny, vec!["GPL-3.0-only"]);
        let err = Policy::from_json_or_yaml("deny: [not-a-licence-xyz]").unwrap_err();
        assert!(err.contains("not-a-licence-xyz"), "{err}");
        assert!(Policy::from_json_or_yaml("{\"alow\": []}").is_err());
    }

    #[test]
    fn use_context_checks_region_and_months() {
        let mut c = UseContext {
            region: Some("DE".into()),
            ..Default::default()
        };
        assert!(c.in_eu() && c.validate().is_ok());
        c.region = Some("Germany".into());
        assert!(c.validate().is_err());
        c.region = None;
        c.mau_history.insert("2024-13".into(), 1);
        assert!(c.validate().is_err());
    }
}
