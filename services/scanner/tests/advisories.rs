//! One generated pickle per bypass family published against picklescan, fickling and modelscan
//! (their GitHub security advisories and test suites; docs/SCANNER.md lists them). Each loads
//! code, files, the network, processes or another interpreter, so each must be `malicious`,
//! whichever opcode names the callable, and the finding must name the advisory.

mod support;

use kaiyuan_scanner::Verdict::Malicious;
use support::pk::*;
use support::*;

/// (advisory, module, callable): the callable each advisory's proof of concept reaches.
const CALLABLES: &[(&str, &str, &str)] = &[
    // picklescan
    (
        "GHSA-4r9r-ch6f-vxmx",
        "torch.utils.bottleneck.__main__",
        "run_cprofile",
    ),
    (
        "GHSA-4whj-rm5r-c2v8",
        "torch.utils.bottleneck.__main__",
        "run_autograd_prof",
    ),
    (
        "GHSA-86cj-95qr-2p4f",
        "torch._dynamo.guards",
        "GuardBuilder.get",
    ),
    (
        "GHSA-f4x7-rfwp-v3xw",
        "torch.fx.experimental.symbolic_shapes",
        "ShapeEnv.evaluate_guards_expression",
    ),
    ("GHSA-f745-w6jp-hpxx", "torch.utils.collect_env", "run"),
    (
        "GHSA-jhph-76pp-mggw",
        "torch.utils.collect_env",
        "run_and_read_all",
    ),
    (
        "GHSA-h3qp-7fh3-f8h4",
        "torch.utils.data.datapipes.utils.decoder",
        "basichandlers",
    ),
    (
        "GHSA-vr7h-p6mm-wpmh",
        "torch.jit.unsupported_tensor_ops",
        "execWrapper",
    ),
    (
        "GHSA-vv6j-3g6g-2pvj",
        "torch.utils._config_module",
        "ConfigModule.load_config",
    ),
    ("GHSA-5qwp-399c-mjwf", "trace", "Trace.run"),
    ("GHSA-g344-hcph-8vgg", "trace", "Trace.runctx"),
    ("GHSA-x696-vm39-cp64", "profile", "Profile.run"),
    ("GHSA-6vqj-c2q5-j97w", "profile", "Profile.runctx"),
    ("GHSA-7wx9-6375-f5wh", "profile", "run"),
    (
        "GHSA-f54q-57x4-jg88",
        "lib2to3.pgen2.grammar",
        "Grammar.loads",
    ),
    (
        "GHSA-p9w7-82w4-7q8m",
        "lib2to3.pgen2.pgen",
        "ParserGenerator.make_label",
    ),
    (
        "GHSA-3vg9-h568-4w9m",
        "idlelib.debugobj",
        "ObjectTreeItem.SetText",
    ),
    (
        "GHSA-6w4w-5w54-rjvr",
        "idlelib.autocomplete",
        "AutoComplete.get_entity",
    ),
    (
        "GHSA-7cq8-mj8x-j263",
        "idlelib.autocomplete",
        "AutoComplete.fetch_completions",
    ),
    (
        "GHSA-8r4j-24qv-fmq9",
        "idlelib.calltip",
        "Calltip.fetch_tip",
    ),
    ("GHSA-9xph-j2h6-g47v", "idlelib.calltip", "get_entity"),
    ("GHSA-m869-42cg-3xwr", "idlelib.run", "Executive.runcode"),
    (
        "GHSA-j343-8v2j-ff7w",
        "idlelib.pyshell",
        "ModifiedInterpreter.runcommand",
    ),
    (
        "GHSA-3gf5-cxq9-w223",
        "idlelib.pyshell",
        "ModifiedInterpreter.runcode",
    ),
    (
        "GHSA-cj3c-v495-4xqh",
        "code",
        "InteractiveInterpreter.runcode",
    ),
    ("GHSA-xp4f-hrf8-rxw7", "ensurepip", "_run_pip"),
    ("GHSA-fqq6-7vqf-w3fg", "doctest", "debug_script"),
    ("GHSA-9w88-8rmg-7g2p", "cProfile", "runctx"),
    ("GHSA-49gj-c84q-6qm9", "cProfile", "run"),
    (
        "GHSA-q77w-mwjj-7mqx",
        "asyncio.unix_events",
        "_UnixSubprocessTransport._start",
    ),
    ("GHSA-m273-6v24-x4m4", "distutils.file_util", "write_file"),
    ("GHSA-4675-36f9-wf6r", "ctypes", "CDLL"),
    ("GHSA-84r2-jw7c-4r5q", "pydoc", "locate"),
    ("GHSA-84r2-jw7c-4r5q", "operator", "methodcaller"),
    ("GHSA-955r-x9j8-7rhh", "_operator", "attrgetter"),
    ("GHSA-vqmv-47xg-9wpr", "pty", "spawn"),
    (
        "GHSA-r8g5-cgf2-4m4m",
        "numpy.f2py.crackfortran",
        "getlincoef",
    ),
    ("GHSA-vvpj-8cmc-gx39", "pkgutil", "resolve_name"),
    ("GHSA-g38g-8gr9-h9xp", "codeop", "compile_command"),
    ("GHSA-g38g-8gr9-h9xp", "compileall", "compile_dir"),
    ("GHSA-g38g-8gr9-h9xp", "py_compile", "compile"),
    ("GHSA-g38g-8gr9-h9xp", "runpy", "run_path"),
    ("GHSA-g38g-8gr9-h9xp", "pdb", "run"),
    ("GHSA-g38g-8gr9-h9xp", "imaplib", "IMAP4_stream"),
    ("GHSA-g38g-8gr9-h9xp", "_pyrepl.pager", "pipe_pager"),
    (
        "GHSA-g38g-8gr9-h9xp",
        "test.support.script_helper",
        "assert_python_ok",
    ),
    ("GHSA-g38g-8gr9-h9xp", "uuid", "_get_command_stdout"),
    ("GHSA-5hwf-rc88-82xm", "_osx_support", "_read_output"),
    ("GHSA-5hwf-rc88-82xm", "_aix_support", "_read_cmd_output"),
    // fickling
    ("GHSA-565g-hwwr-4pp3", "marshal", "loads"),
    ("GHSA-565g-hwwr-4pp3", "types", "FunctionType"),
    ("GHSA-q5qq-mvfm-j35x", "importlib", "import_module"),
    ("GHSA-q5qq-mvfm-j35x", "code", "InteractiveInterpreter"),
    (
        "GHSA-q5qq-mvfm-j35x",
        "multiprocessing.util",
        "spawnv_passfds",
    ),
    ("GHSA-h4rm-mm56-xf63", "builtins", "getattr"),
    ("GHSA-mhc9-48gj-9gp3", "smtplib", "SMTP"),
    ("GHSA-mhc9-48gj-9gp3", "socketserver", "TCPServer"),
    ("GHSA-mhc9-48gj-9gp3", "signal", "pthread_kill"),
    ("GHSA-mhc9-48gj-9gp3", "sqlite3", "connect"),
    ("GHSA-m6fh-58r7-x697", "_posixsubprocess", "fork_exec"),
    ("GHSA-m6fh-58r7-x697", "site", "addsitedir"),
    ("GHSA-m6fh-58r7-x697", "atexit", "register"),
];

/// `module.name("x")` through STACK_GLOBAL (protocol 4, dotted names resolved as CPython does).
fn stack_global_call(module: &str, name: &str) -> Vec<u8> {
    cat(&[
        &proto(4),
        &unicode(module),
        &unicode(name),
        &[STACK_GLOBAL],
        &unicode("x"),
        &[TUPLE1, REDUCE, STOP],
    ])
}

#[test]
fn every_published_callable_is_malicious_and_names_its_advisory() {
    let mut failures = Vec::new();
    for (advisory, module, name) in CALLABLES {
        let mut files = vec![("STACK_GLOBAL", stack_global_call(module, name))];
        if !name.contains('.') {
            files.push(("GLOBAL", call(module, name, "x")));
        }
        for (how, bytes) in files {
            let report = verdict_of(&bytes, "model.bin");
            let named = report
                .findings
                .iter()
                .any(|f| f.severity == Malicious && f.message.contains(advisory));
            if report.verdict != Malicious || !named {
                failures.push(format!(
                    "{advisory} {module}.{name} via {how}: {:?}, findings {:?}",
                    report.verdict,
                    report
                        .findings
                        .iter()
                        .map(|f| &f.message)
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn published_loading_paths_are_malicious() {
    let system = cat(&[
        &global("posix", "system"),
        &unicode("id"),
        &[TUPLE1, REDUCE],
    ]);
    // picklescan GHSA-9gvj-pp9x-gcfr: STACK_GLOBAL fed by protocol-0 STRING opcodes.
    let strings = b"S'os'\nS'system'\n\x93S'id'\n\x85R.".to_vec();
    assert_rule(
        &assert_verdict(&strings, "a.pkl", Malicious),
        "pickle-dangerous-global",
    );
    // picklescan test suite (keyerror-exploit, type-confusion-exploit): a call first, then a
    // memo read of a key never stored or of a non-string, which stops other scanners' lookback.
    for tail in [
        &[b'h', 3, b'h', 0, STACK_GLOBAL][..],
        &[b'h', 0, b'h', 1, STACK_GLOBAL],
    ] {
        let p = cat(&[
            &proto(4),
            &system,
            b"0",
            &[b'J', 42, 0, 0, 0, MEMOIZE],
            &unicode("os"),
            &[MEMOIZE],
            tail,
            &[STOP],
        ]);
        assert_verdict(&p, "a.pkl", Malicious);
    }
    // fickling GHSA-mxhj-88fx-4pcv: an OBJ call whose result is popped at once.
    let obj_pop = cat(&[
        &proto(2),
        &[MARK],
        &global("posix", "system"),
        &unicode("id"),
        b"o0",
        &[NONE, STOP],
    ]);
    assert_verdict(&obj_pop, "a.pkl", Malicious);
    // fickling GHSA-mhc9-48gj-9gp3: a BUILD puts a __setstate__ into an object's attributes and
    // the next BUILD calls it; even an allowed callable there is a call no REDUCE shows.
    let setstate = cat(&[
        &proto(2),
        &global("argparse", "Namespace"),
        &[EMPTY_TUPLE, NEWOBJ, EMPTY_DICT],
        &unicode("__setstate__"),
        &global("builtins", "len"),
        &[b's', BUILD],
        &unicode("abc"),
        &[BUILD, STOP],
    ]);
    assert_rule(
        &assert_verdict(&setstate, "a.pkl", Malicious),
        "pickle-setstate-injection",
    );
    // picklescan GHSA-jgw4-cr84-mqxg: the same gadget under a PyTorch extension.
    let transport = stack_global_call("asyncio.unix_events", "_UnixSubprocessTransport._start");
    assert_verdict(&transport, "pytorch_model.bin", Malicious);
    // Another interpreter and TorchScript's native loader, beyond the advisories.
    for (module, name) in [
        ("_testcapi", "run_in_subinterp"),
        ("_interpreters", "exec"),
        ("torch._C", "import_ir_module"),
        ("rlcompleter", "Completer"),
    ] {
        assert_verdict(&call(module, name, "x"), "a.pkl", Malicious);
    }
}
