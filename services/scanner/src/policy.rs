//! Which callables a pickle may import. Allow list first: only tensor, array and container
//! rebuild functions pass. The deny list names known-dangerous modules and callables so that the
//! finding can say why; anything on neither list is at least suspicious.

pub enum Class {
    Allowed,
    Dangerous(&'static str),
    Unknown,
}

/// Exact `module.name` pairs that rebuild data and nothing else.
const ALLOWED: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("collections", "deque"),
    ("collections", "Counter"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "slice"),
    ("builtins", "range"),
    ("builtins", "complex"),
    ("builtins", "object"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "tuple"),
    ("builtins", "int"),
    ("builtins", "float"),
    ("builtins", "str"),
    ("builtins", "bool"),
    ("builtins", "bytes"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
    ("__builtin__", "bytearray"),
    ("__builtin__", "slice"),
    ("__builtin__", "complex"),
    ("__builtin__", "object"),
    ("__builtin__", "long"),
    ("__builtin__", "unicode"),
    ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("decimal", "Decimal"),
    ("fractions", "Fraction"),
    ("uuid", "UUID"),
    ("argparse", "Namespace"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._utils", "_rebuild_meta_tensor_no_storage"),
    ("torch._utils", "_rebuild_wrapper_subclass"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch", "Tensor"),
    ("torch.nn.parameter", "Parameter"),
    ("torch.storage", "UntypedStorage"),
    ("torch.storage", "TypedStorage"),
    ("torch", "UntypedStorage"),
    ("torch", "TypedStorage"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
];

/// torch attributes that are dtypes, layouts and storage classes (data, not code).
fn torch_data_name(name: &str) -> bool {
    name.ends_with("Storage")
        || matches!(
            name,
            "float16"
                | "float32"
                | "float64"
                | "bfloat16"
                | "half"
                | "float"
                | "double"
                | "int8"
                | "int16"
                | "int32"
                | "int64"
                | "uint8"
                | "uint16"
                | "uint32"
                | "uint64"
                | "bool"
                | "complex64"
                | "complex128"
                | "long"
                | "int"
                | "short"
                | "float8_e4m3fn"
                | "float8_e5m2"
                | "strided"
                | "sparse_coo"
                | "contiguous_format"
                | "channels_last"
                | "preserve_format"
                | "qint8"
                | "quint8"
                | "qint32"
                | "per_tensor_affine"
                | "per_channel_affine"
        )
}

/// Modules (and their submodules) whose callables run code, touch files, processes or the
/// network, or load further serialised objects.
const DANGEROUS_MODULES: &[(&str, &str)] = &[
    ("os", "operating-system access (commands, files)"),
    ("posix", "operating-system access (commands, files)"),
    ("nt", "operating-system access (commands, files)"),
    ("subprocess", "runs programs"),
    ("_posixsubprocess", "runs programs"),
    ("_winapi", "runs programs"),
    ("pty", "spawns a shell"),
    ("sys", "interpreter internals"),
    ("runpy", "runs Python code"),
    ("code", "runs Python code"),
    ("codeop", "compiles Python code"),
    ("importlib", "imports arbitrary modules"),
    ("imp", "imports arbitrary modules"),
    ("pkgutil", "imports arbitrary modules"),
    ("zipimport", "imports arbitrary modules"),
    ("inspect", "reaches arbitrary attributes"),
    ("operator", "calls arbitrary attributes"),
    ("_operator", "calls arbitrary attributes"),
    ("functools", "wraps arbitrary callables"),
    ("types", "builds code and function objects"),
    ("marshal", "loads code objects"),
    ("pickle", "loads a nested pickle"),
    ("_pickle", "loads a nested pickle"),
    ("cPickle", "loads a nested pickle"),
    ("pickletools", "pickle machinery"),
    ("dill", "loads a nested pickle"),
    ("cloudpickle", "loads a nested pickle"),
    ("shelve", "loads nested pickles"),
    ("joblib", "loads a nested pickle"),
    ("socket", "opens network connections"),
    ("socketserver", "opens network connections"),
    ("ssl", "opens network connections"),
    ("http", "network access"),
    ("httplib", "network access"),
    ("urllib", "network access"),
    ("urllib2", "network access"),
    ("urllib3", "network access"),
    ("requests", "network access"),
    ("aiohttp", "network access"),
    ("httpx", "network access"),
    ("ftplib", "network access"),
    ("smtplib", "network access"),
    ("telnetlib", "network access"),
    ("imaplib", "network access"),
    ("poplib", "network access"),
    ("nntplib", "network access"),
    ("xmlrpc", "network access"),
    ("webbrowser", "opens a browser (runs programs)"),
    ("antigravity", "opens a browser (runs programs)"),
    ("shutil", "copies and deletes files"),
    ("tempfile", "creates files"),
    ("glob", "lists files"),
    ("pathlib", "file access"),
    ("io", "file access"),
    ("_io", "file access"),
    ("fileinput", "file access"),
    ("linecache", "file access"),
    ("zipfile", "file access"),
    ("tarfile", "file access"),
    ("logging", "file access (handlers)"),
    ("sqlite3", "file access"),
    ("dbm", "file access"),
    ("ctypes", "calls native code"),
    ("cffi", "calls native code"),
    ("multiprocessing", "runs processes"),
    ("concurrent", "runs processes and threads"),
    ("threading", "runs threads"),
    ("_thread", "runs threads"),
    ("asyncio", "runs processes and network code"),
    ("signal", "process control"),
    ("platform", "runs programs (popen)"),
    ("uuid", "runs programs (_get_command_stdout)"),
    ("cProfile", "runs Python code (run)"),
    ("profile", "runs Python code (run)"),
    ("pdb", "runs Python code"),
    ("bdb", "runs Python code"),
    ("trace", "runs Python code"),
    ("timeit", "runs Python code"),
    ("doctest", "runs Python code"),
    ("pydoc", "runs programs"),
    ("idlelib", "runs Python code"),
    ("lib2to3", "runs Python code"),
    ("ensurepip", "installs packages"),
    ("pip", "installs packages (runs code)"),
    ("setuptools", "builds and runs code"),
    ("distutils", "builds and runs code"),
    ("venv", "creates environments and runs programs"),
    ("site", "interpreter setup"),
    ("mailcap", "runs programs"),
    ("commands", "runs programs"),
    ("popen2", "runs programs"),
    ("compileall", "compiles code"),
    ("py_compile", "compiles code"),
    (
        "builtins",
        "interpreter builtins (eval, exec, open, getattr, __import__)",
    ),
    (
        "__builtin__",
        "interpreter builtins (eval, exec, open, getattr, __import__)",
    ),
    (
        "__builtins__",
        "interpreter builtins (eval, exec, open, getattr, __import__)",
    ),
    ("_osx_support", "runs programs"),
    ("_aix_support", "runs programs"),
    ("_pyrepl", "runs programs"),
    ("test", "Python's test helpers run code"),
    ("unittest", "runs code"),
    ("yaml", "unsafe loaders"),
    ("jinja2", "template execution"),
    ("mlflow", "loads models and runs code"),
    ("tensorflow", "loads and runs graphs"),
    ("keras", "loads models and runs code"),
    ("torch.serialization", "loads a nested checkpoint"),
    ("torch.hub", "downloads and runs code"),
    ("torch.jit", "loads TorchScript (runs code)"),
    ("torch.utils", "helpers that run programs (collect_env.run)"),
    ("torch._dynamo", "compiles and runs code"),
    ("torch._inductor", "compiles and runs code"),
    ("torch.package", "loads packaged code"),
    ("numpy.f2py", "compiles and runs code"),
    ("numpy.distutils", "builds and runs code"),
    ("numpy.ctypeslib", "loads native libraries"),
    ("numpy.testing", "runs programs"),
    ("pandas.io", "reads files and URLs"),
];

/// Exact callables that are dangerous although their module is not.
const DANGEROUS_CALLABLES: &[(&str, &str, &str)] = &[
    ("torch", "load", "loads a nested checkpoint"),
    ("torch", "_load_from_bytes", "loads a nested checkpoint"),
    (
        "torch.storage",
        "_load_from_bytes",
        "loads a nested checkpoint",
    ),
    (
        "numpy",
        "load",
        "loads a nested array file (pickles allowed)",
    ),
    ("numpy", "loads", "loads a nested pickle"),
    ("numpy.lib.npyio", "load", "loads a nested array file"),
    ("pandas", "read_pickle", "loads a nested pickle"),
    ("pandas", "eval", "evaluates expressions"),
    ("codecs", "open", "file access"),
];

/// Callables whose byte arguments are themselves serialised objects worth scanning.
/// Whether a community deny entry (`module.name` or `module.*`) covers the callable.
pub fn community_denied(entries: &[String], module: &str, name: &str) -> bool {
    entries.iter().any(|e| match e.strip_suffix(".*") {
        Some(m) => {
            module == m
                || module
                    .strip_prefix(m)
                    .is_some_and(|rest| rest.starts_with('.'))
        }
        None => e
            .rsplit_once('.')
            .is_some_and(|(m, n)| m == module && n == name),
    })
}

/// Whether a deny entry is well formed: dotted identifiers, ending in a name or `*`.
pub fn valid_deny_entry(entry: &str) -> bool {
    let body = entry.strip_suffix(".*").unwrap_or(entry);
    let parts: Vec<&str> = body.split('.').collect();
    (entry.ends_with(".*") || parts.len() >= 2)
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !p.starts_with(|c: char| c.is_ascii_digit())
        })
}

pub fn is_loader(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        (
            "pickle" | "_pickle" | "cPickle" | "dill" | "cloudpickle" | "marshal",
            "loads" | "load"
        ) | ("torch" | "torch.serialization", "load")
            | ("torch" | "torch.storage", "_load_from_bytes")
            | ("numpy", "load" | "loads")
            | ("joblib", "load")
    )
}

fn within(module: &str, root: &str) -> bool {
    module == root
        || module
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('.'))
}

pub fn classify(module: &str, name: &str) -> Class {
    if ALLOWED.contains(&(module, name)) {
        return Class::Allowed;
    }
    if module == "torch" && torch_data_name(name) {
        return Class::Allowed;
    }
    if let Some((_, _, why)) = DANGEROUS_CALLABLES
        .iter()
        .find(|(m, n, _)| *m == module && *n == name)
    {
        return Class::Dangerous(why);
    }
    // A dotted attribute (`os.path` in STACK_GLOBAL names) is judged by its root object too.
    let full = format!("{module}.{name}");
    if let Some((_, why)) = DANGEROUS_MODULES
        .iter()
        .find(|(root, _)| within(module, root) || within(&full, root))
    {
        return Class::Dangerous(why);
    }
    if name.starts_with("__") || name.contains(".__") {
        return Class::Dangerous("reaches interpreter internals through a dunder attribute");
    }
    Class::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_is_exact_and_deny_list_covers_submodules() {
        assert!(matches!(
            classify("torch._utils", "_rebuild_tensor_v2"),
            Class::Allowed
        ));
        assert!(matches!(classify("torch", "FloatStorage"), Class::Allowed));
        assert!(matches!(
            classify("collections", "OrderedDict"),
            Class::Allowed
        ));
        assert!(matches!(classify("os", "system"), Class::Dangerous(_)));
        assert!(matches!(classify("posix", "system"), Class::Dangerous(_)));
        assert!(
            matches!(classify("asyncio.unix_events", "x"), Class::Dangerous(_)),
            "submodules of denied modules"
        );
        assert!(matches!(classify("builtins", "eval"), Class::Dangerous(_)));
        assert!(matches!(classify("builtins", "set"), Class::Allowed));
        let entries = vec!["evilpkg.run".to_string(), "badmod.*".to_string()];
        assert!(community_denied(&entries, "evilpkg", "run"));
        assert!(!community_denied(&entries, "evilpkg", "walk"));
        assert!(community_denied(&entries, "badmod.sub", "x"));
        assert!(!community_denied(&entries, "badmodule", "x"));
        assert!(valid_deny_entry("a.b") && valid_deny_entry("a.*") && valid_deny_entry("a.b.c"));
        assert!(
            !valid_deny_entry("a")
                && !valid_deny_entry("a..b")
                && !valid_deny_entry("a.b c")
                && !valid_deny_entry("1a.b")
        );
        assert!(matches!(classify("torch", "load"), Class::Dangerous(_)));
        assert!(matches!(classify("numpy", "load"), Class::Dangerous(_)));
        assert!(
            matches!(classify("osmium", "x"), Class::Unknown),
            "prefix match respects module boundaries"
        );
        assert!(matches!(classify("__main__", "Net"), Class::Unknown));
        assert!(matches!(classify("torch", "nn"), Class::Unknown));
        assert!(matches!(
            classify("numpy", "__builtins__"),
            Class::Dangerous(_)
        ));
    }
}
