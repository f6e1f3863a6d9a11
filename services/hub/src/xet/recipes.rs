//! From a file's reconstruction terms to the chunk-by-chunk [`Recipe`] that the store reads it
//! with; and the store's view of the recipes kept in PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;

use kaiyuan_storage::{BlobStore, Recipe, RecipeChunk, Recipes, Sha256Digest, StorageError};
use kaiyuan_xet::MerkleHash;
use kaiyuan_xet::shard::Term;
use kaiyuan_xet::xorb::{ChunkEntry, unpack_chunk_table};
use sqlx::{PgConnection, PgPool};

use crate::db;

/// Bytes of one packed term: xorb hash, chunk start, chunk end, unpacked length.
const TERM_BYTES: usize = 44;

pub fn pack_terms(terms: &[Term]) -> Vec<u8> {
    let mut out = Vec::with_capacity(terms.len() * TERM_BYTES);
    for term in terms {
        out.extend_from_slice(term.xorb.as_bytes());
        out.extend_from_slice(&term.chunk_start.to_le_bytes());
        out.extend_from_slice(&term.chunk_end.to_le_bytes());
        out.extend_from_slice(&term.unpacked_len.to_le_bytes());
    }
    out
}

pub fn unpack_terms(bytes: &[u8]) -> Result<Vec<Term>, String> {
    if !bytes.len().is_multiple_of(TERM_BYTES) {
        return Err(format!(
            "packed terms are {} bytes, not a multiple of {TERM_BYTES}",
            bytes.len()
        ));
    }
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    Ok(bytes
        .chunks_exact(TERM_BYTES)
        .map(|b| Term {
            xorb: MerkleHash::from_slice(&b[..32]).unwrap_or_default(),
            chunk_start: u32_at(b, 32),
            chunk_end: u32_at(b, 36),
            unpacked_len: u32_at(b, 40),
        })
        .collect())
}

/// The stored size and chunk table of each of `xorbs` that is stored, from the database.
pub async fn chunk_tables(
    conn: &mut PgConnection,
    xorbs: &[MerkleHash],
) -> Result<HashMap<MerkleHash, (i64, Vec<ChunkEntry>)>, StorageError> {
    let mut wanted: Vec<Vec<u8>> = xorbs.iter().map(|x| x.as_bytes().to_vec()).collect();
    wanted.sort();
    wanted.dedup();
    let rows = db::xet::xorbs(conn, &wanted)
        .await
        .map_err(|e| StorageError::Corrupt(format!("loading xorb records: {e}")))?;
    let mut tables = HashMap::with_capacity(rows.len());
    for row in rows {
        let hash = MerkleHash::from_slice(&row.hash).unwrap_or_default();
        let table = unpack_chunk_table(&row.chunk_table)
            .map_err(|e| StorageError::Corrupt(format!("chunk table of xorb {hash}: {e}")))?;
        tables.insert(hash, (row.stored_size, table));
    }
    Ok(tables)
}

/// Where a term's chunks lie, checked against the xorb's chunk table.
pub fn term_chunks<'a>(
    term: &Term,
    tables: &'a HashMap<MerkleHash, (i64, Vec<ChunkEntry>)>,
) -> Result<&'a [ChunkEntry], String> {
    let (_, table) = tables
        .get(&term.xorb)
        .ok_or_else(|| format!("xorb {} is not stored here", term.xorb))?;
    let range = term.chunk_start as usize..term.chunk_end as usize;
    if range.start >= range.end || range.end > table.len() {
        return Err(format!(
            "chunks {}..{} of xorb {} do not exist: it has {} chunks",
            term.chunk_start,
            term.chunk_end,
            term.xorb,
            table.len()
        ));
    }
    let chunks = &table[range];
    let unpacked: u64 = chunks.iter().map(|c| u64::from(c.unpacked_len)).sum();
    if unpacked != u64::from(term.unpacked_len) {
        return Err(format!(
            "chunks {}..{} of xorb {} hold {unpacked} bytes, the term says {}",
            term.chunk_start, term.chunk_end, term.xorb, term.unpacked_len
        ));
    }
    Ok(chunks)
}

/// The recipe of a file made of `terms`.
pub fn recipe_of(
    terms: &[Term],
    tables: &HashMap<MerkleHash, (i64, Vec<ChunkEntry>)>,
) -> Result<Recipe, String> {
    let mut chunks = Vec::new();
    for term in terms {
        for chunk in term_chunks(term, tables)? {
            chunks.push(RecipeChunk {
                xorb: term.xorb,
                offset: u64::from(chunk.offset),
                frame_len: chunk.frame_len,
                unpacked_len: chunk.unpacked_len,
            });
        }
    }
    Ok(Recipe::new(chunks))
}

/// The store's access to the recipes of registered files.
#[derive(Debug)]
struct PgRecipes {
    db: PgPool,
}

#[async_trait::async_trait]
impl Recipes for PgRecipes {
    async fn recipe(&self, digest: &Sha256Digest) -> Result<Option<Arc<Recipe>>, StorageError> {
        let corrupt = |e: sqlx::Error| StorageError::Corrupt(format!("loading a recipe: {e}"));
        let mut conn = self.db.acquire().await.map_err(corrupt)?;
        let Some(file) = db::xet::file_by_sha256(&mut conn, digest.as_bytes())
            .await
            .map_err(corrupt)?
        else {
            return Ok(None);
        };
        let terms = unpack_terms(&file.terms).map_err(StorageError::Corrupt)?;
        let xorbs: Vec<MerkleHash> = terms.iter().map(|t| t.xorb).collect();
        let tables = chunk_tables(&mut conn, &xorbs).await?;
        let recipe = recipe_of(&terms, &tables).map_err(StorageError::Corrupt)?;
        Ok(Some(Arc::new(recipe)))
    }
}

/// The store, reading Xet-stored files through their recipes in `db`.
pub fn attach(store: BlobStore, db: PgPool) -> BlobStore {
    store.with_recipes(Arc::new(PgRecipes { db }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_pack_and_unpack() {
        let terms = vec![
            Term {
                xorb: MerkleHash([7; 32]),
                unpacked_len: 1000,
                chunk_start: 2,
                chunk_end: 9,
            },
            Term {
                xorb: MerkleHash([1; 32]),
                unpacked_len: 5,
                chunk_start: 0,
                chunk_end: 1,
            },
        ];
        assert_eq!(unpack_terms(&pack_terms(&terms)).unwrap(), terms);
        assert!(unpack_terms(&[0; 45]).is_err());
    }
}
