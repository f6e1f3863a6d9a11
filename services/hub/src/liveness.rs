//! This `serve` process among the hub's processes: a name that stays the same across restarts on
//! the same host and address, a registration with a heartbeat, and the removal at start of what a
//! previous run under that name left half-uploaded when it was killed.

use std::time::Duration;

use kaiyuan_storage::BlobStore;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::db;

/// How often the heartbeat is renewed (well inside `db::processes::DEAD_AFTER_SECS`).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// `<hostname>-<listen address>`, reduced to `[A-Za-z0-9-]`. Only one process can listen on an
/// address of a host, so anything staged under this name before this process started is a
/// crashed predecessor's.
pub fn process_id(listen: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}-{listen}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(100)
        .collect()
}

/// Removes the staging leftovers of this name's previous run and of processes that stopped
/// beating, registers this process, and returns the store that stages under its name.
pub async fn register(pool: &PgPool, store: BlobStore, id: &str) -> anyhow::Result<BlobStore> {
    let mut conn = pool.acquire().await?;
    let live = db::processes::live(&mut conn).await?;
    let removed = store
        .collect_dead_staging(|owner| owner != id && live.iter().any(|l| l == owner))
        .await?;
    if removed > 0 {
        tracing::info!(
            removed,
            "removed uploads left unfinished by a stopped process"
        );
    }
    db::processes::heartbeat(&mut conn, id).await?;
    Ok(store.with_staging_owner(id))
}

/// Renews the heartbeat until `stop`, then unregisters.
pub async fn heartbeat(pool: PgPool, id: String, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
            _ = stop.changed() => break,
        }
        let beat = async {
            let mut conn = pool.acquire().await?;
            db::processes::heartbeat(&mut conn, &id).await
        };
        if let Err(e) = beat.await {
            tracing::warn!(error = %e, "could not renew this process's heartbeat");
        }
    }
    if let Ok(mut conn) = pool.acquire().await {
        let _ = db::processes::unregister(&mut conn, &id).await;
    }
}
