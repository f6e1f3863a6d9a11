//! What every handler can reach. A module of its own, below the routes: `app.rs` wires routes
//! to it, and routes depend on it without depending on the wiring (no import cycle).

use std::sync::Arc;

use kaiyuan_storage::BlobStore;
use sqlx::PgPool;

use crate::config::Settings;
use crate::metrics::Metrics;

pub struct AppState {
    pub db: PgPool,
    pub store: BlobStore,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// The key that signs upload URLs, loaded from the database on first use.
    pub signing_key: tokio::sync::OnceCell<Vec<u8>>,
    /// Mirror mode's upstream client and in-flight fetches (idle without an upstream).
    pub mirror: crate::mirror::Mirror,
}
