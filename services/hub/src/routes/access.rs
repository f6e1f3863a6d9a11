//! Gated repositories: anyone who can see the repository can list it, but downloading its files
//! needs membership or an accepted access request (accepted at once for `auto` gating, by a
//! repository admin for `manual`).

use crate::domain::{
    self,
    event::{Event, Target},
};
use crate::error_code as code;
use actix_web::{HttpResponse, get, post, put, web};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;

use crate::auth::{self, Caller, Need};
use crate::db;
use crate::db::repos::Repo;
use crate::db::types::{AccessStatus, Gated};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(request_access)
        .service(list_requests)
        .service(decide)
        .service(auth_check);
}

/// Checks that the caller may download files of `repo` (after it passed the read check).
pub async fn authorize_download(
    conn: &mut PgConnection,
    caller: &Caller,
    repo: &Repo,
) -> Result<(), ApiError> {
    if repo.gated == Gated::None {
        return Ok(());
    }
    if auth::namespace_role(conn, caller, repo.namespace_id, repo.namespace_kind)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let how = format!(
        "`{}` is gated: request access with POST /api/v1/repos/{}/access-request{}",
        repo.full_name(),
        repo.full_name(),
        if repo.gated == Gated::Manual {
            ", then wait for an admin of the repository to accept it"
        } else {
            ""
        }
    );
    let Some(user) = &caller.user else {
        return Err(ApiError::unauthorized(
            code::GATED,
            format!("{how} (sign in first)"),
        ));
    };
    match db::repos::access_status(conn, repo.id, user.id).await? {
        Some(AccessStatus::Accepted) => Ok(()),
        Some(AccessStatus::Pending) => Err(ApiError::forbidden(
            code::GATED,
            format!(
                "`{}` is gated and your access request is pending",
                repo.full_name()
            ),
        )),
        Some(_) => Err(ApiError::forbidden(
            code::GATED,
            format!(
                "`{}` is gated and your access request was rejected",
                repo.full_name()
            ),
        )),
        None => Err(ApiError::forbidden(code::GATED, how)),
    }
}

/// Asks for access to a gated repository's files.
#[utoipa::path(post, path = "/api/v1/repos/{namespace}/{name}/access-request",
    params(super::openapi_responses::RepoPath), security(("bearer" = [])),
    responses((status = 200, description = "the request's status: `pending`, or `granted` at once"),
              super::openapi_responses::AuthConflictErrors))]
#[post("/api/v1/repos/{namespace}/{name}/access-request")]
pub async fn request_access(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    let (repo, status) = ask_access(&state, &caller, &namespace, &name).await?;
    Ok(HttpResponse::Ok().json(json!({"repository": repo.full_name(), "status": status})))
}

/// Asks for access to a gated repository (granted at once when its gating is `auto`): the
/// API's JSON and the web page's form both come here.
pub(crate) async fn ask_access(
    state: &AppState,
    caller: &Caller,
    namespace: &str,
    name: &str,
) -> Result<(Repo, AccessStatus), ApiError> {
    let user = caller.require_user()?.clone();
    let mut tx = state.db.begin().await?;
    let repo = super::load_repo(&mut tx, caller, namespace, name, Need::Read).await?;
    if repo.gated == Gated::None {
        return Err(ApiError::conflict(
            code::NOT_GATED,
            format!(
                "`{}` is not gated: its files need no access request",
                repo.full_name()
            ),
        ));
    }
    let initial = if repo.gated == Gated::Auto {
        AccessStatus::Accepted
    } else {
        AccessStatus::Pending
    };
    let status = db::repos::request_access(&mut tx, repo.id, user.id, initial).await?;
    domain::event::record(
        &mut tx,
        caller,
        Event::new(
            "access.request",
            Target::Repo(&repo),
            json!({"status": status}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((repo, status))
}

/// Access requests of a gated repository (repository admins).
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/access-requests",
    params(super::openapi_responses::RepoPath), security(("bearer" = [])),
    responses((status = 200, description = "the repository's access requests"), super::openapi_responses::AuthErrors))]
#[get("/api/v1/repos/{namespace}/{name}/access-requests")]
pub async fn list_requests(
    state: web::Data<AppState>,
    super::AdminRepo(repo): super::AdminRepo,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    Ok(HttpResponse::Ok().json(db::repos::access_requests(&mut conn, repo.id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `accepted`, `rejected` or `pending`.
    pub status: String,
}

/// Accepts or rejects a user's access (repository admins; audited).
#[utoipa::path(put, path = "/api/v1/repos/{namespace}/{name}/access-requests/{user}",
    params(super::openapi_responses::RepoPath, ("user" = String, Path, description = "The user whose access is decided")),
    request_body = Decision, security(("bearer" = [])),
    responses((status = 200, description = "the user and the decided status"),
              super::openapi_responses::JsonAuthErrors))]
#[put("/api/v1/repos/{namespace}/{name}/access-requests/{user}")]
pub async fn decide(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
    body: web::Json<Decision>,
) -> ApiResult<HttpResponse> {
    let (namespace, name, member) = path.into_inner();
    let mut tx = state.db.begin().await?;
    let repo = super::load_repo(&mut tx, &caller, &namespace, &name, Need::Admin).await?;
    let actor = caller.require_writer()?.id;
    let Some(status) = AccessStatus::parse(&body.status) else {
        return Err(ApiError::unprocessable(
            code::INVALID_STATUS,
            "status is accepted, rejected or pending",
        ));
    };
    let target = db::accounts::find_user(&mut tx, &member)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(code::USER_NOT_FOUND, format!("no user is named `{member}`"))
        })?;
    db::repos::decide_access(&mut tx, repo.id, target.id, status, actor).await?;
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "access.decide",
            Target::Repo(&repo),
            json!({"user": target.name, "status": body.status}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({"user": target.name, "status": body.status})))
}

/// `huggingface_hub`'s `auth_check`: 200 when the caller may download, else the usual error.
#[get("/api/models/{namespace}/{name}/auth-check")]
async fn auth_check(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    let mut conn = state.db.acquire().await?;
    let repo = super::load_repo(&mut conn, &caller, &namespace, &name, Need::Read).await?;
    authorize_download(&mut conn, &caller, &repo).await?;
    if let Some(head) = db::commits::resolve(&mut conn, repo.id, "main").await? {
        crate::licensing::authorize_license(&mut conn, &state.store, &caller, &repo, &head).await?;
    }
    Ok(HttpResponse::Ok().json(json!({})))
}
