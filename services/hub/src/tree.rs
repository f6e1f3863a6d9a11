//! A commit's snapshot (path -> blob) and the changes one commit applies to it. Pure: no I/O.

use std::collections::{BTreeMap, HashMap};

use crate::paths::RepoPath;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sha256: kaiyuan_storage::Sha256Digest,
    pub size: i64,
}

/// The files of one commit, ordered by path.
pub type Snapshot = BTreeMap<String, Entry>;

/// One change of a commit, already resolved to stored blobs.
#[derive(Debug, Clone)]
pub enum Change {
    /// Add or replace a file.
    Put { path: RepoPath, entry: Entry },
    /// Delete a file, or every file under a folder.
    Delete { path: RepoPath },
    /// Copy a file of the snapshot being changed to a new path.
    Copy { from: RepoPath, to: RepoPath },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("cannot delete `{0}`: no file or folder has that path")]
    DeleteMissing(String),
    #[error("cannot copy `{0}`: no file has that path")]
    CopyMissing(String),
    #[error("paths `{0}` and `{1}` differ only by case, which breaks case-insensitive filesystems")]
    CaseCollision(String, String),
    #[error("`{0}` cannot be both a file and a folder")]
    FileAndFolder(String),
    #[error("a commit may hold at most {0} files")]
    TooManyFiles(usize),
}

/// Applies `changes` in order to `base` and checks that the result is a valid snapshot.
pub fn apply(
    mut tree: Snapshot,
    changes: &[Change],
    max_files: usize,
) -> Result<Snapshot, TreeError> {
    for change in changes {
        match change {
            Change::Put { path, entry } => {
                tree.insert(path.as_str().to_string(), entry.clone());
            }
            Change::Delete { path } => {
                if tree.remove(path.as_str()).is_none() {
                    let folder = format!("{}/", path.as_str());
                    let inside: Vec<String> = tree
                        .range(folder.clone()..)
                        .take_while(|(p, _)| p.starts_with(&folder))
                        .map(|(p, _)| p.clone())
                        .collect();
                    if inside.is_empty() {
                        return Err(TreeError::DeleteMissing(path.to_string()));
                    }
                    for p in inside {
                        tree.remove(&p);
                    }
                }
            }
            Change::Copy { from, to } => {
                let entry = tree
                    .get(from.as_str())
                    .cloned()
                    .ok_or_else(|| TreeError::CopyMissing(from.to_string()))?;
                tree.insert(to.as_str().to_string(), entry);
            }
        }
    }
    if tree.len() > max_files {
        return Err(TreeError::TooManyFiles(max_files));
    }
    check_paths(&tree)?;
    Ok(tree)
}

/// Refuses paths that collide on case-insensitive filesystems (including their folders) and
/// paths used both as a file and as a folder.
fn check_paths(tree: &Snapshot) -> Result<(), TreeError> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    let mut folders: std::collections::HashSet<&str> = Default::default();
    for path in tree.keys() {
        for (i, _) in path.match_indices('/') {
            folders.insert(&path[..i]);
        }
        for prefix in path
            .match_indices('/')
            .map(|(i, _)| &path[..i])
            .chain([path.as_str()])
        {
            let folded = prefix.to_lowercase();
            match seen.get(&folded) {
                Some(original) if *original != prefix => {
                    return Err(TreeError::CaseCollision(
                        original.to_string(),
                        prefix.to_string(),
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert(folded, prefix);
                }
            }
        }
    }
    for path in tree.keys() {
        if folders.contains(path.as_str()) {
            return Err(TreeError::FileAndFolder(path.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> Entry {
        Entry {
            sha256: kaiyuan_storage::Sha256Digest::from_bytes([n; 32]),
            size: n as i64,
        }
    }

    fn path(p: &str) -> RepoPath {
        RepoPath::parse(p).unwrap()
    }

    fn put(p: &str, n: u8) -> Change {
        Change::Put {
            path: path(p),
            entry: entry(n),
        }
    }

    #[test]
    fn puts_replace_deletes_and_copies_apply_in_order() {
        let base = apply(
            Snapshot::new(),
            &[put("a.bin", 1), put("dir/x", 2), put("dir/y", 3)],
            10,
        )
        .unwrap();
        let next = apply(
            base,
            &[
                put("a.bin", 4),
                Change::Copy {
                    from: path("a.bin"),
                    to: path("b.bin"),
                },
                Change::Delete { path: path("dir") },
            ],
            10,
        )
        .unwrap();
        let paths: Vec<&str> = next.keys().map(String::as_str).collect();
        assert_eq!(paths, ["a.bin", "b.bin"]);
        assert_eq!(next["b.bin"], entry(4));
    }

    #[test]
    fn refuses_missing_deletes_and_copies() {
        assert_eq!(
            apply(
                Snapshot::new(),
                &[Change::Delete { path: path("nope") }],
                10
            ),
            Err(TreeError::DeleteMissing("nope".into()))
        );
        assert!(matches!(
            apply(
                Snapshot::new(),
                &[Change::Copy {
                    from: path("x"),
                    to: path("y")
                }],
                10
            ),
            Err(TreeError::CopyMissing(_))
        ));
    }

    #[test]
    fn refuses_case_collisions_in_files_and_folders() {
        assert!(matches!(
            apply(
                Snapshot::new(),
                &[put("Model.bin", 1), put("model.bin", 2)],
                10
            ),
            Err(TreeError::CaseCollision(..))
        ));
        assert!(matches!(
            apply(Snapshot::new(), &[put("Dir/a", 1), put("dir/b", 2)], 10),
            Err(TreeError::CaseCollision(..))
        ));
    }

    #[test]
    fn refuses_a_path_that_is_file_and_folder() {
        assert_eq!(
            apply(Snapshot::new(), &[put("a", 1), put("a/b", 2)], 10),
            Err(TreeError::FileAndFolder("a".into()))
        );
    }

    #[test]
    fn enforces_the_file_limit() {
        assert_eq!(
            apply(Snapshot::new(), &[put("a", 1), put("b", 2)], 1),
            Err(TreeError::TooManyFiles(1))
        );
    }
}
