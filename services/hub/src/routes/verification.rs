//! Sample-inference verification over HTTP: a revision's status with every model's report, and
//! re-runs on demand (optionally on a GPU worker).

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Caller, Need};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::error_code as code;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(status).service(rerun);
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevisionQuery {
    revision: Option<String>,
}

fn body(repo: &db::repos::Repo, row: &db::verifications::VerificationRow) -> serde_json::Value {
    json!({
        "repository": repo.full_name(),
        "revision": row.commit_id,
        "status": row.status,
        "requested_ep": row.requested_ep,
        "queued_at": row.queued_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "worker": row.worker,
        "runs_started": row.runs_started,
        "files": row.files,
    })
}

/// The revision's verification: `pending`, `running`, `passed`, `failed` or `error`, with each
/// ONNX model's report (provider, ONNX Runtime version, inputs, outputs, test-vector
/// comparisons, determinism, timings).
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/verification",
    params(super::openapi_responses::RepoPath, RevisionQuery), security((), ("bearer" = [])),
    responses((status = 200, description = "the verification status and reports"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/verification")]
pub async fn status(state: web::Data<AppState>, at: super::RepoAt) -> ApiResult<HttpResponse> {
    let super::RepoAt { repo, commit } = at;
    let mut conn = state.db.acquire().await?;
    let row = db::verifications::get(&mut conn, repo.id, &commit)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                code::VERIFICATION_NOT_FOUND,
                format!("revision {commit} has no verification: it holds no .onnx model"),
            )
        })?;
    Ok(HttpResponse::Ok().json(body(&repo, &row)))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunRequest {
    /// `any` (default), `cpu`, or `cuda` (only GPU workers take it).
    #[serde(default)]
    ep: Option<String>,
}

/// Verifies the revision again (writers of the repository).
#[utoipa::path(post, path = "/api/v1/repos/{namespace}/{name}/verification",
    params(super::openapi_responses::RepoPath, RevisionQuery),
    request_body(content = Option<RerunRequest>, description = "Optional: the execution provider to run on"),
    security(("bearer" = [])),
    responses((status = 202, description = "queued; the verification status"), super::openapi_responses::JsonAuthErrors))]
#[post("/api/v1/repos/{namespace}/{name}/verification")]
pub async fn rerun(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<RevisionQuery>,
    request: Option<web::Json<RerunRequest>>,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    let ep = request
        .map(|r| r.into_inner())
        .unwrap_or_default()
        .ep
        .unwrap_or_else(|| "any".into());
    let revision = query.revision.as_deref().unwrap_or("main");
    let (repo, row) = queue_rerun(&state, &caller, &namespace, &name, revision, &ep).await?;
    Ok(HttpResponse::Accepted().json(body(&repo, &row)))
}

/// Queues another verification run of a revision's models: the API's JSON and the web page's
/// form both come here.
pub(crate) async fn queue_rerun(
    state: &AppState,
    caller: &Caller,
    namespace: &str,
    name: &str,
    revision: &str,
    ep: &str,
) -> Result<(db::repos::Repo, db::verifications::VerificationRow), ApiError> {
    if !["any", "cpu", "cuda"].contains(&ep) {
        return Err(ApiError::unprocessable(
            code::INVALID_EP,
            format!("ep `{ep}`: expected any, cpu or cuda"),
        ));
    }
    let mut tx = state.db.begin().await?;
    let repo = super::load_repo(&mut tx, caller, namespace, name, Need::Write).await?;
    let commit = super::commits::resolve_revision(&mut tx, &repo, revision).await?;
    let files = db::commits::files(&mut tx, repo.id, &commit).await?;
    let models = crate::verification::models(&files);
    if models.is_empty() {
        return Err(ApiError::unprocessable(
            code::NO_ONNX_MODELS,
            format!("revision {commit} holds no .onnx model to verify"),
        ));
    }
    db::verifications::enqueue(&mut tx, repo.id, &commit, &models, ep, None).await?;
    let row = db::verifications::get(&mut tx, repo.id, &commit)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("verification row vanished")))?;
    tx.commit().await?;
    Ok((repo, row))
}
