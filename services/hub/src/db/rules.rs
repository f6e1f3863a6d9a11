//! Versioned community scan rules, and the scanner version they make effective.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct RuleSet {
    pub version: i32,
    pub pickle_deny: Vec<String>,
    /// YARA source, evaluated with yara-x over blob bytes.
    pub yara: String,
    pub note: String,
    #[serde(skip)]
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
}

pub async fn latest(conn: &mut PgConnection) -> sqlx::Result<Option<RuleSet>> {
    sqlx::query_as("SELECT version, pickle_deny, yara, note, created_by, created_at FROM rule_sets ORDER BY version DESC LIMIT 1")
        .fetch_optional(conn)
        .await
}

pub async fn history(conn: &mut PgConnection) -> sqlx::Result<Vec<RuleSet>> {
    sqlx::query_as("SELECT version, pickle_deny, yara, note, created_by, created_at FROM rule_sets ORDER BY version DESC")
        .fetch_all(conn)
        .await
}

pub async fn add(
    conn: &mut PgConnection,
    pickle_deny: &[String],
    yara: &str,
    note: &str,
    by: i64,
) -> sqlx::Result<i32> {
    sqlx::query_scalar("INSERT INTO rule_sets (pickle_deny, note, created_by, yara) VALUES ($1, $2, $3, $4) RETURNING version")
        .bind(pickle_deny)
        .bind(note)
        .bind(by)
        .bind(yara)
        .fetch_one(conn)
        .await
}

/// The version scans are recorded under: the scanner's, plus the community rule set's.
pub fn effective_version(rules: Option<&RuleSet>) -> String {
    match rules {
        Some(r) => format!("{}+rules.{}", kaiyuan_scanner::SCANNER_VERSION, r.version),
        None => kaiyuan_scanner::SCANNER_VERSION.to_string(),
    }
}

pub async fn current_version(conn: &mut PgConnection) -> sqlx::Result<String> {
    Ok(effective_version(latest(conn).await?.as_ref()))
}
