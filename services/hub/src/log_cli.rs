//! `kaiyuan log verify`: checks a checkpoint of the hub's transparency log, an entry's
//! inclusion and the consistency with an older checkpoint, offline, against the log's key.
//! Exit code 0 when every check passes, 1 when one fails, 2 on usage errors.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kaiyuan_provenance::checkpoint::{Checkpoint, parse_verifier_key};
use kaiyuan_provenance::merkle::{self, Hash};

#[derive(clap::Args, Debug)]
pub struct LogVerifyArgs {
    /// The log's verifier key (`name+id+key`, as served at /.well-known/kaiyuan/log-key), or a
    /// file holding it.
    #[arg(long)]
    pub key: String,
    /// A signed checkpoint (GET /api/v1/log/checkpoint).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// An entry's body, the raw bytes (base64-decoded `body` of GET /api/v1/log/entries).
    #[arg(long, requires = "inclusion")]
    pub entry: Option<PathBuf>,
    /// Its inclusion proof (the JSON of GET /api/v1/log/proof/inclusion).
    #[arg(long, requires = "entry")]
    pub inclusion: Option<PathBuf>,
    /// An older signed checkpoint...
    #[arg(long, requires = "consistency")]
    pub old_checkpoint: Option<PathBuf>,
    /// ...and the consistency proof from it (GET /api/v1/log/proof/consistency).
    #[arg(long, requires = "old_checkpoint")]
    pub consistency: Option<PathBuf>,
}

fn read(p: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn hashes(proof: &serde_json::Value) -> Result<Vec<Hash>, String> {
    proof["hashes"]
        .as_array()
        .ok_or("the proof has no `hashes`")?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|s| STANDARD.decode(s).ok())
                .and_then(|b| Hash::try_from(b).ok())
                .ok_or_else(|| "a proof hash is not 32 bytes of base64".to_string())
        })
        .collect()
}

/// Runs the checks, printing one line each; Err is a usage problem.
fn checks(args: &LogVerifyArgs) -> Result<bool, String> {
    let key_text = if std::path::Path::new(&args.key).is_file() {
        read(&PathBuf::from(&args.key))?
    } else {
        args.key.clone()
    };
    let (name, key) = parse_verifier_key(&key_text)?;
    let mut ok = true;
    let cp = match Checkpoint::verify(&read(&args.checkpoint)?, &name, &key) {
        Ok(cp) => {
            println!(
                "checkpoint: ok ({} entries, root {})",
                cp.size,
                hex::encode(cp.root)
            );
            cp
        }
        Err(e) => {
            println!("checkpoint: FAILED ({e})");
            return Ok(false);
        }
    };
    if let (Some(entry), Some(proof)) = (&args.entry, &args.inclusion) {
        let body = std::fs::read(entry).map_err(|e| format!("{}: {e}", entry.display()))?;
        let proof: serde_json::Value =
            serde_json::from_str(&read(proof)?).map_err(|e| format!("inclusion proof: {e}"))?;
        let index = proof["index"]
            .as_u64()
            .ok_or("the inclusion proof has no index")?;
        let size = proof["tree_size"]
            .as_u64()
            .ok_or("the inclusion proof has no tree_size")?;
        let passed = size == cp.size
            && merkle::verify_inclusion(
                index,
                size,
                &merkle::leaf_hash(&body),
                &hashes(&proof)?,
                &cp.root,
            );
        println!(
            "inclusion: {} (entry {index} in {size})",
            if passed { "ok" } else { "FAILED" }
        );
        ok &= passed;
    }
    if let (Some(old), Some(proof)) = (&args.old_checkpoint, &args.consistency) {
        let old = match Checkpoint::verify(&read(old)?, &name, &key) {
            Ok(c) => c,
            Err(e) => {
                println!("consistency: FAILED (old checkpoint: {e})");
                return Ok(false);
            }
        };
        let proof: serde_json::Value =
            serde_json::from_str(&read(proof)?).map_err(|e| format!("consistency proof: {e}"))?;
        let passed = proof["first"].as_u64() == Some(old.size)
            && proof["second"].as_u64() == Some(cp.size)
            && merkle::verify_consistency(old.size, cp.size, &old.root, &cp.root, &hashes(&proof)?);
        println!(
            "consistency: {} ({} -> {})",
            if passed { "ok" } else { "FAILED" },
            old.size,
            cp.size
        );
        ok &= passed;
    }
    Ok(ok)
}

pub fn run(args: &LogVerifyArgs) -> u8 {
    match checks(args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("kaiyuan log verify: {e}");
            2
        }
    }
}
