//! Mirror mode: kaiyuan in front of an upstream hub. A read of a repository this hub does not
//! hold (model info, tree, resolve) first fetches the revision from the upstream: every file's
//! bytes are checked against the upstream's digest and scanned before the mirrored commit
//! becomes visible, so clients get only what passed the same gates as an upload. What is
//! mirrored is served from here, also when the upstream is unreachable.

pub mod licence_gate;
mod pieces;
mod retry;
pub mod upstream;
mod upstream_xet;

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::web;

use futures_util::{StreamExt, TryStreamExt};
use kaiyuan_storage::{Expected, Sha256Digest};
use kaiyuan_xet::MerkleHash;
use sha1::{Digest as _, Sha1};

use crate::auth::AuthUser;
use crate::auth::Caller;
use crate::config::Mirror as Settings;
use crate::db;
use crate::db::types::{Gated, Visibility};
use crate::error::ApiError;
use crate::error_code as code;
use crate::outbound::{self, Destinations};
use crate::state::AppState;
use crate::tree::{Entry, Snapshot};
use upstream::{Upstream, UpstreamError, UpstreamFile, UpstreamRevision};

/// The local user that owns mirrored namespaces (a name no person can take: it is reserved
/// here by being created first).
pub const MIRROR_USER: &str = "kaiyuan-mirror";

/// The mirror's shared state: the upstream client, and one lock per repository revision so
/// that concurrent requests share one fetch.
#[derive(Debug, Default)]
pub struct Mirror {
    /// The upstreams in the order they are asked, each with the patterns it serves.
    routes: Vec<Route>,
    fetches: tokio::sync::Mutex<HashMap<String, tokio::sync::watch::Receiver<Outcome>>>,
    /// The runtime the mirror was set up on (the hub's multi-threaded one), where fetches run.
    /// A fetch spawned from a request would stay on that actix worker's single thread, with
    /// its hashing and chunking, and slow every other request the worker serves.
    runtime: Option<tokio::runtime::Handle>,
}

/// An upstream and the repositories it is asked for.
#[derive(Debug)]
struct Route {
    upstream: Upstream,
    allow: Vec<String>,
    deny: Vec<String>,
}

impl Mirror {
    pub fn new(settings: &Settings) -> Self {
        let more = settings
            .upstreams
            .iter()
            .map(|u| (&u.url, &u.token, &u.allow, &u.deny));
        let main = settings.upstream.iter().map(|url| {
            (
                url,
                &settings.upstream_token,
                &settings.allow,
                &settings.deny,
            )
        });
        let routes: Vec<_> = more.chain(main).collect();
        let destinations = Arc::new(Destinations::new(
            routes.iter().map(|(url, ..)| url.as_str()),
            &settings.internal_hosts,
        ));
        // One budget for every upstream: it bounds the mirror's memory, not each upstream's.
        let budget = pieces::PieceBudget::new(settings.connections);
        let routes = routes
            .into_iter()
            .filter_map(|(url, token, allow, deny)| {
                Some(Route {
                    upstream: Upstream::new(
                        url,
                        token.clone(),
                        settings.timeout_secs,
                        destinations.clone(),
                        budget.clone(),
                    )?,
                    allow: allow.clone(),
                    deny: deny.clone(),
                })
            })
            .collect();
        Self {
            routes,
            fetches: Default::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// The upstream `repo` (`ns/name`) is mirrored from: the first whose patterns admit it.
    pub fn upstream_for(&self, repo: &str) -> Option<&Upstream> {
        self.routes
            .iter()
            .find(|route| admits(&route.allow, &route.deny, repo))
            .map(|route| &route.upstream)
    }

    /// The upstream a repository was mirrored from (recorded as its base URL), if still
    /// configured; otherwise the one its name is routed to now.
    fn upstream_of(&self, repo: &str, recorded: &str) -> Option<&Upstream> {
        let recorded = recorded.trim_end_matches('/');
        self.routes
            .iter()
            .map(|route| &route.upstream)
            .find(|upstream| upstream.base() == recorded)
            .or_else(|| self.upstream_for(repo))
    }

    fn spawn<F>(&self, fetch: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match &self.runtime {
            Some(runtime) => drop(runtime.spawn(fetch)),
            None => drop(tokio::spawn(fetch)),
        }
    }
}

/// Whether `repo` (`ns/name`) passes a pair of pattern lists: allowed by one (or no allow list)
/// and denied by none.
fn admits(allow: &[String], deny: &[String], repo: &str) -> bool {
    (allow.is_empty() || matches_any(allow, repo)) && !matches_any(deny, repo)
}

/// Whether one of the patterns (`org/*`, `org/name`, `/regex/`) matches `repo`.
fn matches_any(patterns: &[String], repo: &str) -> bool {
    patterns.iter().any(|pattern| {
        if let Some(re) = pattern.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
            return regex_lite_match(re, repo);
        }
        match pattern.strip_suffix("/*") {
            Some(org) => repo.split('/').next() == Some(org),
            None => pattern == repo,
        }
    })
}

/// Regular-expression patterns, compiled on use (allow and deny lists are short); a pattern
/// that does not compile matches nothing.
fn regex_lite_match(pattern: &str, text: &str) -> bool {
    regex::Regex::new(pattern).is_ok_and(|re| re.is_match(text))
}

fn upstream_error(e: UpstreamError) -> ApiError {
    match e {
        UpstreamError::Unreachable(..) => ApiError::new(
            actix_web::http::StatusCode::GATEWAY_TIMEOUT,
            code::UPSTREAM_UNREACHABLE,
            format!("{e}; only repositories already mirrored here can be served now"),
        ),
        UpstreamError::Busy { wait, .. } => ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            code::UPSTREAM_BUSY,
            format!("{e}; only repositories already mirrored here can be served until then"),
        )
        .with_retry_after(wait.map_or(5, |w| w.as_secs().clamp(1, 3600))),
        UpstreamError::NotFound(..)
        | UpstreamError::Refused(..)
        | UpstreamError::Misdirected(..)
        | UpstreamError::Malformed(..) => ApiError::new(
            actix_web::http::StatusCode::BAD_GATEWAY,
            code::UPSTREAM_FAILED,
            e.to_string(),
        ),
    }
}

/// How a fetch ended, shared with every request that waited for it.
type Outcome = Option<Result<(), Failure>>;

/// A failed fetch, as every request that waited for it answers.
#[derive(Clone, Debug)]
struct Failure {
    status: actix_web::http::StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure {
            status: e.status,
            code: e.code,
            message: e.message.clone(),
            retry_after: e.retry_after,
        }
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        let error = ApiError::new(f.status, f.code, f.message);
        match f.retry_after {
            Some(seconds) => error.with_retry_after(seconds),
            None => error,
        }
    }
}

/// Makes sure `namespace/name` at `revision` is here if it can be mirrored: does nothing for
/// local repositories, for revisions already mirrored, without an upstream, or for names the
/// allow and deny lists exclude (the caller's lookup then answers as usual).
///
/// The fetch runs in the background, one per repository revision however many clients ask;
/// each waits for it up to `mirror.wait_secs`, then gets a 503 "being mirrored and checked,
/// retry" while the fetch goes on.
pub async fn ensure(
    state: &web::Data<AppState>,
    caller: &Caller,
    namespace: &str,
    name: &str,
    revision: &str,
) -> Result<(), ApiError> {
    // Only names this hub could hold are asked of the upstream: decoded from the request's
    // path, a `?`, `#` or `/` in them would rewrite the upstream URLs built from them.
    if crate::names::NamespaceName::parse(namespace).is_err()
        || crate::names::RepoName::parse(name).is_err()
    {
        return Ok(());
    }
    let full = format!("{namespace}/{name}");
    if state.mirror.upstream_for(&full).is_none() {
        return Ok(());
    }
    if !needs_fetch(state, namespace, name, revision).await? {
        return Ok(());
    }
    // A gated mirror fetches only for callers who were let through its gate here; anyone else
    // is refused before the upstream sees a request.
    {
        let mut conn = state.db.acquire().await?;
        if let Some(repo) = db::repos::find_live(&mut conn, namespace, name).await?
            && repo.gated != Gated::None
        {
            crate::routes::access::authorize_download(&mut conn, caller, &repo).await?;
        }
    }
    let key = format!("{full}@{revision}");
    let mut outcome = {
        let mut fetches = state.mirror.fetches.lock().await;
        match fetches.get(&key) {
            Some(running) => running.clone(),
            None => {
                let (tx, rx) = tokio::sync::watch::channel::<Outcome>(None);
                fetches.insert(key.clone(), rx.clone());
                let (state, requester, namespace, name, revision) = (
                    state.clone(),
                    caller.clone(),
                    namespace.to_string(),
                    name.to_string(),
                    revision.to_string(),
                );
                let runner = state.clone();
                runner.mirror.spawn(async move {
                    let result = fetch(&state, &requester, &namespace, &name, &revision)
                        .await
                        .map_err(Failure::from);
                    state.mirror.fetches.lock().await.remove(&key);
                    let _ = tx.send(Some(result));
                });
                rx
            }
        }
    };
    let wait = std::time::Duration::from_secs(state.settings.mirror.wait_secs);
    match tokio::time::timeout(wait, outcome.wait_for(Option::is_some)).await {
        Ok(Ok(done)) => match done.clone() {
            Some(Err(failure)) => Err(failure.into()),
            _ => Ok(()),
        },
        Ok(Err(_)) => Err(ApiError::internal(anyhow::anyhow!(
            "the mirror fetch of {full} stopped"
        ))),
        Err(_) => Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            code::MIRROR_IN_PROGRESS,
            format!(
                "`{full}` at `{revision}` is being mirrored and checked (downloaded from the upstream and scanned); retry in a few seconds"
            ),
        )),
    }
}

/// Mirrors `repo` (`ORG/NAME`) at `revision` ahead of time, on behalf of `caller` (the CLI's
/// `mirror add` and the admin API): the local commit that holds it, or `None` while the fetch
/// goes on past `mirror.wait_secs`.
pub async fn prefetch(
    state: &web::Data<AppState>,
    caller: &Caller,
    repo: &str,
    revision: &str,
) -> Result<Option<String>, ApiError> {
    let invalid = |message: String| ApiError::unprocessable(code::INVALID_NAME, message);
    let (namespace, name) = repo
        .split_once('/')
        .ok_or_else(|| invalid(format!("`{repo}`: name the repository as ORG/NAME")))?;
    crate::names::NamespaceName::parse(namespace).map_err(|e| invalid(e.to_string()))?;
    crate::names::RepoName::parse(name).map_err(|e| invalid(e.to_string()))?;
    if state.mirror.routes.is_empty() {
        return Err(ApiError::conflict(
            code::MIRROR_NOT_CONFIGURED,
            "this hub mirrors no upstream: set mirror.upstream in its configuration, or KAIYUAN_UPSTREAM",
        ));
    }
    if state.mirror.upstream_for(repo).is_none() {
        return Err(ApiError::unprocessable(
            code::MIRROR_EXCLUDED,
            format!("`{repo}` is excluded by the allow and deny lists of every upstream"),
        ));
    }
    match ensure(state, caller, namespace, name, revision).await {
        Err(e) if e.code == code::MIRROR_IN_PROGRESS => return Ok(None),
        outcome => outcome?,
    }
    let mut conn = state.db.acquire().await?;
    let not_found = || {
        ApiError::not_found(
            code::REVISION_NOT_FOUND,
            format!("the upstream has no `{repo}` at `{revision}`"),
        )
    };
    let local = db::repos::find_live(&mut conn, namespace, name)
        .await?
        .ok_or_else(not_found)?;
    let commit = match db::mirror::local_commit(&mut conn, local.id, revision).await? {
        Some(commit) => Some(commit),
        None => db::commits::resolve(&mut conn, local.id, revision).await?,
    };
    match commit {
        Some(commit) if db::mirror::holds(&mut conn, local.id, &commit).await? => Ok(Some(commit)),
        _ => Err(not_found()),
    }
}

/// One fetch of a repository revision from the upstream, on behalf of `requester`.
async fn fetch(
    state: &AppState,
    requester: &Caller,
    namespace: &str,
    name: &str,
    revision: &str,
) -> Result<(), ApiError> {
    let full = format!("{namespace}/{name}");
    let Some(upstream) = state.mirror.upstream_for(&full) else {
        return Ok(());
    };
    if !needs_fetch(state, namespace, name, revision).await? {
        return Ok(());
    }
    let info = match upstream.revision(&full, revision).await {
        Ok(info) => info,
        Err(UpstreamError::NotFound(..)) => return Ok(()),
        Err(e) => {
            let mut conn = state.db.acquire().await?;
            if db::repos::find_live(&mut conn, namespace, name)
                .await?
                .is_some()
            {
                // Mirrored already: serve what is here; the revision lookup answers.
                tracing::warn!(repo = %full, revision, error = %e, "upstream unreachable");
                return Ok(());
            }
            return Err(upstream_error(e));
        }
    };
    if let Some(mode) = info.gated {
        open_gate(state, requester, namespace, name, &info, mode).await?;
    }
    mirror_revision(
        state,
        upstream,
        requester,
        (namespace, name),
        revision,
        &info,
    )
    .await
}

/// A model gated upstream is fetched (with the organisation's token) only for a local user
/// who passed the same gate here: its local repository is created first, gated like the
/// upstream, so users can ask for access; the fetch goes on only if `requester` has it. Every
/// download of it stays behind the local gate, so every use is attributable.
async fn open_gate(
    state: &AppState,
    requester: &Caller,
    namespace: &str,
    name: &str,
    info: &UpstreamRevision,
    mode: Gated,
) -> Result<(), ApiError> {
    let Some(upstream) = state.mirror.upstream_for(&format!("{namespace}/{name}")) else {
        return Ok(());
    };
    let caller = mirror_caller(state).await?;
    let mut tx = state.db.begin().await?;
    let mut repo = local_repo(state, &mut tx, &caller, namespace, name, info.private).await?;
    if repo.gated == Gated::None {
        db::repos::update_settings(&mut tx, repo.id, None, None, Some(mode)).await?;
        repo.gated = mode;
    }
    db::mirror::record_repo(&mut tx, repo.id, upstream.base(), &repo.full_name()).await?;
    tx.commit().await?;
    let mut conn = state.db.acquire().await?;
    crate::routes::access::authorize_download(&mut conn, requester, &repo)
        .await
        .map_err(|refused| {
            let fetched =
                "it is fetched from the upstream only for a user who was let through its gate here";
            ApiError::new(
                refused.status,
                refused.code,
                format!("{} ({fetched})", refused.message),
            )
        })
}

/// What one re-sync did.
#[derive(Debug, Default, serde::Serialize)]
pub struct SyncReport {
    /// Branches whose upstream head was already mirrored.
    pub unchanged: usize,
    /// Branches that got a new mirrored commit (the old ones stay).
    pub updated: usize,
    /// Branches whose new upstream head the licence policy refused before fetching its
    /// weights (the branch keeps what it had).
    pub refused: usize,
    /// Branches that could not be checked (upstream unreachable, failed fetches, ...).
    pub failed: usize,
}

/// Re-syncs every mirrored branch: an upstream head not mirrored yet becomes a new mirrored
/// commit on the branch; earlier commits stay, reachable by their upstream ids.
pub async fn sync(state: &AppState) -> Result<SyncReport, ApiError> {
    let mut report = SyncReport::default();
    if state.mirror.routes.is_empty() {
        return Ok(report);
    }
    let caller = mirror_caller(state).await?;
    let mut conn = state.db.acquire().await?;
    let mirrored = db::mirror::status(&mut conn).await?;
    for (full, recorded, _, _) in mirrored {
        let Some((namespace, name)) = full.split_once('/') else {
            continue;
        };
        let Some(upstream) = state.mirror.upstream_of(&full, &recorded) else {
            tracing::warn!(repo = %full, upstream = %recorded, "mirror re-sync skipped: no upstream configured for it");
            report.failed += 1;
            continue;
        };
        let Some(repo) = db::repos::find_live(&mut conn, namespace, name).await? else {
            continue;
        };
        let branches: Vec<String> = db::commits::list_refs(&mut conn, repo.id)
            .await?
            .into_iter()
            .filter(|r| r.kind == crate::db::types::RefKind::Branch && r.name != "mirror")
            .map(|r| r.name)
            .collect();
        for branch in branches {
            let info = match upstream.revision(&full, &branch).await {
                Ok(info) => info,
                Err(e) => {
                    tracing::warn!(repo = %full, branch, error = %e, "mirror re-sync failed");
                    report.failed += 1;
                    continue;
                }
            };
            if db::mirror::local_commit(&mut conn, repo.id, &info.sha)
                .await?
                .is_some()
            {
                report.unchanged += 1;
                continue;
            }
            let fetched =
                mirror_revision(state, upstream, &caller, (namespace, name), &branch, &info).await;
            match fetched {
                Ok(()) => report.updated += 1,
                Err(e) if e.code == code::MIRROR_POLICY_DENIED => {
                    tracing::info!(repo = %full, branch, reason = %e.message, "mirror re-sync refused the new head");
                    report.refused += 1;
                }
                Err(e) => {
                    tracing::warn!(repo = %full, branch, error = %e.message, "mirror re-sync failed");
                    report.failed += 1;
                }
            }
        }
    }
    Ok(report)
}

/// Whether the revision must come from upstream: the repository is missing, or it is a mirror
/// that does not hold the revision yet.
async fn needs_fetch(
    state: &AppState,
    namespace: &str,
    name: &str,
    revision: &str,
) -> Result<bool, ApiError> {
    let mut conn = state.db.acquire().await?;
    let Some(repo) = db::repos::find_live(&mut conn, namespace, name).await? else {
        return Ok(true);
    };
    if db::mirror::find(&mut conn, repo.id).await?.is_none() {
        return Ok(false);
    }
    db::mirror::touch(&mut conn, repo.id).await?;
    // What is served from here is served under the licence policy in force now.
    drop(conn);
    licence_gate::recheck(state, repo.id).await?;
    let mut conn = state.db.acquire().await?;
    if db::mirror::local_commit(&mut conn, repo.id, revision)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    // A branch that still points at the repository's first, empty commit (a gated mirror
    // nobody was let through yet) holds nothing mirrored.
    Ok(
        match db::commits::resolve(&mut conn, repo.id, revision).await? {
            Some(commit) => !db::mirror::holds(&mut conn, repo.id, &commit).await?,
            None => true,
        },
    )
}

/// The local caller that owns mirrored namespaces (created on first use).
async fn mirror_caller(state: &AppState) -> Result<Caller, ApiError> {
    let mut conn = state.db.acquire().await?;
    let id = match db::accounts::find_namespace(&mut conn, MIRROR_USER).await? {
        Some(ns) => ns.id,
        None => {
            drop(conn);
            match crate::domain::accounts::create_user(
                &state.db,
                &Caller::default(),
                MIRROR_USER,
                false,
            )
            .await
            {
                Ok(_) | Err(crate::domain::accounts::AccountError::NameTaken(_)) => {}
                Err(e) => {
                    return Err(ApiError::internal(anyhow::anyhow!(
                        "creating the mirror user: {e}"
                    )));
                }
            }
            let mut conn = state.db.acquire().await?;
            db::accounts::find_namespace(&mut conn, MIRROR_USER)
                .await?
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the mirror user vanished")))?
                .id
        }
    };
    Ok(Caller {
        user: Some(AuthUser {
            id,
            name: MIRROR_USER.into(),
            is_admin: false,
            token_id: 0,
            scope: crate::auth::Scope::Write,
        }),
        ..Default::default()
    })
}

/// Fetches every file of the upstream revision, checks and scans it, then records the mirrored
/// commit on the revision's branch, in one transaction: nothing is visible before all of it is.
async fn mirror_revision(
    state: &AppState,
    upstream: &Upstream,
    requester: &Caller,
    (namespace, name): (&str, &str),
    revision: &str,
    info: &UpstreamRevision,
) -> Result<(), ApiError> {
    let full = format!("{namespace}/{name}");
    let mut snapshot = Snapshot::new();
    let mut new_blobs = Vec::new();
    // The card, licence and notice files come first: under a licence gate, a model they
    // already deny is refused before its weights are downloaded.
    let (facts, weights): (Vec<_>, Vec<_>) = info
        .siblings
        .iter()
        .partition(|f| crate::licensing::is_fact_text(&f.rfilename));
    for (i, files) in [facts, weights].iter().enumerate() {
        if i == 1 && !files.is_empty() {
            refuse_early(state, requester, upstream, &full, info, &snapshot).await?;
        }
        for (path, sha256, size) in fetch_files(state, upstream, &full, &info.sha, files).await? {
            new_blobs.push((sha256, path.clone()));
            let size = size as i64;
            snapshot.insert(path, Entry { sha256, size });
        }
    }
    // Scanned before the commit exists: a malicious file is quarantined the moment it appears.
    let ctx = crate::jobs::JobContext {
        db: state.db.clone(),
        store: state.store.clone(),
        settings: state.settings.clone(),
    };
    for (sha256, path) in &new_blobs {
        crate::jobs::scan_now(&ctx, sha256.to_hex(), path.clone())
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("scanning {path}: {e:?}")))?;
    }
    // Only now, with every file checked, does the repository appear (if it is new), in the
    // transaction that records its commit and its upstream.
    let caller = mirror_caller(state).await?;
    let user = caller.user.clone().unwrap_or_else(|| unreachable!());
    let branch = if crate::commit_id::is_commit_id(revision) {
        "mirror"
    } else {
        revision
    };
    let mut tx = state.db.begin().await?;
    let repo = local_repo(state, &mut tx, &caller, namespace, name, info.private).await?;
    for (sha256, _) in &new_blobs {
        db::blobs::grant_upload(&mut tx, repo.id, sha256.as_bytes(), user.id).await?;
    }
    let parent = db::commits::resolve(&mut tx, repo.id, branch).await?;
    let message = format!("Mirrored from {}/{full} at {}", upstream.base(), info.sha);
    let commit = crate::domain::commits::write_commit(
        &mut tx,
        &crate::domain::commits::CommitContext {
            repository_id: repo.id,
            branch,
            parent: parent.as_deref(),
            author_id: user.id,
            author_name: MIRROR_USER,
            message: &message,
            request_id: None,
        },
        &snapshot,
    )
    .await?;
    db::repos::touch(&mut tx, repo.id).await?;
    if branch == crate::domain::commits::DEFAULT_BRANCH {
        crate::domain::commits::record_card(&mut tx, &state.store, repo.id, &snapshot).await?;
    }
    db::mirror::record_repo(&mut tx, repo.id, upstream.base(), &full).await?;
    // The licence verdict is recorded with the commit, in the same transaction: a denied
    // commit is never visible, not for a moment nor after a crash, without its refusal.
    let gate = licence_gate::in_force(state, &mut tx).await?;
    let refusal = match &gate {
        Some(gate) => licence_gate::refusal(state, &mut tx, gate, &repo, &commit).await?,
        None => None,
    };
    let verdict = db::mirror::Verdict {
        refusal: refusal.as_deref(),
        policy_key: gate.as_ref().map(|g| g.key.as_str()),
    };
    db::mirror::record_commit(&mut tx, repo.id, &info.sha, &commit, &verdict).await?;
    // Who caused the upstream download, and of what: the audit answers for every mirrored file.
    crate::domain::event::record(
        &mut tx,
        requester,
        crate::domain::event::Event::new(
            "mirror.fetch",
            crate::domain::event::Target::Repo(&repo),
            serde_json::json!({
                "upstream": upstream.base(),
                "revision": revision,
                "upstream_commit": info.sha,
                "commit": commit,
                "files": snapshot.len(),
                "gated": info.gated,
            }),
        ),
    )
    .await?;
    if let Some(reason) = &refusal {
        crate::domain::event::record(
            &mut tx,
            &Caller::default(),
            crate::domain::event::Event::new(
                "mirror.refuse",
                crate::domain::event::Target::Repo(&repo),
                serde_json::json!({"commit": commit, "reason": reason}),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(repo = %full, revision, upstream_commit = %info.sha, commit = %commit, files = snapshot.len(), refused = refusal.is_some(), "mirrored");
    enforce_budget(state, repo.id).await
}

/// Refuses an upstream revision that the licence gate denies on its card, licence and notice
/// files alone (in `fetched`), before any other file is downloaded: a 403 with the policy's
/// reason, audited in the policy organisation's log, and nothing recorded (a later policy may
/// let it through). Revisions with GGUF files wait for the whole commit, whose headers count.
async fn refuse_early(
    state: &AppState,
    requester: &Caller,
    upstream: &Upstream,
    full: &str,
    info: &UpstreamRevision,
    fetched: &Snapshot,
) -> Result<(), ApiError> {
    if info
        .siblings
        .iter()
        .any(|f| crate::licensing::is_gguf(&f.rfilename))
    {
        return Ok(());
    }
    let mut tx = state.db.begin().await?;
    let Some(gate) = licence_gate::in_force(state, &mut tx).await? else {
        return Ok(());
    };
    let files = fetched
        .iter()
        .map(|(path, entry)| db::commits::FileRow {
            path: path.clone(),
            sha256: entry.sha256,
            size: entry.size,
        })
        .collect();
    let Some(reason) = licence_gate::early_refusal(state, &mut tx, &gate, full, files).await?
    else {
        return Ok(());
    };
    crate::domain::event::record(
        &mut tx,
        requester,
        crate::domain::event::Event::new(
            "mirror.refuse",
            crate::domain::event::Target::Namespace(gate.namespace()),
            serde_json::json!({
                "repo": full,
                "upstream": upstream.base(),
                "upstream_commit": info.sha,
                "reason": reason,
                "downloaded": "card, licence and notice files only",
            }),
        ),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(repo = %full, upstream_commit = %info.sha, "refused before its weights were fetched");
    Err(ApiError::forbidden(code::MIRROR_POLICY_DENIED, reason))
}

/// Past the storage budget, evicts the least recently read mirrored repositories (never the
/// one just fetched, nor pinned ones) until the mirrored content fits.
async fn enforce_budget(state: &AppState, keep: i64) -> Result<(), ApiError> {
    let budget = state.settings.mirror.budget_bytes;
    if budget == 0 {
        return Ok(());
    }
    let mut conn = state.db.acquire().await?;
    for (repository_id, full) in db::mirror::least_recently_used(&mut conn).await? {
        if db::mirror::usage(&mut conn).await? as u64 <= budget {
            break;
        }
        if repository_id == keep || matches_any(&state.settings.mirror.pinned, &full) {
            continue;
        }
        let mut tx = state.db.begin().await?;
        db::mirror::evict(&mut tx, repository_id).await?;
        tx.commit().await?;
        tracing::info!(repo = %full, budget, "evicted from the mirror's storage budget");
    }
    Ok(())
}

/// The refusal of a mirrored commit, as the error its downloads get.
pub async fn refusal(
    conn: &mut sqlx::PgConnection,
    repository_id: i64,
    commit: &str,
) -> Result<Option<ApiError>, ApiError> {
    Ok(db::mirror::refusal(conn, repository_id, commit)
        .await?
        .map(|reason| ApiError::forbidden(code::MIRROR_POLICY_DENIED, reason)))
}

/// The refusal of bytes read by their hash (the CAS names no commit): refused when every
/// mirrored commit of the repository that holds them is refused.
pub async fn bytes_refusal(
    conn: &mut sqlx::PgConnection,
    repository_id: i64,
    sha256: &[u8],
) -> Result<Option<ApiError>, ApiError> {
    Ok(db::mirror::bytes_refusal(conn, repository_id, sha256)
        .await?
        .map(|reason| ApiError::forbidden(code::MIRROR_POLICY_DENIED, reason)))
}

/// The local repository of a mirror, created on first use (owned by the mirror user, in a
/// namespace created for it) within `tx`, so that it exists only with what the caller records
/// beside it. A namespace that exists here and is not the mirror's is never written to.
async fn local_repo(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    caller: &Caller,
    namespace: &str,
    name: &str,
    private: bool,
) -> Result<db::repos::Repo, ApiError> {
    if let Some(repo) = db::repos::find_live(&mut *tx, namespace, name).await? {
        return Ok(repo);
    }
    if db::accounts::find_namespace(&mut *tx, namespace)
        .await?
        .is_none()
    {
        let owner = caller.id().unwrap_or_default();
        match crate::domain::accounts::create_org(&state.db, caller, owner, namespace).await {
            Ok(_) | Err(crate::domain::accounts::AccountError::NameTaken(_)) => {}
            Err(e) => {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "creating namespace {namespace}: {e}"
                )));
            }
        }
    }
    let visibility = if private {
        Visibility::Private
    } else {
        Visibility::Public
    };
    let description = format!("Mirror of {namespace}/{name}");
    let new = crate::domain::repos::NewRepository {
        namespace: Some(namespace),
        name,
        visibility,
        description: &description,
    };
    let grace = state.settings.gc.deleted_repo_grace_days;
    // A savepoint: a concurrent fetch of another revision may create it first.
    let mut attempt = sqlx::Connection::begin(&mut *tx).await?;
    match crate::domain::repos::create_in(&mut attempt, caller, new, grace).await {
        Ok((repo, _)) => {
            attempt.commit().await?;
            Ok(repo)
        }
        Err(crate::domain::repos::RepoError::Exists(full)) => {
            attempt.rollback().await?;
            db::repos::find_live(&mut *tx, namespace, name)
                .await?
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("{full} exists and is not live")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Fetches `files` of `repo` at `commit`, each as [`fetch_file`] does, and names each one's
/// digest and size. Small files are asked [`SMALL_FILES_AT_ONCE`] at a time: each costs a
/// request, so from a distant upstream their round trips, not their bytes, are what a revision
/// of many of them waits for. Large ones (and those of unknown size) come one after another,
/// each read on several connections already (`pieces.rs`), so memory stays bounded.
async fn fetch_files(
    state: &AppState,
    upstream: &Upstream,
    repo: &str,
    commit: &str,
    files: &[&UpstreamFile],
) -> Result<Vec<(String, Sha256Digest, u64)>, ApiError> {
    let (small, large): (Vec<&UpstreamFile>, Vec<_>) = files.iter().partition(|f| {
        let size = f.lfs.as_ref().map(|l| l.size).or(f.size);
        size.is_some_and(|n| n < XET_MIN_BYTES)
    });
    // The futures are made first, then run: a stream that made them with a closure would not
    // be `Send` for every lifetime the spawned fetch needs.
    let small: Vec<_> = small
        .into_iter()
        .map(|file| fetch_named(state, upstream, repo, commit, file))
        .collect();
    let mut fetched: Vec<_> = futures_util::stream::iter(small)
        .buffer_unordered(SMALL_FILES_AT_ONCE)
        .try_collect()
        .await?;
    for file in large {
        fetched.push(fetch_named(state, upstream, repo, commit, file).await?);
    }
    Ok(fetched)
}

/// [`fetch_file`], with the file's path beside its digest and size.
async fn fetch_named(
    state: &AppState,
    upstream: &Upstream,
    repo: &str,
    commit: &str,
    file: &UpstreamFile,
) -> Result<(String, Sha256Digest, u64), ApiError> {
    let (sha256, size) = fetch_file(state, upstream, repo, commit, file).await?;
    Ok((file.rfilename.clone(), sha256, size))
}

/// How many small files of a revision are fetched at once.
const SMALL_FILES_AT_ONCE: usize = 8;

/// Streams one upstream file into the store, checked against the upstream's sha256 (LFS files)
/// or git blob id (others): bytes that do not match are never referenced.
async fn fetch_file(
    state: &AppState,
    upstream: &Upstream,
    repo: &str,
    commit: &str,
    file: &UpstreamFile,
) -> Result<(Sha256Digest, u64), ApiError> {
    let declared_sha256 =
        match &file.lfs {
            Some(lfs) => Some(lfs.sha256.parse::<Sha256Digest>().map_err(|_| {
                upstream_mismatch(repo, &file.rfilename, "its sha256 is not a sha256")
            })?),
            None => None,
        };
    let size = file.lfs.as_ref().map(|l| l.size).or(file.size);
    // Bytes this hub already holds are not fetched again (deduplicated by sha256).
    if let (Some(digest), Some(size)) = (declared_sha256, size)
        && state.store.blob_size(&digest).await? == Some(size)
    {
        let mut conn = state.db.acquire().await?;
        db::blobs::upsert(&mut conn, digest.as_bytes(), size as i64).await?;
        return Ok((digest, size));
    }
    let expected = Expected {
        sha256: declared_sha256,
        size,
        max_size: state.settings.limits.max_file_size,
    };
    let chunked = state.settings.xet.enabled
        && declared_sha256.is_some()
        && size.is_some_and(|n| n >= XET_MIN_BYTES);
    if chunked && let Some(source) = upstream.xet_source(repo, commit, &file.rfilename).await {
        match upstream.reconstruction(&source).await {
            Ok(plan) => {
                let at = (repo, commit);
                return fetch_chunks(state, upstream, at, file, expected, &source, &plan).await;
            }
            Err(e) => {
                tracing::info!(repo, path = %file.rfilename, error = %e, "the upstream's CAS gave no reconstruction; reading through resolve")
            }
        }
    }
    let mut body = upstream
        .file(repo, commit, &file.rfilename, 0)
        .await
        .map_err(|e| file_error(repo, &file.rfilename, e))?;
    let mut upload = match chunked {
        true => Sink::Chunked(Box::new(state.store.begin_chunked_upload(expected))),
        false => Sink::Whole(Box::new(state.store.begin_upload(expected).await?)),
    };
    // The git blob id is the only digest of a file outside LFS; an LFS file is checked by its
    // sha256 alone (the upload computes it), so it is not hashed twice.
    let mut git = (declared_sha256.is_none() && file.blob_id.is_some()).then(Sha1::new);
    if let (Some(git), Some(size)) = (&mut git, size) {
        git.update(format!("blob {size}\0").as_bytes());
    }
    // A download that broke off is read on from where it stopped, as the stock client does,
    // with the tries a piece of a Xet file gets; the digest checks the whole at the end.
    let (mut received, mut tries) = (0u64, 1);
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) if e.is_timeout() || tries >= retry::ATTEMPTS => {
                let why = format!("the download broke off: {}", outbound::describe(&e));
                return Err(upstream_mismatch(repo, &file.rfilename, &why));
            }
            Err(e) => {
                tracing::info!(repo, path = %file.rfilename, received, error = %outbound::describe(&e), "the download broke off; reading on from where it stopped");
                tokio::time::sleep(retry::backoff(tries)).await;
                tries += 1;
                body = upstream
                    .file(repo, commit, &file.rfilename, received)
                    .await
                    .map_err(|e| file_error(repo, &file.rfilename, e))?;
                continue;
            }
        };
        received += chunk.len() as u64;
        if let Some(git) = &mut git {
            git.update(&chunk);
        }
        upload
            .write(chunk)
            .await
            .map_err(|e| upstream_mismatch(repo, &file.rfilename, &e.to_string()))?;
    }
    if let (Some(git), Some(blob_id)) = (git, &file.blob_id)
        && hex::encode(git.finalize()) != blob_id.to_ascii_lowercase()
    {
        return Err(upstream_mismatch(
            repo,
            &file.rfilename,
            "its bytes do not match the upstream's git blob id",
        ));
    }
    let failed =
        |e: kaiyuan_storage::UploadError| upstream_mismatch(repo, &file.rfilename, &e.to_string());
    match upload {
        Sink::Whole(upload) => {
            let stored = upload.finish().await.map_err(failed)?;
            let mut conn = state.db.acquire().await?;
            db::blobs::upsert(&mut conn, stored.sha256.as_bytes(), stored.size as i64).await?;
            Ok((stored.sha256, stored.size))
        }
        Sink::Chunked(upload) => {
            let stored = upload.finish().await.map_err(failed)?;
            register(state, repo, &file.rfilename, &stored).await?;
            tracing::debug!(repo, path = %file.rfilename, file_hash = %stored.file_hash, xorbs = stored.xorbs.len(), "mirrored as xet chunks");
            Ok((stored.sha256, stored.size))
        }
    }
}

/// Reads a file's chunks from the upstream's CAS into a chunked upload, term by term: checked
/// like any fetch (size and sha256), and its chunks must hash to the upstream's Xet hash.
async fn fetch_chunks(
    state: &AppState,
    upstream: &Upstream,
    (repo, commit): (&str, &str),
    file: &UpstreamFile,
    expected: Expected,
    source: &upstream_xet::XetSource,
    plan: &upstream_xet::Reconstruction,
) -> Result<(Sha256Digest, u64), ApiError> {
    let path = &file.rfilename;
    let reads = plan
        .reads()
        .map_err(|why| upstream_mismatch(repo, path, &why))?;
    let failed = |e: kaiyuan_storage::UploadError| upstream_mismatch(repo, path, &e.to_string());
    let mut upload = state.store.begin_chunked_upload(expected);
    let malformed = |e: kaiyuan_xet::XorbError| {
        upstream_mismatch(
            repo,
            path,
            &format!("the upstream's xorb is malformed: {e}"),
        )
    };
    // Upstream xorbs this hub holds already (kept whole from an earlier fetch) are read here:
    // a new version of a file fetches only the chunks it does not share with the old one.
    let held = {
        let named: Vec<MerkleHash> = reads.iter().map(|r| r.xorb).collect();
        let mut conn = state.db.acquire().await?;
        crate::xet::recipes::chunk_tables(&mut conn, &named).await?
    };
    let held_table = |read: &upstream_xet::TermRead<'_>| {
        held.get(&read.xorb)
            .map(|(_, table)| table)
            .filter(|table| read.wanted.end <= table.len() as u64)
    };
    // The rest is read in pieces, several at a time, while earlier ones are unpacked.
    let to_fetch: Vec<_> = reads
        .iter()
        .filter(|read| held_table(read).is_none())
        .map(|read| (read.xorb, read.fetch.signed_range()))
        .collect();
    let keys = to_fetch
        .iter()
        .map(|(xorb, (_, bytes))| (*xorb, bytes.clone()));
    let sign_again = upstream.signer((repo, commit, path), source.hash, keys.collect());
    let signed = pieces::Signed::new(
        to_fetch.into_iter().map(|(_, range)| range).collect(),
        sign_again,
    );
    let mut ranges = pieces::RangeReader::new(upstream, signed);
    let range_error = |e| match e {
        pieces::PieceError::Request(e) => file_error(repo, path, e),
        pieces::PieceError::Body(why) | pieces::PieceError::BrokeOff(why) => {
            upstream_mismatch(repo, path, &why)
        }
    };
    for read in &reads {
        if let Some(table) = held_table(read) {
            copy_stored(state, &mut upload, read, table)
                .await
                .map_err(|e| upstream_mismatch(repo, path, &e))?;
            continue;
        }
        // A term from an upstream xorb's first chunk may cover all of it: its chunks get xorbs
        // of their own, so that such a xorb is stored under its upstream hash and the next
        // version of the file can reuse it. Other terms share xorbs, so that a file of many
        // small terms does not make as many small xorbs.
        let whole_candidate = read.wanted.start == 0;
        if whole_candidate {
            upload.end_xorb().await.map_err(failed)?;
        }
        let mut frames = kaiyuan_xet::FrameReader::new();
        let (mut index, mut unpacked) = (read.first, 0u64);
        ranges.begin().await.map_err(range_error)?;
        while let Some(part) = ranges.next_part().await {
            let part = part.map_err(range_error)?;
            // Fed a frame's worth at a time: the reader then holds about one frame, in memory
            // it uses again, instead of a copy of the whole piece.
            for bytes in part.chunks(FEED_BYTES) {
                frames.feed(bytes);
                while let Some(chunk) = frames.next_chunk().map_err(malformed)? {
                    if read.wanted.contains(&index) {
                        unpacked += chunk.len() as u64;
                        upload.write_chunk(chunk).await.map_err(failed)?;
                    }
                    index += 1;
                }
            }
            ranges.recycle(part);
        }
        frames.finish().map_err(malformed)?;
        if index < read.wanted.end || unpacked != read.unpacked_length {
            return Err(upstream_mismatch(
                repo,
                path,
                "the upstream's CAS sent other chunks than its reconstruction names",
            ));
        }
        if whole_candidate {
            upload.end_xorb().await.map_err(failed)?;
        }
    }
    let stored = upload.finish().await.map_err(failed)?;
    if stored.file_hash != source.hash {
        return Err(upstream_mismatch(
            repo,
            path,
            "its chunks do not hash to the upstream's Xet hash",
        ));
    }
    register(state, repo, path, &stored).await?;
    tracing::debug!(repo, path = %path, fetched = stored.xorbs.len(), terms = stored.terms.len(), "mirrored from the upstream's CAS");
    Ok((stored.sha256, stored.size))
}

/// Appends the chunks `read` wants of a xorb this hub holds, read back from the store.
async fn copy_stored(
    state: &AppState,
    upload: &mut kaiyuan_storage::ChunkedUpload,
    read: &upstream_xet::TermRead<'_>,
    table: &[kaiyuan_xet::xorb::ChunkEntry],
) -> Result<(), String> {
    let chunks = &table[read.wanted.start as usize..read.wanted.end as usize];
    let (Some(first), Some(last)) = (chunks.first(), chunks.last()) else {
        return Err("a term with no chunks".into());
    };
    let bytes = u64::from(first.offset)..u64::from(last.offset) + u64::from(last.frame_len);
    let mut stream = state
        .store
        .read_xorb(&read.xorb, bytes)
        .await
        .map_err(|e| e.to_string())?;
    let mut frames = kaiyuan_xet::FrameReader::new();
    let mut entries = chunks.iter();
    while let Some(piece) = stream.next().await {
        frames.feed(&piece.map_err(|e| e.to_string())?);
        while let Some(chunk) = frames.next_chunk().map_err(|e| e.to_string())? {
            let entry = entries
                .next()
                .ok_or_else(|| format!("xorb {} holds more chunks than its table", read.xorb))?;
            upload
                .write_stored_chunk(entry.hash, chunk)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    frames.finish().map_err(|e| e.to_string())?;
    if entries.next().is_some() {
        return Err(format!(
            "xorb {} holds fewer chunks than its table",
            read.xorb
        ));
    }
    upload
        .stored_term(kaiyuan_xet::shard::Term {
            xorb: read.xorb,
            unpacked_len: u32::try_from(read.unpacked_length).map_err(|e| e.to_string())?,
            chunk_start: read.wanted.start as u32,
            chunk_end: read.wanted.end as u32,
        })
        .map_err(|e| e.to_string())
}

/// Registers a file the mirror stored as chunks; a xorb it reused that was collected meanwhile
/// fails the fetch like any other reason, with nothing kept.
async fn register(
    state: &AppState,
    repo: &str,
    path: &str,
    stored: &kaiyuan_storage::ChunkedBlob,
) -> Result<(), ApiError> {
    use crate::xet::register::RegisterError;
    match crate::xet::register::register_chunked(state, stored).await {
        Ok(()) => Ok(()),
        Err(RegisterError::Invalid(why)) => Err(upstream_mismatch(repo, path, &why)),
        Err(RegisterError::Storage(e)) => Err(e.into()),
        Err(RegisterError::Database(e)) => Err(e.into()),
    }
}

/// How much of a piece the frame reader is given at once: about a frame (a chunk is at most
/// 128 KiB).
const FEED_BYTES: usize = 128 << 10;

/// Files from this size on are kept as Xet chunks, so that the mirror serves them to Xet clients
/// and later Xet uploads of the same or nearby bytes deduplicate against their chunks; smaller
/// ones (cards, configurations) stay whole objects, as the Hugging Face hub keeps them in git.
const XET_MIN_BYTES: u64 = 1 << 20;

/// Where a fetched file's bytes go.
enum Sink {
    Whole(Box<kaiyuan_storage::Upload>),
    Chunked(Box<kaiyuan_storage::ChunkedUpload>),
}

impl Sink {
    async fn write(&mut self, bytes: bytes::Bytes) -> Result<(), kaiyuan_storage::UploadError> {
        match self {
            Sink::Whole(upload) => upload.write(bytes).await,
            Sink::Chunked(upload) => upload.write(bytes).await,
        }
    }
}

/// The error of a request for a file's bytes: a refused destination names the file, like any
/// other reason its fetch failed.
fn file_error(repo: &str, path: &str, e: UpstreamError) -> ApiError {
    match e {
        UpstreamError::Misdirected(_) => upstream_mismatch(repo, path, &e.to_string()),
        e => upstream_error(e),
    }
}

fn upstream_mismatch(repo: &str, path: &str, why: &str) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::BAD_GATEWAY,
        code::UPSTREAM_FAILED,
        format!("`{path}` of `{repo}` could not be mirrored: {why}; nothing was kept"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_and_deny_patterns() {
        let mut s = Settings::default();
        let allowed = |s: &Settings, repo: &str| admits(&s.allow, &s.deny, repo);
        assert!(allowed(&s, "any/thing"));
        s.allow = vec![
            "meta-llama/*".into(),
            "/^qwen/.+-gguf$/".into(),
            "a/b".into(),
        ];
        s.deny = vec!["meta-llama/secret".into()];
        assert!(allowed(&s, "meta-llama/Llama-3"));
        assert!(allowed(&s, "qwen/q-7b-gguf") && !allowed(&s, "qwen/q-7b"));
        assert!(allowed(&s, "a/b") && !allowed(&s, "a/c"));
        assert!(!allowed(&s, "meta-llama/secret"), "deny wins");
        assert!(matches_any(&["/^a/b$/".to_string()], "a/b") && !matches_any(&[], "a/b"));
    }
}
