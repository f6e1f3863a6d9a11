//! Recording a change: the audit row, the log entry and the notification that one change causes,
//! written together by [`record`] in the change's transaction, so no surface records one and
//! forgets another.

use std::borrow::Cow;

use serde_json::Value;
use sqlx::PgConnection;

use super::actor::Actor;
use super::log_entry::LogEntry;
use crate::db;
use crate::db::repos::Repo;

/// What a change concerns. Its audit label (`repo:ns/name`, `namespace:ns`, …) and the namespace
/// whose admins may read the audit row both come from here, never parsed back from a string.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Repo(&'a Repo),
    Namespace(&'a str),
    Org(&'a str),
    User(&'a str),
    Blob(&'a str),
    Hub,
}

impl Target<'_> {
    pub fn label(&self) -> String {
        match self {
            Target::Repo(repo) => format!("repo:{}", repo.full_name()),
            Target::Namespace(name) => format!("namespace:{name}"),
            Target::Org(name) => format!("org:{name}"),
            Target::User(name) => format!("user:{name}"),
            Target::Blob(digest) => format!("blob:{digest}"),
            Target::Hub => "hub".to_string(),
        }
    }

    /// The namespace whose audit log lists the change.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Target::Repo(repo) => Some(&repo.namespace),
            Target::Namespace(name) | Target::Org(name) => Some(name),
            Target::User(_) | Target::Blob(_) | Target::Hub => None,
        }
    }
}

/// A notification to the target repository's watchers and its namespace's webhooks.
#[derive(Debug)]
pub struct Notice {
    pub kind: &'static str,
    pub payload: Value,
    /// Whether it concerns the public (watchers of a public repository are told too).
    pub public: bool,
}

/// One change: the audit action and details, and what else it causes.
#[derive(Debug)]
pub struct Event<'a> {
    pub action: Cow<'a, str>,
    pub target: Target<'a>,
    pub details: Value,
    pub log: Option<LogEntry>,
    pub notice: Option<Notice>,
}

impl<'a> Event<'a> {
    pub fn new(action: impl Into<Cow<'a, str>>, target: Target<'a>, details: Value) -> Self {
        Event {
            action: action.into(),
            target,
            details,
            log: None,
            notice: None,
        }
    }

    /// Also appends `entry` to the transparency log: about the target repository (sealed when
    /// it is private) when the target is one, hub-wide otherwise.
    pub fn logged(mut self, entry: LogEntry) -> Self {
        self.log = Some(entry);
        self
    }

    /// Also notifies the target repository's watchers and webhooks.
    pub fn notifying(mut self, kind: &'static str, payload: Value, public: bool) -> Self {
        self.notice = Some(Notice {
            kind,
            payload,
            public,
        });
        self
    }
}

/// Writes everything `event` causes, in the caller's transaction.
pub async fn record(conn: &mut PgConnection, actor: &Actor, event: Event<'_>) -> sqlx::Result<()> {
    let target = event.target;
    db::audit::record(
        conn,
        &db::audit::NewEvent {
            actor_id: actor.user.as_ref().map(|u| u.id),
            action: &event.action,
            target: &target.label(),
            namespace: target.namespace(),
            details: event.details,
            request_id: actor.request_id.as_deref(),
        },
    )
    .await?;
    if let Some(entry) = event.log {
        match (entry.is_about_a_repository(), target) {
            (true, Target::Repo(repo)) => crate::tlog::append_about(conn, repo, &entry).await?,
            _ => crate::tlog::append(conn, &entry).await?,
        };
    }
    if let (Some(notice), Target::Repo(repo)) = (event.notice, target) {
        crate::notify::emit(conn, repo, notice.kind, notice.payload, notice.public).await?;
    }
    Ok(())
}
