//! Pages of one repository: the model page (card, files, history, refs, and the licence,
//! security, verification and provenance panels), its upload page, history and commit diffs.
//! Every page loads the repository through `routes::load_repo`, so private and gated
//! repositories follow the API's rules exactly.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::render::{WebError, WebResult, render};
use crate::auth::{Caller, Need};
use crate::db;
use crate::db::types::Gated;
use crate::error::ApiError;
use crate::error_code as code;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct ModelQuery {
    rev: Option<String>,
    /// The "can I use this?" form: purpose, monthly active users, annual revenue, region.
    purpose: Option<String>,
    mau: Option<String>,
    revenue: Option<String>,
    region: Option<String>,
    /// Monthly active users in one past month (`YYYY-MM`), for thresholds anchored to a date
    /// (Llama: the month before its release), as the CLI's `--mau-on`.
    mau_month: Option<String>,
    mau_then: Option<String>,
    /// The files table starts after this path (its pages are `FILES_PER_PAGE` long).
    files_after: Option<String>,
}

/// Files listed on one model page; the rest are a link away.
const FILES_PER_PAGE: i64 = 200;

/// The lineage drawn as an SVG: the model at the bottom, each ancestor above it, incompatible
/// edges (a finding names the node) in red and dashed.
fn lineage_svg(report: &Value) -> Option<String> {
    let nodes = report["lineage"].as_array().filter(|n| !n.is_empty())?;
    let flagged: Vec<String> = report["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter(|f| {
                    f["severity"] == "error"
                        || f["severity"] == "critical"
                        || f["severity"] == "high"
                })
                .filter_map(|f| f["message"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let width = 560;
    let row = 70;
    let height = row * (nodes.len() as i64 + 1) + 10;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Lineage of this model\" class=\"lineage\">"
    );
    let model_y = height - 45;
    for (i, node) in nodes.iter().enumerate() {
        let y = 10 + row * i as i64;
        let id = node["id"].as_str().unwrap_or("?");
        let bad = flagged.iter().any(|m| m.contains(id));
        let class = if bad { "edge bad" } else { "edge" };
        svg.push_str(&format!(
            "<line x1=\"280\" y1=\"{}\" x2=\"280\" y2=\"{model_y}\" class=\"{class}\"/>",
            y + 40
        ));
        svg.push_str(&format!(
            "<rect x=\"20\" y=\"{y}\" width=\"520\" height=\"40\" rx=\"6\" class=\"node{}\"/><text x=\"30\" y=\"{}\">{} · {} · {}</text>",
            if bad { " bad" } else { "" },
            y + 25,
            esc(id),
            esc(node["relation"].as_str().unwrap_or(node["kind"].as_str().unwrap_or(""))),
            esc(node["license"].as_str().unwrap_or("licence unknown")),
        ));
    }
    svg.push_str(&format!(
        "<rect x=\"20\" y=\"{model_y}\" width=\"520\" height=\"40\" rx=\"6\" class=\"node self\"/><text x=\"30\" y=\"{}\">this model · {}</text></svg>",
        model_y + 25,
        esc(report["effective"].as_str().unwrap_or("licence unknown"))
    ));
    Some(svg)
}

/// p50/p95 latency of each verified model as a small bar chart: the labels are HTML text (legible
/// at any width, and they wrap above the bar on a phone), each bar a small SVG.
fn latency_chart(files: &Value) -> Option<String> {
    let rows: Vec<(String, f64, f64)> = files
        .as_array()?
        .iter()
        .filter_map(|f| {
            let t = &f["report"]["timings"];
            Some((
                f["path"].as_str()?.to_string(),
                t["p50_ms"].as_f64()?,
                t["p95_ms"].as_f64()?,
            ))
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let max = rows.iter().map(|r| r.2).fold(f64::MIN_POSITIVE, f64::max);
    let mut html =
        String::from("<ul class=\"chart\" aria-label=\"Latency per model, p50 and p95\">");
    for (path, p50, p95) in &rows {
        let w95 = (p95 / max * 300.0).max(1.0);
        let w50 = (p50 / max * 300.0).max(1.0);
        let label = path
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;");
        html.push_str(&format!(
            "<li><span class=\"label\">{label}</span><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 300 20\" preserveAspectRatio=\"none\" class=\"bar\" role=\"img\" aria-label=\"p50 {p50:.3} ms, p95 {p95:.3} ms\"><rect width=\"{w95:.1}\" height=\"20\" class=\"p95\"/><rect width=\"{w50:.1}\" height=\"20\" class=\"p50\"/></svg><span class=\"value\">{p50:.3} / {p95:.3} ms</span></li>"
        ));
    }
    html.push_str("</ul>");
    Some(html)
}

fn use_context(q: &ModelQuery) -> Result<Option<kaiyuan_license::UseContext>, ApiError> {
    let Some(purpose) = q.purpose.as_deref().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let mut ctx = kaiyuan_license::UseContext {
        purpose: kaiyuan_license::Purpose::parse(purpose).ok_or_else(|| {
            ApiError::unprocessable(
                code::INVALID_PURPOSE,
                format!("purpose `{purpose}` is unknown"),
            )
        })?,
        ..Default::default()
    };
    let number = |field: &str, v: &Option<String>| -> Result<Option<u64>, ApiError> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.replace(['_', ','], "").parse().map(Some).map_err(|_| {
                ApiError::unprocessable(
                    code::INVALID_NUMBER,
                    format!("{field} `{v}` is not a whole number"),
                )
            }),
        }
    };
    ctx.mau = number("monthly active users", &q.mau)?;
    ctx.annual_revenue = number("annual revenue", &q.revenue)?;
    let month = q
        .mau_month
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty());
    match (
        month,
        number("monthly active users that month", &q.mau_then)?,
    ) {
        (Some(month), Some(users)) => {
            let valid = month.len() == 7
                && month.as_bytes()[4] == b'-'
                && month
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| i == 4 || b.is_ascii_digit());
            if !valid {
                return Err(ApiError::unprocessable(
                    code::INVALID_NUMBER,
                    format!("month `{month}` is not YYYY-MM"),
                ));
            }
            ctx.mau_history.insert(month.to_string(), users);
        }
        (None, Some(_)) => {
            return Err(ApiError::unprocessable(
                code::INVALID_NUMBER,
                "give the month the past monthly active users were counted in",
            ));
        }
        _ => {}
    }
    ctx.region = q.region.clone().filter(|r| !r.trim().is_empty());
    Ok(Some(ctx))
}

/// What the head of a model page says at a glance, as on the Hugging Face Hub: the licence by
/// its human name, the card's task and tags, the files' total size, the last update, and the
/// commands that fetch the model from this hub with the stock clients.
fn overview(
    req: &HttpRequest,
    repo: &db::repos::Repo,
    card: &str,
    effective: Option<&str>,
    total_size: i64,
) -> Value {
    let meta = kaiyuan_license::card::parse(card).unwrap_or_default();
    // The effective licence when one was found, else what the card declares.
    let licence = effective.or(repo.license.as_deref()).map(|id| {
        let name = kaiyuan_license::lineage::license_expr(id)
            .ok()
            .filter(|e| e.leaves().len() == 1)
            .map(|_| kaiyuan_license::catalog::catalog().terms(id).name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.to_string());
        json!({"id": id, "name": name})
    });
    let endpoint = crate::routes::hf::endpoint(req);
    let full_name = repo.full_name();
    json!({
        "licence": licence,
        "pipeline_tag": meta.pipeline_tag,
        "tags": meta.tags,
        "size": total_size,
        "updated_at": repo.updated_at,
        "download": format!("HF_ENDPOINT={endpoint} hf download {full_name}"),
        "python": format!("import os\nos.environ[\"HF_ENDPOINT\"] = \"{endpoint}\"\nfrom transformers import AutoModel\nmodel = AutoModel.from_pretrained(\"{full_name}\")"),
    })
}

/// Largest README.md rendered on the page: what the licence engine reads of a text file too.
const MAX_CARD_BYTES: i64 = kaiyuan_license::detect::MAX_TEXT as i64;

/// The model a page's path names, which the caller may read, and the commit of its revision.
async fn page_revision(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    (namespace, name): (String, String),
    rev: &str,
) -> Result<(crate::db::repos::Repo, String), ApiError> {
    crate::routes::load_revision(conn, caller, &namespace, &name, Some(rev)).await
}

pub async fn model_page(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<ModelQuery>,
) -> WebResult {
    let mut conn = state.db.acquire().await?;
    let rev = query.rev.as_deref().unwrap_or("main");
    let (repo, commit) = page_revision(&mut conn, &caller, path.into_inner(), rev).await?;
    // A page of files, and the few that are not plainly clean: the page reads the same rows
    // whether the model has ten files or a hundred thousand.
    let after = query.files_after.as_deref().unwrap_or("");
    let mut files =
        db::scans::files_for_page(&mut conn, repo.id, &commit, after, FILES_PER_PAGE + 1).await?;
    let more_files = files.len() as i64 > FILES_PER_PAGE;
    files.truncate(FILES_PER_PAGE as usize);
    let unclean = db::scans::unclean_files(&mut conn, repo.id, &commit, 1000).await?;
    let head = db::commits::get(&mut conn, repo.id, &commit)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("resolved commit vanished")))?;
    // The card of the revision shown (the repository's stored card is `main`'s).
    let card = match db::commits::file(&mut conn, repo.id, &commit, "README.md").await? {
        Some(readme) if readme.size <= MAX_CARD_BYTES => {
            crate::licensing::read_text(&state.store, &readme.sha256, readme.size).await?
        }
        Some(_) => "*The model card is too large to show here; download README.md.*".to_string(),
        None => String::new(),
    };
    let refs = db::commits::list_refs(&mut conn, repo.id).await?;
    let history = db::commits::history(&mut conn, repo.id, &commit, 10).await?;
    let license = db::licenses::evaluation(&mut conn, repo.id, &commit).await?;
    let verification = db::verifications::get(&mut conn, repo.id, &commit).await?;
    let signature = db::provenance::verification(&mut conn, repo.id, &commit).await?;
    let advisories = db::reviews::advisories_at(&mut conn, repo.id, &commit).await?;
    let logged = db::tlog::publish_entry(&mut conn, repo.id, &commit).await?;
    let mirrored = db::mirror::find(&mut conn, repo.id).await?;
    if mirrored.is_some() {
        crate::mirror::licence_gate::recheck(&state, repo.id).await?;
    }
    let mirror_refusal = db::mirror::refusal(&mut conn, repo.id, &commit).await?;
    let can_write = ApiError::permitted(
        crate::routes::load_repo(&mut conn, &caller, &repo.namespace, &repo.name, Need::Write)
            .await,
    )?;

    // "Can I use this?": the viewer's context against the owner's policy and each of the
    // viewer's organisations' policies.
    // The decision under the viewer's organisations' policies (commercial use by default), and
    // the "Can I use this?" answers for a submitted context (the owner's policy too).
    // A mistake in the form is said beside the form, not instead of the page.
    let (asked, use_error) = match use_context(&query) {
        Ok(asked) => (asked, None),
        Err(e) => (None, Some(e.message)),
    };
    let mut policies = Vec::new();
    if asked.is_some() {
        policies.push((repo.namespace.clone(), repo.namespace_id, true));
    }
    if let Some(user) = &caller.user {
        for org in db::accounts::user_orgs(&mut conn, user.id).await? {
            if org.name != repo.namespace
                && let Some(ns) = db::accounts::find_namespace(&mut conn, &org.name).await?
            {
                policies.push((ns.name, ns.id, false));
            }
        }
    }
    let context = asked.clone().unwrap_or_default();
    let mut use_answers = Vec::new();
    for (label, ns_id, owner) in policies {
        let (policy, _) = crate::licensing::namespace_policy(&mut conn, ns_id).await?;
        if policy.is_none() && !owner {
            continue;
        }
        let report = crate::licensing::evaluate_commit(
            &mut conn,
            &state.store,
            &repo,
            &commit,
            policy.as_ref(),
            &context,
        )
        .await?;
        use_answers.push(json!({"policy": label, "decision": report.decision.as_str(), "obligations": report.obligations, "findings": report.findings}));
    }

    // What stands between the viewer and the files: a gate and licences to accept.
    let access = match (&caller.user, repo.gated) {
        (_, Gated::None) => None,
        _ if can_write => None,
        (Some(user), _) => Some(
            db::repos::access_status(&mut conn, repo.id, user.id)
                .await?
                .map_or_else(|| "none".into(), |s| s.to_string()),
        ),
        (None, _) => Some("signed-out".into()),
    };
    let acceptances: Vec<Value> =
        crate::licensing::acceptances_for(&mut conn, &state.store, &caller, &repo, &commit)
            .await?
            .into_iter()
            .map(|(r, accepted)| json!({"license": r.license, "name": r.name, "version": r.version, "accepted": accepted}))
            .collect();

    let quarantined: Vec<&db::scans::FileView> = unclean
        .iter()
        .filter(|f| {
            crate::domain::scan::quarantined(f.verdict, f.released, f.held_reason.is_some())
        })
        .collect();
    let license_json = license.as_ref().map(|l| {
        json!({"decision": l.decision, "effective": l.effective, "report": l.report, "lineage_svg": lineage_svg(&l.report)})
    });
    let verification_json = verification.as_ref().map(|v| {
        json!({"status": v.status, "requested_ep": v.requested_ep, "files": v.files, "finished_at": v.finished_at, "chart": latency_chart(&v.files)})
    });
    let card_html = super::markdown::render_card(
        &card,
        &format!("/{}/{}/resolve/{commit}/", repo.namespace, repo.name),
    );
    let overview = overview(
        &req,
        &repo,
        &card,
        license.as_ref().and_then(|l| l.effective.as_deref()),
        head.total_size,
    );
    let context = json!({
        "overview": overview,
        "repo": {"namespace": repo.namespace, "name": repo.name, "full_name": repo.full_name(), "visibility": repo.visibility,
                 "gated": repo.gated, "description": repo.description, "license": repo.license},
        "rev": rev,
        "commit": commit,
        "card_html": card_html,
        "files": files,
        "file_count": head.file_count,
        "unclean": unclean,
        "next_files": more_files.then(|| files.last().map(|f| f.path.clone())).flatten(),
        "quarantined": quarantined.iter().map(|f| &f.path).collect::<Vec<_>>(),
        "pending_scans": unclean.iter().filter(|f| f.verdict.is_none()).count(),
        "refs": refs.iter().map(|r| json!({"name": r.name, "kind": r.kind, "commit": r.commit_id})).collect::<Vec<_>>(),
        "history": history.iter().map(|c| json!({"id": c.id, "message": c.message, "author": c.author_name, "created_at": c.created_at, "files": c.file_count})).collect::<Vec<_>>(),
        "license": license_json,
        "verification": verification_json,
        "signature": signature.map(|s| json!({"status": s.status, "result": s.result})),
        "advisories": advisories,
        "log_index": logged,
        "mirrored": mirrored,
        "mirror_refusal": mirror_refusal,
        "can_write": can_write,
        "use_answers": use_answers,
        "access": access,
        "acceptances": acceptances,
        "use_query": {"purpose": query.purpose, "mau": query.mau, "revenue": query.revenue, "region": query.region, "mau_month": query.mau_month, "mau_then": query.mau_then},
        "use_error": use_error,
    });
    let mut page = render(&caller, "model.html", &repo.full_name(), context)?;
    if use_error.is_some() {
        *page.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(page)
}

pub async fn upload_page(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> WebResult {
    let (namespace, name) = path.into_inner();
    if caller.user.is_none() {
        return Ok(super::session::redirect("/sign-in"));
    }
    let mut conn = state.db.acquire().await?;
    let repo = crate::routes::load_repo(&mut conn, &caller, &namespace, &name, Need::Write).await?;
    render(
        &caller,
        "upload.html",
        &format!("Upload to {}", repo.full_name()),
        json!({"repo": {"namespace": repo.namespace, "name": repo.name, "full_name": repo.full_name()}}),
    )
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    rev: Option<String>,
}

pub async fn commits_page(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<HistoryQuery>,
) -> WebResult {
    let mut conn = state.db.acquire().await?;
    let rev = query.rev.as_deref().unwrap_or("main");
    let (repo, commit) = page_revision(&mut conn, &caller, path.into_inner(), rev).await?;
    let history = db::commits::history(&mut conn, repo.id, &commit, 200).await?;
    let rows: Vec<Value> = history.iter().map(|c| json!({"id": c.id, "parent": c.parent_id, "message": c.message, "author": c.author_name, "created_at": c.created_at, "files": c.file_count, "size": c.total_size})).collect();
    render(
        &caller,
        "commits.html",
        &format!("History of {}", repo.full_name()),
        json!({"repo": {"namespace": repo.namespace, "name": repo.name, "full_name": repo.full_name()}, "rev": rev, "commits": rows}),
    )
}

/// A commit's file list against its parent's: added, changed (other bytes) and removed paths.
pub async fn commit_page(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> WebResult {
    let (namespace, name, id) = path.into_inner();
    let mut conn = state.db.acquire().await?;
    let repo = crate::routes::load_repo(&mut conn, &caller, &namespace, &name, Need::Read).await?;
    let commit = db::commits::get(&mut conn, repo.id, &id)
        .await?
        .ok_or_else(|| {
            WebError(ApiError::not_found(
                code::REVISION_NOT_FOUND,
                format!("no commit `{id}` in {}", repo.full_name()),
            ))
        })?;
    let now: BTreeMap<String, (kaiyuan_storage::Sha256Digest, i64)> =
        db::commits::files(&mut conn, repo.id, &commit.id)
            .await?
            .into_iter()
            .map(|f| (f.path, (f.sha256, f.size)))
            .collect();
    let before: BTreeMap<String, (kaiyuan_storage::Sha256Digest, i64)> = match &commit.parent_id {
        Some(p) => db::commits::files(&mut conn, repo.id, p)
            .await?
            .into_iter()
            .map(|f| (f.path, (f.sha256, f.size)))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut changes = Vec::new();
    for (path, (sha, size)) in &now {
        match before.get(path) {
            None => changes.push(
                json!({"kind": "added", "path": path, "size": size, "sha256": hex::encode(sha)}),
            ),
            Some((old, _)) if old != sha => changes.push(
                json!({"kind": "changed", "path": path, "size": size, "sha256": hex::encode(sha)}),
            ),
            _ => {}
        }
    }
    for (path, (sha, size)) in &before {
        if !now.contains_key(path) {
            changes.push(
                json!({"kind": "removed", "path": path, "size": size, "sha256": hex::encode(sha)}),
            );
        }
    }
    render(
        &caller,
        "commit.html",
        &format!("Commit {}", &commit.id[..12.min(commit.id.len())]),
        json!({
            "repo": {"namespace": repo.namespace, "name": repo.name, "full_name": repo.full_name()},
            "commit": {"id": commit.id, "parent": commit.parent_id, "message": commit.message, "author": commit.author_name, "created_at": commit.created_at},
            "changes": changes,
        }),
    )
}
