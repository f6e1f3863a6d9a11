//! HTTP routes. Handlers are thin: parse, authorise, call the domain, map errors.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod cas;
pub mod commits;
pub mod files;
pub mod hf;
pub mod hf_upload;
pub mod licenses;
pub mod mirror;
pub mod notifications;
pub mod openapi_responses;
pub mod ops;
pub mod provenance;
pub mod repos;
pub mod reviews;
pub mod tiles;
pub mod tlog;
pub mod uploads;
pub mod verification;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use sqlx::PgConnection;

use crate::auth::{self, Caller, Need};
use crate::config::Settings;
use crate::db::repos::Repo;
use crate::error::ApiError;
use crate::error_code as code;

pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(settings.limits.max_json_body)
            .error_handler(json_error),
    )
    .app_data(web::PathConfig::default().error_handler(path_error))
    .app_data(web::QueryConfig::default().error_handler(query_error));
    ops::configure(cfg);
    access::configure(cfg);
    hf::configure(cfg);
    hf_upload::configure(cfg);
    cas::configure(cfg);
    accounts::configure(cfg);
    audit::configure(cfg);
    repos::configure(cfg);
    commits::configure(cfg);
    uploads::configure(cfg);
    licenses::configure(cfg);
    mirror::configure(cfg);
    provenance::configure(cfg);
    verification::configure(cfg);
    tlog::configure(cfg);
    tiles::configure(cfg);
    reviews::configure(cfg);
    notifications::configure(cfg);
    files::configure(cfg);
    // Pages last: `/{namespace}/{name}` must not shadow any API or Hugging Face route.
    crate::web::configure(cfg);
    cfg.default_service(web::to(unknown_route));
}

async fn unknown_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed = documented_methods(req.path());
    if !allowed.is_empty() {
        let allow = allowed.join(", ");
        let mut response = ApiError::new(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            code::METHOD_NOT_ALLOWED,
            format!(
                "{} does not answer {}; use {allow}",
                req.path(),
                req.method()
            ),
        )
        .error_response();
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
            response
                .headers_mut()
                .insert(actix_web::http::header::ALLOW, value);
        }
        return Ok(response);
    }
    Err(ApiError::not_found(
        code::ROUTE_NOT_FOUND,
        format!(
            "no route for {} {}; see /api/v1/openapi.json",
            req.method(),
            req.path()
        ),
    ))
}

/// The methods the OpenAPI document lists for the operation whose template matches `path`
/// (HEAD wherever GET is), empty when no documented operation matches.
fn documented_methods(path: &str) -> Vec<&'static str> {
    use std::sync::OnceLock;
    use utoipa::OpenApi;
    type Templates = Vec<(Vec<String>, Vec<&'static str>)>;
    static TEMPLATES: OnceLock<Templates> = OnceLock::new();
    let templates = TEMPLATES.get_or_init(|| {
        ops::ApiDoc::openapi()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let operations = [
                    ("GET", item.get.is_some()),
                    ("HEAD", item.get.is_some() || item.head.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ];
                let methods = operations
                    .into_iter()
                    .filter_map(|(m, present)| present.then_some(m))
                    .collect();
                (template.split('/').map(str::to_owned).collect(), methods)
            })
            .collect()
    });
    let segments: Vec<&str> = path.split('/').collect();
    let mut methods: Vec<&'static str> = templates
        .iter()
        .filter(|(template, _)| segments_match(template.iter().map(String::as_str), &segments))
        .flat_map(|(_, methods)| methods.iter().copied())
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// Whether `path` is an instance of the route `template` (each `{param}` one non-empty segment).
pub fn path_matches(template: &str, path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    segments_match(template.split('/'), &segments)
}

fn segments_match<'a>(template: impl Iterator<Item = &'a str>, segments: &[&str]) -> bool {
    let template: Vec<&str> = template.collect();
    template.len() == segments.len()
        && template
            .iter()
            .zip(segments)
            .all(|(t, s)| (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s)
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::too_large(
                code::REQUEST_TOO_LARGE,
                format!("{err}; large files go through the upload endpoint"),
            )
        }
        JsonPayloadError::ContentType => ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::UNSUPPORTED_MEDIA_TYPE,
            "send the request body as JSON with `Content-Type: application/json`",
        ),
        JsonPayloadError::Deserialize(e) => ApiError::unprocessable(
            code::INVALID_JSON,
            format!("the JSON body does not fit: {e}"),
        ),
        _ => ApiError::bad_request(code::INVALID_BODY, err.to_string()),
    };
    api.into()
}

fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(code::INVALID_PATH, err.to_string()).into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(code::INVALID_QUERY, format!("bad query string: {err}")).into()
}

/// Loads the live repository `namespace/name` and checks that the caller may do `need` on it;
/// a repository the caller may not see answers exactly as a missing one.
pub async fn load_repo(
    conn: &mut PgConnection,
    caller: &Caller,
    namespace: &str,
    name: &str,
    need: Need,
) -> Result<Repo, ApiError> {
    let repo = crate::db::repos::find_live(conn, namespace, name)
        .await?
        .ok_or_else(|| auth::repo_not_found(namespace, name))?;
    auth::authorize_repo(conn, caller, &repo, (namespace, name), need).await?;
    Ok(repo)
}

/// A namespace and a check of the caller's role on it: 404 for namespaces the caller cannot
/// see (so private membership does not leak), 403 when the role is too weak.
pub async fn load_namespace(
    conn: &mut PgConnection,
    caller: &Caller,
    name: &str,
    need: crate::db::accounts::Role,
) -> Result<crate::db::accounts::Namespace, ApiError> {
    let not_found = || {
        ApiError::not_found(
            code::NAMESPACE_NOT_FOUND,
            format!("namespace `{name}` does not exist or you are not a member"),
        )
    };
    let ns = crate::db::accounts::find_namespace(conn, name)
        .await?
        .ok_or_else(not_found)?;
    let role = auth::namespace_role(conn, caller, ns.id, ns.kind)
        .await?
        .ok_or_else(not_found)?;
    if role < need {
        return Err(ApiError::forbidden(
            code::INSUFFICIENT_ROLE,
            format!(
                "you need the `{}` role on `{name}` to do this",
                need.as_str()
            ),
        ));
    }
    Ok(ns)
}

/// A repository the caller may read, and the commit a revision (default `main`) names.
pub async fn load_revision(
    conn: &mut PgConnection,
    caller: &Caller,
    namespace: &str,
    name: &str,
    revision: Option<&str>,
) -> Result<(Repo, String), ApiError> {
    let repo = load_repo(conn, caller, namespace, name, Need::Read).await?;
    let commit = commits::resolve_revision(conn, &repo, revision.unwrap_or("main")).await?;
    Ok((repo, commit))
}

/// What most read routes open with: the repository the path's `{namespace}` and `{name}` name,
/// which the caller may read (404 otherwise, exactly as a missing one), and the commit the
/// `revision` query parameter names (default `main`).
pub struct RepoAt {
    pub repo: Repo,
    pub commit: String,
}

/// What a repository extractor takes from the request: the state, the caller and the path's
/// `{namespace}` and `{name}`.
struct PathRepo {
    state: Option<web::Data<crate::state::AppState>>,
    caller: Caller,
    namespace: String,
    name: String,
}

impl PathRepo {
    fn of(req: &HttpRequest) -> Self {
        let segment = |key: &str| req.match_info().get(key).unwrap_or_default().to_string();
        PathRepo {
            state: req.app_data::<web::Data<crate::state::AppState>>().cloned(),
            caller: actix_web::HttpMessage::extensions(req)
                .get::<Caller>()
                .cloned()
                .unwrap_or_default(),
            namespace: segment("namespace"),
            name: segment("name"),
        }
    }

    async fn load(
        self,
        need: Need,
    ) -> Result<(Repo, sqlx::pool::PoolConnection<sqlx::Postgres>), ApiError> {
        let state = self
            .state
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
        let mut conn = state.db.acquire().await?;
        let repo = load_repo(&mut conn, &self.caller, &self.namespace, &self.name, need).await?;
        Ok((repo, conn))
    }
}

type Extracted<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ApiError>>>>;

impl actix_web::FromRequest for RepoAt {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let path = PathRepo::of(req);
        let revision = web::Query::<provenance::RevisionQuery>::from_query(req.query_string())
            .map(|q| q.revision().map(str::to_owned))
            .map_err(|e| {
                ApiError::bad_request(code::INVALID_QUERY, format!("bad query string: {e}"))
            });
        Box::pin(async move {
            let revision = revision?;
            let (repo, mut conn) = path.load(Need::Read).await?;
            let revision = revision.as_deref().unwrap_or("main");
            let commit = commits::resolve_revision(&mut conn, &repo, revision).await?;
            Ok(RepoAt { repo, commit })
        })
    }
}

macro_rules! repo_extractors {
    ($($(#[$doc:meta])* $name:ident => $need:expr;)+) => {$(
        $(#[$doc])*
        pub struct $name(pub Repo);

        impl actix_web::FromRequest for $name {
            type Error = ApiError;
            type Future = Extracted<Self>;

            fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
                let path = PathRepo::of(req);
                Box::pin(async move { Ok($name(path.load($need).await?.0)) })
            }
        }
    )+};
}

repo_extractors! {
    /// The repository of the path's `{namespace}/{name}`, which the caller may read (404
    /// otherwise, exactly as a missing one).
    ReadRepo => Need::Read;
    /// The same, where the caller has the `write` role (403 otherwise).
    WriteRepo => Need::Write;
    /// The same, where the caller has the `admin` role (403 otherwise).
    AdminRepo => Need::Admin;
}

/// The namespace of the path's `{namespace}`, where the caller has a role (404 otherwise, so
/// that private membership does not leak); a route that changes state also needs a write token.
struct PathNamespace(PathRepo, bool);

impl PathNamespace {
    fn of(req: &HttpRequest) -> Self {
        PathNamespace(PathRepo::of(req), !req.method().is_safe())
    }

    async fn load(
        self,
        need: crate::db::accounts::Role,
    ) -> Result<crate::db::accounts::Namespace, ApiError> {
        let PathNamespace(path, writes) = self;
        if writes {
            path.caller.require_writer()?;
        }
        let state = path
            .state
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
        let mut conn = state.db.acquire().await?;
        load_namespace(&mut conn, &path.caller, &path.namespace, need).await
    }
}

macro_rules! namespace_extractors {
    ($($(#[$doc:meta])* $name:ident => $need:expr;)+) => {$(
        $(#[$doc])*
        pub struct $name(pub crate::db::accounts::Namespace);

        impl actix_web::FromRequest for $name {
            type Error = ApiError;
            type Future = Extracted<Self>;

            fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
                let path = PathNamespace::of(req);
                Box::pin(async move { Ok($name(path.load($need).await?)) })
            }
        }
    )+};
}

namespace_extractors! {
    /// The path's namespace, where the caller has any role.
    NamespaceMember => crate::db::accounts::Role::Read;
    /// The path's namespace, where the caller has the `admin` role (403 otherwise).
    NamespaceAdmin => crate::db::accounts::Role::Admin;
}

/// `201 Created` with a JSON body.
pub fn created<T: serde::Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Created().json(body)
}
