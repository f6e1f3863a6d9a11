//! Generated files of every format, clean and hostile: the scanner must flag each hostile trick
//! and stay silent on ordinary, real-shaped files.

mod support;

use kaiyuan_scanner::Verdict::{Clean, Malformed, Malicious, Suspicious};
use support::pk::*;
use support::*;

/// A torch.save-shaped `data.pkl`: OrderedDict of tensors rebuilt from persistent-id storages.
fn state_dict_pickle(tensors: &[(&str, &str)]) -> Vec<u8> {
    let mut p = cat(&[
        &proto(2),
        &global("collections", "OrderedDict"),
        &[EMPTY_TUPLE, REDUCE, MARK],
    ]);
    for (name, key) in tensors {
        p.extend(unicode(name));
        p.extend(global("torch._utils", "_rebuild_tensor_v2"));
        p.push(MARK);
        // persistent id ('storage', torch.FloatStorage, key, 'cpu', 4)
        p.push(MARK);
        p.extend(unicode("storage"));
        p.extend(global("torch", "FloatStorage"));
        p.extend(unicode(key));
        p.extend(unicode("cpu"));
        p.extend(int(4));
        p.push(TUPLE);
        p.push(b'Q');
        p.extend(int(0));
        p.extend(int(4));
        p.push(TUPLE1);
        p.extend(int(1));
        p.push(TUPLE1);
        p.push(0x89);
        p.extend(global("collections", "OrderedDict"));
        p.extend([EMPTY_TUPLE, REDUCE, TUPLE, REDUCE]);
    }
    p.extend([SETITEMS, STOP]);
    p
}

fn pytorch_zip(pickle: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = Zip::new();
    zip.add("archive/data.pkl", pickle);
    zip.add("archive/byteorder", b"little");
    zip.add("archive/data/0", &1.5f32.to_le_bytes().repeat(4));
    zip.add(
        "archive/data/1",
        &[
            0x80, 0x02, 0xff, 0xfe, 0x13, 0x37, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    for (name, data) in extra {
        zip.add(name, data);
    }
    zip.add("archive/version", b"3\n");
    zip.add("archive/.data/serialization_id", b"1234567890");
    zip.finish()
}

#[test]
fn clean_pytorch_state_dict_is_clean_even_with_pickle_like_tensor_bytes() {
    let pickle = state_dict_pickle(&[("weight", "0"), ("bias", "1")]);
    assert_verdict(&pickle, "data.pkl", Clean);
    let report = assert_verdict(&pytorch_zip(&pickle, &[]), "pytorch_model.bin", Clean);
    assert_eq!(report.format, "pytorch-zip");
}

#[test]
fn pytorch_zip_tricks_are_caught() {
    let clean = state_dict_pickle(&[("w", "0")]);
    let evil = call("posix", "system", "id");
    // A second pickle hidden in a member with an innocent name.
    let report = assert_verdict(
        &pytorch_zip(&clean, &[("archive/extra/config.bin", &evil)]),
        "model.pt",
        Malicious,
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.location.starts_with("archive/extra/config.bin")),
        "{report:#?}"
    );
    // A pickle hidden in a tensor storage member.
    let report = assert_verdict(
        &pytorch_zip(&clean, &[("archive/data/7", &evil)]),
        "model.pt",
        Malicious,
    );
    assert_rule(&report, "pytorch-hidden-pickle");
    // The local header names the member differently than the central directory.
    let mut zip = Zip::new();
    zip.add_full("archive/data.pkl", &evil, false, None, "archive/data.pkx");
    let report = assert_verdict(&zip.finish(), "model.pt", Malicious);
    assert_rule(&report, "zip-name-mismatch");
    // Deflated members are inflated and checked too.
    let mut zip = Zip::new();
    zip.add_deflated("archive/data.pkl", &evil)
        .add("archive/version", b"3\n");
    assert_verdict(&zip.finish(), "model.pt", Malicious);
}

#[test]
fn every_way_of_naming_a_callable_is_resolved() {
    // GLOBAL, STACK_GLOBAL from literals, STACK_GLOBAL from memoised literals.
    assert_verdict(&call("os", "system", "id"), "a.pkl", Malicious);
    let stack_global = cat(&[
        &proto(4),
        &unicode("subprocess"),
        &unicode("check_output"),
        &[STACK_GLOBAL],
        &unicode("id"),
        &[TUPLE1, REDUCE, STOP],
    ]);
    assert_verdict(&stack_global, "a.pkl", Malicious);
    let memo = cat(&[
        &proto(4),
        &unicode("builtins"),
        &[MEMOIZE],
        &unicode("eval"),
        &[MEMOIZE, b'0', b'0'],
        &[b'h', 0, b'h', 1, STACK_GLOBAL],
        &unicode("1+1"),
        &[TUPLE1, REDUCE, STOP],
    ]);
    assert_verdict(&memo, "a.pkl", Malicious);
    // Harmless callables named the same ways stay clean.
    let ordered = cat(&[
        &proto(4),
        &unicode("collections"),
        &[MEMOIZE],
        &unicode("OrderedDict"),
        &[MEMOIZE, STACK_GLOBAL, EMPTY_TUPLE, REDUCE, STOP],
    ]);
    assert_verdict(&ordered, "a.pkl", Clean);
}

#[test]
fn computed_names_and_calls_of_results_are_malicious() {
    // STACK_GLOBAL whose module name is itself the result of a call (memo indirection).
    let computed = cat(&[
        &proto(4),
        &global("_codecs", "decode"),
        &unicode("bf"),
        &unicode("rot13"),
        &[TUPLE2, REDUCE, MEMOIZE, b'0'],
        &[b'h', 0],
        &unicode("system"),
        &[STACK_GLOBAL, STOP],
    ]);
    let report = assert_verdict(&computed, "a.pkl", Malicious);
    assert_rule(&report, "pickle-dynamic-global");
    // getattr(x, 'system')(cmd): the outer REDUCE calls a computed value.
    let chained = cat(&[
        &proto(2),
        &global("builtins", "getattr"),
        &global("collections", "OrderedDict"),
        &unicode("system"),
        &[TUPLE2, REDUCE],
        &unicode("id"),
        &[TUPLE1, REDUCE, STOP],
    ]);
    let report = assert_verdict(&chained, "a.pkl", Malicious);
    assert_rule(&report, "pickle-dynamic-call");
}

#[test]
fn inst_obj_newobj_build_and_extensions() {
    let inst = b"(S'id'\nios\nsystem\n.".to_vec();
    assert_verdict(&inst, "a.pkl", Malicious);
    let obj = cat(&[
        &proto(1),
        &[MARK],
        &global("subprocess", "Popen"),
        &unicode("id"),
        &[b'o', STOP],
    ]);
    assert_verdict(&obj, "a.pkl", Malicious);
    let newobj = cat(&[
        &proto(2),
        &global("__main__", "Net"),
        &[EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, BUILD, STOP],
    ]);
    let report = assert_verdict(&newobj, "a.pkl", Suspicious);
    assert_rule(&report, "pickle-unknown-global");
    // BUILD on an imported object rewrites code that later runs.
    let mutate = cat(&[
        &proto(2),
        &global("collections", "OrderedDict"),
        &[EMPTY_DICT, BUILD, STOP],
    ]);
    let report = assert_verdict(&mutate, "a.pkl", Malicious);
    assert_rule(&report, "pickle-global-mutation");
    let ext = cat(&[&proto(2), &[0x82, 7, EMPTY_TUPLE, REDUCE, STOP]]);
    let report = assert_verdict(&ext, "a.pkl", Suspicious);
    assert_rule(&report, "pickle-extension-registry");
}

#[test]
fn nested_payloads_are_scanned() {
    let inner = call("posix", "system", "id");
    let outer = cat(&[
        &proto(3),
        &global("pickle", "loads"),
        &binbytes(&inner),
        &[TUPLE1, REDUCE, STOP],
    ]);
    let report = assert_verdict(&outer, "a.pkl", Malicious);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.location.contains("payload of pickle.loads")
                && f.evidence.as_deref() == Some("posix.system")),
        "{report:#?}"
    );
}

#[test]
fn stacked_pickles_and_prefixes_before_garbage_are_all_scanned() {
    let benign = cat(&[&proto(2), &[EMPTY_DICT, STOP]]);
    let stacked = cat(&[&benign, &call("os", "system", "id")]);
    assert_verdict(&stacked, "a.pkl", Malicious);
    let mut garbage = cat(&[
        &proto(2),
        &global("os", "system"),
        &unicode("id"),
        &[TUPLE1, REDUCE],
    ]);
    garbage.extend([0xff, 0xfe]);
    let report = assert_verdict(&garbage, "a.pkl", Malicious);
    assert_rule(&report, "pickle-malformed");
    assert_verdict(&cat(&[&benign, b"\xff\xfe\xfd"]), "a.pkl", Suspicious);
}

#[test]
fn protocol_0_pickles_with_text_opcodes_are_understood() {
    let clean =
        b"(lp0\nF1.5\naI42\naL12345678901234567890L\naS'text'\np1\naVunicode \\u00e9\np2\na."
            .to_vec();
    assert_verdict(&clean, "a.pkl", Clean);
    // Without any extension or magic: recognised by content and scanned.
    let report = assert_verdict(b"cos\nsystem\n(S'id'\ntR.", "weights.bin", Malicious);
    assert_eq!(report.format, "pickle");
}

#[test]
fn limits_keep_hostile_pickles_bounded() {
    // A length field claiming more bytes than exist is refused before allocating.
    let mut lie = proto(4);
    lie.push(0x8e);
    lie.extend(u64::MAX.to_le_bytes());
    assert_verdict(&lie, "a.pkl", Malformed);
    // A mark bomb deeper than the stack cap ends the scan, never the process.
    let mut deep = proto(2);
    deep.extend(std::iter::repeat_n(b']', 200_000));
    let report = scan_bytes_default(&deep);
    assert!(report.verdict >= Suspicious, "{:?}", report.verdict);
}

fn scan_bytes_default(bytes: &[u8]) -> kaiyuan_scanner::Report {
    kaiyuan_scanner::scan_bytes(bytes, "x.pkl")
}

#[test]
fn joblib_arrays_are_skipped_so_files_parse_to_the_end() {
    // joblib.dump of a 2x3 float64 array: wrapper, BUILD, alignment padding, raw bytes, STOP.
    let mut p = cat(&[
        &proto(4),
        &[EMPTY_DICT, MARK],
        &unicode("coef"),
        &global("joblib.numpy_pickle", "NumpyArrayWrapper"),
        &[EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, MARK],
    ]);
    p.extend(unicode("shape"));
    p.extend(cat(&[&int(2), &int(3), &[TUPLE2]]));
    p.extend(unicode("dtype"));
    p.extend(cat(&[
        &global("numpy", "dtype"),
        &unicode("f8"),
        &[0x89, 0x88, TUPLE3, REDUCE],
    ]));
    p.extend(unicode("numpy_array_alignment_bytes"));
    p.extend(int(16));
    p.extend([SETITEMS, BUILD]);
    let padding = 3u8;
    p.push(padding);
    p.extend(vec![0xffu8; padding as usize]);
    p.extend(vec![0x80u8; 48]); // raw float64 bytes that would not parse as opcodes
    p.extend([SETITEMS, STOP]);
    let report = assert_verdict(&p, "model.joblib", Clean);
    assert_eq!(report.format, "joblib");
}

#[test]
fn numpy_files() {
    assert_verdict(&npy("<f4", "(2, 3)", &[0u8; 24]), "a.npy", Clean);
    let report = assert_verdict(&npy("<f4", "(2, 3)", &[0u8; 20]), "a.npy", Malformed);
    assert_rule(&report, "npy-size-mismatch");
    let report = assert_verdict(
        &npy("|O", "(1,)", &call("posix", "system", "id")),
        "a.npy",
        Malicious,
    );
    assert_eq!(report.format, "numpy-npy-object");
    let mut npz = Zip::new();
    npz.add_deflated("a.npy", &npy("<f4", "(4,)", &[0u8; 16]))
        .add("b.npy", &npy("<i8", "(1,)", &[0u8; 8]));
    assert_eq!(
        assert_verdict(&npz.finish(), "arrays.npz", Clean).format,
        "numpy-npz"
    );
}

fn tensor_header(entries: &[(&str, &str, &str, u64, u64)]) -> String {
    let items: Vec<String> = entries
        .iter()
        .map(|(n, dt, shape, a, b)| {
            format!("\"{n}\":{{\"dtype\":\"{dt}\",\"shape\":{shape},\"data_offsets\":[{a},{b}]}}")
        })
        .collect();
    format!(
        "{{\"__metadata__\":{{\"format\":\"pt\"}},{}}}",
        items.join(",")
    )
}

#[test]
fn safetensors_structure_is_checked_exactly() {
    let good = safetensors(
        &tensor_header(&[("a", "F32", "[2,2]", 0, 16), ("b", "BF16", "[4]", 16, 24)]),
        &[0u8; 24],
    );
    assert_verdict(&good, "model.safetensors", Clean);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "unknown dtype",
            safetensors(&tensor_header(&[("a", "F13", "[4]", 0, 16)]), &[0u8; 16]),
        ),
        (
            "shape mismatch",
            safetensors(&tensor_header(&[("a", "F32", "[5]", 0, 16)]), &[0u8; 16]),
        ),
        (
            "overlap",
            safetensors(
                &tensor_header(&[("a", "F32", "[4]", 0, 16), ("b", "F32", "[2]", 8, 16)]),
                &[0u8; 16],
            ),
        ),
        (
            "gap",
            safetensors(&tensor_header(&[("a", "F32", "[2]", 8, 16)]), &[0u8; 16]),
        ),
        (
            "out of bounds",
            safetensors(&tensor_header(&[("a", "F32", "[8]", 0, 32)]), &[0u8; 16]),
        ),
        (
            "trailing bytes",
            safetensors(&tensor_header(&[("a", "F32", "[2]", 0, 8)]), &[0u8; 16]),
        ),
        (
            "duplicate keys",
            safetensors(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &[0u8; 4],
            ),
        ),
        (
            "metadata not strings",
            safetensors(r#"{"__metadata__":{"n":1}}"#, &[]),
        ),
        (
            "overflowing shape",
            safetensors(
                &tensor_header(&[("a", "F32", "[4294967296,4294967296]", 0, 16)]),
                &[0u8; 16],
            ),
        ),
    ];
    for (what, bytes) in cases {
        let report = kaiyuan_scanner::scan_bytes(&bytes, "model.safetensors");
        assert_eq!(report.verdict, Malformed, "{what}: {report:#?}");
    }
    let mut huge = (1u64 << 40).to_le_bytes().to_vec();
    huge.extend_from_slice(b"{\"a\":1}");
    assert_verdict(&huge, "model.safetensors", Malformed);
}

fn gguf_u32(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn clean_gguf() -> Gguf {
    let mut kvs = vec![
        ("general.architecture".to_string(), 8, gguf_string("llama")),
        ("general.alignment".to_string(), 4, gguf_u32(32)),
        (
            "tokenizer.chat_template".to_string(),
            8,
            gguf_string("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"),
        ),
    ];
    // Many metadata keys, and a string array as tokenizers have.
    for i in 0..500 {
        kvs.push((format!("custom.key_{i}"), 6, 1.0f32.to_le_bytes().to_vec()));
    }
    let mut tokens = 8u32.to_le_bytes().to_vec();
    tokens.extend(3u64.to_le_bytes());
    for t in ["<s>", "</s>", "hello"] {
        tokens.extend(gguf_string(t));
    }
    kvs.push(("tokenizer.ggml.tokens".into(), 9, tokens));
    Gguf {
        kvs,
        tensors: vec![
            ("a".into(), vec![4, 2], 0, 0),
            ("b".into(), vec![32], 8, 32),
        ],
        data: vec![0u8; 32 + 34],
    }
}

#[test]
fn gguf_structure_and_templates() {
    assert_verdict(&clean_gguf().build(), "model.gguf", Clean);
    let mut ssti = clean_gguf();
    ssti.kvs[2].2 = gguf_string("{{ cycler.__init__.__globals__.os.popen('id').read() }}");
    assert_rule(
        &assert_verdict(&ssti.build(), "model.gguf", Malicious),
        "template-injection",
    );
    let mut misaligned = clean_gguf();
    misaligned.tensors[1].3 = 33;
    assert_verdict(&misaligned.build(), "model.gguf", Malformed);
    let mut outside = clean_gguf();
    outside.tensors[1].1 = vec![32 * 1000];
    assert_verdict(&outside.build(), "model.gguf", Malformed);
    let mut overflow = clean_gguf();
    overflow.tensors[0].1 = vec![1 << 32, 1 << 32, 1 << 32];
    assert_verdict(&overflow.build(), "model.gguf", Malformed);
    let mut overlap = clean_gguf();
    overlap.tensors[1].3 = 0;
    assert_verdict(&overlap.build(), "model.gguf", Malformed);
    let mut bad_type = clean_gguf();
    bad_type.tensors[0].2 = 99;
    assert_verdict(&bad_type.build(), "model.gguf", Malformed);
    // Counts and lengths far beyond the file.
    let mut counts = b"GGUF".to_vec();
    counts.extend(3u32.to_le_bytes());
    counts.extend((1u64 << 62).to_le_bytes());
    counts.extend(0u64.to_le_bytes());
    assert_verdict(&counts, "model.gguf", Malformed);
    let mut key = b"GGUF".to_vec();
    key.extend(3u32.to_le_bytes());
    key.extend(0u64.to_le_bytes());
    key.extend(1u64.to_le_bytes());
    key.extend((1u64 << 62).to_le_bytes());
    assert_verdict(&key, "model.gguf", Malformed);
}

fn onnx_tensor(name: &str, dims: &[u64], external: Option<&str>) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = dims.iter().map(|d| pb::int(1, *d)).collect();
    parts.push(pb::int(2, 1));
    parts.push(pb::bytes(8, name.as_bytes()));
    match external {
        Some(location) => {
            parts.push(pb::msg(
                13,
                &[pb::bytes(1, b"location"), pb::bytes(2, location.as_bytes())],
            ));
            parts.push(pb::msg(
                13,
                &[
                    pb::bytes(1, b"length"),
                    pb::bytes(2, (dims.iter().product::<u64>() * 4).to_string().as_bytes()),
                ],
            ));
            parts.push(pb::int(14, 1));
        }
        None => parts.push(pb::bytes(
            9,
            &vec![0u8; (dims.iter().product::<u64>() * 4) as usize],
        )),
    }
    parts.concat()
}

fn onnx_model(nodes: &[Vec<u8>], initializers: &[Vec<u8>], functions: &[Vec<u8>]) -> Vec<u8> {
    let mut graph: Vec<Vec<u8>> = nodes.iter().map(|n| pb::bytes(1, n)).collect();
    graph.push(pb::bytes(2, b"main"));
    graph.extend(initializers.iter().map(|t| pb::bytes(5, t)));
    let mut model = vec![
        pb::int(1, 8),
        pb::bytes(2, b"pytorch"),
        pb::msg(7, &graph),
        pb::msg(8, &[pb::bytes(1, b""), pb::int(2, 17)]),
    ];
    model.extend(functions.iter().map(|f| pb::bytes(25, f)));
    model.concat()
}

fn onnx_node(op: &str, domain: &str, attributes: &[Vec<u8>]) -> Vec<u8> {
    let mut parts = vec![
        pb::bytes(1, b"x"),
        pb::bytes(2, b"y"),
        pb::bytes(3, format!("{op}_0").as_bytes()),
        pb::bytes(4, op.as_bytes()),
        pb::bytes(7, domain.as_bytes()),
    ];
    parts.extend(attributes.iter().map(|a| pb::bytes(5, a)));
    parts.concat()
}

#[test]
fn onnx_external_data_domains_and_subgraphs() {
    let clean = onnx_model(
        &[onnx_node("MatMul", "", &[])],
        &[
            onnx_tensor("W", &[2, 2], Some("weights/model.onnx.data")),
            onnx_tensor("b", &[2], None),
        ],
        &[],
    );
    assert_verdict(&clean, "model.onnx", Clean);
    // Recognised without the extension too.
    assert_eq!(kaiyuan_scanner::scan_bytes(&clean, "model").format, "onnx");
    for (location, expected) in [
        ("/etc/passwd", Malicious),
        ("../../etc/passwd", Malicious),
        ("sub/../../x", Malicious),
        ("C:\\x", Malicious),
        ("a\\b", Suspicious),
    ] {
        let model = onnx_model(&[], &[onnx_tensor("W", &[2], Some(location))], &[]);
        let report = kaiyuan_scanner::scan_bytes(&model, "model.onnx");
        assert_eq!(report.verdict, expected, "{location}: {report:#?}");
    }
    // A traversal hidden in the else-branch subgraph of an If node.
    let subgraph = pb::msg(
        6,
        &[pb::bytes(
            5,
            &onnx_tensor("hidden", &[1], Some("../secret")),
        )],
    );
    let attribute = [pb::bytes(1, b"else_branch"), pb::int(20, 5), subgraph].concat();
    let model = onnx_model(&[onnx_node("If", "", &[attribute])], &[], &[]);
    assert_verdict(&model, "model.onnx", Malicious);
    // Custom operator domains need native code; a local function's domain does not.
    let custom = onnx_model(&[onnx_node("Evil", "com.example.ops", &[])], &[], &[]);
    assert_rule(
        &assert_verdict(&custom, "model.onnx", Suspicious),
        "onnx-custom-domain",
    );
    let function = [
        pb::bytes(1, b"Gelu"),
        pb::bytes(10, b"pkg.local"),
        pb::bytes(7, &onnx_node("Mul", "", &[])),
    ]
    .concat();
    let local = onnx_model(&[onnx_node("Gelu", "pkg.local", &[])], &[], &[function]);
    assert_verdict(&local, "model.onnx", Clean);
    // Sizes that contradict the dims, and truncation.
    let mut lie = onnx_tensor("W", &[4], None);
    lie.truncate(lie.len() - 4); // 12 bytes of raw data for four floats
    assert_verdict(&onnx_model(&[], &[lie], &[]), "model.onnx", Malformed);
    let mismatch = onnx_model(
        &[],
        &[[
            pb::int(1, 4),
            pb::int(2, 1),
            pb::bytes(8, b"W"),
            pb::bytes(9, &[0u8; 8]),
        ]
        .concat()],
        &[],
    );
    assert_verdict(&mismatch, "model.onnx", Malformed);
    assert_verdict(&clean[..clean.len() - 7], "model.onnx", Malformed);
}

#[test]
fn tensorflow_graph_ops() {
    let node = |op: &str| pb::msg(1, &[pb::bytes(1, b"n"), pb::bytes(2, op.as_bytes())]);
    let saved_model = |ops: &[&str]| {
        let graph: Vec<Vec<u8>> = ops.iter().map(|op| node(op)).collect();
        [pb::int(1, 1), pb::msg(2, &[pb::msg(2, &graph)])].concat()
    };
    assert_verdict(
        &saved_model(&["Placeholder", "MatMul", "SaveV2", "RestoreV2"]),
        "saved_model.pb",
        Clean,
    );
    assert_rule(
        &assert_verdict(
            &saved_model(&["Placeholder", "ReadFile"]),
            "saved_model.pb",
            Malicious,
        ),
        "tf-dangerous-op",
    );
    // Ops inside the function library are found too.
    let library = [
        pb::int(1, 1),
        pb::msg(
            2,
            &[pb::msg(
                2,
                &[pb::msg(
                    2,
                    &[pb::msg(1, &[pb::msg(3, &[pb::bytes(2, b"PyFunc")])])],
                )],
            )],
        ),
    ]
    .concat();
    assert_verdict(&library, "saved_model.pb", Malicious);
}

#[test]
fn keras_configs() {
    let dense = r#"{"class_name":"Sequential","config":{"layers":[{"module":"keras.layers","class_name":"InputLayer","config":{}},{"module":"keras.layers","class_name":"Dense","config":{"units":2}}]}}"#;
    let keras = |config: &str| {
        let mut z = Zip::new();
        z.add("metadata.json", br#"{"keras_version":"3.5.0"}"#)
            .add("config.json", config.as_bytes())
            .add("model.weights.h5", b"\x89HDF\r\n\x1a\nweights");
        z.finish()
    };
    assert_eq!(
        assert_verdict(&keras(dense), "model.keras", Clean).format,
        "keras"
    );
    let lambda = dense.replace("\"Dense\"", "\"Lambda\"");
    assert_rule(
        &assert_verdict(&keras(&lambda), "model.keras", Malicious),
        "keras-lambda",
    );
    let gadget = dense.replace(
        "\"keras.layers\",\"class_name\":\"Dense\"",
        "\"os\",\"class_name\":\"system\"",
    );
    assert_rule(
        &assert_verdict(&keras(&gadget), "model.keras", Malicious),
        "keras-foreign-module",
    );
    let mut h5 = b"\x89HDF\r\n\x1a\n\0\0\0binary".to_vec();
    h5.extend_from_slice(lambda.as_bytes());
    h5.extend_from_slice(b"\0\0more");
    assert_verdict(&h5, "model.h5", Malicious);
}

#[test]
fn archive_hygiene() {
    let mut traversal = Zip::new();
    traversal.add("../../etc/cron.d/x", b"x");
    assert_rule(
        &assert_verdict(&traversal.finish(), "bundle.zip", Malicious),
        "archive-path-traversal",
    );
    let mut link = Zip::new();
    link.add_symlink("config.json", "/etc/passwd");
    assert_rule(
        &assert_verdict(&link.finish(), "bundle.zip", Malicious),
        "archive-link",
    );
    let mut bomb = Zip::new();
    bomb.add_deflated("zeros.bin", &vec![0u8; 20 * 1024 * 1024]);
    assert_rule(
        &assert_verdict(&bomb.finish(), "bundle.zip", Malicious),
        "archive-bomb",
    );
    let mut inner = Zip::new();
    inner.add("data.pkl", &call("posix", "system", "id"));
    let mut outer = Zip::new();
    outer.add("inner.zip", &inner.finish());
    let report = assert_verdict(&outer.finish(), "bundle.zip", Malicious);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.location.starts_with("inner.zip!data.pkl")),
        "{report:#?}"
    );
    let mut dup = Zip::new();
    dup.add("a.json", b"{}").add("a.json", b"{}");
    assert_rule(
        &assert_verdict(&dup.finish(), "bundle.zip", Suspicious),
        "archive-duplicate-member",
    );
    // Nesting beyond the limit is reported, never followed forever.
    let mut nested = Zip::new().add("x.json", b"{}").finish();
    for _ in 0..10 {
        let mut z = Zip::new();
        z.add("n.zip", &nested);
        nested = z.finish();
    }
    assert_rule(
        &assert_verdict(&nested, "deep.zip", Suspicious),
        "archive-too-deep",
    );
    let mut clean = Zip::new();
    clean
        .add(
            "model.safetensors",
            &safetensors(&tensor_header(&[("a", "F32", "[1]", 0, 4)]), &[0u8; 4]),
        )
        .add_deflated("config.json", br#"{"hidden_size": 8}"#);
    assert_verdict(&clean.finish(), "bundle.zip", Clean);
}

#[test]
fn tar_and_gzip() {
    let evil = call("posix", "system", "id");
    assert_verdict(
        &tar(&[
            ("config.json", b'0', b"{}", ""),
            ("data.pkl", b'0', &evil, ""),
        ]),
        "x.tar",
        Malicious,
    );
    assert_rule(
        &assert_verdict(
            &tar(&[("passwd", b'2', b"", "/etc/passwd")]),
            "x.tar",
            Malicious,
        ),
        "archive-link",
    );
    assert_verdict(
        &tar(&[("hard", b'1', b"", "/etc/shadow")]),
        "x.tar",
        Malicious,
    );
    assert_verdict(&tar(&[("../x", b'0', b"x", "")]), "x.tar", Malicious);
    assert_verdict(
        &tar(&[("config.json", b'0', b"{\"a\": 1}", "")]),
        "x.tar",
        Clean,
    );
    assert_verdict(&gzip(&evil), "x.pkl.gz", Malicious);
    assert_verdict(
        &gzip(&tar(&[("config.json", b'0', b"{}", "")])),
        "x.tar.gz",
        Clean,
    );
    assert_rule(
        &assert_verdict(&gzip(&vec![0u8; 50 * 1024 * 1024]), "zeros.gz", Malicious),
        "archive-bomb",
    );
}

#[test]
fn content_that_contradicts_its_extension_is_reported() {
    let report = assert_verdict(
        &call("posix", "system", "id"),
        "model.safetensors",
        Malicious,
    );
    assert_rule(&report, "extension-mismatch");
    let report = assert_verdict(
        &Zip::new().add("a.json", b"{}").finish(),
        "model.gguf",
        Suspicious,
    );
    assert_rule(&report, "extension-mismatch");
}

#[test]
fn tokenizer_configs_and_code_files() {
    assert_verdict(
        br#"{"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}"#,
        "tokenizer_config.json",
        Clean,
    );
    assert_verdict(
        br#"{"chat_template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}"#,
        "tokenizer_config.json",
        Malicious,
    );
    assert_rule(
        &assert_verdict(b"import torch\n", "modeling_custom.py", Suspicious),
        "executable-content",
    );
    assert_rule(
        &assert_verdict(b"\x7fELF\x02\x01\x01\0rest", "custom_op.so", Suspicious),
        "native-code",
    );
    assert_verdict(
        &[0x13u8, 0x37, 0x42, 0x99, 0x10, 0x20],
        "model.onnx.data",
        Clean,
    );
}

#[test]
fn huge_memos_of_ordinary_pickles_stay_clean() {
    // Two million memoized objects: far beyond any cap on kept values, still parsed exactly.
    let mut p = proto(4);
    p.extend([b']', MEMOIZE, MARK]);
    for i in 0..2_000_000u32 {
        p.extend(unicode(&format!("item-{}", i % 1000)));
        p.push(MEMOIZE);
        if i % 1000 == 999 {
            p.extend([b'e', MARK]);
        }
    }
    p.extend([b'e', b'h', 0, b'0', STOP]);
    let report = assert_verdict(&p, "big.pkl", Clean);
    assert!(report.findings.is_empty());
}

/// Found by fuzzing: a length near u64::MAX after some retained bytes overflowed the budget sum.
#[test]
fn huge_length_fields_after_retained_bytes_do_not_overflow() {
    for op in [0x8eu8, 0x8d] {
        let mut p = cat(&[&proto(4), &unicode("retained")]);
        p.push(op);
        p.extend((u64::MAX - 3).to_le_bytes());
        assert_verdict(&p, "a.pkl", Malformed);
    }
}

/// Found by fuzzing: a list appended to itself formed a reference cycle that leaked memory on
/// every scan. Containers are stored detached; the pickle is still parsed to its end. A dict
/// used as a key of itself is refused by CPython (unhashable), so it is malformed, and what
/// follows it never runs.
#[test]
fn self_referencing_containers_parse() {
    let cyclic = cat(&[&proto(2), &[b']', b'q', 0, b'h', 0, b'a', STOP]]);
    assert_verdict(&cyclic, "a.pkl", Clean);
    let dict_key_of_itself = cat(&[
        &proto(2),
        &[b'}', b'q', 1, b'h', 1, b'h', 1, b's', b'0'],
        &call("os", "system", "id"),
    ]);
    let report = assert_verdict(&dict_key_of_itself, "a.pkl", Malformed);
    assert_rule(&report, "pickle-malformed");
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.rule == "pickle-dangerous-global")
    );
}

#[test]
fn hdf5_configs_are_found_anywhere_in_the_file() {
    let lambda = r#"{"class_name":"Sequential","config":{"layers":[{"class_name":"Lambda","config":{"function":"x"}}]}}"#;
    for at in [100usize, (1 << 20) - 5, 3 << 20] {
        let mut h5 = b"\x89HDF\r\n\x1a\n".to_vec();
        h5.resize(at, 0);
        h5.extend_from_slice(lambda.as_bytes());
        h5.extend_from_slice(&[0u8; 64]);
        let report = assert_verdict(&h5, "model.h5", Malicious);
        assert_eq!(report.format, "keras-h5", "config at {at}");
    }
    let mut clean = b"\x89HDF\r\n\x1a\n".to_vec();
    clean.extend_from_slice(br#"{"class_name":"Sequential","config":{"layers":[{"module":"keras.layers","class_name":"Dense","config":{}}]}}"#);
    assert_verdict(&clean, "model.h5", Clean);
}

#[test]
fn pytorch_storages_must_match_their_references() {
    // data.pkl refers to storage "5", which does not exist.
    let missing = pytorch_zip(
        &state_dict_pickle(&[("w", "0"), ("b", "1"), ("x", "5")]),
        &[],
    );
    assert_rule(
        &assert_verdict(&missing, "model.pt", Malformed),
        "pytorch-missing-storage",
    );
    // A storage whose size contradicts numel × element size.
    let mut zip = Zip::new();
    zip.add("archive/data.pkl", &state_dict_pickle(&[("w", "0")]))
        .add("archive/data/0", &[0u8; 12])
        .add("archive/version", b"3\n");
    assert_rule(
        &assert_verdict(&zip.finish(), "model.pt", Malformed),
        "pytorch-storage-size",
    );
    // A storage nothing refers to: bytes hidden in the checkpoint.
    let unreferenced = pytorch_zip(&state_dict_pickle(&[("w", "0")]), &[]);
    assert_rule(
        &assert_verdict(&unreferenced, "model.pt", Suspicious),
        "pytorch-unreferenced-member",
    );
}

#[test]
fn members_missing_from_the_central_directory_are_found_and_scanned() {
    let mut zip = Zip::new();
    zip.add("archive/data.pkl", &state_dict_pickle(&[("w", "0")]))
        .add_hidden("archive/evil.pkl", &call("posix", "system", "id"))
        .add("archive/data/0", &1.5f32.to_le_bytes().repeat(4))
        .add("archive/version", b"3\n");
    let report = assert_verdict(&zip.finish(), "model.pt", Malicious);
    assert_rule(&report, "zip-hidden-entry");
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.location.contains("<hidden archive/evil.pkl>")
                && f.evidence.as_deref() == Some("posix.system")),
        "{report:#?}"
    );
}

#[test]
fn tensorflow_graphs_are_recognised_without_their_usual_names() {
    let node = |op: &str| pb::msg(1, &[pb::bytes(1, b"n"), pb::bytes(2, op.as_bytes())]);
    let saved_model = [
        pb::int(1, 1),
        pb::msg(2, &[pb::msg(2, &[node("Placeholder"), node("ReadFile")])]),
    ]
    .concat();
    let report = assert_verdict(&saved_model, "weights.bin", Malicious);
    assert_eq!(report.format, "tf-savedmodel");
    // A frozen GraphDef (nodes at the top level) named .pb.
    let frozen = [node("Const"), node("PyFunc")].concat();
    assert_verdict(&frozen, "frozen_graph.pb", Malicious);
}

#[test]
fn zstd_wrapped_content_is_inflated_and_scanned() {
    let zst = |data: &[u8]| {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    };
    let report = assert_verdict(
        &zst(&call("posix", "system", "id")),
        "model.pkl.zst",
        Malicious,
    );
    assert_eq!(report.format, "zstd");
    assert_verdict(
        &zst(&tar(&[("config.json", b'0', b"{}", "")])),
        "bundle.tar.zst",
        Clean,
    );
    assert_rule(
        &assert_verdict(b"\x28\xb5\x2f\xfd\x00\x00garbage", "x.zst", Malformed),
        "compression-malformed",
    );
}
