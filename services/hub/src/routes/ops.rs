//! Operational endpoints: liveness, readiness, metrics and the OpenAPI document.

use actix_web::{HttpResponse, get, web};
use utoipa::OpenApi;

use crate::db;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz)
        .service(readyz)
        .service(metrics)
        .service(openapi_json);
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "alive"), super::openapi_responses::Unavailable))]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the database and the object store both answer.
#[utoipa::path(get, path = "/readyz",
    responses((status = 200, description = "the database and the object store answer"),
              (status = 503, description = "the database or the object store does not answer; the body says which")))]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    // A probe must answer fast while the database is down, not after the pool's acquire timeout.
    const PROBE: std::time::Duration = std::time::Duration::from_secs(2);
    let database = match tokio::time::timeout(PROBE, db::ping(&state.db)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", PROBE.as_secs())),
    };
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
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
              super::openapi_responses::Unavailable))]
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let jobs = db::jobs::counts_by_state(&mut conn).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(&jobs)))
}

#[utoipa::path(get, path = "/api/v1/openapi.json", summary = "This OpenAPI 3.1 document",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object),
              super::openapi_responses::Unavailable))]
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
        super::mirror::mirror_status,
        super::mirror::prefetch,
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
        super::tlog::sealed_entries,
        super::tiles::hash_tile,
        super::tiles::entry_bundle,
        openapi_json,
        super::reviews::file_report,
        super::reviews::repo_reports,
        super::reviews::get_report,
        super::reviews::comment,
        super::reviews::triage,
        super::reviews::queue,
        super::reviews::create_advisory,
        super::reviews::publish_advisory,
        super::reviews::list_advisories,
        super::reviews::get_advisory,
        super::reviews::advisory_osv,
        super::reviews::repo_advisories,
        super::reviews::set_hub_reviewer,
        super::reviews::set_org_reviewer,
        super::reviews::hold,
        super::reviews::attest,
        super::reviews::list_attestations,
        super::reviews::list_rules,
        super::reviews::put_rules,
        super::reviews::disclose,
        super::reviews::attach,
        super::reviews::download_attachment,
        super::notifications::watch,
        super::notifications::unwatch,
        super::notifications::list,
        super::notifications::read,
        super::notifications::add_webhook,
        super::notifications::list_webhooks,
        super::notifications::delete_webhook,
        super::notifications::deliveries,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&BearerAuth, &MiddlewareResponses)
)]
pub struct ApiDoc;

/// Answers that come from the middleware, not the handler, and so can come from any operation:
/// 401 for a token that is not valid (every route but the probes reads it), 403 for a
/// read-scoped token on a request that changes state, 408 for a body that arrives too slowly.
struct MiddlewareResponses;

impl utoipa::Modify for MiddlewareResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let reads_caller = !matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics");
            let operations = [
                (false, item.get.as_mut()),
                (true, item.post.as_mut()),
                (true, item.put.as_mut()),
                (true, item.patch.as_mut()),
                (true, item.delete.as_mut()),
            ];
            for (changes, operation) in operations {
                let Some(operation) = operation else { continue };
                let mut statuses = vec![];
                if reads_caller {
                    statuses.push(401);
                }
                if changes {
                    statuses.push(403);
                }
                if operation.request_body.is_some() {
                    statuses.push(408);
                }
                for status in statuses {
                    let (key, response) = super::openapi_responses::error_response(status);
                    operation.responses.responses.entry(key).or_insert(response);
                }
            }
        }
    }
}

/// The `bearer` security scheme: `Authorization: Bearer <token>` with a kaiyuan API token.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A kaiyuan API token (`POST /api/v1/tokens`); read-scoped tokens cannot make changes",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route source file, read at compile time so the test sees what is registered.
    const ROUTE_SOURCES: &[(&str, &str)] = &[
        ("access.rs", include_str!("access.rs")),
        ("accounts.rs", include_str!("accounts.rs")),
        ("audit.rs", include_str!("audit.rs")),
        ("commits.rs", include_str!("commits.rs")),
        ("files.rs", include_str!("files.rs")),
        ("hf.rs", include_str!("hf.rs")),
        ("hf_upload.rs", include_str!("hf_upload.rs")),
        ("licenses.rs", include_str!("licenses.rs")),
        ("mirror.rs", include_str!("mirror.rs")),
        ("notifications.rs", include_str!("notifications.rs")),
        ("ops.rs", include_str!("ops.rs")),
        ("provenance.rs", include_str!("provenance.rs")),
        ("repos.rs", include_str!("repos.rs")),
        ("reviews.rs", include_str!("reviews.rs")),
        ("tiles.rs", include_str!("tiles.rs")),
        ("tlog.rs", include_str!("tlog.rs")),
        ("uploads.rs", include_str!("uploads.rs")),
        ("verification.rs", include_str!("verification.rs")),
    ];

    /// `(file, method, path)` of every route attribute (`#[get("...")]`, `#[post("...")]`, ...),
    /// with actix's `{name:regex}` segments reduced to `{name}`.
    fn registered_routes() -> Vec<(&'static str, &'static str, String)> {
        let mut routes = Vec::new();
        for (file, source) in ROUTE_SOURCES {
            for line in source.lines().map(str::trim_start) {
                for method in ["get", "post", "put", "delete", "patch", "head"] {
                    let Some(rest) = line
                        .strip_prefix("#[")
                        .and_then(|l| l.strip_prefix(method))
                        .and_then(|l| l.strip_prefix("(\""))
                    else {
                        continue;
                    };
                    let Some((path, _)) = rest.split_once('"') else {
                        continue;
                    };
                    routes.push((*file, method, strip_patterns(path)));
                }
            }
        }
        routes
    }

    fn strip_patterns(path: &str) -> String {
        let mut out = String::new();
        let mut in_pattern = false;
        let mut depth = 0;
        for c in path.chars() {
            match c {
                '{' => {
                    depth += 1;
                    if depth == 1 {
                        out.push(c);
                    }
                }
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        in_pattern = false;
                        out.push(c);
                    }
                }
                ':' if depth == 1 => in_pattern = true,
                _ if in_pattern => {}
                _ => out.push(c),
            }
        }
        out
    }

    /// The `{x}` segments of a templated path.
    fn template_params(path: &str) -> Vec<String> {
        path.split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_string()))
            .collect()
    }

    fn document() -> serde_json::Value {
        serde_json::to_value(ApiDoc::openapi()).expect("the document serialises")
    }

    #[test]
    fn the_route_scan_finds_routes() {
        let routes = registered_routes();
        assert!(routes.len() > 80, "found only {} routes", routes.len());
        assert!(routes.contains(&("reviews.rs", "post", "/api/v1/reports/{id}/comments".into())));
        assert_eq!(
            strip_patterns("/a/{dir:.*}/{kind:xet-(write|read)-token}/{r}"),
            "/a/{dir}/{kind}/{r}"
        );
    }

    #[test]
    fn every_api_v1_route_is_documented() {
        let doc = document();
        let missing: Vec<String> = registered_routes()
            .into_iter()
            .filter(|(_, _, path)| path.starts_with("/api/v1/"))
            .filter(|(_, method, path)| doc["paths"][path.as_str()].get(*method).is_none())
            .map(|(file, method, path)| format!("{file}: {} {path}", method.to_uppercase()))
            .collect();
        assert!(
            missing.is_empty(),
            "routes missing from ApiDoc (add #[utoipa::path] and list them in paths(...)):\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn every_documented_operation_is_a_registered_route() {
        let routes = registered_routes();
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if method == "parameters" {
                    continue;
                }
                // `resolve` is registered with `#[route(..., method = "GET", method = "HEAD")]`.
                if path.starts_with("/{namespace}/{name}/resolve/") {
                    continue;
                }
                assert!(
                    routes.iter().any(|(_, m, p)| m == method && p == path),
                    "{} {path} is documented but no handler has that route",
                    method.to_uppercase()
                );
            }
        }
    }

    #[test]
    fn every_path_parameter_is_declared() {
        let doc = document();
        let mut problems = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let templated = template_params(path);
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .filter_map(|p| p["name"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                for name in &templated {
                    if !declared.contains(&name.as_str()) {
                        problems.push(format!(
                            "{} {path}: `{name}` is not declared",
                            method.to_uppercase()
                        ));
                    }
                }
                for name in &declared {
                    if !templated.iter().any(|t| t == name) {
                        problems.push(format!(
                            "{} {path}: path parameter `{name}` is not in the path",
                            method.to_uppercase()
                        ));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn every_operation_documents_its_errors_and_the_bearer_scheme_exists() {
        let doc = document();
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let mut problems = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let responses = op["responses"].as_object().unwrap();
                if !responses.contains_key("503") {
                    problems.push(format!("{} {path}: no 503", method.to_uppercase()));
                }
                let json_body = op["requestBody"]["content"]
                    .get("application/json")
                    .is_some();
                for status in ["415", "422"] {
                    if json_body && !responses.contains_key(status) {
                        problems.push(format!(
                            "{} {path}: JSON body but no {status}",
                            method.to_uppercase()
                        ));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
