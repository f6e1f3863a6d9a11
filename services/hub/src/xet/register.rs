//! Registering the files of an uploaded shard. Nothing the client claims is trusted: every
//! term must name stored chunks whose hashes match the term's verification hash (proof that the
//! client holds those chunks, not just their xorb's name), the chunks must hash to the file hash,
//! and the bytes rebuilt from them must hash to the sha256 that the later commit will name. Only
//! then do the blob row, the reconstruction and the repository's upload grant appear, in one
//! transaction.

use futures_util::StreamExt;
use kaiyuan_storage::{ChunkedBlob, StorageError};
use kaiyuan_xet::shard::{FileInfo, UploadShard};
use kaiyuan_xet::xorb::{ValidXorb, pack_chunk_table};
use kaiyuan_xet::{MerkleHash, file_hash, verification_hash};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::recipes::{chunk_tables, pack_terms, recipe_of, term_chunks};
use super::token::CasToken;
use crate::db;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The shard is wrong: a 400 naming the problem.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Checks and registers every file of `shard` for the token's repository; returns how many
/// files were new to the hub.
pub async fn register(
    state: &AppState,
    token: &CasToken,
    shard: &UploadShard,
) -> Result<usize, RegisterError> {
    let invalid = RegisterError::Invalid;
    let user = token
        .user_id
        .ok_or_else(|| invalid("a write token names its user".into()))?;
    let mut conn = state.db.acquire().await?;
    let named: Vec<MerkleHash> = shard
        .files
        .iter()
        .flat_map(|f| f.terms.iter().map(|t| t.xorb))
        .chain(shard.xorbs.iter().map(|x| x.hash))
        .collect();
    let tables = chunk_tables(&mut conn, &named).await?;
    if let Some(missing) = named.iter().find(|x| !tables.contains_key(x)) {
        return Err(invalid(format!(
            "xorb {missing} is not stored here: upload it before the shard"
        )));
    }
    drop(conn);
    let mut checked = Vec::with_capacity(shard.files.len());
    for file in &shard.files {
        checked.push(check_file(state, file, &tables).await?);
    }
    let mut tx = state.db.begin().await?;
    let mut new_files = 0;
    for (file, sha256, size, xorbs) in checked {
        db::blobs::upsert(&mut tx, &sha256, size as i64).await?;
        // Locks the xorbs against the collector until the file that needs them is recorded.
        if db::xet::xorbs(&mut tx, &xorbs).await?.len() != xorbs.len() {
            return Err(invalid(format!(
                "a xorb of file {} was removed meanwhile: upload it again",
                file.file_hash
            )));
        }
        let row = db::xet::FileRow {
            file_hash: file.file_hash.as_bytes().to_vec(),
            sha256: kaiyuan_storage::Sha256Digest::from_bytes(sha256),
            size: size as i64,
            terms: pack_terms(&file.terms),
        };
        if db::xet::insert_file(&mut tx, &row, &xorbs).await? {
            new_files += 1;
            // Clients always ask the global-dedupe route about a file's first chunk.
            if let Some((first, xorb)) = first_chunk(file, &tables) {
                db::xet::index_chunks(&mut tx, xorb.as_bytes(), &[first.as_bytes().to_vec()])
                    .await?;
            }
        }
        db::blobs::grant_upload(&mut tx, token.repository_id, &sha256, user).await?;
    }
    tx.commit().await?;
    Ok(new_files)
}

/// One file's checks; returns it with its sha256, size and the xorbs it needs.
async fn check_file<'a>(
    state: &AppState,
    file: &'a FileInfo,
    tables: &std::collections::HashMap<MerkleHash, (i64, Vec<kaiyuan_xet::xorb::ChunkEntry>)>,
) -> Result<(&'a FileInfo, [u8; 32], u64, Vec<Vec<u8>>), RegisterError> {
    let invalid = RegisterError::Invalid;
    let name = file.file_hash;
    let claimed = file.sha256.ok_or_else(|| {
        invalid(format!(
            "file {name} has no sha256 (FileMetadataExt): a repository's commit names files by sha256"
        ))
    })?;
    if file.verification.len() != file.terms.len() {
        return Err(invalid(format!(
            "file {name} has {} verification entries for {} terms: every term needs one",
            file.verification.len(),
            file.terms.len()
        )));
    }
    let mut chunk_list = Vec::new();
    for (i, (term, proof)) in file.terms.iter().zip(&file.verification).enumerate() {
        let chunks = term_chunks(term, tables)
            .map_err(|e| invalid(format!("file {name}, term {i}: {e}")))?;
        let hashes: Vec<MerkleHash> = chunks.iter().map(|c| c.hash).collect();
        if verification_hash(&hashes) != *proof {
            return Err(invalid(format!(
                "file {name}, term {i}: the verification hash does not match chunks {}..{} of xorb {}",
                term.chunk_start, term.chunk_end, term.xorb
            )));
        }
        chunk_list.extend(chunks.iter().map(|c| (c.hash, u64::from(c.unpacked_len))));
    }
    if file_hash(&chunk_list) != name {
        return Err(invalid(format!(
            "the chunks of file {name} hash to {}, not to its name",
            file_hash(&chunk_list)
        )));
    }
    let size: u64 = chunk_list.iter().map(|(_, len)| len).sum();
    let limit = state.settings.limits.max_file_size;
    if size > limit {
        return Err(invalid(format!(
            "file {name} has {size} bytes; the limit is {limit} bytes"
        )));
    }
    // Rebuild the bytes and hash them: the sha256 is what the commit will be checked against.
    let recipe = recipe_of(&file.terms, tables).map_err(invalid)?;
    let mut bytes = state
        .store
        .read_recipe(std::sync::Arc::new(recipe), 0..size);
    let mut hasher = Sha256::new();
    while let Some(piece) = bytes.next().await {
        hasher.update(&piece?);
    }
    let actual: [u8; 32] = hasher.finalize().into();
    if actual != claimed {
        return Err(invalid(format!(
            "file {name} rebuilds to bytes with sha256 {}, not the {} its metadata claims",
            hex::encode(actual),
            hex::encode(claimed)
        )));
    }
    let mut xorbs: Vec<Vec<u8>> = file
        .terms
        .iter()
        .map(|t| t.xorb.as_bytes().to_vec())
        .collect();
    xorbs.sort();
    xorbs.dedup();
    Ok((file, actual, size, xorbs))
}

/// The hash of a file's first chunk and the xorb holding it.
fn first_chunk(
    file: &FileInfo,
    tables: &std::collections::HashMap<MerkleHash, (i64, Vec<kaiyuan_xet::xorb::ChunkEntry>)>,
) -> Option<(MerkleHash, MerkleHash)> {
    let term = file.terms.first()?;
    let (_, table) = tables.get(&term.xorb)?;
    Some((table.get(term.chunk_start as usize)?.hash, term.xorb))
}

/// Records a stored xorb with the chunk table the hub computed, and indexes its first chunk and
/// its globally deduplicable ones; true when the row is new.
pub async fn record_xorb(conn: &mut PgConnection, xorb: &ValidXorb) -> sqlx::Result<bool> {
    let inserted = db::xet::upsert_xorb(
        conn,
        xorb.hash.as_bytes(),
        xorb.stored_len as i64,
        xorb.unpacked_len as i64,
        xorb.chunks.len() as i32,
        &pack_chunk_table(&xorb.chunks),
    )
    .await?;
    if inserted {
        let indexed: Vec<Vec<u8>> = xorb
            .chunks
            .iter()
            .enumerate()
            .filter(|(i, c)| *i == 0 || c.hash.is_global_dedupe_eligible())
            .map(|(_, c)| c.hash.as_bytes().to_vec())
            .collect();
        db::xet::index_chunks(conn, xorb.hash.as_bytes(), &indexed).await?;
    }
    Ok(inserted)
}

/// Registers a file the hub chunked itself (its bytes were checked against their sha256 as they
/// were cut): its new xorbs, the blob row and its reconstruction, in one transaction. From then
/// on it is read, and offered to Xet clients, like a file a client uploaded through Xet. Its
/// terms may also name xorbs stored before (a mirror reuses an upstream's xorbs it holds); if
/// one of those was removed meanwhile, nothing is registered.
pub async fn register_chunked(state: &AppState, file: &ChunkedBlob) -> Result<(), RegisterError> {
    let mut tx = state.db.begin().await?;
    for xorb in &file.xorbs {
        record_xorb(&mut tx, xorb).await?;
    }
    db::blobs::upsert(&mut tx, file.sha256.as_bytes(), file.size as i64).await?;
    let mut xorbs: Vec<Vec<u8>> = file
        .terms
        .iter()
        .map(|t| t.xorb.as_bytes().to_vec())
        .collect();
    xorbs.sort();
    xorbs.dedup();
    // Locks the xorbs against the collector until the file that needs them is recorded.
    if db::xet::xorbs(&mut tx, &xorbs).await?.len() != xorbs.len() {
        return Err(RegisterError::Invalid(format!(
            "a xorb of file {} was removed meanwhile",
            file.file_hash
        )));
    }
    let row = db::xet::FileRow {
        file_hash: file.file_hash.as_bytes().to_vec(),
        sha256: file.sha256,
        size: file.size as i64,
        terms: pack_terms(&file.terms),
    };
    db::xet::insert_file(&mut tx, &row, &xorbs).await?;
    tx.commit().await?;
    Ok(())
}
