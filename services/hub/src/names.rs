//! Names of namespaces, repositories and refs: parsed once, valid forever after.

use std::fmt;

/// Path words the hub's own URLs use; a namespace or repository may not take them.
const RESERVED: &[&str] = &[
    "admin",
    "api",
    "assets",
    "datasets",
    "docs",
    "healthz",
    "login",
    "logout",
    "metrics",
    "models",
    "new",
    "organizations",
    "orgs",
    "readyz",
    "reports",
    "resolve",
    "reviews",
    "search",
    "settings",
    "sign-in",
    "sign-out",
    "signup",
    "spaces",
    "static",
    "tree",
    "blob",
    "commit",
    "commits",
    "users",
    "well-known",
];

/// Why a name was refused, phrased for the person who typed it.
#[derive(Debug, thiserror::Error)]
#[error("`{name}` is not a valid {what} name: {reason}")]
pub struct NameError {
    pub name: String,
    pub what: &'static str,
    pub reason: &'static str,
}

/// Why `name` breaks the alphabet every name shares, if it does: 1–96 characters of ASCII
/// letters, digits, `-`, `_` and `.` (so that it fits in one URL segment).
fn alphabet_error(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 96 {
        return Some("use 1 to 96 characters");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !name.bytes().all(allowed) {
        return Some("use only letters, digits, `-`, `_` and `.`");
    }
    None
}

/// The shared rule for namespace and repository names: 1–96 characters of ASCII letters, digits,
/// `-`, `_` and `.`, not starting with `.` or `-`, without `..`, and not a reserved word.
fn check_name(name: &str, what: &'static str) -> Result<(), NameError> {
    let fail = |reason| {
        Err(NameError {
            name: name.chars().take(100).collect(),
            what,
            reason,
        })
    };
    if let Some(reason) = alphabet_error(name) {
        return fail(reason);
    }
    if name.starts_with('.') || name.starts_with('-') {
        return fail("do not start with `.` or `-`");
    }
    if name.contains("..") {
        return fail("do not use `..`");
    }
    if name.ends_with(".git") {
        return fail("do not end with `.git`");
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return fail("this word is reserved by the hub");
    }
    Ok(())
}

macro_rules! name_type {
    ($ty:ident, $what:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $ty(String);

        impl $ty {
            pub fn parse(name: &str) -> Result<Self, NameError> {
                check_name(name, $what)?;
                Ok(Self(name.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(NamespaceName, "namespace");
name_type!(RepoName, "repository");

/// A branch or tag name: the repository-name alphabet (so it fits in one URL segment), and never
/// 40 hexadecimal characters, which would read as a commit id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefName(String);

impl RefName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let fail = |reason| {
            Err(NameError {
                name: name.chars().take(100).collect(),
                what: "branch or tag",
                reason,
            })
        };
        if let Some(reason) = alphabet_error(name) {
            return fail(reason);
        }
        if name.starts_with('.') || name.starts_with('-') || name.contains("..") {
            return fail("do not start with `.` or `-` and do not use `..`");
        }
        if crate::commit_id::is_commit_id(name) {
            return fail("40 hexadecimal characters would be read as a commit id");
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_typical_model_names() {
        for ok in [
            "Llama-3.1-8B",
            "qwen2.5_coder",
            "a",
            "DeepSeek-R1",
            &"x".repeat(96),
        ] {
            assert!(RepoName::parse(ok).is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn refuses_bad_names_with_a_reason() {
        let cases = [
            ("", "use 1 to 96"),
            (".hidden", "do not start"),
            ("-dash", "do not start"),
            ("a..b", "`..`"),
            ("with space", "only letters"),
            ("slash/name", "only letters"),
            ("ünïcode", "only letters"),
            ("api", "reserved"),
            ("Settings", "reserved"),
            ("reviews", "reserved"),
            ("sign-in", "reserved"),
            ("repo.git", ".git"),
        ];
        for (name, reason) in cases {
            let err = RepoName::parse(name).expect_err(name);
            assert!(err.to_string().contains(reason), "{name}: {err}");
        }
        assert!(RepoName::parse(&"x".repeat(97)).is_err());
    }

    #[test]
    fn ref_names_cannot_look_like_commit_ids() {
        assert!(RefName::parse(&"a".repeat(40)).is_err());
        assert!(RefName::parse(&"a".repeat(39)).is_ok());
        assert!(RefName::parse("v1.0").is_ok());
    }

    proptest! {
        #[test]
        fn any_accepted_name_obeys_every_rule(name in "\\PC{0,100}") {
            if let Ok(parsed) = RepoName::parse(&name) {
                let s = parsed.as_str();
                prop_assert!((1..=96).contains(&s.len()));
                prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
                prop_assert!(!s.starts_with('.') && !s.starts_with('-'));
                prop_assert!(!s.contains(".."));
            }
        }

        #[test]
        fn names_from_the_alphabet_are_accepted(name in "[A-Za-z0-9][A-Za-z0-9_-]{0,95}") {
            prop_assume!(!RESERVED.contains(&name.to_ascii_lowercase().as_str()));
            prop_assert!(RepoName::parse(&name).is_ok());
        }
    }
}
