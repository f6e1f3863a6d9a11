//! The sha256 digest that addresses every blob.

use std::fmt;
use std::str::FromStr;

/// A sha256 digest. Parsed only from exactly 64 hexadecimal characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a sha256 digest: expected 64 hexadecimal characters")]
pub struct Sha256ParseError(pub String);

impl Sha256Digest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hexadecimal form, as used in keys, ETags and the API.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for Sha256Digest {
    type Err = Sha256ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        if s.len() != 64 || hex::decode_to_slice(s, &mut bytes).is_err() {
            let shown: String = s.chars().take(80).collect();
            return Err(Sha256ParseError(shown));
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

/// A digest reads as its 32 bytes wherever bytes are wanted (SQL parameters, hex, manifests).
impl std::ops::Deref for Sha256Digest {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Sha256Digest {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A digest kept in a `BYTEA` column decodes straight from its row: any length but 32 bytes is
/// a decoding error, never a digest.
#[cfg(feature = "sqlx")]
mod sql {
    use super::Sha256Digest;
    use sqlx::error::BoxDynError;
    use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
    use sqlx::{Decode, Encode, Postgres, Type};

    impl Type<Postgres> for Sha256Digest {
        fn type_info() -> PgTypeInfo {
            <&[u8] as Type<Postgres>>::type_info()
        }

        fn compatible(ty: &PgTypeInfo) -> bool {
            <&[u8] as Type<Postgres>>::compatible(ty)
        }
    }

    impl<'r> Decode<'r, Postgres> for Sha256Digest {
        fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
            let bytes = <&[u8] as Decode<Postgres>>::decode(value)?;
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| format!("a sha256 digest has 32 bytes, not {}", bytes.len()))?;
            Ok(Sha256Digest(bytes))
        }
    }

    impl Encode<'_, Postgres> for Sha256Digest {
        fn encode_by_ref(
            &self,
            buf: &mut PgArgumentBuffer,
        ) -> Result<sqlx::encode::IsNull, BoxDynError> {
            <&[u8] as Encode<Postgres>>::encode(self.0.as_slice(), buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_reads_as_its_32_bytes() {
        let digest = Sha256Digest::from_bytes([7; 32]);
        assert_eq!(&digest[..], &[7u8; 32][..]);
        assert_eq!(hex::encode(digest), "07".repeat(32));
    }

    #[test]
    fn parses_only_64_hex_characters() {
        let hex = "ab".repeat(32);
        assert_eq!(hex.parse::<Sha256Digest>().unwrap().to_hex(), hex);
        assert_eq!(
            hex.to_uppercase().parse::<Sha256Digest>().unwrap().to_hex(),
            hex,
            "uppercase hex is accepted and normalised"
        );
        for bad in ["", "ab", &"ab".repeat(33), &"zz".repeat(32)] {
            assert!(
                bad.parse::<Sha256Digest>().is_err(),
                "{bad:?} must be refused"
            );
        }
    }
}
