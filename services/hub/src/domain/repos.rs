//! Repositories coming to exist and going away: one way for the native API, the Hugging Face
//! API, the web form and the mirror.

use sqlx::{PgConnection, PgPool};

use super::actor::{Actor, namespace_role};
use super::commits::{CommitContext, write_commit};
use super::event::{self, Event, Target};
use super::log_entry::LogEntry;
use crate::db::repos::{Repo, Visibility};
use crate::db::types::Gated;
use crate::db::{self, accounts::Role};
use crate::names::{NamespaceName, RepoName};
use crate::tree::Snapshot;

/// Why a repository operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("sign in to create repositories")]
    SignedOut,
    #[error("{0}")]
    InvalidName(String),
    #[error("no user or organisation is named `{0}`")]
    NoNamespace(String),
    #[error("you need the `write` role in `{0}` to create repositories there")]
    InsufficientRole(String),
    #[error(
        "`{full_name}` was deleted recently; its name is reserved until {until} so old links cannot point at new content"
    )]
    NameReserved {
        full_name: String,
        until: chrono::DateTime<chrono::Utc>,
    },
    #[error("`{0}` already exists")]
    Exists(String),
    #[error(transparent)]
    Service(#[from] super::Error),
}

impl From<sqlx::Error> for RepoError {
    fn from(e: sqlx::Error) -> Self {
        Self::Service(e.into())
    }
}

/// A repository to create; `namespace` defaults to the actor.
pub struct NewRepository<'a> {
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub visibility: Visibility,
    pub description: &'a str,
}

/// Creates a repository with an empty first commit on `main`, audited as the actor's act.
/// `grace_days`: how long a deleted repository's name stays reserved. Returns the repository
/// and the commit id of `main`.
pub async fn create(
    db: &PgPool,
    actor: &Actor,
    new: NewRepository<'_>,
    grace_days: u32,
) -> Result<(Repo, String), RepoError> {
    let mut tx = db.begin().await?;
    let created = create_in(&mut tx, actor, new, grace_days).await?;
    tx.commit().await?;
    Ok(created)
}

/// [`create`] within the caller's transaction: the repository exists only if that commits,
/// so whatever else the caller records with it (the mirror's record of its upstream) cannot be
/// missing from it.
pub async fn create_in(
    tx: &mut PgConnection,
    actor: &Actor,
    new: NewRepository<'_>,
    grace_days: u32,
) -> Result<(Repo, String), RepoError> {
    let user = actor.user.as_ref().ok_or(RepoError::SignedOut)?;
    let namespace_name = new.namespace.unwrap_or(&user.name);
    NamespaceName::parse(namespace_name).map_err(|e| RepoError::InvalidName(e.to_string()))?;
    let name = RepoName::parse(new.name).map_err(|e| RepoError::InvalidName(e.to_string()))?;
    let namespace = db::accounts::find_namespace(&mut *tx, namespace_name)
        .await?
        .ok_or_else(|| RepoError::NoNamespace(namespace_name.to_string()))?;
    let role = namespace_role(&mut *tx, actor, namespace.id, namespace.kind).await?;
    if role.is_none_or(|r| r < Role::Write) {
        return Err(RepoError::InsufficientRole(namespace.name));
    }
    let full_name = format!("{}/{name}", namespace.name);
    if let Some(until) =
        db::repos::name_reserved_until(&mut *tx, namespace.id, name.as_str(), grace_days).await?
    {
        return Err(RepoError::NameReserved { full_name, until });
    }
    let inserted = db::repos::insert(
        &mut *tx,
        namespace.id,
        name.as_str(),
        new.visibility,
        new.description,
    )
    .await;
    let repo_id = match inserted {
        Err(e) if db::is_unique_violation(&e, "repositories_live_name_key") => {
            return Err(RepoError::Exists(full_name));
        }
        other => other?,
    };
    let first = CommitContext {
        repository_id: repo_id,
        branch: "main",
        parent: None,
        author_id: user.id,
        author_name: &user.name,
        message: "Initial commit",
        request_id: actor.request_id.clone(),
    };
    let head = write_commit(&mut *tx, &first, &Snapshot::new()).await?;
    let repo = db::repos::find_by_id(&mut *tx, repo_id)
        .await?
        .ok_or_else(|| {
            super::Error::Internal(format!("created repository {full_name} vanished"))
        })?;
    let details = serde_json::json!({"visibility": new.visibility});
    let change = Event::new("repo.create", Target::Repo(&repo), details);
    event::record(&mut *tx, actor, change).await?;
    Ok((repo, head))
}

/// Settings to change; `None` keeps the current value.
pub struct Settings<'a> {
    pub visibility: Option<Visibility>,
    pub description: Option<&'a str>,
    pub gated: Option<Gated>,
}

/// Changes a repository's settings (the caller has checked the admin role); returns it anew.
pub async fn update(
    db: &PgPool,
    actor: &Actor,
    repo: &Repo,
    settings: Settings<'_>,
) -> Result<Repo, RepoError> {
    let mut tx = db.begin().await?;
    db::repos::update_settings(
        &mut tx,
        repo.id,
        settings.visibility,
        settings.description,
        settings.gated,
    )
    .await?;
    let details = serde_json::json!({
        "visibility": settings.visibility,
        "gated": settings.gated,
        "description_changed": settings.description.is_some(),
    });
    event::record(
        &mut tx,
        actor,
        Event::new("repo.update", Target::Repo(repo), details),
    )
    .await?;
    let repo = db::repos::find_by_id(&mut tx, repo.id)
        .await?
        .ok_or_else(|| super::Error::Internal(format!("repository {} vanished", repo.id)))?;
    tx.commit().await?;
    Ok(repo)
}

/// Deletes a repository (the caller has checked the admin role): it disappears at once; its
/// data and name are kept for `grace_days`, then purged.
pub async fn delete(
    db: &PgPool,
    actor: &Actor,
    repo: &Repo,
    grace_days: u32,
) -> Result<(), RepoError> {
    let user = actor.user.as_ref().ok_or(RepoError::SignedOut)?;
    let mut tx = db.begin().await?;
    db::repos::soft_delete(&mut tx, repo.id, user.id).await?;
    let details = serde_json::json!({"grace_days": grace_days});
    let change =
        Event::new("repo.delete", Target::Repo(repo), details).logged(LogEntry::RepoDelete);
    event::record(&mut tx, actor, change).await?;
    tx.commit().await?;
    Ok(())
}
