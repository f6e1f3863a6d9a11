//! The hub's side of Xet storage: CAS access tokens, file recipes the store reads through, and
//! the registration of uploaded shards. The HTTP routes are in `routes::cas` (the CAS) and
//! `routes::hf` (the token route); the formats and hashes in the `kaiyuan-xet` crate.

pub mod recipes;
pub mod register;
pub mod token;

use std::collections::HashMap;

use crate::db;

/// The Xet hashes that a download or a listing of `commit` names for these bytes (by sha256).
/// Bytes the CAS refuses (quarantined or held, or a commit the mirror refuses) get none: a
/// client given a hash would meet a bare 403 at the CAS, while without one it asks resolve,
/// which says why.
pub async fn offered_hashes(
    conn: &mut sqlx::PgConnection,
    repository_id: i64,
    commit: &str,
    sha256s: &[Vec<u8>],
) -> sqlx::Result<HashMap<Vec<u8>, kaiyuan_xet::MerkleHash>> {
    if sha256s.is_empty()
        || db::mirror::refusal(conn, repository_id, commit)
            .await?
            .is_some()
    {
        return Ok(HashMap::new());
    }
    Ok(db::xet::servable_file_hashes(conn, sha256s)
        .await?
        .into_iter()
        .filter_map(|(sha, hash)| Some((sha, kaiyuan_xet::MerkleHash::from_slice(&hash)?)))
        .collect())
}
