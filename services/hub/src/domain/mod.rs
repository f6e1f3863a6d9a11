//! Rules of the hub that more than one surface applies (the API, the Hugging Face routes, the web
//! pages, the jobs), each written once here. Nothing in this module knows of HTTP.

pub mod accounts;
pub mod actor;
pub mod commits;
pub mod event;
pub mod log_entry;
pub mod refs;
pub mod repos;
pub mod reviews;
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Below the routes and pages, nothing knows of HTTP: no actix, no routes or pages, no
    /// request state, no HTTP error type.
    #[test]
    fn the_layers_below_the_routes_know_nothing_of_http() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut below: Vec<std::path::PathBuf> = vec![];
        // Every source file under these folders, at any depth (`db/repos/ranking.rs`).
        let mut folders = vec![src.join("domain"), src.join("db")];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(folder).unwrap().flatten() {
                if entry.path().is_dir() {
                    folders.push(entry.path());
                } else {
                    below.push(entry.path());
                }
            }
        }
        assert!(below.iter().any(|p| p.ends_with("db/repos/ranking.rs")));
        for file in [
            "jobs.rs",
            "licensing.rs",
            "signatures.rs",
            "tlog.rs",
            "verification.rs",
            "notify.rs",
            "gc.rs",
            "liveness.rs",
            "commit_id.rs",
            "tree.rs",
            "paths.rs",
            "names.rs",
        ] {
            below.push(src.join(file));
        }
        let forbidden = [
            "actix_web",
            "crate::routes",
            "crate::web",
            "crate::auth",
            "AppState",
            "ApiError",
        ];
        let mut found = vec![];
        for path in below {
            let text = std::fs::read_to_string(&path).unwrap();
            // The test itself names what it forbids.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                if let Some(word) = forbidden.iter().find(|w| line.contains(*w)) {
                    found.push(format!("{}:{}: {word}", path.display(), n + 1));
                }
            }
        }
        assert!(
            found.is_empty(),
            "HTTP below the routes:\n{}",
            found.join("\n")
        );
    }
}
