//! File paths inside a repository.
//!
//! A path is relative, `/`-separated, valid UTF-8 normalised to NFC, at most 1,024 bytes and 64
//! segments, with no empty, `.` or `..` segment, no backslash and no control character. These
//! rules keep every path safe to write to any filesystem a client downloads to.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

pub const MAX_PATH_BYTES: usize = 1024;
pub const MAX_SEGMENTS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoPath(String);

#[derive(Debug, thiserror::Error)]
#[error("`{shown}` is not a valid file path: {reason}")]
pub struct PathError {
    pub shown: String,
    pub reason: &'static str,
}

impl RepoPath {
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let fail = |reason| {
            Err(PathError {
                shown: raw.chars().take(120).flat_map(char::escape_debug).collect(),
                reason,
            })
        };
        let path: String = raw.nfc().collect();
        if path.is_empty() {
            return fail("it is empty");
        }
        if path.len() > MAX_PATH_BYTES {
            return fail("it is longer than 1024 bytes");
        }
        if path.starts_with('/') {
            return fail("it must be relative (no leading `/`)");
        }
        if path.contains('\\') {
            return fail("use `/` as separator, not `\\`");
        }
        if path.chars().any(char::is_control) {
            return fail("it contains a control character");
        }
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() > MAX_SEGMENTS {
            return fail("it has more than 64 segments");
        }
        for segment in segments {
            match segment {
                "" => return fail("it has an empty segment (`//` or a trailing `/`)"),
                "." | ".." => return fail("`.` and `..` segments are not allowed"),
                _ => {}
            }
        }
        Ok(Self(path))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form used to refuse two paths that differ only by case.
    pub fn folded(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_unsafe_paths() {
        for (bad, why) in [
            ("", "empty"),
            ("/etc/passwd", "relative"),
            ("../x", "`..`"),
            ("a/./b", "`..`"),
            ("a//b", "empty segment"),
            ("a/", "empty segment"),
            ("a\\b", "separator"),
            ("a\0b", "control"),
            ("a\nb", "control"),
        ] {
            let err = RepoPath::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
        }
        assert!(RepoPath::parse(&"a".repeat(1025)).is_err());
        assert!(RepoPath::parse(&vec!["a"; 65].join("/")).is_err());
        assert!(RepoPath::parse(&vec!["a"; 64].join("/")).is_ok());
    }

    #[test]
    fn normalises_to_nfc() {
        let decomposed = "cafe\u{301}.txt";
        assert_eq!(
            RepoPath::parse(decomposed).unwrap().as_str(),
            "caf\u{e9}.txt"
        );
    }

    proptest! {
        #[test]
        fn accepted_paths_are_safe_and_stable(raw in "\\PC{0,40}(/\\PC{0,10}){0,4}") {
            if let Ok(path) = RepoPath::parse(&raw) {
                let s = path.as_str();
                prop_assert!(!s.starts_with('/') && !s.contains('\\') && s.len() <= MAX_PATH_BYTES);
                prop_assert!(s.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."));
                prop_assert!(!s.chars().any(char::is_control));
                // Parsing is idempotent: a stored path parses to itself.
                let reparsed = RepoPath::parse(s).unwrap();
                prop_assert_eq!(reparsed.as_str(), s);
            }
        }
    }
}
