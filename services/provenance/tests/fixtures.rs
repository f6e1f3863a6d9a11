//! The bundles of `tests/corpus/provenance` (the project's provenance corpus, made by the
//! real `model_signing` 1.1.1 and by independent signers) give their expected results, and tampering is caught.

use std::fs;
use std::path::{Path, PathBuf};

use kaiyuan_provenance::bundle;
use kaiyuan_provenance::keys::{PrivateKey, PublicKey};
use kaiyuan_provenance::manifest::{self, GIT_PATHS, Resource};
use kaiyuan_provenance::verify::{Status, Trust, verify};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/provenance")
}

fn git() -> Vec<String> {
    GIT_PATHS.iter().map(|s| s.to_string()).collect()
}

fn files(dir: &Path) -> Vec<Resource> {
    manifest::from_dir(dir, &git()).unwrap()
}

fn key(name: &str) -> PublicKey {
    PublicKey::from_pem(&fs::read_to_string(corpus().join("keys").join(name)).unwrap()).unwrap()
}

fn trust_keys(names: &[&str]) -> Trust {
    Trust {
        keys: names.iter().map(|n| (n.to_string(), key(n))).collect(),
        anchors: vec![],
    }
}

fn bundle_bytes(name: &str) -> Vec<u8> {
    fs::read(corpus().join(name)).unwrap()
}

const TOOL_ROOT: &str = "cf19bd0c48d0a8d7128e68a8f4d6944ef2ff2891dd0b8a540b0a1738a99bb4c9";

#[test]
fn manifests_follow_the_tools_path_order() {
    let f = files(&corpus().join("model"));
    let names: Vec<&str> = f.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "README.md",
            "config.json",
            "empty.bin",
            "model.safetensors",
            "tokenizer/vocab.txt",
            "tokenizer.json"
        ]
    );
    assert_eq!(hex::encode(manifest::root_digest(&f)), TOOL_ROOT);
    // The hint is the sha256 of the PEM file as openssl wrote it.
    assert!(key("p256.pub.pem").hint().starts_with("7cdb9474"));
}

#[test]
fn tool_made_bundles_verify_with_their_keys() {
    let model = files(&corpus().join("model"));
    for (bundle_name, key_name) in [
        ("model.p256.sig.json", "p256.pub.pem"),
        ("model.p384.sig.json", "p384.pub.pem"),
        ("model.p256.rustlike.sig.json", "p256.pub.pem"),
        ("model.p256.rust-signed.sig.json", "p256.pub.pem"),
    ] {
        let v = verify(
            &bundle_bytes(bundle_name),
            &model,
            &trust_keys(&["p256.pub.pem", "p384.pub.pem"]),
        );
        assert_eq!(v.status, Status::Verified, "{bundle_name}: {v:?}");
        let signer = v.signer.unwrap();
        assert_eq!(signer.identity, key_name, "{bundle_name}");
        assert_eq!(signer.fingerprint, key(key_name).fingerprint());
    }
    // The byte-order ("rustlike") bundle signs another root for the same files.
    let v = verify(
        &bundle_bytes("model.p256.sig.json"),
        &model,
        &trust_keys(&["p256.pub.pem"]),
    );
    assert_eq!(v.root_digest.as_deref(), Some(TOOL_ROOT));
    let v = verify(
        &bundle_bytes("model.p256.rustlike.sig.json"),
        &model,
        &trust_keys(&["p256.pub.pem"]),
    );
    assert!(v.root_digest.unwrap().starts_with("a1a08b41"));
}

#[test]
fn certificate_bundles_verify_against_the_anchor_only() {
    let model = files(&corpus().join("model"));
    let ca = kaiyuan_provenance::cert::certificates_from_pem(
        &fs::read_to_string(corpus().join("keys/ca.cert.pem")).unwrap(),
    )
    .unwrap();
    let trust = Trust {
        keys: vec![],
        anchors: ca,
    };
    for name in ["model.cert.sig.json", "model.cert.rustlike.sig.json"] {
        let v = verify(&bundle_bytes(name), &model, &trust);
        assert_eq!(v.status, Status::Verified, "{name}: {v:?}");
        let signer = v.signer.unwrap();
        assert_eq!(signer.kind, "certificate");
        assert!(!signer.identity.is_empty());
    }
    // Without that anchor (the leaf itself is no anchor for its chain), nothing verifies.
    let v = verify(
        &bundle_bytes("model.cert.sig.json"),
        &model,
        &Trust::default(),
    );
    assert_eq!(v.status, Status::Invalid);
    assert!(v.reason.unwrap().contains("trust anchors"));
}

#[test]
fn wrong_keys_and_unsupported_serialisations_are_invalid_with_reasons() {
    let model = files(&corpus().join("model"));
    let v = verify(
        &bundle_bytes("model.p256.sig.json"),
        &model,
        &trust_keys(&["p384.pub.pem"]),
    );
    assert_eq!(v.status, Status::Invalid);
    assert!(v.reason.unwrap().starts_with("unknown key"));
    let v = verify(
        &bundle_bytes("model.p256.sig.json"),
        &model,
        &Trust::default(),
    );
    assert!(v.reason.unwrap().contains("no public keys are registered"));
    for name in [
        "model.p256.blake3.sig.json",
        "model.p256.shards1MiB.sig.json",
    ] {
        let v = verify(&bundle_bytes(name), &model, &trust_keys(&["p256.pub.pem"]));
        assert_eq!(v.status, Status::Invalid, "{name}");
        assert!(v.reason.unwrap().contains("not supported"), "{name}");
    }
    let v = verify(b"{\"mediaType\": 3}", &model, &Trust::default());
    assert!(v.reason.unwrap().starts_with("not a model-signing bundle"));
}

/// A writable copy of the fixture model.
fn copy_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy(&corpus().join("model"), dir.path());
    dir
}

fn copy(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            fs::create_dir(&target).unwrap();
            copy(&e.path(), &target);
        } else {
            fs::write(&target, fs::read(e.path()).unwrap()).unwrap();
        }
    }
}

#[test]
fn tampering_is_reported_file_by_file() {
    let trust = trust_keys(&["p256.pub.pem"]);
    let sig = bundle_bytes("model.p256.sig.json");
    let check = |change: &dyn Fn(&Path)| {
        let dir = copy_model();
        change(dir.path());
        verify(&sig, &files(dir.path()), &trust)
    };
    let v = check(&|d| {
        let mut bytes = fs::read(d.join("model.safetensors")).unwrap();
        bytes[1_000_000] ^= 1;
        fs::write(d.join("model.safetensors"), bytes).unwrap();
    });
    assert_eq!(
        (v.status, v.modified.clone()),
        (Status::Invalid, vec!["model.safetensors".to_string()])
    );
    let v = check(&|d| fs::write(d.join("extra.bin"), b"x").unwrap());
    assert_eq!(v.extra, ["extra.bin"]);
    let v = check(&|d| fs::remove_file(d.join("config.json")).unwrap());
    assert_eq!(v.missing, ["config.json"]);
    let v = check(&|d| fs::rename(d.join("tokenizer.json"), d.join("tokenizer2.json")).unwrap());
    assert_eq!(
        (v.missing.clone(), v.extra.clone()),
        (
            vec!["tokenizer.json".to_string()],
            vec!["tokenizer2.json".to_string()]
        )
    );
    let v = check(&|d| fs::write(d.join("empty.bin"), b"now full").unwrap());
    assert_eq!(v.modified, ["empty.bin"]);
    // Git metadata is outside the signature, as in the tool.
    let v = check(&|d| fs::write(d.join(".gitattributes"), b"changed").unwrap());
    assert_eq!(v.status, Status::Verified);
    // An edited payload under the same signature.
    let mut doc: serde_json::Value = serde_json::from_slice(&sig).unwrap();
    let payload = bundle::decode_b64(doc["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
    let edited = String::from_utf8(payload)
        .unwrap()
        .replace("9bac455a", "9bac455b");
    use base64::Engine;
    doc["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
        .encode(edited)
        .into();
    let v = verify(
        &serde_json::to_vec(&doc).unwrap(),
        &files(&corpus().join("model")),
        &trust,
    );
    assert_eq!(v.status, Status::Invalid);
    assert!(v.reason.unwrap().contains("bad signature"));
}

#[test]
fn our_bundles_verify_and_carry_the_tools_root() {
    let model = files(&corpus().join("model"));
    let key = PrivateKey::p256_from_bytes(&[42u8; 32]).unwrap();
    let statement = bundle::statement(
        "model",
        &model,
        &[],
        Some(("kaiyuan", serde_json::json!({"scan": "clean"}))),
    );
    let bytes = bundle::sign(&statement, &key, None);
    let trust = Trust {
        keys: vec![("ours".into(), key.public_key())],
        anchors: vec![],
    };
    let v = verify(&bytes, &model, &trust);
    assert_eq!(v.status, Status::Verified, "{v:?}");
    assert_eq!(v.root_digest.as_deref(), Some(TOOL_ROOT));
    // Exactly the keys the strict Python reader allows.
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let mut keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["dsseEnvelope", "mediaType", "verificationMaterial"]);
}

#[test]
fn sigstore_keyless_bundles_are_unverifiable_offline_with_what_is_needed() {
    let model = files(&corpus().join("model"));
    let mut doc: serde_json::Value =
        serde_json::from_slice(&bundle_bytes("model.p256.sig.json")).unwrap();
    doc["verificationMaterial"] = serde_json::json!({"certificate": {"rawBytes": "MIIB"}, "tlogEntries": [{"logIndex": "1"}]});
    let v = verify(
        &serde_json::to_vec(&doc).unwrap(),
        &model,
        &trust_keys(&["p256.pub.pem"]),
    );
    assert_eq!(v.status, Status::UnverifiableOffline);
    let reason = v.reason.unwrap();
    assert!(
        reason.contains("trusted root") && reason.contains("identity"),
        "{reason}"
    );
}
