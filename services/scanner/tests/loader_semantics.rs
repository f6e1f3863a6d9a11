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

/// Python's `bz2.compress` / `lzma.compress` of `posix.system('id')`, of `{}`, and of 300 MB
/// of zeros (a 242-byte bzip2 bomb).
const BZ2_EVIL: &[u8] = b"\x42\x5a\x68\x39\x31\x41\x59\x26\x53\x59\x0e\x4d\xdd\xa4\x00\x00\x0a\x53\xc0\x10\x10\x00\x01\x10\x00\x0e\x22\xcc\x60\x42\x04\x20\x00\x31\x4d\x32\x31\x31\x31\x0a\x03\x40\xd3\x62\x81\x0e\xe5\x33\x9a\x98\x30\x50\x6d\xd0\xab\xfc\x5d\xc9\x14\xe1\x42\x40\x39\x37\x76\x90";
const BZ2_BENIGN: &[u8] = b"\x42\x5a\x68\x39\x31\x41\x59\x26\x53\x59\x92\x09\xc0\xc6\x00\x00\x02\xd0\xc0\x50\x00\x00\x01\x20\x02\x40\x00\x20\x00\x22\x18\x68\x30\x08\x32\x98\x5d\xc9\x14\xe1\x42\x42\x48\x27\x03\x18";
const BZ2_BOMB: &[u8] = b"\x42\x5a\x68\x39\x31\x41\x59\x26\x53\x59\x0e\x09\xe2\xdf\x01\x5f\x8e\x40\x00\xc0\x00\x00\x08\x20\x00\x30\x80\x4d\x46\x42\xa0\x25\xa9\x0a\x80\x97\x31\x41\x59\x26\x53\x59\x0e\x09\xe2\xdf\x01\x5f\x8e\x40\x00\xc0\x00\x00\x08\x20\x00\x30\x80\x4d\x46\x42\xa0\x25\xa9\x0a\x80\x97\x31\x41\x59\x26\x53\x59\x0e\x09\xe2\xdf\x01\x5f\x8e\x40\x00\xc0\x00\x00\x08\x20\x00\x30\x80\x4d\x46\x42\xa0\x25\xa9\x0a\x80\x97\x31\x41\x59\x26\x53\x59\x0e\x09\xe2\xdf\x01\x5f\x8e\x40\x00\xc0\x00\x00\x08\x20\x00\x30\x80\x4d\x46\x42\xa0\x25\xa9\x0a\x80\x97\x31\x41\x59\x26\x53\x59\x0e\x09\xe2\xdf\x01\x5f\x8e\x40\x00\xc0\x00\x00\x08\x20\x00\x30\x80\x4d\x46\x42\xa0\x25\xa9\x0a\x80\x97\x31\x41\x59\x26\x53\x59\x0e\x09\xe2\xdf\x01\x5f\x8e\x40\x00\xc0\x00\x00\x08\x20\x00\x30\x80\x4d\x46\x42\xa0\x25\xa9\x0a\x80\x97\x31\x41\x59\x26\x53\x59\x77\x23\x9f\xac\x00\xbc\x74\x40\x20\xc0\x00\x10\x00\x00\x08\x20\x00\x30\xcc\x09\xaa\x69\xaa\x42\xa0\xb6\xa5\x21\x50\x5e\x2e\xe4\x8a\x70\xa1\x21\x01\x04\x0c\x88";
const XZ_EVIL: &[u8] = b"\xfd\x37\x7a\x58\x5a\x00\x00\x04\xe6\xd6\xb4\x46\x02\x00\x21\x01\x16\x00\x00\x00\x74\x2f\xe5\xa3\x01\x00\x16\x80\x02\x63\x70\x6f\x73\x69\x78\x0a\x73\x79\x73\x74\x65\x6d\x0a\x8c\x02\x69\x64\x85\x52\x2e\x00\x00\xca\xbc\x09\x99\xcf\x6a\x12\xa3\x00\x01\x2f\x17\x81\x08\x49\xb1\x1f\xb6\xf3\x7d\x01\x00\x00\x00\x00\x04\x59\x5a";
const XZ_BENIGN: &[u8] = b"\xfd\x37\x7a\x58\x5a\x00\x00\x04\xe6\xd6\xb4\x46\x02\x00\x21\x01\x16\x00\x00\x00\x74\x2f\xe5\xa3\x01\x00\x05\x80\x02\x7d\x71\x00\x2e\x00\x00\x00\x41\xdd\xdc\xee\x44\xc2\x9c\x14\x00\x01\x1e\x06\xc1\x2f\xa4\x1d\x1f\xb6\xf3\x7d\x01\x00\x00\x00\x00\x04\x59\x5a";

/// An xz stream whose LZMA2 chunk headers declare `chunks` x 2 MiB of output (the chunk data
/// itself is never decoded: the declared size is refused first).
fn xz_declaring(chunks: usize) -> Vec<u8> {
    let mut x = XZ_BENIGN[..12].to_vec(); // stream header
    x.extend([0x02, 0x00, 0x21, 0x01, 0x16, 0x00, 0x00, 0x00, 0, 0, 0, 0]); // block header
    for _ in 0..chunks {
        x.extend([0xff, 0xff, 0xff, 0x00, 0x00, 0x5d, 0x00]);
    }
    x.push(0x00);
    x
}

#[test]
fn xz_and_bzip2_joblib_files_are_opened_with_bounded_output() {
    for (bytes, name) in [
        (BZ2_EVIL, "model.joblib"),
        (XZ_EVIL, "model.joblib"),
        (XZ_EVIL, "m.pkl.xz"),
    ] {
        let report = assert_verdict(bytes, name, Malicious);
        assert_rule(&report, "pickle-dangerous-global");
    }
    assert_eq!(
        assert_verdict(BZ2_BENIGN, "model.joblib", Clean).format,
        "bzip2"
    );
    assert_eq!(
        assert_verdict(XZ_BENIGN, "model.joblib", Clean).format,
        "xz"
    );
    assert_rule(
        &assert_verdict(BZ2_BOMB, "model.joblib", Malicious),
        "archive-bomb",
    );
    assert_rule(
        &assert_verdict(&xz_declaring(64), "model.joblib", Malicious),
        "archive-bomb",
    );
    // Corrupt streams are malformed, not clean.
    let mut broken = XZ_EVIL.to_vec();
    broken[30] ^= 0xff;
    assert_rule(
        &assert_verdict(&broken, "model.joblib", Malformed),
        "compression-malformed",
    );
    assert_rule(
        &assert_verdict(&BZ2_EVIL[..40], "model.joblib", Malformed),
        "compression-malformed",
    );
    // 7z is opened: a file cut inside its signature header is malformed.
    let seven = b"7z\xbc\xaf\x27\x1c\x00\x04rest";
    assert_rule(
        &assert_verdict(seven, "m.7z", Malformed),
        "sevenz-malformed",
    );
}

/// A minimal OpenVINO IR topology as `ovc` writes it.
fn openvino_ir(layer_version: &str, extra: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\"?>\n<!-- exported -->\n<net name=\"model\" version=\"11\">\n\t<layers>\n\t\t<layer id=\"0\" name=\"x\" type=\"Parameter\" version=\"opset1\">\n\t\t\t<data shape=\"1,3\" element_type=\"f32\" />\n\t\t\t<output><port id=\"0\" precision=\"FP32\"><dim>1</dim><dim>3</dim></port></output>\n\t\t</layer>\n\t\t<layer id=\"1\" name=\"y\" type=\"Relu\" version=\"{layer_version}\">\n\t\t\t<input><port id=\"0\"/></input>\n\t\t</layer>\n\t</layers>\n\t<edges>\n\t\t<edge from-layer=\"0\" from-port=\"0\" to-layer=\"1\" to-port=\"0\"/>\n\t</edges>{extra}\n</net>\n"
    )
    .into_bytes()
}

#[test]
fn openvino_ir_is_recognised_by_structure() {
    let ir = openvino_ir("opset1", "");
    for name in ["model.xml", "model"] {
        assert_eq!(
            assert_verdict(&ir, name, Clean).format,
            "openvino-ir",
            "{name}"
        );
    }
    let custom = openvino_ir("extension", "");
    assert_rule(
        &assert_verdict(&custom, "m.xml", Suspicious),
        "openvino-custom-op",
    );
    let unbalanced = openvino_ir("opset1", "<rt_info>");
    assert_rule(
        &assert_verdict(&unbalanced, "m.xml", Malformed),
        "openvino-malformed",
    );
    // Thousands of nested elements: a resource attack on recursive XML parsers.
    let deep = format!("<net>{}</net>", "<a>".repeat(5000)).into_bytes();
    assert_rule(
        &assert_verdict(&deep, "m.xml", Suspicious),
        "structure-too-deep",
    );
    // Other XML is not an IR.
    assert_ne!(
        verdict_of(b"<?xml version=\"1.0\"?><svg></svg>", "a.xml").format,
        "openvino-ir"
    );
}

/// `n` tuples nested in one another, `((((),),),)`, pushed on the stack.
fn nested_tuples(n: usize) -> Vec<u8> {
    let mut p = vec![EMPTY_TUPLE];
    p.extend(std::iter::repeat_n(TUPLE1, n - 1));
    p
}

#[test]
fn deep_nesting_is_rated_by_what_cpython_does_with_it() {
    let deep = |n: usize| cat(&[&proto(2), &nested_tuples(n), &[STOP]]);
    // CPython's unpicklers are iterative: any depth loads. Within the recursion limit it is
    // what pickle.dumps writes; beyond it, nothing writes it and using the object recurses.
    assert_verdict(&deep(1000), "a.pkl", Clean);
    assert_rule(
        &assert_verdict(&deep(1001), "a.pkl", Suspicious),
        "pickle-deep-nesting",
    );
    // Millions of levels: the emulator keeps its own values shallow (no stack overflow).
    assert_rule(
        &assert_verdict(&deep(3_000_000), "a.pkl", Suspicious),
        "pickle-deep-nesting",
    );
    // Calls of calls nest the same way.
    let mut chain = cat(&[
        &proto(2),
        &global("builtins", "set"),
        &[EMPTY_TUPLE, REDUCE],
    ]);
    for _ in 0..2_000_000 {
        chain.extend([EMPTY_TUPLE, REDUCE]);
    }
    chain.push(STOP);
    assert_verdict(&chain, "a.pkl", Malicious); // calling a call result: a computed callable
    // Lists built bottom-up (as pickle.dumps writes them) ...
    let mut lists = proto(2);
    for _ in 0..1500 {
        lists.extend([b']', MARK]);
    }
    lists.extend(std::iter::repeat_n(b'e', 1500));
    lists.push(STOP);
    assert_rule(
        &assert_verdict(&lists, "a.pkl", Suspicious),
        "pickle-deep-nesting",
    );
    // ... and top-down through the memo (each list filled after it was placed) are both seen.
    let mut top_down = cat(&[&proto(2), &[b']', b'q', 0]]);
    for _ in 0..1500 {
        top_down.extend([b']', b'q', 1, b'a', b'0', b'h', 1]);
    }
    top_down.extend([b'0', b'h', 0, STOP]);
    assert_rule(
        &assert_verdict(&top_down, "a.pkl", Suspicious),
        "pickle-deep-nesting",
    );
    // A list holding itself nests no deeper.
    let mut cycle = cat(&[&proto(2), &[b']', b'q', 0]]);
    for _ in 0..2000 {
        cycle.extend([b'h', 0, b'a']);
    }
    cycle.push(STOP);
    let report = verdict_of(&cycle, "a.pkl");
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.rule == "pickle-deep-nesting"),
        "{report:#?}"
    );
}

#[test]
fn keys_too_deep_to_hash_are_malformed_and_the_parse_goes_on() {
    // A dict key nested 20,000 deep: CPython's tuple hash recurses on the C stack (a crash on
    // a 1 MiB stack; about 130,000 levels on Linux's 8 MiB).
    let key = |n: usize, after: &[u8]| {
        cat(&[
            &proto(2),
            &[EMPTY_DICT],
            &nested_tuples(n),
            &[NONE, b's', b'0'],
            after,
            &[NONE, STOP],
        ])
    };
    assert_rule(
        &assert_verdict(&key(20_000, &[]), "a.pkl", Malformed),
        "pickle-deep-nesting",
    );
    // Deeper than the recursion limit but hashable: loadable, suspicious.
    assert_verdict(&key(2_000, &[]), "a.pkl", Suspicious);
    // Set members are hashed too.
    let frozen = cat(&[&proto(4), &[MARK], &nested_tuples(20_000), &[0x91, STOP]]);
    assert_verdict(&frozen, "a.pkl", Malformed);
    // The crash depth depends on the loading thread's stack: a call after the key still counts.
    let call_after = cat(&[
        &global("posix", "system"),
        &unicode("id"),
        &[TUPLE1, REDUCE, b'0'],
    ]);
    assert_verdict(&key(20_000, &call_after), "a.pkl", Malicious);
}
