//! `kaiyuan log verify` on files as the API serves them: a checkpoint, an entry with its
//! inclusion proof, and a consistency proof from an older checkpoint.

use std::fs;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kaiyuan_provenance::checkpoint::{Checkpoint, verifier_key};
use kaiyuan_provenance::merkle;

#[test]
fn checkpoints_inclusion_and_consistency_verify_offline() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    let key = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let bodies: Vec<Vec<u8>> = (0..7)
        .map(|i| format!("{{\"kind\":\"publish\",\"n\":{i}}}").into_bytes())
        .collect();
    let leaves: Vec<_> = bodies.iter().map(|b| merkle::leaf_hash(b)).collect();
    let cp = |n: usize| {
        Checkpoint {
            origin: "kaiyuan/log".into(),
            size: n as u64,
            root: merkle::root(&leaves[..n]),
        }
        .sign("kaiyuan/log", &key)
    };
    fs::write(path("new.cp"), cp(7)).unwrap();
    fs::write(path("old.cp"), cp(4)).unwrap();
    fs::write(
        path("key"),
        verifier_key("kaiyuan/log", &key.verifying_key()),
    )
    .unwrap();
    fs::write(path("entry"), &bodies[5]).unwrap();
    let b64 = |hs: Vec<merkle::Hash>| hs.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>();
    fs::write(path("inclusion.json"), serde_json::json!({"index": 5, "tree_size": 7, "hashes": b64(merkle::inclusion_proof(5, &leaves))}).to_string()).unwrap();
    fs::write(path("consistency.json"), serde_json::json!({"first": 4, "second": 7, "hashes": b64(merkle::consistency_proof(4, &leaves))}).to_string()).unwrap();

    let run = |extra: &[&str]| {
        let mut args = vec![
            "log",
            "verify",
            "--key",
            path("key").to_str().unwrap().to_string().leak(),
            "--checkpoint",
            path("new.cp").to_str().unwrap().to_string().leak(),
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_kaiyuan"))
            .args(&args)
            .output()
            .unwrap()
    };
    let (entry, inclusion, old, consistency) = (
        path("entry"),
        path("inclusion.json"),
        path("old.cp"),
        path("consistency.json"),
    );
    let full = [
        "--entry",
        entry.to_str().unwrap(),
        "--inclusion",
        inclusion.to_str().unwrap(),
        "--old-checkpoint",
        old.to_str().unwrap(),
        "--consistency",
        consistency.to_str().unwrap(),
    ];
    let out = run(&full);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("checkpoint: ok (7 entries")
            && text.contains("inclusion: ok")
            && text.contains("consistency: ok (4 -> 7)"),
        "{text}"
    );

    // A changed entry, a checkpoint signed by another key, a rewritten old head: all exit 1.
    fs::write(path("entry"), b"{\"kind\":\"publish\",\"n\":55}").unwrap();
    assert_eq!(run(&full).status.code(), Some(1));
    fs::write(path("entry"), &bodies[5]).unwrap();
    let other = ed25519_dalek::SigningKey::from_bytes(&[6u8; 32]);
    fs::write(
        path("old.cp"),
        Checkpoint {
            origin: "kaiyuan/log".into(),
            size: 4,
            root: merkle::root(&leaves[..4]),
        }
        .sign("kaiyuan/log", &other),
    )
    .unwrap();
    assert_eq!(run(&full).status.code(), Some(1));
    let mut rewritten = leaves.clone();
    rewritten[1] = merkle::leaf_hash(b"rewritten");
    fs::write(
        path("old.cp"),
        Checkpoint {
            origin: "kaiyuan/log".into(),
            size: 4,
            root: merkle::root(&rewritten[..4]),
        }
        .sign("kaiyuan/log", &key),
    )
    .unwrap();
    let out = run(&full);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("consistency: FAILED"));
    // Usage errors exit 2.
    let out = Command::new(env!("CARGO_BIN_EXE_kaiyuan"))
        .args([
            "log",
            "verify",
            "--key",
            "nonsense",
            "--checkpoint",
            path("new.cp").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
