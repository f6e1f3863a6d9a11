//! `kaiyuan sign` against the real OpenSSF `model_signing` tool (1.1.1, from PyPI): each side
//! verifies what the other signed, and both reject tampering. Needs KAIYUAN_TEST_PYTHON (the
//! test venv, set by scripts/test.sh).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kaiyuan_provenance::keys::PrivateKey;

fn kaiyuan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaiyuan"))
        .args(args)
        .output()
        .unwrap()
}

fn model_signing(args: &[&str]) -> Output {
    let python = std::env::var("KAIYUAN_TEST_PYTHON")
        .expect("KAIYUAN_TEST_PYTHON is not set: run the suite through scripts/test.sh");
    let tool = Path::new(&python).parent().unwrap().join("model_signing");
    Command::new(tool).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A model folder whose names exercise the tool's segment-wise path order.
fn model(root: &Path) -> PathBuf {
    let dir = root.join("tiny-model");
    fs::create_dir_all(dir.join("tokenizer")).unwrap();
    fs::write(dir.join("tokenizer/vocab.txt"), b"a b c\n").unwrap();
    fs::write(dir.join("tokenizer.json"), b"{\"v\": 1}\n").unwrap();
    fs::write(dir.join("config.json"), b"{}\n").unwrap();
    fs::write(dir.join("empty.bin"), b"").unwrap();
    fs::write(dir.join("weights.bin"), vec![5u8; 100_000]).unwrap();
    fs::write(dir.join(".gitattributes"), b"*.bin filter=lfs\n").unwrap();
    dir
}

/// A fresh P-256 key pair as PEM files.
fn keys(root: &Path) -> (PathBuf, PathBuf) {
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&sha2_digest(root.to_string_lossy().as_bytes()));
    let key = PrivateKey::p256_from_bytes(&secret).unwrap();
    let (private, public) = (root.join("key.pem"), root.join("key.pub"));
    fs::write(&private, key.to_pkcs8_pem()).unwrap();
    fs::write(&public, key.public_key().to_pem()).unwrap();
    (private, public)
}

/// `model_signing verify key` of the folder `d` with the public key `p` and a signature file.
fn tool_verify(d: &str, p: &str, signature: &str) -> Output {
    model_signing(&[
        "verify",
        "key",
        d,
        "--signature",
        signature,
        "--public_key",
        p,
    ])
}

/// `kaiyuan sign verify --json` of the folder `d` with the public key `p` and a signature file.
fn verify_json(d: &str, p: &str, signature: &str) -> Output {
    kaiyuan(&[
        "sign",
        "verify",
        d,
        "--key",
        p,
        "--signature",
        signature,
        "--json",
    ])
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// A model folder and a key pair in a temporary directory.
struct Fixture {
    root: tempfile::TempDir,
    dir: PathBuf,
    private: PathBuf,
    public: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let dir = model(root.path());
        let (private, public) = keys(root.path());
        Fixture {
            root,
            dir,
            private,
            public,
        }
    }

    fn dir_str(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    fn private_str(&self) -> &str {
        self.private.to_str().unwrap()
    }

    fn public_str(&self) -> &str {
        self.public.to_str().unwrap()
    }
}

#[test]
fn the_tool_verifies_our_signatures_and_we_verify_its() {
    let f = Fixture::new();
    let (root, dir) = (&f.root, &f.dir);
    let (d, k, p) = (f.dir_str(), f.private_str(), f.public_str());
    let ours = root.path().join("ours.sig");
    let theirs = root.path().join("theirs.sig");

    // Ours, checked by the tool.
    let out = kaiyuan(&["sign", d, "--key", k, "--signature", ours.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = tool_verify(d, p, ours.to_str().unwrap());
    assert!(
        out.status.success(),
        "model_signing rejected our bundle: {}",
        text(&out)
    );

    // Theirs, checked by us.
    let out = model_signing(&[
        "sign",
        "key",
        d,
        "--private_key",
        k,
        "--signature",
        theirs.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = verify_json(d, p, theirs.to_str().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "verified");

    // Both roots are the same digest: the same manifest, in the same order.
    let root_of = |sig: &Path| {
        let out = verify_json(d, p, sig.to_str().unwrap());
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["root_digest"].clone()
    };
    assert_eq!(root_of(&ours), root_of(&theirs));

    // A changed byte fails on both sides.
    fs::write(dir.join("weights.bin"), vec![6u8; 100_000]).unwrap();
    let out = tool_verify(d, p, ours.to_str().unwrap());
    assert!(!out.status.success(), "the tool accepted a tampered model");
    let out = verify_json(d, p, theirs.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["modified"], serde_json::json!(["weights.bin"]));
}

#[test]
fn a_signature_inside_the_folder_is_left_out_of_the_manifest() {
    let f = Fixture::new();
    let dir = &f.dir;
    let (d, k, p) = (f.dir_str(), f.private_str(), f.public_str());
    let out = kaiyuan(&["sign", d, "--key", k]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join("model.sig").exists());
    let out = kaiyuan(&["sign", "verify", d, "--key", p]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = tool_verify(d, p, dir.join("model.sig").to_str().unwrap());
    assert!(out.status.success(), "{}", text(&out));
    // Usage errors exit 2.
    assert_eq!(kaiyuan(&["sign", "verify", d]).status.code(), Some(2));
    assert_eq!(
        kaiyuan(&["sign", "verify", d, "--key", "/nope.pem"])
            .status
            .code(),
        Some(2)
    );
}
