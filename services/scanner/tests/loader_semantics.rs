//! Issue #16 families: what the loaders accept and run decides the verdict (policy tables,
//! FRAME semantics of CPython's C unpickler, unhashable keys, expansion, containers).

mod support;

use kaiyuan_scanner::Verdict::{Clean, Malformed, Malicious, Suspicious};
use support::pk::*;
use support::*;

fn frame(n: u64) -> Vec<u8> {
    let mut f = vec![0x95];
    f.extend(n.to_le_bytes());
    f
}

#[test]
fn torchscript_helpers_are_clean_and_dangerous_torch_entry_points_are_not() {
    for helper in [
        "build_intlist",
        "build_tensorlist",
        "build_doublelist",
        "restore_type_tag",
    ] {
        let p = call("torch.jit._pickle", helper, "x");
        assert_verdict(&p, "data.pkl", Clean);
    }
    for (module, name) in [
        ("torch.jit", "load"),
        ("torch.jit._pickle", "os_system_lookalike"),
        ("torch.fx.experimental.symbolic_shapes", "ShapeEnv"),
        ("torch", "compile"),
        ("_interpreters", "run_string"),
        ("_xxsubinterpreters", "run_string"),
        ("fickling.hook", "remove_hook"),
        ("picklescan.scanner", "scan_file_path"),
        ("modelscan.modelscan", "ModelScan"),
        ("modelaudit.core", "scan"),
        ("atexit", "register"),
        ("copyreg", "add_extension"),
        ("numpy", "fromfile"),
        ("pandas", "read_csv"),
    ] {
        let report = assert_verdict(&call(module, name, "x"), "a.pkl", Malicious);
        assert_rule(&report, "pickle-dangerous-global");
    }
}

#[test]
fn pure_builtins_and_bare_stdlib_imports_are_clean_but_calls_of_unknown_stdlib_are_not() {
    assert_verdict(&call("builtins", "len", "abc"), "a.pkl", Clean);
    assert_verdict(&call("builtins", "getattr", "abc"), "a.pkl", Malicious);
    for (module, name) in [
        ("collections.abc", "Iterable"),
        ("__future__", "annotations"),
        ("enum", "Enum"),
    ] {
        let bare = cat(&[&proto(2), &global(module, name), &[STOP]]);
        assert_verdict(&bare, "a.pkl", Clean);
    }
    // Imported and called: a stdlib callable nobody vetted.
    let report = assert_verdict(&call("string", "Template", "x"), "a.pkl", Suspicious);
    assert_rule(&report, "pickle-unknown-global");
    // Third-party imports run import-time code: still suspicious when bare.
    let bare = cat(&[&proto(2), &global("somepkg.mod", "Thing"), &[STOP]]);
    assert_verdict(&bare, "a.pkl", Suspicious);
}

/// A text line that starts inside a large FRAME and ends after it: `loads` reads `abc`, a
/// file without peek (or a frame past the prefetch) drops the frame's rest. Here the frame
/// rest is a huge junk line; what follows the frame calls os.system. CPython's
/// `pickle.load(file)` runs it (checked by hand with CPython 3.11: see frame_exp in the notes).
#[test]
fn frame_overruns_are_read_both_ways_and_the_hidden_call_is_found() {
    let junk = vec![b'A'; 200_000];
    let mut body = cat(&[b"V", &junk]);
    let frame_len = body.len() as u64;
    // After the frame: the rest of the line for `loads`, then a call for the file reader.
    body.extend(b"\n0");
    body.extend(&call("posix", "system", "touch marker")[2..]);
    let p = cat(&[&proto(4), &frame(frame_len), &body]);
    let report = assert_verdict(&p, "a.pkl", Malicious);
    assert_rule(&report, "pickle-frame-divergence");
    assert_rule(&report, "pickle-dangerous-global");
}

#[test]
fn frames_are_checked_like_cpython_does() {
    // A FRAME longer than the rest of the file: CPython refuses before anything runs.
    let mut long = cat(&[&proto(4), &frame(1000)]);
    long.extend(&call("posix", "system", "id")[2..]);
    let report = assert_verdict(&long, "a.pkl", Malformed);
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.rule == "pickle-dangerous-global")
    );
    // Well-formed frames (what pickle.dumps writes) are clean.
    let body = cat(&[&unicode("hello"), &[STOP]]);
    let framed = cat(&[&proto(4), &frame(body.len() as u64), &body]);
    assert_verdict(&framed, "a.pkl", Clean);
    // A string that runs past its small frame: the readings differ; malformed, not clean.
    let crossing = cat(&[&proto(4), &frame(3), &unicode("hello"), &[STOP]]);
    assert_rule(
        &assert_verdict(&crossing, "a.pkl", Malformed),
        "pickle-frame-divergence",
    );
}

#[test]
fn memo_expansion_is_found() {
    // l0 = [0]; l(n+1) = [l(n)] * 10, 12 levels: 10^12 elements from a few hundred bytes.
    let mut p = cat(&[&proto(2), &[b']', b'q', 0, b'K', 0, b'a']]);
    for level in 1..=12u8 {
        p.extend([b']', b'q', level, MARK]);
        for _ in 0..10 {
            p.extend([b'h', level - 1]);
        }
        p.push(b'e');
    }
    p.push(STOP);
    assert_rule(&assert_verdict(&p, "a.pkl", Suspicious), "pickle-expansion");
    // The same shape a few levels deep is an ordinary shared structure.
    let mut small = cat(&[&proto(2), &[b']', b'q', 0, b'K', 0, b'a']]);
    for level in 1..=3u8 {
        small.extend([b']', b'q', level, MARK]);
        for _ in 0..10 {
            small.extend([b'h', level - 1]);
        }
        small.push(b'e');
    }
    small.push(STOP);
    assert_verdict(&small, "a.pkl", Clean);
}

#[test]
fn encrypted_flag_members_are_scanned_as_stored() {
    let mut zip = Zip::new();
    zip.add("archive/data.pkl", &call("posix", "system", "id"));
    let mut bytes = zip.finish();
    // Set the "encrypted" bit in the local header and in the central directory entry.
    bytes[6] |= 1;
    let cd = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    bytes[cd + 8] |= 1;
    let report = assert_verdict(&bytes, "model.pt", Malicious);
    assert_rule(&report, "zip-encrypted");
    assert_rule(&report, "pickle-dangerous-global");
}

#[test]
fn coreml_is_not_onnx_and_tflite_is_recognised() {
    // specificationVersion 4, a description, and a neuralNetwork (field 500).
    let coreml = [
        pb::int(1, 4),
        pb::msg(2, &[pb::bytes(1, b"input")]),
        pb::msg(500, &[pb::bytes(1, b"layer")]),
    ]
    .concat();
    for name in ["model.mlmodel", "model"] {
        let report = assert_verdict(&coreml, name, Clean);
        assert_eq!(report.format, "coreml", "{name}");
    }
    let broken = [pb::int(1, 4), pb::msg(2, &[])].concat();
    assert_verdict(&broken, "model.mlmodel", Malformed);
    let mut tflite = 16u32.to_le_bytes().to_vec();
    tflite.extend(b"TFL3");
    tflite.resize(64, 0);
    assert_eq!(assert_verdict(&tflite, "m.tflite", Clean).format, "tflite");
    tflite[..4].copy_from_slice(&1000u32.to_le_bytes());
    assert_verdict(&tflite, "m.tflite", Malformed);
}

#[test]
fn lz4_joblib_is_opened() {
    // An LZ4 frame of one stored block holding a hostile pickle.
    let evil = call("posix", "system", "id");
    let mut lz4 = vec![0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x00];
    lz4.extend((evil.len() as u32 | 0x8000_0000).to_le_bytes());
    lz4.extend(&evil);
    lz4.extend(0u32.to_le_bytes());
    assert_verdict(&lz4, "weights.lz4", Malicious);
}
