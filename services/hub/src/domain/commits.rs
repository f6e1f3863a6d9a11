//! Committing: the one way a snapshot becomes a commit on a branch, for the native API, the
//! Hugging Face NDJSON commit, repository creation and the mirror alike.
//!
//! A commit is written in the caller's transaction together with everything it sets off: the
//! branch move, the scans, licence, signature and verification jobs and the log entry, so it is
//! visible only with all of them.

use futures_util::StreamExt;
use kaiyuan_storage::{BlobStore, Sha256Digest};
use sqlx::{PgConnection, PgPool};

use super::actor::Actor;
use super::event::{self, Event, Target};
use super::log_entry::LogEntry;
use super::task::{CommitRef, Task};
use crate::commit_id::{self, FileEntry};
use crate::db;
use crate::db::repos::Repo;
use crate::db::types::RefKind;
use crate::names::RefName;
use crate::paths::RepoPath;
use crate::tree::{self, Change, Entry, Snapshot};

/// The README that becomes the repository's card, and how much of it is kept for search.
const CARD_PATH: &str = "README.md";
/// The branch whose card describes the repository.
pub const DEFAULT_BRANCH: &str = "main";
const CARD_MAX_BYTES: u64 = 256 * 1024;

/// Why a commit was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("branch `{branch}` does not exist in `{repo}`; create it first")]
    NoBranch { branch: String, repo: String },
    #[error(
        "branch `{branch}` is at {head}, not at the parent {parent} you based this commit on; fetch and retry"
    )]
    BranchMoved {
        branch: String,
        head: String,
        parent: String,
    },
    #[error(
        "`{path}`: no upload of {sha256} to this repository; upload the bytes first (POST /api/v1/repos/{repo}/uploads)"
    )]
    UnknownBlob {
        path: RepoPath,
        sha256: Sha256Digest,
        repo: String,
    },
    #[error("`{path}`: blob {sha256} has {stored} bytes, not {declared}")]
    SizeMismatch {
        path: RepoPath,
        sha256: Sha256Digest,
        stored: i64,
        declared: u64,
    },
    /// The changes do not apply to the branch head (collisions, limits, missing paths).
    #[error(transparent)]
    Tree(#[from] tree::TreeError),
    #[error(transparent)]
    Service(#[from] super::Error),
}

impl From<sqlx::Error> for CommitError {
    fn from(e: sqlx::Error) -> Self {
        Self::Service(e.into())
    }
}

impl From<kaiyuan_storage::StorageError> for CommitError {
    fn from(e: kaiyuan_storage::StorageError) -> Self {
        Self::Service(e.into())
    }
}

/// A `put` whose bytes are in the store: referenced by digest (the repository must already be
/// allowed to use the blob), or stored by this request.
pub enum Put {
    ByDigest {
        path: RepoPath,
        sha256: Sha256Digest,
        size: Option<u64>,
    },
    Stored {
        path: RepoPath,
        entry: Entry,
    },
}

/// One requested change, checked for shape but not yet against the branch head.
pub enum PendingChange {
    Put(Put),
    Delete(RepoPath),
    Copy { from: RepoPath, to: RepoPath },
}

impl From<Put> for PendingChange {
    fn from(p: Put) -> Self {
        PendingChange::Put(p)
    }
}

/// Who commits what where.
pub struct CommitContext<'a> {
    pub repository_id: i64,
    pub branch: &'a str,
    pub parent: Option<&'a str>,
    pub author_id: i64,
    pub author_name: &'a str,
    pub message: &'a str,
    pub request_id: Option<String>,
}

/// A commit a user asks for on top of a branch.
pub struct Proposal<'a> {
    pub branch: &'a RefName,
    /// The commit the client based its change on, possibly abbreviated (5 to 40 hex
    /// characters, as Hugging Face clients allow); refused if the branch moved.
    pub parent: Option<&'a str>,
    pub message: &'a str,
    pub changes: Vec<PendingChange>,
    pub max_files: usize,
}

/// Applies `proposal` on top of the branch head, writes the commit, updates the card and
/// records the event, in one transaction. Returns the new commit's row.
pub async fn commit(
    db: &PgPool,
    store: &BlobStore,
    actor: &Actor,
    author: (i64, &str),
    repo: &Repo,
    proposal: Proposal<'_>,
) -> Result<db::commits::CommitRow, CommitError> {
    let branch = proposal.branch.as_str();
    let mut tx = db.begin().await?;
    let head = db::commits::lock_branch(&mut tx, repo.id, branch)
        .await?
        .ok_or_else(|| CommitError::NoBranch {
            branch: branch.to_string(),
            repo: repo.full_name(),
        })?;
    if let Some(parent) = proposal.parent
        && !(parent.len() >= 5 && head.starts_with(parent))
    {
        return Err(CommitError::BranchMoved {
            branch: branch.to_string(),
            head,
            parent: parent.to_string(),
        });
    }
    let base: Snapshot = db::commits::files(&mut tx, repo.id, &head)
        .await?
        .into_iter()
        .map(|f| {
            let entry = Entry {
                sha256: f.sha256,
                size: f.size,
            };
            (f.path, entry)
        })
        .collect();
    let operations = proposal.changes.len();
    let mut resolved = Vec::with_capacity(operations);
    for change in proposal.changes {
        resolved.push(resolve(&mut tx, repo, change).await?);
    }
    let old_card = base.get(CARD_PATH).cloned();
    let snapshot = tree::apply(base, &resolved, proposal.max_files)?;
    let ctx = CommitContext {
        repository_id: repo.id,
        branch,
        parent: Some(&head),
        author_id: author.0,
        author_name: author.1,
        message: proposal.message,
        request_id: actor.request_id.clone(),
    };
    let id = write_commit(&mut tx, &ctx, &snapshot).await?;
    db::repos::touch(&mut tx, repo.id).await?;
    if branch == DEFAULT_BRANCH && snapshot.get(CARD_PATH) != old_card.as_ref() {
        record_card(&mut tx, store, repo.id, &snapshot).await?;
    }
    let details = serde_json::json!({"commit": id, "branch": branch, "operations": operations});
    let change = Event::new("commit.create", Target::Repo(repo), details);
    event::record(&mut tx, actor, change).await?;
    let row = db::commits::get(&mut tx, repo.id, &id)
        .await?
        .ok_or_else(|| super::Error::Internal(format!("commit {id} vanished")))?;
    tx.commit().await?;
    Ok(row)
}

/// A pending change as a tree change: a put by digest must name bytes this repository may use.
async fn resolve(
    conn: &mut PgConnection,
    repo: &Repo,
    change: PendingChange,
) -> Result<Change, CommitError> {
    Ok(match change {
        PendingChange::Put(Put::Stored { path, entry }) => Change::Put { path, entry },
        PendingChange::Put(Put::ByDigest { path, sha256, size }) => {
            let Some(stored) =
                db::blobs::referenceable_size(conn, repo.id, sha256.as_bytes()).await?
            else {
                let repo = repo.full_name();
                return Err(CommitError::UnknownBlob { path, sha256, repo });
            };
            if let Some(declared) = size.filter(|s| *s as i64 != stored) {
                return Err(CommitError::SizeMismatch {
                    path,
                    sha256,
                    stored,
                    declared,
                });
            }
            let entry = Entry {
                sha256,
                size: stored,
            };
            Change::Put { path, entry }
        }
        PendingChange::Delete(path) => Change::Delete { path },
        PendingChange::Copy { from, to } => Change::Copy { from, to },
    })
}

/// Writes a commit with the given snapshot, moves the branch and queues what checks it, all in
/// the caller's transaction. Returns the commit id.
pub async fn write_commit(
    conn: &mut PgConnection,
    ctx: &CommitContext<'_>,
    snapshot: &Snapshot,
) -> Result<String, super::Error> {
    let created_at = commit_id::now();
    let hexes: Vec<String> = snapshot.values().map(|e| hex::encode(e.sha256)).collect();
    let mut entries: Vec<FileEntry<'_>> = snapshot
        .iter()
        .zip(&hexes)
        .map(|((path, e), hex)| FileEntry {
            path,
            sha256_hex: hex,
            size: e.size as u64,
        })
        .collect();
    let id = commit_id::compute(
        ctx.parent,
        ctx.author_name,
        created_at,
        ctx.message,
        &mut entries,
    );
    let files: Vec<db::commits::FileRow> = snapshot
        .iter()
        .map(|(path, e)| db::commits::FileRow {
            path: path.clone(),
            sha256: e.sha256,
            size: e.size,
        })
        .collect();
    db::commits::insert(
        conn,
        &db::commits::NewCommit {
            repository_id: ctx.repository_id,
            id: &id,
            parent_id: ctx.parent,
            author_id: ctx.author_id,
            author_name: ctx.author_name,
            message: ctx.message,
            created_at,
            files: &files,
        },
    )
    .await?;
    db::commits::set_ref(conn, ctx.repository_id, ctx.branch, RefKind::Branch, &id).await?;
    queue_checks(conn, ctx, &id, &files).await?;
    log_publish(conn, ctx, &id, &files).await?;
    Ok(id)
}

/// The checks every commit gets: a scan of each blob the current scanner has not seen, the
/// publisher's signature, the licence, the stored blobs and, with ONNX models, verification.
async fn queue_checks(
    conn: &mut PgConnection,
    ctx: &CommitContext<'_>,
    id: &str,
    files: &[db::commits::FileRow],
) -> Result<(), super::Error> {
    let request_id = ctx.request_id.as_deref();
    let scanner_version = db::rules::current_version(conn).await?;
    db::scans::enqueue_for_commit(conn, ctx.repository_id, id, &scanner_version, request_id)
        .await?;
    let commit = CommitRef {
        repository_id: ctx.repository_id,
        commit_id: id.to_string(),
    };
    for task in [
        Task::SignatureVerify(commit.clone()),
        Task::LicenseEvaluate(commit.clone()),
        Task::CommitCreated(commit),
    ] {
        db::jobs::enqueue(conn, &task, request_id).await?;
    }
    let models = crate::verification::models(files);
    if !models.is_empty() {
        db::verifications::enqueue(conn, ctx.repository_id, id, &models, "any", request_id).await?;
    }
    Ok(())
}

/// The transparency-log entry of a commit: where, which parent, and the model-signing root
/// digest of its files (what `model_signing` computes for the downloaded snapshot).
async fn log_publish(
    conn: &mut PgConnection,
    ctx: &CommitContext<'_>,
    id: &str,
    files: &[db::commits::FileRow],
) -> Result<(), super::Error> {
    use kaiyuan_provenance::manifest::{self, GIT_PATHS, Resource};
    let repo = db::repos::find_by_id(conn, ctx.repository_id)
        .await?
        .ok_or_else(|| super::Error::Internal("repository vanished".into()))?;
    let git: Vec<String> = GIT_PATHS.iter().map(|s| s.to_string()).collect();
    let mut resources: Vec<Resource> = files
        .iter()
        .filter(|f| !manifest::is_ignored(&f.path, &git))
        .map(|f| Resource {
            name: f.path.clone(),
            digest: *f.sha256.as_bytes(),
        })
        .collect();
    manifest::sort(&mut resources);
    let entry = LogEntry::Publish {
        commit: id.to_string(),
        branch: ctx.branch.to_string(),
        parent: ctx.parent.map(str::to_string),
        files: resources.len(),
        manifest: format!("sha256:{}", hex::encode(manifest::root_digest(&resources))),
        author: ctx.author_name.to_string(),
    };
    crate::tlog::append_about(conn, &repo, &entry).await?;
    Ok(())
}

/// Records on the repository the model card and declared licence of a new commit on the
/// default branch (search, listings and download notices read them there): every writer of
/// commits, the mirror included, goes through here.
pub async fn record_card(
    conn: &mut PgConnection,
    store: &BlobStore,
    repository_id: i64,
    snapshot: &Snapshot,
) -> Result<(), super::Error> {
    let (card, license) = match snapshot.get(CARD_PATH) {
        Some(entry) => read_card(store, entry).await?,
        None => (String::new(), None),
    };
    db::repos::update_card(conn, repository_id, &card, license.as_deref()).await?;
    Ok(())
}

/// Reads the start of README.md for search and its `license:` front-matter field.
async fn read_card(
    store: &BlobStore,
    entry: &Entry,
) -> Result<(String, Option<String>), super::Error> {
    let len = (entry.size as u64).min(CARD_MAX_BYTES);
    let mut stream = store.read(&entry.sha256, 0..len).await?;
    let mut buf = Vec::with_capacity(len as usize);
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let license = front_matter_license(&text);
    Ok((text, license))
}

/// The `license:` value of a card's YAML front matter (a flat scalar; the licence engine parses
/// cards fully).
pub fn front_matter_license(card: &str) -> Option<String> {
    let rest = card.strip_prefix("---")?;
    let end = rest.find("\n---")?;
    rest[..end].lines().find_map(|line| {
        let value = line
            .strip_prefix("license:")?
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}
