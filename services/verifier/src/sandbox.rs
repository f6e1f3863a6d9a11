//! Each model runs in a child process with limits on memory, CPU time and wall-clock time and no
//! network, so that a model that crashes, hangs or exhausts memory becomes a failed verification
//! with the reason, never a dead or stuck worker.
//!
//! The child is this same program started with a hidden subcommand: it applies its own limits
//! (`setrlimit`, a seccomp filter refusing non-local sockets) before it loads ONNX Runtime or
//! any model, loads ONNX Runtime once, then verifies the models it is sent one per line and
//! answers each with one [`ModelReport`] line. The parent enforces each model's wall-clock and
//! CPU time and, because CUDA maps more address space than any memory limit, polls the resident
//! set too.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
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

/// How a verifier child is set up: passed as its one argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildConfig {
    pub ep: Ep,
    pub library: PathBuf,
    /// Limits per model; the parent enforces them model by model.
    pub limits: Limits,
    /// How many models the child may be given: its own CPU-time backstop is this many limits.
    pub models: u64,
}

/// One model for the child, as a line of JSON on its standard input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRequest {
    pub model: PathBuf,
    pub display: String,
    pub settings: VerifySettings,
}

/// How to start the child: a program and the arguments before the configuration.
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

/// Parent side: verifies models one after another in a limited child process that loads ONNX
/// Runtime once. A model that crashes the child, or that a limit stops, gets a failed report
/// with the reason; the next model gets a fresh child.
pub struct Verifier {
    command: ChildCommand,
    config: ChildConfig,
    child: Option<Running>,
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// Clock ticks per second in `/proc/<pid>/stat` (USER_HZ: 100 on every Linux ABI).
const TICKS_PER_SECOND: u64 = 100;

impl Verifier {
    pub fn new(command: ChildCommand, config: ChildConfig) -> Self {
        Verifier {
            command,
            config,
            child: None,
        }
    }

    fn spawn(&self) -> std::io::Result<Running> {
        let json = serde_json::to_string(&self.config).expect("configs serialise");
        let mut child = Command::new(&self.command.program)
            .args(&self.command.args)
            .arg(json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                // Keep the last 64 KiB: its end says why a child died.
                let mut tail = sink.lock().unwrap_or_else(|e| e.into_inner());
                tail.extend_from_slice(&buf[..n]);
                let excess = tail.len().saturating_sub(64 << 10);
                tail.drain(..excess);
            }
        });
        Ok(Running {
            child,
            stdin,
            lines,
            stderr,
        })
    }

    /// Verifies one model; always returns a report.
    pub fn verify(&mut self, request: &ModelRequest) -> ModelReport {
        let limits = self.config.limits;
        let report = |status: Status, reason: String| {
            ModelReport::new(
                &request.display,
                self.config.ep.as_str(),
                request.settings.seed(),
            )
            .fail(status, reason)
        };
        if self.child.is_none() {
            match self.spawn() {
                Ok(r) => self.child = Some(r),
                Err(e) => {
                    return report(
                        Status::Error,
                        format!("could not start the verifier process: {e}"),
                    );
                }
            }
        }
        let running = self.child.as_mut().expect("spawned above");
        let pid = running.child.id();
        let line = serde_json::to_string(request).expect("requests serialise");
        let sent = writeln!(running.stdin, "{line}").and_then(|_| running.stdin.flush());
        let cpu_at_start = cpu_ticks(pid);
        let started = Instant::now();
        let mut peak_rss = 0u64;
        let mut stopped_for = None;
        if sent.is_ok() {
            loop {
                let wait = if started.elapsed() < Duration::from_secs(1) {
                    2
                } else {
                    20
                };
                match running.lines.recv_timeout(Duration::from_millis(wait)) {
                    Ok(line) => match serde_json::from_str::<ModelReport>(&line) {
                        Ok(done) => return done,
                        Err(_) => continue, // the runtime's own chatter
                    },
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {}
                }
                let rss = crate::verify::proc_status_kib(&format!("/proc/{pid}/status"), "VmRSS:")
                    .map(|k| k * 1024)
                    .unwrap_or(0);
                peak_rss = peak_rss.max(rss);
                let cpu = cpu_ticks(pid).saturating_sub(cpu_at_start) / TICKS_PER_SECOND;
                if rss > limits.memory_bytes {
                    stopped_for = Some(format!(
                        "used more than the {} MiB memory limit",
                        limits.memory_bytes >> 20
                    ));
                } else if cpu >= limits.cpu_seconds {
                    stopped_for = Some(format!(
                        "exceeded the {} s CPU time limit",
                        limits.cpu_seconds
                    ));
                } else if started.elapsed() > Duration::from_secs(limits.wall_seconds) {
                    stopped_for = Some(format!(
                        "did not finish within the {} s time limit",
                        limits.wall_seconds
                    ));
                }
                if stopped_for.is_some() {
                    let _ = running.child.kill();
                    break;
                }
            }
        }
        // The child is gone or stopped: say why; the next model gets a fresh child.
        let mut gone = self.child.take().expect("running");
        let status = gone.child.wait().ok();
        let tail = gone.stderr.lock().map(|t| t.clone()).unwrap_or_default();
        let reason = match (stopped_for, status) {
            (Some(why), _) => format!("the model {why} and was stopped"),
            (None, Some(status)) => describe_exit(status, &tail, &limits),
            (None, None) => "lost track of the verifier process".into(),
        };
        let mut failed = report(Status::Failed, reason);
        failed.timings.peak_rss_bytes = Some(peak_rss);
        failed
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        if let Some(mut running) = self.child.take() {
            drop(running.stdin); // end of input: the child exits after its current model
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                if let Ok(Some(_)) = running.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // After the parenthesised command name (which may hold spaces), utime and stime are the
    // 12th and 13th fields.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

fn describe_exit(status: std::process::ExitStatus, stderr: &[u8], limits: &Limits) -> String {
    use std::os::unix::process::ExitStatusExt;
    let text = String::from_utf8_lossy(stderr);
    let last: Vec<&str> = text.trim().lines().rev().take(3).collect();
    let tail: String = last.into_iter().rev().collect::<Vec<_>>().join(" | ");
    let tail = if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.chars().take(600).collect::<String>())
    };
    match status.signal() {
        Some(libc::SIGXCPU) => format!(
            "the model exceeded the {} s CPU time limit and was stopped",
            limits.cpu_seconds
        ),
        Some(libc::SIGSEGV) => format!("the model crashed ONNX Runtime (SIGSEGV){tail}"),
        Some(libc::SIGABRT) if tail.contains("bad_alloc") || tail.contains("allocate") => format!(
            "the model exceeded the {} MiB memory limit{tail}",
            limits.memory_bytes >> 20
        ),
        Some(sig) => format!("the verifier process was killed by signal {sig}{tail}"),
        None => format!("the verifier process exited with {status}{tail}"),
    }
}

/// Child entry point: `config_json` is the one argument after the subcommand; requests come one
/// per line on standard input and each report goes out as one line. Returns the exit code.
pub fn child_main(config_json: &str) -> i32 {
    let config: ChildConfig = match serde_json::from_str(config_json) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bad verifier configuration: {e}");
            return 2;
        }
    };
    // The parent stops a model at its CPU limit; this is the backstop should the parent die.
    let mut backstop = config.limits;
    backstop.cpu_seconds = config
        .limits
        .cpu_seconds
        .saturating_mul(config.models.max(1))
        .saturating_add(5);
    let runtime = apply_limits(&backstop, config.ep)
        .and_then(|()| crate::runtime::Runtime::load(&config.library));
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let request: ModelRequest = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("bad verifier request: {e}");
                return 2;
            }
        };
        // Peak RSS per model: reset the high-water mark (`clear_refs` 5, Linux 4.0+).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let report = match &runtime {
            Ok(rt) => crate::verify::verify_model(
                rt,
                &request.model,
                &request.display,
                config.ep,
                &request.settings,
            ),
            Err(e) => ModelReport::new(
                &request.display,
                config.ep.as_str(),
                request.settings.seed(),
            )
            .fail(Status::Error, e.clone()),
        };
        let mut out = stdout.lock();
        let json = serde_json::to_string(&report).expect("reports serialise");
        if writeln!(out, "{json}").and_then(|_| out.flush()).is_err() {
            return 0;
        }
    }
    0
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
