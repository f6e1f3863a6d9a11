//! The Hugging Face Hub protocol subset that `huggingface_hub` and the `hf` CLI use
//! (the project's notes on the Hugging Face protocol), over the same records and permissions as the native API.
//!
//! Reads here: whoami, repository creation, model info, tree listings, paths info, refs, commits,
//! model listing, YAML validation; the download headers are on `/resolve` ([`super::files`]) and
//! uploads in [`super::hf_upload`]. Xet is refused with a message that tells clients to set
//! `HF_HUB_DISABLE_XET=1`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use sqlx::PgConnection;

use crate::auth::{self, Caller, Need};
use crate::db;
use crate::db::repos::{Repo, SearchQuery, SortKey};
use crate::db::types::{Gated, RefKind};
use crate::error::{ApiError, ApiResult};
use crate::error_code as code;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(whoami_v2)
        .service(create_repo)
        .service(validate_yaml)
        .service(list_models)
        .service(model_info)
        .service(model_info_at)
        .service(tree)
        .service(tree_dir)
        .service(paths_info)
        .service(refs)
        .service(commits)
        .service(xet_token);
}

/// Size of an LFS pointer file, which Hugging Face clients expect in `lfs.pointerSize`.
fn pointer_text(sha256: &str, size: i64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// The git object id of a file's LFS pointer: stable per content, 40 hex like git's.
fn pointer_oid(sha256: &str, size: i64) -> String {
    let text = pointer_text(sha256, size);
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", text.len()).as_bytes());
    hasher.update(text.as_bytes());
    hex::encode(hasher.finalize())
}

fn tree_oid(commit: &str, dir: &str) -> String {
    hex::encode(Sha1::digest(format!("tree {commit} {dir}").as_bytes()))
}

/// `true`, `True`, `1`: 0.x clients send Python's spelling.
fn flag(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The endpoint the client used (its `HF_ENDPOINT`, or the hub URL it called): URLs handed
/// back and written into documents are on that host.
pub(crate) fn endpoint(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Percent-decodes a path segment the client encoded with no safe characters (`refs%2Fpr%2F1`).
pub(super) fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[get("/api/whoami-v2")]
async fn whoami_v2(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let user = caller.require_user()?;
    let mut conn = state.db.acquire().await?;
    let orgs: Vec<Value> = db::accounts::user_orgs(&mut conn, user.id)
        .await?
        .into_iter()
        .map(|m| json!({"type": "org", "name": m.name, "roleInOrg": m.role}))
        .collect();
    let role = match user.scope {
        auth::Scope::Read => "read",
        auth::Scope::Write => "write",
    };
    Ok(HttpResponse::Ok().json(json!({
        "type": "user",
        "id": format!("user-{}", user.id),
        "name": user.name,
        "fullname": user.name,
        "isPro": false,
        "orgs": orgs,
        "auth": {"type": "access_token", "accessToken": {"displayName": format!("kaiyuan-token-{}", user.token_id), "role": role}},
    })))
}

#[derive(Deserialize)]
struct CreateRepo {
    name: String,
    organization: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    private: Option<bool>,
    visibility: Option<String>,
}

#[post("/api/repos/create")]
async fn create_repo(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<CreateRepo>,
) -> ApiResult<HttpResponse> {
    if body.kind.as_deref().is_some_and(|k| k != "model") {
        return Err(ApiError::bad_request(
            code::UNSUPPORTED_REPO_TYPE,
            "kaiyuan hosts model repositories only (repo_type=\"model\")",
        ));
    }
    let visibility = match (body.visibility.as_deref(), body.private) {
        (Some("private"), _) | (None, Some(true)) => db::repos::Visibility::Private,
        (Some("public") | None, _) => db::repos::Visibility::Public,
        (Some(other), _) => {
            return Err(ApiError::bad_request(
                code::INVALID_VISIBILITY,
                format!("visibility `{other}` is unknown"),
            ));
        }
    };
    // `name` may carry the namespace too (`org/name`).
    let (namespace, name) = match body.name.split_once('/') {
        Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
        None => (body.organization.clone(), body.name.clone()),
    };
    let base = endpoint(&req);
    match super::repos::create_repository(
        &state,
        &caller,
        namespace.as_deref(),
        &name,
        visibility,
        "",
    )
    .await
    {
        Ok((repo, _)) => {
            let url = format!("{base}/{}", repo.full_name());
            Ok(HttpResponse::Ok()
                .json(json!({"url": url, "name": repo.full_name(), "id": repo.full_name()})))
        }
        // `exist_ok=True` reads `url` from the 409 body, so it must be there.
        Err(e) if e.code == code::REPOSITORY_EXISTS => {
            let owner = namespace.unwrap_or_else(|| {
                caller
                    .user
                    .as_ref()
                    .map(|u| u.name.clone())
                    .unwrap_or_default()
            });
            Ok(HttpResponse::Conflict()
                .insert_header(("X-Error-Message", crate::error::header_text(&e.message)))
                .json(json!({"error": e.message, "url": format!("{base}/{owner}/{name}")})))
        }
        Err(e) => Err(e),
    }
}

/// The card checks run here once the licence engine exists; the body must always be JSON.
#[post("/api/validate-yaml")]
async fn validate_yaml(caller: Caller, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    caller.require_user()?;
    let Some(content) = body.get("content").and_then(Value::as_str) else {
        return Ok(HttpResponse::BadRequest().json(json!({"errors": [{"message": "send {\"content\": <README.md text>}"}], "warnings": []})));
    };
    // The licence engine's card checks come here; until then, a card without a licence is flagged.
    let mut warnings = Vec::new();
    if crate::domain::commits::front_matter_license(content).is_none() {
        warnings.push(json!({"message": "README.md declares no licence: add `license: <SPDX id>` to its YAML front matter so that adopters know their rights"}));
    }
    Ok(HttpResponse::Ok().json(json!({"errors": [], "warnings": warnings})))
}

/// One file of a tree listing, in the client's shape (every file is described as LFS, with its
/// sha256, which is also the download ETag).
fn file_entry(path: &str, sha256: &[u8], size: i64) -> Value {
    let hex = hex::encode(sha256);
    json!({
        "type": "file",
        "oid": pointer_oid(&hex, size),
        "size": size,
        "path": path,
        "lfs": {"oid": hex, "size": size, "pointerSize": pointer_text(&hex, size).len()},
    })
}

async fn load(
    conn: &mut PgConnection,
    caller: &Caller,
    namespace: &str,
    name: &str,
) -> Result<Repo, ApiError> {
    super::load_repo(conn, caller, namespace, name, Need::Read).await
}

async fn resolve(conn: &mut PgConnection, repo: &Repo, revision: &str) -> Result<String, ApiError> {
    super::commits::resolve_revision(conn, repo, &decode(revision)).await
}

/// Model info: the repository's fields, and one sibling per file. The siblings are typed so
/// that a large repository's list is written straight out, not built as a JSON tree first.
#[derive(Serialize)]
struct ModelInfo {
    #[serde(flatten)]
    fields: Value,
    siblings: Vec<Sibling>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Sibling {
    rfilename: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blob_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lfs: Option<SiblingLfs>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SiblingLfs {
    size: i64,
    sha256: String,
    pointer_size: usize,
}

async fn info_json(
    conn: &mut PgConnection,
    repo: &Repo,
    commit: &str,
    blobs: bool,
) -> Result<ModelInfo, ApiError> {
    // Every file, as the client's protocol asks (snapshot_download lists the siblings), read
    // from the path index alone; the scan summary counted in SQL.
    let files = db::commits::files(conn, repo.id, commit).await?;
    let siblings = files
        .into_iter()
        .map(|f| {
            if blobs {
                let hex = hex::encode(f.sha256);
                Sibling {
                    size: Some(f.size),
                    blob_id: Some(pointer_oid(&hex, f.size)),
                    lfs: Some(SiblingLfs {
                        size: f.size,
                        pointer_size: pointer_text(&hex, f.size).len(),
                        sha256: hex,
                    }),
                    rfilename: f.path,
                }
            } else {
                Sibling {
                    rfilename: f.path,
                    size: None,
                    blob_id: None,
                    lfs: None,
                }
            }
        })
        .collect();
    let counts = db::scans::verdict_counts(conn, repo.id, commit).await?;
    let summary = super::commits::ScanSummary::counted(
        counts
            .iter()
            .map(|(verdict, n)| (crate::domain::scan::file_status(*verdict), *n as usize)),
    );
    let mut fields = json!({
        "_id": format!("repo-{}", repo.id),
        "id": repo.full_name(),
        "modelId": repo.full_name(),
        "author": repo.namespace,
        "sha": commit,
        "private": !repo.is_public(),
        "gated": if repo.gated == Gated::None { json!(false) } else { json!(repo.gated) },
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": repo.license.iter().map(|l| format!("license:{l}")).collect::<Vec<_>>(),
        "createdAt": iso(repo.created_at),
        "lastModified": iso(repo.updated_at),
        "securityRepoStatus": {"scansDone": summary.pending == 0, "overall": summary.overall, "summary": summary},
    });
    if let Some(license) = &repo.license {
        fields["cardData"] = json!({"license": license});
    }
    Ok(ModelInfo { fields, siblings })
}

#[derive(Deserialize)]
struct InfoParams {
    blobs: Option<String>,
}

#[get("/api/models/{namespace}/{name}")]
async fn model_info(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<InfoParams>,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    let blobs = flag(query.blobs.as_deref());
    info_at(&state, &caller, (&namespace, &name), "main", blobs).await
}

#[get("/api/models/{namespace}/{name}/revision/{revision}")]
async fn model_info_at(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
    query: web::Query<InfoParams>,
) -> ApiResult<HttpResponse> {
    let (namespace, name, revision) = path.into_inner();
    let blobs = flag(query.blobs.as_deref());
    info_at(&state, &caller, (&namespace, &name), &revision, blobs).await
}

/// Model info at a revision (fetched first when the hub mirrors an upstream), with the licence
/// notice the owner's policy asks for.
async fn info_at(
    state: &web::Data<AppState>,
    caller: &Caller,
    (namespace, name): (&str, &str),
    revision: &str,
    blobs: bool,
) -> ApiResult<HttpResponse> {
    crate::mirror::ensure(state, caller, namespace, name, &decode(revision)).await?;
    let mut conn = state.db.acquire().await?;
    let repo = load(&mut conn, caller, namespace, name).await?;
    let commit = resolve(&mut conn, &repo, revision).await?;
    let mut response = HttpResponse::Ok();
    if let Some(notice) = super::files::license_notice(&mut conn, &repo, &commit).await? {
        response.insert_header(("X-HF-Warning", notice));
    }
    Ok(response.json(info_json(&mut conn, &repo, &commit, blobs).await?))
}

#[derive(Deserialize)]
struct TreeParams {
    recursive: Option<String>,
    /// Where the previous page ended (set by its `Link`): the last file's path, or a folder's
    /// path with a trailing `/`.
    cursor: Option<String>,
    limit: Option<usize>,
}

const TREE_PAGE: usize = 1000;

/// The folders of `path` under `prefix`, outermost first (`p/a/b/f` under `p/`: `p/a`, `p/a/b`).
fn folders_of<'a>(prefix: &str, path: &'a str) -> impl Iterator<Item = &'a str> {
    path.char_indices()
        .filter(move |(i, c)| *c == '/' && *i >= prefix.len())
        .map(move |(i, _)| &path[..i])
}

/// One page of a tree listing: its entries and, when more follow, the next page's cursor.
/// Recursive: the files in path order, each preceded by the folders it is the first file of
/// (those that the previous entry is not in). Not recursive: the entries directly in the folder,
/// one index probe each however large a sub-folder is.
async fn tree_page(
    conn: &mut PgConnection,
    range: &db::commits::FileRange<'_>,
    recursive: bool,
    cursor: Option<&str>,
    page: usize,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let commit = range.commit_id;
    let prefix = range.prefix;
    let mut entries = Vec::new();
    if !recursive {
        let rows = db::commits::children_page(conn, range, page as i64 + 1).await?;
        let more = rows.len() > page;
        let mut last = None;
        for f in rows.iter().take(page) {
            let key = match f.path[prefix.len()..].split_once('/') {
                Some((folder, _)) => {
                    let folder = format!("{prefix}{folder}");
                    entries.push(json!({"type": "directory", "oid": tree_oid(commit, &folder), "size": 0, "path": folder}));
                    format!("{folder}/")
                }
                None => {
                    entries.push(file_entry(&f.path, &f.sha256, f.size));
                    f.path.clone()
                }
            };
            last = Some(key);
        }
        return Ok((entries, last.filter(|_| more)));
    }
    let rows = db::commits::files_page(conn, range, page as i64 + 1).await?;
    // What the previous entry was: a file's path, or a folder's with its `/`.
    let mut previous = cursor.unwrap_or_default().to_string();
    let mut next = None;
    'files: for f in &rows {
        let new: Vec<&str> = folders_of(prefix, &f.path)
            .filter(|d| !previous.starts_with(&format!("{d}/")))
            .collect();
        for folder in new {
            if entries.len() == page {
                next = Some(previous);
                break 'files;
            }
            entries.push(json!({"type": "directory", "oid": tree_oid(commit, folder), "size": 0, "path": folder}));
            previous = format!("{folder}/");
        }
        if entries.len() == page {
            next = Some(previous);
            break;
        }
        entries.push(file_entry(&f.path, &f.sha256, f.size));
        previous = f.path.clone();
    }
    Ok((entries, next))
}

async fn tree_listing(
    state: &web::Data<AppState>,
    caller: &Caller,
    req: &HttpRequest,
    (namespace, name, revision): (String, String, String),
    dir: Option<String>,
    params: &TreeParams,
) -> ApiResult<HttpResponse> {
    crate::mirror::ensure(state, caller, &namespace, &name, &decode(&revision)).await?;
    let mut conn = state.db.acquire().await?;
    let repo = load(&mut conn, caller, &namespace, &name).await?;
    let commit = resolve(&mut conn, &repo, &revision).await?;
    let dir = dir
        .map(|d| decode(&d).trim_matches('/').to_string())
        .filter(|d| !d.is_empty());
    let prefix = dir.as_ref().map(|d| format!("{d}/")).unwrap_or_default();
    let recursive = flag(params.recursive.as_deref());
    let cursor = params.cursor.as_deref().filter(|c| !c.is_empty());
    let mut range = db::commits::FileRange::new(repo.id, &commit, &prefix, cursor);
    if let Some(folder) = cursor.filter(|c| recursive && c.ends_with('/') && *c > prefix.as_str()) {
        // A recursive page that ended on a folder resumes with the folder's first file.
        range.from = folder.to_string();
    }
    let page = params.limit.unwrap_or(TREE_PAGE).clamp(1, TREE_PAGE);
    let (mut body, next) = tree_page(&mut conn, &range, recursive, cursor, page).await?;
    if state.settings.xet.enabled {
        add_xet_hashes(&mut conn, &repo, &commit, &mut body).await?;
    }
    if dir.is_some() && cursor.is_none() && body.is_empty() {
        return Err(ApiError::not_found(
            code::ENTRY_NOT_FOUND,
            format!(
                "`{}` is not a folder at `{revision}` of `{}`",
                dir.unwrap_or_default(),
                repo.full_name()
            ),
        ));
    }
    let mut response = HttpResponse::Ok();
    if let Some(next) = next {
        let cursor: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        let next = format!(
            "{}{}?recursive={recursive}&limit={page}&cursor={cursor}",
            endpoint(req),
            req.path()
        );
        response.insert_header(("Link", format!("<{next}>; rel=\"next\"")));
    }
    Ok(response.json(body))
}

#[get("/api/models/{namespace}/{name}/tree/{revision}")]
async fn tree(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    query: web::Query<TreeParams>,
) -> ApiResult<HttpResponse> {
    tree_listing(&state, &caller, &req, path.into_inner(), None, &query).await
}

#[get("/api/models/{namespace}/{name}/tree/{revision}/{dir:.*}")]
async fn tree_dir(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
    query: web::Query<TreeParams>,
) -> ApiResult<HttpResponse> {
    let (namespace, name, revision, dir) = path.into_inner();
    tree_listing(
        &state,
        &caller,
        &req,
        (namespace, name, revision),
        Some(dir),
        &query,
    )
    .await
}

/// `paths=a&paths=b&expand=false`, form-encoded: entries for the paths that exist.
#[post("/api/models/{namespace}/{name}/paths-info/{revision}")]
async fn paths_info(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (namespace, name, revision) = path.into_inner();
    crate::mirror::ensure(&state, &caller, &namespace, &name, &decode(&revision)).await?;
    let wanted: Vec<String> = url::form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "paths")
        .map(|(_, v)| v.trim_matches('/').to_string())
        .collect();
    let mut conn = state.db.acquire().await?;
    let repo = load(&mut conn, &caller, &namespace, &name).await?;
    let commit = resolve(&mut conn, &repo, &revision).await?;
    // One primary-key probe per path, and one index probe per folder: never the whole tree.
    let mut out = Vec::new();
    for path in wanted {
        if let Some(f) = db::commits::file(&mut conn, repo.id, &commit, &path).await? {
            out.push(file_entry(&f.path, &f.sha256, f.size));
            continue;
        }
        let folder = format!("{path}/");
        let range = db::commits::FileRange::new(repo.id, &commit, &folder, None);
        if !path.is_empty()
            && !db::commits::files_page(&mut conn, &range, 1)
                .await?
                .is_empty()
        {
            out.push(json!({"type": "directory", "oid": tree_oid(&commit, &path), "size": 0, "path": path}));
        }
    }
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize)]
struct RefsParams {
    include_prs: Option<String>,
}

#[get("/api/models/{namespace}/{name}/refs")]
async fn refs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<RefsParams>,
) -> ApiResult<HttpResponse> {
    let (namespace, name) = path.into_inner();
    // A mirror lists what it holds: the default branch is fetched first, as model info does.
    crate::mirror::ensure(&state, &caller, &namespace, &name, "main").await?;
    let mut conn = state.db.acquire().await?;
    let repo = load(&mut conn, &caller, &namespace, &name).await?;
    let (mut branches, mut tags) = (Vec::new(), Vec::new());
    for r in db::commits::list_refs(&mut conn, repo.id).await? {
        if r.kind == RefKind::Branch {
            branches.push(json!({"name": r.name, "ref": format!("refs/heads/{}", r.name), "targetCommit": r.commit_id}));
        } else {
            tags.push(json!({"name": r.name, "ref": format!("refs/tags/{}", r.name), "targetCommit": r.commit_id}));
        }
    }
    let mut body = json!({"branches": branches, "converts": [], "tags": tags});
    if flag(query.include_prs.as_deref()) {
        body["pullRequests"] = json!([]);
    }
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
struct CommitsParams {
    /// Continue after this commit (set by the `Link` of the previous page).
    after: Option<String>,
}

const COMMITS_PAGE: i64 = 50;

#[get("/api/models/{namespace}/{name}/commits/{revision}")]
async fn commits(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    query: web::Query<CommitsParams>,
) -> ApiResult<HttpResponse> {
    let (namespace, name, revision) = path.into_inner();
    crate::mirror::ensure(&state, &caller, &namespace, &name, &decode(&revision)).await?;
    let mut conn = state.db.acquire().await?;
    let repo = load(&mut conn, &caller, &namespace, &name).await?;
    let start = match &query.after {
        Some(after) => after.clone(),
        None => resolve(&mut conn, &repo, &revision).await?,
    };
    let rows = db::commits::history(&mut conn, repo.id, &start, COMMITS_PAGE + 1).await?;
    let has_more = rows.len() as i64 > COMMITS_PAGE;
    let page: Vec<Value> = rows
        .iter()
        .take(COMMITS_PAGE as usize)
        .map(|c| {
            let title = c.message.lines().next().unwrap_or_default();
            json!({"id": c.id, "title": title, "message": c.message, "date": iso(c.created_at), "authors": [{"user": c.author_name}]})
        })
        .collect();
    let mut response = HttpResponse::Ok();
    if has_more && let Some(next) = rows.get(COMMITS_PAGE as usize) {
        let url = format!("{}{}?after={}", endpoint(&req), req.path(), next.id);
        response.insert_header(("Link", format!("<{url}>; rel=\"next\"")));
    }
    Ok(response.json(page))
}

#[derive(Deserialize)]
struct ListParams {
    search: Option<String>,
    author: Option<String>,
    #[serde(default)]
    filter: Vec<String>,
    sort: Option<String>,
    limit: Option<i64>,
    full: Option<String>,
    #[serde(rename = "cardData")]
    card_data: Option<String>,
    cursor: Option<String>,
}

const MODELS_PAGE: i64 = 100;

#[get("/api/models")]
async fn list_models(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    // Repeated keys (`filter=a&filter=b`) need the multi-value form parser.
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let params = ListParams {
        search: get("search"),
        author: get("author"),
        filter: pairs
            .iter()
            .filter(|(k, _)| k == "filter")
            .map(|(_, v)| v.clone())
            .collect(),
        sort: get("sort"),
        limit: get("limit").and_then(|v| v.parse().ok()),
        full: get("full"),
        card_data: get("cardData"),
        cursor: get("cursor"),
    };
    // `filter=license:x` is the licence; any other filter is a tag of the card, as on the web.
    let license = params
        .filter
        .iter()
        .find_map(|f| f.strip_prefix("license:"));
    let tags: Vec<&str> = params
        .filter
        .iter()
        .filter(|f| !f.starts_with("license:"))
        .map(String::as_str)
        .collect();
    let text = params
        .search
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty());
    let sort = match params.sort.as_deref() {
        Some("createdAt") => SortKey::Created,
        Some("lastModified") => SortKey::Updated,
        // A search is ranked unless another order is asked for.
        _ if text.is_some() => SortKey::Relevance,
        _ => SortKey::Updated,
    };
    let page = params.limit.unwrap_or(MODELS_PAGE).clamp(1, MODELS_PAGE);
    let after = params
        .cursor
        .as_deref()
        .and_then(super::repos::decode_cursor);
    let query = SearchQuery {
        text: params.search.as_deref(),
        namespace: params.author.as_deref(),
        license,
        tags,
        sort,
        after,
        limit: page + 1,
        viewer_id: caller.id(),
        viewer_is_admin: caller.user.as_ref().is_some_and(|u| u.is_admin),
        ..Default::default()
    };
    let mut conn = state.db.acquire().await?;
    let mut repos = db::repos::search(&mut conn, &query).await?;
    let more = repos.len() as i64 > page;
    repos.truncate(page as usize);
    let full = flag(params.full.as_deref());
    let card = flag(params.card_data.as_deref());
    let mut out = Vec::with_capacity(repos.len());
    for repo in &repos {
        let item = if full {
            let commit = resolve(&mut conn, repo, "main").await?;
            serde_json::to_value(info_json(&mut conn, repo, &commit, false).await?)
                .map_err(|e| ApiError::internal(anyhow::Error::from(e)))?
        } else {
            json!({"id": repo.full_name(), "modelId": repo.full_name(), "author": repo.namespace, "private": !repo.is_public(),
                   "createdAt": iso(repo.created_at), "lastModified": iso(repo.updated_at), "downloads": 0, "likes": 0,
                   "tags": repo.license.iter().map(|l| format!("license:{l}")).collect::<Vec<_>>()})
        };
        let mut item = item;
        if card && let Some(license) = &repo.license {
            item["cardData"] = json!({"license": license});
        }
        out.push(item);
    }
    let mut response = HttpResponse::Ok();
    if more
        && params.limit.is_none()
        && let Some(last) = repos.last()
    {
        let position = match query.after {
            Some(db::repos::Cursor::Offset(n)) => n,
            _ => 0,
        };
        let next = super::repos::next_cursor(sort, text.is_some(), position + page, last);
        let cursor = super::repos::encode_cursor(&next);
        let mut next: Vec<(String, String)> =
            pairs.into_iter().filter(|(k, _)| k != "cursor").collect();
        next.push(("cursor".into(), cursor));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next)
            .finish();
        response.insert_header((
            "Link",
            format!("<{}/api/models?{query}>; rel=\"next\"", endpoint(&req)),
        ));
    }
    Ok(response.json(out))
}

/// Short-lived CAS tokens for Xet transfers, scoped to one repository and to read or write: a
/// write token needs a hub token that may write (a read-scoped token gets 403), a read token
/// the same gates as a download (visibility, gating, licences to accept). The answer carries the
/// token both as JSON (the specification) and as headers (what huggingface_hub reads).
#[get("/api/models/{namespace}/{name}/{kind:xet-(write|read)-token}/{revision}")]
async fn xet_token(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (namespace, name, kind, revision) = path.into_inner();
    if !state.settings.xet.enabled {
        let message = "Xet transfers are disabled on this hub: set HF_HUB_DISABLE_XET=1 so that huggingface_hub uses plain HTTP/LFS";
        return Ok(HttpResponse::build(StatusCode::NOT_IMPLEMENTED)
            .insert_header(("X-Error-Code", "XetNotSupported"))
            .insert_header(("X-Error-Message", message))
            .json(ApiError::body(code::XET_DISABLED, message)));
    }
    let write = kind == "xet-write-token";
    if write {
        caller.require_writer()?;
    }
    let mut conn = state.db.acquire().await?;
    let need = if write { Need::Write } else { Need::Read };
    let repo = super::load_repo(&mut conn, &caller, &namespace, &name, need).await?;
    let commit = resolve(&mut conn, &repo, &revision).await?;
    if !write {
        crate::mirror::licence_gate::recheck(&state, repo.id).await?;
        super::access::authorize_download(&mut conn, &caller, &repo).await?;
        crate::licensing::authorize_license(&mut conn, &state.store, &caller, &repo, &commit)
            .await?;
        if let Some(refused) = crate::mirror::refusal(&mut conn, repo.id, &commit).await? {
            return Err(refused);
        }
    }
    let expires = chrono::Utc::now().timestamp() + state.settings.xet.token_secs as i64;
    let token = crate::xet::token::CasToken {
        repository_id: repo.id,
        write,
        user_id: caller.id(),
        expires,
    }
    .encode(&super::hf_upload::signing_key(&state).await?);
    let cas_url = format!("{}/cas", endpoint(&req));
    Ok(HttpResponse::Ok()
        .insert_header(("X-Xet-Cas-Url", cas_url.clone()))
        .insert_header(("X-Xet-Access-Token", token.clone()))
        .insert_header(("X-Xet-Token-Expiration", expires.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"accessToken": token, "exp": expires, "casUrl": cas_url})))
}

/// Adds `xetHash` to the file entries of a listing whose bytes the CAS can serve (and only
/// to those: a client given a hash the CAS cannot serve fails its download).
async fn add_xet_hashes(
    conn: &mut PgConnection,
    repo: &db::repos::Repo,
    commit: &str,
    entries: &mut [Value],
) -> Result<(), ApiError> {
    let wanted: Vec<Vec<u8>> = entries
        .iter()
        .filter_map(|e| e["lfs"]["oid"].as_str())
        .filter_map(|oid| hex::decode(oid).ok())
        .collect();
    let hashes = crate::xet::offered_hashes(conn, repo.id, commit, &wanted).await?;
    for entry in entries.iter_mut() {
        let sha = entry["lfs"]["oid"]
            .as_str()
            .and_then(|oid| hex::decode(oid).ok());
        if let Some(file_hash) = sha.and_then(|sha| hashes.get(&sha)) {
            entry["xetHash"] = json!(file_hash.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_revisions_and_reads_python_booleans() {
        assert_eq!(decode("refs%2Fpr%2F1"), "refs/pr/1");
        assert_eq!(decode("main"), "main");
        assert_eq!(decode("100%"), "100%");
        for yes in ["true", "True", "1"] {
            assert!(flag(Some(yes)));
        }
        assert!(!flag(Some("False")) && !flag(None));
    }

    #[test]
    fn pointer_oids_are_git_blob_ids() {
        // git hash-object of the pointer text of an empty file.
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(pointer_text(sha, 0).len(), 126);
        assert_eq!(pointer_oid(sha, 0).len(), 40);
    }
}
