//! The mirror's administration over HTTP (hub admins): what is mirrored, and mirroring a
//! repository ahead of time. The command line has the same (`kaiyuan mirror status|add`).

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::db;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(mirror_status).service(prefetch);
}

/// Every mirrored repository: its upstream, last fetch and number of mirrored commits.
#[utoipa::path(get, path = "/api/v1/admin/mirror", security(("bearer" = [])),
    responses((status = 200, description = "the mirrored repositories"),
              super::openapi_responses::Unauthorized, super::openapi_responses::Forbidden,
              super::openapi_responses::Unavailable))]
#[get("/api/v1/admin/mirror")]
pub async fn mirror_status(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let mut conn = state.db.acquire().await?;
    let repos: Vec<_> = db::mirror::status(&mut conn)
        .await?
        .into_iter()
        .map(|(repo, upstream, synced_at, commits)| {
            json!({"repo": repo, "upstream": upstream, "synced_at": synced_at, "commits": commits})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "repos": repos })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Prefetch {
    /// `ORG/NAME` on the upstream.
    pub repo: String,
    /// A branch, tag or upstream commit id (default `main`).
    pub revision: Option<String>,
}

/// Mirrors a repository revision ahead of time: fetched, checked against the upstream's
/// digests, scanned and put under the licence policy like any read-through. 200 with the local
/// commit once it is mirrored; 202 while the fetch goes on past `mirror.wait_secs` (it
/// continues, and the same request later answers 200).
#[utoipa::path(post, path = "/api/v1/admin/mirror", security(("bearer" = [])),
    request_body = Prefetch,
    responses((status = 200, description = "mirrored: the local commit"),
              (status = 202, description = "still being fetched and checked"),
              (status = 502, description = "the upstream failed or sent what its digests do not say"),
              (status = 504, description = "the upstream is unreachable"),
              super::openapi_responses::JsonWriteErrors))]
#[post("/api/v1/admin/mirror")]
pub async fn prefetch(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<Prefetch>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let revision = body.revision.as_deref().unwrap_or("main");
    let answer = json!({"repo": body.repo, "revision": revision});
    Ok(
        match crate::mirror::prefetch(&state, &caller, &body.repo, revision).await? {
            Some(commit) => HttpResponse::Ok()
                .json(json!({"commit": commit, "mirrored": true, "request": answer})),
            None => HttpResponse::Accepted().json(json!({"mirrored": false, "request": answer})),
        },
    )
}
