//! `kaiyuan sign DIR --key PRIV.pem` and `kaiyuan sign verify DIR --key PUB.pem |
//! --certificate-chain CA.pem`: OpenSSF model signing without Python, with the code the hub
//! verifies pushes with. Verify exits 0 when verified, 1 otherwise, 2 on usage errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use kaiyuan_provenance::bundle;
use kaiyuan_provenance::keys::{PrivateKey, PublicKey};
use kaiyuan_provenance::manifest::{self, GIT_PATHS};
use kaiyuan_provenance::verify::{Status, Trust, Verification, verify};

/// The signature's default name, inside the model folder.
pub const DEFAULT_SIGNATURE: &str = "model.sig";

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SignArgs {
    #[command(subcommand)]
    pub command: Option<SignCommand>,
    /// The model folder to sign.
    #[arg(required = true)]
    pub dir: Option<PathBuf>,
    /// PEM ECDSA private key (P-256 or P-384; PKCS#8 or SEC1).
    #[arg(long, required = true)]
    pub key: Option<PathBuf>,
    /// Where to write the bundle (default: DIR/model.sig).
    #[arg(long)]
    pub signature: Option<PathBuf>,
    /// Sign as a certificate holder: the leaf certificate (PEM) for the key...
    #[arg(long, requires = "certificate_chain")]
    pub certificate: Option<PathBuf>,
    /// ...and the issuing chain up to the root (PEM, one or more certificates).
    #[arg(long)]
    pub certificate_chain: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum SignCommand {
    /// Verify a model folder against its signature.
    Verify(VerifyArgs),
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    pub dir: PathBuf,
    /// PEM public key of the signer.
    #[arg(
        long,
        conflicts_with = "certificate_chain",
        required_unless_present = "certificate_chain"
    )]
    pub key: Option<PathBuf>,
    /// PEM trust anchors for certificate-signed bundles.
    #[arg(long)]
    pub certificate_chain: Option<PathBuf>,
    /// The bundle (default: DIR/model.sig).
    #[arg(long)]
    pub signature: Option<PathBuf>,
    /// One JSON object instead of the readable report.
    #[arg(long)]
    pub json: bool,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The signature's path relative to the model folder, when it lies inside it.
fn inside(dir: &Path, signature: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let parent = std::fs::canonicalize(
        signature
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .ok()?;
    let rel = parent
        .join(signature.file_name()?)
        .strip_prefix(&dir)
        .ok()?
        .to_str()?
        .replace('\\', "/");
    Some(rel)
}

fn sign(args: &SignArgs) -> Result<PathBuf, String> {
    let dir = args.dir.as_ref().ok_or("a model folder is required")?;
    let key = PrivateKey::from_pem(&read(args.key.as_ref().ok_or("--key is required")?)?)
        .map_err(|e| e.0)?;
    let signature = args
        .signature
        .clone()
        .unwrap_or_else(|| dir.join(DEFAULT_SIGNATURE));
    let also: Vec<String> = inside(dir, &signature).into_iter().collect();
    let mut ignored: Vec<String> = GIT_PATHS.iter().map(|s| s.to_string()).collect();
    ignored.extend(also.iter().cloned());
    let files = manifest::from_dir(dir, &ignored).map_err(|e| e.0)?;
    let name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let statement = bundle::statement(&name, &files, &also, None);
    let chain = match (&args.certificate, &args.certificate_chain) {
        (Some(leaf), Some(chain)) => {
            let mut certs = kaiyuan_provenance::cert::certificates_from_pem(&read(leaf)?)?;
            certs.extend(kaiyuan_provenance::cert::certificates_from_pem(&read(
                chain,
            )?)?);
            Some(certs)
        }
        _ => None,
    };
    let bytes = bundle::sign(&statement, &key, chain.as_deref());
    std::fs::write(&signature, bytes).map_err(|e| format!("{}: {e}", signature.display()))?;
    Ok(signature)
}

fn check(args: &VerifyArgs) -> Result<Verification, String> {
    let signature = args
        .signature
        .clone()
        .unwrap_or_else(|| args.dir.join(DEFAULT_SIGNATURE));
    let bytes = std::fs::read(&signature).map_err(|e| format!("{}: {e}", signature.display()))?;
    let mut trust = Trust::default();
    if let Some(k) = &args.key {
        let key = PublicKey::from_pem(&read(k)?).map_err(|e| format!("{}: {e}", k.display()))?;
        trust.keys.push((k.display().to_string(), key));
    }
    if let Some(c) = &args.certificate_chain {
        trust.anchors = kaiyuan_provenance::cert::certificates_from_pem(&read(c)?)?;
    }
    let mut ignored: Vec<String> = GIT_PATHS.iter().map(|s| s.to_string()).collect();
    ignored.extend(inside(&args.dir, &signature));
    let files = manifest::from_dir(&args.dir, &ignored).map_err(|e| e.0)?;
    Ok(verify(&bytes, &files, &trust))
}

/// Runs `kaiyuan sign ...`; returns the exit code.
pub fn run(args: &SignArgs) -> u8 {
    match &args.command {
        Some(SignCommand::Verify(v)) => match check(v) {
            Ok(result) => {
                let mut out = std::io::stdout().lock();
                if v.json {
                    let _ = writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(&result).expect("serialises")
                    );
                } else {
                    let who = result
                        .signer
                        .as_ref()
                        .map(|s| format!(" by {} ({}, {})", s.identity, s.fingerprint, s.curve))
                        .unwrap_or_default();
                    let _ = writeln!(out, "{}{who}", result.status.as_str());
                    if let Some(reason) = &result.reason {
                        let _ = writeln!(out, "  {reason}");
                    }
                }
                if result.status == Status::Verified {
                    0
                } else {
                    1
                }
            }
            Err(e) => {
                eprintln!("kaiyuan sign verify: {e}");
                2
            }
        },
        None => match sign(args) {
            Ok(path) => {
                println!("signed: {}", path.display());
                0
            }
            Err(e) => {
                eprintln!("kaiyuan sign: {e}");
                2
            }
        },
    }
}
