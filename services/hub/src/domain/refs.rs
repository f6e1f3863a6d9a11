//! Branches and tags: moving and deleting them, with the optimistic check and the log entry.

use sqlx::PgConnection;

use super::actor::Actor;
use super::event::{self, Event, Target};
use super::log_entry::LogEntry;
use crate::db;
use crate::db::repos::Repo;
use crate::db::types::RefKind;
use crate::names::RefName;

/// Why a ref was not moved or deleted.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("`{name}` already exists as a {existing}")]
    KindConflict { name: String, existing: RefKind },
    #[error("`{name}` does not point at {expected} any more; fetch and retry")]
    Moved { name: String, expected: String },
    #[error("`main` is the default branch and cannot be deleted")]
    DefaultBranch,
    #[error("no {kind} `{name}` in `{repo}`")]
    Missing {
        kind: RefKind,
        name: String,
        repo: String,
    },
    #[error("`{revision}` is not a branch, tag or commit of `{repo}`")]
    NoRevision { revision: String, repo: String },
    #[error(transparent)]
    Service(#[from] super::Error),
}

impl From<sqlx::Error> for RefError {
    fn from(e: sqlx::Error) -> Self {
        Self::Service(e.into())
    }
}

/// The commit a branch, tag or commit id (full or abbreviated) names in `repo`. A mirrored
/// repository also answers to the upstream's commit ids.
pub async fn resolve(
    conn: &mut PgConnection,
    repo: &Repo,
    revision: &str,
) -> Result<String, RefError> {
    if let Some(commit) = db::commits::resolve(conn, repo.id, revision).await? {
        return Ok(commit);
    }
    db::mirror::local_commit(conn, repo.id, revision)
        .await?
        .ok_or_else(|| RefError::NoRevision {
            revision: revision.to_string(),
            repo: repo.full_name(),
        })
}

/// Points the `kind` ref `name` at the commit `target`, if it still points at `expected`
/// (when given). Returns the commit it pointed at before.
pub async fn set(
    conn: &mut PgConnection,
    actor: &Actor,
    repo: &Repo,
    (kind, name): (RefKind, &RefName),
    target: &str,
    expected: Option<&str>,
) -> Result<Option<String>, RefError> {
    let current = db::commits::find_ref(conn, repo.id, name.as_str()).await?;
    if let Some(current) = &current
        && current.kind != kind
    {
        let name = name.to_string();
        return Err(RefError::KindConflict {
            name,
            existing: current.kind,
        });
    }
    if let Some(expected) = expected
        && current.as_ref().map(|c| c.commit_id.as_str()) != Some(expected)
    {
        let (name, expected) = (name.to_string(), expected.to_string());
        return Err(RefError::Moved { name, expected });
    }
    db::commits::set_ref(conn, repo.id, name.as_str(), kind, target).await?;
    let previous = current.map(|c| c.commit_id);
    let details =
        serde_json::json!({"name": name.as_str(), "commit": target, "previous": previous});
    let entry = LogEntry::RefSet {
        name: name.to_string(),
        ref_kind: kind.to_string(),
        commit: target.to_string(),
        previous: previous.clone().map(String::from),
    };
    let change = Event::new(format!("{kind}.set"), Target::Repo(repo), details).logged(entry);
    event::record(conn, actor, change).await?;
    Ok(previous.map(String::from))
}

/// Deletes the `kind` ref `name`; `main` stays.
pub async fn delete(
    conn: &mut PgConnection,
    actor: &Actor,
    repo: &Repo,
    kind: RefKind,
    name: &str,
) -> Result<(), RefError> {
    if kind == RefKind::Branch && name == "main" {
        return Err(RefError::DefaultBranch);
    }
    let current = db::commits::find_ref(conn, repo.id, name)
        .await?
        .filter(|r| r.kind == kind)
        .ok_or_else(|| RefError::Missing {
            kind,
            name: name.to_string(),
            repo: repo.full_name(),
        })?;
    db::commits::delete_ref(conn, repo.id, name).await?;
    let details = serde_json::json!({"name": name, "commit": current.commit_id});
    let entry = LogEntry::RefDelete {
        name: name.to_string(),
        ref_kind: kind.to_string(),
        commit: current.commit_id.into(),
    };
    let change = Event::new(format!("{kind}.delete"), Target::Repo(repo), details).logged(entry);
    event::record(conn, actor, change).await?;
    Ok(())
}
