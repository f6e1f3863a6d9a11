//! Vocabularies that the migrations constrain with `CHECK (... IN (...))`, as Rust enums that
//! decode straight from their `TEXT` columns and serialise as the same words.

use serde::{Deserialize, Serialize};

/// Who may see a repository: everyone, or members of its namespace (and hub admins).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::Type, Serialize, Deserialize, utoipa::ToSchema,
)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    #[default]
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    /// The word a client sent, if it is one.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

impl std::fmt::Display for Visibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
