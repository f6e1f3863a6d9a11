//! The hub's own secrets (the log's signing key, the upload-URL key): 32 random bytes each,
//! created by whichever replica needs one first and shared by all through the database.

use rand::Rng;
use sqlx::PgConnection;

/// The secret `name`, created now if it does not exist yet.
pub async fn get_or_create(conn: &mut PgConnection, name: &str) -> sqlx::Result<Vec<u8>> {
    let fresh: [u8; 32] = rand::rng().random();
    sqlx::query(
        "INSERT INTO hub_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(fresh.as_slice())
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT value FROM hub_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(conn)
        .await
}
