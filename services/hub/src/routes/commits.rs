//! Commits, history, file listings and refs.
//!
//! One request makes one commit, either as JSON (files referenced by the sha256 of an earlier
//! upload, or small files inline) or as `multipart/form-data` whose first part, `commit`, is the
//! same JSON and whose `file` parts (filename = repository path) stream straight into the store.
//! The commit becomes visible in one transaction, after every blob is durably stored.

use std::collections::HashMap;

use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use kaiyuan_storage::{Expected, Sha256Digest};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;

use crate::auth::{Caller, Need};
use crate::db;
use crate::db::repos::Repo;
use crate::db::types::RefKind;
use crate::domain::commits::{self, PendingChange, Put};
use crate::domain::{self, scan};
use crate::error::{ApiError, ApiResult};
use crate::error_code as code;
use crate::names::RefName;
use crate::paths::RepoPath;
use crate::state::AppState;
use crate::tree::Entry;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create_commit)
        .service(history)
        .service(list_files)
        .service(scan_results)
        .service(list_refs)
        .service(put_ref)
        .service(delete_ref);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    pub message: String,
    /// The commit the client based its change on; the commit is refused if the branch moved.
    pub parent: Option<String>,
    #[serde(default)]
    pub operations: Vec<Operation>,
}

#[derive(Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Operation {
    /// Add or replace a file: by `sha256` (+ `size`) of an upload, or inline with `content_base64`.
    /// In a multipart commit, `sha256`/`size` declare what the `file` part of that path must be.
    Put {
        path: String,
        sha256: Option<String>,
        size: Option<u64>,
        content_base64: Option<String>,
    },
    /// Delete a file, or every file in a folder.
    Delete { path: String },
    /// Copy a file of the branch head to a new path (no bytes travel).
    Copy { from: String, path: String },
}

#[derive(Serialize, ToSchema)]
pub struct CommitInfo {
    pub id: String,
    pub parent: Option<String>,
    pub author: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub file_count: i32,
    pub total_size: i64,
}

impl From<db::commits::CommitRow> for CommitInfo {
    fn from(c: db::commits::CommitRow) -> Self {
        Self {
            id: c.id.into(),
            parent: c.parent_id.map(String::from),
            author: c.author_name,
            message: c.message,
            created_at: c.created_at,
            file_count: c.file_count,
            total_size: c.total_size,
        }
    }
}

fn invalid_path(e: crate::paths::PathError) -> ApiError {
    ApiError::unprocessable(code::INVALID_PATH, e.to_string())
}

pub(super) fn parse_branch(branch: &str) -> Result<RefName, ApiError> {
    RefName::parse(branch).map_err(|e| ApiError::unprocessable(code::INVALID_REF, e.to_string()))
}

/// Parses and checks a commit request's operations; inline contents are stored now.
async fn prepare(
    state: &AppState,
    repo: &Repo,
    user_id: i64,
    request: &CommitRequest,
    multipart_paths: &mut HashMap<String, (Option<Sha256Digest>, Option<u64>)>,
    multipart: bool,
) -> Result<Vec<PendingChange>, ApiError> {
    let limits = &state.settings.limits;
    if request.message.trim().is_empty() || request.message.len() > 65_536 {
        return Err(ApiError::unprocessable(
            code::INVALID_MESSAGE,
            "give the commit a message of 1 to 65536 bytes",
        ));
    }
    if request.operations.len() > limits.max_files_per_commit {
        return Err(ApiError::too_large(
            code::TOO_MANY_OPERATIONS,
            format!(
                "a commit may have at most {} operations",
                limits.max_files_per_commit
            ),
        ));
    }
    let mut changes = Vec::with_capacity(request.operations.len());
    for op in &request.operations {
        let change = match op {
            Operation::Put {
                path,
                sha256,
                size,
                content_base64,
            } => {
                let path = RepoPath::parse(path).map_err(invalid_path)?;
                let digest = sha256
                    .as_deref()
                    .map(super::uploads::parse_digest)
                    .transpose()?;
                match (content_base64, digest) {
                    (Some(_), Some(_)) => {
                        return Err(ApiError::unprocessable(
                            code::AMBIGUOUS_PUT,
                            format!("`{path}`: give either `sha256` or `content_base64`, not both"),
                        ));
                    }
                    (Some(content), None) => {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(content)
                            .map_err(|e| {
                                ApiError::unprocessable(
                                    code::INVALID_BASE64,
                                    format!("`{path}`: content_base64 is not base64: {e}"),
                                )
                            })?;
                        let expected = Expected {
                            sha256: None,
                            size: *size,
                            max_size: limits.max_file_size,
                        };
                        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
                            Bytes::from(bytes),
                        )]);
                        let stored =
                            super::uploads::store_stream(state, repo.id, user_id, expected, body)
                                .await?;
                        Put::Stored {
                            path,
                            entry: Entry {
                                sha256: stored.sha256,
                                size: stored.size as i64,
                            },
                        }
                    }
                    (None, digest)
                        if multipart
                            && !multipart_paths.contains_key(path.as_str())
                            && digest.is_none() =>
                    {
                        // Announced here, bytes follow in a `file` part.
                        multipart_paths.insert(path.as_str().to_string(), (None, *size));
                        continue;
                    }
                    (None, Some(sha256)) if multipart => {
                        // Either a declaration for a following `file` part or a reference.
                        multipart_paths.insert(path.as_str().to_string(), (Some(sha256), *size));
                        Put::ByDigest {
                            path,
                            sha256,
                            size: *size,
                        }
                    }
                    (None, Some(sha256)) => Put::ByDigest {
                        path,
                        sha256,
                        size: *size,
                    },
                    (None, None) => {
                        return Err(ApiError::unprocessable(
                            code::MISSING_CONTENT,
                            format!(
                                "`{path}`: a put needs `sha256` of an upload or `content_base64`"
                            ),
                        ));
                    }
                }
                .into()
            }
            Operation::Delete { path } => {
                PendingChange::Delete(RepoPath::parse(path).map_err(invalid_path)?)
            }
            Operation::Copy { from, path } => PendingChange::Copy {
                from: RepoPath::parse(from).map_err(invalid_path)?,
                to: RepoPath::parse(path).map_err(invalid_path)?,
            },
        };
        changes.push(change);
    }
    Ok(changes)
}

/// Applies checked changes on top of the branch head and writes the commit.
pub(super) async fn commit_changes(
    state: &AppState,
    repo: &Repo,
    caller: &Caller,
    branch: &RefName,
    request: &CommitRequest,
    changes: Vec<PendingChange>,
) -> Result<CommitInfo, ApiError> {
    let user = caller.require_writer()?;
    let proposal = commits::Proposal {
        branch,
        parent: request.parent.as_deref(),
        message: &request.message,
        changes,
        max_files: state.settings.limits.max_files_per_commit,
    };
    let author = (user.id, user.name.as_str());
    let row = commits::commit(&state.db, &state.store, caller, author, repo, proposal).await?;
    Ok(CommitInfo::from(row))
}

/// Creates one commit on a branch: JSON, or multipart with a leading `commit` part and `file` parts.
#[utoipa::path(post, path = "/api/v1/repos/{namespace}/{name}/commits/{branch}",
    params(super::openapi_responses::RepoPath, ("branch" = String, Path, description = "The branch to commit on")),
    request_body(content = CommitRequest, description = "The commit as JSON; or `multipart/form-data` with a leading `commit` part (this JSON) and `file` parts"),
    security(("bearer" = [])),
    responses((status = 201, body = CommitInfo), super::openapi_responses::JsonWriteErrors))]
#[post("/api/v1/repos/{namespace}/{name}/commits/{branch}")]
pub async fn create_commit(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let (namespace, name, branch) = path.into_inner();
    let repo = {
        let mut conn = state.db.acquire().await?;
        super::load_repo(&mut conn, &caller, &namespace, &name, Need::Write).await?
    };
    let branch = parse_branch(&branch)?;
    let user_id = caller.require_writer()?.id;
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (request, changes) = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::new(req.headers(), payload);
        read_multipart(&state, &repo, user_id, multipart).await?
    } else if content_type.starts_with("application/json") {
        let body = read_json_body(payload, state.settings.limits.max_json_body).await?;
        let request: CommitRequest = serde_json::from_slice(&body).map_err(|e| {
            ApiError::unprocessable(
                code::INVALID_JSON,
                format!("the commit JSON does not fit: {e}"),
            )
        })?;
        let changes = prepare(&state, &repo, user_id, &request, &mut HashMap::new(), false).await?;
        (request, changes)
    } else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::UNSUPPORTED_MEDIA_TYPE,
            "send the commit as application/json or multipart/form-data",
        ));
    };
    let info = commit_changes(&state, &repo, &caller, &branch, &request, changes).await?;
    Ok(super::created(&info))
}

async fn read_json_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                code::INCOMPLETE_BODY,
                format!("the request body ended early: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(
                code::REQUEST_TOO_LARGE,
                format!(
                    "JSON bodies are limited to {limit} bytes; upload large files through the uploads endpoint or multipart"
                ),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads a multipart commit: the `commit` JSON part first, then `file` parts streamed to the store.
async fn read_multipart(
    state: &AppState,
    repo: &Repo,
    user_id: i64,
    mut multipart: Multipart,
) -> Result<(CommitRequest, Vec<PendingChange>), ApiError> {
    let bad = |e: actix_multipart::MultipartError| {
        ApiError::bad_request(
            code::INVALID_MULTIPART,
            format!("the multipart body is malformed: {e}"),
        )
    };
    let mut request: Option<CommitRequest> = None;
    let mut changes = Vec::new();
    let mut announced: HashMap<String, (Option<Sha256Digest>, Option<u64>)> = HashMap::new();
    let mut received = 0usize;
    while let Some(field) = multipart.try_next().await.map_err(bad)? {
        let field_name = field.name().unwrap_or_default().to_string();
        match field_name.as_str() {
            "commit" => {
                if request.is_some() {
                    return Err(ApiError::bad_request(
                        code::DUPLICATE_COMMIT_PART,
                        "send exactly one `commit` part",
                    ));
                }
                let body = read_json_body_field(field, state.settings.limits.max_json_body).await?;
                let parsed: CommitRequest = serde_json::from_slice(&body).map_err(|e| {
                    ApiError::unprocessable(
                        code::INVALID_JSON,
                        format!("the `commit` part does not fit: {e}"),
                    )
                })?;
                changes = prepare(state, repo, user_id, &parsed, &mut announced, true).await?;
                request = Some(parsed);
            }
            "file" => {
                if request.is_none() {
                    return Err(ApiError::bad_request(
                        code::COMMIT_PART_FIRST,
                        "the `commit` part must come before any `file` part",
                    ));
                }
                received += 1;
                if received > state.settings.limits.max_files_per_commit {
                    return Err(ApiError::too_large(
                        code::TOO_MANY_FILES,
                        "too many files in one commit",
                    ));
                }
                let raw_path = field
                    .content_disposition()
                    .and_then(|cd| cd.get_filename())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            code::MISSING_FILENAME,
                            "each `file` part needs a filename: the path in the repository",
                        )
                    })?;
                let path = RepoPath::parse(&raw_path).map_err(invalid_path)?;
                let (sha256, size) = announced.remove(path.as_str()).unwrap_or((None, None));
                let expected = Expected {
                    sha256,
                    size,
                    max_size: state.settings.limits.max_file_size,
                };
                let stored =
                    super::uploads::store_stream(state, repo.id, user_id, expected, field).await?;
                // A declared digest was queued as a reference; bytes now arrived for it.
                changes.retain(|c| !matches!(c, PendingChange::Put(Put::ByDigest { path: p, .. }) if *p == path));
                changes.push(PendingChange::Put(Put::Stored {
                    path,
                    entry: Entry {
                        sha256: stored.sha256,
                        size: stored.size as i64,
                    },
                }));
            }
            other => {
                return Err(ApiError::bad_request(
                    code::UNKNOWN_PART,
                    format!("unexpected multipart part `{other}`: use `commit` and `file`"),
                ));
            }
        }
    }
    let request = request.ok_or_else(|| {
        ApiError::bad_request(
            code::MISSING_COMMIT_PART,
            "a multipart commit needs a `commit` part with the message",
        )
    })?;
    if let Some(path) = announced
        .iter()
        .find(|(_, (sha, _))| sha.is_none())
        .map(|(p, _)| p.clone())
    {
        return Err(ApiError::bad_request(
            code::MISSING_FILE_PART,
            format!("`{path}` was announced but no `file` part carried it"),
        ));
    }
    Ok((request, changes))
}

async fn read_json_body_field(
    mut field: actix_multipart::Field,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(code::INVALID_MULTIPART, e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(
                code::REQUEST_TOO_LARGE,
                format!("the `commit` part is limited to {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Branch, tag or commit id to start from (default `main`).
    pub revision: Option<String>,
    pub limit: Option<i64>,
}

/// Commit history, newest first. Page by passing the last commit's `parent` as `revision`.
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/commits",
    params(super::openapi_responses::RepoPath, HistoryParams), security((), ("bearer" = [])),
    responses((status = 200, body = [CommitInfo]), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/commits")]
pub async fn history(
    state: web::Data<AppState>,
    super::ReadRepo(repo): super::ReadRepo,
    params: web::Query<HistoryParams>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let revision = params.revision.as_deref().unwrap_or("main");
    let start = resolve_revision(&mut conn, &repo, revision).await?;
    let limit = params.limit.unwrap_or(50).clamp(1, 1000);
    let commits: Vec<CommitInfo> = db::commits::history(&mut conn, repo.id, &start, limit)
        .await?
        .into_iter()
        .map(CommitInfo::from)
        .collect();
    Ok(HttpResponse::Ok().json(commits))
}

pub async fn resolve_revision(
    conn: &mut PgConnection,
    repo: &Repo,
    revision: &str,
) -> Result<String, ApiError> {
    Ok(domain::refs::resolve(conn, repo, revision).await?)
}

#[derive(Serialize, ToSchema)]
pub struct FileInfo {
    pub path: String,
    pub size: i64,
    pub sha256: String,
    /// `pending` until scanned, then `clean`, `suspicious`, `malformed`, `malicious` or `error`.
    pub scan_status: String,
    /// True when the file is malicious and not released: downloads answer 403.
    pub quarantined: bool,
    /// What a flagged file was flagged for; null when clean or pending.
    pub scan_warning: Option<String>,
    /// Filled by inference verification once it exists; null until then.
    pub verification_status: Option<String>,
}

impl From<db::scans::FileScan> for FileInfo {
    fn from(f: db::scans::FileScan) -> Self {
        let status = scan::file_status(f.verdict).to_string();
        let warning = matches!(
            status.as_str(),
            "suspicious" | "malformed" | "malicious" | "error"
        )
        .then(|| {
            format!(
                "{status}: {}",
                super::files::findings_summary(f.findings.as_ref())
            )
        });
        Self {
            quarantined: scan::quarantined(f.verdict, f.released, f.held),
            path: f.path,
            size: f.size,
            sha256: hex::encode(f.sha256),
            scan_status: status,
            scan_warning: warning,
            verification_status: None,
        }
    }
}

/// Counts of files by scan status.
#[derive(Serialize, ToSchema, Default)]
pub struct ScanSummary {
    pub clean: usize,
    pub suspicious: usize,
    pub malformed: usize,
    pub malicious: usize,
    pub error: usize,
    pub pending: usize,
    /// The worst status among the files (`clean` when there are none).
    pub overall: String,
}

impl ScanSummary {
    pub fn of<'a>(files: impl IntoIterator<Item = &'a FileInfo>) -> Self {
        Self::counted(files.into_iter().map(|f| (f.scan_status.as_str(), 1)))
    }

    /// From numbers of files by scan status.
    pub fn counted<'a>(statuses: impl IntoIterator<Item = (&'a str, usize)>) -> Self {
        let mut s = ScanSummary::default();
        for (status, n) in statuses {
            *match status {
                "clean" => &mut s.clean,
                "suspicious" => &mut s.suspicious,
                "malformed" => &mut s.malformed,
                "malicious" => &mut s.malicious,
                "error" => &mut s.error,
                _ => &mut s.pending,
            } += n;
        }
        let counts = [
            ("malicious", s.malicious),
            ("malformed", s.malformed),
            ("error", s.error),
            ("suspicious", s.suspicious),
            (scan::PENDING, s.pending),
        ];
        let present = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(status, _)| *status);
        s.overall = scan::overall(present).to_string();
        s
    }
}

#[derive(Serialize, ToSchema)]
pub struct FileScanInfo {
    #[serde(flatten)]
    pub file: FileInfo,
    /// The scanner's findings for this file (rule, severity, location, message, evidence).
    pub findings: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct ScanListing {
    pub commit: String,
    pub summary: ScanSummary,
    pub files: Vec<FileScanInfo>,
}

/// Scan results of every file at a revision, with a summary.
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/scan",
    params(super::openapi_responses::RepoPath, HistoryParams), security((), ("bearer" = [])),
    responses((status = 200, body = ScanListing), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/scan")]
pub async fn scan_results(
    state: web::Data<AppState>,
    super::ReadRepo(repo): super::ReadRepo,
    params: web::Query<HistoryParams>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let commit = resolve_revision(
        &mut conn,
        &repo,
        params.revision.as_deref().unwrap_or("main"),
    )
    .await?;
    let files: Vec<FileScanInfo> = db::scans::files_of_commit(&mut conn, repo.id, &commit)
        .await?
        .into_iter()
        .map(|f| {
            let findings = f
                .findings
                .clone()
                .unwrap_or(serde_json::Value::Array(Vec::new()));
            FileScanInfo {
                file: FileInfo::from(f),
                findings,
            }
        })
        .collect();
    let summary = ScanSummary::of(files.iter().map(|f| &f.file));
    Ok(HttpResponse::Ok().json(ScanListing {
        commit,
        summary,
        files,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct TreeListing {
    pub commit: String,
    pub files: Vec<FileInfo>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TreeParams {
    /// Only files under this folder.
    pub path: Option<String>,
    /// Files per page, 1 to 1000 (default 1000).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

const TREE_PAGE: i64 = 1000;

/// The files at a revision, in path order: path, size, sha256 and status fields; a page of
/// `limit` files, continued with `cursor` (a keyset walk of the path index: every page costs the
/// same, however many files the revision has).
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/tree/{revision}",
    params(super::openapi_responses::RepoPath,
           ("revision" = String, Path, description = "A branch, tag or commit id"), TreeParams),
    security((), ("bearer" = [])),
    responses((status = 200, body = TreeListing), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/tree/{revision}")]
pub async fn list_files(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
    params: web::Query<TreeParams>,
) -> ApiResult<HttpResponse> {
    let (namespace, name, revision) = path.into_inner();
    let limit = params.limit.unwrap_or(TREE_PAGE);
    if !(1..=TREE_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            code::INVALID_LIMIT,
            format!("limit must be between 1 and {TREE_PAGE}"),
        ));
    }
    let mut conn = state.db.acquire().await?;
    let repo = super::load_repo(&mut conn, &caller, &namespace, &name, Need::Read).await?;
    let commit = resolve_revision(&mut conn, &repo, &revision).await?;
    let prefix = params
        .path
        .as_deref()
        .map(|p| format!("{}/", p.trim_end_matches('/')))
        .unwrap_or_default();
    let cursor = params.cursor.as_deref().filter(|c| !c.is_empty());
    let range = db::commits::FileRange::new(repo.id, &commit, &prefix, cursor);
    let mut files: Vec<FileInfo> = db::commits::file_scans_page(&mut conn, &range, limit + 1)
        .await?
        .into_iter()
        .map(FileInfo::from)
        .collect();
    let next_cursor = (files.len() as i64 > limit).then(|| {
        files.truncate(limit as usize);
        files.last().map(|f| f.path.clone()).unwrap_or_default()
    });
    Ok(HttpResponse::Ok().json(TreeListing {
        commit,
        files,
        next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct RefInfo {
    pub name: String,
    pub commit: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct Refs {
    pub branches: Vec<RefInfo>,
    pub tags: Vec<RefInfo>,
}

/// Branches and tags.
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/refs",
    params(super::openapi_responses::RepoPath), security((), ("bearer" = [])),
    responses((status = 200, body = Refs), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/refs")]
pub async fn list_refs(
    state: web::Data<AppState>,
    super::ReadRepo(repo): super::ReadRepo,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let mut refs = Refs {
        branches: Vec::new(),
        tags: Vec::new(),
    };
    for r in db::commits::list_refs(&mut conn, repo.id).await? {
        let info = RefInfo {
            name: r.name,
            commit: r.commit_id.into(),
            updated_at: r.updated_at,
        };
        if r.kind == RefKind::Branch {
            refs.branches.push(info)
        } else {
            refs.tags.push(info)
        }
    }
    Ok(HttpResponse::Ok().json(refs))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefUpdate {
    /// Branch, tag or commit id the ref should point at.
    pub target: String,
    /// Move only if the ref currently points here (optimistic concurrency).
    pub expected: Option<String>,
}

fn ref_kind(kind: &str) -> Result<RefKind, ApiError> {
    match kind {
        "branches" => Ok(RefKind::Branch),
        "tags" => Ok(RefKind::Tag),
        other => Err(ApiError::not_found(
            code::ROUTE_NOT_FOUND,
            format!("`{other}` is not `branches` or `tags`"),
        )),
    }
}

/// Creates or moves a branch or tag.
#[utoipa::path(put, path = "/api/v1/repos/{namespace}/{name}/{kind}/{ref_name}", request_body = RefUpdate,
    params(super::openapi_responses::RepoPath, ("kind" = String, Path, description = "`branches` or `tags`"),
           ("ref_name" = String, Path, description = "The branch or tag name")),
    security(("bearer" = [])),
    responses((status = 200, body = RefInfo), super::openapi_responses::JsonWriteErrors))]
#[put("/api/v1/repos/{namespace}/{name}/{kind}/{ref_name}")]
pub async fn put_ref(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String, String)>,
    body: web::Json<RefUpdate>,
) -> ApiResult<HttpResponse> {
    let (namespace, name, kind, ref_name) = path.into_inner();
    let kind = ref_kind(&kind)?;
    let mut tx = state.db.begin().await?;
    let repo = super::load_repo(&mut tx, &caller, &namespace, &name, Need::Write).await?;
    let ref_name = parse_branch(&ref_name)?;
    let target = resolve_revision(&mut tx, &repo, &body.target).await?;
    let expected = body.expected.as_deref();
    domain::refs::set(
        &mut tx,
        &caller,
        &repo,
        (kind, &ref_name),
        &target,
        expected,
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(RefInfo {
        name: ref_name.to_string(),
        commit: target,
        updated_at: Utc::now(),
    }))
}

/// Deletes a branch (never `main`) or a tag.
#[utoipa::path(delete, path = "/api/v1/repos/{namespace}/{name}/{kind}/{ref_name}",
    params(super::openapi_responses::RepoPath, ("kind" = String, Path, description = "`branches` or `tags`"),
           ("ref_name" = String, Path, description = "The branch or tag name")),
    security(("bearer" = [])),
    responses((status = 204, description = "deleted"), super::openapi_responses::AuthConflictErrors))]
#[delete("/api/v1/repos/{namespace}/{name}/{kind}/{ref_name}")]
pub async fn delete_ref(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (namespace, name, kind, ref_name) = path.into_inner();
    let kind = ref_kind(&kind)?;
    let mut tx = state.db.begin().await?;
    let repo = super::load_repo(&mut tx, &caller, &namespace, &name, Need::Write).await?;
    domain::refs::delete(&mut tx, &caller, &repo, kind, &ref_name).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use crate::domain::commits::front_matter_license;

    #[test]
    fn reads_license_from_front_matter() {
        assert_eq!(
            front_matter_license("---\nlicense: apache-2.0\ntags: [a]\n---\n# Model"),
            Some("apache-2.0".into())
        );
        assert_eq!(
            front_matter_license("---\nlicense: \"mit\"\n---\n"),
            Some("mit".into())
        );
        assert_eq!(
            front_matter_license("# No front matter\nlicense: mit"),
            None
        );
    }
}
