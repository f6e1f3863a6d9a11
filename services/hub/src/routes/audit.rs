//! The audit log of a namespace for its admins: filters, pages, and JSON-lines export.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::db;
use crate::db::accounts::Role;
use crate::error::{ApiError, ApiResult};
use crate::error_code as code;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(namespace_audit);
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    action: Option<String>,
    actor: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<i64>,
    limit: Option<i64>,
    format: Option<String>,
}

/// Audit events of a namespace, newest first (admins of the namespace and hub admins):
/// every state-changing request (actor, token, action, path, result, client address,
/// request id) and the domain events (commits, ref moves, policy changes ...). Filters:
/// `action` (exact, or a prefix ending in `*`), `actor`, `since`, `until`; pages of `limit`
/// (at most 1000) continued with `cursor`; `format=jsonl` exports JSON lines.
#[utoipa::path(get, path = "/api/v1/orgs/{namespace}/audit",
    params(super::openapi_responses::NamespacePath, AuditParams), security(("bearer" = [])),
    responses((status = 200, description = "a page of events (JSON), or every event as JSON lines with `format=jsonl`",
               content((Object = "application/json"), (String = "application/x-ndjson"))),
              super::openapi_responses::AuthErrors))]
#[get("/api/v1/orgs/{namespace}/audit")]
pub async fn namespace_audit(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<AuditParams>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            code::INVALID_LIMIT,
            "limit must be between 1 and 1000",
        ));
    }
    let jsonl = match params.format.as_deref() {
        None | Some("json") => false,
        Some("jsonl") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                code::INVALID_QUERY,
                format!("format `{other}`: expected json or jsonl"),
            ));
        }
    };
    let mut conn = state.db.acquire().await?;
    let ns = super::load_namespace(&mut conn, &caller, &name, Role::Admin).await?;
    let query = db::audit::AuditQuery {
        namespace: &ns.name,
        action: params.action.as_deref(),
        actor: params.actor.as_deref(),
        since: params.since,
        until: params.until,
        before: params.cursor,
        limit,
    };
    let events = db::audit::query(&mut conn, &query).await?;
    if jsonl {
        let mut body = String::new();
        for e in &events {
            body.push_str(
                &serde_json::to_string(e).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?,
            );
            body.push('\n');
        }
        return Ok(HttpResponse::Ok()
            .content_type("application/x-ndjson")
            .body(body));
    }
    let next = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(HttpResponse::Ok()
        .json(json!({"namespace": ns.name, "events": events, "next_cursor": next})))
}
