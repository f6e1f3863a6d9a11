//! Garbage collection: staging leftovers (at once for processes that stopped, by age for the
//! rest), repositories past their deletion grace period, upload
//! grants never used by a commit, and blobs that no commit references any more.
//!
//! A blob is removed only when unreferenced and unseen (no upload touched it) for the grace
//! period; the database row goes first, so a blob row always means the bytes are (still) stored.

use std::collections::HashSet;
use std::time::Duration;

use kaiyuan_storage::{BlobStore, Sha256Digest};
use sqlx::PgPool;

use crate::config::Gc;
use crate::db;

#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub staging_removed: usize,
    pub repositories_purged: u64,
    pub blobs_removed: usize,
    pub xorbs_removed: usize,
}

/// Candidates looked at per round trip of the collector's walk.
const BLOB_BATCH: i64 = 5000;

pub async fn collect(db: &PgPool, store: &BlobStore, settings: &Gc) -> anyhow::Result<GcReport> {
    let mut conn = db.acquire().await?;
    let live: HashSet<String> = db::processes::live(&mut conn).await?.into_iter().collect();
    let mut report = GcReport {
        staging_removed: store
            .collect_dead_staging(|owner| live.contains(owner))
            .await?
            + store
                .collect_staging(Duration::from_secs(settings.staging_grace_secs))
                .await?,
        ..Default::default()
    };
    report.repositories_purged =
        db::repos::purge_deleted(&mut conn, settings.deleted_repo_grace_days).await?;
    db::blobs::expire_grants(&mut conn, settings.blob_grace_secs).await?;
    // One walk over the collection candidates (new blobs, and blobs that lost a reference) in
    // digest order, a batch at a time: memory for one batch, and a cost in proportion to what
    // changed since the last run, not to what is stored.
    let mut after = Vec::new();
    loop {
        let batch =
            db::blobs::collect_batch(&mut conn, &after, BLOB_BATCH, settings.blob_grace_secs)
                .await?;
        for sha in batch.removed {
            if let Ok(bytes) = <[u8; 32]>::try_from(sha.as_slice()) {
                store.delete_blob(&Sha256Digest::from_bytes(bytes)).await?;
                report.blobs_removed += 1;
            }
        }
        match batch.last {
            Some(last) => after = last,
            None => break,
        }
    }
    // Xorbs go after the blobs: a collected blob's reconstruction no longer holds them.
    loop {
        let removed =
            db::xet::collect_xorbs(&mut conn, settings.blob_grace_secs, BLOB_BATCH).await?;
        for hash in &removed {
            if let Some(hash) = kaiyuan_xet::MerkleHash::from_slice(hash) {
                store.delete_xorb(&hash).await?;
                report.xorbs_removed += 1;
            }
        }
        if (removed.len() as i64) < BLOB_BATCH {
            break;
        }
    }
    tracing::info!(
        xorbs_removed = report.xorbs_removed,
        staging_removed = report.staging_removed,
        repositories_purged = report.repositories_purged,
        blobs_removed = report.blobs_removed,
        "garbage collection finished"
    );
    Ok(report)
}
