//! Repositories: create, get, search, update settings, soft delete, audit trail.

use crate::domain::repos::NewRepository;
use crate::domain::{self};
use crate::error_code as code;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Need};
use crate::db;
use crate::db::repos::{Cursor, Repo, SearchQuery, SortKey, Visibility};
use crate::db::types::Gated;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create_repo)
        .service(search_repos)
        .service(get_repo)
        .service(update_repo)
        .service(delete_repo)
        .service(repo_audit);
}

#[derive(Serialize, ToSchema)]
pub struct RepoInfo {
    /// `namespace/name`.
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub visibility: Visibility,
    pub gated: Gated,
    pub description: String,
    pub license: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Repo> for RepoInfo {
    fn from(r: &Repo) -> Self {
        Self {
            id: r.full_name(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            visibility: r.visibility,
            gated: r.gated,
            description: r.description.clone(),
            license: r.license.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RepoDetail {
    #[serde(flatten)]
    pub info: RepoInfo,
    /// The model card (README.md of `main`).
    pub card: String,
    /// Commit id of `main`.
    pub head: Option<String>,
    /// Scan status counts of the files on `main`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_summary: Option<super::commits::ScanSummary>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRepo {
    /// Owner namespace; defaults to the signed-in user.
    pub namespace: Option<String>,
    pub name: String,
    /// `public` (default) or `private`.
    pub visibility: Option<String>,
    pub description: Option<String>,
}

fn parse_visibility(v: Option<&str>) -> Result<Option<Visibility>, ApiError> {
    v.map(|word| {
        Visibility::parse(word).ok_or_else(|| {
            ApiError::unprocessable(
                code::INVALID_VISIBILITY,
                format!("visibility `{word}` is unknown: use `public` or `private`"),
            )
        })
    })
    .transpose()
}

/// Creates a repository with an empty first commit on `main`.
#[utoipa::path(post, path = "/api/v1/repos", request_body = NewRepo, security(("bearer" = [])),
    responses((status = 201, body = RepoDetail), super::openapi_responses::JsonWriteErrors))]
#[post("/api/v1/repos")]
pub async fn create_repo(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewRepo>,
) -> ApiResult<HttpResponse> {
    let visibility = parse_visibility(body.visibility.as_deref())?.unwrap_or_default();
    let description = body.description.clone().unwrap_or_default();
    let (repo, head) = create_repository(
        &state,
        &caller,
        body.namespace.as_deref(),
        &body.name,
        visibility,
        &description,
    )
    .await?;
    Ok(super::created(&RepoDetail {
        info: RepoInfo::from(&repo),
        card: repo.card.clone(),
        head: Some(head),
        scan_summary: None,
    }))
}

/// Creates a repository with an empty first commit on `main` (`domain::repos::create`), for
/// every surface that creates one. Returns the repository and the commit id of `main`.
pub async fn create_repository(
    state: &AppState,
    caller: &Caller,
    namespace: Option<&str>,
    name: &str,
    visibility: Visibility,
    description: &str,
) -> Result<(Repo, String), ApiError> {
    caller.require_writer()?;
    let new = NewRepository {
        namespace,
        name,
        visibility,
        description,
    };
    let grace = state.settings.gc.deleted_repo_grace_days;
    Ok(domain::repos::create(&state.db, caller, new, grace).await?)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Free text over name, description and card.
    pub q: Option<String>,
    pub namespace: Option<String>,
    pub license: Option<String>,
    /// `relevance` (the default with `q`: name equal to the text, then name, description and
    /// card matches, paged by position), `updated` (the default without `q`), `created` or
    /// `name`.
    pub sort: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchPage {
    pub items: Vec<RepoInfo>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub fn encode_cursor(cursor: &Cursor) -> String {
    let raw = match cursor {
        Cursor::Time(t, id) => format!("t:{}:{id}", t.timestamp_micros()),
        Cursor::Name(n, id) => format!("n:{n}:{id}"),
        Cursor::Offset(n) => format!("o:{n}:0"),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_cursor(s: &str) -> Option<Cursor> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (kind, rest) = raw.split_once(':')?;
    let (value, id) = rest.rsplit_once(':')?;
    let id: i64 = id.parse().ok()?;
    match kind {
        "t" => Some(Cursor::Time(
            DateTime::from_timestamp_micros(value.parse().ok()?)?,
            id,
        )),
        "n" => Some(Cursor::Name(value.to_string(), id)),
        "o" => value.parse().ok().filter(|n| *n >= 0).map(Cursor::Offset),
        _ => None,
    }
}

/// Where the page after the one ending with `last` starts: the sort key of `last`, or, for a
/// ranking, the position after this page (`end`).
pub fn next_cursor(sort: SortKey, ranked_text: bool, end: i64, last: &Repo) -> Cursor {
    match sort {
        SortKey::Relevance if ranked_text => Cursor::Offset(end),
        SortKey::Updated | SortKey::Relevance => Cursor::Time(last.updated_at, last.id),
        SortKey::Created => Cursor::Time(last.created_at, last.id),
        SortKey::Name => Cursor::Name(last.full_name().to_lowercase(), last.id),
    }
}

/// Lists and searches the repositories the caller can see.
#[utoipa::path(get, path = "/api/v1/repos",
    params(SearchParams), security((), ("bearer" = [])),
    responses((status = 200, body = SearchPage), super::openapi_responses::BadRequest,
              super::openapi_responses::Unauthorized, super::openapi_responses::Unavailable))]
#[get("/api/v1/repos")]
pub async fn search_repos(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<SearchParams>,
) -> ApiResult<HttpResponse> {
    let text = params.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let sort = match params.sort.as_deref() {
        // A text search is ranked unless another order is asked for.
        None if text.is_some() => SortKey::Relevance,
        None | Some("updated") => SortKey::Updated,
        Some("created") => SortKey::Created,
        Some("name") => SortKey::Name,
        Some("relevance") => SortKey::Relevance,
        Some(other) => {
            return Err(ApiError::bad_request(
                code::INVALID_SORT,
                format!("sort `{other}` is unknown: use relevance, updated, created or name"),
            ));
        }
    };
    let after = match &params.cursor {
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            ApiError::bad_request(
                code::INVALID_CURSOR,
                "the cursor is malformed; use the `next_cursor` of a previous page",
            )
        })?),
        None => None,
    };
    let limit = params.limit.unwrap_or(30);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            code::INVALID_LIMIT,
            "limit must be between 1 and 500",
        ));
    }
    let query = SearchQuery {
        text: params.q.as_deref(),
        namespace: params.namespace.as_deref(),
        license: params.license.as_deref(),
        sort,
        after,
        limit: limit + 1,
        viewer_id: caller.id(),
        viewer_is_admin: caller.user.as_ref().is_some_and(|u| u.is_admin),
        ..Default::default()
    };
    let mut conn = state.db.acquire().await?;
    let position = match query.after {
        Some(Cursor::Offset(n)) => n,
        _ => 0,
    };
    let mut repos = db::repos::search(&mut conn, &query).await?;
    let next_cursor = if repos.len() as i64 > limit {
        repos.truncate(limit as usize);
        repos
            .last()
            .map(|r| encode_cursor(&next_cursor(sort, text.is_some(), position + limit, r)))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(SearchPage {
        items: repos.iter().map(RepoInfo::from).collect(),
        next_cursor,
    }))
}

/// One repository, its card and the head of `main`.
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}",
    params(super::openapi_responses::RepoPath), security((), ("bearer" = [])),
    responses((status = 200, body = RepoDetail), super::openapi_responses::ReadErrors))]
#[get("/api/v1/repos/{namespace}/{name}")]
pub async fn get_repo(
    state: web::Data<AppState>,
    super::ReadRepo(repo): super::ReadRepo,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let head = db::commits::resolve(&mut conn, repo.id, "main").await?;
    let scan_summary = match &head {
        Some(head) => {
            let files: Vec<super::commits::FileInfo> =
                db::scans::files_of_commit(&mut conn, repo.id, head)
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect();
            Some(super::commits::ScanSummary::of(&files))
        }
        None => None,
    };
    Ok(HttpResponse::Ok().json(RepoDetail {
        info: RepoInfo::from(&repo),
        card: repo.card.clone(),
        head,
        scan_summary,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoSettings {
    pub visibility: Option<String>,
    pub description: Option<String>,
    /// `none`, `auto` (access requests accepted at once) or `manual` (an admin decides).
    pub gated: Option<String>,
}

/// Changes visibility or description (repository admins).
#[utoipa::path(patch, path = "/api/v1/repos/{namespace}/{name}",
    params(super::openapi_responses::RepoPath), request_body = RepoSettings, security(("bearer" = [])),
    responses((status = 200, body = RepoInfo), super::openapi_responses::JsonAuthErrors))]
#[patch("/api/v1/repos/{namespace}/{name}")]
pub async fn update_repo(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<RepoSettings>,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    let visibility = parse_visibility(body.visibility.as_deref())?;
    if body.description.as_ref().is_some_and(|d| d.len() > 4096) {
        return Err(ApiError::unprocessable(
            code::DESCRIPTION_TOO_LONG,
            "keep the description under 4096 bytes",
        ));
    }
    let repo = {
        let mut conn = state.db.acquire().await?;
        super::load_repo(&mut conn, &caller, &namespace, &name, Need::Admin).await?
    };
    let gated = match body.gated.as_deref() {
        None => None,
        Some(word) if Gated::parse(word).is_some() => Gated::parse(word),
        Some(other) => {
            return Err(ApiError::unprocessable(
                code::INVALID_GATING,
                format!("gated `{other}` is unknown: use none, auto or manual"),
            ));
        }
    };
    let settings = domain::repos::Settings {
        visibility,
        description: body.description.as_deref(),
        gated,
    };
    let repo = domain::repos::update(&state.db, &caller, &repo, settings).await?;
    Ok(HttpResponse::Ok().json(RepoInfo::from(&repo)))
}

/// Deletes a repository (repository admins). It disappears at once; its data and name are kept
/// for the grace period, then purged.
#[utoipa::path(delete, path = "/api/v1/repos/{namespace}/{name}",
    params(super::openapi_responses::RepoPath), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), super::openapi_responses::AuthErrors))]
#[delete("/api/v1/repos/{namespace}/{name}")]
pub async fn delete_repo(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    let repo = {
        let mut conn = state.db.acquire().await?;
        super::load_repo(&mut conn, &caller, &namespace, &name, Need::Admin).await?
    };
    caller.require_writer()?;
    let grace = state.settings.gc.deleted_repo_grace_days;
    domain::repos::delete(&state.db, &caller, &repo, grace).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The audit trail of a repository (repository admins).
#[utoipa::path(get, path = "/api/v1/repos/{namespace}/{name}/audit",
    params(super::openapi_responses::RepoPath), security(("bearer" = [])),
    responses((status = 200, description = "the repository's audit events"), super::openapi_responses::AuthErrors))]
#[get("/api/v1/repos/{namespace}/{name}/audit")]
pub async fn repo_audit(
    state: web::Data<AppState>,
    super::AdminRepo(repo): super::AdminRepo,
) -> ApiResult<HttpResponse> {
    let mut conn = state.db.acquire().await?;
    let events =
        db::audit::list_for_target(&mut conn, &format!("repo:{}", repo.full_name())).await?;
    Ok(HttpResponse::Ok().json(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        for c in [
            Cursor::Time(t, 42),
            Cursor::Name("org/my.model-1".into(), 7),
            Cursor::Offset(60),
        ] {
            assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        }
        assert_eq!(decode_cursor("not-a-cursor"), None);
    }
}
