//! Streaming blob uploads. The bytes go straight from the request into the object store while
//! being hashed; memory stays bounded whatever the file size. A completed upload is recorded as a
//! blob the repository may reference in a commit (proof of possession).

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{HttpRequest, HttpResponse, post, web};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use kaiyuan_storage::{Expected, Sha256Digest, StoredBlob};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Caller, Need};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::error_code as code;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(upload_blob);
}

/// Header with the sha256 (hex) the client expects the body to hash to.
pub const EXPECTED_SHA256: &str = "x-expected-sha256";
/// Header with the size the client expects the body to have (alternative to Content-Length).
pub const EXPECTED_SIZE: &str = "x-expected-size";

#[derive(Serialize, ToSchema)]
pub struct UploadedBlob {
    pub sha256: String,
    pub size: u64,
    /// False when this repository already held these bytes. Whether another repository holds
    /// them is never told: that would reveal private files to anyone who has the bytes.
    pub newly_stored: bool,
}

pub fn parse_digest(value: &str) -> Result<Sha256Digest, ApiError> {
    value
        .parse()
        .map_err(|e: kaiyuan_storage::Sha256ParseError| {
            ApiError::bad_request(code::INVALID_SHA256, e.to_string())
        })
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Result<Option<&'a str>, ApiError> {
    req.headers()
        .get(name)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::bad_request(code::INVALID_HEADER, format!("header {name} is not ASCII"))
            })
        })
        .transpose()
}

/// Streams a request body (or multipart field) into the store and records the blob and the
/// repository's right to reference it. Any failure leaves nothing referenceable behind.
pub async fn store_stream<S, E>(
    state: &AppState,
    repository_id: impl Into<Option<i64>>,
    user_id: i64,
    expected: Expected,
    mut body: S,
) -> Result<StoredBlob, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    // The repository the upload may be committed to (none for report evidence).
    let repository_id: Option<i64> = repository_id.into();
    if let Some(size) = expected.size.filter(|&s| s > expected.max_size) {
        return Err(ApiError::too_large(
            code::FILE_TOO_LARGE,
            format!(
                "the file has {size} bytes; the limit is {} bytes",
                expected.max_size
            ),
        ));
    }
    if let Some(digest) = expected.sha256 {
        // Protects a blob this upload will deduplicate against from the collector.
        let mut conn = state.db.acquire().await?;
        db::blobs::touch(&mut conn, digest.as_bytes()).await?;
    }
    let mut upload = state.store.begin_upload(expected).await?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                code::INCOMPLETE_BODY,
                format!(
                    "the upload ended early after {} bytes: {e}",
                    upload.received()
                ),
            )
        })?;
        state.metrics.add_bytes_in(chunk.len() as u64);
        upload.write(chunk).await?;
    }
    let mut stored = upload.finish().await?;
    tracing::info!(blob.sha256 = %stored.sha256, size_bytes = stored.size, newly_stored = stored.newly_stored, "stored upload");
    let mut tx = state.db.begin().await?;
    db::blobs::upsert(&mut tx, stored.sha256.as_bytes(), stored.size as i64).await?;
    // From here on `newly_stored` speaks of the repository, never of the hub as a whole.
    stored.newly_stored = match repository_id {
        Some(repository_id) => {
            db::blobs::grant_upload(&mut tx, repository_id, stored.sha256.as_bytes(), user_id)
                .await?
        }
        None => true,
    };
    tx.commit().await?;
    Ok(stored)
}

/// Uploads one file's bytes as the raw request body. Declare `X-Expected-Sha256` (and the size by
/// `Content-Length` or `X-Expected-Size`) to have the hub refuse bytes that do not match. Then
/// reference the blob by sha256 in a commit.
#[utoipa::path(post, path = "/api/v1/repos/{namespace}/{name}/uploads",
    params(super::openapi_responses::RepoPath,
           ("X-Expected-Sha256" = Option<String>, Header, description = "The sha256 (hex) the body must hash to"),
           ("X-Expected-Size" = Option<u64>, Header, description = "The size in bytes the body must have")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("bearer" = [])),
    responses((status = 201, body = UploadedBlob), super::openapi_responses::AuthErrors,
              super::openapi_responses::TooLarge))]
#[post("/api/v1/repos/{namespace}/{name}/uploads")]
pub async fn upload_blob(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    let repo = {
        let mut conn = state.db.acquire().await?;
        super::load_repo(&mut conn, &caller, &namespace, &name, Need::Write).await?
    };
    let user = caller.require_writer()?;
    let sha256 = header(&req, EXPECTED_SHA256)?
        .map(parse_digest)
        .transpose()?;
    let parse_size = |name: &str| -> Result<Option<u64>, ApiError> {
        header(&req, name)?
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        code::INVALID_SIZE,
                        format!("header {name} must be a byte count"),
                    )
                })
            })
            .transpose()
    };
    let declared = parse_size(EXPECTED_SIZE)?;
    let length = parse_size(CONTENT_LENGTH.as_str())?;
    if let (Some(d), Some(l)) = (declared, length)
        && d != l
    {
        return Err(ApiError::bad_request(
            code::SIZE_MISMATCH,
            format!("X-Expected-Size says {d} bytes but Content-Length says {l}"),
        ));
    }
    let expected = Expected {
        sha256,
        size: declared.or(length),
        max_size: state.settings.limits.max_file_size,
    };
    let stored = store_stream(&state, repo.id, user.id, expected, body).await?;
    Ok(super::created(&UploadedBlob {
        sha256: stored.sha256.to_hex(),
        size: stored.size,
        newly_stored: stored.newly_stored,
    }))
}
