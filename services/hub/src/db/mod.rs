//! Persistence: the only module that speaks SQL. Functions take a `&mut PgConnection` (a pooled
//! connection or an open transaction) so that handlers own the transaction boundary.

pub mod accounts;
pub mod audit;
pub mod blobs;
pub mod commits;
pub mod jobs;
pub mod licenses;
pub mod notifications;
pub mod processes;
pub mod provenance;
pub mod repos;
pub mod reviews;
pub mod rules;
pub mod scans;
pub mod sessions;
pub mod tlog;
pub mod verifications;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The schema, embedded from `migrations/` (the only schema source).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Opens a pool on `url`.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Whether `e` is the violation of the named unique constraint or index.
pub fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}
