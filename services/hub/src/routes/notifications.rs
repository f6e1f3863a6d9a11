//! Watching repositories, the in-app notification list, and namespace webhooks with their
//! delivery log.

use crate::domain::{
    self,
    event::{Event, Target},
};
use crate::error_code as code;
use actix_web::{HttpResponse, delete, get, post, put, web};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::db;
use crate::db::accounts::Role;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(watch)
        .service(unwatch)
        .service(list)
        .service(read)
        .service(add_webhook)
        .service(list_webhooks)
        .service(delete_webhook)
        .service(deliveries);
}

/// Watches a repository: its public events (advisories, quarantines) reach you.
#[utoipa::path(put, path = "/api/v1/repos/{namespace}/{name}/watch",
    params(super::openapi_responses::RepoPath), security(("bearer" = [])),
    responses((status = 204, description = "watching"), super::openapi_responses::AuthErrors))]
#[put("/api/v1/repos/{namespace}/{name}/watch")]
pub async fn watch(
    state: web::Data<AppState>,
    caller: Caller,
    super::ReadRepo(repo): super::ReadRepo,
) -> ApiResult<HttpResponse> {
    set_watching(&state, &caller, &repo, true).await
}

#[utoipa::path(delete, path = "/api/v1/repos/{namespace}/{name}/watch", summary = "Stops watching a repository",
    params(super::openapi_responses::RepoPath), security(("bearer" = [])),
    responses((status = 204, description = "no longer watching"), super::openapi_responses::AuthErrors))]
#[delete("/api/v1/repos/{namespace}/{name}/watch")]
pub async fn unwatch(
    state: web::Data<AppState>,
    caller: Caller,
    super::ReadRepo(repo): super::ReadRepo,
) -> ApiResult<HttpResponse> {
    set_watching(&state, &caller, &repo, false).await
}

/// Starts or stops the caller's watching of a repository they can read.
async fn set_watching(
    state: &AppState,
    caller: &Caller,
    repo: &crate::db::repos::Repo,
    on: bool,
) -> ApiResult<HttpResponse> {
    let user = caller.require_user()?;
    let mut conn = state.db.acquire().await?;
    db::notifications::watch(&mut conn, repo.id, user.id, on).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    unread: Option<bool>,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", operation_id = "list_notifications",
    params(ListQuery), security(("bearer" = [])),
    responses((status = 200, description = "the notifications"), super::openapi_responses::BadRequest,
              super::openapi_responses::Unauthorized, super::openapi_responses::Unavailable))]
#[get("/api/v1/notifications")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let user = caller.require_user()?;
    let mut conn = state.db.acquire().await?;
    let items = db::notifications::list(&mut conn, user.id, query.unread.unwrap_or(false)).await?;
    Ok(HttpResponse::Ok().json(json!({"notifications": items})))
}

#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", operation_id = "mark_notification_read",
    summary = "Marks one of the caller's notifications read",
    params(("id" = i64, Path, description = "The notification's id")), security(("bearer" = [])),
    responses((status = 204, description = "marked read"), super::openapi_responses::AuthErrors))]
#[post("/api/v1/notifications/{id}/read")]
pub async fn read(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let user = caller.require_user()?;
    let mut conn = state.db.acquire().await?;
    if !db::notifications::mark_read(&mut conn, user.id, path.into_inner()).await? {
        return Err(ApiError::not_found(
            code::NOTIFICATION_NOT_FOUND,
            "no such unread notification of yours",
        ));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `http://` or `https://` URL that receives the events.
    pub url: String,
    /// The HMAC-SHA256 key; generated when absent. Shown once.
    #[serde(default)]
    pub secret: Option<String>,
}

/// Adds a webhook to a namespace (admins; audited). Deliveries carry
/// `X-Kaiyuan-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
#[utoipa::path(post, path = "/api/v1/orgs/{namespace}/webhooks",
    params(super::openapi_responses::NamespacePath), request_body = NewWebhook, security(("bearer" = [])),
    responses((status = 201, description = "the webhook with its secret, shown once"),
              super::openapi_responses::JsonAuthErrors))]
#[post("/api/v1/orgs/{namespace}/webhooks")]
pub async fn add_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<NewWebhook>,
) -> ApiResult<HttpResponse> {
    let user = caller.require_writer()?.clone();
    let mut tx = state.db.begin().await?;
    let ns = super::load_namespace(&mut tx, &caller, &path.into_inner(), Role::Admin).await?;
    let url = url::Url::parse(&body.url).map_err(|e| {
        ApiError::unprocessable(
            code::INVALID_URL,
            format!("`{}` is not a URL: {e}", body.url),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ApiError::unprocessable(
            code::INVALID_URL,
            "a webhook URL is http:// or https:// with a host",
        ));
    }
    // A webhook on the operator's network would let any organisation admin probe it (the
    // delivery log shows what answered); names are checked again at each delivery.
    crate::outbound::Destinations::new(std::iter::empty(), &state.settings.webhooks.internal_hosts)
        .check(&url)
        .map_err(|why| {
            ApiError::unprocessable(
                code::INVALID_URL,
                format!("a webhook cannot deliver to `{url}`: {why} (`webhooks.internal_hosts`)"),
            )
        })?;
    let secret = match &body.secret {
        Some(s) if s.len() >= 16 && s.len() <= 256 => s.clone(),
        Some(_) => {
            return Err(ApiError::unprocessable(
                code::INVALID_SECRET,
                "a webhook secret has 16 to 256 characters",
            ));
        }
        None => hex::encode(rand::rng().random::<[u8; 32]>()),
    };
    let hook =
        db::notifications::add_webhook(&mut tx, ns.id, url.as_str(), &secret, user.id).await?;
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "webhook.add",
            Target::Namespace(&ns.name),
            json!({"id": hook.id, "url": hook.url}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(
        json!({"id": hook.id, "url": hook.url, "secret": secret, "created_at": hook.created_at}),
    ))
}

#[utoipa::path(get, path = "/api/v1/orgs/{namespace}/webhooks", summary = "A namespace's webhooks (admins)",
    params(super::openapi_responses::NamespacePath), security(("bearer" = [])),
    responses((status = 200, description = "the webhooks, without their secrets"), super::openapi_responses::AuthErrors))]
#[get("/api/v1/orgs/{namespace}/webhooks")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    super::NamespaceAdmin(ns): super::NamespaceAdmin,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    Ok(HttpResponse::Ok()
        .json(json!({"webhooks": db::notifications::webhooks(&mut conn, ns.id).await?})))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{namespace}/webhooks/{id}", summary = "Deletes a webhook (admins; audited)",
    params(super::openapi_responses::NamespacePath, ("id" = i64, Path, description = "The webhook's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "deleted"), super::openapi_responses::AuthErrors))]
#[delete("/api/v1/orgs/{namespace}/webhooks/{id}")]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    super::NamespaceAdmin(ns): super::NamespaceAdmin,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    let (_, webhook) = path.into_inner();
    let mut tx = state.db.begin().await?;
    if !db::notifications::delete_webhook(&mut tx, ns.id, webhook).await? {
        let message = format!("`{}` has no webhook {webhook}", ns.name);
        return Err(ApiError::not_found(code::WEBHOOK_NOT_FOUND, message));
    }
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "webhook.delete",
            Target::Namespace(&ns.name),
            json!({"id": webhook}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A webhook's delivery log, newest first (admins).
#[utoipa::path(get, path = "/api/v1/orgs/{namespace}/webhooks/{id}/deliveries",
    params(super::openapi_responses::NamespacePath, ("id" = i64, Path, description = "The webhook's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "the delivery log"), super::openapi_responses::AuthErrors))]
#[get("/api/v1/orgs/{namespace}/webhooks/{id}/deliveries")]
pub async fn deliveries(
    state: web::Data<AppState>,
    super::NamespaceAdmin(ns): super::NamespaceAdmin,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner().1;
    let mut conn = state.db.acquire().await?;
    if !db::notifications::webhooks(&mut conn, ns.id)
        .await?
        .iter()
        .any(|w| w.id == id)
    {
        return Err(ApiError::not_found(
            code::WEBHOOK_NOT_FOUND,
            format!("`{}` has no webhook {id}", ns.name),
        ));
    }
    Ok(HttpResponse::Ok()
        .json(json!({"deliveries": db::notifications::deliveries(&mut conn, id).await?})))
}
