//! Persistence: the only module that speaks SQL. Functions take a `&mut PgConnection` (a pooled
//! connection or an open transaction) so that handlers own the transaction boundary.

pub mod accounts;
pub mod audit;
pub mod blobs;
pub mod commits;
pub mod jobs;
pub mod licenses;
pub mod mirror;
pub mod notifications;
pub mod processes;
pub mod provenance;
pub mod repos;
pub mod reviews;
pub mod rules;
pub mod scans;
pub mod secrets;
pub mod sessions;
pub mod tlog;
pub mod types;
pub mod verifications;
pub mod xet;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The schema, embedded from `migrations/` (the only schema source).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Opens a pool on `url`. Its sessions never JIT-compile a query: the hub's statements read an
/// index for milliseconds, but a plan whose estimate is high (a filter PostgreSQL misjudges)
/// would spend about 100 ms compiling first (seen on a licence filter at a million
/// repositories: 7 ms of execution after 97 ms of JIT).
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
    let options = options.options([("jit", "off")]);
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

/// Whether the database answers a trivial query.
pub async fn ping(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// The versions of the migrations applied successfully, in order.
pub async fn applied_migrations(pool: &PgPool) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}

/// Creates the database `name` on the server `pool` reaches, unless it exists. `name` is a
/// fixed identifier of the hub's, never user input.
pub async fn ensure_database(pool: &PgPool, name: &'static str) -> sqlx::Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(pool)
            .await?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(pool)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// All SQL lives in this module: a query anywhere else fails this test.
    #[test]
    fn no_sql_outside_the_persistence_layer() {
        fn walk(dir: &Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    if path.file_name().is_some_and(|n| n != "db") {
                        walk(&path, found);
                    }
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let sql = ["sqlx::query", "query_as(", "query_scalar(", "QueryBuilder"];
                    if sql.iter().any(|s| line.contains(s)) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
        let mut found = vec![];
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(
            found.is_empty(),
            "SQL outside src/db/:\n{}",
            found.join("\n")
        );
    }
}
