//! Authentication (bearer tokens) and authorisation (who may read, write or administer what).
//!
//! Tokens are random secrets shown once; the database keeps only their sha256. Secrets carry 192
//! bits of entropy, so a fast hash is enough: there is nothing to brute-force.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use chrono::Utc;
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::app::AppState;
use crate::db::accounts::{self, Role};
use crate::db::repos::Repo;
use crate::error::ApiError;

/// Prefix of every kaiyuan token, so leaked tokens are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "ky_";

/// A new token secret and the hash to store.
pub fn new_token() -> (String, Vec<u8>) {
    let bytes: [u8; 24] = rand::rng().random();
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash_token(&secret);
    (secret, hash)
}

pub fn hash_token(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
}

#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    pub token_id: i64,
    pub scope: Scope,
}

/// The authenticated user behind a request, if any. Extracting it fails with 401 when a token is
/// presented but invalid, expired or revoked: a wrong token is never silently anonymous.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub user: Option<AuthUser>,
}

/// Request-scoped id, set by the request-id middleware.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

impl Caller {
    /// The signed-in user, or 401.
    pub fn require_user(&self) -> Result<&AuthUser, ApiError> {
        self.user.as_ref().ok_or_else(|| {
            ApiError::unauthorized(
                "authentication-required",
                "sign in: send `Authorization: Bearer <token>` with a kaiyuan API token",
            )
        })
    }

    /// The signed-in user holding a write-scoped token, or 401/403.
    pub fn require_writer(&self) -> Result<&AuthUser, ApiError> {
        let user = self.require_user()?;
        if user.scope != Scope::Write {
            return Err(ApiError::forbidden(
                "token-read-only",
                "this token has read scope; create a token with write scope to make changes",
            ));
        }
        Ok(user)
    }

    pub fn require_admin(&self) -> Result<&AuthUser, ApiError> {
        let user = self.require_writer()?;
        if !user.is_admin {
            return Err(ApiError::forbidden(
                "admin-required",
                "only hub administrators may do this",
            ));
        }
        Ok(user)
    }

    pub fn id(&self) -> Option<i64> {
        self.user.as_ref().map(|u| u.id)
    }
}

/// Who made a request, left in the request's extensions for the audit middleware.
#[derive(Debug, Clone, Copy)]
pub struct AuditActor {
    pub user_id: i64,
    pub token_id: i64,
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        // The audit middleware reads who made the request after the response.
        let for_audit = req.clone();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        Box::pin(async move {
            let Some(header) = header else {
                return Ok(Caller::default());
            };
            let invalid = || {
                ApiError::unauthorized(
                    "invalid-token",
                    "the token in the Authorization header is unknown, expired or revoked",
                )
            };
            let header = header.map_err(|_| invalid())?;
            let secret = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        "invalid-authorization",
                        "use `Authorization: Bearer <token>`",
                    )
                })?;
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
            let mut conn = state.db.acquire().await?;
            let owner = accounts::token_owner(&mut conn, &hash_token(secret))
                .await?
                .ok_or_else(invalid)?;
            let now = Utc::now();
            if owner.revoked_at.is_some() || owner.expires_at.is_some_and(|at| at <= now) {
                return Err(invalid());
            }
            // Recording every use would write on every request; a minute's resolution is enough.
            if owner
                .last_used_at
                .is_none_or(|at| now - at > chrono::Duration::minutes(1))
            {
                accounts::touch_token(&mut conn, owner.token_id).await?;
            }
            for_audit.extensions_mut().insert(AuditActor {
                user_id: owner.user_id,
                token_id: owner.token_id,
            });
            Ok(Caller {
                user: Some(AuthUser {
                    id: owner.user_id,
                    name: owner.user_name,
                    is_admin: owner.is_admin,
                    token_id: owner.token_id,
                    scope: if owner.scope == "write" {
                        Scope::Write
                    } else {
                        Scope::Read
                    },
                }),
            })
        })
    }
}

/// The caller's role on a namespace: owners of their own user namespace, members by their role,
/// hub admins as owners everywhere.
pub async fn namespace_role(
    conn: &mut PgConnection,
    caller: &Caller,
    namespace_id: i64,
    namespace_kind: &str,
) -> sqlx::Result<Option<Role>> {
    let Some(user) = &caller.user else {
        return Ok(None);
    };
    if user.is_admin || (namespace_kind == "user" && user.id == namespace_id) {
        return Ok(Some(Role::Owner));
    }
    if namespace_kind == "org" {
        return accounts::membership_role(conn, namespace_id, user.id).await;
    }
    Ok(None)
}

/// What an operation on a repository needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    Admin,
}

/// The 404 every route answers for a repository the caller may not see: the same as for one
/// that does not exist, so that private names do not leak.
pub fn repo_not_found(namespace: &str, name: &str) -> ApiError {
    ApiError::not_found(
        "repository-not-found",
        format!(
            "repository `{namespace}/{name}` does not exist or you do not have access to it; \
             if it is private, send a token of a member"
        ),
    )
}

/// Checks that the caller may do `need` on `repo`.
pub async fn authorize_repo(
    conn: &mut PgConnection,
    caller: &Caller,
    repo: &Repo,
    need: Need,
) -> Result<(), ApiError> {
    let role = namespace_role(conn, caller, repo.namespace_id, &repo.namespace_kind).await?;
    if role.is_none() && !repo.is_public() {
        return Err(repo_not_found(&repo.namespace, &repo.name));
    }
    let required = match need {
        Need::Read => return Ok(()),
        Need::Write => Role::Write,
        Need::Admin => Role::Admin,
    };
    caller.require_writer()?;
    match role {
        Some(role) if role >= required => Ok(()),
        _ => Err(ApiError::forbidden(
            "insufficient-role",
            format!(
                "you need the `{}` role on `{}` to do this",
                required.as_str(),
                repo.namespace
            ),
        )),
    }
}
