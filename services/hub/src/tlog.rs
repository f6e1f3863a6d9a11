//! The hub's transparency log: events appended in the transaction of the change they record,
//! signed tree heads (checkpoints) and proofs.

use ed25519_dalek::SigningKey;
use kaiyuan_provenance::checkpoint::{Checkpoint, verifier_key};
use kaiyuan_provenance::merkle::{self, Hash};
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
    let index = db::tlog::append(conn, &public, &merkle::leaf_hash(&public)).await?;
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
    let body = stamped(event);
    db::tlog::append(conn, &body, &merkle::leaf_hash(&body)).await
}

/// The leaf hashes of the first `size` entries.
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

/// The signed checkpoint of the whole log now.
pub async fn checkpoint(conn: &mut PgConnection) -> Result<String, Error> {
    let size = db::tlog::size(conn).await?;
    let leaves = leaves(conn, size).await?;
    let key = signing_key(conn).await?;
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: size as u64,
        root: merkle::root(&leaves),
    };
    Ok(cp.sign(ORIGIN, &key))
}
