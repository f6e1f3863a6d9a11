//! Commit ids: derived from the commit's content, 40 lowercase hexadecimal characters.
//!
//! The id is the first 20 bytes (hex) of the sha256 of this canonical encoding (UTF-8, `\n`
//! line ends; documented in docs/COMMIT_ID.md):
//!
//! ```text
//! kaiyuan-commit-v1
//! parent <40-hex or empty>
//! author <author namespace name>
//! time <RFC 3339 UTC time with microseconds, e.g. 2026-11-30T12:00:00.000001Z>
//! message <byte length>
//! <message bytes>
//! file <sha256 hex> <size> <path>      (one line per file, sorted by path bytes)
//! ```
//!
//! Paths cannot contain control characters, so a file line is unambiguous; the message is
//! length-prefixed for the same reason.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// One file of a commit snapshot, as it enters the id.
pub struct FileEntry<'a> {
    pub path: &'a str,
    pub sha256_hex: &'a str,
    pub size: u64,
}

/// Computes a commit id. `files` may come in any order.
pub fn compute(
    parent: Option<&str>,
    author: &str,
    time: DateTime<Utc>,
    message: &str,
    files: &mut [FileEntry<'_>],
) -> String {
    files.sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut hasher = Sha256::new();
    hasher.update(b"kaiyuan-commit-v1\n");
    hasher.update(format!("parent {}\n", parent.unwrap_or("")));
    hasher.update(format!("author {author}\n"));
    hasher.update(format!("time {}\n", time.format("%Y-%m-%dT%H:%M:%S%.6fZ")));
    hasher.update(format!("message {}\n", message.len()));
    hasher.update(message.as_bytes());
    hasher.update(b"\n");
    for file in files.iter() {
        hasher.update(format!(
            "file {} {} {}\n",
            file.sha256_hex, file.size, file.path
        ));
    }
    hex::encode(&hasher.finalize()[..20])
}

/// A commit id as stored: 40 lowercase hexadecimal characters. It decodes straight from a
/// `TEXT` column (anything else is a decoding error) and reads as its text everywhere else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct CommitId(String);

impl CommitId {
    /// The id, if `s` has the shape of one.
    pub fn parse(s: &str) -> Option<Self> {
        is_commit_id(s).then(|| CommitId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for CommitId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CommitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<CommitId> for String {
    fn from(id: CommitId) -> String {
        id.0
    }
}

impl PartialEq<str> for CommitId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CommitId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for CommitId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl sqlx::Type<sqlx::Postgres> for CommitId {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for CommitId {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        CommitId::parse(text).ok_or_else(|| format!("`{text}` is not a commit id").into())
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for CommitId {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
    }
}

/// Whether `s` has the shape of a commit id.
pub fn is_commit_id(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Commit times are kept to the microsecond, PostgreSQL's precision, so that an id recomputed
/// from stored rows matches.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_ids_are_40_lowercase_hex_characters_only() {
        let id = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(CommitId::parse(id).unwrap(), id);
        assert_eq!(CommitId::parse(id).unwrap().to_string(), id);
        for bad in ["", "main", &id[..39], &format!("{id}8"), &id.to_uppercase()] {
            assert!(CommitId::parse(bad).is_none(), "{bad:?} is not a commit id");
        }
    }

    fn time() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T12:00:00.000001Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn matches_the_documented_encoding() {
        let a = "a".repeat(64);
        let mut files = [
            FileEntry {
                path: "z.bin",
                sha256_hex: &a,
                size: 3,
            },
            FileEntry {
                path: "README.md",
                sha256_hex: &a,
                size: 1,
            },
        ];
        let id = compute(None, "alice", time(), "hi", &mut files);
        let text = format!(
            "kaiyuan-commit-v1\nparent \nauthor alice\ntime 2026-11-30T12:00:00.000001Z\nmessage 2\nhi\nfile {a} 1 README.md\nfile {a} 3 z.bin\n"
        );
        let expected = hex::encode(&Sha256::digest(text.as_bytes())[..20]);
        assert_eq!(id, expected);
        assert!(is_commit_id(&id));
    }

    #[test]
    fn order_of_files_does_not_matter_but_content_does() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        // The id of a commit of `files` (path, digest), each of one byte.
        let id_of = |files: [(&'static str, &str); 2]| {
            let mut entries = files.map(|(path, sha256_hex)| FileEntry {
                path,
                sha256_hex,
                size: 1,
            });
            compute(None, "u", time(), "m", &mut entries)
        };
        let one = id_of([("x", &a), ("y", &b)]);
        let two = id_of([("y", &b), ("x", &a)]);
        let three = id_of([("y", &a), ("x", &b)]);
        assert_eq!(one, two);
        assert_ne!(one, three);
    }
}
