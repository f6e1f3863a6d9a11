//! Pages that are not about one repository: home and search, sign-in, new repository, tokens,
//! namespaces and the reviewer queue.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::render::{WebError, WebResult, render};
use super::session::{self, check_csrf, redirect};
use crate::auth::{self, Caller};
use crate::db;
use crate::db::types::NamespaceKind;
use crate::domain::scan;
use crate::error::ApiError;
use crate::error_code as code;
use crate::state::AppState;

/// Search filters, all optional; the same names as the form fields.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct Filters {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub namespace: String,
    /// An SPDX id or expression (declared or effective).
    #[serde(default)]
    pub license: String,
    /// A licence category of the catalog (`permissive`, `copyleft`, `open-rail`...).
    #[serde(default)]
    pub category: String,
    /// `yes`: the owner's policy allows commercial use; `no`: it does not.
    #[serde(default)]
    pub commercial: String,
    /// A card tag or `pipeline_tag`.
    #[serde(default)]
    pub tag: String,
    /// `clean`, `quarantined` or `pending`.
    #[serde(default)]
    pub scan: String,
    /// `passed`, `failed`, `error`, `pending`, `running` or `none`.
    #[serde(default)]
    pub verification: String,
    /// `updated` (default), `created` or `name`.
    #[serde(default)]
    pub sort: String,
    /// 1-based page of results.
    #[serde(default)]
    pub page: Option<u32>,
}

/// Repositories the viewer may see that match `f` (the one search of `db::repos`), with their
/// head's licence decision, scan and verification state.
pub async fn search_models(
    conn: &mut PgConnection,
    caller: &Caller,
    f: &Filters,
    limit: i64,
    offset: i64,
) -> Result<Vec<Value>, ApiError> {
    fn given(v: &str) -> Option<&str> {
        Some(v.trim()).filter(|v| !v.is_empty())
    }
    let query = db::repos::SearchQuery {
        text: given(&f.q),
        namespace: given(&f.namespace),
        license: given(&f.license),
        tags: given(&f.tag).into_iter().collect(),
        category: given(&f.category),
        commercial: match f.commercial.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        scan: given(&f.scan).filter(|s| scan_filters().contains(s)),
        verification: given(&f.verification),
        sort: match f.sort.as_str() {
            "name" => db::repos::SortKey::Name,
            "created" => db::repos::SortKey::Created,
            "updated" => db::repos::SortKey::Updated,
            // A text search is ranked unless another order is asked for.
            _ => db::repos::SortKey::Relevance,
        },
        offset,
        limit,
        viewer_id: caller.id(),
        viewer_is_admin: caller.user.as_ref().is_some_and(|u| u.is_admin),
        ..Default::default()
    };
    let repos = db::repos::search(conn, &query).await?;
    let ids: Vec<i64> = repos.iter().map(|r| r.id).collect();
    let facts: std::collections::HashMap<i64, db::repos::HeadFacts> =
        db::repos::head_facts(conn, &ids)
            .await?
            .into_iter()
            .map(|f| (f.id, f))
            .collect();
    Ok(repos
        .iter()
        .map(|r| {
            let head = facts.get(&r.id);
            let card = kaiyuan_license::card::parse(&r.card).unwrap_or_default();
            json!({
                "pipeline_tag": card.pipeline_tag, "tags": card.tags,
                "namespace": r.namespace, "name": r.name, "description": r.description,
                "license": r.license, "visibility": r.visibility,
                "updated_at": r.updated_at, "created_at": r.created_at,
                "decision": head.and_then(|h| h.decision),
                "effective": head.and_then(|h| h.effective.as_deref()),
                "verification": head.and_then(|h| h.verification.as_deref()),
                "scan": head.map_or(scan::CLEAN, |h| h.scan.as_str()),
                "quarantined": head.map_or(0, |h| h.quarantined),
            })
        })
        .collect())
}

/// Every licence category of the terms catalog, for the search filter.
fn license_categories() -> Vec<String> {
    let mut all: Vec<String> = kaiyuan_license::catalog::catalog()
        .licenses()
        .iter()
        .flat_map(|t| t.categories.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    all
}

pub async fn home(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<Filters>,
) -> WebResult {
    let mut conn = state.db.acquire().await?;
    let page = query.page.unwrap_or(1).clamp(1, 1000);
    let offset = i64::from(page - 1) * PAGE_SIZE;
    // One more than a page tells whether there is a next one.
    let mut results = search_models(&mut conn, &caller, &query, PAGE_SIZE + 1, offset).await?;
    let has_next = results.len() as i64 > PAGE_SIZE;
    results.truncate(PAGE_SIZE as usize);
    let next = has_next.then(|| page_link(&query, page + 1));
    let previous = (page > 1).then(|| page_link(&query, page - 1));
    render(
        &caller,
        "home.html",
        "Models",
        json!({"results": results, "filters": &*query, "categories": license_categories(), "scan_filters": scan_filters(), "next": next, "previous": previous, "page": page}),
    )
}

const PAGE_SIZE: i64 = 50;

/// What the search can filter on: every scan status, and quarantine.
fn scan_filters() -> Vec<&'static str> {
    scan::STATUSES.into_iter().chain(["quarantined"]).collect()
}

/// The search URL with the same filters on another page.
fn page_link(f: &Filters, page: u32) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("q", &f.q),
        ("namespace", &f.namespace),
        ("license", &f.license),
        ("category", &f.category),
        ("commercial", &f.commercial),
        ("tag", &f.tag),
        ("scan", &f.scan),
        ("verification", &f.verification),
        ("sort", &f.sort),
    ] {
        if !value.is_empty() {
            q.append_pair(key, value);
        }
    }
    q.append_pair("page", &page.to_string());
    format!("/?{}", q.finish())
}

/// The sign-in form with a fresh double-submit token (in the form and in a cookie), showing
/// `error` with `status` when a sign-in failed.
fn sign_in_page(
    req: &HttpRequest,
    caller: &Caller,
    error: Option<&str>,
    status: actix_web::http::StatusCode,
) -> WebResult {
    let token = session::random_secret();
    let mut page = render(
        caller,
        "sign_in.html",
        "Sign in",
        json!({"form_token": token, "error": error}),
    )?;
    *page.status_mut() = status;
    let cookie = session::cookie(
        session::SIGN_IN_CSRF_COOKIE,
        &token,
        3600,
        session::secure_cookies(req),
    );
    page.headers_mut().append(
        actix_web::http::header::SET_COOKIE,
        cookie.parse().expect("cookie header"),
    );
    Ok(page)
}

pub async fn sign_in_form(req: HttpRequest, caller: Caller) -> WebResult {
    sign_in_page(&req, &caller, None, actix_web::http::StatusCode::OK)
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
    form_token: String,
}

pub async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    form: web::Form<SignIn>,
) -> WebResult {
    // Login CSRF: the form's token must equal the cookie set with the form (double submit).
    let expected = auth::cookie_value(&req, session::SIGN_IN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::csrf_matches(&expected, &form.form_token) {
        return Err(WebError(ApiError::forbidden(
            code::CSRF_TOKEN_INVALID,
            "the sign-in form expired: reload it and try again",
        )));
    }
    let mut conn = state.db.acquire().await?;
    match session::open(&mut conn, &req, &form.token).await {
        Ok((cookie, _)) => Ok(HttpResponse::SeeOther()
            .insert_header((actix_web::http::header::LOCATION, "/"))
            .insert_header((actix_web::http::header::SET_COOKIE, cookie))
            .finish()),
        Err(e) => sign_in_page(
            &req,
            &caller,
            Some(&e.message),
            actix_web::http::StatusCode::UNAUTHORIZED,
        ),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn sign_out(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    form: web::Form<CsrfForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let mut conn = state.db.acquire().await?;
    let cookie = session::close(&mut conn, &req).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, "/"))
        .insert_header((actix_web::http::header::SET_COOKIE, cookie))
        .finish())
}

fn require_signed_in(caller: &Caller) -> Result<&auth::AuthUser, WebError> {
    caller.user.as_ref().ok_or_else(|| {
        WebError(ApiError::unauthorized(
            code::AUTHENTICATION_REQUIRED,
            "sign in first",
        ))
    })
}

async fn writable_namespaces(
    conn: &mut PgConnection,
    user: &auth::AuthUser,
) -> Result<Vec<String>, ApiError> {
    let mut names = vec![user.name.clone()];
    for org in db::accounts::user_orgs(conn, user.id).await? {
        if ["owner", "admin", "write"].contains(&org.role.as_str()) {
            names.push(org.name);
        }
    }
    Ok(names)
}

pub async fn new_repo_form(state: web::Data<AppState>, caller: Caller) -> WebResult {
    let Some(user) = caller.user.as_ref() else {
        return Ok(redirect("/sign-in"));
    };
    let mut conn = state.db.acquire().await?;
    let namespaces = writable_namespaces(&mut conn, user).await?;
    render(
        &caller,
        "new_repo.html",
        "New model",
        json!({"namespaces": namespaces, "error": null}),
    )
}

#[derive(Deserialize)]
pub struct NewRepoForm {
    csrf: String,
    namespace: String,
    name: String,
    visibility: String,
    #[serde(default)]
    description: String,
}

pub async fn new_repo(
    state: web::Data<AppState>,
    caller: Caller,
    form: web::Form<NewRepoForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let user = require_signed_in(&caller)?.clone();
    let visibility = db::repos::Visibility::parse(&form.visibility).unwrap_or_default();
    match crate::routes::repos::create_repository(
        &state,
        &caller,
        Some(form.namespace.as_str()),
        form.name.trim(),
        visibility,
        form.description.trim(),
    )
    .await
    {
        Ok((repo, _)) => Ok(redirect(&format!(
            "/{}/{}/upload",
            repo.namespace, repo.name
        ))),
        Err(e) if e.status.is_client_error() => {
            let mut conn = state.db.acquire().await?;
            let namespaces = writable_namespaces(&mut conn, &user).await?;
            let mut page = render(
                &caller,
                "new_repo.html",
                "New model",
                json!({"namespaces": namespaces, "error": e.message, "form": {"name": form.name, "description": form.description, "visibility": visibility, "namespace": form.namespace}}),
            )?;
            *page.status_mut() = e.status;
            Ok(page)
        }
        Err(e) => Err(WebError(e)),
    }
}

fn token_json(t: &db::accounts::TokenRow) -> Value {
    json!({"id": t.id, "name": t.name, "scope": t.scope, "expires_at": t.expires_at, "revoked_at": t.revoked_at, "last_used_at": t.last_used_at, "created_at": t.created_at})
}

/// The cookie that carries a token just created to the page the POST redirects to, once: the
/// page shows the secret and clears it, so a reload neither shows it again nor creates another.
const NEW_TOKEN_COOKIE: &str = "kaiyuan_new_token";

pub async fn tokens(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> WebResult {
    let Some(user) = caller.user.as_ref() else {
        return Ok(redirect("/sign-in"));
    };
    let mut conn = state.db.acquire().await?;
    let rows = db::accounts::list_tokens(&mut conn, user.id).await?;
    // Shown only when the secret is a live token of this user.
    let mut created = Value::Null;
    if let Some(secret) = auth::cookie_value(&req, NEW_TOKEN_COOKIE) {
        let owner = db::accounts::token_owner(&mut conn, &auth::hash_token(&secret)).await?;
        if let Some(owner) = owner.filter(|o| o.user_id == user.id && o.revoked_at.is_none()) {
            let name = rows
                .iter()
                .find(|t| t.id == owner.token_id)
                .map(|t| t.name.clone());
            created = json!({"name": name, "secret": secret});
        }
    }
    let list: Vec<Value> = rows.iter().map(token_json).collect();
    let mut page = tokens_page(&caller, list, created, None)?;
    let clear = session::cookie(NEW_TOKEN_COOKIE, "", 0, session::secure_cookies(&req));
    set_cookie(&mut page, &clear);
    Ok(page)
}

fn tokens_page(
    caller: &Caller,
    tokens: Vec<Value>,
    created: Value,
    error: Option<&str>,
) -> WebResult {
    render(
        caller,
        "tokens.html",
        "Access tokens",
        json!({"tokens": tokens, "created": created, "error": error}),
    )
}

#[derive(Deserialize)]
pub struct NewToken {
    csrf: String,
    name: String,
    scope: String,
}

pub async fn create_token(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    form: web::Form<NewToken>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let user = require_signed_in(&caller)?;
    let name = form.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(WebError(ApiError::unprocessable(
            code::INVALID_NAME,
            "a token needs a name of 1 to 100 characters",
        )));
    }
    let scope = db::accounts::Scope::parse(&form.scope).unwrap_or(db::accounts::Scope::Write);
    let mut conn = state.db.acquire().await?;
    let rows = db::accounts::list_tokens(&mut conn, user.id).await?;
    if rows
        .iter()
        .any(|t| t.name == name && t.revoked_at.is_none())
    {
        let list = rows.iter().map(token_json).collect();
        let message = format!("you already have a token named `{name}`: choose another name");
        let mut page = tokens_page(&caller, list, Value::Null, Some(&message))?;
        *page.status_mut() = actix_web::http::StatusCode::CONFLICT;
        return Ok(page);
    }
    let (secret, hash) = auth::new_token();
    db::accounts::insert_token(&mut conn, user.id, name, &hash, scope, None).await?;
    // Post, redirect, get: the secret travels once, in a cookie only that page reads.
    let mut response = redirect("/settings/tokens");
    let once = session::cookie(
        NEW_TOKEN_COOKIE,
        &secret,
        300,
        session::secure_cookies(&req),
    );
    set_cookie(&mut response, &once);
    Ok(response)
}

fn set_cookie(response: &mut HttpResponse, cookie: &str) {
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(cookie) {
        response
            .headers_mut()
            .append(actix_web::http::header::SET_COOKIE, value);
    }
}

pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> WebResult {
    check_csrf(&caller, &form.csrf)?;
    let user = require_signed_in(&caller)?;
    let mut conn = state.db.acquire().await?;
    db::accounts::revoke_token(&mut conn, user.id, path.into_inner()).await?;
    Ok(redirect("/settings/tokens"))
}

pub async fn review_queue(state: web::Data<AppState>, caller: Caller) -> WebResult {
    let Some(user) = caller.user.as_ref() else {
        return Ok(redirect("/sign-in"));
    };
    let mut conn = state.db.acquire().await?;
    let hub = user.is_admin || db::reviews::is_hub_reviewer(&mut conn, user.id).await?;
    let reports = db::reviews::queue(&mut conn, user.id, hub).await?;
    let own = db::reviews::reports_of(&mut conn, user.id).await?;
    render(
        &caller,
        "reviews.html",
        "Review queue",
        json!({"reports": reports, "own": own, "hub_reviewer": hub}),
    )
}

pub async fn namespace(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> WebResult {
    let name = path.into_inner();
    let mut conn = state.db.acquire().await?;
    let ns = db::accounts::find_namespace(&mut conn, &name)
        .await?
        .ok_or_else(|| {
            WebError(ApiError::not_found(
                code::NAMESPACE_NOT_FOUND,
                format!("no user or organisation is named `{name}`"),
            ))
        })?;
    let filters = Filters {
        namespace: ns.name.clone(),
        sort: "name".into(),
        ..Filters::default()
    };
    let results = search_models(&mut conn, &caller, &filters, 500, 0).await?;
    let members: Vec<Value> = if ns.kind == NamespaceKind::Org {
        db::accounts::list_members(&mut conn, ns.id)
            .await?
            .into_iter()
            .map(|m| json!({"name": m.name, "role": m.role}))
            .collect()
    } else {
        vec![]
    };
    // Admins manage members and the policy from here; members see who else is in.
    let role = auth::namespace_role(&mut conn, &caller, ns.id, ns.kind).await?;
    let can_admin =
        ns.kind == NamespaceKind::Org && role.is_some_and(|r| r >= db::accounts::Role::Admin);
    render(
        &caller,
        "namespace.html",
        &ns.name,
        json!({"namespace": {"name": ns.name, "kind": ns.kind}, "results": results, "members": members, "can_admin": can_admin, "role": role.map(|r| r.as_str())}),
    )
}

pub async fn policy_page(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> WebResult {
    let name = path.into_inner();
    if caller.user.is_none() {
        return Ok(redirect("/sign-in"));
    }
    let mut conn = state.db.acquire().await?;
    let ns =
        crate::routes::load_namespace(&mut conn, &caller, &name, db::accounts::Role::Admin).await?;
    let current = db::licenses::policy(&mut conn, ns.id).await?;
    let document = current.as_ref().map_or_else(
        || json!({"require_commercial_use": true}),
        |p| p.document.clone(),
    );
    let version = current.map(|p| p.version);
    policy_view(&caller, &ns.name, &document, version, None, None, None)
}

/// The policy page: the form, and the same policy as JSON for the advanced editor.
fn policy_view(
    caller: &Caller,
    namespace: &str,
    document: &Value,
    version: Option<i32>,
    error: Option<&str>,
    saved: Option<u64>,
    posted_json: Option<&str>,
) -> WebResult {
    let categories = license_categories();
    render(
        caller,
        "policy.html",
        &format!("Licence policy of {namespace}"),
        json!({
            "namespace": namespace,
            "policy": posted_json.map_or_else(|| serde_json::to_string_pretty(document).unwrap_or_default(), str::to_string),
            "form": super::policy_form::form_view(document, &categories),
            "categories": categories,
            "version": version,
            "error": error,
            "saved": saved,
        }),
    )
}

pub async fn save_policy(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    form: web::Form<std::collections::HashMap<String, String>>,
) -> WebResult {
    let fields = form.into_inner();
    check_csrf(&caller, fields.get("csrf").map_or("", String::as_str))?;
    let name = path.into_inner();
    // The JSON editor posts `policy`; the form posts its fields.
    let parsed: Result<kaiyuan_license::policy::Policy, String> = match fields.get("policy") {
        Some(text) if fields.get("editor").is_none_or(|e| e == "json") => {
            serde_json::from_str(text)
                .map_err(|e| format!("the policy is not valid JSON for a policy: {e}"))
        }
        _ => super::policy_form::policy_from_form(&fields, &license_categories()),
    };
    let outcome = match parsed {
        Ok(policy) => crate::routes::licenses::set_policy(&state, &caller, &name, policy)
            .await
            .map_err(|e| {
                if e.status.is_client_error()
                    && e.status != actix_web::http::StatusCode::FORBIDDEN
                    && e.status != actix_web::http::StatusCode::NOT_FOUND
                {
                    Ok(e.message)
                } else {
                    Err(e)
                }
            }),
        Err(message) => Err(Ok(message)),
    };
    match outcome {
        Ok((namespace, version, document, queued)) => policy_view(
            &caller,
            &namespace,
            &document,
            Some(version),
            None,
            Some(queued),
            None,
        ),
        Err(Ok(message)) => {
            // What was posted stays in the editor it came from.
            let posted = fields
                .get("policy")
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
                .unwrap_or_else(|| json!({}));
            let raw = fields.get("policy").map(String::as_str);
            let mut page = policy_view(&caller, &name, &posted, None, Some(&message), None, raw)?;
            *page.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page)
        }
        Err(Err(e)) => Err(WebError(e)),
    }
}

/// A report: its details and discussion for whoever the API shows it to (the reporter, the
/// repository's admins, reviewers, or everyone once disclosed); comment and triage forms.
pub async fn report_page(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> WebResult {
    let id = path.into_inner();
    let mut conn = state.db.acquire().await?;
    let (report, repo, reviewer) = crate::routes::reviews::visible(&mut conn, &caller, id).await?;
    let comments = db::reviews::comments(&mut conn, id).await?;
    // Drafts are for reviewers; a published advisory is public anyway.
    let advisory = db::reviews::advisory_of_report(&mut conn, id)
        .await?
        .filter(|a| reviewer || a.published_at.is_some());
    render(
        &caller,
        "report.html",
        &format!("Report #{id}"),
        json!({"report": report, "repository": repo.full_name(), "comments": comments, "reviewer": reviewer, "advisory": advisory}),
    )
}
