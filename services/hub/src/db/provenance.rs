//! Signing keys and anchors per namespace, signature verification results, attestation keys.

use super::types::KeyKind;
use crate::db::types::SignatureStatus;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

pub const SIGNATURE_VERIFY: &str = crate::domain::task::Task::SIGNATURE_VERIFY;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct SigningKeyRow {
    pub id: i64,
    pub name: String,
    pub kind: KeyKind,
    pub pem: String,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn add_key(
    conn: &mut PgConnection,
    namespace_id: i64,
    name: &str,
    kind: KeyKind,
    pem: &str,
    fingerprint: &str,
    by: i64,
) -> sqlx::Result<Option<SigningKeyRow>> {
    sqlx::query_as(
        "INSERT INTO signing_keys (namespace_id, name, kind, pem, fingerprint, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (namespace_id, fingerprint) DO NOTHING
         RETURNING id, name, kind, pem, fingerprint, created_at, revoked_at",
    )
    .bind(namespace_id)
    .bind(name)
    .bind(kind)
    .bind(pem)
    .bind(fingerprint)
    .bind(by)
    .fetch_optional(conn)
    .await
}

pub async fn keys(
    conn: &mut PgConnection,
    namespace_id: i64,
    include_revoked: bool,
) -> sqlx::Result<Vec<SigningKeyRow>> {
    sqlx::query_as(
        "SELECT id, name, kind, pem, fingerprint, created_at, revoked_at FROM signing_keys
         WHERE namespace_id = $1 AND ($2 OR revoked_at IS NULL) ORDER BY id",
    )
    .bind(namespace_id)
    .bind(include_revoked)
    .fetch_all(conn)
    .await
}

pub async fn revoke_key(conn: &mut PgConnection, namespace_id: i64, id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE signing_keys SET revoked_at = now() WHERE namespace_id = $1 AND id = $2 AND revoked_at IS NULL")
        .bind(namespace_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn store_verification(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
    status: &str,
    result: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO signature_verifications (repository_id, commit_id, status, result) VALUES ($1, $2, $3, $4)
         ON CONFLICT (repository_id, commit_id) DO UPDATE SET status = $3, result = $4, verified_at = now()",
    )
    .bind(repository_id)
    .bind(commit_id)
    .bind(status)
    .bind(result)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerificationRow {
    pub status: SignatureStatus,
    pub result: serde_json::Value,
    pub verified_at: DateTime<Utc>,
}

pub async fn verification(
    conn: &mut PgConnection,
    repository_id: i64,
    commit_id: &str,
) -> sqlx::Result<Option<VerificationRow>> {
    sqlx::query_as("SELECT status, result, verified_at FROM signature_verifications WHERE repository_id = $1 AND commit_id = $2")
        .bind(repository_id)
        .bind(commit_id)
        .fetch_optional(conn)
        .await
}

/// Re-verifies the head of `main` of every live repository of a namespace (after its keys
/// changed).
pub async fn enqueue_heads(conn: &mut PgConnection, namespace_id: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO jobs (kind, payload)
         SELECT $1, jsonb_build_object('repository_id', r.id, 'commit_id', f.commit_id)
         FROM repositories r JOIN refs f ON f.repository_id = r.id AND f.name = 'main'
         WHERE r.deleted_at IS NULL AND r.namespace_id = $2",
    )
    .bind(SIGNATURE_VERIFY)
    .bind(namespace_id)
    .execute(&mut *conn)
    .await?;
    crate::db::jobs::notify(conn, SIGNATURE_VERIFY).await?;
    Ok(done.rows_affected())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AttestationKeyRow {
    pub id: i64,
    #[serde(skip)]
    pub private_pem: String,
    pub public_pem: String,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

pub async fn attestation_keys(conn: &mut PgConnection) -> sqlx::Result<Vec<AttestationKeyRow>> {
    sqlx::query_as("SELECT id, private_pem, public_pem, fingerprint, created_at, retired_at FROM attestation_keys ORDER BY id")
        .fetch_all(conn)
        .await
}

/// Adds the key that signs from now on and retires every older one (callers hold a
/// transaction so that exactly one key is current).
pub async fn add_attestation_key(
    conn: &mut PgConnection,
    private_pem: &str,
    public_pem: &str,
    fingerprint: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE attestation_keys SET retired_at = now() WHERE retired_at IS NULL")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO attestation_keys (private_pem, public_pem, fingerprint) VALUES ($1, $2, $3)",
    )
    .bind(private_pem)
    .bind(public_pem)
    .bind(fingerprint)
    .execute(conn)
    .await?;
    Ok(())
}
