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

/// A vocabulary of words stored in a `TEXT` column that a `CHECK` constrains: an enum that
/// encodes and decodes as those words (a word the enum lacks is a decoding error, not a silent
/// default), serialises to JSON as the same word, and appears in the OpenAPI document as an
/// enumeration.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            /// The word a client sent, if it is one.
            pub fn parse(word: &str) -> Option<Self> {
                match word {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        // Written by hand: the derive would name the variants, not the words.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($word),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let word = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                $name::parse(word).ok_or_else(|| format!("`{word}` is not a {}", stringify!($name)).into())
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }
    };
}

vocabulary! {
    /// Whether downloads of a repository's files need an access request first, and who grants it.
    Gated { None = "none", Auto = "auto", Manual = "manual" }
}

vocabulary! {
    /// What a namespace is.
    NamespaceKind { User = "user", Org = "org" }
}

vocabulary! {
    /// What a ref is.
    RefKind { Branch = "branch", Tag = "tag" }
}

vocabulary! {
    /// Where a security report stands.
    ReportStatus {
        Open = "open",
        NeedsInfo = "needs-info",
        Confirmed = "confirmed",
        Dismissed = "dismissed",
        Published = "published",
    }
}

vocabulary! {
    /// What a security report is about.
    ReportCategory {
        MaliciousCode = "malicious-code",
        Backdoor = "backdoor",
        LicenseViolation = "license-violation",
        LeakedData = "leaked-data",
        UnsafeFormat = "unsafe-format",
        Other = "other",
    }
}

vocabulary! {
    /// An advisory's severity.
    Severity { Low = "low", Medium = "medium", High = "high", Critical = "critical" }
}

vocabulary! {
    /// Where a request for access to a gated repository stands.
    AccessStatus { Pending = "pending", Accepted = "accepted", Rejected = "rejected" }
}

vocabulary! {
    /// Where a commit's sample-inference verification stands (`passed` to `error`: its worst
    /// model's result; `inconclusive`: it loads, but nothing realistic ran).
    VerificationStatus {
        Pending = "pending",
        Running = "running",
        Passed = "passed",
        Inconclusive = "inconclusive",
        Failed = "failed",
        Error = "error",
    }
}

vocabulary! {
    /// A namespace's trusted signer: a public key, or a CA certificate (an anchor).
    KeyKind { Key = "key", Anchor = "anchor" }
}

vocabulary! {
    /// Where a background job stands.
    JobState { Queued = "queued", Running = "running", Succeeded = "succeeded", Failed = "failed" }
}

vocabulary! {
    /// The scanner's verdict on a blob (the `verdict` of `scan_results`).
    ScanVerdict {
        Clean = "clean",
        Suspicious = "suspicious",
        Error = "error",
        Malformed = "malformed",
        Malicious = "malicious",
    }
}

vocabulary! {
    /// A stored licence evaluation's decision for commercial use.
    LicenseDecision {
        Allow = "allow",
        AllowWithObligations = "allow_with_obligations",
        FlagReview = "flag_review",
        Deny = "deny",
    }
}

vocabulary! {
    /// A revision's publisher-signature status.
    SignatureStatus {
        Verified = "verified", Invalid = "invalid", Unsigned = "unsigned",
        UnverifiableOffline = "unverifiable-offline",
    }
}

vocabulary! {
    /// Where a webhook delivery stands.
    DeliveryState { Pending = "pending", Delivered = "delivered", Failed = "failed" }
}
