//! Hostile inputs never panic: bundles, statements, notes, verifier keys and PEM.

use kaiyuan_provenance::bundle;
use kaiyuan_provenance::checkpoint::{Checkpoint, parse_verifier_key};
use kaiyuan_provenance::keys::{PrivateKey, PublicKey};
use kaiyuan_provenance::manifest::Resource;
use kaiyuan_provenance::verify::{Trust, verify};
use proptest::prelude::*;

fn files() -> Vec<Resource> {
    vec![
        Resource {
            name: "a.bin".into(),
            digest: [1; 32],
        },
        Resource {
            name: "dir/b.bin".into(),
            digest: [2; 32],
        },
    ]
}

fn trust() -> (Trust, PrivateKey) {
    let key = PrivateKey::p256_from_bytes(&[7; 32]).unwrap();
    (
        Trust {
            keys: vec![("k".into(), key.public_key())],
            anchors: vec![],
        },
        key,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_invalid_bundles(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (trust, _) = trust();
        let v = verify(&bytes, &files(), &trust);
        prop_assert_ne!(v.status, kaiyuan_provenance::verify::Status::Verified);
    }

    #[test]
    fn mutated_statements_never_verify(cut in 0usize..400, byte in any::<u8>()) {
        let (trust, key) = trust();
        let good = bundle::sign(&bundle::statement("m", &files(), &[], None), &key, None);
        let mut doc: serde_json::Value = serde_json::from_slice(&good).unwrap();
        let mut payload = bundle::decode_b64(doc["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
        let i = cut % payload.len();
        prop_assume!(payload[i] != byte);
        payload[i] = byte;
        use base64::Engine;
        doc["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD.encode(&payload).into();
        let v = verify(&serde_json::to_vec(&doc).unwrap(), &files(), &trust);
        prop_assert_eq!(v.status, kaiyuan_provenance::verify::Status::Invalid);
    }

    #[test]
    fn notes_keys_and_pem_parse_or_fail_cleanly(text in "[ -~\\n\u{2014}]{0,300}") {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
        let _ = Checkpoint::verify(&text, "kaiyuan/log", &key);
        let _ = parse_verifier_key(&text);
        let _ = PublicKey::from_pem(&text);
        let _ = PrivateKey::from_pem(&text);
        let _ = kaiyuan_provenance::cert::certificates_from_pem(&text);
    }
}

#[test]
fn the_signed_statement_verifies_unmutated() {
    let (trust, key) = trust();
    let good = bundle::sign(&bundle::statement("m", &files(), &[], None), &key, None);
    assert_eq!(
        verify(&good, &files(), &trust).status,
        kaiyuan_provenance::verify::Status::Verified
    );
}
