//! The transparency log over HTTP: the signed checkpoint, entries, inclusion and consistency
//! proofs, and the log's verifier key. Public: an event about a private repository is a sealed
//! commitment there, which the repository's readers open through `/repos/{ns}/{name}/log`.

use actix_web::{HttpResponse, get, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::error_code as code;
use crate::state::AppState;
use crate::tlog;

/// Most entries one request returns.
const MAX_ENTRIES: i64 = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(checkpoint)
        .service(entries)
        .service(inclusion)
        .service(consistency)
        .service(sealed_entries)
        .service(log_key);
}

/// The latest signed tree head, a C2SP checkpoint in an Ed25519 signed note.
#[utoipa::path(get, path = "/api/v1/log/checkpoint",
    responses((status = 200, description = "the checkpoint as a signed note", body = String, content_type = "text/plain"),
              super::openapi_responses::Unavailable))]
#[get("/api/v1/log/checkpoint")]
pub async fn checkpoint(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let note = tlog::checkpoint(&mut conn).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(note))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    start: i64,
    end: Option<i64>,
}

/// Entries `start..end` (at most 1000): the verbatim body (base64, and parsed as `event`)
/// and its leaf hash.
#[utoipa::path(get, path = "/api/v1/log/entries", params(RangeQuery),
    responses((status = 200, description = "the entries"), super::openapi_responses::PublicErrors))]
#[get("/api/v1/log/entries")]
pub async fn entries(
    state: web::Data<AppState>,
    query: web::Query<RangeQuery>,
) -> ApiResult<HttpResponse> {
    let end = query.end.unwrap_or(query.start.saturating_add(100));
    if query.start < 0 || end <= query.start || end.saturating_sub(query.start) > MAX_ENTRIES {
        return Err(ApiError::bad_request(
            code::INVALID_RANGE,
            format!("entries need 0 <= start < end and at most {MAX_ENTRIES} of them"),
        ));
    }
    let mut conn = state.db.acquire().await?;
    let rows = db::tlog::entries(&mut conn, query.start, end).await?;
    let list: Vec<_> = rows
        .into_iter()
        .map(|r| {
            json!({
                "index": r.idx,
                "body": STANDARD.encode(&r.body),
                "event": serde_json::from_slice::<serde_json::Value>(&r.body).ok(),
                "leaf_hash": hex::encode(&r.leaf_hash),
                "appended_at": r.appended_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"entries": list})))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SealedQuery {
    /// The first log index to list (default 0).
    #[serde(default)]
    start: i64,
}

/// The sealed log entries of a private repository, opened for its readers: each entry's index,
/// leaf hash, the nonce and the body whose `sha256(nonce || body)` is the commitment in the public
/// entry at that index (at most 1000 a page; `next_start` continues).
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/log",
    params(super::openapi_responses::RepoPath, SealedQuery), security((), ("bearer" = [])),
    responses((status = 200, description = "a page of opened entries"), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}/log")]
pub async fn sealed_entries(
    state: web::Data<AppState>,
    caller: crate::auth::Caller,
    path: web::Path<(String, String)>,
    query: web::Query<SealedQuery>,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    if query.start < 0 {
        return Err(ApiError::bad_request(
            code::INVALID_RANGE,
            "start must be 0 or more",
        ));
    }
    let mut conn = state.db.acquire().await?;
    let repo = super::load_repo(
        &mut conn,
        &caller,
        &namespace,
        &name,
        crate::auth::Need::Read,
    )
    .await?;
    let rows = db::tlog::sealed_for(&mut conn, repo.id, query.start, MAX_ENTRIES).await?;
    let next_start = (rows.len() as i64 == MAX_ENTRIES)
        .then(|| rows.last().map(|r| r.idx + 1))
        .flatten();
    let list: Vec<_> = rows
        .into_iter()
        .map(|r| {
            json!({
                "index": r.idx,
                "nonce": hex::encode(&r.nonce),
                "body": STANDARD.encode(&r.body),
                "event": serde_json::from_slice::<serde_json::Value>(&r.body).ok(),
                "commitment": tlog::commitment(&r.nonce, &r.body),
                "leaf_hash": hex::encode(&r.leaf_hash),
                "appended_at": r.appended_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok()
        .json(json!({"repository": repo.full_name(), "entries": list, "next_start": next_start})))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    index: i64,
    tree_size: i64,
}

async fn checked_size(conn: &mut sqlx::PgConnection, size: i64) -> Result<(), ApiError> {
    let current = db::tlog::size(conn).await?;
    if size < 1 || size > current {
        return Err(ApiError::bad_request(
            code::INVALID_TREE_SIZE,
            format!("tree size {size} is not between 1 and the log's size {current}"),
        ));
    }
    Ok(())
}

/// The audit path of an entry in the tree of `tree_size` entries (RFC 9162 inclusion proof).
#[utoipa::path(get, path = "/api/v1/log/proof/inclusion", params(InclusionQuery),
    responses((status = 200, description = "the inclusion proof"), super::openapi_responses::PublicErrors))]
#[get("/api/v1/log/proof/inclusion")]
pub async fn inclusion(
    state: web::Data<AppState>,
    query: web::Query<InclusionQuery>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    checked_size(&mut conn, query.tree_size).await?;
    if query.index < 0 || query.index >= query.tree_size {
        return Err(ApiError::bad_request(
            code::INVALID_INDEX,
            format!(
                "index {} is not inside a tree of {}",
                query.index, query.tree_size
            ),
        ));
    }
    let (leaf, proof) =
        tlog::inclusion_proof(&mut conn, query.index as u64, query.tree_size as u64).await?;
    Ok(HttpResponse::Ok().json(json!({
        "index": query.index,
        "tree_size": query.tree_size,
        "leaf_hash": hex::encode(leaf),
        "hashes": proof.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    first: i64,
    second: i64,
}

/// Proof that the tree of `first` entries is a prefix of the tree of `second` entries.
#[utoipa::path(get, path = "/api/v1/log/proof/consistency", params(ConsistencyQuery),
    responses((status = 200, description = "the consistency proof"), super::openapi_responses::PublicErrors))]
#[get("/api/v1/log/proof/consistency")]
pub async fn consistency(
    state: web::Data<AppState>,
    query: web::Query<ConsistencyQuery>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    checked_size(&mut conn, query.second).await?;
    if query.first < 1 || query.first > query.second {
        return Err(ApiError::bad_request(
            code::INVALID_TREE_SIZE,
            format!(
                "first {} must be between 1 and second {}",
                query.first, query.second
            ),
        ));
    }
    let proof = tlog::consistency_proof(&mut conn, query.first as u64, query.second as u64).await?;
    Ok(HttpResponse::Ok().json(json!({
        "first": query.first,
        "second": query.second,
        "hashes": proof.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
    })))
}

/// The log's note verifier key, `<name>+<key id>+<base64 key>`.
#[get("/.well-known/kaiyuan/log-key")]
pub async fn log_key(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(tlog::verifier(&mut conn).await?))
}
