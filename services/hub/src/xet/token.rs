//! CAS access tokens: what the hub's `xet-{read|write}-token` route hands out and the CAS routes
//! accept. Stateless and signed with the hub's URL-signing key (domain-separated), so that every
//! replica checks them without a database round trip; short-lived, scoped to one repository and
//! to read or write.

use crate::hmac::{constant_time_eq, hmac_sha256_hex as hmac};

const PREFIX: &str = "xet_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasToken {
    pub repository_id: i64,
    pub write: bool,
    /// Who asked for it (none for an anonymous reader of a public repository).
    pub user_id: Option<i64>,
    /// Unix seconds.
    pub expires: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    Expired,
}

impl CasToken {
    fn claims(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.repository_id,
            if self.write { "w" } else { "r" },
            self.user_id.map(|u| u.to_string()).unwrap_or_default(),
            self.expires
        )
    }

    pub fn encode(&self, key: &[u8]) -> String {
        let claims = self.claims();
        let sig = hmac(key, format!("xet-cas\n{claims}").as_bytes());
        format!("{PREFIX}{claims}.{sig}")
    }

    pub fn decode(token: &str, key: &[u8], now: i64) -> Result<Self, TokenError> {
        let body = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
        let (claims, sig) = body.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let expected = hmac(key, format!("xet-cas\n{claims}").as_bytes());
        if !constant_time_eq(expected.as_bytes(), sig.as_bytes()) {
            return Err(TokenError::Malformed);
        }
        let parts: Vec<&str> = claims.split('.').collect();
        let [repo, scope, user, expires] = parts.as_slice() else {
            return Err(TokenError::Malformed);
        };
        let token = Self {
            repository_id: repo.parse().map_err(|_| TokenError::Malformed)?,
            write: match *scope {
                "w" => true,
                "r" => false,
                _ => return Err(TokenError::Malformed),
            },
            user_id: match *user {
                "" => None,
                u => Some(u.parse().map_err(|_| TokenError::Malformed)?),
            },
            expires: expires.parse().map_err(|_| TokenError::Malformed)?,
        };
        if now >= token.expires {
            return Err(TokenError::Expired);
        }
        Ok(token)
    }
}

/// A signed, short-lived URL query for one byte range of one xorb: what the reconstruction
/// answer hands out and the fetch route checks (the client sends no token there).
pub fn fetch_signature(key: &[u8], xorb: &str, start: u64, end: u64, expires: i64) -> String {
    hmac(
        key,
        format!("xet-fetch\n{xorb}\n{start}\n{end}\n{expires}").as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering_and_expiry() {
        let key = b"k".repeat(32);
        let token = CasToken {
            repository_id: 7,
            write: false,
            user_id: None,
            expires: 100,
        };
        let encoded = token.encode(&key);
        assert_eq!(CasToken::decode(&encoded, &key, 99), Ok(token));
        assert_eq!(
            CasToken::decode(&encoded, &key, 100),
            Err(TokenError::Expired)
        );
        let widened = encoded.replacen(".r.", ".w.", 1);
        assert_eq!(
            CasToken::decode(&widened, &key, 99),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            CasToken::decode(&encoded, &b"x".repeat(32), 99),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            CasToken::decode("hf_abc", &key, 0),
            Err(TokenError::Malformed)
        );
    }
}
