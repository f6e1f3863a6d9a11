//! The licence policy as a form: categories to deny (checkboxes), licences to deny or to allow
//! only (one per line), the switches, and the training-data rules. The form builds the same
//! document the JSON editor and `PUT /api/v1/orgs/{namespace}/license-policy` take.

use std::collections::HashMap;

use kaiyuan_license::policy::{DataRule, Policy};
use serde_json::{Value, json};

/// The policy the form's fields describe (`deny:<category>` checkboxes, `deny_ids` and `allow`
/// lines, `require_*` switches, the two data rules).
pub fn policy_from_form(
    fields: &HashMap<String, String>,
    categories: &[String],
) -> Result<Policy, String> {
    let lines = |key: &str| -> Vec<String> {
        fields
            .get(key)
            .map(|text| {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut deny: Vec<String> = categories
        .iter()
        .filter(|c| fields.contains_key(&format!("deny:{c}")))
        .cloned()
        .collect();
    deny.extend(lines("deny_ids"));
    let allow = lines("allow");
    let rule = |key: &str| -> Result<DataRule, String> {
        match fields.get(key).map(String::as_str).unwrap_or("review") {
            "allow" => Ok(DataRule::Allow),
            "review" => Ok(DataRule::Review),
            "deny" => Ok(DataRule::Deny),
            other => Err(format!("{key} `{other}`: expected allow, review or deny")),
        }
    };
    Ok(Policy {
        name: fields
            .get("name")
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        allow: (!allow.is_empty()).then_some(allow),
        deny,
        require_osi: fields.contains_key("require_osi"),
        require_detected_match: fields.contains_key("require_detected_match"),
        require_commercial_use: fields.contains_key("require_commercial_use"),
        noncommercial_training_data: rule("noncommercial_training_data")?,
        sharealike_training_data: rule("sharealike_training_data")?,
    })
}

/// What the form shows for a stored policy document.
pub fn form_view(document: &Value, categories: &[String]) -> Value {
    let list = |key: &str| -> Vec<String> {
        document[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deny = list("deny");
    let (deny_categories, deny_ids): (Vec<String>, Vec<String>) =
        deny.into_iter().partition(|d| categories.contains(d));
    let word = |key: &str| document[key].as_str().unwrap_or("review").to_string();
    json!({
        "name": document["name"].as_str().unwrap_or_default(),
        "deny_categories": deny_categories,
        "deny_ids": deny_ids.join("\n"),
        "allow": list("allow").join("\n"),
        "require_osi": document["require_osi"].as_bool().unwrap_or(false),
        "require_detected_match": document["require_detected_match"].as_bool().unwrap_or(false),
        "require_commercial_use": document["require_commercial_use"].as_bool().unwrap_or(false),
        "noncommercial_training_data": word("noncommercial_training_data"),
        "sharealike_training_data": word("sharealike_training_data"),
    })
}
