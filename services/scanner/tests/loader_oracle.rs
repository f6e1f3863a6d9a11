//! Generated pickles checked against CPython itself (issue #16): each case is loaded by
//! `pickle.load(file)` (buffered, then unbuffered without `peek`), by `pickle.loads(bytes)`, and
//! by `pickle.load` repeated until the file ends (as legacy `torch.load` reads stacked pickles), in a
//! sandboxed subprocess (own empty directory, cleared environment, CPU and memory limits, a
//! wall-clock timeout). The payloads only create a file named `MARKER` in that directory. The
//! scanner must say `malicious` exactly when one of the loaders created it, and a file that the
//! two ways of loading treat differently must carry `pickle-frame-divergence`.
//!
//! The interpreter is `$KAIYUAN_TEST_PYTHON` (scripts/test.sh sets it), else `python3`.
//! torch is not installed in that environment, so `torch.load` is not an oracle here; its
//! weights-only allow list is pinned in `policy.rs` instead.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kaiyuan_scanner::{Verdict, scan_bytes};
use support::pk::*;

const MARKER_CMD: &str = "touch MARKER";
/// The first three read one pickle; `load-stacked` repeats `pickle.load` until the file ends.
const LOADERS: [&str; 4] = ["load", "load-raw", "loads", "load-stacked"];

/// Loads the pickle at argv[2] the way argv[1] says; exceptions are expected and ignored.
const HARNESS: &str = r#"
import pickle, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
resource.setrlimit(resource.RLIMIT_CPU, (5, 5))
mode, path = sys.argv[1], sys.argv[2]
try:
    if mode == "loads":
        with open(path, "rb") as f:
            data = f.read()
        pickle.loads(data)
    else:
        with open(path, "rb", buffering=(0 if mode == "load-raw" else -1)) as f:
            for _ in range(8 if mode == "load-stacked" else 1):
                pickle.load(f)
except BaseException as e:
    print(type(e).__name__, str(e)[:200], file=sys.stderr)
"#;

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// Where the scanner is knowingly stricter than the loader: why.
    stricter: Option<&'static str>,
}

fn case(name: &'static str, bytes: Vec<u8>) -> Case {
    Case {
        name,
        bytes,
        stricter: None,
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = vec![0x95];
    f.extend((body.len() as u64).to_le_bytes());
    f.extend(body);
    f
}

fn frame_header(n: u64) -> Vec<u8> {
    let mut f = vec![0x95];
    f.extend(n.to_le_bytes());
    f
}

/// `module.name(arg)` without PROTO or STOP.
fn call_body(module: &str, name: &str, arg: &str) -> Vec<u8> {
    cat(&[&global(module, name), &unicode(arg), &[TUPLE1, REDUCE]])
}

fn stack_global(module: &str, name: &str) -> Vec<u8> {
    cat(&[&unicode(module), &unicode(name), &[STACK_GLOBAL]])
}

fn python_source_marker() -> &'static str {
    "open('MARKER', 'w').close()"
}

fn cases() -> Vec<Case> {
    let system = call_body("posix", "system", MARKER_CMD);
    let mut out = call_cases(&system);
    out.extend(benign_and_nesting_cases(&system));
    out.extend(stricter_cases(&system));
    // Expansion through memo: benign for CPython within its memory limit, but bounded here.
    out.push(case("benign-memo-fanout", shared_structure(5)));
    out
}

/// Gadgets that make the loader call something, however the call is spelled and framed.
fn call_cases(system: &[u8]) -> Vec<Case> {
    let mut out = gadget_cases(system);
    out.extend(global_lookup_cases());
    out.extend(framing_cases(system));
    out
}

/// REDUCE, INST, OBJ, BUILD and NEWOBJ calls.
fn gadget_cases(system: &[u8]) -> Vec<Case> {
    vec![
        // --- REDUCE / INST / OBJ / BUILD / NEWOBJ gadgets ---
        case("reduce-posix-system", cat(&[&proto(2), system, &[STOP]])),
        case(
            "reduce-os-system-protocol0",
            format!("cos\nsystem\n(V{MARKER_CMD}\ntR.").into_bytes(),
        ),
        case(
            "inst-os-system",
            format!("(V{MARKER_CMD}\nios\nsystem\n.").into_bytes(),
        ),
        case(
            "obj-posix-system",
            cat(&[
                &proto(2),
                &[MARK],
                &global("posix", "system"),
                &unicode(MARKER_CMD),
                b"o",
                &[STOP],
            ]),
        ),
        case(
            "subprocess-getoutput",
            cat(&[
                &proto(2),
                &call_body("subprocess", "getoutput", MARKER_CMD),
                &[STOP],
            ]),
        ),
        case(
            "builtins-exec",
            cat(&[
                &proto(2),
                &call_body("builtins", "exec", python_source_marker()),
                &[STOP],
            ]),
        ),
        case(
            "builtins-eval",
            cat(&[
                &proto(2),
                &call_body("builtins", "eval", python_source_marker()),
                &[STOP],
            ]),
        ),
        case(
            "builtins-open-for-writing",
            cat(&[
                &proto(2),
                &global("builtins", "open"),
                &unicode("MARKER"),
                &unicode("w"),
                &[TUPLE2, REDUCE, STOP],
            ]),
        ),
        // getattr(__import__('os'), 'system')('touch MARKER')
        case(
            "getattr-import-chain",
            cat(&[
                &proto(2),
                &global("builtins", "getattr"),
                &global("builtins", "__import__"),
                &unicode("os"),
                &[TUPLE1, REDUCE],
                &unicode("system"),
                &[TUPLE2, REDUCE],
                &unicode(MARKER_CMD),
                &[TUPLE1, REDUCE, STOP],
            ]),
        ),
        // BUILD sets __setstate__ in an instance dict, a second BUILD calls it (modelscan #85).
        case(
            "build-setstate-gadget",
            cat(&[
                &proto(2),
                &global("argparse", "Namespace"),
                &[EMPTY_TUPLE, REDUCE, EMPTY_DICT],
                &unicode("__setstate__"),
                &global("posix", "system"),
                b"s",
                &[BUILD],
                &unicode(MARKER_CMD),
                &[BUILD, STOP],
            ]),
        ),
        // NEWOBJ of a harmless class, then the call (NEWOBJ itself runs only __new__).
        case(
            "newobj-then-reduce",
            cat(&[
                &proto(2),
                &global("argparse", "Namespace"),
                &[EMPTY_TUPLE, NEWOBJ, b'0'],
                system,
                &[STOP],
            ]),
        ),
    ]
}

/// Callables found through STACK_GLOBAL, the memo, DUP and the extension registry.
fn global_lookup_cases() -> Vec<Case> {
    vec![
        // --- STACK_GLOBAL, memo and DUP ---
        case(
            "stack-global-framed",
            cat(&[
                &proto(4),
                &frame(&cat(&[
                    &stack_global("posix", "system"),
                    &unicode(MARKER_CMD),
                    &[TUPLE1, REDUCE, STOP],
                ])),
            ]),
        ),
        case(
            "stack-global-through-memo",
            cat(&[
                &proto(4),
                &unicode("posix"),
                &[MEMOIZE],
                &unicode("system"),
                &[MEMOIZE, b'0', b'0'],
                b"h\x00h\x01",
                &[STACK_GLOBAL],
                &unicode(MARKER_CMD),
                &[TUPLE1, REDUCE, STOP],
            ]),
        ),
        case(
            "dup-of-callable",
            cat(&[
                &proto(2),
                &global("posix", "system"),
                b"2",
                b"0",
                &unicode(MARKER_CMD),
                &[TUPLE1, REDUCE, STOP],
            ]),
        ),
        // The module name computed at load time: codecs.decode('cbfvk', 'rot13') == 'posix'.
        case(
            "computed-module-name",
            cat(&[
                &proto(4),
                &global("_codecs", "decode"),
                &unicode("cbfvk"),
                &unicode("rot13"),
                &[TUPLE2, REDUCE],
                &unicode("system"),
                &[STACK_GLOBAL],
                &unicode(MARKER_CMD),
                &[TUPLE1, REDUCE, STOP],
            ]),
        ),
        // --- EXT opcodes ---
        case(
            "ext-registered-then-used",
            cat(&[
                &proto(2),
                &global("copyreg", "add_extension"),
                &unicode("posix"),
                &unicode("system"),
                &int(240),
                &[TUPLE3, REDUCE, b'0'],
                &[0x82, 240],
                &unicode(MARKER_CMD),
                &[TUPLE1, REDUCE, STOP],
            ]),
        ),
        case(
            "ext-unregistered",
            cat(&[
                &proto(2),
                &[0x82, 241],
                &unicode(MARKER_CMD),
                &[TUPLE1, REDUCE, STOP],
            ]),
        ),
    ]
}

/// Protocol switches, where the call sits relative to STOP, and FRAME boundaries.
fn framing_cases(system: &[u8]) -> Vec<Case> {
    vec![
        // --- protocol switches ---
        case(
            "protocol-switch-mid-stream",
            cat(&[
                &proto(2),
                &unicode("x"),
                b"0",
                &proto(5),
                &frame(&cat(&[
                    &stack_global("posix", "system"),
                    &unicode(MARKER_CMD),
                    &[TUPLE1, REDUCE, STOP],
                ])),
            ]),
        ),
        case(
            "protocol-zero-then-binary",
            cat(&[b"(lp0\nI1\na0", &proto(3), system, &[STOP]]),
        ),
        // --- where the call sits relative to STOP and the end of the file ---
        case("truncated-after-the-call", cat(&[&proto(2), system])),
        case(
            "call-in-a-stacked-second-pickle",
            cat(&[
                &proto(2),
                &unicode("ok"),
                &[STOP],
                &proto(2),
                system,
                &[STOP],
            ]),
        ),
        case(
            "call-after-a-parse-error",
            cat(&[&proto(2), &unicode("ok"), &[0xff], system, &[STOP]]),
        ),
        case(
            "nested-pickle-loads",
            cat(&[
                &proto(2),
                &global("pickle", "loads"),
                &binbytes(&cat(&[&proto(2), system, &[STOP]])),
                &[TUPLE1, REDUCE, STOP],
            ]),
        ),
        // --- FRAME semantics ---
        case(
            "frame-longer-than-the-file",
            cat(&[&proto(4), &frame_header(1000), system, &[STOP]]),
        ),
        case(
            "string-crossing-a-small-frame",
            cat(&[&proto(4), &frame_header(3), &unicode("hello"), &[STOP]]),
        ),
        case("frame-overrun-hidden-call", frame_overrun(200_000)),
        case("frame-overrun-small", frame_overrun(100)),
        // A GLOBAL whose module line starts inside the frame and ends after it: `loads` reads
        // one line across the boundary, a file reader may drop the frame's rest first.
        case(
            "frame-split-global-junk-small",
            frame_split(b"junk", b"posix"),
        ),
        case(
            "frame-split-global-junk-large",
            frame_split(&[b'j'; 100_000], b"posix"),
        ),
        case("frame-split-global-joined", frame_split(b"pos", b"ix")),
        case(
            "frame-split-global-joined-large",
            frame_split(&cat(&[&[b'#'; 100_000], b"pos"]), b"ix"),
        ),
    ]
}

/// What the loaders run nothing for, and deep nesting around a call.
fn benign_and_nesting_cases(system: &[u8]) -> Vec<Case> {
    vec![
        // --- benign: the loaders run nothing ---
        case(
            "benign-dict",
            cat(&[
                &proto(2),
                &[EMPTY_DICT, b'q', 0, MARK],
                &unicode("a"),
                &int(1),
                &unicode("b"),
                &[b']', b'q', 1, MARK],
                &int(1),
                &int(2),
                &[b'e', SETITEMS, STOP],
            ]),
        ),
        case(
            "benign-protocol0-list",
            b"(lp0\nI1\naI2\naVtouch MARKER\na.".to_vec(),
        ),
        case(
            "benign-ordered-dict",
            cat(&[
                &proto(2),
                &global("collections", "OrderedDict"),
                &[EMPTY_TUPLE, REDUCE, STOP],
            ]),
        ),
        case(
            "benign-len",
            cat(&[
                &proto(2),
                &call_body("builtins", "len", MARKER_CMD),
                &[STOP],
            ]),
        ),
        case(
            "benign-codecs-encode",
            cat(&[
                &proto(2),
                &global("_codecs", "encode"),
                &unicode(MARKER_CMD),
                &unicode("latin1"),
                &[TUPLE2, REDUCE, STOP],
            ]),
        ),
        case(
            "benign-framed-protocol5",
            cat(&[
                &proto(5),
                &frame(&cat(&[
                    &unicode(MARKER_CMD),
                    &[MEMOIZE, b'2', TUPLE2, STOP],
                ])),
            ]),
        ),
        case(
            "benign-namespace-build",
            cat(&[
                &proto(2),
                &global("argparse", "Namespace"),
                &[EMPTY_TUPLE, NEWOBJ, EMPTY_DICT],
                &unicode("cmd"),
                &unicode(MARKER_CMD),
                &[b's', BUILD, STOP],
            ]),
        ),
        case("benign-shared-structure", shared_structure(3)),
        // --- deep nesting: CPython's unpicklers are iterative, so depth alone loads ---
        case(
            "deep-nesting-then-call",
            cat(&[&proto(2), &nested_tuples(1100), b"0", system, &[STOP]]),
        ),
        case(
            "benign-deep-nesting",
            cat(&[&proto(2), &nested_tuples(1100), &[STOP]]),
        ),
        // --- a __setstate__ put into an object's attributes by one BUILD runs at the next ---
        case(
            "build-setstate-injection",
            cat(&[
                &proto(2),
                &global("argparse", "Namespace"),
                &[EMPTY_TUPLE, NEWOBJ, EMPTY_DICT],
                &unicode("__setstate__"),
                &global("posix", "system"),
                &[b's', BUILD],
                &unicode(MARKER_CMD),
                &[BUILD, STOP],
            ]),
        ),
        // The call text sits in a string only: nothing imports anything.
        case(
            "benign-global-text-in-a-string",
            cat(&[&proto(2), &unicode("cposix\nsystem\n"), &[STOP]]),
        ),
    ]
}

/// Where the scanner is stricter than `pickle.load`, each with the reason.
fn stricter_cases(system: &[u8]) -> Vec<Case> {
    vec![
        // --- where the scanner is stricter than pickle.load, and why ---
        Case {
            name: "dangerous-callable-returned-uncalled",
            bytes: cat(&[&proto(2), &global("posix", "system"), &[STOP]]),
            stricter: Some(
                "the loaded object is os.system itself: the caller holds it (and joblib/torch \
                 wrappers call what they load); a model file has no reason to carry it",
            ),
        },
        Case {
            name: "ext-opcode-after-registration-uncalled",
            bytes: cat(&[
                &proto(2),
                &global("copyreg", "add_extension"),
                &unicode("posix"),
                &unicode("system"),
                &int(242),
                &[TUPLE3, REDUCE, STOP],
            ]),
            stricter: Some(
                "rewrites the process-wide extension registry: every later load in the same \
                 process can resolve an EXT code to os.system",
            ),
        },
        Case {
            name: "call-after-a-key-too-deep-to-hash",
            bytes: cat(&[
                &proto(2),
                &[EMPTY_DICT],
                &nested_tuples(1_000_000),
                &[NONE, b's', b'0'],
                system,
                &[STOP],
            ]),
            stricter: Some(
                "CPython crashes (SIGSEGV) hashing the key before the call; how deep it gets \
                 depends on the loading thread's stack, so the scanner reads on and rates the call",
            ),
        },
    ]
}

/// A text line that starts inside a large FRAME and ends after it (see loader_semantics.rs):
/// what follows the frame calls os.system.
fn frame_overrun(junk: usize) -> Vec<u8> {
    let mut body = cat(&[b"V", &vec![b'A'; junk]]);
    let frame_len = body.len() as u64;
    body.extend(b"\n0");
    body.extend(&call_body("posix", "system", MARKER_CMD));
    body.push(STOP);
    cat(&[&proto(4), &frame_header(frame_len), &body])
}

/// `c` + `in_frame` fill the FRAME; `after` + `\nsystem\n` and a call follow it.
fn frame_split(in_frame: &[u8], after: &[u8]) -> Vec<u8> {
    let body = cat(&[b"c", in_frame]);
    cat(&[
        &proto(4),
        &frame_header(body.len() as u64),
        &body,
        after,
        b"\nsystem\n",
        &unicode(MARKER_CMD),
        &[TUPLE1, REDUCE, STOP],
    ])
}

/// `n` tuples nested in one another, `((((),),),)`, pushed on the stack.
fn nested_tuples(n: usize) -> Vec<u8> {
    let mut p = vec![EMPTY_TUPLE];
    p.extend(std::iter::repeat_n(TUPLE1, n - 1));
    p
}

/// l0 = [0]; l(n+1) = [l(n)] * 10.
fn shared_structure(levels: u8) -> Vec<u8> {
    let mut p = cat(&[&proto(2), &[b']', b'q', 0, b'K', 0, b'a']]);
    for level in 1..=levels {
        p.extend([b']', b'q', level, MARK]);
        for _ in 0..10 {
            p.extend([b'h', level - 1]);
        }
        p.push(b'e');
    }
    p.push(STOP);
    p
}

fn python() -> PathBuf {
    std::env::var_os("KAIYUAN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Whether CPython, loading `file` the way `mode` says, created the marker.
fn marker_ran(python: &Path, dir: &Path, harness: &Path, file: &Path, mode: &str) -> bool {
    let marker = dir.join("MARKER");
    let _ = std::fs::remove_file(&marker);
    let mut child = Command::new(python)
        .arg("-I")
        .arg(harness)
        .arg(mode)
        .arg(file)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (set KAIYUAN_TEST_PYTHON)", python.display()));
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    marker.exists()
}

struct Outcome {
    name: &'static str,
    /// Per loader in LOADERS order.
    ran: [bool; 4],
    verdict: Verdict,
    divergence_reported: bool,
    stricter: Option<&'static str>,
}

#[test]
fn scanner_says_malicious_exactly_when_cpython_runs_the_marker() {
    let python = python();
    let root = std::env::temp_dir().join(format!("kaiyuan-oracle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let harness = root.join("harness.py");
    std::fs::write(&harness, HARNESS).unwrap();

    let cases = cases();
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|c| {
                let (root, harness, python) = (&root, &harness, &python);
                s.spawn(move || {
                    let dir = root.join(c.name);
                    std::fs::create_dir_all(&dir).unwrap();
                    let file = dir.join("case.pkl");
                    std::fs::write(&file, &c.bytes).unwrap();
                    let ran = LOADERS.map(|mode| marker_ran(python, &dir, harness, &file, mode));
                    let report = scan_bytes(&c.bytes, "case.pkl");
                    Outcome {
                        name: c.name,
                        ran,
                        verdict: report.verdict,
                        divergence_reported: report
                            .findings
                            .iter()
                            .any(|f| f.rule == "pickle-frame-divergence"),
                        stricter: c.stricter,
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let _ = std::fs::remove_dir_all(&root);

    let mut failures = Vec::new();
    let mut ran_somewhere = 0;
    for o in &outcomes {
        let ran = o.ran.iter().any(|r| *r);
        ran_somewhere += usize::from(ran);
        let malicious = o.verdict == Verdict::Malicious;
        let line = format!(
            "{}: load/load-raw/loads/load-stacked ran the marker {:?}, scanner {:?}",
            o.name, o.ran, o.verdict
        );
        match o.stricter {
            Some(why) if ran || !malicious => {
                failures.push(format!("{line} (declared stricter: {why})"))
            }
            Some(_) => {}
            None if ran != malicious => failures.push(line.clone()),
            None => {}
        }
        println!("{line}");
        // load(file) and loads(bytes) disagree: a parser-divergence attack, reported as such.
        let diverge = o.ran[0] != o.ran[2] || o.ran[1] != o.ran[2];
        if diverge && !o.divergence_reported {
            failures.push(format!("{line}: the loaders diverge, not reported"));
        }
    }
    // The oracle itself must be live: most hostile cases do run under CPython.
    assert!(
        ran_somewhere >= 15,
        "only {ran_somewhere} cases ran the marker: is {} a working CPython?",
        python.display()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
