//! Authentication (bearer tokens) and authorisation (who may read, write or administer what).
//!
//! Tokens are random secrets shown once; the database keeps only their sha256. Secrets carry 192
//! bits of entropy, so a fast hash is enough: there is nothing to brute-force.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use chrono::Utc;
use sqlx::PgConnection;

use crate::db::accounts;
use crate::db::repos::Repo;
use crate::error::ApiError;
use crate::error_code as code;
use crate::state::AppState;

pub use crate::domain::actor::{
    Actor as Caller, AuthUser, Denied, Need, Scope, TOKEN_PREFIX, hash_token, namespace_role,
    new_token,
};

/// The web UI's session cookie.
pub const SESSION_COOKIE: &str = "kaiyuan_session";
/// The header that carries the session's CSRF token on API calls made by the UI's JavaScript.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie_value(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

/// Constant-time comparison of a submitted CSRF token with the session's.
pub fn csrf_matches(expected: &str, submitted: &str) -> bool {
    crate::hmac::constant_time_eq(expected.as_bytes(), submitted.as_bytes())
}

fn owner_to_caller(owner: accounts::TokenOwner, session_csrf: Option<String>) -> Caller {
    Caller {
        user: Some(AuthUser {
            id: owner.user_id,
            name: owner.user_name,
            is_admin: owner.is_admin,
            token_id: owner.token_id,
            scope: owner.scope,
        }),
        session_csrf,
        request_id: None,
    }
}

/// Routes that take a POST but change nothing, which a read-scoped token may call. Every other
/// request with a method other than GET, HEAD or OPTIONS changes something and needs a
/// write-scoped token, whatever its handler checks: one rule, so no route can forget it.
const READ_ONLY_POSTS: &[&str] = &[
    "/api/models/{namespace}/{name}/paths-info/{revision}",
    "/api/v1/repos/{namespace}/{name}/compliance",
    "/api/validate-yaml",
    "/{namespace}/{repo_git}/info/lfs/objects/batch",
    "/sign-in",
    "/sign-out",
];

/// Routes that change state without a signed-in caller: Hugging Face's signed upload URLs (the
/// signature is the authority) and signing in. Every other change needs a caller, so an
/// anonymous one is told 401 before anything reads the request's body.
const ANONYMOUS_WRITES: &[&str] = &[
    "/api/lfs/{namespace}/{name}/{oid}",
    "/api/lfs/{namespace}/{name}/{oid}/parts/{number}",
    "/api/lfs/{namespace}/{name}/{oid}/complete",
];

/// Whether a request may change state, by its method and path.
fn changes_state(req: &ServiceRequest) -> bool {
    !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS")
        && !READ_ONLY_POSTS
            .iter()
            .any(|t| crate::routes::path_matches(t, req.path()))
}

fn read_only_token() -> ApiError {
    ApiError::forbidden(
        code::TOKEN_READ_ONLY,
        "this token has read scope; create a token with write scope to make changes",
    )
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
                code::AUTHENTICATION_REQUIRED,
                "sign in: send `Authorization: Bearer <token>` with a kaiyuan API token",
            )
        })
    }

    /// The signed-in user holding a write-scoped token, or 401/403.
    pub fn require_writer(&self) -> Result<&AuthUser, ApiError> {
        let user = self.require_user()?;
        if user.scope != Scope::Write {
            return Err(read_only_token());
        }
        Ok(user)
    }

    pub fn require_admin(&self) -> Result<&AuthUser, ApiError> {
        let user = self.require_writer()?;
        if !user.is_admin {
            return Err(ApiError::forbidden(
                code::ADMIN_REQUIRED,
                "only hub administrators may do this",
            ));
        }
        Ok(user)
    }

    /// The caller, or 403 when a read-scoped token makes a request that changes state.
    fn allowed_to_write(self, writes: bool) -> Result<Self, ApiError> {
        match &self.user {
            Some(user) if writes && user.scope == Scope::Read => Err(read_only_token()),
            _ => Ok(self),
        }
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

/// Middleware: works out who makes every request once, before routing, so that what it may do
/// is decided before any handler or extractor looks at the request: a token that is unknown,
/// expired or revoked is 401, a read-scoped token that would change something is 403, a session
/// cookie without its CSRF token on an API write is 403. Handlers take the result as [`Caller`].
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Web pages answer an anonymous form with their own sign-in redirect instead.
    let api = req.path().starts_with("/api/") || req.path().contains("/info/lfs/");
    let anonymous_write = api
        && changes_state(&req)
        && !ANONYMOUS_WRITES
            .iter()
            .any(|t| crate::routes::path_matches(t, req.path()));
    let caller = caller_of(&req).await.and_then(|caller| match caller.user {
        None if anonymous_write => Err(ApiError::unauthorized(
            code::AUTHENTICATION_REQUIRED,
            "sign in: changes need `Authorization: Bearer <token>` with a kaiyuan API token",
        )),
        _ => Ok(caller),
    });
    match caller {
        Ok(mut caller) => {
            caller.request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
            req.extensions_mut().insert(caller);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => {
            let response = e.error_response();
            Ok(req.into_response(response))
        }
    }
}

/// Paths that never look at the caller: probes must answer whatever a client's token is, and
/// without the database.
/// The Xet CAS (`/cas/`) authenticates with its own short-lived tokens, never hub tokens.
fn needs_no_caller(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
        || path.starts_with("/static/")
        || path.starts_with("/cas/")
}

async fn caller_of(req: &ServiceRequest) -> Result<Caller, ApiError> {
    if needs_no_caller(req.path()) {
        return Ok(Caller::default());
    }
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_owned));
    let cookie = cookie_value(req.request(), SESSION_COOKIE);
    if header.is_none() && cookie.is_none() {
        return Ok(Caller::default());
    }
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
    let writes = changes_state(req);
    let Some(header) = header else {
        let unsafe_api_call = !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS")
            && req.path().starts_with("/api/");
        let csrf_header = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        // A browser session: same rights as the token that opened it.
        let mut conn = state.db.acquire().await?;
        let cookie = cookie.unwrap_or_default();
        let Some(session) = crate::db::sessions::find(&mut conn, &hash_token(&cookie)).await?
        else {
            return Ok(Caller::default());
        };
        let now = Utc::now();
        let owner = session.owner;
        if session.session_expires_at <= now
            || owner.revoked_at.is_some()
            || owner.expires_at.is_some_and(|at| at <= now)
        {
            return Ok(Caller::default());
        }
        if unsafe_api_call && !csrf_header.is_some_and(|h| csrf_matches(&session.csrf, h)) {
            return Err(ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                code::CSRF_TOKEN_REQUIRED,
                "requests made with a session cookie must send the session's X-CSRF-Token header",
            ));
        }
        req.extensions_mut().insert(AuditActor {
            user_id: owner.user_id,
            token_id: owner.token_id,
        });
        return owner_to_caller(owner, Some(session.csrf)).allowed_to_write(writes);
    };
    let invalid = || {
        ApiError::unauthorized(
            code::INVALID_TOKEN,
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
                code::INVALID_AUTHORIZATION,
                "use `Authorization: Bearer <token>`",
            )
        })?;
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
    req.extensions_mut().insert(AuditActor {
        user_id: owner.user_id,
        token_id: owner.token_id,
    });
    owner_to_caller(owner, None).allowed_to_write(writes)
}

/// The caller the authentication middleware found (anonymous where it did not run).
impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(req
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_default()))
    }
}

/// The 404 every route answers for a repository the caller may not see: the same as for one
/// that does not exist, so that private names do not leak.
pub fn repo_not_found(namespace: &str, name: &str) -> ApiError {
    ApiError::not_found(
        code::REPOSITORY_NOT_FOUND,
        format!(
            "repository `{namespace}/{name}` does not exist or you do not have access to it; \
             if it is private, send a token of a member"
        ),
    )
}

/// Checks that the caller may do `need` on `repo`. A repository the caller may not see answers
/// 404 naming `asked`, the spelling of the request: the stored spelling of a private name would
/// confirm that it exists.
pub async fn authorize_repo(
    conn: &mut PgConnection,
    caller: &Caller,
    repo: &Repo,
    asked: (&str, &str),
    need: Need,
) -> Result<(), ApiError> {
    match crate::domain::actor::may(conn, caller, repo, need).await {
        Ok(()) => Ok(()),
        Err(Denied::Hidden) => Err(repo_not_found(asked.0, asked.1)),
        Err(Denied::SignedOut) => caller.require_user().map(|_| ()),
        Err(e @ Denied::Role { .. }) => {
            Err(ApiError::forbidden(code::INSUFFICIENT_ROLE, e.to_string()))
        }
        Err(Denied::Database(e)) => Err(e.into()),
    }
}
