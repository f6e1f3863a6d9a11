//! Operational endpoints: liveness, readiness, metrics and the OpenAPI document.

use actix_web::{HttpResponse, get, web};
use utoipa::OpenApi;

use crate::app::AppState;
use crate::db;
use crate::error::ApiResult;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz)
        .service(readyz)
        .service(metrics)
        .service(openapi_json);
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the database and the object store both answer.
#[utoipa::path(get, path = "/readyz", responses((status = 200), (status = 503)))]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = sqlx::query("SELECT 1")
        .execute(&state.db)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    let store = state
        .store
        .check_reachable()
        .await
        .map_err(|e| e.to_string());
    let status = |r: &Result<(), String>| match r {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("unavailable: {e}"),
    };
    let body = serde_json::json!({"database": status(&database), "store": status(&store)});
    if database.is_ok() && store.is_ok() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain")))]
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let jobs = db::jobs::counts_by_state(&mut conn).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(&jobs)))
}

#[get("/api/v1/openapi.json")]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kaiyuan",
        description = "Open model hub with licence, provenance and safety checks"
    ),
    paths(
        healthz,
        readyz,
        metrics,
        super::accounts::whoami,
        super::accounts::create_user,
        super::accounts::create_token,
        super::accounts::list_tokens,
        super::accounts::revoke_token,
        super::accounts::create_org,
        super::accounts::list_members,
        super::accounts::set_member,
        super::accounts::remove_member,
        super::accounts::list_jobs,
        super::accounts::run_gc,
        super::repos::create_repo,
        super::repos::search_repos,
        super::repos::get_repo,
        super::repos::update_repo,
        super::repos::delete_repo,
        super::repos::repo_audit,
        super::uploads::upload_blob,
        super::commits::create_commit,
        super::commits::history,
        super::commits::list_files,
        super::commits::scan_results,
        super::accounts::release_blob,
        super::commits::list_refs,
        super::commits::put_ref,
        super::commits::delete_ref,
        super::files::resolve,
        super::access::request_access,
        super::access::list_requests,
        super::access::decide,
        super::licenses::repo_license,
        super::licenses::sbom,
        super::licenses::compliance,
        super::licenses::accept_license,
        super::licenses::list_acceptances,
        super::licenses::get_policy,
        super::licenses::put_policy,
        super::licenses::delete_policy,
        super::licenses::namespace_report,
        super::provenance::add_key,
        super::provenance::list_keys,
        super::provenance::revoke_key,
        super::provenance::signature,
        super::verification::status,
        super::verification::rerun,
        super::provenance::attestation,
        super::provenance::provenance_record,
        super::provenance::rotate_attestation_key,
        super::tlog::checkpoint,
        super::audit::namespace_audit,
        super::tlog::entries,
        super::tlog::inclusion,
        super::tlog::consistency,
    ),
    components(schemas(crate::error::ErrorBody))
)]
pub struct ApiDoc;
