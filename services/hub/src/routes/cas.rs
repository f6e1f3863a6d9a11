//! The Xet CAS, served by the hub itself under `/cas` (the `casUrl` the token route hands out):
//! the v1 routes of the Xet specification. Clients authenticate with the short-lived CAS token
//! of one repository (`xet::token`), never with a hub token; the byte ranges of xorbs are
//! fetched through signed, expiring URLs. v2 routes are not served: the client falls back to v1
//! on their 404.

use std::collections::BTreeMap;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use futures_util::StreamExt;
use kaiyuan_xet::MerkleHash;
use kaiyuan_xet::shard::{MAX_SHARD_BYTES, parse_upload};
use kaiyuan_xet::xorb::{MAX_XORB_BYTES, XorbValidator};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::error_code as code;
use crate::state::AppState;
use crate::xet::recipes::{chunk_tables, term_chunks, unpack_terms};
use crate::xet::register::{RegisterError, register};
use crate::xet::token::{CasToken, TokenError, fetch_signature};

/// Lifetime of the keyed chunk hashes of a global-dedupe answer.
const DEDUPE_KEY_SECS: u64 = 7 * 24 * 3600;
/// Xorbs named by one global-dedupe answer (32 full xorbs describe about 2 GiB).
const DEDUPE_XORBS: i64 = 32;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(upload_xorb)
        .service(upload_shard)
        .service(reconstruction)
        .service(batch_reconstruction)
        .service(global_dedupe)
        .service(fetch_xorb);
}

/// The CAS token of a request, checked for scope and for a repository that still exists.
async fn authorize(state: &AppState, req: &HttpRequest, write: bool) -> Result<CasToken, ApiError> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized(
                code::INVALID_XET_TOKEN,
                "the CAS needs `Authorization: Bearer <token>` with a token from the hub's xet-read-token or xet-write-token route",
            )
        })?;
    let key = super::hf_upload::signing_key(state).await?;
    let token = CasToken::decode(bearer.trim(), &key, chrono::Utc::now().timestamp()).map_err(
        |e| match e {
            TokenError::Expired => ApiError::unauthorized(
                code::XET_TOKEN_EXPIRED,
                "the CAS token has expired: ask the hub's token route for a new one",
            ),
            TokenError::Malformed => ApiError::unauthorized(
                code::INVALID_XET_TOKEN,
                "the CAS token is not one this hub issued",
            ),
        },
    )?;
    if write && !token.write {
        return Err(ApiError::forbidden(
            code::XET_TOKEN_READ_ONLY,
            "this CAS token is read-only: uploads need one from the xet-write-token route",
        ));
    }
    let mut conn = state.db.acquire().await?;
    if !db::xet::repository_live(&mut conn, token.repository_id).await? {
        return Err(ApiError::unauthorized(
            code::INVALID_XET_TOKEN,
            "the repository this CAS token was issued for no longer exists",
        ));
    }
    drop(conn);
    if !write {
        // A token outlives a change of the mirror's licence policy: reads follow the new one.
        crate::mirror::licence_gate::recheck(state, token.repository_id).await?;
    }
    Ok(token)
}

fn parse_hash(text: &str) -> Result<MerkleHash, ApiError> {
    text.parse().map_err(|_| {
        tracing::info!(hash = text, "not a Xet hash");
        ApiError::bad_request(
            code::INVALID_XET_HASH,
            format!("`{text}` is not a Xet hash (64 hexadecimal characters)"),
        )
    })
}

fn invalid_xorb(message: impl std::fmt::Display) -> ApiError {
    tracing::info!(error = %message, "xorb refused");
    ApiError::bad_request(code::INVALID_XORB, format!("invalid xorb: {message}"))
}

fn invalid_shard(message: impl std::fmt::Display) -> ApiError {
    tracing::info!(error = %message, "shard refused");
    ApiError::bad_request(code::INVALID_SHARD, format!("invalid shard: {message}"))
}

/// `POST /v1/xorbs/default/{hash}`: validated frame by frame as it streams in (lengths,
/// compression, each chunk's size); stored under its hash only when the chunks hash to the name.
#[post("/cas/v1/xorbs/{prefix}/{hash}")]
async fn upload_xorb(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    mut body: web::Payload,
) -> ApiResult<HttpResponse> {
    let token = authorize(&state, &req, true).await?;
    let (prefix, hash) = path.into_inner();
    if prefix != "default" {
        return Err(ApiError::bad_request(
            code::INVALID_PATH,
            format!("xorbs are uploaded under the prefix `default`, not `{prefix}`"),
        ));
    }
    let claimed = parse_hash(&hash)?;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_XORB_BYTES) {
        return Err(invalid_xorb(format!(
            "the body has {} bytes; a xorb is at most {MAX_XORB_BYTES}",
            declared.unwrap_or_default()
        )));
    }
    // A xorb already here only has to be read through (the client sends it anyway).
    let stored = state.store.xorb_size(&claimed).await?.is_some();
    let mut upload = match stored {
        true => None,
        false => Some(state.store.begin_xorb_upload().await?),
    };
    let mut validator = XorbValidator::new();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                code::INCOMPLETE_BODY,
                format!("the xorb ended early after {received} bytes: {e}"),
            )
        })?;
        received += chunk.len() as u64;
        validator.feed(&chunk).map_err(invalid_xorb)?;
        if let Some(upload) = &mut upload {
            upload.write(chunk).await?;
        }
    }
    state.metrics.add_xorb_received(received);
    let xorb = validator.finish().map_err(invalid_xorb)?;
    if xorb.hash != claimed {
        return Err(invalid_xorb(format!(
            "its chunks hash to {}, not to {claimed}",
            xorb.hash
        )));
    }
    if let Some(upload) = upload {
        upload.commit(&xorb.hash).await?;
    }
    let mut tx = state.db.begin().await?;
    let inserted = crate::xet::register::record_xorb(&mut tx, &xorb).await?;
    tx.commit().await?;
    tracing::info!(xorb = %xorb.hash, bytes = received, chunks = xorb.chunks.len(), inserted, repository_id = token.repository_id, "xorb received");
    Ok(HttpResponse::Ok().json(json!({"was_inserted": inserted})))
}

/// `POST /v1/shards`: registers the shard's files for the token's repository (see
/// `xet::register` for what is checked). The commit that names them comes after.
#[post("/cas/v1/shards")]
async fn upload_shard(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut body: web::Payload,
) -> ApiResult<HttpResponse> {
    let token = authorize(&state, &req, true).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                code::INCOMPLETE_BODY,
                format!("the shard ended early after {} bytes: {e}", bytes.len()),
            )
        })?;
        if bytes.len() + chunk.len() > MAX_SHARD_BYTES {
            return Err(invalid_shard(format!(
                "larger than {MAX_SHARD_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let shard = parse_upload(&bytes).map_err(invalid_shard)?;
    let new_files = register(&state, &token, &shard)
        .await
        .map_err(|e| match e {
            RegisterError::Invalid(message) => invalid_shard(message),
            RegisterError::Storage(e) => e.into(),
            RegisterError::Database(e) => e.into(),
        })?;
    tracing::info!(
        files = shard.files.len(),
        new_files,
        repository_id = token.repository_id,
        "shard registered"
    );
    Ok(HttpResponse::Ok().json(json!({"result": if new_files > 0 { 1 } else { 0 }})))
}

/// The file behind a Xet hash, if the token's repository may read it: its history holds the
/// bytes or they were uploaded to it. Anything else (unknown, or only in other repositories)
/// is the same 404. Quarantined and held bytes, and bytes only a commit the mirror refuses
/// holds, are refused as on the resolve route.
async fn readable_file(
    conn: &mut sqlx::PgConnection,
    token: &CasToken,
    file_hash: &MerkleHash,
) -> Result<db::xet::FileRow, ApiError> {
    let not_found = || {
        ApiError::not_found(
            code::XET_FILE_NOT_FOUND,
            format!("no file {file_hash} is readable with this token"),
        )
    };
    let file = db::xet::file(conn, file_hash.as_bytes())
        .await?
        .ok_or_else(not_found)?;
    if !db::xet::repository_holds(conn, token.repository_id, &file.sha256).await? {
        return Err(not_found());
    }
    if let Some(scan) = db::scans::state(conn, &file.sha256).await?
        && scan.quarantined()
    {
        return Err(ApiError::forbidden(
            code::QUARANTINED,
            format!(
                "file {file_hash} is quarantined or held by a reviewer: it cannot be downloaded"
            ),
        ));
    }
    if let Some(refused) =
        crate::mirror::bytes_refusal(conn, token.repository_id, &file.sha256).await?
    {
        return Err(refused);
    }
    Ok(file)
}

/// Terms and fetch URLs that rebuild `range` of `file`, in the specification's JSON.
struct Plan {
    offset_into_first_range: u64,
    terms: Vec<Value>,
    fetch_info: BTreeMap<String, Vec<Value>>,
}

async fn plan(
    state: &AppState,
    conn: &mut sqlx::PgConnection,
    cas_url: &str,
    file: &db::xet::FileRow,
    range: std::ops::Range<u64>,
) -> Result<Plan, ApiError> {
    let terms = unpack_terms(&file.terms).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let xorbs: Vec<MerkleHash> = terms.iter().map(|t| t.xorb).collect();
    let tables = chunk_tables(conn, &xorbs).await?;
    let key = super::hf_upload::signing_key(state).await?;
    let expires = chrono::Utc::now().timestamp() + state.settings.xet.fetch_url_secs as i64;
    let mut out = Plan {
        offset_into_first_range: 0,
        terms: Vec::new(),
        fetch_info: BTreeMap::new(),
    };
    let mut pos = 0u64;
    let mut first = true;
    for term in &terms {
        let chunks =
            term_chunks(term, &tables).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
        let mut picked: Option<(usize, usize, u64)> = None;
        for (i, chunk) in chunks.iter().enumerate() {
            let (start, end) = (pos, pos + u64::from(chunk.unpacked_len));
            pos = end;
            if end > range.start && start < range.end {
                if first {
                    out.offset_into_first_range = range.start - start;
                    first = false;
                }
                let (lo, _, len) = picked.unwrap_or((i, i, 0));
                picked = Some((lo, i, len + u64::from(chunk.unpacked_len)));
            }
        }
        let Some((lo, hi, unpacked)) = picked else {
            continue;
        };
        let xorb = term.xorb.to_string();
        let chunk_range = json!({"start": term.chunk_start as usize + lo, "end": term.chunk_start as usize + hi + 1});
        let bytes_start = u64::from(chunks[lo].offset);
        let bytes_end = u64::from(chunks[hi].offset) + u64::from(chunks[hi].frame_len) - 1;
        out.terms
            .push(json!({"hash": xorb, "unpacked_length": unpacked, "range": chunk_range}));
        let sig = fetch_signature(&key, &xorb, bytes_start, bytes_end, expires);
        let url = format!(
            "{cas_url}/v1/fetch/{xorb}?bytes={bytes_start}-{bytes_end}&expires={expires}&sig={sig}"
        );
        let entry = json!({"range": chunk_range, "url": url, "url_range": {"start": bytes_start, "end": bytes_end}});
        let entries = out.fetch_info.entry(xorb).or_default();
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    Ok(out)
}

fn cas_url(req: &HttpRequest) -> String {
    format!("{}/cas", super::hf::endpoint(req))
}

/// `GET /v1/reconstructions/{file_id}`, with an optional `Range: bytes=a-b` (416 past the end).
#[get("/cas/v1/reconstructions/{file_id}")]
async fn reconstruction(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let token = authorize(&state, &req, false).await?;
    let file_hash = parse_hash(&path.into_inner())?;
    let mut conn = state.db.acquire().await?;
    let file = readable_file(&mut conn, &token, &file_hash).await?;
    let size = file.size as u64;
    let range = match req
        .headers()
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => 0..size,
        Some(value) => match parse_byte_range(value) {
            Some((start, _)) if start >= size => {
                return Ok(HttpResponse::build(StatusCode::RANGE_NOT_SATISFIABLE)
                    .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                    .json(ApiError::body(
                        code::INVALID_RANGE,
                        &format!("the range starts at or after the end of the file ({size} bytes)"),
                    )));
            }
            Some((start, end)) => start..end.map_or(size, |e| e.saturating_add(1).min(size)),
            None => {
                return Err(ApiError::bad_request(
                    code::INVALID_RANGE,
                    format!("`{value}` is not a single byte range such as bytes=0-99"),
                ));
            }
        },
    };
    let plan = plan(&state, &mut conn, &cas_url(&req), &file, range).await?;
    Ok(HttpResponse::Ok().json(json!({
        "offset_into_first_range": plan.offset_into_first_range,
        "terms": plan.terms,
        "fetch_info": plan.fetch_info,
    })))
}

/// `bytes=a-b` or `bytes=a-`: the start and the inclusive end.
fn parse_byte_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (start, end) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse::<u64>().ok().filter(|&e| e >= start)?),
    };
    Some((start, end))
}

#[derive(Deserialize)]
struct FileKey {
    prefix: String,
    hash: String,
}

/// `POST /v1/reconstructions`: whole-file plans of several files at once. Files the token may
/// not read are left out, as the single route answers 404 for them.
#[post("/cas/v1/reconstructions")]
async fn batch_reconstruction(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Vec<FileKey>>,
) -> ApiResult<HttpResponse> {
    let token = authorize(&state, &req, false).await?;
    let mut conn = state.db.acquire().await?;
    let mut files = serde_json::Map::new();
    let mut fetch_info: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for key in body.iter() {
        if key.prefix != "default" {
            return Err(ApiError::bad_request(
                code::INVALID_PATH,
                format!(
                    "files are keyed under the prefix `default`, not `{}`",
                    key.prefix
                ),
            ));
        }
        let file_hash = parse_hash(&key.hash)?;
        let file = match readable_file(&mut conn, &token, &file_hash).await {
            Ok(file) => file,
            Err(e) if e.status == StatusCode::NOT_FOUND => continue,
            Err(e) => return Err(e),
        };
        let plan = plan(
            &state,
            &mut conn,
            &cas_url(&req),
            &file,
            0..file.size as u64,
        )
        .await?;
        files.insert(file_hash.to_string(), Value::from(plan.terms));
        for (xorb, entries) in plan.fetch_info {
            let merged = fetch_info.entry(xorb).or_default();
            for entry in entries {
                if !merged.contains(&entry) {
                    merged.push(entry);
                }
            }
        }
    }
    Ok(HttpResponse::Ok().json(json!({"files": files, "fetch_info": fetch_info})))
}

/// `GET /v1/chunks/default-merkledb/{hash}`: the xorbs holding a chunk, as a shard whose chunk
/// hashes are keyed with a fresh key: a client can match only chunks it already has. Only xorbs
/// that the token's repository may read, or that public ungated repositories hold, are named,
/// so the answer reveals nothing about private content elsewhere.
#[get("/cas/v1/chunks/{prefix}/{hash}")]
async fn global_dedupe(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let token = authorize(&state, &req, false).await?;
    let (prefix, hash) = path.into_inner();
    // The specification names `default-merkledb`; hf_xet 1.8 sends `default`.
    if prefix != "default-merkledb" && prefix != "default" {
        return Err(ApiError::bad_request(
            code::INVALID_PATH,
            format!("the global-dedupe prefix is `default-merkledb`, not `{prefix}`"),
        ));
    }
    let chunk = parse_hash(&hash)?;
    let mut conn = state.db.acquire().await?;
    let rows = db::xet::dedupe_xorbs(
        &mut conn,
        token.repository_id,
        chunk.as_bytes(),
        DEDUPE_XORBS,
    )
    .await?;
    if rows.is_empty() {
        return Err(ApiError::not_found(
            code::XET_CHUNK_NOT_FOUND,
            format!("no xorb this token may deduplicate against holds chunk {chunk}"),
        ));
    }
    let mut xorbs = Vec::with_capacity(rows.len());
    for row in rows {
        let hash = MerkleHash::from_slice(&row.hash).unwrap_or_default();
        let table = kaiyuan_xet::xorb::unpack_chunk_table(&row.chunk_table)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("chunk table of {hash}: {e}")))?;
        xorbs.push((hash, table));
    }
    let key: [u8; 32] = rand::rng().random();
    let now = chrono::Utc::now().timestamp() as u64;
    let shard = kaiyuan_xet::shard::encode_dedupe_shard(&xorbs, &key, now, now + DEDUPE_KEY_SECS);
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(shard))
}

#[derive(Deserialize)]
struct FetchQuery {
    bytes: String,
    expires: i64,
    sig: String,
}

/// The signed URL of one xorb byte range (from a reconstruction answer). A `Range` header may
/// ask for the signed range or any part of it, as of a presigned object URL: a reader on a
/// distant link (a mirror) fetches one range in pieces over several connections.
#[get("/cas/v1/fetch/{xorb}")]
async fn fetch_xorb(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<FetchQuery>,
) -> ApiResult<HttpResponse> {
    let xorb = parse_hash(&path.into_inner())?;
    let refuse = || {
        ApiError::forbidden(
            code::INVALID_FETCH_URL,
            "this fetch URL is invalid or expired, or the Range header asks for more than the signed range: ask for a new reconstruction",
        )
    };
    let (start, end) = query
        .bytes
        .split_once('-')
        .and_then(|(s, e)| Some((s.parse::<u64>().ok()?, e.parse::<u64>().ok()?)))
        .filter(|(s, e)| s <= e)
        .ok_or_else(refuse)?;
    let key = super::hf_upload::signing_key(&state).await?;
    let expected = fetch_signature(&key, &xorb.to_string(), start, end, query.expires);
    let signed = crate::hmac::constant_time_eq(expected.as_bytes(), query.sig.as_bytes());
    if !signed || chrono::Utc::now().timestamp() > query.expires {
        return Err(refuse());
    }
    let (start, end) = match req.headers().get(header::RANGE) {
        None => (start, end),
        Some(asked) => asked
            .to_str()
            .ok()
            .and_then(parse_byte_range)
            .map(|(from, to)| (from, to.unwrap_or(end)))
            .filter(|&(from, to)| start <= from && to <= end)
            .ok_or_else(refuse)?,
    };
    let metrics = state.metrics.clone();
    let body = state
        .store
        .read_xorb(&xorb, start..end + 1)
        .await?
        .map(move |chunk| {
            let chunk = chunk.map_err(ApiError::from)?;
            metrics.add_bytes_out(chunk.len() as u64);
            Ok::<_, ApiError>(chunk)
        });
    Ok(HttpResponse::build(StatusCode::PARTIAL_CONTENT)
        .insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/*")))
        .content_type("application/octet-stream")
        .no_chunking(end + 1 - start)
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::parse_byte_range;

    #[test]
    fn byte_ranges_parse_strictly() {
        assert_eq!(parse_byte_range("bytes=0-99"), Some((0, Some(99))));
        assert_eq!(parse_byte_range("bytes=5-"), Some((5, None)));
        assert_eq!(parse_byte_range("bytes=9-3"), None);
        assert_eq!(parse_byte_range("bytes=-5"), None);
        assert_eq!(parse_byte_range("items=0-1"), None);
    }
}
