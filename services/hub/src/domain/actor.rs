//! Who acts: a signed-in user (with their token's scope) or nobody, and their role on a
//! namespace. The HTTP layer works out the actor of a request (`auth::authenticate`, where it is
//! called `Caller`); everything below takes it as plain data.

use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::db::accounts::{self, Role};
use crate::db::repos::Repo;
use crate::db::types::NamespaceKind;

/// What a token may do (the `scope` column of `api_tokens`, and its word in JSON).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    /// The word a client sent, if it is one.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            _ => None,
        }
    }
}

/// The prefix of every kaiyuan API token, so secret scanners can recognise one.
pub const TOKEN_PREFIX: &str = "ky_";

/// A new API token: the secret (shown once) and its hash (the only thing stored).
pub fn new_token() -> (String, Vec<u8>) {
    let bytes: [u8; 24] = rand::rng().random();
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash_token(&secret);
    (secret, hash)
}

pub fn hash_token(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    pub token_id: i64,
    pub scope: Scope,
}

/// The user behind a request, if any (a token that is presented but invalid never becomes an
/// anonymous actor: the request is refused first).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user: Option<AuthUser>,
    /// Set when the actor came through a web UI session cookie: the session's CSRF token,
    /// which every state-changing request must echo.
    pub session_csrf: Option<String>,
    /// The request's id, kept with what it records (audit rows, queued jobs).
    pub request_id: Option<String>,
}

/// What an operation on a repository needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    Admin,
}

/// Why an actor may not do what they asked on a repository.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// The repository is private and the actor has no role: to them it does not exist.
    #[error("the repository is not visible to this actor")]
    Hidden,
    #[error("sign in to do this")]
    SignedOut,
    #[error("you need the `{}` role on `{namespace}` to do this", required.as_str())]
    Role { required: Role, namespace: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The visibility and role rule of every repository route: a private repository exists only
/// for those with a role on its namespace; writing and administering need those roles.
pub async fn may(
    conn: &mut PgConnection,
    actor: &Actor,
    repo: &Repo,
    need: Need,
) -> Result<(), Denied> {
    let role = namespace_role(conn, actor, repo.namespace_id, repo.namespace_kind).await?;
    if role.is_none() && !repo.is_public() {
        return Err(Denied::Hidden);
    }
    let required = match need {
        Need::Read => return Ok(()),
        Need::Write => Role::Write,
        Need::Admin => Role::Admin,
    };
    // A read-scoped token may still read what its role shows (an admin's audit trail); that it
    // changes nothing is the authentication middleware's rule.
    if actor.user.is_none() {
        return Err(Denied::SignedOut);
    }
    match role {
        Some(role) if role >= required => Ok(()),
        _ => Err(Denied::Role {
            required,
            namespace: repo.namespace.clone(),
        }),
    }
}

/// Whether the actor may read the repository; only a database failure is an error.
pub async fn may_read(conn: &mut PgConnection, actor: &Actor, repo: &Repo) -> sqlx::Result<bool> {
    match may(conn, actor, repo, Need::Read).await {
        Ok(()) => Ok(true),
        Err(Denied::Database(e)) => Err(e),
        Err(_) => Ok(false),
    }
}

/// The actor's role on a namespace: owners of their own user namespace, members by their role,
/// hub admins as owners everywhere.
pub async fn namespace_role(
    conn: &mut PgConnection,
    actor: &Actor,
    namespace_id: i64,
    namespace_kind: NamespaceKind,
) -> sqlx::Result<Option<Role>> {
    let Some(user) = &actor.user else {
        return Ok(None);
    };
    if user.is_admin || (namespace_kind == NamespaceKind::User && user.id == namespace_id) {
        return Ok(Some(Role::Owner));
    }
    if namespace_kind == NamespaceKind::Org {
        return accounts::membership_role(conn, namespace_id, user.id).await;
    }
    Ok(None)
}
