//! The organisation's licence policy in front of what the mirror serves (`mirror.policy`):
//! each mirrored commit carries its verdict and the key of the gate that decided it, and a
//! commit decided under another gate (the policy changed, was removed, or the licence catalog
//! moved on) is decided again before anything of its repository is served.

use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::db;
use crate::domain::event::{self, Event, Target};
use crate::error::ApiError;
use crate::state::AppState;

/// The licence gate in force: whose policy, the policy itself (`None`: the engine's defaults)
/// and the key that names both with the licence catalog's version.
pub struct Gate {
    namespace: String,
    policy: Option<kaiyuan_license::Policy>,
    pub key: String,
}

/// The gate `mirror.policy` names, or `None` without one. A policy namespace that does not
/// exist is an error: the mirror serves nothing rather than everything.
pub async fn in_force(
    state: &AppState,
    conn: &mut sqlx::PgConnection,
) -> Result<Option<Gate>, ApiError> {
    let Some(name) = &state.settings.mirror.policy else {
        return Ok(None);
    };
    let namespace = db::accounts::find_namespace(conn, name)
        .await?
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "mirror.policy names `{name}`, which does not exist"
            ))
        })?;
    let (policy, _) = crate::licensing::namespace_policy(conn, namespace.id).await?;
    let document =
        serde_json::to_string(&(name, &policy, &kaiyuan_license::catalog::catalog().version))
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    Ok(Some(Gate {
        namespace: name.clone(),
        policy,
        key: hex::encode(Sha256::digest(document.as_bytes())),
    }))
}

/// Why `gate` denies a commit (evaluated on the caller's connection, inside its transaction),
/// or `None` when it lets the commit through.
pub async fn refusal(
    state: &AppState,
    conn: &mut sqlx::PgConnection,
    gate: &Gate,
    repo: &db::repos::Repo,
    commit: &str,
) -> Result<Option<String>, ApiError> {
    let report = crate::licensing::evaluate_commit(
        conn,
        &state.store,
        repo,
        commit,
        gate.policy.as_ref(),
        &kaiyuan_license::UseContext::default(),
    )
    .await?;
    Ok(gate.denial(&repo.full_name(), &report))
}

/// Why `gate` denies upstream model `full_name` from its card, licence and notice files alone
/// (`files`, fetched ahead of its weights), or `None`. Called only for revisions without GGUF
/// files, whose headers are facts too: with the same facts, the verdict on the whole commit
/// is the same, so a denied model's weights are never downloaded.
pub async fn early_refusal(
    state: &AppState,
    conn: &mut sqlx::PgConnection,
    gate: &Gate,
    full_name: &str,
    files: Vec<db::commits::FileRow>,
) -> Result<Option<String>, ApiError> {
    let facts = crate::licensing::facts_of(&state.store, full_name.to_string(), files).await?;
    let namespace = match full_name.split_once('/') {
        Some((namespace, _)) => db::accounts::find_namespace(conn, namespace)
            .await?
            .map(|n| n.id),
        None => None,
    };
    let report = crate::licensing::evaluate_facts(
        conn,
        &state.store,
        namespace,
        &facts,
        gate.policy.as_ref(),
        &kaiyuan_license::UseContext::default(),
    )
    .await?;
    Ok(gate.denial(full_name, &report))
}

impl Gate {
    /// The refusal a report amounts to under this gate, if it denies.
    fn denial(&self, full_name: &str, report: &kaiyuan_license::Report) -> Option<String> {
        if report.decision != kaiyuan_license::Decision::Deny {
            return None;
        }
        // The finding that denies, not the first (often a note on how the licence was read).
        let why = report
            .findings
            .iter()
            .find(|f| f.severity == kaiyuan_license::Severity::Error)
            .or(report.findings.first())
            .map(|f| f.message.clone())
            .unwrap_or_else(|| "the licence is not allowed".into());
        Some(format!(
            "{}'s licence policy denies `{full_name}`: {why}",
            self.namespace
        ))
    }

    /// The organisation whose policy this is.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

/// Decides again, under the gate in force, every mirrored commit of the repository that
/// another gate decided; each changed verdict is audited (`mirror.refuse`, `mirror.admit`).
/// Cheap when nothing changed: one lookup of the policy and one of the stale commits.
pub async fn recheck(state: &AppState, repository_id: i64) -> Result<(), ApiError> {
    if state.mirror.routes.is_empty() {
        return Ok(());
    }
    let mut conn = state.db.acquire().await?;
    let gate = in_force(state, &mut conn).await?;
    let key = gate.as_ref().map(|g| g.key.as_str());
    let stale = db::mirror::stale_verdicts(&mut conn, repository_id, key).await?;
    if stale.is_empty() {
        return Ok(());
    }
    let Some(repo) = db::repos::find_by_id(&mut conn, repository_id).await? else {
        return Ok(());
    };
    drop(conn);
    for commit in stale {
        let mut tx = state.db.begin().await?;
        // Locked, then read again: of two requests that found it stale, one decides.
        let Some((before, decided_under)) =
            db::mirror::lock_verdict(&mut tx, repository_id, &commit).await?
        else {
            continue;
        };
        if decided_under.as_deref() == key {
            continue;
        }
        let now = match &gate {
            Some(gate) => refusal(state, &mut tx, gate, &repo, &commit).await?,
            None => None,
        };
        let verdict = db::mirror::Verdict {
            refusal: now.as_deref(),
            policy_key: key,
        };
        db::mirror::set_verdict(&mut tx, repository_id, &commit, &verdict).await?;
        if before != now {
            let (action, details) = match &now {
                Some(reason) => (
                    "mirror.refuse",
                    serde_json::json!({"commit": commit, "reason": reason}),
                ),
                None => (
                    "mirror.admit",
                    serde_json::json!({"commit": commit, "was": before}),
                ),
            };
            event::record(
                &mut tx,
                &Caller::default(),
                Event::new(action, Target::Repo(&repo), details),
            )
            .await?;
            tracing::info!(repo = %repo.full_name(), commit, refused = now.is_some(), "mirrored commit decided again under the licence policy in force");
        }
        tx.commit().await?;
    }
    Ok(())
}
