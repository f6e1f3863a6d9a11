//! Users, organisations, memberships and API tokens.

use super::types::NamespaceKind;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

pub use crate::domain::actor::Scope;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Namespace {
    pub id: i64,
    pub name: String,
    pub kind: NamespaceKind,
}

/// Roles in an organisation, weakest first so that `>=` compares privileges.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Write,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A token and the user it authenticates, as looked up from a request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenOwner {
    pub token_id: i64,
    pub scope: Scope,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub user_id: i64,
    pub user_name: String,
    pub is_admin: bool,
}

pub async fn create_namespace(
    conn: &mut PgConnection,
    name: &str,
    kind: NamespaceKind,
    is_admin: bool,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO namespaces (name, kind, is_admin) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(kind)
    .bind(is_admin)
    .fetch_one(conn)
    .await
}

pub async fn find_namespace(
    conn: &mut PgConnection,
    name: &str,
) -> sqlx::Result<Option<Namespace>> {
    sqlx::query_as("SELECT id, name, kind FROM namespaces WHERE lower(name) = lower($1)")
        .bind(name)
        .fetch_optional(conn)
        .await
}

pub async fn find_user(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as(
        "SELECT id, name, is_admin FROM namespaces WHERE lower(name) = lower($1) AND kind = 'user'",
    )
    .bind(name)
    .fetch_optional(conn)
    .await
}

pub async fn count_users(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM namespaces WHERE kind = 'user'")
        .fetch_one(conn)
        .await
}

pub async fn membership_role(
    conn: &mut PgConnection,
    org_id: i64,
    user_id: i64,
) -> sqlx::Result<Option<Role>> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(conn)
            .await?;
    Ok(role.as_deref().and_then(Role::parse))
}

pub async fn set_membership(
    conn: &mut PgConnection,
    org_id: i64,
    user_id: i64,
    role: Role,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(role.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn remove_membership(
    conn: &mut PgConnection,
    org_id: i64,
    user_id: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Owners of an organisation, locked so that concurrent demotions cannot remove the last one.
pub async fn lock_owner_ids(conn: &mut PgConnection, org_id: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' FOR UPDATE",
    )
    .bind(org_id)
    .fetch_all(conn)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct MemberRow {
    pub name: String,
    pub role: String,
}

pub async fn list_members(conn: &mut PgConnection, org_id: i64) -> sqlx::Result<Vec<MemberRow>> {
    sqlx::query_as(
        "SELECT n.name, m.role FROM memberships m JOIN namespaces n ON n.id = m.user_id
         WHERE m.org_id = $1 ORDER BY lower(n.name)",
    )
    .bind(org_id)
    .fetch_all(conn)
    .await
}

/// Organisations the user belongs to, with the user's role.
pub async fn user_orgs(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<Vec<MemberRow>> {
    sqlx::query_as(
        "SELECT n.name, m.role FROM memberships m JOIN namespaces n ON n.id = m.org_id
         WHERE m.user_id = $1 ORDER BY lower(n.name)",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

pub async fn insert_token(
    conn: &mut PgConnection,
    user_id: i64,
    name: &str,
    token_hash: &[u8],
    scope: Scope,
    expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<TokenRow> {
    sqlx::query_as(
        "INSERT INTO api_tokens (user_id, name, token_hash, scope, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, name, scope, expires_at, revoked_at, last_used_at, created_at",
    )
    .bind(user_id)
    .bind(name)
    .bind(token_hash)
    .bind(scope)
    .bind(expires_at)
    .fetch_one(conn)
    .await
}

pub async fn token_owner(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<TokenOwner>> {
    sqlx::query_as(
        "SELECT t.id AS token_id, t.scope, t.expires_at, t.revoked_at, t.last_used_at,
                n.id AS user_id, n.name AS user_name, n.is_admin
         FROM api_tokens t JOIN namespaces n ON n.id = t.user_id
         WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

pub async fn touch_token(conn: &mut PgConnection, token_id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1")
        .bind(token_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn list_tokens(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<Vec<TokenRow>> {
    sqlx::query_as(
        "SELECT id, name, scope, expires_at, revoked_at, last_used_at, created_at
         FROM api_tokens WHERE user_id = $1 ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// Revokes one of the user's tokens; false when the user has no such live token.
pub async fn revoke_token(
    conn: &mut PgConnection,
    user_id: i64,
    token_id: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now()
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(token_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}
