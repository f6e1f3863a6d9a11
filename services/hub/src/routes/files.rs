//! Downloads: `GET|HEAD /{namespace}/{name}/resolve/{revision}/{path}` with ETag (the sha256),
//! single byte ranges, conditional requests and optional redirects to presigned store URLs.

use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, route, web};
use futures_util::StreamExt;
use kaiyuan_storage::Sha256Digest;

use crate::auth::{Caller, Need};
use crate::db;
use crate::db::types::{Gated, LicenseDecision, ScanVerdict};
use crate::error::{ApiError, ApiResult};
use crate::error_code as code;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resolve);
}

/// The parsed `Range` header of a request for a `size`-byte file.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable single range: send the whole file.
    Full,
    /// Send bytes `start..end` (end exclusive).
    Partial(u64, u64),
    /// The range lies outside the file.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n`. Multiple ranges and other units are ignored
/// (answered with the whole file, as RFC 9110 allows).
pub fn parse_range(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (start, end) = (start.trim(), end.trim());
    match (start.parse::<u64>(), end.parse::<u64>()) {
        (Ok(start), _) if start >= size => RangeRequest::Unsatisfiable,
        (Ok(start), Ok(end)) if end >= start => RangeRequest::Partial(start, end.min(size - 1) + 1),
        (Ok(_), Ok(_)) => RangeRequest::Full,
        (Ok(start), Err(_)) if end.is_empty() => RangeRequest::Partial(start, size),
        (Err(_), Ok(suffix)) if start.is_empty() => {
            if suffix == 0 || size == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(size - suffix.min(size), size)
            }
        }
        _ => RangeRequest::Full,
    }
}

/// A content type from the file name; model files are opaque bytes.
fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "json" => "application/json",
        "md" => "text/markdown; charset=utf-8",
        "txt" | "py" | "yaml" | "yml" | "toml" | "cfg" | "gitattributes" => {
            "text/plain; charset=utf-8"
        }
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

fn etag_matches(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == etag
            })
        })
}

/// Rules and evidence of a scan's findings, for messages.
pub fn findings_summary(findings: Option<&serde_json::Value>) -> String {
    let items: Vec<String> = findings
        .and_then(|f| f.as_array())
        .map(|list| {
            list.iter()
                .filter(|f| f["severity"] != "suspicious" || list.len() < 4)
                .take(5)
                .map(|f| match f["evidence"].as_str() {
                    Some(evidence) => format!("{} ({evidence})", f["rule"].as_str().unwrap_or("?")),
                    None => f["rule"].as_str().unwrap_or("?").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    items.join(", ")
}

/// The 403 for a quarantined file: it names the findings so the user knows why.
fn quarantined(path: &str, scan: &db::scans::ScanState) -> ApiError {
    if let Some(reason) = &scan.held_reason {
        return ApiError::forbidden(
            code::QUARANTINED,
            format!("`{path}` is held by a reviewer: {reason}"),
        )
        .with_details(serde_json::json!({"hold": reason}));
    }
    ApiError::forbidden(
        code::QUARANTINED,
        format!(
            "`{path}` is quarantined: the security scan found malicious content ({}). It cannot be downloaded unless a hub admin releases it.",
            findings_summary(scan.findings.as_ref())
        ),
    )
    .with_details(serde_json::json!({"scan": {"verdict": scan.verdict, "format": scan.format, "findings": scan.findings}}))
}

/// A header value warning about a suspicious (or released malicious) file.
fn scan_warning(scan: &db::scans::ScanState) -> Option<String> {
    let verdict = scan.verdict?;
    if verdict == ScanVerdict::Clean {
        return None;
    }
    let text = format!("{verdict}: {}", findings_summary(scan.findings.as_ref()));
    // Header values must be visible ASCII.
    Some(
        text.chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .take(512)
            .collect(),
    )
}

/// A licence notice for Hugging Face clients (`X-HF-Warning: <topic>; <message>`, printed once
/// per topic): a missing licence, or the stored evaluation of the revision when it denies or
/// flags commercial use (the first blocking reason, and where to read the rest).
pub async fn license_notice(
    conn: &mut sqlx::PgConnection,
    repo: &crate::db::repos::Repo,
    commit: &str,
) -> Result<Option<String>, ApiError> {
    if matches!(
        repo.license.as_deref(),
        None | Some("") | Some("NOASSERTION") | Some("noassertion")
    ) {
        return Ok(Some(format!(
            "kaiyuan-license; {} declares no licence: you have no granted rights to use it until its owner states terms",
            repo.full_name()
        )));
    }
    let Some(stored) = db::licenses::evaluation(conn, repo.id, commit).await? else {
        return Ok(None);
    };
    if !matches!(
        stored.decision,
        LicenseDecision::Deny | LicenseDecision::FlagReview
    ) {
        return Ok(None);
    }
    let reason = stored.report["findings"]
        .as_array()
        .and_then(|f| {
            f.iter()
                .find(|f| f["severity"] == "error" || f["severity"] == "review")
        })
        .and_then(|f| f["message"].as_str())
        .unwrap_or("see the licence report");
    let text = format!(
        "kaiyuan-license; {} ({} for commercial use): {reason} (details: /api/v1/repos/{}/license)",
        repo.full_name(),
        stored.decision,
        repo.full_name()
    );
    // Header values are ASCII; quotes and dashes in licence texts are not.
    Ok(Some(
        text.chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .take(400)
            .collect(),
    ))
}

/// Downloads a file at a revision (branch, tag or commit id).
#[utoipa::path(get, path = "/{namespace}/{name}/resolve/{revision}/{path}",
    params(super::openapi_responses::RepoPath,
           ("revision" = String, Path, description = "A branch, tag or commit id"),
           ("path" = String, Path, description = "The file's path in the repository (may contain `/`)")),
    security((), ("bearer" = [])),
    responses((status = 200, description = "the file's bytes"), (status = 206, description = "the requested byte range"),
              (status = 302, description = "a redirect to the object store"), (status = 304, description = "not modified"),
              (status = 416, description = "the range cannot be satisfied"),
              super::openapi_responses::ReadErrors, super::openapi_responses::Forbidden))]
#[route(
    "/{namespace}/{name}/resolve/{revision}/{path:.*}",
    method = "GET",
    method = "HEAD"
)]
pub async fn resolve(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
) -> ApiResult<HttpResponse> {
    let segments = path.into_inner();
    let (namespace, name, revision, file_path) = &segments;
    crate::mirror::ensure(&state, &caller, namespace, name, revision).await?;
    let mut conn = state.db.acquire().await?;
    let asked = Asked::at(&segments, req.method() != Method::HEAD);
    let Download {
        repo,
        commit,
        file,
        scan,
        acceptance_gated,
    } = match decide(&mut conn, &state.store, &caller, &asked).await? {
        Lookup::Found(download) => *download,
        Lookup::Missing { repo, commit } => {
            return Ok(entry_not_found(file_path, revision, &repo, &commit));
        }
    };
    let digest = file.sha256;
    let mut served = Served {
        etag: format!("\"{}\"", digest.to_hex()),
        size: file.size as u64,
        scan_status: crate::domain::scan::file_status(scan.as_ref().and_then(|s| s.verdict))
            .to_string(),
        warning: scan.as_ref().and_then(scan_warning),
        notice: license_notice(&mut conn, &repo, &commit).await?,
        // Published advisories name blobs: the same bytes are flagged in every repository.
        advisories: db::reviews::advisories_for_blob(&mut conn, &file.sha256).await?,
        // Bytes behind an access check never go to shared caches: a proxy would serve them to
        // whoever asks next. Others are immutable at a commit id.
        cache_control: if !repo.is_public() || repo.gated != Gated::None || acceptance_gated {
            "private, no-cache"
        } else if *revision == commit {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        },
        xet: None,
        commit,
    };
    if state.settings.xet.enabled
        && let Some(file_hash) =
            crate::xet::offered_hashes(&mut conn, repo.id, &served.commit, &[file.sha256.to_vec()])
                .await?
                .remove(&file.sha256[..])
    {
        let refresh = format!(
            "{}/api/models/{}/xet-read-token/{}",
            super::hf::endpoint(&req),
            repo.full_name(),
            served.commit
        );
        served.xet = Some((
            file_hash.to_string(),
            format!("<{refresh}>; rel=\"xet-auth\""),
        ));
    }
    drop(conn);
    send_bytes(&state, &req, &served, &digest, &file.path).await
}

/// A file someone asks for: where, and whether they want its bytes (a HEAD wants only what the
/// headers say).
pub(crate) struct Asked<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub revision: &'a str,
    pub path: &'a str,
    pub bytes: bool,
}

impl<'a> Asked<'a> {
    /// The file a `/{namespace}/{name}/resolve|blob/{revision}/{path}` URL names.
    pub fn at(segments: &'a (String, String, String, String), bytes: bool) -> Self {
        let (namespace, name, revision, path) = segments;
        Asked {
            namespace,
            name,
            revision,
            path,
            bytes,
        }
    }
}

/// A file the caller may have.
pub(crate) struct Download {
    pub repo: db::repos::Repo,
    pub commit: String,
    pub file: db::commits::FileRow,
    pub scan: Option<db::scans::ScanState>,
    /// Behind a licence to accept (for someone outside the namespace): not for shared caches.
    pub acceptance_gated: bool,
}

pub(crate) enum Lookup {
    /// Boxed: a download carries the scan's findings, the miss only names where.
    Found(Box<Download>),
    /// The revision holds no such path.
    Missing {
        repo: db::repos::Repo,
        commit: String,
    },
}

/// Whether the caller may have a file, decided once for the download route and the web's file
/// viewer. The gates, in order: the repository is visible, its gating lets the caller in, the
/// revision exists, every licence to accept was accepted, and the bytes are not quarantined
/// (a HEAD still gets the metadata and the scan headers, so clients reach the GET and show its
/// message).
pub(crate) async fn decide(
    conn: &mut sqlx::PgConnection,
    store: &kaiyuan_storage::BlobStore,
    caller: &Caller,
    asked: &Asked<'_>,
) -> Result<Lookup, ApiError> {
    let repo = super::load_repo(conn, caller, asked.namespace, asked.name, Need::Read).await?;
    super::access::authorize_download(conn, caller, &repo).await?;
    let commit = super::commits::resolve_revision(conn, &repo, asked.revision).await?;
    let acceptance_gated =
        crate::licensing::authorize_license(conn, store, caller, &repo, &commit).await?;
    let Some(file) = db::commits::file(conn, repo.id, &commit, asked.path).await? else {
        return Ok(Lookup::Missing { repo, commit });
    };
    let scan = db::scans::state(conn, &file.sha256).await?;
    if let Some(scan) = scan.as_ref().filter(|s| s.quarantined())
        && asked.bytes
    {
        return Err(quarantined(&file.path, scan));
    }
    if asked.bytes
        && let Some(refused) = crate::mirror::refusal(conn, repo.id, &commit).await?
    {
        return Err(refused);
    }
    Ok(Lookup::Found(Box::new(Download {
        repo,
        commit,
        file,
        scan,
        acceptance_gated,
    })))
}

/// The 404 for a path a revision does not hold; with the commit attached, Hugging Face clients
/// cache "does not exist" for it.
fn entry_not_found(
    path: &str,
    revision: &str,
    repo: &db::repos::Repo,
    commit: &str,
) -> HttpResponse {
    let error = ApiError::not_found(
        code::ENTRY_NOT_FOUND,
        format!(
            "`{path}` does not exist at revision `{revision}` of `{}`",
            repo.full_name()
        ),
    );
    let mut response = error.error_response();
    if let Ok(value) = HeaderValue::from_str(commit) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-repo-commit"), value);
    }
    response
}

/// What every answer about a served file says in its headers.
struct Served {
    etag: String,
    commit: String,
    size: u64,
    scan_status: String,
    warning: Option<String>,
    notice: Option<String>,
    advisories: Vec<String>,
    cache_control: &'static str,
    /// For bytes stored as a Xet reconstruction: the file's Xet hash and the `xet-auth` link
    /// of its token route, which clients with Xet download through.
    xet: Option<(String, String)>,
}

impl Served {
    fn response(&self, status: StatusCode) -> actix_web::HttpResponseBuilder {
        let mut builder = HttpResponse::build(status);
        builder
            .insert_header((header::ETAG, self.etag.clone()))
            .insert_header((header::ACCEPT_RANGES, "bytes"))
            .insert_header(("X-Repo-Commit", self.commit.clone()))
            // Hugging Face clients take the blob id and size from these, even on redirects.
            .insert_header(("X-Linked-Etag", self.etag.clone()))
            .insert_header(("X-Linked-Size", self.size.to_string()))
            .insert_header(("X-Kaiyuan-Scan", self.scan_status.clone()))
            .insert_header((header::CACHE_CONTROL, self.cache_control));
        if let Some(warning) = &self.warning {
            builder.insert_header(("X-Kaiyuan-Warning", warning.clone()));
        }
        if let Some(notice) = &self.notice {
            builder.insert_header(("X-HF-Warning", notice.clone()));
        }
        if let Some((hash, link)) = &self.xet {
            builder
                .insert_header(("X-Xet-Hash", hash.clone()))
                .insert_header((header::LINK, link.clone()));
        }
        if !self.advisories.is_empty() {
            builder.insert_header(("X-Kaiyuan-Advisory", self.advisories.join(", ")));
        }
        builder
    }
}

/// The answer with the bytes: 304 for a matching `If-None-Match`, a redirect to a presigned
/// URL where configured, a single range (206/416) or the whole file, headers only for HEAD.
async fn send_bytes(
    state: &AppState,
    req: &HttpRequest,
    served: &Served,
    digest: &Sha256Digest,
    path: &str,
) -> ApiResult<HttpResponse> {
    let size = served.size;
    if etag_matches(req, &served.etag) {
        return Ok(served.response(StatusCode::NOT_MODIFIED).finish());
    }
    let settings = &state.settings.downloads;
    // A Xet-stored file has no object of its own to presign.
    if settings.presigned_redirects
        && served.xet.is_none()
        && req.method() == Method::GET
        && let Some(url) = state
            .store
            .presigned_get(digest, Duration::from_secs(settings.presign_ttl_secs))
            .await?
    {
        return Ok(served
            .response(StatusCode::FOUND)
            .insert_header((header::LOCATION, url.to_string()))
            .finish());
    }
    let range = match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        Some(value) => parse_range(value, size),
        None => RangeRequest::Full,
    };
    let (status, start, end) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Partial(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        RangeRequest::Unsatisfiable => {
            return Ok(served
                .response(StatusCode::RANGE_NOT_SATISFIABLE)
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .json(ApiError::body(
                    "range-not-satisfiable",
                    &format!("the file has {size} bytes"),
                )));
        }
    };
    let mut builder = served.response(status);
    builder.insert_header((header::CONTENT_TYPE, content_type(path)));
    if status == StatusCode::PARTIAL_CONTENT {
        builder.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        ));
    }
    let length = end - start;
    if req.method() == Method::HEAD || length == 0 {
        // actix sends a sized empty body's length as Content-Length; for HEAD it is the file's.
        let mut head = builder
            .no_chunking(length)
            .streaming(futures_util::stream::empty::<Result<bytes::Bytes, ApiError>>());
        head.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        return Ok(head);
    }
    let metrics = state.metrics.clone();
    let body = state
        .store
        .read(digest, start..end)
        .await?
        .map(move |chunk| {
            let chunk = chunk.map_err(ApiError::from)?;
            metrics.add_bytes_out(chunk.len() as u64);
            Ok::<_, ApiError>(chunk)
        });
    Ok(builder.no_chunking(length).streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_ranges() {
        use RangeRequest::*;
        let cases = [
            ("bytes=0-9", Partial(0, 10)),
            ("bytes=5-", Partial(5, 100)),
            ("bytes=-10", Partial(90, 100)),
            ("bytes=-1000", Partial(0, 100)),
            ("bytes=90-200", Partial(90, 100)),
            ("bytes=100-", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=9-3", Full),
            ("bytes=0-1,5-6", Full),
            ("items=0-1", Full),
            ("bytes=x-y", Full),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_range(header, 100), expected, "{header}");
        }
    }
}
