//! Accounts: users, tokens, organisations and memberships; plus hub-admin inspection routes.

use crate::db::types::NamespaceKind;
use crate::domain::event::{Event, Target};
use crate::domain::log_entry::LogEntry;
use crate::domain::{self};
use crate::error_code as code;
use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{self, Caller};
use crate::db::{self, accounts::Role};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(whoami)
        .service(create_user)
        .service(create_token)
        .service(list_tokens)
        .service(revoke_token)
        .service(create_org)
        .service(list_members)
        .service(set_member)
        .service(remove_member)
        .service(list_jobs)
        .service(release_blob)
        .service(run_gc);
}

#[derive(Serialize, ToSchema)]
pub struct OrgMembership {
    pub name: String,
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub is_admin: bool,
    pub orgs: Vec<OrgMembership>,
    pub token_scope: &'static str,
}

/// The signed-in user, their organisations and the token's scope.
#[utoipa::path(get, path = "/api/v1/whoami", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI), super::openapi_responses::Unauthorized,
              super::openapi_responses::Unavailable))]
#[get("/api/v1/whoami")]
pub async fn whoami(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let user = caller.require_user()?;
    let mut conn = state.db.acquire().await?;
    let orgs = db::accounts::user_orgs(&mut conn, user.id)
        .await?
        .into_iter()
        .map(|m| OrgMembership {
            name: m.name,
            role: m.role,
        })
        .collect();
    Ok(HttpResponse::Ok().json(WhoAmI {
        name: user.name.clone(),
        kind: "user",
        is_admin: user.is_admin,
        orgs,
        token_scope: match user.scope {
            auth::Scope::Read => "read",
            auth::Scope::Write => "write",
        },
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    #[serde(default)]
    pub admin: bool,
}

/// Creates a user with a first write token (hub admins only).
#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser, security(("bearer" = [])),
    responses((status = 201, body = domain::accounts::CreatedUser), super::openapi_responses::JsonErrors,
              super::openapi_responses::Unauthorized, super::openapi_responses::Forbidden,
              super::openapi_responses::Conflict, super::openapi_responses::Unavailable))]
#[post("/api/v1/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewUser>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let created = domain::accounts::create_user(&state.db, &caller, &body.name, body.admin).await?;
    Ok(super::created(&created))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// `read` or `write`.
    pub scope: String,
    /// Days until the token expires (1 to 3650); omit for a token that does not expire.
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub scope: auth::Scope,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The secret, present only in the response that creates the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<db::accounts::TokenRow> for TokenInfo {
    fn from(t: db::accounts::TokenRow) -> Self {
        Self {
            id: t.id,
            name: t.name,
            scope: t.scope,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
            created_at: t.created_at,
            token: None,
        }
    }
}

/// The longest a token may live: ten years keeps every expiry a four-digit year.
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// Creates a token for the signed-in user; the secret is shown once.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken, security(("bearer" = [])),
    responses((status = 201, body = TokenInfo), super::openapi_responses::JsonErrors,
              super::openapi_responses::Unauthorized, super::openapi_responses::Forbidden,
              super::openapi_responses::Unavailable))]
#[post("/api/v1/tokens")]
pub async fn create_token(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewToken>,
) -> ApiResult<HttpResponse> {
    let user = caller.require_writer()?;
    let scope = auth::Scope::parse(&body.scope).ok_or_else(|| {
        ApiError::unprocessable(code::INVALID_SCOPE, "scope must be `read` or `write`")
    })?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            code::INVALID_TOKEN_NAME,
            "give the token a name of 1 to 100 characters, without control characters",
        ));
    }
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days @ 1..=MAX_TOKEN_DAYS) => Some(Utc::now() + chrono::Duration::days(days.into())),
        Some(days) => {
            return Err(ApiError::unprocessable(
                code::INVALID_EXPIRY,
                format!(
                    "expires_in_days is {days}; give 1 to {MAX_TOKEN_DAYS} days, or omit it for a token that does not expire"
                ),
            ));
        }
    };
    let (secret, hash) = auth::new_token();
    let mut tx = state.db.begin().await?;
    let row = db::accounts::insert_token(&mut tx, user.id, name, &hash, scope, expires_at).await?;
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "token.create",
            Target::User(&user.name),
            serde_json::json!({"token_id": row.id, "scope": body.scope}),
        ),
    )
    .await?;
    tx.commit().await?;
    let mut info = TokenInfo::from(row);
    info.token = Some(secret);
    Ok(super::created(&info))
}

/// The signed-in user's tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", security(("bearer" = [])),
    responses((status = 200, body = [TokenInfo]), super::openapi_responses::Unauthorized,
              super::openapi_responses::Unavailable))]
#[get("/api/v1/tokens")]
pub async fn list_tokens(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let user = caller.require_user()?;
    let mut conn = state.db.acquire().await?;
    let tokens: Vec<TokenInfo> = db::accounts::list_tokens(&mut conn, user.id)
        .await?
        .into_iter()
        .map(TokenInfo::from)
        .collect();
    Ok(HttpResponse::Ok().json(tokens))
}

/// Revokes one of the signed-in user's tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}",
    params(("id" = i64, Path, description = "The token's id")), security(("bearer" = [])),
    responses((status = 204, description = "revoked"), super::openapi_responses::AuthErrors))]
#[delete("/api/v1/tokens/{id}")]
pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let user = caller.require_writer()?;
    let mut tx = state.db.begin().await?;
    if !db::accounts::revoke_token(&mut tx, user.id, *id).await? {
        return Err(ApiError::not_found(
            code::TOKEN_NOT_FOUND,
            "you have no live token with that id",
        ));
    }
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "token.revoke",
            Target::User(&user.name),
            serde_json::json!({"token_id": *id}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    pub name: String,
}

/// Creates an organisation; its creator becomes its owner.
#[utoipa::path(post, path = "/api/v1/orgs", request_body = NewOrg, security(("bearer" = [])),
    responses((status = 201, description = "the organisation"), super::openapi_responses::JsonWriteErrors))]
#[post("/api/v1/orgs")]
pub async fn create_org(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewOrg>,
) -> ApiResult<HttpResponse> {
    let user = caller.require_writer()?;
    let name = domain::accounts::create_org(&state.db, &caller, user.id, &body.name).await?;
    Ok(super::created(
        &serde_json::json!({"name": name.as_str(), "role": "owner"}),
    ))
}

/// The organisation, if it exists and the caller may see its members (members and hub admins).
async fn org_for_member(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    org: &str,
) -> Result<(db::accounts::Namespace, Role), ApiError> {
    let not_found = || {
        ApiError::not_found(
            code::ORG_NOT_FOUND,
            format!("organisation `{org}` does not exist or you are not a member"),
        )
    };
    let namespace = db::accounts::find_namespace(conn, org)
        .await?
        .filter(|n| n.kind == NamespaceKind::Org)
        .ok_or_else(not_found)?;
    let role = auth::namespace_role(conn, caller, namespace.id, NamespaceKind::Org)
        .await?
        .ok_or_else(not_found)?;
    Ok((namespace, role))
}

#[derive(Serialize, ToSchema)]
pub struct Member {
    pub name: String,
    pub role: String,
}

/// Members of an organisation (visible to its members).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/members",
    params(("org" = String, Path, description = "The organisation's name")), security(("bearer" = [])),
    responses((status = 200, body = [Member]), super::openapi_responses::Unauthorized,
              super::openapi_responses::NotFound, super::openapi_responses::Unavailable))]
#[get("/api/v1/orgs/{org}/members")]
pub async fn list_members(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require_user()?;
    let mut conn = state.db.acquire().await?;
    let (namespace, _) = org_for_member(&mut conn, &caller, &org).await?;
    let members: Vec<Member> = db::accounts::list_members(&mut conn, namespace.id)
        .await?
        .into_iter()
        .map(|m| Member {
            name: m.name,
            role: m.role,
        })
        .collect();
    Ok(HttpResponse::Ok().json(members))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

/// Adds a member or changes their role (org admins; only owners grant or remove ownership).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/members/{user}",
    params(("org" = String, Path, description = "The organisation's name"),
           ("user" = String, Path, description = "The member's user name")),
    request_body = SetRole, security(("bearer" = [])),
    responses((status = 200, description = "the member's name and role"), super::openapi_responses::JsonWriteErrors))]
#[put("/api/v1/orgs/{org}/members/{user}")]
pub async fn set_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<SetRole>,
) -> ApiResult<HttpResponse> {
    let (org, member) = path.into_inner();
    let name = set_role(&state, &caller, &org, &member, body.role).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"name": name, "role": body.role.as_str()})))
}

/// Adds a member or changes their role (org admins; only owners make owners; never the last
/// owner): the API and the organisation page both come here. Returns the member's name.
pub(crate) async fn set_role(
    state: &AppState,
    caller: &Caller,
    org: &str,
    member: &str,
    role: Role,
) -> Result<String, ApiError> {
    caller.require_writer()?;
    let mut tx = state.db.begin().await?;
    let (namespace, my_role) = org_for_member(&mut tx, caller, org).await?;
    let target = user_named(&mut tx, member).await?;
    let current = db::accounts::membership_role(&mut tx, namespace.id, target.id).await?;
    check_can_manage(my_role, current, Some(role))?;
    if current == Some(Role::Owner) && role != Role::Owner {
        ensure_other_owner(&mut tx, namespace.id, target.id).await?;
    }
    db::accounts::set_membership(&mut tx, namespace.id, target.id, role).await?;
    domain::event::record(
        &mut tx,
        caller,
        Event::new(
            "org.member.set",
            Target::Org(&namespace.name),
            serde_json::json!({"user": target.name, "role": role.as_str()}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(target.name)
}

/// Removes a member (org admins; only owners remove owners; never the last owner).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/members/{user}",
    params(("org" = String, Path, description = "The organisation's name"),
           ("user" = String, Path, description = "The member's user name")),
    security(("bearer" = [])),
    responses((status = 204, description = "removed"), super::openapi_responses::AuthConflictErrors))]
#[delete("/api/v1/orgs/{org}/members/{user}")]
pub async fn remove_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (org, member) = path.into_inner();
    remove(&state, &caller, &org, &member).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Removes a member (org admins; only owners remove owners; never the last owner; anyone may
/// leave): the API and the organisation page both come here.
pub(crate) async fn remove(
    state: &AppState,
    caller: &Caller,
    org: &str,
    member: &str,
) -> Result<(), ApiError> {
    let actor = caller.require_writer()?;
    let mut tx = state.db.begin().await?;
    let (namespace, my_role) = org_for_member(&mut tx, caller, org).await?;
    let target = user_named(&mut tx, member).await?;
    let current = db::accounts::membership_role(&mut tx, namespace.id, target.id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                code::MEMBER_NOT_FOUND,
                format!("`{member}` is not a member of `{org}`"),
            )
        })?;
    // Anyone may leave; removing someone else needs the admin role.
    if target.id != actor.id {
        check_can_manage(my_role, Some(current), None)?;
    }
    if current == Role::Owner {
        ensure_other_owner(&mut tx, namespace.id, target.id).await?;
    }
    db::accounts::remove_membership(&mut tx, namespace.id, target.id).await?;
    domain::event::record(
        &mut tx,
        caller,
        Event::new(
            "org.member.remove",
            Target::Org(&namespace.name),
            serde_json::json!({"user": target.name}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The user a membership change is about (404 `user-not-found` if there is none).
async fn user_named(
    conn: &mut sqlx::PgConnection,
    name: &str,
) -> Result<db::accounts::User, ApiError> {
    db::accounts::find_user(conn, name).await?.ok_or_else(|| {
        ApiError::not_found(code::USER_NOT_FOUND, format!("no user is named `{name}`"))
    })
}

fn check_can_manage(mine: Role, current: Option<Role>, new: Option<Role>) -> Result<(), ApiError> {
    if mine < Role::Admin {
        return Err(ApiError::forbidden(
            code::INSUFFICIENT_ROLE,
            "managing members needs the `admin` role in the organisation",
        ));
    }
    let touches_owner = current == Some(Role::Owner) || new == Some(Role::Owner);
    if touches_owner && mine < Role::Owner {
        return Err(ApiError::forbidden(
            code::INSUFFICIENT_ROLE,
            "only owners grant or remove the `owner` role",
        ));
    }
    Ok(())
}

async fn ensure_other_owner(
    conn: &mut sqlx::PgConnection,
    org_id: i64,
    leaving: i64,
) -> Result<(), ApiError> {
    let owners = db::accounts::lock_owner_ids(conn, org_id).await?;
    if owners.iter().all(|&id| id == leaving) {
        return Err(ApiError::conflict(
            code::LAST_OWNER,
            "an organisation needs at least one owner; make someone else owner first",
        ));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    pub state: Option<String>,
    pub limit: Option<i64>,
}

/// Background jobs, newest first, optionally by state (hub admins): failures stay for inspection.
#[utoipa::path(get, path = "/api/v1/admin/jobs", params(JobsQuery), security(("bearer" = [])),
    description = "Background jobs, newest first (hub admins). `state` is one of `queued`, `running`, `succeeded` or `failed`; `limit` is clamped to 1..=1000 (default 100).",
    responses((status = 200, description = "the jobs"), super::openapi_responses::BadRequest,
              super::openapi_responses::Unauthorized, super::openapi_responses::Forbidden,
              super::openapi_responses::Unavailable))]
#[get("/api/v1/admin/jobs")]
pub async fn list_jobs(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<JobsQuery>,
) -> ApiResult<HttpResponse> {
    admin_reader(&caller)?;
    if let Some(s) = &query.state
        && !matches!(s.as_str(), "queued" | "running" | "succeeded" | "failed")
    {
        return Err(ApiError::bad_request(
            code::INVALID_STATE,
            "state is one of queued, running, succeeded, failed",
        ));
    }
    let mut conn = state.db.acquire().await?;
    let jobs = db::jobs::list(
        &mut conn,
        query.state.as_deref(),
        query.limit.unwrap_or(100).clamp(1, 1000),
    )
    .await?;
    Ok(HttpResponse::Ok().json(jobs))
}

/// Runs the garbage collector now (hub admins).
#[utoipa::path(post, path = "/api/v1/admin/gc", security(("bearer" = [])),
    responses((status = 200, description = "what the collector removed"),
              super::openapi_responses::Unauthorized, super::openapi_responses::Forbidden,
              super::openapi_responses::Unavailable))]
#[post("/api/v1/admin/gc")]
pub async fn run_gc(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let report = crate::gc::collect(&state.db, &state.store, &state.settings.gc)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Why the quarantine is lifted (kept in the audit log).
    pub reason: String,
}

/// Releases a quarantined blob so that it can be downloaded again (hub admins; audited).
#[utoipa::path(post, path = "/api/v1/admin/blobs/{sha256}/release",
    params(("sha256" = String, Path, description = "The blob's sha256, 64 lowercase hex digits")),
    request_body = Release, security(("bearer" = [])),
    responses((status = 200, description = "the released blob"), super::openapi_responses::JsonAuthErrors))]
#[post("/api/v1/admin/blobs/{sha256}/release")]
pub async fn release_blob(
    state: web::Data<AppState>,
    caller: Caller,
    sha256: web::Path<String>,
    body: web::Json<Release>,
) -> ApiResult<HttpResponse> {
    let admin = caller.require_admin()?;
    let digest = super::uploads::parse_digest(&sha256)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 2000 {
        return Err(ApiError::unprocessable(
            code::INVALID_REASON,
            "give a reason of 1 to 2000 characters; it is kept in the audit log",
        ));
    }
    let mut tx = state.db.begin().await?;
    if !db::scans::release(&mut tx, digest.as_bytes(), admin.id, reason).await? {
        return Err(ApiError::not_found(
            code::BLOB_NOT_FOUND,
            format!("the hub holds no blob {digest}"),
        ));
    }
    let entry = LogEntry::Release {
        sha256: digest.to_hex(),
        report: None,
        reason: None,
    };
    let hex = digest.to_hex();
    let change = Event::new(
        "blob.release",
        Target::Blob(&hex),
        serde_json::json!({"reason": reason}),
    );
    domain::event::record(&mut tx, &caller, change.logged(entry)).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"sha256": digest.to_hex(), "released": true, "reason": reason})))
}

fn admin_reader(caller: &Caller) -> Result<(), ApiError> {
    let user = caller.require_user()?;
    if !user.is_admin {
        return Err(ApiError::forbidden(
            code::ADMIN_REQUIRED,
            "only hub administrators may do this",
        ));
    }
    Ok(())
}
