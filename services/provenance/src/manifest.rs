//! The model-signing manifest: one sha256 per file, named by its POSIX path relative to the
//! model root, ordered segment by segment, and the root digest over the raw digests.

use std::cmp::Ordering;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Paths the `model_signing` tool ignores at the model root by default.
pub const GIT_PATHS: &[&str] = &[".git", ".gitattributes", ".github", ".gitignore"];

/// One signed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub digest: [u8; 32],
}

/// Why a manifest could not be built or a name is unacceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError(pub String);

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resource names are relative POSIX paths: no `..`, `.`, empty segment, leading `/`, `\`
/// or control character.
pub fn validate_name(name: &str) -> Result<(), ManifestError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name.chars().any(char::is_control)
        || name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(ManifestError(format!(
            "`{name}` is not a safe relative path"
        )));
    }
    Ok(())
}

/// The tool's order: paths compared segment by segment (`tokenizer/vocab.txt` sorts before
/// `tokenizer.json`, which plain string order reverses).
pub fn segment_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// sha256 over the raw digests, in the order given.
pub fn root_digest(resources: &[Resource]) -> [u8; 32] {
    let mut h = Sha256::new();
    for r in resources {
        h.update(r.digest);
    }
    h.finalize().into()
}

/// Sorts resources into the tool's order.
pub fn sort(resources: &mut [Resource]) {
    resources.sort_by(|a, b| segment_order(&a.name, &b.name));
}

/// Whether `name` lies under one of `ignored` (path-component prefix, as the tool matches).
pub fn is_ignored(name: &str, ignored: &[String]) -> bool {
    ignored.iter().any(|i| {
        let i = i.trim_end_matches('/');
        name == i
            || name
                .strip_prefix(i)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Hashes every regular file under `root` (the model folder), skipping `ignored` paths
/// (relative to the root). Symbolic links and special files are errors, as in the tool.
pub fn from_dir(root: &Path, ignored: &[String]) -> Result<Vec<Resource>, ManifestError> {
    let meta = std::fs::symlink_metadata(root)
        .map_err(|e| ManifestError(format!("{}: {e}", root.display())))?;
    if meta.is_file() {
        // A single-file model: one resource named ".".
        return Ok(vec![Resource {
            name: ".".into(),
            digest: hash_file(root)?,
        }]);
    }
    let mut found = Vec::new();
    walk(root, "", ignored, &mut found)?;
    let mut out = hash_all(found)?;
    sort(&mut out);
    Ok(out)
}

/// Hashes files on every core: a sharded checkpoint is several large files, and one SHA-256
/// stream cannot use more than one core.
fn hash_all(files: Vec<(String, std::path::PathBuf)>) -> Result<Vec<Resource>, ManifestError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Vec<Resource>, ManifestError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((name, path)) = files.get(i) else {
                            return Ok(mine);
                        };
                        mine.push(Resource {
                            name: name.clone(),
                            digest: hash_file(path)?,
                        });
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a hashing thread panicked"))
            .collect()
    });
    let mut out = Vec::with_capacity(files.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

fn walk(
    dir: &Path,
    prefix: &str,
    ignored: &[String],
    out: &mut Vec<(String, std::path::PathBuf)>,
) -> Result<(), ManifestError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| ManifestError(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| ManifestError(format!("{}: {e}", dir.display())))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            return Err(ManifestError(format!(
                "{}: a file name is not UTF-8",
                dir.display()
            )));
        };
        let name = if prefix.is_empty() {
            file_name.to_string()
        } else {
            format!("{prefix}/{file_name}")
        };
        if is_ignored(&name, ignored) {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| ManifestError(format!("{name}: {e}")))?;
        if kind.is_dir() {
            walk(&entry.path(), &name, ignored, out)?;
        } else if kind.is_file() {
            validate_name(&name)?;
            out.push((name, entry.path()));
        } else if kind.is_symlink() {
            return Err(ManifestError(format!(
                "{name} is a symbolic link; signed models may not contain links"
            )));
        } else {
            return Err(ManifestError(format!("{name} is not a regular file")));
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> Result<[u8; 32], ManifestError> {
    let mut file =
        std::fs::File::open(path).map_err(|e| ManifestError(format!("{}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| ManifestError(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_order_differs_from_string_order() {
        let mut names = vec!["tokenizer.json", "tokenizer/vocab.txt", "a", "README.md"];
        names.sort_by(|a, b| segment_order(a, b));
        assert_eq!(
            names,
            ["README.md", "a", "tokenizer/vocab.txt", "tokenizer.json"]
        );
    }

    #[test]
    fn unsafe_names_are_refused() {
        for bad in ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a\nb"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        validate_name("dir/file.bin").unwrap();
    }

    #[test]
    fn ignores_match_whole_components() {
        let ignored: Vec<String> = GIT_PATHS.iter().map(|s| s.to_string()).collect();
        assert!(is_ignored(".git/HEAD", &ignored));
        assert!(is_ignored(".gitattributes", &ignored));
        assert!(!is_ignored(".github2/x", &ignored));
        assert!(!is_ignored("sub/.git", &ignored));
    }
}
