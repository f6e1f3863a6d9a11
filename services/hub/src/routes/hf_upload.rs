//! Uploads through the Hugging Face protocol: preupload, the LFS batch API with basic transfer
//! to signed URLs, verify, and NDJSON commits. Everything lands in the same blobs, commits and
//! jobs as the native API; regular files are decoded and stored line by line, so memory stays
//! bounded by one line, not by the commit.

use actix_web::{HttpRequest, HttpResponse, post, put, web};
use base64::Engine;
use futures_util::StreamExt;
use kaiyuan_storage::{Expected, Sha256Digest};
use serde::Deserialize;
use serde_json::{Value, json};

use super::commits::CommitRequest;
use crate::auth::{self, Caller, Need};
use crate::db;
use crate::domain::commits::{PendingChange, Put};
use crate::error::{ApiError, ApiResult};
use crate::error_code as code;
use crate::paths::RepoPath;
use crate::state::AppState;
use crate::tree::Entry;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(preupload)
        .service(lfs_batch)
        .service(lfs_verify)
        .service(lfs_put)
        .service(lfs_put_part)
        .service(lfs_complete)
        .service(commit);
}

/// Files up to this size are sent inline in the commit (`regular`); larger ones through LFS, or
/// through the Xet CAS (`routes::cas`) for clients that speak it.
pub const REGULAR_MAX: u64 = 10 * 1024 * 1024;
/// Longest NDJSON line accepted: one regular file, base64-encoded, with its JSON.
const MAX_LINE: usize = (REGULAR_MAX as usize / 3 + 1) * 4 + 64 * 1024;
/// Lifetime of a signed upload URL.
const UPLOAD_URL_SECS: i64 = 6 * 3600;

use crate::hmac::hmac_sha256_hex as hmac;

/// The hub's URL-signing key, created once and shared by every replica through the database.
pub(crate) async fn signing_key(state: &AppState) -> Result<Vec<u8>, ApiError> {
    state
        .signing_key
        .get_or_try_init(|| async {
            let mut conn = state.db.acquire().await?;
            Ok::<_, ApiError>(db::secrets::get_or_create(&mut conn, "upload-url-key").await?)
        })
        .await
        .cloned()
}

fn signed_message(repo: &str, oid: &str, size: u64, user: i64, expires: i64) -> String {
    format!("lfs-upload\n{repo}\n{oid}\n{size}\n{user}\n{expires}")
}

#[derive(Deserialize)]
struct PreuploadFile {
    path: String,
    size: u64,
}

#[derive(Deserialize)]
struct Preupload {
    files: Vec<PreuploadFile>,
}

#[post("/api/models/{namespace}/{name}/preupload/{revision}")]
async fn preupload(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
    body: web::Json<Preupload>,
) -> ApiResult<HttpResponse> {
    let (namespace, name, revision) = path.into_inner();
    let mut conn = state.db.acquire().await?;
    let repo = super::load_repo(&mut conn, &caller, &namespace, &name, Need::Write).await?;
    let current = db::commits::resolve(&mut conn, repo.id, &super::hf::decode(&revision)).await?;
    let files = match &current {
        Some(head) => db::commits::files(&mut conn, repo.id, head).await?,
        None => Vec::new(),
    };
    let out: Vec<Value> = body
        .files
        .iter()
        .map(|f| {
            // By size alone: default clients (Xet installed) can then upload every file up to
            // REGULAR_MAX, binary or not, inline.
            let lfs = f.size > REGULAR_MAX;
            // For LFS files the client compares this with the file's sha256 and skips equal ones.
            let oid = files.iter().find(|e| e.path == f.path).filter(|_| lfs).map(|e| hex::encode(e.sha256));
            json!({"path": f.path, "uploadMode": if lfs { "lfs" } else { "regular" }, "shouldIgnore": false, "oid": oid})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"files": out})))
}

#[derive(Deserialize)]
struct BatchObject {
    oid: String,
    size: u64,
}

#[derive(Deserialize)]
struct Batch {
    operation: String,
    objects: Vec<BatchObject>,
    /// Transfer adapters the client speaks; huggingface_hub 1.0–1.19 offers `xet`.
    #[serde(default)]
    transfers: Vec<String>,
}

/// `POST /{namespace}/{name}.git/info/lfs/objects/batch`: which objects to upload, and where.
#[post("/{namespace}/{repo_git}/info/lfs/objects/batch")]
async fn lfs_batch(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<Batch>,
) -> ApiResult<HttpResponse> {
    let (namespace, repo_git) = path.into_inner();
    let name = repo_git.strip_suffix(".git").unwrap_or(&repo_git);
    if body.operation != "upload" {
        return Err(ApiError::bad_request(
            code::UNSUPPORTED_OPERATION,
            "only LFS uploads go through the batch API; download with /resolve",
        ));
    }
    let mut conn = state.db.acquire().await?;
    let repo = super::load_repo(&mut conn, &caller, &namespace, name, Need::Write).await?;
    let user = caller.require_writer()?;
    if state.settings.xet.enabled && body.transfers.iter().any(|t| t == "xet") {
        // The client uploads through the CAS (xet-write-token) and then commits the sha256s.
        let objects: Vec<Value> = body
            .objects
            .iter()
            .map(|o| json!({"oid": o.oid, "size": o.size}))
            .collect();
        return Ok(HttpResponse::Ok()
            .content_type("application/vnd.git-lfs+json")
            .json(json!({"transfer": "xet", "objects": objects})));
    }
    let key = signing_key(&state).await?;
    let base = super::hf::endpoint(&req);
    let expires = chrono::Utc::now().timestamp() + UPLOAD_URL_SECS;
    let mut objects = Vec::with_capacity(body.objects.len());
    for object in &body.objects {
        let Ok(digest) = object.oid.parse::<Sha256Digest>() else {
            objects.push(json!({"oid": object.oid, "size": object.size, "error": {"code": 422, "message": "oid must be a sha256 in hex"}}));
            continue;
        };
        if object.size > state.settings.limits.max_file_size {
            objects.push(json!({"oid": object.oid, "size": object.size, "error": {"code": 413, "message": format!("files are limited to {} bytes", state.settings.limits.max_file_size)}}));
            continue;
        }
        // Already usable by this repository: nothing to send (deduplication).
        if db::blobs::referenceable_size(&mut conn, repo.id, digest.as_bytes()).await?
            == Some(object.size as i64)
        {
            objects.push(json!({"oid": object.oid, "size": object.size}));
            continue;
        }
        let oid = digest.to_hex();
        let sig = hmac(
            &key,
            signed_message(&repo.full_name(), &oid, object.size, user.id, expires).as_bytes(),
        );
        let signed = format!(
            "size={}&user={}&expires={expires}&sig={sig}",
            object.size, user.id
        );
        let object_url = format!("{base}/api/lfs/{}/{oid}", repo.full_name());
        let verify =
            json!({"href": format!("{base}/{}.git/info/lfs/objects/verify", repo.full_name())});
        let limits = &state.settings.limits;
        let upload = if object.size >= limits.lfs_multipart_threshold {
            // Multipart: one signed URL per part, then the completion URL as `href`.
            let part_size = limits.lfs_part_size.max(5 * 1024 * 1024);
            let mut header = serde_json::Map::new();
            header.insert("chunk_size".into(), json!(part_size.to_string()));
            for n in 1..=object.size.div_ceil(part_size) {
                header.insert(
                    format!("{n:05}"),
                    json!(format!("{object_url}/parts/{n}?{signed}")),
                );
            }
            json!({"href": format!("{object_url}/complete?{signed}"), "header": header, "expires_in": UPLOAD_URL_SECS})
        } else {
            json!({"href": format!("{object_url}?{signed}"), "expires_in": UPLOAD_URL_SECS})
        };
        objects.push(json!({"oid": oid, "size": object.size, "actions": {"upload": upload, "verify": verify}}));
    }
    Ok(HttpResponse::Ok()
        .content_type("application/vnd.git-lfs+json")
        .json(json!({"transfer": "basic", "objects": objects})))
}

#[derive(Deserialize)]
struct UploadQuery {
    size: u64,
    user: i64,
    expires: i64,
    sig: String,
}

/// The signed URL of the basic transfer: the client sends no token, the signature authorises.
#[put("/api/lfs/{namespace}/{name}/{oid}")]
async fn lfs_put(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    query: web::Query<UploadQuery>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let (namespace, name, oid) = path.into_inner();
    let repo = check_signed(&state, &namespace, &name, &oid, &query).await?;
    let digest: Sha256Digest = oid
        .parse()
        .map_err(|_| ApiError::bad_request(code::INVALID_SHA256, "the oid is not a sha256"))?;
    let expected = Expected {
        sha256: Some(digest),
        size: Some(query.size),
        max_size: state.settings.limits.max_file_size,
    };
    super::uploads::store_stream(&state, repo.id, query.user, expected, body).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Checks a signed URL of the LFS transfer and returns the repository it uploads to.
async fn check_signed(
    state: &AppState,
    namespace: &str,
    name: &str,
    oid: &str,
    query: &UploadQuery,
) -> Result<db::repos::Repo, ApiError> {
    let key = signing_key(state).await?;
    let expected = hmac(
        &key,
        signed_message(
            &format!("{namespace}/{name}"),
            oid,
            query.size,
            query.user,
            query.expires,
        )
        .as_bytes(),
    );
    if !crate::hmac::constant_time_eq(expected.as_bytes(), query.sig.as_bytes())
        || chrono::Utc::now().timestamp() > query.expires
    {
        return Err(ApiError::forbidden(
            code::INVALID_UPLOAD_URL,
            "this upload URL is invalid or expired; ask the batch API for a new one",
        ));
    }
    let mut conn = state.db.acquire().await?;
    db::repos::find_live(&mut conn, namespace, name)
        .await?
        .ok_or_else(|| auth::repo_not_found(namespace, name))
}

/// One part of a multipart LFS transfer; answers its ETag (the part's sha256).
#[put("/api/lfs/{namespace}/{name}/{oid}/parts/{number}")]
async fn lfs_put_part(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String, u32)>,
    query: web::Query<UploadQuery>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let (namespace, name, oid, number) = path.into_inner();
    check_signed(&state, &namespace, &name, &oid, &query).await?;
    let part_size = state.settings.limits.lfs_part_size.max(5 * 1024 * 1024);
    if number == 0 || u64::from(number) > query.size.div_ceil(part_size) {
        return Err(ApiError::bad_request(
            code::INVALID_PART,
            format!("part {number} is not in this upload's plan"),
        ));
    }
    let upload = format!("{oid}-{}", query.user);
    let (digest, _) = state
        .store
        .put_part(&upload, number, part_size, body)
        .await
        .map_err(|e| ApiError::bad_request(code::INCOMPLETE_PART, e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", format!("\"{digest}\"")))
        .finish())
}

#[derive(Deserialize)]
struct CompletedPart {
    #[serde(rename = "partNumber")]
    part_number: u32,
}

#[derive(Deserialize)]
struct Completion {
    oid: String,
    parts: Vec<CompletedPart>,
}

/// Completes a multipart LFS transfer: the parts, in order, become one blob whose sha256 must
/// be the object's oid (checked while streaming); then the parts are removed.
#[post("/api/lfs/{namespace}/{name}/{oid}/complete")]
async fn lfs_complete(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    query: web::Query<UploadQuery>,
    body: web::Json<Completion>,
) -> ApiResult<HttpResponse> {
    let (namespace, name, oid) = path.into_inner();
    let repo = check_signed(&state, &namespace, &name, &oid, &query).await?;
    if body.oid != oid {
        return Err(ApiError::bad_request(
            code::OID_MISMATCH,
            "the completion names another object than its URL",
        ));
    }
    let part_size = state.settings.limits.lfs_part_size.max(5 * 1024 * 1024);
    let count = query.size.div_ceil(part_size) as u32;
    let mut numbers: Vec<u32> = body.parts.iter().map(|p| p.part_number).collect();
    numbers.sort_unstable();
    if numbers != (1..=count).collect::<Vec<_>>() {
        return Err(ApiError::bad_request(
            code::MISSING_PARTS,
            format!("the completion must list parts 1 to {count} once each"),
        ));
    }
    let upload = format!("{oid}-{}", query.user);
    for n in 1..=count {
        if state.store.part_size(&upload, n).await?.is_none() {
            return Err(ApiError::bad_request(
                code::MISSING_PARTS,
                format!("part {n} was never uploaded"),
            ));
        }
    }
    let digest: Sha256Digest = oid
        .parse()
        .map_err(|_| ApiError::bad_request(code::INVALID_SHA256, "the oid is not a sha256"))?;
    // The parts' bytes, in order, as one stream.
    let store = state.store.clone();
    let upload_name = upload.clone();
    let stream = futures_util::stream::iter(1..=count)
        .then(move |n| {
            let (store, upload) = (store.clone(), upload_name.clone());
            async move { store.read_part(&upload, n).await }
        })
        .map(|r| match r {
            Ok(stream) => stream,
            Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
        })
        .flatten()
        .boxed();
    let expected = Expected {
        sha256: Some(digest),
        size: Some(query.size),
        max_size: state.settings.limits.max_file_size,
    };
    super::uploads::store_stream(&state, repo.id, query.user, expected, stream).await?;
    for n in 1..=count {
        state.store.delete_part(&upload, n).await?;
    }
    Ok(HttpResponse::Ok().json(json!({"oid": oid, "size": query.size})))
}

/// Confirms that an uploaded object is stored and usable by the repository.
#[post("/{namespace}/{repo_git}/info/lfs/objects/verify")]
async fn lfs_verify(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<BatchObject>,
) -> ApiResult<HttpResponse> {
    let (namespace, repo_git) = path.into_inner();
    let name = repo_git.strip_suffix(".git").unwrap_or(&repo_git);
    let mut conn = state.db.acquire().await?;
    let repo = super::load_repo(&mut conn, &caller, &namespace, name, Need::Write).await?;
    let digest: Sha256Digest = body
        .oid
        .parse()
        .map_err(|_| ApiError::bad_request(code::INVALID_SHA256, "the oid is not a sha256"))?;
    match db::blobs::referenceable_size(&mut conn, repo.id, digest.as_bytes()).await? {
        Some(size) if size as u64 == body.size => {
            Ok(HttpResponse::Ok().json(json!({"oid": body.oid, "size": body.size})))
        }
        _ => Err(ApiError::not_found(
            code::OBJECT_NOT_FOUND,
            format!(
                "object {} of {} bytes was not uploaded to {}",
                body.oid,
                body.size,
                repo.full_name()
            ),
        )),
    }
}

#[derive(Deserialize)]
struct CommitQuery {
    create_pr: Option<String>,
}

/// `POST /api/models/{repo}/commit/{rev}` with an NDJSON body: `header`, then `file`, `lfsFile`,
/// `deletedFile` and `deletedFolder` lines.
#[post("/api/models/{namespace}/{name}/commit/{revision}")]
async fn commit(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    query: web::Query<CommitQuery>,
    mut payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let (namespace, name, revision) = path.into_inner();
    if query
        .create_pr
        .as_deref()
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    {
        return Err(ApiError::bad_request(
            code::PULL_REQUESTS_UNSUPPORTED,
            "pull requests are not supported yet: commit to a branch",
        ));
    }
    let repo = {
        let mut conn = state.db.acquire().await?;
        super::load_repo(&mut conn, &caller, &namespace, &name, Need::Write).await?
    };
    let user_id = caller.require_writer()?.id;
    let branch = super::commits::parse_branch(&super::hf::decode(&revision))?;
    let mut request = CommitRequest {
        message: String::new(),
        parent: None,
        operations: Vec::new(),
    };
    let mut changes = Vec::new();
    let mut buffer: Vec<u8> = Vec::new();
    let mut saw_header = false;
    let mut done = false;
    while !done {
        let chunk = payload.next().await;
        let finished = chunk.is_none();
        if let Some(chunk) = chunk {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request(
                    code::INCOMPLETE_BODY,
                    format!("the commit body ended early: {e}"),
                )
            })?;
            buffer.extend_from_slice(&chunk);
        }
        // Process every complete line; the last line may lack its newline.
        loop {
            let line_end = buffer.iter().position(|b| *b == b'\n');
            let line: Vec<u8> = match line_end {
                Some(at) => {
                    let line = buffer[..at].to_vec();
                    buffer.drain(..=at);
                    line
                }
                None if finished => std::mem::take(&mut buffer),
                None => break,
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                if finished && buffer.is_empty() {
                    break;
                }
                continue;
            }
            let value: Value = serde_json::from_slice(&line).map_err(|e| {
                ApiError::bad_request(
                    code::INVALID_NDJSON,
                    format!("a commit line is not JSON: {e}"),
                )
            })?;
            handle_line(
                &state,
                &repo,
                user_id,
                &value,
                &mut request,
                &mut changes,
                &mut saw_header,
            )
            .await?;
            if finished && buffer.is_empty() {
                break;
            }
        }
        if buffer.len() > MAX_LINE {
            return Err(ApiError::too_large(
                code::LINE_TOO_LARGE,
                format!("a commit line exceeds {MAX_LINE} bytes; send large files through LFS"),
            ));
        }
        done = finished;
    }
    if !saw_header {
        return Err(ApiError::bad_request(
            code::MISSING_HEADER,
            "the first NDJSON line must be the `header` with the commit summary",
        ));
    }
    let info =
        super::commits::commit_changes(&state, &repo, &caller, &branch, &request, changes).await?;
    let base = super::hf::endpoint(&req);
    Ok(HttpResponse::Ok().json(json!({
        "commitOid": info.id,
        "commitUrl": format!("{base}/{}/commit/{}", repo.full_name(), info.id),
        "success": true,
        "hookOutput": "",
    })))
}

fn repo_path(value: &Value) -> Result<RepoPath, ApiError> {
    let raw = value.get("path").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request(code::INVALID_NDJSON, "a commit line has no `path`")
    })?;
    // Folder deletions name the folder with a trailing `/`.
    let raw = raw.strip_suffix('/').unwrap_or(raw);
    RepoPath::parse(raw).map_err(|e| ApiError::unprocessable(code::INVALID_PATH, e.to_string()))
}

async fn handle_line(
    state: &AppState,
    repo: &db::repos::Repo,
    user_id: i64,
    line: &Value,
    request: &mut CommitRequest,
    changes: &mut Vec<PendingChange>,
    saw_header: &mut bool,
) -> Result<(), ApiError> {
    let key = line.get("key").and_then(Value::as_str).unwrap_or_default();
    let value = line.get("value").ok_or_else(|| {
        ApiError::bad_request(code::INVALID_NDJSON, "a commit line has no `value`")
    })?;
    if !*saw_header && key != "header" {
        return Err(ApiError::bad_request(
            code::MISSING_HEADER,
            "the first NDJSON line must be the `header`",
        ));
    }
    match key {
        "header" => {
            let summary = value
                .get("summary")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let description = value
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            request.message = if description.is_empty() {
                summary.to_string()
            } else {
                format!("{summary}\n\n{description}")
            };
            request.parent = value
                .get("parentCommit")
                .and_then(Value::as_str)
                .map(str::to_lowercase);
            *saw_header = true;
        }
        "file" => {
            let path = repo_path(value)?;
            let content = value
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content)
                .map_err(|e| {
                    ApiError::unprocessable(
                        code::INVALID_BASE64,
                        format!("`{path}`: content is not base64: {e}"),
                    )
                })?;
            let expected = Expected {
                sha256: None,
                size: None,
                max_size: state.settings.limits.max_file_size,
            };
            let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
                bytes::Bytes::from(bytes),
            )]);
            let stored =
                super::uploads::store_stream(state, repo.id, user_id, expected, body).await?;
            changes.push(PendingChange::Put(Put::Stored {
                path,
                entry: Entry {
                    sha256: stored.sha256,
                    size: stored.size as i64,
                },
            }));
        }
        "lfsFile" => {
            let path = repo_path(value)?;
            let oid = value.get("oid").and_then(Value::as_str).unwrap_or_default();
            let sha256 = super::uploads::parse_digest(oid)?;
            let size = value.get("size").and_then(Value::as_u64);
            changes.push(PendingChange::Put(Put::ByDigest { path, sha256, size }));
        }
        "deletedFile" | "deletedFolder" => changes.push(PendingChange::Delete(repo_path(value)?)),
        other => {
            return Err(ApiError::bad_request(
                code::INVALID_NDJSON,
                format!("unknown commit line `{other}`"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hmac(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
