//! The registry of running hub processes (see migration 0017): registration, heartbeats, and
//! which processes are alive.

use sqlx::PgConnection;

/// A process whose heartbeat is older than this is taken for dead.
pub const DEAD_AFTER_SECS: f64 = 60.0;

/// Registers `id`, or renews its heartbeat.
pub async fn heartbeat(conn: &mut PgConnection, id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO hub_processes (id) VALUES ($1)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes `id` at a clean shutdown.
pub async fn unregister(conn: &mut PgConnection, id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM hub_processes WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The ids of the processes alive now; long-dead rows are dropped on the way.
pub async fn live(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query(
        "DELETE FROM hub_processes WHERE heartbeat_at < now() - make_interval(secs => $1 * 10)",
    )
    .bind(DEAD_AFTER_SECS)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar(
        "SELECT id FROM hub_processes WHERE heartbeat_at >= now() - make_interval(secs => $1)",
    )
    .bind(DEAD_AFTER_SECS)
    .fetch_all(conn)
    .await
}
