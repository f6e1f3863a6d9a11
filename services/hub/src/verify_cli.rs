//! `kaiyuan verify PATH`: sample-inference verification of a local model file or folder without
//! a server, each model in a limited child process like the hub's workers run it. Exit code 0
//! when every model passed, 1 when any failed or could not be verified, 3 when none failed but
//! some were inconclusive (no realistic input ran: ship test vectors or set the dims), 2 on usage
//! errors.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use kaiyuan_verifier::sandbox::{self, ChildCommand, ChildConfig, Limits, ModelRequest, Verifier};
use kaiyuan_verifier::{Ep, ModelReport, Status, VerifySettings, runtime, settings};

/// The hidden subcommand a child verifier process runs.
pub const CHILD_SUBCOMMAND: &str = "verify-model";

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// An `.onnx` file, or a folder searched recursively for them.
    pub path: PathBuf,
    /// Execution provider: cpu, cuda, or auto (CUDA when it initialises, else the CPU).
    #[arg(long, default_value = "cpu", value_parser = Ep::parse)]
    pub ep: Ep,
    /// One JSON object per model instead of the readable report.
    #[arg(long)]
    pub json: bool,
    /// The ONNX Runtime shared library (`ORT_DYLIB_PATH` overrides it).
    #[arg(long)]
    pub onnxruntime: Option<PathBuf>,
    /// Seed of the generated smoke-run inputs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Timed runs for the p50/p95 latency.
    #[arg(long)]
    pub runs: Option<u32>,
    /// A value for a symbolic dimension, `NAME=VALUE` (repeatable).
    #[arg(long = "dim", value_parser = parse_dim)]
    pub dims: Vec<(String, i64)>,
    /// Memory limit of each model's process, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub memory_mib: u64,
    /// Wall-clock and CPU-time limit of each model's process, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

fn parse_dim(s: &str) -> Result<(String, i64), String> {
    let (name, value) = s.split_once('=').ok_or("expected NAME=VALUE")?;
    let value = value
        .parse()
        .map_err(|_| format!("`{value}` is not an integer"))?;
    Ok((name.to_string(), value))
}

/// The settings for `args`: the folder's model card block, then the flags.
fn settings_for(args: &VerifyArgs) -> Result<VerifySettings, String> {
    let card = if args.path.is_dir() {
        args.path.join("README.md")
    } else {
        args.path.with_file_name("README.md")
    };
    let mut s = match std::fs::read_to_string(&card) {
        Ok(text) => settings::from_card(&text)?.unwrap_or_default(),
        Err(_) => VerifySettings::default(),
    };
    s.seed = args.seed.or(s.seed);
    s.runs = args.runs.or(s.runs);
    let dims: BTreeMap<String, i64> = args.dims.iter().cloned().collect();
    s.dims.extend(dims);
    s.validate()?;
    Ok(s)
}

pub fn run(args: &VerifyArgs) -> u8 {
    let usage = |msg: String| {
        eprintln!("kaiyuan verify: {msg}");
        2
    };
    let settings = match settings_for(args) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let models = match sandbox::find_models(&args.path) {
        Ok(m) if m.is_empty() => {
            return usage(format!("no .onnx files under {}", args.path.display()));
        }
        Ok(m) => m,
        Err(e) => return usage(format!("{}: {e}", args.path.display())),
    };
    let library = runtime::library_path(args.onnxruntime.as_deref(), args.ep);
    if !library.exists() {
        return usage(format!(
            "ONNX Runtime library {} not found: run scripts/install-deps.sh, or set ORT_DYLIB_PATH",
            library.display()
        ));
    }
    let command = match ChildCommand::current_exe(CHILD_SUBCOMMAND) {
        Ok(c) => c,
        Err(e) => return usage(format!("locating this program: {e}")),
    };
    let limits = Limits {
        memory_bytes: args.memory_mib << 20,
        cpu_seconds: args.timeout_secs,
        wall_seconds: args.timeout_secs,
    };
    let base = if args.path.is_dir() {
        args.path.clone()
    } else {
        args.path.parent().map(PathBuf::from).unwrap_or_default()
    };
    let config = ChildConfig {
        ep: args.ep,
        library,
        limits,
        models: models.len() as u64,
    };
    let mut verifier = Verifier::new(command, config);
    let mut statuses = Vec::new();
    let stdout = std::io::stdout();
    for model in models {
        let display = model
            .strip_prefix(&base)
            .unwrap_or(&model)
            .to_string_lossy()
            .into_owned();
        let request = ModelRequest {
            model: model.clone(),
            display,
            settings: settings.clone(),
        };
        let report = verifier.verify(&request);
        statuses.push(report.status);
        let mut out = stdout.lock();
        let written = if args.json {
            writeln!(
                out,
                "{}",
                serde_json::to_string(&report).expect("reports serialise")
            )
        } else {
            write!(out, "{}", readable(&report))
        };
        if written.is_err() {
            return 2;
        }
    }
    exit_code(&statuses)
}

fn exit_code(statuses: &[Status]) -> u8 {
    if statuses
        .iter()
        .any(|s| matches!(s, Status::Failed | Status::Error))
    {
        1
    } else if statuses.contains(&Status::Inconclusive) {
        3
    } else {
        0
    }
}

fn readable(r: &ModelReport) -> String {
    let mut s = format!("{:<12} {}", r.status.as_str(), r.path);
    if let Some(p) = &r.provider {
        s.push_str(&format!(
            "  [{p}, ONNX Runtime {}]",
            r.onnxruntime_version.as_deref().unwrap_or("?")
        ));
    }
    if let (Some(p50), Some(p95)) = (r.timings.p50_ms, r.timings.p95_ms) {
        s.push_str(&format!(
            "  load {:.1} ms, p50 {p50:.3} ms, p95 {p95:.3} ms",
            r.timings.session_create_ms
        ));
    }
    s.push('\n');
    if let Some(reason) = &r.reason {
        s.push_str(&format!("        {reason}\n"));
    }
    if let Some(f) = &r.provider_fallback {
        s.push_str(&format!("        ran on the CPU: {f}\n"));
    }
    for set in &r.test_vectors {
        if let Some(e) = &set.error {
            s.push_str(&format!("        {}: {e}\n", set.name));
        }
        for o in set.outputs.iter().filter(|o| !o.passed) {
            s.push_str(&format!(
                "        {} output `{}`: {} of {} elements differ (max abs {:e}, max rel {:e}, first at {:?}: expected {}, got {}){}\n",
                set.name,
                o.name,
                o.mismatched,
                o.elements,
                o.max_abs_error,
                o.max_rel_error,
                o.first_mismatch_index.clone().unwrap_or_default(),
                o.expected_value.as_deref().unwrap_or("-"),
                o.actual_value.as_deref().unwrap_or("-"),
                o.reason.as_deref().map(|r| format!("; {r}")).unwrap_or_default(),
            ));
        }
    }
    if r.deterministic == Some(false) {
        s.push_str("        not deterministic: two runs on the same inputs differed\n");
    }
    s
}
