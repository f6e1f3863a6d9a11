//! Each model runs in a child process with limits on memory, CPU time and wall-clock time and no
//! network, so that a model that crashes, hangs or exhausts memory becomes a failed verification
//! with the reason, never a dead or stuck worker.
//!
//! The child is this same program started with a hidden subcommand: it applies its own limits
//! (`setrlimit`, a seccomp filter refusing non-local sockets) before it loads ONNX Runtime or
//! the model, then prints one [`ModelReport`] as JSON. The parent enforces the wall clock and,
//! because CUDA needs more address space than any memory limit, polls the resident set too.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::report::{ModelReport, Status};
use crate::runtime::Ep;
use crate::settings::VerifySettings;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: u64,
    pub cpu_seconds: u64,
    pub wall_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 4 << 30,
            cpu_seconds: 300,
            wall_seconds: 300,
        }
    }
}

/// Everything the child needs, passed as one JSON argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildRequest {
    pub model: PathBuf,
    pub display: String,
    pub ep: Ep,
    pub library: PathBuf,
    pub settings: VerifySettings,
    pub limits: Limits,
}

/// How to start the child: a program and the arguments before the request.
#[derive(Debug, Clone)]
pub struct ChildCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl ChildCommand {
    /// This executable with `subcommand`.
    pub fn current_exe(subcommand: &str) -> std::io::Result<Self> {
        Ok(ChildCommand {
            program: std::env::current_exe()?,
            args: vec![subcommand.into()],
        })
    }
}

/// Child side: applies the limits to this process. Call before loading anything.
pub fn apply_limits(limits: &Limits, ep: Ep) -> Result<(), String> {
    use rlimit::Resource;
    Resource::CORE
        .set(0, 0)
        .map_err(|e| format!("RLIMIT_CORE: {e}"))?;
    // SIGXCPU at the soft limit, SIGKILL a second later.
    Resource::CPU
        .set(limits.cpu_seconds, limits.cpu_seconds + 1)
        .map_err(|e| format!("RLIMIT_CPU: {e}"))?;
    // CUDA maps far more address space than it uses: the parent polls the resident set instead.
    if ep == Ep::Cpu {
        Resource::AS
            .set(limits.memory_bytes, limits.memory_bytes)
            .map_err(|e| format!("RLIMIT_AS: {e}"))?;
    }
    deny_network()
}

/// A seccomp filter under which `socket()` fails with EACCES for every family but local
/// (AF_UNIX) and kernel (AF_NETLINK) sockets: no model can reach the network.
fn deny_network() -> Result<(), String> {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule,
    };
    let not = |family: u64| {
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, family)
            .map_err(|e| e.to_string())
    };
    let rule = SeccompRule::new(vec![
        not(libc::AF_UNIX as u64)?,
        not(libc::AF_NETLINK as u64)?,
    ])
    .map_err(|e| e.to_string())?;
    let filter = SeccompFilter::new(
        [(libc::SYS_socket, vec![rule])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        std::env::consts::ARCH
            .try_into()
            .map_err(|e| format!("seccomp: {e:?}"))?,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    let program: BpfProgram = filter.try_into().map_err(|e| format!("seccomp: {e:?}"))?;
    seccompiler::apply_filter(&program).map_err(|e| format!("installing seccomp: {e}"))
}

/// Parent side: verifies one model in a limited child and always returns a report.
pub fn verify_isolated(command: &ChildCommand, request: &ChildRequest) -> ModelReport {
    let fallback = |reason: String| {
        ModelReport::new(
            &request.display,
            request.ep.as_str(),
            request.settings.seed(),
        )
        .fail(Status::Failed, reason)
    };
    let json = serde_json::to_string(request).expect("requests serialise");
    let mut child = match Command::new(&command.program)
        .args(&command.args)
        .arg(json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return fallback(format!("could not start the verifier process: {e}")).fail(
                Status::Error,
                format!("could not start the verifier process: {e}"),
            );
        }
    };
    let pid = child.id();
    let stdout = drain(child.stdout.take(), 64 << 20);
    let stderr = drain(child.stderr.take(), 1 << 20);
    let started = Instant::now();
    let wall = Duration::from_secs(request.limits.wall_seconds);
    let mut peak_rss = 0u64;
    let mut killed_for = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        let rss = crate::verify::proc_status_kib(&format!("/proc/{pid}/status"), "VmRSS:")
            .map(|k| k * 1024)
            .unwrap_or(0);
        peak_rss = peak_rss.max(rss);
        if rss > request.limits.memory_bytes {
            killed_for = Some(format!(
                "used more than the {} MiB memory limit",
                request.limits.memory_bytes >> 20
            ));
        } else if started.elapsed() > wall {
            killed_for = Some(format!(
                "did not finish within the {} s time limit",
                request.limits.wall_seconds
            ));
        }
        if killed_for.is_some() {
            let _ = child.kill();
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(
            if started.elapsed() < Duration::from_secs(1) {
                2
            } else {
                20
            },
        ));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if let Some(reason) = killed_for {
        let mut r = fallback(format!("the model {reason} and was stopped"));
        r.timings.peak_rss_bytes = Some(peak_rss);
        return r;
    }
    let Some(status) = status else {
        return fallback("lost track of the verifier process".into());
    };
    // The report is the last line of stdout; anything before it is the runtime's chatter.
    let report = String::from_utf8_lossy(&stdout)
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str::<ModelReport>(l).ok());
    match report {
        Some(r) if status.success() || r.status != Status::Passed => r,
        _ => {
            let mut r = fallback(describe_exit(status, &stderr, request));
            r.timings.peak_rss_bytes = Some(peak_rss);
            r
        }
    }
}

fn describe_exit(
    status: std::process::ExitStatus,
    stderr: &[u8],
    request: &ChildRequest,
) -> String {
    use std::os::unix::process::ExitStatusExt;
    let tail = String::from_utf8_lossy(stderr);
    let tail: String = tail
        .trim()
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" | ");
    let tail = if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.chars().take(600).collect::<String>())
    };
    match status.signal() {
        Some(libc::SIGXCPU) | Some(libc::SIGKILL)
            if tail.is_empty() || status.signal() == Some(libc::SIGXCPU) =>
        {
            format!(
                "the model exceeded the {} s CPU time limit and was stopped",
                request.limits.cpu_seconds
            )
        }
        Some(libc::SIGSEGV) => format!("the model crashed ONNX Runtime (SIGSEGV){tail}"),
        Some(libc::SIGABRT) if tail.contains("bad_alloc") || tail.contains("allocate") => format!(
            "the model exceeded the {} MiB memory limit{tail}",
            request.limits.memory_bytes >> 20
        ),
        Some(sig) => format!("the verifier process was killed by signal {sig}{tail}"),
        None => format!("the verifier process exited with {status}{tail}"),
    }
}

fn drain<R: Read + Send + 'static>(
    pipe: Option<R>,
    cap: usize,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(mut pipe) = pipe {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                // Keep the first `cap` bytes; keep reading so that the child never blocks.
                let room = cap.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        out
    })
}

/// Child entry point: `request_json` is the single argument after the subcommand. Prints the
/// report and returns the process exit code (0 when the report was printed).
pub fn child_main(request_json: &str) -> i32 {
    let request: ChildRequest = match serde_json::from_str(request_json) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bad verifier request: {e}");
            return 2;
        }
    };
    let report = match child_verify(&request) {
        Ok(r) => r,
        Err(e) => ModelReport::new(
            &request.display,
            request.ep.as_str(),
            request.settings.seed(),
        )
        .fail(Status::Error, e),
    };
    println!(
        "{}",
        serde_json::to_string(&report).expect("reports serialise")
    );
    0
}

fn child_verify(request: &ChildRequest) -> Result<ModelReport, String> {
    apply_limits(&request.limits, request.ep)?;
    let rt = crate::runtime::Runtime::load(&request.library)?;
    Ok(crate::verify::verify_model(
        &rt,
        &request.model,
        &request.display,
        request.ep,
        &request.settings,
    ))
}

/// The `.onnx` files under `path` (or `path` itself), sorted.
pub fn find_models(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let p = entry.path();
            if kind.is_dir() {
                stack.push(p);
            } else if kind.is_file() && p.extension().is_some_and(|e| e == "onnx") {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}
