//! Signed tree heads as C2SP checkpoints (`<origin>\n<size>\n<base64 root>\n`) in Ed25519
//! signed notes (`— <name> base64(key id || signature)`), key id = SHA-256(name || 0x0A ||
//! 0x01 || public key)[:4].

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

const ALG_ED25519: u8 = 0x01;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0a, ALG_ED25519]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The note verifier key string: `<name>+<hex key id>+<base64(0x01 || public key)>`.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    let mut raw = vec![ALG_ED25519];
    raw.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, key)),
        STANDARD.encode(raw)
    )
}

/// Parses a verifier key string into (name, key).
pub fn parse_verifier_key(s: &str) -> Result<(String, VerifyingKey), String> {
    let mut parts = s.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a verifier key is <name>+<key id>+<base64 key>".into());
    };
    let raw = STANDARD
        .decode(key)
        .map_err(|_| "the verifier key is not base64")?;
    if raw.len() != 33 || raw[0] != ALG_ED25519 {
        return Err("only Ed25519 verifier keys are supported".into());
    }
    let key = VerifyingKey::from_bytes(raw[1..].try_into().expect("32 bytes"))
        .map_err(|e| format!("verifier key: {e}"))?;
    if hex::encode(key_id(name, &key)) != id {
        return Err("the verifier key's id does not match its name and key".into());
    }
    Ok((name.to_string(), key))
}

impl Checkpoint {
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// The signed note.
    pub fn sign(&self, name: &str, key: &SigningKey) -> String {
        let body = self.body();
        let sig = key.sign(body.as_bytes());
        let mut blob = key_id(name, &key.verifying_key()).to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        format!("{body}\n\u{2014} {name} {}\n", STANDARD.encode(blob))
    }

    /// Checks a signed note against a verifier key and parses its checkpoint. Signatures
    /// from other keys (witness cosignatures) are ignored, as the note format requires.
    pub fn verify(note: &str, name: &str, key: &VerifyingKey) -> Result<Checkpoint, String> {
        let (body, sigs) = note
            .split_once("\n\n")
            .ok_or("not a signed note: no blank line before the signatures")?;
        let body = format!("{body}\n");
        let id = key_id(name, key);
        let mut verified = false;
        for line in sigs.lines().filter(|l| !l.is_empty()) {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or("a signature line must start with an em dash")?;
            let (signer, blob) = rest
                .split_once(' ')
                .ok_or("a signature line is `— <name> <base64>`")?;
            let blob = STANDARD
                .decode(blob)
                .map_err(|_| "a signature is not base64")?;
            if signer != name || blob.len() != 68 || blob[..4] != id {
                continue;
            }
            let sig = ed25519_dalek::Signature::from_bytes(blob[4..].try_into().expect("64 bytes"));
            if key.verify(body.as_bytes(), &sig).is_err() {
                return Err("the checkpoint's signature does not verify".into());
            }
            verified = true;
        }
        if !verified {
            return Err(format!("the checkpoint carries no signature by {name}"));
        }
        let mut lines = body.lines();
        let origin = lines
            .next()
            .ok_or("the checkpoint has no origin")?
            .to_string();
        let size = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or("the checkpoint's size is not a number")?;
        let root = lines
            .next()
            .and_then(|l| STANDARD.decode(l).ok())
            .and_then(|r| <Hash>::try_from(r).ok())
            .ok_or("the checkpoint's root is not 32 bytes of base64")?;
        Ok(Checkpoint { origin, size, root })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_notes_round_trip_and_reject_changes() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let cp = Checkpoint {
            origin: "kaiyuan.example/log".into(),
            size: 7,
            root: [9u8; 32],
        };
        let note = cp.sign("kaiyuan.example/log", &key);
        assert!(note.starts_with("kaiyuan.example/log\n7\n"));
        let vk = key.verifying_key();
        assert_eq!(
            Checkpoint::verify(&note, "kaiyuan.example/log", &vk).unwrap(),
            cp
        );
        let forged = note.replacen("\n7\n", "\n8\n", 1);
        assert!(Checkpoint::verify(&forged, "kaiyuan.example/log", &vk).is_err());
        let other = SigningKey::from_bytes(&[4u8; 32]).verifying_key();
        assert!(Checkpoint::verify(&note, "kaiyuan.example/log", &other).is_err());
        let (name, parsed) = parse_verifier_key(&verifier_key("kaiyuan.example/log", &vk)).unwrap();
        assert_eq!((name.as_str(), parsed), ("kaiyuan.example/log", vk));
    }

    /// Go's sumdb/note known answer: the note "If you think cryptography is the answer to
    /// your problem,\nthen you don't know what your problem is.\n" signed by PeterNeumann.
    #[test]
    fn go_note_key_ids_match() {
        let (name, key) = parse_verifier_key(
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        )
        .unwrap();
        assert_eq!(name, "PeterNeumann");
        let note = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let (body, _) = note.split_once("\n\n").unwrap();
        let blob = STANDARD.decode("x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=").unwrap();
        let sig = ed25519_dalek::Signature::from_bytes(blob[4..].try_into().unwrap());
        key.verify(format!("{body}\n").as_bytes(), &sig).unwrap();
    }
}
