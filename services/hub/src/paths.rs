//! File paths inside a repository.
//!
//! A path is relative, `/`-separated, valid UTF-8 normalised to NFC, at most 1,024 bytes and 64
//! segments of at most 255 bytes, with no empty, `.` or `..` segment, no backslash, no control
//! character, none of Windows' forbidden characters (`<>:"|?*`), no segment that Windows reserves
//! for a device (`CON`, `nul.txt`, `COM1`…) or would silently change (a trailing `.` or space), no
//! `.git` segment (a clone would treat it as its own metadata) and no invisible text-direction
//! control (`\u{202e}exe.txt` shows as `txt.exe`). These rules keep every path safe to write to any
//! filesystem a client downloads to, and honest to read.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

pub const MAX_PATH_BYTES: usize = 1024;
pub const MAX_SEGMENTS: usize = 64;
/// The longest file name common file systems (ext4, NTFS, APFS) hold.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Characters Windows refuses in file names.
const WINDOWS_FORBIDDEN: &[char] = &['<', '>', ':', '"', '|', '?', '*'];

/// Names Windows gives to devices, whatever the extension and case.
const WINDOWS_DEVICES: &[&str] = &[
    "con",
    "prn",
    "aux",
    "nul",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "com\u{b9}",
    "com\u{b2}",
    "com\u{b3}",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
    "lpt\u{b9}",
    "lpt\u{b2}",
    "lpt\u{b3}",
];

/// Characters that change how text around them is displayed without being seen themselves.
fn invisible_control(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}' | '\u{feff}')
}

/// Why `segment` is not a safe file or folder name, if it is not.
fn unsafe_segment(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        return Some("it has an empty segment (`//` or a trailing `/`)");
    }
    if segment == "." || segment == ".." {
        return Some("`.` and `..` segments are not allowed");
    }
    if segment.len() > MAX_SEGMENT_BYTES {
        return Some("a segment is longer than 255 bytes");
    }
    if segment.ends_with('.') || segment.ends_with(' ') {
        return Some("a segment ends with `.` or a space, which Windows drops");
    }
    let lower = segment.to_lowercase();
    if lower == ".git" {
        return Some("`.git` is a git client's own folder");
    }
    let stem = lower.split('.').next().unwrap_or_default().trim_end();
    if WINDOWS_DEVICES.contains(&stem) {
        return Some("a segment is a name Windows reserves for a device (CON, NUL, COM1...)");
    }
    None
}
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
        if path.chars().any(invisible_control) {
            return fail("it contains an invisible text-direction or zero-width character");
        }
        if path.contains(WINDOWS_FORBIDDEN) {
            return fail("it contains one of `<>:\"|?*`, which Windows refuses in file names");
        }
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() > MAX_SEGMENTS {
            return fail("it has more than 64 segments");
        }
        if let Some(reason) = segments.into_iter().find_map(unsafe_segment) {
            return fail(reason);
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
            ("CON", "device"),
            ("models/nul.txt", "device"),
            ("Com1.bin", "device"),
            ("lpt\u{b9}", "device"),
            ("a:b", "Windows refuses"),
            ("what?", "Windows refuses"),
            ("trailing.", "ends with"),
            ("dir /x", "ends with"),
            ("\u{202e}exe.txt", "invisible"),
            ("a\u{200b}b", "invisible"),
            (".git/config", "`.git`"),
            ("sub/.GIT/hooks/post-checkout", "`.git`"),
        ] {
            let err = RepoPath::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
        }
        assert!(RepoPath::parse(&"a".repeat(1025)).is_err());
        assert!(RepoPath::parse(&vec!["a"; 65].join("/")).is_err());
        assert!(RepoPath::parse(&vec!["a"; 64].join("/")).is_ok());
        let long = RepoPath::parse(&"a".repeat(300)).expect_err("300-byte segment");
        assert!(long.to_string().contains("255 bytes"), "{long}");
        assert!(RepoPath::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn keeps_the_names_real_repositories_use() {
        for good in [
            ".gitattributes",
            ".gitignore",
            "console.py",
            "connector/config.json",
            "nul_model.bin",
            "onnx/model.onnx_data",
            "1_Pooling/config.json",
            "caf\u{e9}.txt",
            "\u{6a21}\u{578b}/README.md",
        ] {
            assert!(RepoPath::parse(good).is_ok(), "{good}");
        }
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
                prop_assert!(s.split('/').all(|seg| unsafe_segment(seg).is_none()));
                // Parsing is idempotent: a stored path parses to itself.
                let reparsed = RepoPath::parse(s).unwrap();
                prop_assert_eq!(reparsed.as_str(), s);
            }
        }
    }
}
