//! Rules of the hub that more than one surface applies (the API, the Hugging Face routes, the web
//! pages, the jobs), each written once here. Nothing in this module knows of HTTP.

pub mod scan;
pub mod task;

/// What the hub's rules and services below the HTTP layer (licensing, signatures, the log) fail
/// with. `error.rs`, at the edge, maps it to the documented answers; jobs keep its cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("object store: {0}")]
    Storage(#[from] kaiyuan_storage::StorageError),
    /// Stored data that breaks an invariant (a digest of the wrong length, an unreadable key).
    #[error("{0}")]
    Internal(String),
    /// A licence the caller must accept before downloading (`signed_in`: whether they can).
    #[error("{message}")]
    Gated { signed_in: bool, message: String },
}
