//! Which callables a pickle may import. Allow list first: only tensor, array and container
//! rebuild functions pass. The deny list names known-dangerous modules and callables so that the
//! finding can say why; anything on neither list is at least suspicious.

/// Bumped whenever an allow or deny entry changes (reported through `SCANNER_VERSION`).
pub const POLICY_VERSION: u32 = 4;

pub enum Class {
    Allowed,
    Dangerous(&'static str),
    Unknown,
}

/// Exact `module.name` pairs that rebuild data and nothing else, each with why it is harmless
/// (what `torch.load(weights_only=True)` accepts is here, so such files are clean).
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "torch.serialization",
        "_get_layout",
        "tensor layout lookup (weights_only allow list)",
    ),
    (
        "collections",
        "OrderedDict",
        "container type (torch.load weights_only allows OrderedDict, Counter)",
    ),
    (
        "collections",
        "defaultdict",
        "container type (torch.load weights_only allows OrderedDict, Counter)",
    ),
    (
        "collections",
        "deque",
        "container type (torch.load weights_only allows OrderedDict, Counter)",
    ),
    (
        "collections",
        "Counter",
        "container type (torch.load weights_only allows OrderedDict, Counter)",
    ),
    ("builtins", "set", "builtin data type: builds a value"),
    ("builtins", "frozenset", "builtin data type: builds a value"),
    ("builtins", "bytearray", "builtin data type: builds a value"),
    ("builtins", "slice", "builtin data type: builds a value"),
    ("builtins", "range", "builtin data type: builds a value"),
    ("builtins", "complex", "builtin data type: builds a value"),
    ("builtins", "object", "builtin data type: builds a value"),
    ("builtins", "list", "builtin data type: builds a value"),
    ("builtins", "dict", "builtin data type: builds a value"),
    ("builtins", "tuple", "builtin data type: builds a value"),
    ("builtins", "int", "builtin data type: builds a value"),
    ("builtins", "float", "builtin data type: builds a value"),
    ("builtins", "str", "builtin data type: builds a value"),
    ("builtins", "bool", "builtin data type: builds a value"),
    ("builtins", "bytes", "builtin data type: builds a value"),
    ("__builtin__", "set", "builtin data type: builds a value"),
    (
        "__builtin__",
        "frozenset",
        "builtin data type: builds a value",
    ),
    (
        "__builtin__",
        "bytearray",
        "builtin data type: builds a value",
    ),
    ("__builtin__", "slice", "builtin data type: builds a value"),
    (
        "__builtin__",
        "complex",
        "builtin data type: builds a value",
    ),
    ("__builtin__", "object", "builtin data type: builds a value"),
    ("__builtin__", "long", "builtin data type: builds a value"),
    (
        "__builtin__",
        "unicode",
        "builtin data type: builds a value",
    ),
    (
        "_codecs",
        "encode",
        "bytes from text (how protocol-2 pickles store bytes; weights_only allows it)",
    ),
    (
        "copy_reg",
        "_reconstructor",
        "object.__new__ of a type that is itself vetted",
    ),
    (
        "copyreg",
        "_reconstructor",
        "object.__new__ of a type that is itself vetted",
    ),
    ("datetime", "datetime", "plain value type"),
    ("datetime", "date", "plain value type"),
    ("datetime", "time", "plain value type"),
    ("datetime", "timedelta", "plain value type"),
    ("datetime", "timezone", "plain value type"),
    ("decimal", "Decimal", "plain value type"),
    ("fractions", "Fraction", "plain value type"),
    ("uuid", "UUID", "plain value type"),
    ("argparse", "Namespace", "plain value type"),
    (
        "torch._utils",
        "_rebuild_tensor",
        "tensor rebuild helper (torch.load weights_only allow list)",
    ),
    (
        "torch._utils",
        "_rebuild_tensor_v2",
        "tensor rebuild helper (torch.load weights_only allow list)",
    ),
    (
        "torch._utils",
        "_rebuild_tensor_v3",
        "tensor rebuild helper (torch.load weights_only allow list)",
    ),
    (
        "torch._utils",
        "_rebuild_parameter",
        "tensor rebuild helper (torch.load weights_only allow list)",
    ),
    (
        "torch._utils",
        "_rebuild_parameter_with_state",
        "tensor rebuild helper (torch.load weights_only allow list)",
    ),
    (
        "torch._utils",
        "_rebuild_qtensor",
        "tensor rebuild helper (torch.load weights_only allow list)",
    ),
    (
        "torch._utils",
        "_rebuild_sparse_tensor",
        "tensor rebuild helper (torch.load weights_only allow list)",
    ),
    (
        "torch._utils",
        "_rebuild_meta_tensor_no_storage",
        "tensor rebuild helper (torch.load weights_only allow list)",
    ),
    (
        "torch._utils",
        "_rebuild_wrapper_subclass",
        "tensor rebuild helper (torch.load weights_only allow list)",
    ),
    (
        "torch._utils",
        "_rebuild_device_tensor_from_numpy",
        "tensor rebuild helper (torch.load weights_only allow list)",
    ),
    (
        "torch._tensor",
        "_rebuild_from_type_v2",
        "tensor rebuild helper (torch.load weights_only allow list)",
    ),
    (
        "torch",
        "Size",
        "tensor metadata type (weights_only allow list)",
    ),
    (
        "torch",
        "device",
        "tensor metadata type (weights_only allow list)",
    ),
    (
        "torch",
        "Tensor",
        "tensor metadata type (weights_only allow list)",
    ),
    (
        "torch.nn.parameter",
        "Parameter",
        "tensor metadata type (weights_only allow list)",
    ),
    (
        "torch.storage",
        "UntypedStorage",
        "storage type (weights_only allow list)",
    ),
    (
        "torch.storage",
        "TypedStorage",
        "storage type (weights_only allow list)",
    ),
    (
        "torch",
        "UntypedStorage",
        "storage type (weights_only allow list)",
    ),
    (
        "torch",
        "TypedStorage",
        "storage type (weights_only allow list)",
    ),
    (
        "numpy",
        "ndarray",
        "array rebuild (weights_only numpy allow list)",
    ),
    (
        "numpy",
        "dtype",
        "array rebuild (weights_only numpy allow list)",
    ),
    (
        "numpy.core.multiarray",
        "_reconstruct",
        "array rebuild (weights_only numpy allow list)",
    ),
    (
        "numpy.core.multiarray",
        "scalar",
        "array rebuild (weights_only numpy allow list)",
    ),
    (
        "numpy._core.multiarray",
        "_reconstruct",
        "array rebuild (weights_only numpy allow list)",
    ),
    (
        "numpy._core.multiarray",
        "scalar",
        "array rebuild (weights_only numpy allow list)",
    ),
    (
        "numpy.core.numeric",
        "_frombuffer",
        "array rebuild (weights_only numpy allow list)",
    ),
    (
        "numpy._core.numeric",
        "_frombuffer",
        "array rebuild (weights_only numpy allow list)",
    ),
    (
        "joblib.numpy_pickle",
        "NumpyArrayWrapper",
        "joblib array wrapper: raw array bytes follow, no code",
    ),
    (
        "joblib.numpy_pickle_compat",
        "NDArrayWrapper",
        "joblib array wrapper: raw array bytes follow, no code",
    ),
];

/// Exact callables accepted with the reason why they are harmless; reviewed against the loaders
/// that run them (policy version 2).
const ALLOWED_WITH_REASON: &[(&str, &str, &str)] = &[
    // TorchScript's own pickle helpers (torch/jit/_pickle.py): each returns its argument, so
    // every TorchScript archive with list constants uses them (silero-vad, issue #16).
    ("torch.jit._pickle", "build_intlist", "returns its argument"),
    (
        "torch.jit._pickle",
        "build_tensorlist",
        "returns its argument",
    ),
    (
        "torch.jit._pickle",
        "build_doublelist",
        "returns its argument",
    ),
    (
        "torch.jit._pickle",
        "build_boollist",
        "returns its argument",
    ),
    (
        "torch.jit._pickle",
        "build_complexlist",
        "returns its argument",
    ),
    (
        "torch.jit._pickle",
        "build_tensor_from_id",
        "returns its argument",
    ),
    (
        "torch.jit._pickle",
        "restore_type_tag",
        "returns its argument",
    ),
    // Pure builtins: they compute a value from their arguments and reach nothing else.
    ("builtins", "len", "pure function"),
    ("builtins", "abs", "pure function"),
    ("builtins", "min", "pure function"),
    ("builtins", "max", "pure function"),
    ("builtins", "sum", "pure function"),
    ("builtins", "round", "pure function"),
    ("builtins", "divmod", "pure function"),
    ("builtins", "pow", "pure function"),
    ("builtins", "hash", "pure function"),
    ("builtins", "ord", "pure function"),
    ("builtins", "chr", "pure function"),
    ("builtins", "bin", "pure function"),
    ("builtins", "hex", "pure function"),
    ("builtins", "oct", "pure function"),
    ("builtins", "all", "pure function"),
    ("builtins", "any", "pure function"),
    ("builtins", "sorted", "pure function"),
    ("builtins", "reversed", "pure function"),
    ("builtins", "enumerate", "pure function"),
    ("builtins", "zip", "pure function"),
    ("builtins", "isinstance", "pure function"),
    ("builtins", "issubclass", "pure function"),
    ("builtins", "callable", "pure function"),
    ("builtins", "repr", "pure function"),
    ("builtins", "ascii", "pure function"),
    ("builtins", "format", "pure function"),
    ("builtins", "memoryview", "data type"),
    ("builtins", "NotImplemented", "constant"),
    ("builtins", "Ellipsis", "constant"),
    ("torch", "finfo", "dtype information"),
    ("torch", "iinfo", "dtype information"),
    ("torch", "dtype", "data type"),
    ("torch", "layout", "data type"),
    ("torch", "memory_format", "data type"),
    ("torch", "qscheme", "data type"),
    ("torch", "BoolTensor", "tensor type"),
    ("torch", "FloatTensor", "tensor type"),
    ("torch", "LongTensor", "tensor type"),
    ("torch", "IntTensor", "tensor type"),
    ("torch", "HalfTensor", "tensor type"),
    ("torch", "DoubleTensor", "tensor type"),
    ("torch", "ByteTensor", "tensor type"),
    ("numpy", "float16", "scalar type"),
    ("numpy", "float32", "scalar type"),
    ("numpy", "float64", "scalar type"),
    ("numpy", "int8", "scalar type"),
    ("numpy", "int16", "scalar type"),
    ("numpy", "int32", "scalar type"),
    ("numpy", "int64", "scalar type"),
    ("numpy", "uint8", "scalar type"),
    ("numpy", "bool_", "scalar type"),
    ("numpy.dtypes", "Float32DType", "dtype class"),
    ("numpy.dtypes", "Float64DType", "dtype class"),
    ("numpy.dtypes", "Int64DType", "dtype class"),
    ("numpy.dtypes", "Int32DType", "dtype class"),
];

/// Modules whose every attribute is a type, constant or abstract class: importing or calling
/// them builds a value and reaches nothing else.
const DATA_MODULES: &[(&str, &str)] = &[
    ("__future__", "feature flags"),
    ("collections.abc", "abstract base classes"),
    ("numbers", "abstract number classes"),
    (
        "__torch__",
        "TorchScript classes: torch.jit.load defines them from the archive's code/, which is checked; pickle.load cannot import them",
    ),
];

/// Top-level modules of the Python standard library (`sys.stdlib_module_names`, CPython 3.11).
const STDLIB: &[&str] = &[
    "__future__",
    "_abc",
    "_aix_support",
    "_ast",
    "_asyncio",
    "_bisect",
    "_blake2",
    "_bootsubprocess",
    "_bz2",
    "_codecs",
    "_codecs_cn",
    "_codecs_hk",
    "_codecs_iso2022",
    "_codecs_jp",
    "_codecs_kr",
    "_codecs_tw",
    "_collections",
    "_collections_abc",
    "_compat_pickle",
    "_compression",
    "_contextvars",
    "_crypt",
    "_csv",
    "_ctypes",
    "_curses",
    "_curses_panel",
    "_datetime",
    "_dbm",
    "_decimal",
    "_elementtree",
    "_frozen_importlib",
    "_frozen_importlib_external",
    "_functools",
    "_gdbm",
    "_hashlib",
    "_heapq",
    "_imp",
    "_io",
    "_json",
    "_locale",
    "_lsprof",
    "_lzma",
    "_markupbase",
    "_md5",
    "_msi",
    "_multibytecodec",
    "_multiprocessing",
    "_opcode",
    "_operator",
    "_osx_support",
    "_overlapped",
    "_pickle",
    "_posixshmem",
    "_posixsubprocess",
    "_py_abc",
    "_pydecimal",
    "_pyio",
    "_queue",
    "_random",
    "_scproxy",
    "_sha1",
    "_sha256",
    "_sha3",
    "_sha512",
    "_signal",
    "_sitebuiltins",
    "_socket",
    "_sqlite3",
    "_sre",
    "_ssl",
    "_stat",
    "_statistics",
    "_string",
    "_strptime",
    "_struct",
    "_symtable",
    "_thread",
    "_threading_local",
    "_tkinter",
    "_tokenize",
    "_tracemalloc",
    "_typing",
    "_uuid",
    "_warnings",
    "_weakref",
    "_weakrefset",
    "_winapi",
    "_zoneinfo",
    "abc",
    "aifc",
    "antigravity",
    "argparse",
    "array",
    "ast",
    "asynchat",
    "asyncio",
    "asyncore",
    "atexit",
    "audioop",
    "base64",
    "bdb",
    "binascii",
    "bisect",
    "builtins",
    "bz2",
    "cProfile",
    "calendar",
    "cgi",
    "cgitb",
    "chunk",
    "cmath",
    "cmd",
    "code",
    "codecs",
    "codeop",
    "collections",
    "colorsys",
    "compileall",
    "concurrent",
    "configparser",
    "contextlib",
    "contextvars",
    "copy",
    "copyreg",
    "crypt",
    "csv",
    "ctypes",
    "curses",
    "dataclasses",
    "datetime",
    "dbm",
    "decimal",
    "difflib",
    "dis",
    "distutils",
    "doctest",
    "email",
    "encodings",
    "ensurepip",
    "enum",
    "errno",
    "faulthandler",
    "fcntl",
    "filecmp",
    "fileinput",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "gc",
    "genericpath",
    "getopt",
    "getpass",
    "gettext",
    "glob",
    "graphlib",
    "grp",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "http",
    "idlelib",
    "imaplib",
    "imghdr",
    "imp",
    "importlib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "keyword",
    "lib2to3",
    "linecache",
    "locale",
    "logging",
    "lzma",
    "mailbox",
    "mailcap",
    "marshal",
    "math",
    "mimetypes",
    "mmap",
    "modulefinder",
    "msilib",
    "msvcrt",
    "multiprocessing",
    "netrc",
    "nis",
    "nntplib",
    "nt",
    "ntpath",
    "nturl2path",
    "numbers",
    "opcode",
    "operator",
    "optparse",
    "os",
    "ossaudiodev",
    "pathlib",
    "pdb",
    "pickle",
    "pickletools",
    "pipes",
    "pkgutil",
    "platform",
    "plistlib",
    "poplib",
    "posix",
    "posixpath",
    "pprint",
    "profile",
    "pstats",
    "pty",
    "pwd",
    "py_compile",
    "pyclbr",
    "pydoc",
    "pydoc_data",
    "pyexpat",
    "queue",
    "quopri",
    "random",
    "re",
    "readline",
    "reprlib",
    "resource",
    "rlcompleter",
    "runpy",
    "sched",
    "secrets",
    "select",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "site",
    "smtpd",
    "smtplib",
    "sndhdr",
    "socket",
    "socketserver",
    "spwd",
    "sqlite3",
    "sre_compile",
    "sre_constants",
    "sre_parse",
    "ssl",
    "stat",
    "statistics",
    "string",
    "stringprep",
    "struct",
    "subprocess",
    "sunau",
    "symtable",
    "sys",
    "sysconfig",
    "syslog",
    "tabnanny",
    "tarfile",
    "telnetlib",
    "tempfile",
    "termios",
    "textwrap",
    "this",
    "threading",
    "time",
    "timeit",
    "tkinter",
    "token",
    "tokenize",
    "tomllib",
    "trace",
    "traceback",
    "tracemalloc",
    "tty",
    "turtle",
    "turtledemo",
    "types",
    "typing",
    "unicodedata",
    "unittest",
    "urllib",
    "uu",
    "uuid",
    "venv",
    "warnings",
    "wave",
    "weakref",
    "webbrowser",
    "winreg",
    "winsound",
    "wsgiref",
    "xdrlib",
    "xml",
    "xmlrpc",
    "zipapp",
    "zipfile",
    "zipimport",
    "zlib",
    "zoneinfo",
];

/// Whether `module` belongs to the standard library, whose import-time code is known.
pub fn is_stdlib(module: &str) -> bool {
    let root = module.split('.').next().unwrap_or(module);
    STDLIB.binary_search(&root).is_ok()
}

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
    (
        "torch.fx",
        "generates and runs Python code (ShapeEnv.evaluate_guards_expression, GraphModule)",
    ),
    (
        "torch.ops",
        "calls native operators (from_file, custom libraries)",
    ),
    ("torch.library", "registers operators from code"),
    ("torch._ops", "calls native operators"),
    ("torch.distributed", "network and remote procedure calls"),
    ("torch.multiprocessing", "runs processes"),
    ("torch.testing", "test helpers that run code"),
    ("torch.export", "loads and runs exported programs"),
    ("torch.backends", "process-wide switches"),
    ("torch.cuda", "device and process control"),
    ("torch.compiler", "compiles and runs code"),
    ("torch._export", "loads and runs exported programs"),
    ("torch._functorch", "compiles and runs code"),
    ("torch._lazy", "compiles and runs code"),
    ("_interpreters", "runs code in another interpreter"),
    (
        "_testcapi",
        "runs code in another interpreter (run_in_subinterp)",
    ),
    (
        "_testinternalcapi",
        "runs code in another interpreter (run_in_subinterp_with_config)",
    ),
    ("_testsinglephase", "CPython test internals"),
    ("_testmultiphase", "CPython test internals"),
    (
        "torch._C",
        "native internals (TorchScript loading, file access, operator registration)",
    ),
    (
        "torch.classes",
        "native custom classes from loaded libraries",
    ),
    (
        "rlcompleter",
        "evaluates expressions (Completer.attr_matches)",
    ),
    ("_xxsubinterpreters", "runs code in another interpreter"),
    ("_interpqueues", "talks to another interpreter"),
    ("_interpchannels", "talks to another interpreter"),
    ("_xxinterpchannels", "talks to another interpreter"),
    (
        "concurrent.interpreters",
        "runs code in another interpreter",
    ),
    ("fickling", "switches off a security scanner or its hooks"),
    ("picklescan", "tampers with a security scanner"),
    ("modelscan", "tampers with a security scanner"),
    ("modelaudit", "tampers with a security scanner"),
    ("model_audit", "tampers with a security scanner"),
    ("kaiyuan_scanner", "tampers with a security scanner"),
    ("atexit", "runs a callable at interpreter exit"),
    ("weakref", "runs a callable when an object dies (finalize)"),
    ("gc", "interpreter internals (reaches every object)"),
    (
        "copyreg",
        "rewrites the pickle registries (add_extension, pickle)",
    ),
    (
        "copy_reg",
        "rewrites the pickle registries (add_extension, pickle)",
    ),
    ("_ctypes", "calls native code"),
    ("_imp", "imports arbitrary modules"),
    ("_frozen_importlib", "imports arbitrary modules"),
    ("_frozen_importlib_external", "imports arbitrary modules"),
    ("_socket", "opens network connections"),
    ("_ssl", "opens network connections"),
    ("select", "network and process control"),
    ("selectors", "network and process control"),
    ("_multiprocessing", "runs processes"),
    ("_posixshmem", "shared memory"),
    ("mmap", "file access"),
    ("_sqlite3", "file access"),
    ("winreg", "registry access"),
    ("_winreg", "registry access"),
    ("msvcrt", "process control"),
    ("resource", "process control"),
    ("_signal", "process control"),
    ("zipapp", "builds runnable archives"),
    ("filecmp", "file access"),
    ("netrc", "reads credentials"),
    ("sysconfig", "runs programs"),
    ("_sysconfig", "runs programs"),
    ("readline", "file access (history)"),
    ("faulthandler", "file access"),
    ("numpy.f2py", "compiles and runs code"),
    ("numpy.distutils", "builds and runs code"),
    ("numpy.ctypeslib", "loads native libraries"),
    ("numpy.testing", "runs programs"),
    ("pandas.io", "reads files and URLs"),
];

/// Callables and modules of the bypasses published against picklescan, fickling and modelscan
/// (their GitHub security advisories and test suites, reviewed for policy version 4):
/// `(module, name or "*" for the whole module, advisory, why)`; `why` names the advisory so the
/// finding does. Every one reaches code execution, the file system, the network, process control
/// or another interpreter when a loader calls it, so every one is malicious; most were already
/// covered by [`DANGEROUS_MODULES`], and this table is checked first so that the finding names the
/// advisory. `tests/advisories.rs` builds one pickle per family.
pub const ADVISORIES: &[(&str, &str, &str, &str)] = &[
    // picklescan: callables its deny list missed.
    (
        "torch.utils.bottleneck.__main__",
        "run_cprofile",
        "GHSA-4r9r-ch6f-vxmx",
        "runs Python source under cProfile (picklescan GHSA-4r9r-ch6f-vxmx)",
    ),
    (
        "torch.utils.bottleneck.__main__",
        "run_autograd_prof",
        "GHSA-4whj-rm5r-c2v8",
        "runs Python source under the autograd profiler (picklescan GHSA-4whj-rm5r-c2v8)",
    ),
    (
        "torch._dynamo.guards",
        "GuardBuilder.get",
        "GHSA-86cj-95qr-2p4f",
        "evaluates a guard expression (picklescan GHSA-86cj-95qr-2p4f)",
    ),
    (
        "torch.fx.experimental.symbolic_shapes",
        "ShapeEnv.evaluate_guards_expression",
        "GHSA-f4x7-rfwp-v3xw",
        "evaluates code (picklescan GHSA-f4x7-rfwp-v3xw)",
    ),
    (
        "torch.utils.collect_env",
        "run",
        "GHSA-f745-w6jp-hpxx",
        "runs a shell command (picklescan GHSA-f745-w6jp-hpxx)",
    ),
    (
        "torch.utils.collect_env",
        "run_and_read_all",
        "GHSA-jhph-76pp-mggw",
        "runs a shell command (picklescan GHSA-jhph-76pp-mggw)",
    ),
    (
        "torch.utils.data.datapipes.utils.decoder",
        "basichandlers",
        "GHSA-h3qp-7fh3-f8h4",
        "unpickles its bytes argument (picklescan GHSA-h3qp-7fh3-f8h4)",
    ),
    (
        "torch.jit.unsupported_tensor_ops",
        "execWrapper",
        "GHSA-vr7h-p6mm-wpmh",
        "exec of its argument (picklescan GHSA-vr7h-p6mm-wpmh)",
    ),
    (
        "torch.utils._config_module",
        "ConfigModule.load_config",
        "GHSA-vv6j-3g6g-2pvj",
        "unpickles its bytes argument (picklescan GHSA-vv6j-3g6g-2pvj)",
    ),
    (
        "trace",
        "Trace.run",
        "GHSA-5qwp-399c-mjwf",
        "exec of its argument (picklescan GHSA-5qwp-399c-mjwf)",
    ),
    (
        "trace",
        "Trace.runctx",
        "GHSA-g344-hcph-8vgg",
        "exec of its argument (picklescan GHSA-g344-hcph-8vgg)",
    ),
    (
        "profile",
        "Profile.run",
        "GHSA-x696-vm39-cp64",
        "exec of its argument (picklescan GHSA-x696-vm39-cp64)",
    ),
    (
        "profile",
        "Profile.runctx",
        "GHSA-6vqj-c2q5-j97w",
        "exec of its argument (picklescan GHSA-6vqj-c2q5-j97w)",
    ),
    (
        "profile",
        "run",
        "GHSA-7wx9-6375-f5wh",
        "exec of its argument (picklescan GHSA-7wx9-6375-f5wh)",
    ),
    (
        "lib2to3.pgen2.grammar",
        "Grammar.loads",
        "GHSA-f54q-57x4-jg88",
        "unpickles its bytes argument (picklescan GHSA-f54q-57x4-jg88)",
    ),
    (
        "lib2to3.pgen2.pgen",
        "ParserGenerator.make_label",
        "GHSA-p9w7-82w4-7q8m",
        "eval of its argument (picklescan GHSA-p9w7-82w4-7q8m)",
    ),
    (
        "idlelib.debugobj",
        "ObjectTreeItem.SetText",
        "GHSA-3vg9-h568-4w9m",
        "eval of its argument (picklescan GHSA-3vg9-h568-4w9m)",
    ),
    (
        "idlelib.autocomplete",
        "AutoComplete.get_entity",
        "GHSA-6w4w-5w54-rjvr",
        "eval of its argument (picklescan GHSA-6w4w-5w54-rjvr)",
    ),
    (
        "idlelib.autocomplete",
        "AutoComplete.fetch_completions",
        "GHSA-7cq8-mj8x-j263",
        "eval of its argument (picklescan GHSA-7cq8-mj8x-j263)",
    ),
    (
        "idlelib.calltip",
        "Calltip.fetch_tip",
        "GHSA-8r4j-24qv-fmq9",
        "eval of its argument (picklescan GHSA-8r4j-24qv-fmq9)",
    ),
    (
        "idlelib.calltip",
        "get_entity",
        "GHSA-9xph-j2h6-g47v",
        "eval of its argument (picklescan GHSA-9xph-j2h6-g47v)",
    ),
    (
        "idlelib.run",
        "Executive.runcode",
        "GHSA-m869-42cg-3xwr",
        "exec of its argument (picklescan GHSA-m869-42cg-3xwr)",
    ),
    (
        "idlelib.pyshell",
        "ModifiedInterpreter.runcommand",
        "GHSA-j343-8v2j-ff7w",
        "exec of its argument (picklescan GHSA-j343-8v2j-ff7w)",
    ),
    (
        "idlelib.pyshell",
        "ModifiedInterpreter.runcode",
        "GHSA-3gf5-cxq9-w223",
        "exec of its argument (picklescan GHSA-3gf5-cxq9-w223)",
    ),
    (
        "code",
        "InteractiveInterpreter.runcode",
        "GHSA-cj3c-v495-4xqh",
        "exec of its argument (picklescan GHSA-cj3c-v495-4xqh)",
    ),
    (
        "ensurepip",
        "_run_pip",
        "GHSA-xp4f-hrf8-rxw7",
        "exec of its argument (picklescan GHSA-xp4f-hrf8-rxw7)",
    ),
    (
        "doctest",
        "debug_script",
        "GHSA-fqq6-7vqf-w3fg",
        "exec of its argument (picklescan GHSA-fqq6-7vqf-w3fg)",
    ),
    (
        "cProfile",
        "runctx",
        "GHSA-9w88-8rmg-7g2p",
        "exec of its argument (picklescan GHSA-9w88-8rmg-7g2p)",
    ),
    (
        "cProfile",
        "run",
        "GHSA-49gj-c84q-6qm9",
        "exec of its argument (picklescan GHSA-49gj-c84q-6qm9; fickling GHSA-p523-jq9w-64x9)",
    ),
    (
        "asyncio.unix_events",
        "_UnixSubprocessTransport._start",
        "GHSA-q77w-mwjj-7mqx",
        "starts a process (picklescan GHSA-q77w-mwjj-7mqx, GHSA-jgw4-cr84-mqxg)",
    ),
    (
        "distutils.file_util",
        "write_file",
        "GHSA-m273-6v24-x4m4",
        "writes a file (picklescan GHSA-m273-6v24-x4m4)",
    ),
    (
        "ctypes",
        "CDLL",
        "GHSA-4675-36f9-wf6r",
        "loads a native library (picklescan GHSA-4675-36f9-wf6r; fickling GHSA-q5qq-mvfm-j35x)",
    ),
    (
        "pydoc",
        "locate",
        "GHSA-84r2-jw7c-4r5q",
        "imports any module by name (picklescan GHSA-84r2-jw7c-4r5q; fickling GHSA-5hvc-6wx8-mvv4)",
    ),
    (
        "operator",
        "methodcaller",
        "GHSA-84r2-jw7c-4r5q",
        "calls any method by name (picklescan GHSA-84r2-jw7c-4r5q)",
    ),
    (
        "_operator",
        "*",
        "GHSA-955r-x9j8-7rhh",
        "attrgetter, itemgetter, methodcaller reach any attribute (picklescan GHSA-955r-x9j8-7rhh)",
    ),
    (
        "pty",
        "spawn",
        "GHSA-vqmv-47xg-9wpr",
        "spawns a shell (picklescan GHSA-vqmv-47xg-9wpr; fickling GHSA-r7v6-mfhq-g3m2)",
    ),
    (
        "numpy.f2py.crackfortran",
        "getlincoef",
        "GHSA-r8g5-cgf2-4m4m",
        "eval of its argument (picklescan GHSA-r8g5-cgf2-4m4m)",
    ),
    (
        "pkgutil",
        "resolve_name",
        "GHSA-vvpj-8cmc-gx39",
        "returns any object named by a string, os:system included (picklescan GHSA-vvpj-8cmc-gx39)",
    ),
    (
        "codeop",
        "*",
        "GHSA-g38g-8gr9-h9xp",
        "compiles Python source (picklescan GHSA-g38g-8gr9-h9xp)",
    ),
    (
        "compileall",
        "*",
        "GHSA-g38g-8gr9-h9xp",
        "compiles and writes Python files (picklescan GHSA-g38g-8gr9-h9xp)",
    ),
    (
        "py_compile",
        "*",
        "GHSA-g38g-8gr9-h9xp",
        "compiles and writes Python files (picklescan GHSA-g38g-8gr9-h9xp)",
    ),
    (
        "runpy",
        "*",
        "GHSA-g38g-8gr9-h9xp",
        "runs Python files and modules (picklescan GHSA-g38g-8gr9-h9xp; fickling GHSA-wfq2-52f7-7qvj)",
    ),
    (
        "pdb",
        "*",
        "GHSA-g38g-8gr9-h9xp",
        "runs Python source (picklescan GHSA-g38g-8gr9-h9xp)",
    ),
    (
        "imaplib",
        "IMAP4_stream",
        "GHSA-g38g-8gr9-h9xp",
        "runs its argument as a command (picklescan GHSA-g38g-8gr9-h9xp)",
    ),
    (
        "_pyrepl",
        "*",
        "GHSA-g38g-8gr9-h9xp",
        "pager runs its argument as a command (picklescan GHSA-g38g-8gr9-h9xp)",
    ),
    (
        "test",
        "*",
        "GHSA-g38g-8gr9-h9xp",
        "CPython's test helpers run code and commands (picklescan GHSA-g38g-8gr9-h9xp)",
    ),
    (
        "uuid",
        "_get_command_stdout",
        "GHSA-g38g-8gr9-h9xp",
        "runs a command (picklescan GHSA-g38g-8gr9-h9xp; fickling GHSA-5hwf-rc88-82xm)",
    ),
    (
        "_osx_support",
        "*",
        "GHSA-5hwf-rc88-82xm",
        "_read_output runs a command (fickling GHSA-5hwf-rc88-82xm; picklescan GHSA-g38g-8gr9-h9xp)",
    ),
    (
        "_aix_support",
        "*",
        "GHSA-5hwf-rc88-82xm",
        "_read_cmd_output runs a command (fickling GHSA-5hwf-rc88-82xm; picklescan GHSA-g38g-8gr9-h9xp)",
    ),
    // fickling: modules its unsafe-import list missed.
    (
        "marshal",
        "loads",
        "GHSA-565g-hwwr-4pp3",
        "loads a code object (fickling GHSA-565g-hwwr-4pp3)",
    ),
    (
        "types",
        "FunctionType",
        "GHSA-565g-hwwr-4pp3",
        "makes a code object callable (fickling GHSA-565g-hwwr-4pp3)",
    ),
    (
        "importlib",
        "import_module",
        "GHSA-q5qq-mvfm-j35x",
        "imports any module (fickling GHSA-q5qq-mvfm-j35x)",
    ),
    (
        "code",
        "InteractiveInterpreter",
        "GHSA-q5qq-mvfm-j35x",
        "an interpreter whose runsource executes code (fickling GHSA-q5qq-mvfm-j35x)",
    ),
    (
        "multiprocessing.util",
        "spawnv_passfds",
        "GHSA-q5qq-mvfm-j35x",
        "starts a process (fickling GHSA-q5qq-mvfm-j35x)",
    ),
    (
        "builtins",
        "getattr",
        "GHSA-h4rm-mm56-xf63",
        "reaches any attribute, os.system included (fickling GHSA-h4rm-mm56-xf63)",
    ),
    (
        "smtplib",
        "*",
        "GHSA-mhc9-48gj-9gp3",
        "network connections (fickling GHSA-mhc9-48gj-9gp3)",
    ),
    (
        "socketserver",
        "*",
        "GHSA-mhc9-48gj-9gp3",
        "listens on the network (fickling GHSA-mhc9-48gj-9gp3)",
    ),
    (
        "signal",
        "*",
        "GHSA-mhc9-48gj-9gp3",
        "process control (fickling GHSA-mhc9-48gj-9gp3)",
    ),
    (
        "sqlite3",
        "*",
        "GHSA-mhc9-48gj-9gp3",
        "opens and writes files (fickling GHSA-mhc9-48gj-9gp3)",
    ),
    (
        "_posixsubprocess",
        "*",
        "GHSA-m6fh-58r7-x697",
        "fork_exec runs a program (fickling GHSA-m6fh-58r7-x697)",
    ),
    (
        "site",
        "*",
        "GHSA-m6fh-58r7-x697",
        "addsitedir runs .pth files (fickling GHSA-m6fh-58r7-x697)",
    ),
    (
        "atexit",
        "*",
        "GHSA-m6fh-58r7-x697",
        "runs a callable at exit (fickling GHSA-m6fh-58r7-x697)",
    ),
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
    ("torch", "compile", "compiles and runs code"),
    ("torch", "save", "writes a file"),
    ("torch", "from_file", "reads a file"),
    ("torch", "_C", "native interpreter internals"),
    ("numpy", "fromfile", "reads a file"),
    ("numpy", "memmap", "maps a file"),
    ("numpy", "loadtxt", "reads a file or URL"),
    ("numpy", "genfromtxt", "reads a file or URL"),
    ("numpy", "save", "writes a file"),
    ("numpy", "savez", "writes a file"),
    ("numpy", "savetxt", "writes a file"),
    ("numpy", "DataSource", "reads files and URLs"),
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
    if ALLOWED.iter().any(|(m, n, _)| *m == module && *n == name)
        || ALLOWED_WITH_REASON
            .iter()
            .any(|(m, n, _)| *m == module && *n == name)
    {
        return Class::Allowed;
    }
    if !name.starts_with('_') && DATA_MODULES.iter().any(|(root, _)| within(module, root)) {
        return Class::Allowed;
    }
    if module == "pandas" && (name.starts_with("read_") || name.starts_with("to_")) {
        return Class::Dangerous("reads or writes files and URLs");
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
    if let Some((_, _, _, why)) = ADVISORIES.iter().find(|(m, n, _, _)| {
        if *n == "*" {
            within(module, m)
        } else {
            *m == module
                && (*n == name
                    || name
                        .strip_prefix(n)
                        .is_some_and(|rest| rest.starts_with('.')))
        }
    }) {
        return Class::Dangerous(why);
    }
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

    #[test]
    fn every_advisory_entry_is_malicious_and_names_its_advisory() {
        for (module, name, advisory, why) in ADVISORIES {
            assert!(
                why.contains(advisory),
                "{module}.{name}: reason names {advisory}"
            );
            let name = if *name == "*" { "anything" } else { name };
            match classify(module, name) {
                Class::Dangerous(reason) => assert!(
                    reason.contains(advisory),
                    "{module}.{name} is rated with {reason:?}, not its advisory {advisory}"
                ),
                _ => panic!("{module}.{name} ({advisory}) is not malicious"),
            }
        }
        // The exact entries do not spill over to their module.
        assert!(matches!(classify("uuid", "UUID"), Class::Allowed));
        assert!(matches!(
            classify("torch._C", "_jit_pass"),
            Class::Dangerous(_)
        ));
        assert!(matches!(
            classify("_testcapi", "run_in_subinterp"),
            Class::Dangerous(_)
        ));
    }
}
