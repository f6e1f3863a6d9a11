//! Licence compliance over HTTP: a revision's licence report, decisions for a policy and a
//! use context, namespace policies, and the auditor's view of a namespace.

use crate::domain::{
    self,
    event::{Event, Target},
};
use crate::error_code as code;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use kaiyuan_license::{Policy, UseContext};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Caller, Need};
use crate::db;
use crate::db::accounts::Role;
use crate::error::{ApiError, ApiResult};
use crate::licensing;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(repo_license)
        .service(sbom)
        .service(compliance)
        .service(accept_license)
        .service(list_acceptances)
        .service(get_policy)
        .service(put_policy)
        .service(delete_policy)
        .service(namespace_report);
}

/// Loads a repository the caller may read, resolves the revision (default `main`) and
/// evaluates it for commercial use under the owner's policy.
async fn owner_report(
    conn: &mut sqlx::PgConnection,
    state: &AppState,
    at: &super::RepoAt,
) -> Result<kaiyuan_license::Report, ApiError> {
    let (policy, _) = licensing::namespace_policy(conn, at.repo.namespace_id).await?;
    let context = UseContext::default();
    let store = &state.store;
    let report =
        licensing::evaluate_commit(conn, store, &at.repo, &at.commit, policy.as_ref(), &context)
            .await?;
    Ok(report)
}

/// Declared, normalised, detected and effective licence of a revision, with its terms,
/// lineage and findings, evaluated for commercial use against the owner's policy.
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/license",
    params(super::openapi_responses::RepoPath, super::provenance::RevisionQuery), security((), ("bearer" = [])),
    responses((status = 200, description = "the licence report"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/license")]
pub async fn repo_license(
    state: web::Data<AppState>,
    at: super::RepoAt,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let report = owner_report(&mut conn, &state, &at).await?;
    let super::RepoAt { repo, commit } = at;
    let stored = db::licenses::evaluation(&mut conn, repo.id, &commit).await?;
    let mut body =
        serde_json::to_value(&report).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    body["repository"] = json!(repo.full_name());
    body["revision"] = json!(commit);
    body["stored_evaluation"] = match stored {
        Some(s) => {
            json!({"decision": s.decision, "evaluated_at": s.evaluated_at, "catalog_version": s.catalog_version, "policy_version": s.policy_version})
        }
        None => json!(null),
    };
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplianceRequest {
    /// Branch, tag or commit id (default `main`).
    #[serde(default)]
    pub revision: Option<String>,
    /// A declared licence to evaluate instead of the card's (HF tag, `other:<name>` or SPDX
    /// expression): "what if we published it under ...".
    #[serde(default)]
    pub declared: Option<String>,
    /// A policy document; without one, the owner's policy (if any) applies.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub policy: Option<Policy>,
    /// `purpose` (commercial, production, research, evaluation, personal), `mau`,
    /// `mau_history` ({"YYYY-MM": n}), `region`, `domains`, `integrated_end_user`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: UseContext,
}

/// Decides whether a use of a revision is allowed: `allow`, `allow_with_obligations`,
/// `flag_review` or `deny`, with every reason and obligation.
#[utoipa::path(post, path = "/api/v1/repos/{namespace}/{name}/compliance",
    params(super::openapi_responses::RepoPath), request_body = ComplianceRequest, security((), ("bearer" = [])),
    responses((status = 200, description = "the decision with its reasons and obligations"),
              super::openapi_responses::JsonErrors, super::openapi_responses::ReadErrors))]
#[post("/api/v1/repos/{namespace}/{name}/compliance")]
pub async fn compliance(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<ComplianceRequest>,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    let request = body.into_inner();
    request
        .context
        .validate()
        .map_err(|e| ApiError::unprocessable(code::INVALID_CONTEXT, e))?;
    let policy = match request.policy {
        Some(p) => Some(
            p.validated()
                .map_err(|e| ApiError::unprocessable(code::INVALID_POLICY, e))?,
        ),
        None => None,
    };
    let mut conn = state.db.acquire().await?;
    let repo = super::load_repo(&mut conn, &caller, &namespace, &name, Need::Read).await?;
    let revision = request.revision.unwrap_or_else(|| "main".into());
    let commit = super::commits::resolve_revision(&mut conn, &repo, &revision).await?;
    let policy = match policy {
        Some(p) => Some(p),
        None => {
            licensing::namespace_policy(&mut conn, repo.namespace_id)
                .await?
                .0
        }
    };
    let report = licensing::evaluate_declared(
        &mut conn,
        &state.store,
        &repo,
        &commit,
        request.declared.as_deref(),
        policy.as_ref(),
        &request.context,
    )
    .await?;
    let mut body =
        serde_json::to_value(&report).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    body["repository"] = json!(repo.full_name());
    body["revision"] = json!(commit);
    Ok(HttpResponse::Ok().json(body))
}

/// A namespace's licence policy (members).
#[utoipa::path(get, path = "/api/v1/orgs/{namespace}/license-policy",
    params(super::openapi_responses::NamespacePath), security(("bearer" = [])),
    responses((status = 200, description = "the policy with its version"), super::openapi_responses::AuthErrors))]
#[get("/api/v1/orgs/{namespace}/license-policy")]
pub async fn get_policy(
    state: web::Data<AppState>,
    super::NamespaceMember(ns): super::NamespaceMember,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    match db::licenses::policy(&mut conn, ns.id).await? {
        Some(row) => Ok(HttpResponse::Ok().json(json!({"namespace": ns.name, "version": row.version, "updated_at": row.updated_at, "policy": row.document}))),
        None => Err(ApiError::not_found(code::POLICY_NOT_FOUND, format!("`{}` has no licence policy", ns.name))),
    }
}

/// Sets a namespace's licence policy (namespace admins; audited). Every repository of the
/// namespace is re-evaluated in the background.
#[utoipa::path(put, path = "/api/v1/orgs/{namespace}/license-policy",
    params(super::openapi_responses::NamespacePath),
    request_body(content = Object, description = "A licence policy document (see docs/LICENSES.md)"),
    security(("bearer" = [])),
    responses((status = 200, description = "the stored policy with its new version"),
              super::openapi_responses::JsonAuthErrors))]
#[put("/api/v1/orgs/{namespace}/license-policy")]
pub async fn put_policy(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<Policy>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    let (namespace, version, document, queued) =
        set_policy(&state, &caller, &name, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({"namespace": namespace, "version": version, "policy": document, "reevaluations_queued": queued})))
}

/// Validates and stores a namespace's policy (its admins), queues re-evaluation of every head
/// and audits it: the API's PUT and the web UI's policy editor. Returns the namespace's name,
/// the new version, the stored document and how many re-evaluations were queued.
pub async fn set_policy(
    state: &AppState,
    caller: &Caller,
    name: &str,
    policy: Policy,
) -> Result<(String, i32, serde_json::Value, u64), ApiError> {
    let user = caller.require_writer()?.clone();
    let policy = policy
        .validated()
        .map_err(|e| ApiError::unprocessable(code::INVALID_POLICY, e))?;
    let document =
        serde_json::to_value(&policy).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let mut tx = state.db.begin().await?;
    let ns = super::load_namespace(&mut tx, caller, name, Role::Admin).await?;
    let version = db::licenses::set_policy(&mut tx, ns.id, &document, user.id).await?;
    let queued = db::licenses::enqueue_heads(&mut tx, Some(ns.id)).await?;
    domain::event::record(
        &mut tx,
        caller,
        Event::new(
            "license.policy.set",
            Target::Namespace(&ns.name),
            json!({"version": version, "policy": document}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((ns.name, version, document, queued))
}

/// Removes a namespace's licence policy (namespace admins; audited).
#[utoipa::path(delete, path = "/api/v1/orgs/{namespace}/license-policy",
    params(super::openapi_responses::NamespacePath), security(("bearer" = [])),
    responses((status = 204, description = "removed"), super::openapi_responses::AuthErrors))]
#[delete("/api/v1/orgs/{namespace}/license-policy")]
pub async fn delete_policy(
    state: web::Data<AppState>,
    caller: Caller,
    super::NamespaceAdmin(ns): super::NamespaceAdmin,
) -> ApiResult<HttpResponse> {
    let mut tx = state.db.begin().await?;
    if !db::licenses::delete_policy(&mut tx, ns.id).await? {
        return Err(ApiError::not_found(
            code::POLICY_NOT_FOUND,
            format!("`{}` has no licence policy", ns.name),
        ));
    }
    db::licenses::enqueue_heads(&mut tx, Some(ns.id)).await?;
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "license.policy.delete",
            Target::Namespace(&ns.name),
            json!({}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Only this decision: allow, allow_with_obligations, flag_review, deny or pending.
    decision: Option<String>,
    /// Repositories per page, 1 to 1000 (default 1000).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

const REPORT_PAGE: i64 = 1000;

/// Every repository of a namespace with the stored decision for the head of `main` (members),
/// by name, a page of `limit` at a time (`next_cursor` until the last page):
/// "show me every model in our org whose licence we cannot honour" is `?decision=deny`.
#[utoipa::path(get, path = "/api/v1/orgs/{namespace}/license-report",
    params(super::openapi_responses::NamespacePath, ReportQuery), security(("bearer" = [])),
    responses((status = 200, description = "the namespace's repositories with their decisions, and `next_cursor`"),
              super::openapi_responses::AuthErrors))]
#[get("/api/v1/orgs/{namespace}/license-report")]
pub async fn namespace_report(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ReportQuery>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    let mut conn = state.db.acquire().await?;
    let ns = super::load_namespace(&mut conn, &caller, &name, Role::Read).await?;
    let decision = query.decision.as_deref();
    if let Some(d) = decision
        && ![
            "allow",
            "allow_with_obligations",
            "flag_review",
            "deny",
            "pending",
        ]
        .contains(&d)
    {
        return Err(ApiError::bad_request(
            code::INVALID_QUERY,
            format!(
                "decision `{d}`: expected allow, allow_with_obligations, flag_review, deny or pending"
            ),
        ));
    }
    let limit = query.limit.unwrap_or(REPORT_PAGE);
    if !(1..=REPORT_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            code::INVALID_LIMIT,
            format!("limit must be between 1 and {REPORT_PAGE}"),
        ));
    }
    let page = db::licenses::ReportPage {
        namespace_id: ns.id,
        after: query.cursor.as_deref().filter(|c| !c.is_empty()),
        decision,
        limit: limit + 1,
    };
    let mut rows = db::licenses::namespace_report(&mut conn, &page).await?;
    let next_cursor = (rows.len() as i64 > limit).then(|| {
        rows.truncate(limit as usize);
        let last = rows
            .last()
            .map(|r| r.repository.as_str())
            .unwrap_or_default();
        last.rsplit_once('/').map_or(last, |(_, n)| n).to_string()
    });
    Ok(HttpResponse::Ok()
        .json(json!({"namespace": ns.name, "repositories": rows, "next_cursor": next_cursor})))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SbomQuery {
    /// The branch, tag or commit (default `main`); `RepoAt` reads it, it is here for the
    /// OpenAPI document.
    #[allow(dead_code)]
    revision: Option<String>,
    format: Option<String>,
}

/// A bill of materials for a revision: `format=spdx3` (SPDX 3.0.1 JSON-LD with the AI and
/// Dataset profiles, the default) or `format=cyclonedx` (CycloneDX 1.6 ML-BOM).
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/sbom",
    params(super::openapi_responses::RepoPath, SbomQuery), security((), ("bearer" = [])),
    responses((status = 200, description = "the bill of materials",
               content((Object = "application/spdx+json"), (Object = "application/vnd.cyclonedx+json"))),
              super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/sbom")]
pub async fn sbom(
    state: web::Data<AppState>,
    req: HttpRequest,
    at: super::RepoAt,
    query: web::Query<SbomQuery>,
) -> ApiResult<HttpResponse> {
    let format = query.format.clone().unwrap_or_else(|| "spdx3".into());
    if format != "spdx3" && format != "cyclonedx" {
        return Err(ApiError::bad_request(
            code::INVALID_QUERY,
            format!("format `{format}`: expected spdx3 or cyclonedx"),
        ));
    }
    let mut conn = state.db.acquire().await?;
    let report = owner_report(&mut conn, &state, &at).await?;
    let super::RepoAt { repo, commit } = at;
    let files: Vec<kaiyuan_license::export::ExportFile> =
        db::commits::files(&mut conn, repo.id, &commit)
            .await?
            .into_iter()
            .map(|f| kaiyuan_license::export::ExportFile {
                path: f.path,
                sha256: hex::encode(f.sha256),
                size: f.size as u64,
            })
            .collect();
    let created = db::commits::get(&mut conn, repo.id, &commit)
        .await?
        .map(|c| c.created_at)
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let base_url = super::hf::endpoint(&req);
    let input = kaiyuan_license::export::ExportInput {
        base_url: &base_url,
        repository: &repo.full_name(),
        commit: &commit,
        created: &created,
        report: &report,
        files: &files,
        tool_version: env!("CARGO_PKG_VERSION"),
    };
    let (doc, content_type) = if format == "spdx3" {
        (
            kaiyuan_license::export::spdx3(&input),
            "application/spdx+json",
        )
    } else {
        (
            kaiyuan_license::export::cyclonedx(&input),
            "application/vnd.cyclonedx+json; version=1.6",
        )
    };
    Ok(HttpResponse::Ok().content_type(content_type).json(doc))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptanceRequest {
    /// The licence id the download error named.
    pub license: String,
    /// Its version (the licence's release date).
    pub version: String,
}

/// Accepts a licence that the repository's files require before download (audited).
#[utoipa::path(post, path = "/api/v1/repos/{namespace}/{name}/license-acceptance",
    params(super::openapi_responses::RepoPath), request_body = AcceptanceRequest, security(("bearer" = [])),
    responses((status = 200, description = "the accepted licence and version"), super::openapi_responses::JsonWriteErrors))]
#[post("/api/v1/repos/{namespace}/{name}/license-acceptance")]
pub async fn accept_license(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<AcceptanceRequest>,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    let accepted = accept(&state, &caller, &namespace, &name, &body).await?;
    Ok(HttpResponse::Ok().json(accepted))
}

/// Records the caller's acceptance of a licence the repository requires: the API's JSON and the
/// web page's form both come here. Returns what the API answers.
pub(crate) async fn accept(
    state: &AppState,
    caller: &Caller,
    namespace: &str,
    name: &str,
    body: &AcceptanceRequest,
) -> Result<serde_json::Value, ApiError> {
    let user = caller.require_user()?.clone();
    let mut conn = state.db.acquire().await?;
    let repo = super::load_repo(&mut conn, caller, namespace, name, Need::Read).await?;
    let head = super::commits::resolve_revision(&mut conn, &repo, "main").await?;
    let required = licensing::required_acceptances(&mut conn, &state.store, &repo, &head).await?;
    let Some(r) = required.iter().find(|r| r.license == body.license) else {
        let needed: Vec<String> = required
            .iter()
            .map(|r| format!("{} version {}", r.license, r.version))
            .collect();
        return Err(ApiError::conflict(
            code::LICENSE_NOT_REQUIRED,
            format!(
                "`{}` does not require accepting {}; it requires {}",
                repo.full_name(),
                body.license,
                if needed.is_empty() {
                    "no acceptance".into()
                } else {
                    needed.join(", ")
                }
            ),
        ));
    };
    if r.version != body.version {
        return Err(ApiError::conflict(
            code::LICENSE_VERSION_MISMATCH,
            format!(
                "the current version of the {} is {}, not {}: read that version and accept it",
                r.name, r.version, body.version
            ),
        ));
    }
    drop(conn);
    let mut tx = state.db.begin().await?;
    let at = db::licenses::accept(&mut tx, repo.id, user.id, &r.license, &r.version).await?;
    domain::event::record(
        &mut tx,
        caller,
        Event::new(
            "license.accept",
            Target::Repo(&repo),
            json!({"license": r.license, "version": r.version}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(
        json!({"repository": repo.full_name(), "license": r.license, "version": r.version, "accepted_at": at}),
    )
}

/// Who accepted which licence version and when (repository admins), for audits.
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/license-acceptances",
    params(super::openapi_responses::RepoPath), security(("bearer" = [])),
    responses((status = 200, description = "who accepted which licence version, and when"),
              super::openapi_responses::AuthErrors))]
#[get("/api/v1/repos/{namespace}/{name}/license-acceptances")]
pub async fn list_acceptances(
    state: web::Data<AppState>,
    super::AdminRepo(repo): super::AdminRepo,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let rows = db::licenses::acceptances(&mut conn, repo.id).await?;
    Ok(HttpResponse::Ok().json(json!({"repository": repo.full_name(), "acceptances": rows})))
}
