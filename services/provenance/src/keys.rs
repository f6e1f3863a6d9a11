//! ECDSA keys as model-signing uses them: P-256/SHA-256, P-384/SHA-384, P-521/SHA-512, DER
//! signatures, and the `publicKey.hint` (sha256 of the PEM SubjectPublicKeyInfo text).

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PublicKey {
    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo) on one of the three curves.
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::P256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::P384(k));
        }
        if let Ok(k) = p521::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::P521(k));
        }
        Err(KeyError("not a PEM ECDSA public key on P-256, P-384 or P-521 (model signing supports no other keys)".into()))
    }

    /// A DER SubjectPublicKeyInfo (from a certificate).
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::P256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::P384(k));
        }
        if let Ok(k) = p521::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::P521(k));
        }
        Err(KeyError(
            "the certificate's key is not ECDSA on P-256, P-384 or P-521".into(),
        ))
    }

    pub fn curve(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "P-256",
            PublicKey::P384(_) => "P-384",
            PublicKey::P521(_) => "P-521",
        }
    }

    /// The PEM text, LF line endings, as Python's `cryptography` writes it.
    pub fn to_pem(&self) -> String {
        let pem = match self {
            PublicKey::P256(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::P384(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::P521(k) => k.to_public_key_pem(LineEnding::LF),
        };
        pem.expect("a valid key encodes")
    }

    pub fn to_der(&self) -> Vec<u8> {
        let der = match self {
            PublicKey::P256(k) => k.to_public_key_der(),
            PublicKey::P384(k) => k.to_public_key_der(),
            PublicKey::P521(k) => k.to_public_key_der(),
        };
        der.expect("a valid key encodes").as_bytes().to_vec()
    }

    /// model_signing's hint: hex sha256 of the PEM text.
    pub fn hint(&self) -> String {
        hex::encode(Sha256::digest(self.to_pem().as_bytes()))
    }

    /// The hint form sigstore uses: base64 sha256 of the DER SubjectPublicKeyInfo.
    pub fn der_hint(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(self.to_der()))
    }

    /// `sha256:<hex of the DER SubjectPublicKeyInfo digest>`, the identity reported for signers.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(self.to_der())))
    }

    /// Verifies a DER ECDSA signature over `message` with the curve's hash.
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        match self {
            PublicKey::P256(k) => p256::ecdsa::Signature::from_der(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            PublicKey::P384(k) => p384::ecdsa::Signature::from_der(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            PublicKey::P521(k) => p521::ecdsa::Signature::from_der(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
        }
    }
}

/// A signing key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY` PEM).
pub enum PrivateKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl PrivateKey {
    pub fn from_pem(pem: &str) -> Result<PrivateKey, KeyError> {
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::P256(k));
        }
        if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::P384(k));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
            return Ok(PrivateKey::P256(k.into()));
        }
        if let Ok(k) = p384::SecretKey::from_sec1_pem(pem) {
            return Ok(PrivateKey::P384(k.into()));
        }
        Err(KeyError(
            "not a PEM ECDSA private key on P-256 or P-384 (PKCS#8 or SEC1)".into(),
        ))
    }

    /// A P-256 key from 32 secret bytes (for keys generated by the caller's RNG).
    pub fn p256_from_bytes(secret: &[u8; 32]) -> Result<PrivateKey, KeyError> {
        p256::ecdsa::SigningKey::from_slice(secret)
            .map(PrivateKey::P256)
            .map_err(|_| KeyError("not a valid P-256 scalar".into()))
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::P384(k) => PublicKey::P384(*k.verifying_key()),
        }
    }

    /// A deterministic (RFC 6979) DER signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        match self {
            PrivateKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
            PrivateKey::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
        }
    }

    /// PKCS#8 PEM, for storing a generated key.
    pub fn to_pkcs8_pem(&self) -> String {
        use p256::pkcs8::EncodePrivateKey;
        let pem = match self {
            PrivateKey::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
            PrivateKey::P384(k) => k.to_pkcs8_pem(LineEnding::LF),
        };
        pem.expect("a valid key encodes").to_string()
    }
}
