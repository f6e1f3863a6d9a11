//! Community security review: who sees a report, and filing, discussing, triaging reports and
//! drafting and publishing advisories — one way for the API and the report page's forms.
//!
//! A report is visible only to its reporter, the repository's admins and reviewers (hub
//! reviewers, the organisation's reviewers, hub admins); to anyone else it does not exist.

use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::actor::{self, Actor, AuthUser};
use super::event::{self, Event, Target};
use super::log_entry::LogEntry;
use crate::db;
use crate::db::accounts::Role;
use crate::db::repos::Repo;
use crate::db::reviews::{self, Report};
use crate::db::types::{ReportCategory, ReportStatus, Severity};

/// Why a review operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("sign in to do this")]
    SignedOut,
    #[error("report {0} does not exist or you may not see it")]
    NoReport(i64),
    #[error("advisory {0} does not exist or you may not see it")]
    NoAdvisory(String),
    #[error("only reviewers {0}")]
    ReviewerRequired(&'static str),
    #[error("category `{0}`: expected one of {known}", known = ReportCategory::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "))]
    InvalidCategory(String),
    #[error("a description of 1 to 20000 characters is required; evidence is at most 100000")]
    InvalidDescription,
    #[error("`{0}` does not exist at that revision")]
    NoFile(String),
    #[error("a comment has 1 to 20000 characters")]
    InvalidComment,
    #[error("action `{0}`: expected confirm, dismiss or request-info")]
    InvalidAction(String),
    #[error("dismissing a report needs a reason")]
    ReasonRequired,
    #[error("report {0} is published")]
    ReportPublished(i64),
    #[error("severity `{0}`: expected low, medium, high or critical")]
    InvalidSeverity(String),
    #[error("summary, details and remediation need 1 to 20000 characters each")]
    InvalidAdvisory,
    #[error("report {id} is {status}: confirm it first")]
    NotConfirmed { id: i64, status: ReportStatus },
    #[error("{0} is already published")]
    AdvisoryPublished(String),
    #[error(transparent)]
    Revision(#[from] super::refs::RefError),
    #[error(transparent)]
    Service(#[from] super::Error),
}

impl From<sqlx::Error> for ReviewError {
    fn from(e: sqlx::Error) -> Self {
        Self::Service(e.into())
    }
}

fn signed_in(actor: &Actor) -> Result<&AuthUser, ReviewError> {
    actor.user.as_ref().ok_or(ReviewError::SignedOut)
}

/// Hub reviewers, the organisation's reviewers and hub admins review a repository's reports.
pub async fn is_reviewer(
    conn: &mut PgConnection,
    user: &AuthUser,
    repo: &Repo,
) -> sqlx::Result<bool> {
    Ok(user.is_admin
        || reviews::is_hub_reviewer(conn, user.id).await?
        || reviews::is_org_reviewer(conn, repo.namespace_id, user.id).await?)
}

/// The report, its repository and whether the actor reviews it, when the actor may see it.
pub async fn visible(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
) -> Result<(Report, Repo, bool), ReviewError> {
    let report = reviews::get(conn, id)
        .await?
        .ok_or(ReviewError::NoReport(id))?;
    let repo = db::repos::find_by_id(conn, report.repository_id)
        .await?
        .ok_or(ReviewError::NoReport(id))?;
    // A disclosed report is as public as its repository.
    let disclosed =
        report.status == ReportStatus::Published && actor::may_read(conn, actor, &repo).await?;
    let Some(user) = actor.user.as_ref() else {
        return match disclosed {
            true => Ok((report, repo, false)),
            false => Err(ReviewError::NoReport(id)),
        };
    };
    let reviewer = is_reviewer(conn, user, &repo).await?;
    let owner = actor::namespace_role(conn, actor, repo.namespace_id, repo.namespace_kind)
        .await?
        .is_some_and(|r| r >= Role::Admin);
    if report.reporter_id != user.id && !owner && !reviewer && !disclosed {
        return Err(ReviewError::NoReport(id));
    }
    Ok((report, repo, reviewer))
}

/// The report and its repository, when the actor reviews it; `what` names the act refused.
pub async fn reviewed(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    what: &'static str,
) -> Result<(Report, Repo), ReviewError> {
    match visible(conn, actor, id).await? {
        (report, repo, true) => Ok((report, repo)),
        _ => Err(ReviewError::ReviewerRequired(what)),
    }
}

/// An advisory: public once published, before that only for those who see its report.
pub async fn readable_advisory(
    conn: &mut PgConnection,
    actor: &Actor,
    id: &str,
) -> Result<reviews::Advisory, ReviewError> {
    let advisory = reviews::advisory(conn, id)
        .await?
        .ok_or_else(|| ReviewError::NoAdvisory(id.to_string()))?;
    if advisory.published_at.is_none() {
        match visible(conn, actor, advisory.report_id).await {
            Err(ReviewError::NoReport(_)) => return Err(ReviewError::NoAdvisory(id.to_string())),
            other => other?,
        };
    }
    Ok(advisory)
}

/// A report as filed.
pub struct NewReport<'a> {
    pub category: &'a str,
    pub description: &'a str,
    pub evidence: &'a str,
    /// A branch, tag or commit (default: the repository as a whole at `main`).
    pub revision: Option<&'a str>,
    /// A file at that revision.
    pub path: Option<&'a str>,
}

/// Files a report on a repository the actor can see; its disclosure date is `disclosure_days`
/// away.
pub async fn file(
    db: &PgPool,
    actor: &Actor,
    repo: &Repo,
    new: NewReport<'_>,
    disclosure_days: u32,
) -> Result<Report, ReviewError> {
    let user = signed_in(actor)?;
    let category = ReportCategory::parse(new.category)
        .ok_or_else(|| ReviewError::InvalidCategory(new.category.to_string()))?;
    let description = new.description.trim();
    if description.is_empty() || new.description.len() > 20_000 || new.evidence.len() > 100_000 {
        return Err(ReviewError::InvalidDescription);
    }
    let mut tx = db.begin().await?;
    let commit = match (new.revision, new.path) {
        (None, None) => None,
        (revision, _) => {
            Some(super::refs::resolve(&mut tx, repo, revision.unwrap_or("main")).await?)
        }
    };
    let sha256 = match (new.path, &commit) {
        (Some(p), Some(c)) => Some(
            db::commits::file(&mut tx, repo.id, c, p)
                .await?
                .ok_or_else(|| ReviewError::NoFile(p.to_string()))?
                .sha256,
        ),
        _ => None,
    };
    let disclosure_at = chrono::Utc::now() + chrono::Duration::days(i64::from(disclosure_days));
    let row = reviews::NewReport {
        repository_id: repo.id,
        commit_id: commit.as_deref(),
        path: new.path,
        sha256: sha256.as_deref(),
        reporter_id: user.id,
        category,
        description,
        evidence: new.evidence,
        disclosure_at,
    };
    let id = reviews::insert(&mut tx, &row).await?;
    let details = json!({"report": id, "category": category});
    let change = Event::new("report.file", Target::Repo(repo), details.clone()).notifying(
        "report.filed",
        details,
        false,
    );
    event::record(&mut tx, actor, change).await?;
    let report = reviews::get(&mut tx, id)
        .await?
        .ok_or(ReviewError::NoReport(id))?;
    tx.commit().await?;
    Ok(report)
}

/// Adds to a report's discussion (reporter, repository admins, reviewers).
pub async fn comment(db: &PgPool, actor: &Actor, id: i64, text: &str) -> Result<(), ReviewError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 20_000 {
        return Err(ReviewError::InvalidComment);
    }
    let mut tx = db.begin().await?;
    let (_, repo, _) = visible(&mut tx, actor, id).await?;
    let user = signed_in(actor)?;
    reviews::add_comment(&mut tx, id, user.id, text).await?;
    let change = Event::new("report.comment", Target::Repo(&repo), json!({"report": id}));
    event::record(&mut tx, actor, change).await?;
    tx.commit().await?;
    Ok(())
}

/// Triages a report (reviewers): `confirm`, `dismiss` with a reason (which also lifts a hold on
/// its file), or `request-info`. Returns the report's new status.
pub async fn triage(
    db: &PgPool,
    actor: &Actor,
    id: i64,
    action: &str,
    reason: Option<&str>,
) -> Result<ReportStatus, ReviewError> {
    let mut tx = db.begin().await?;
    let (report, repo) = reviewed(&mut tx, actor, id, "triage reports").await?;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let status = match action {
        "confirm" => ReportStatus::Confirmed,
        "request-info" => ReportStatus::NeedsInfo,
        "dismiss" if reason.is_some() => ReportStatus::Dismissed,
        "dismiss" => return Err(ReviewError::ReasonRequired),
        other => return Err(ReviewError::InvalidAction(other.to_string())),
    };
    if report.status == ReportStatus::Published {
        return Err(ReviewError::ReportPublished(id));
    }
    reviews::set_status(&mut tx, id, status, reason).await?;
    if status == ReportStatus::Dismissed
        && let Some(sha) = &report.sha256
    {
        db::scans::set_hold(&mut tx, sha, None).await?;
    }
    let user = signed_in(actor)?;
    if let Some(r) = reason {
        reviews::add_comment(&mut tx, id, user.id, &format!("[{status}] {r}")).await?;
    }
    let details = json!({"report": id, "status": status, "reason": reason});
    let change = Event::new("report.triage", Target::Repo(&repo), details).notifying(
        "report.status",
        json!({"report": id, "status": status}),
        false,
    );
    event::record(&mut tx, actor, change).await?;
    tx.commit().await?;
    Ok(status)
}

/// What an advisory says.
pub struct AdvisoryText<'a> {
    pub severity: &'a str,
    pub summary: &'a str,
    pub details: &'a str,
    pub remediation: &'a str,
}

/// Turns a confirmed report into an advisory draft (reviewers). The affected blobs are the
/// reported file, or every file of the reported revision. Returns the advisory's id.
pub async fn draft_advisory(
    db: &PgPool,
    actor: &Actor,
    id: i64,
    text: AdvisoryText<'_>,
) -> Result<String, ReviewError> {
    let mut tx = db.begin().await?;
    let (report, repo) = reviewed(&mut tx, actor, id, "write advisories").await?;
    let severity = Severity::parse(text.severity)
        .ok_or_else(|| ReviewError::InvalidSeverity(text.severity.to_string()))?;
    let parts = [text.summary, text.details, text.remediation];
    if parts
        .iter()
        .any(|t| t.trim().is_empty() || t.len() > 20_000)
    {
        return Err(ReviewError::InvalidAdvisory);
    }
    if report.status != ReportStatus::Confirmed {
        let status = report.status;
        return Err(ReviewError::NotConfirmed { id, status });
    }
    let user = signed_in(actor)?;
    let [summary, details, remediation] = parts.map(str::trim);
    let advisory = reviews::create_advisory(
        &mut tx,
        id,
        severity,
        summary,
        details,
        remediation,
        user.id,
    )
    .await?;
    let commit = match &report.commit_id {
        Some(c) => c.clone(),
        None => super::refs::resolve(&mut tx, &repo, "main").await?,
    };
    let affected: Vec<(Option<String>, kaiyuan_storage::Sha256Digest)> =
        match (&report.sha256, &report.path) {
            (Some(sha), path) => vec![(path.clone(), *sha)],
            (None, _) => db::commits::files(&mut tx, repo.id, &commit)
                .await?
                .into_iter()
                .map(|f| (Some(f.path), f.sha256))
                .collect(),
        };
    for (path, sha) in &affected {
        let full_name = repo.full_name();
        let at = Some(commit.as_str());
        reviews::add_affected(
            &mut tx,
            &advisory,
            repo.id,
            &full_name,
            at,
            path.as_deref(),
            sha,
        )
        .await?;
    }
    let details = json!({"advisory": advisory, "report": id});
    event::record(
        &mut tx,
        actor,
        Event::new("advisory.create", Target::Repo(&repo), details),
    )
    .await?;
    tx.commit().await?;
    Ok(advisory)
}

/// Publishes an advisory (reviewers; logged): from then on everyone sees it, and the watchers
/// of every repository holding an affected blob are told.
pub async fn publish_advisory(db: &PgPool, actor: &Actor, id: &str) -> Result<(), ReviewError> {
    let missing = || ReviewError::NoAdvisory(id.to_string());
    let mut tx = db.begin().await?;
    let advisory = reviews::advisory(&mut tx, id).await?.ok_or_else(missing)?;
    let (_, repo, reviewer) = match visible(&mut tx, actor, advisory.report_id).await {
        Err(ReviewError::NoReport(_)) => return Err(missing()),
        other => other?,
    };
    if !reviewer {
        return Err(ReviewError::ReviewerRequired("publish advisories"));
    }
    if !reviews::publish(&mut tx, id).await? {
        return Err(ReviewError::AdvisoryPublished(id.to_string()));
    }
    reviews::set_status(&mut tx, advisory.report_id, ReportStatus::Published, None).await?;
    let affected = reviews::affected(&mut tx, id).await?;
    let entry = LogEntry::Advisory {
        advisory: id.to_string(),
        severity: advisory.severity.to_string(),
        sha256: affected.iter().map(|a| hex::encode(a.sha256)).collect(),
    };
    let notice = json!({"advisory": id, "severity": advisory.severity});
    let change = Event::new(
        "advisory.publish",
        Target::Repo(&repo),
        json!({"advisory": id}),
    )
    .logged(entry)
    .notifying("advisory.published", notice, true);
    event::record(&mut tx, actor, change).await?;
    for a in &affected {
        let notice =
            json!({"advisory": id, "severity": advisory.severity, "sha256": hex::encode(a.sha256)});
        let kind = "advisory.published";
        crate::notify::emit_for_blob(&mut tx, &a.sha256, kind, notice, Some(repo.id)).await?;
    }
    tx.commit().await?;
    Ok(())
}
