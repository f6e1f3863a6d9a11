//! Web UI sessions (see migration 0015): opened with an API token, bounded by it.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::accounts::TokenOwner;

pub async fn create(
    conn: &mut PgConnection,
    id_hash: &[u8],
    token_id: i64,
    csrf: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO web_sessions (id_hash, token_id, csrf, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(token_id)
    .bind(csrf)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionOwner {
    #[sqlx(flatten)]
    pub owner: TokenOwner,
    pub csrf: String,
    pub session_expires_at: DateTime<Utc>,
}

/// The session's user and token, if the session exists.
pub async fn find(conn: &mut PgConnection, id_hash: &[u8]) -> sqlx::Result<Option<SessionOwner>> {
    sqlx::query_as(
        "SELECT t.id AS token_id, t.scope, t.expires_at, t.revoked_at, t.last_used_at,
                n.id AS user_id, n.name AS user_name, n.is_admin, s.csrf, s.expires_at AS session_expires_at
         FROM web_sessions s JOIN api_tokens t ON t.id = s.token_id JOIN namespaces n ON n.id = t.user_id
         WHERE s.id_hash = $1",
    )
    .bind(id_hash)
    .fetch_optional(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, id_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}
