//! Community security review: reports, reviewer triage and discussion, advisories with OSV
//! export. A report is visible only to its reporter, the repository's admins and reviewers;
//! to anyone else it does not exist.

use crate::domain::event::{Event, Target};
use crate::domain::log_entry::LogEntry;
use crate::domain::{self};
use crate::error_code as code;
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::auth::{self, Caller, Need};
use crate::db;
use crate::db::accounts::Role;
use crate::db::repos::Repo;
use crate::db::reviews::{self, Report};
use crate::db::types::ReportStatus;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(file_report)
        .service(repo_reports)
        .service(get_report)
        .service(comment)
        .service(triage)
        .service(queue)
        .service(create_advisory)
        .service(publish_advisory)
        .service(list_advisories)
        .service(get_advisory)
        .service(advisory_osv)
        .service(repo_advisories)
        .service(set_hub_reviewer)
        .service(set_org_reviewer)
        .service(hold)
        .service(attest)
        .service(list_attestations)
        .service(list_rules)
        .service(disclose)
        .service(attach)
        .service(download_attachment)
        .service(put_rules);
}

/// The report and its repository, when the caller may see it (404 otherwise), and whether
/// they review it.
pub(crate) async fn visible(
    conn: &mut PgConnection,
    caller: &Caller,
    id: i64,
) -> Result<(Report, Repo, bool), ApiError> {
    Ok(domain::reviews::visible(conn, caller, id).await?)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    /// malicious-code, backdoor, license-violation, leaked-data, unsafe-format or other.
    pub category: String,
    pub description: String,
    #[serde(default)]
    pub evidence: String,
    /// A branch, tag or commit (default: the repository as a whole at `main`).
    #[serde(default)]
    pub revision: Option<String>,
    /// A file at that revision.
    #[serde(default)]
    pub path: Option<String>,
}

/// Files a report (any signed-in user who can see the repository; audited).
#[utoipa::path(post, path = "/api/v1/repos/{namespace}/{name}/reports",
    params(super::openapi_responses::RepoPath), request_body = NewReport, security(("bearer" = [])),
    responses((status = 201, description = "the report"), super::openapi_responses::JsonAuthErrors))]
#[post("/api/v1/repos/{namespace}/{name}/reports")]
pub async fn file_report(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<NewReport>,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    let report = new_report(&state, &caller, &namespace, &name, &body).await?;
    Ok(super::created(&report))
}

/// Files a report: the API's JSON and the web page's form both come here.
pub(crate) async fn new_report(
    state: &AppState,
    caller: &Caller,
    namespace: &str,
    name: &str,
    body: &NewReport,
) -> Result<Report, ApiError> {
    caller.require_user()?;
    let repo = {
        let mut conn = state.db.acquire().await?;
        super::load_repo(&mut conn, caller, namespace, name, Need::Read).await?
    };
    let new = domain::reviews::NewReport {
        category: &body.category,
        description: &body.description,
        evidence: &body.evidence,
        revision: body.revision.as_deref(),
        path: body.path.as_deref(),
    };
    let days = state.settings.reviews.disclosure_days;
    Ok(domain::reviews::file(&state.db, caller, &repo, new, days).await?)
}

/// The reports on a repository the caller may see (none, for outsiders).
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/reports",
    params(super::openapi_responses::RepoPath), security((), ("bearer" = [])),
    responses((status = 200, description = "the reports the caller may see"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/reports")]
pub async fn repo_reports(
    state: web::Data<AppState>,
    caller: Caller,
    super::ReadRepo(repo): super::ReadRepo,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let mut list = Vec::new();
    if caller.user.is_some() {
        for r in reviews::for_repository(&mut conn, repo.id).await? {
            if ApiError::permitted(visible(&mut conn, &caller, r.id).await)? {
                list.push(r);
            }
        }
    }
    Ok(HttpResponse::Ok().json(json!({"reports": list})))
}

/// A report with its discussion.
#[utoipa::path(get, path = "/api/v1/reports/{id}",
    params(super::openapi_responses::ReportPath), security((), ("bearer" = [])),
    responses((status = 200, description = "the report and its discussion"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/reports/{id}")]
pub async fn get_report(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let mut conn = state.db.acquire().await?;
    let (report, _, _) = visible(&mut conn, &caller, id).await?;
    let mut body =
        serde_json::to_value(&report).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    body["attachments"] = serde_json::to_value(reviews::attachments(&mut conn, id).await?)
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    body["comments"] = serde_json::to_value(reviews::comments(&mut conn, id).await?)
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    pub body: String,
}

/// Adds to a report's discussion (reporter, repository admins, reviewers; audited).
#[utoipa::path(post, path = "/api/v1/reports/{id}/comments",
    params(super::openapi_responses::ReportPath), request_body = CommentBody, security(("bearer" = [])),
    responses((status = 201, description = "the comment was added"), super::openapi_responses::JsonAuthErrors))]
#[post("/api/v1/reports/{id}/comments")]
pub async fn comment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
    body: web::Json<CommentBody>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    domain::reviews::comment(&state.db, &caller, id, &body.body).await?;
    Ok(HttpResponse::Created().json(json!({"report": id})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Triage {
    /// confirm, dismiss or request-info.
    pub action: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Triages a report (reviewers; audited): confirm, dismiss with a reason, or ask for
/// information.
#[utoipa::path(post, path = "/api/v1/reports/{id}/triage",
    params(super::openapi_responses::ReportPath), request_body = Triage, security(("bearer" = [])),
    responses((status = 200, description = "the report's new status"), super::openapi_responses::JsonWriteErrors))]
#[post("/api/v1/reports/{id}/triage")]
pub async fn triage(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
    body: web::Json<Triage>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let reason = body.reason.as_deref();
    let status = domain::reviews::triage(&state.db, &caller, id, &body.action, reason).await?;
    Ok(HttpResponse::Ok().json(json!({"report": id, "status": status})))
}

/// Open reports the caller reviews.
#[utoipa::path(get, path = "/api/v1/reviews/queue", security(("bearer" = [])),
    responses((status = 200, description = "the open reports"), super::openapi_responses::Unauthorized,
              super::openapi_responses::Forbidden, super::openapi_responses::Unavailable))]
#[get("/api/v1/reviews/queue")]
pub async fn queue(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let user = caller.require_user()?;
    let mut conn = state.db.acquire().await?;
    let hub = user.is_admin || reviews::is_hub_reviewer(&mut conn, user.id).await?;
    Ok(HttpResponse::Ok().json(json!({"reports": reviews::queue(&mut conn, user.id, hub).await?})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdvisory {
    /// low, medium, high or critical.
    pub severity: String,
    pub summary: String,
    pub details: String,
    pub remediation: String,
}

/// Turns a confirmed report into an advisory draft with a stable id (reviewers; audited).
/// The affected blobs are the reported file, or every file of the reported revision.
#[utoipa::path(post, path = "/api/v1/reports/{id}/advisory",
    params(super::openapi_responses::ReportPath), request_body = NewAdvisory, security(("bearer" = [])),
    responses((status = 201, description = "the advisory draft's id"), super::openapi_responses::JsonWriteErrors))]
#[post("/api/v1/reports/{id}/advisory")]
pub async fn create_advisory(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
    body: web::Json<NewAdvisory>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let advisory = domain::reviews::draft_advisory(&state.db, &caller, id, body.text()).await?;
    Ok(HttpResponse::Created().json(json!({"id": advisory, "report": id, "published": false})))
}

impl NewAdvisory {
    pub fn text(&self) -> domain::reviews::AdvisoryText<'_> {
        domain::reviews::AdvisoryText {
            severity: &self.severity,
            summary: &self.summary,
            details: &self.details,
            remediation: &self.remediation,
        }
    }
}

/// Publishes an advisory (reviewers; audited; appended to the transparency log). From then on
/// everyone sees it, and every repository holding an affected blob is flagged.
#[utoipa::path(post, path = "/api/v1/advisories/{id}/publish",
    params(super::openapi_responses::AdvisoryPath), security(("bearer" = [])),
    responses((status = 200, description = "published"), super::openapi_responses::AuthConflictErrors))]
#[post("/api/v1/advisories/{id}/publish")]
pub async fn publish_advisory(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    domain::reviews::publish_advisory(&state.db, &caller, &id).await?;
    Ok(HttpResponse::Ok().json(json!({"id": id, "published": true})))
}

/// The advisory's affected locations that `caller` may see: a published advisory is public, but
/// a file in a private repository stays as private as its repository.
async fn readable_affected(
    conn: &mut PgConnection,
    caller: &Caller,
    advisory: &str,
) -> Result<Vec<reviews::Affected>, ApiError> {
    let mut readable: std::collections::HashMap<String, bool> = Default::default();
    let mut shown = Vec::new();
    for f in reviews::affected(conn, advisory).await? {
        let visible = match readable.get(&f.repository) {
            Some(&v) => v,
            None => {
                let v = match f.repository.split_once('/') {
                    Some((ns, name)) => ApiError::permitted(
                        super::load_repo(conn, caller, ns, name, Need::Read).await,
                    )?,
                    None => false,
                };
                readable.insert(f.repository.clone(), v);
                v
            }
        };
        if visible {
            shown.push(f);
        }
    }
    Ok(shown)
}

async fn advisory_json(
    conn: &mut PgConnection,
    caller: &Caller,
    a: &reviews::Advisory,
) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(a).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    v["affected"] = serde_json::to_value(readable_affected(conn, caller, &a.id).await?)
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    Ok(v)
}

/// Published advisories (public).
#[utoipa::path(get, path = "/api/v1/advisories", security((), ("bearer" = [])),
    responses((status = 200, description = "the published advisories"), super::openapi_responses::Unauthorized,
              super::openapi_responses::Unavailable))]
#[get("/api/v1/advisories")]
pub async fn list_advisories(
    state: web::Data<AppState>,
    caller: Caller,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let mut list = Vec::new();
    for a in reviews::published(&mut conn).await? {
        list.push(advisory_json(&mut conn, &caller, &a).await?);
    }
    Ok(HttpResponse::Ok().json(json!({"advisories": list})))
}

/// An advisory: public once published, before that only for those who see its report.
async fn readable_advisory(
    conn: &mut PgConnection,
    caller: &Caller,
    id: &str,
) -> Result<reviews::Advisory, ApiError> {
    Ok(domain::reviews::readable_advisory(conn, caller, id).await?)
}

#[utoipa::path(get, path = "/api/v1/advisories/{id}", summary = "An advisory (public once published)",
    params(super::openapi_responses::AdvisoryPath), security((), ("bearer" = [])),
    responses((status = 200, description = "the advisory with the affected files"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/advisories/{id}")]
pub async fn get_advisory(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let a = readable_advisory(&mut conn, &caller, &path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(advisory_json(&mut conn, &caller, &a).await?))
}

/// The advisory in OSV format (schema 1.6): each affected repository is a `GIT` package named
/// by its URL on this hub, with the affected commits as versions and the blobs' sha256 in
/// `database_specific`.
#[utoipa::path(get, path = "/api/v1/advisories/{id}/osv",
    params(super::openapi_responses::AdvisoryPath), security((), ("bearer" = [])),
    responses((status = 200, description = "the OSV document"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/advisories/{id}/osv")]
pub async fn advisory_osv(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let base = super::hf::endpoint(&req);
    let mut conn = state.db.acquire().await?;
    let a = readable_advisory(&mut conn, &caller, &path.into_inner()).await?;
    let mut by_repo: std::collections::BTreeMap<String, (Vec<String>, Vec<Value>)> =
        Default::default();
    for f in readable_affected(&mut conn, &caller, &a.id).await? {
        let entry = by_repo.entry(f.repository.clone()).or_default();
        if let Some(c) = &f.commit_id
            && !entry.0.contains(c)
        {
            entry.0.push(c.clone());
        }
        entry
            .1
            .push(json!({"path": f.path, "sha256": hex::encode(f.sha256)}));
    }
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let affected: Vec<Value> = by_repo
        .into_iter()
        .map(|(repo, (versions, files))| {
            json!({
                "package": {"ecosystem": "GIT", "name": format!("{base}/{repo}")},
                "versions": versions,
                "database_specific": {"files": files},
            })
        })
        .collect();
    let mut osv = json!({
        "schema_version": "1.6.0",
        "id": a.id,
        "modified": rfc(a.modified_at),
        "summary": a.summary,
        "details": format!("{}\n\nRemediation: {}", a.details, a.remediation),
        "affected": affected,
        "references": [{"type": "ADVISORY", "url": format!("{base}/api/v1/advisories/{}", a.id)}],
        "database_specific": {"severity": a.severity, "remediation": a.remediation},
    });
    if let Some(p) = a.published_at {
        osv["published"] = json!(rfc(p));
    }
    Ok(HttpResponse::Ok().json(osv))
}

/// Published advisories that concern a revision's files, by path: the same bytes reported in
/// any repository flag this one too.
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/advisories",
    params(super::openapi_responses::RepoPath, super::provenance::RevisionQuery), security((), ("bearer" = [])),
    responses((status = 200, description = "the advisories by path"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/advisories")]
pub async fn repo_advisories(
    state: web::Data<AppState>,
    at: super::RepoAt,
) -> ApiResult<HttpResponse> {
    let super::RepoAt { repo, commit } = at;
    let mut conn = state.db.acquire().await?;
    let rows = reviews::advisories_for_commit(&mut conn, repo.id, &commit).await?;
    let files: Vec<Value> = rows
        .into_iter()
        .map(|(path, id)| json!({"path": path, "advisory": id}))
        .collect();
    Ok(HttpResponse::Ok()
        .json(json!({"repository": repo.full_name(), "revision": commit, "files": files})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewerFlag {
    pub reviewer: bool,
}

/// Grants or withdraws the hub-wide reviewer role (hub admins; audited).
#[utoipa::path(put, path = "/api/v1/admin/reviewers/{user}",
    params(("user" = String, Path, description = "The user's name")), request_body = ReviewerFlag,
    security(("bearer" = [])),
    responses((status = 200, description = "the user's reviewer flag"), super::openapi_responses::JsonAuthErrors))]
#[put("/api/v1/admin/reviewers/{user}")]
pub async fn set_hub_reviewer(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<ReviewerFlag>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let name = path.into_inner();
    let mut tx = state.db.begin().await?;
    let user = db::accounts::find_user(&mut tx, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(code::USER_NOT_FOUND, format!("no user `{name}`")))?;
    reviews::set_hub_reviewer(&mut tx, user.id, body.reviewer).await?;
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "reviewer.hub",
            Target::User(&name),
            json!({"reviewer": body.reviewer}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({"user": name, "reviewer": body.reviewer})))
}

/// Grants or withdraws the reviewer role for an organisation's repositories (its admins;
/// audited).
#[utoipa::path(put, path = "/api/v1/orgs/{namespace}/reviewers/{user}",
    params(super::openapi_responses::NamespacePath, ("user" = String, Path, description = "The user's name")),
    request_body = ReviewerFlag, security(("bearer" = [])),
    responses((status = 200, description = "the user's reviewer flag for the organisation"),
              super::openapi_responses::JsonAuthErrors))]
#[put("/api/v1/orgs/{namespace}/reviewers/{user}")]
pub async fn set_org_reviewer(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<ReviewerFlag>,
) -> ApiResult<HttpResponse> {
    caller.require_writer()?;
    let (org, name) = path.into_inner();
    let mut tx = state.db.begin().await?;
    let ns = super::load_namespace(&mut tx, &caller, &org, Role::Admin).await?;
    let user = db::accounts::find_user(&mut tx, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(code::USER_NOT_FOUND, format!("no user `{name}`")))?;
    reviews::set_org_reviewer(&mut tx, ns.id, user.id, body.reviewer).await?;
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "reviewer.org",
            Target::Org(&ns.name),
            json!({"user": name, "reviewer": body.reviewer}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({"org": ns.name, "user": name, "reviewer": body.reviewer})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    pub hold: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Holds the reported file pending review, or lifts the hold (reviewers; audited; logged).
/// While held, its bytes are not served, in any repository.
#[utoipa::path(put, path = "/api/v1/reports/{id}/hold",
    params(super::openapi_responses::ReportPath), request_body = Hold, security(("bearer" = [])),
    responses((status = 200, description = "whether the file is held"), super::openapi_responses::JsonWriteErrors))]
#[put("/api/v1/reports/{id}/hold")]
pub async fn hold(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
    body: web::Json<Hold>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let mut tx = state.db.begin().await?;
    let (report, repo) = domain::reviews::reviewed(&mut tx, &caller, id, "hold files").await?;
    let Some(sha) = &report.sha256 else {
        return Err(ApiError::conflict(
            code::NO_FILE,
            format!("report {id} is not about a file"),
        ));
    };
    let reason = body.hold.then(|| {
        format!(
            "pending review of report {id}{}",
            body.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )
    });
    db::scans::set_hold(&mut tx, sha, reason.as_deref()).await?;
    let (sha256, report) = (hex::encode(sha), Some(id));
    let (action, entry) = if body.hold {
        let entry = LogEntry::Quarantine {
            sha256,
            verdict: None,
            scanner_version: None,
            report,
            reason,
        };
        ("report.hold", entry)
    } else {
        (
            "report.release",
            LogEntry::Release {
                sha256,
                report,
                reason,
            },
        )
    };
    let change = Event::new(action, Target::Repo(&repo), json!({"report": id})).logged(entry);
    domain::event::record(&mut tx, &caller, change).await?;
    if body.hold {
        crate::notify::emit_for_blob(
            &mut tx,
            sha,
            "quarantine",
            json!({"sha256": hex::encode(sha), "reason": "held pending review"}),
            None,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({"report": id, "held": body.hold})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAttestation {
    #[serde(default)]
    pub revision: Option<String>,
    /// What was reviewed (e.g. "all files", "weights.bin loader").
    pub scope: String,
    #[serde(default)]
    pub notes: String,
}

/// The in-toto predicate type of reviewer attestations.
pub const REVIEW_PREDICATE: &str = "https://kaiyuan.dev/review/v1";

/// A reviewer attests "reviewed, no issues found" for one revision; the hub signs it (DSSE,
/// with its attestation key) and keeps it with the reviewer's identity.
#[utoipa::path(post, path = "/api/v1/repos/{namespace}/{name}/review-attestations",
    params(super::openapi_responses::RepoPath), request_body = NewAttestation, security(("bearer" = [])),
    responses((status = 201, description = "the signed attestation"), super::openapi_responses::JsonAuthErrors))]
#[post("/api/v1/repos/{namespace}/{name}/review-attestations")]
pub async fn attest(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<NewAttestation>,
) -> ApiResult<HttpResponse> {
    use kaiyuan_provenance::manifest::{self, GIT_PATHS, Resource};
    let (namespace, name) = path.into_inner();
    let user = caller.require_user()?.clone();
    if body.scope.trim().is_empty() || body.scope.len() > 1000 || body.notes.len() > 20_000 {
        return Err(ApiError::unprocessable(
            code::INVALID_ATTESTATION,
            "a scope of 1 to 1000 characters is required; notes are at most 20000",
        ));
    }
    let mut tx = state.db.begin().await?;
    let (repo, commit) = super::load_revision(
        &mut tx,
        &caller,
        &namespace,
        &name,
        body.revision.as_deref(),
    )
    .await?;
    if !domain::reviews::is_reviewer(&mut tx, &user, &repo).await? {
        return Err(ApiError::forbidden(
            code::REVIEWER_REQUIRED,
            "only reviewers attest reviews",
        ));
    }
    let git: Vec<String> = GIT_PATHS.iter().map(|s| s.to_string()).collect();
    let mut files: Vec<Resource> = Vec::new();
    for f in db::commits::files(&mut tx, repo.id, &commit).await? {
        if !manifest::is_ignored(&f.path, &git)
            && let Ok(digest) = <[u8; 32]>::try_from(&f.sha256[..])
        {
            files.push(Resource {
                name: f.path,
                digest,
            });
        }
    }
    manifest::sort(&mut files);
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": repo.full_name(), "digest": {"sha256": hex::encode(manifest::root_digest(&files))}}],
        "predicateType": REVIEW_PREDICATE,
        "predicate": {
            "result": "reviewed, no issues found",
            "reviewer": {"name": user.name, "id": user.id},
            "repository": repo.full_name(),
            "revision": commit,
            "scope": body.scope.trim(),
            "notes": body.notes,
            "time": time,
        },
    });
    let (key, _) = crate::signatures::attestation_key(&mut tx).await?;
    let bundle = kaiyuan_provenance::bundle::sign(&statement, &key, None);
    let id = reviews::add_attestation(
        &mut tx,
        repo.id,
        &commit,
        user.id,
        body.scope.trim(),
        &body.notes,
        &bundle,
    )
    .await?;
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "review.attest",
            Target::Repo(&repo),
            json!({"attestation": id, "commit": commit}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(json!({"id": id, "revision": commit, "reviewer": user.name, "bundle": serde_json::from_slice::<Value>(&bundle).ok()})))
}

/// Reviewer attestations of exactly this revision (public, like the repository).
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/review-attestations",
    params(super::openapi_responses::RepoPath, super::provenance::RevisionQuery), security((), ("bearer" = [])),
    responses((status = 200, description = "the attestations of the revision"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/review-attestations")]
pub async fn list_attestations(
    state: web::Data<AppState>,
    at: super::RepoAt,
) -> ApiResult<HttpResponse> {
    let super::RepoAt { repo, commit } = at;
    let mut conn = state.db.acquire().await?;
    let list: Vec<Value> = reviews::attestations(&mut conn, repo.id, &commit)
        .await?
        .into_iter()
        .map(|a| json!({"id": a.id, "revision": a.commit_id, "reviewer": a.reviewer, "scope": a.scope, "notes": a.notes, "created_at": a.created_at, "bundle": serde_json::from_slice::<Value>(&a.bundle).ok()}))
        .collect();
    Ok(HttpResponse::Ok()
        .json(json!({"repository": repo.full_name(), "revision": commit, "attestations": list})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRuleSet {
    /// Pickle callables to deny, `module.name` or `module.*`: the whole new set.
    #[serde(default)]
    pub pickle_deny: Vec<String>,
    /// YARA rules (yara-x dialect) matched against blob bytes: the whole new source.
    #[serde(default)]
    pub yara: String,
    #[serde(default)]
    pub note: String,
}

/// The community rule sets, newest first (reviewers).
#[utoipa::path(get, path = "/api/v1/rules", security(("bearer" = [])),
    responses((status = 200, description = "the rule sets"), super::openapi_responses::Unauthorized,
              super::openapi_responses::Forbidden, super::openapi_responses::Unavailable))]
#[get("/api/v1/rules")]
pub async fn list_rules(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let user = caller.require_user()?.clone();
    let mut conn = state.db.acquire().await?;
    if !(user.is_admin || reviews::is_hub_reviewer(&mut conn, user.id).await?) {
        return Err(ApiError::forbidden(
            code::REVIEWER_REQUIRED,
            "only hub reviewers see the community rules",
        ));
    }
    Ok(HttpResponse::Ok().json(json!({"rule_sets": db::rules::history(&mut conn).await?})))
}

/// Publishes a new version of the community rules (hub reviewers; audited). A malformed
/// entry is rejected, naming it; a new version rescans every blob in the background, and new
/// hits open reports.
#[utoipa::path(put, path = "/api/v1/rules", request_body = NewRuleSet, security(("bearer" = [])),
    responses((status = 200, description = "the new rule set version"), super::openapi_responses::JsonErrors,
              super::openapi_responses::Unauthorized, super::openapi_responses::Forbidden,
              super::openapi_responses::Unavailable))]
#[put("/api/v1/rules")]
pub async fn put_rules(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewRuleSet>,
) -> ApiResult<HttpResponse> {
    let user = caller.require_writer()?.clone();
    if let Some(bad) = body
        .pickle_deny
        .iter()
        .find(|e| !kaiyuan_scanner::valid_deny_entry(e))
    {
        return Err(ApiError::unprocessable(
            code::INVALID_RULE,
            format!("`{bad}` is not `module.name` or `module.*` (dotted Python identifiers)"),
        ));
    }
    if body.yara.len() > 1 << 20 {
        return Err(ApiError::unprocessable(
            code::INVALID_RULE,
            "YARA source is limited to 1 MiB",
        ));
    }
    if !body.yara.trim().is_empty() {
        crate::yara::compile(&body.yara).map_err(|e| {
            ApiError::unprocessable(
                code::INVALID_RULE,
                format!("the YARA rules do not compile: {e}"),
            )
        })?;
    }
    if body.pickle_deny.len() > 10_000 {
        return Err(ApiError::unprocessable(
            code::INVALID_RULE,
            "at most 10000 deny entries",
        ));
    }
    let mut tx = state.db.begin().await?;
    if !(user.is_admin || reviews::is_hub_reviewer(&mut tx, user.id).await?) {
        return Err(ApiError::forbidden(
            code::REVIEWER_REQUIRED,
            "only hub reviewers change the community rules",
        ));
    }
    let version = db::rules::add(
        &mut tx,
        &body.pickle_deny,
        &body.yara,
        body.note.trim(),
        user.id,
    )
    .await?;
    let scanner_version = db::rules::current_version(&mut tx).await?;
    let queued = db::scans::enqueue_rescans(&mut tx, &scanner_version, false).await?;
    domain::event::record(
        &mut tx,
        &caller,
        Event::new(
            "rules.set",
            Target::Hub,
            json!({"version": version, "entries": body.pickle_deny.len()}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(
        json!({"version": version, "scanner_version": scanner_version, "rescans_queued": queued}),
    ))
}

/// Makes a report public: reviewers at any time, its reporter once the disclosure deadline
/// has passed without a resolution (audited; logged; watchers are told).
#[utoipa::path(post, path = "/api/v1/reports/{id}/disclose",
    params(super::openapi_responses::ReportPath), security(("bearer" = [])),
    responses((status = 200, description = "the report is public"), super::openapi_responses::AuthConflictErrors))]
#[post("/api/v1/reports/{id}/disclose")]
pub async fn disclose(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let mut tx = state.db.begin().await?;
    let (report, repo, reviewer) = visible(&mut tx, &caller, id).await?;
    let user = caller.require_user()?;
    if report.status == ReportStatus::Published {
        return Err(ApiError::conflict(
            code::REPORT_PUBLISHED,
            format!("report {id} is already public"),
        ));
    }
    if !reviewer {
        if report.reporter_id != user.id {
            return Err(ApiError::forbidden(
                code::REVIEWER_REQUIRED,
                "only the reporter or reviewers disclose a report",
            ));
        }
        if chrono::Utc::now() < report.disclosure_at {
            return Err(ApiError::conflict(
                code::DISCLOSURE_NOT_DUE,
                format!(
                    "report {id} may be disclosed by its reporter from {}",
                    report.disclosure_at.to_rfc3339()
                ),
            ));
        }
        if report.status == ReportStatus::Dismissed {
            return Err(ApiError::conflict(
                code::REPORT_DISMISSED,
                format!("report {id} was dismissed"),
            ));
        }
    }
    reviews::set_status(&mut tx, id, ReportStatus::Published, None).await?;
    let entry = LogEntry::ReportDisclosed {
        report: id,
        sha256: report.sha256.as_ref().map(hex::encode),
    };
    let notice = json!({"report": id, "category": report.category});
    let change = Event::new(
        "report.disclose",
        Target::Repo(&repo),
        json!({"report": id}),
    )
    .logged(entry)
    .notifying("report.disclosed", notice, true);
    domain::event::record(&mut tx, &caller, change).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({"report": id, "status": "published"})))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttachQuery {
    /// The attachment's file name (required; checked once the caller may see the report).
    #[serde(default)]
    name: String,
}

/// Attaches an evidence file to a report: the raw body, streamed and stored like any blob,
/// then scanned (reporter, repository admins, reviewers; audited).
#[utoipa::path(post, path = "/api/v1/reports/{id}/attachments",
    params(super::openapi_responses::ReportPath, AttachQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"), security(("bearer" = [])),
    responses((status = 201, description = "the stored attachment"), super::openapi_responses::AuthErrors,
              super::openapi_responses::TooLarge, super::openapi_responses::Unprocessable))]
#[post("/api/v1/reports/{id}/attachments")]
pub async fn attach(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<i64>,
    query: web::Query<AttachQuery>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (report, repo, _) = {
        let mut conn = state.db.acquire().await?;
        visible(&mut conn, &caller, id).await?
    };
    let name = query.name.trim();
    if name.is_empty()
        || name.len() > 200
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::unprocessable(
            code::INVALID_NAME,
            "an attachment name has 1 to 200 characters and no slashes",
        ));
    }
    let user = caller.require_user()?.clone();
    let length = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let expected = kaiyuan_storage::Expected {
        sha256: None,
        size: length,
        max_size: state.settings.limits.max_file_size,
    };
    let stored = super::uploads::store_stream(&state, None, user.id, expected, body).await?;
    let mut tx = state.db.begin().await?;
    let attachment = reviews::add_attachment(
        &mut tx,
        id,
        name,
        stored.sha256.as_bytes(),
        stored.size as i64,
        user.id,
    )
    .await?;
    let scan = crate::domain::task::Task::ScanBlob(crate::domain::task::ScanBlob {
        sha256: stored.sha256.to_hex(),
        path: name.to_string(),
    });
    db::jobs::enqueue(&mut tx, &scan, auth::request_id(&req).as_deref()).await?;
    let details =
        json!({"report": report.id, "attachment": attachment, "sha256": stored.sha256.to_hex()});
    let event = Event::new("report.attach", Target::Repo(&repo), details);
    domain::event::record(&mut tx, &caller, event).await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(json!({"id": attachment, "name": name, "sha256": stored.sha256.to_hex(), "size": stored.size})))
}

/// Downloads an attachment. Evidence is often malware: a quarantined one is served to
/// reviewers only, with a warning header.
#[utoipa::path(get, path = "/api/v1/reports/{id}/attachments/{attachment}",
    params(super::openapi_responses::ReportPath, ("attachment" = i64, Path, description = "The attachment's id")),
    security((), ("bearer" = [])),
    responses((status = 200, description = "the attachment's bytes", body = Vec<u8>, content_type = "application/octet-stream"),
              super::openapi_responses::ReadErrors, super::openapi_responses::Forbidden))]
#[get("/api/v1/reports/{id}/attachments/{attachment}")]
pub async fn download_attachment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    use futures_util::StreamExt;
    let (id, attachment) = path.into_inner();
    let mut conn = state.db.acquire().await?;
    let (_, _, reviewer) = visible(&mut conn, &caller, id).await?;
    let found = reviews::attachments(&mut conn, id)
        .await?
        .into_iter()
        .find(|a| a.id == attachment);
    let Some(a) = found else {
        return Err(ApiError::not_found(
            code::ATTACHMENT_NOT_FOUND,
            format!("report {id} has no attachment {attachment}"),
        ));
    };
    let scan = db::scans::state(&mut conn, &a.sha256).await?;
    drop(conn);
    let quarantined = scan.as_ref().is_some_and(|s| s.quarantined());
    if quarantined && !reviewer {
        return Err(ApiError::forbidden(
            code::QUARANTINED,
            format!(
                "attachment `{}` is malicious; only reviewers may download it",
                a.name
            ),
        ));
    }
    let bytes: [u8; 32] = *a.sha256.as_bytes();
    let stream = state
        .store
        .read(
            &kaiyuan_storage::Sha256Digest::from_bytes(bytes),
            0..a.size as u64,
        )
        .await?
        .map(|c| c.map_err(ApiError::from));
    let mut builder = HttpResponse::Ok();
    builder
        .content_type("application/octet-stream")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"{}\"", a.name.replace('"', "_")),
        ));
    if quarantined {
        builder.insert_header((
            "X-Kaiyuan-Warning",
            "malicious evidence: handle in a sandbox",
        ));
    }
    Ok(builder.no_chunking(a.size as u64).streaming(stream))
}
