//! The parent side of the child-process isolation, with stand-in children that crash, hang,
//! grow, or answer: every outcome is a report, and a crashed child is replaced.

use std::path::PathBuf;

use kaiyuan_verifier::sandbox::{ChildCommand, ChildConfig, Limits, ModelRequest, Verifier};
use kaiyuan_verifier::{Ep, ModelReport, Status, VerifySettings};

fn shell(script: &str) -> ChildCommand {
    // The configuration JSON arrives as $1; requests on standard input.
    ChildCommand {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into(), "child".into()],
    }
}

fn verifier(script: &str, limits: Limits) -> Verifier {
    let config = ChildConfig {
        ep: Ep::Cpu,
        library: PathBuf::from("/nonexistent"),
        limits,
        models: 3,
    };
    Verifier::new(shell(script), config)
}

fn request(name: &str) -> ModelRequest {
    ModelRequest {
        model: PathBuf::from(name),
        display: name.to_string(),
        settings: VerifySettings::default(),
    }
}

fn limits(memory_mib: u64, seconds: u64) -> Limits {
    Limits {
        memory_bytes: memory_mib << 20,
        cpu_seconds: seconds,
        wall_seconds: seconds,
    }
}

#[test]
fn a_crash_is_a_failed_report_and_the_next_model_gets_a_fresh_child() {
    let mut ok = ModelReport::new("good.onnx", "cpu", 1);
    ok.status = Status::Passed;
    let line = serde_json::to_string(&ok).unwrap();
    let script = format!(
        "while read -r line; do case \"$line\" in *crash*) kill -SEGV $$;; *) echo 'runtime chatter'; printf '%s\\n' '{line}';; esac; done"
    );
    let mut v = verifier(&script, limits(1024, 10));
    let first = v.verify(&request("good.onnx"));
    assert_eq!(first.status, Status::Passed, "{first:?}");
    let crashed = v.verify(&request("crash.onnx"));
    assert_eq!(crashed.status, Status::Failed);
    assert!(
        crashed.reason.as_deref().unwrap().contains("SIGSEGV"),
        "{crashed:?}"
    );
    assert_eq!(crashed.path, "crash.onnx");
    let after = v.verify(&request("good.onnx"));
    assert_eq!(
        after.status,
        Status::Passed,
        "a fresh child answers: {after:?}"
    );
}

#[test]
fn a_hang_is_stopped_at_the_wall_clock_limit() {
    let mut v = verifier("read -r line; sleep 30", limits(1024, 1));
    let started = std::time::Instant::now();
    let r = v.verify(&request("hang.onnx"));
    assert!(started.elapsed().as_secs() < 10);
    assert_eq!(r.status, Status::Failed);
    let reason = r.reason.unwrap();
    assert!(
        reason.contains("1 s time limit") && reason.contains("stopped"),
        "{reason}"
    );
}

#[test]
fn a_busy_loop_is_stopped_at_the_cpu_limit() {
    let mut v = verifier(
        "read -r line; while :; do :; done",
        Limits {
            memory_bytes: 1 << 30,
            cpu_seconds: 1,
            wall_seconds: 30,
        },
    );
    let r = v.verify(&request("spin.onnx"));
    assert_eq!(r.status, Status::Failed);
    assert!(
        r.reason.as_deref().unwrap().contains("1 s CPU time limit"),
        "{r:?}"
    );
}

#[test]
fn a_memory_hog_is_stopped_at_the_resident_set_limit() {
    let mut v = verifier(
        "read -r line; exec python3 -c 'import time; x = bytearray(400 << 20); time.sleep(30)'",
        limits(100, 20),
    );
    let r = v.verify(&request("hog.onnx"));
    assert_eq!(r.status, Status::Failed);
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("100 MiB memory limit"),
        "{r:?}"
    );
    assert!(r.timings.peak_rss_bytes.unwrap() > 100 << 20);
}

#[test]
fn a_child_that_cannot_start_is_an_error() {
    let config = ChildConfig {
        ep: Ep::Cpu,
        library: PathBuf::from("/x"),
        limits: limits(64, 1),
        models: 1,
    };
    let mut v = Verifier::new(
        ChildCommand {
            program: "/nonexistent/kaiyuan".into(),
            args: vec![],
        },
        config,
    );
    let r = v.verify(&request("m.onnx"));
    assert_eq!(r.status, Status::Error);
    assert!(r.reason.unwrap().contains("could not start"));
}
