//! The hub's transparency log: events appended in the transaction of the change they record,
//! signed tree heads (checkpoints) and proofs.
//!
//! Costs are logarithmic in the log's size: each append stores the hashes of the full subtrees
//! it completes (one on average, at most log2(n)), in its own transaction; the root and the
//! proofs are computed from at most about 2·log2(n) stored hashes, read in one query; the
//! checkpoint of a tree size is signed once and cached in the database for every replica.

use ed25519_dalek::SigningKey;
use kaiyuan_provenance::checkpoint::{Checkpoint, verifier_key};
use kaiyuan_provenance::merkle::{self, Hash, Lookup, Subtree};
use rand::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::db;
use crate::db::repos::Repo;
use crate::domain::Error;
use crate::domain::log_entry::LogEntry;

/// The log's origin line and key name.
pub const ORIGIN: &str = "kaiyuan/log";

/// The log's Ed25519 key, created once and shared by every replica through the database.
pub async fn signing_key(conn: &mut PgConnection) -> sqlx::Result<SigningKey> {
    let seed = db::secrets::get_or_create(conn, "log-key").await?;
    let seed: [u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| sqlx::Error::Protocol("log key is not 32 bytes".into()))?;
    Ok(SigningKey::from_bytes(&seed))
}

pub async fn verifier(conn: &mut PgConnection) -> sqlx::Result<String> {
    Ok(verifier_key(
        ORIGIN,
        &signing_key(conn).await?.verifying_key(),
    ))
}

/// Appends an event about `repo`, naming it. An event about a public repository is appended as
/// it is. One about a private repository is sealed: the public entry is only
/// `{"v":1,"kind":"sealed","commitment":"sha256:<hex of sha256(nonce || body)>"}`, which reveals
/// neither the repository nor anything of the event (not even which entries share a repository),
/// while the body and the nonce are kept for the repository's readers, who can open the
/// commitment and prove the entry's inclusion like any other.
pub async fn append_about(
    conn: &mut PgConnection,
    repo: &Repo,
    entry: &LogEntry,
) -> sqlx::Result<i64> {
    let mut event = entry.to_json();
    event["repository"] = json!(repo.full_name());
    if repo.is_public() {
        return append_json(conn, event).await;
    }
    let body = stamped(event);
    let nonce: [u8; 32] = rand::rng().random();
    let sealed = json!({"v": 1, "kind": "sealed", "commitment": commitment(&nonce, &body)});
    let public = serde_json::to_vec(&sealed).expect("sealed entry serialises");
    let index = append_leaf(conn, &public).await?;
    db::tlog::seal(conn, index, repo.id, &nonce, &body).await?;
    Ok(index)
}

/// The commitment of a sealed entry: `sha256:` and the hex of sha256(nonce || body).
pub fn commitment(nonce: &[u8], body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(nonce);
    h.update(body);
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The event's bytes with the log's version and the time added.
fn stamped(mut event: Value) -> Vec<u8> {
    event["v"] = json!(1);
    event["time"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    serde_json::to_vec(&event).expect("event serialises")
}

/// Appends a hub-wide entry (`v` and `time` are added) and returns its index.
pub async fn append(conn: &mut PgConnection, entry: &LogEntry) -> sqlx::Result<i64> {
    append_json(conn, entry.to_json()).await
}

async fn append_json(conn: &mut PgConnection, event: Value) -> sqlx::Result<i64> {
    append_leaf(conn, &stamped(event)).await
}

/// Appends a verbatim body and stores the subtree hashes it completes (the append lock, held
/// to the end of the caller's transaction, keeps both in order).
pub async fn append_leaf(conn: &mut PgConnection, body: &[u8]) -> sqlx::Result<i64> {
    let leaf = merkle::leaf_hash(body);
    let index = db::tlog::append(conn, body, &leaf).await?;
    let done = stored(conn, |get| merkle::completed_by(index as u64, leaf, get))
        .await
        .map_err(|e| match e {
            Error::Database(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })?;
    db::tlog::store_subtrees(conn, &done).await?;
    Ok(index)
}

/// Runs a computation over stored subtree hashes: once to learn which it reads, then with
/// those hashes, fetched in one query.
async fn stored<T>(conn: &mut PgConnection, compute: impl Fn(Lookup) -> T) -> Result<T, Error> {
    let wanted = merkle::needed(|get| {
        compute(get);
    });
    if wanted.is_empty() {
        return Ok(compute(&mut |_| unreachable!("nothing to read")));
    }
    let hashes = db::tlog::subtree_hashes(conn, &wanted).await?;
    if let Some(t) = wanted.iter().find(|t| !hashes.contains_key(t)) {
        return Err(Error::Internal(format!(
            "the log's stored tree lacks the hash at level {} index {}",
            t.level, t.index
        )));
    }
    Ok(compute(&mut |t| hashes[&t]))
}

/// MTH of the first `size` entries, from stored hashes.
pub async fn root(conn: &mut PgConnection, size: u64) -> Result<Hash, Error> {
    stored(conn, |get| merkle::root_from(size, get)).await
}

/// The leaf hash of entry `index` and its audit path in the tree of `size` (index < size).
pub async fn inclusion_proof(
    conn: &mut PgConnection,
    index: u64,
    size: u64,
) -> Result<(Hash, Vec<Hash>), Error> {
    stored(conn, |get| {
        let leaf = get(Subtree { level: 0, index });
        (leaf, merkle::inclusion_proof_from(index, size, get))
    })
    .await
}

/// The proof that the tree of `first` entries is a prefix of the tree of `second`.
pub async fn consistency_proof(
    conn: &mut PgConnection,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, Error> {
    stored(conn, |get| {
        merkle::consistency_proof_from(first, second, get)
    })
    .await
}

/// The leaf hashes of the first `size` entries (a recomputation from every leaf; for checks).
pub async fn leaves(conn: &mut PgConnection, size: i64) -> Result<Vec<Hash>, Error> {
    db::tlog::leaf_hashes(conn, size)
        .await?
        .into_iter()
        .map(|h| {
            h.as_slice()
                .try_into()
                .map_err(|_| Error::Internal("bad leaf hash".into()))
        })
        .collect()
}

/// The signed checkpoint of the whole log now: the cached one when it is of the current size,
/// otherwise signed from the stored hashes and cached.
pub async fn checkpoint(conn: &mut PgConnection) -> Result<String, Error> {
    let (size, cached) = db::tlog::size_and_checkpoint(conn).await?;
    if let Some(note) = cached {
        return Ok(note);
    }
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: size as u64,
        root: root(conn, size as u64).await?,
    };
    let note = cp.sign(ORIGIN, &signing_key(conn).await?);
    db::tlog::cache_checkpoint(conn, size, &note).await?;
    Ok(note)
}
