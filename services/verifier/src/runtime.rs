//! ONNX Runtime through `ort`, loaded at run time from a shared library: sessions on the CPU or
//! CUDA execution provider, model descriptions, and conversion of [`Value`]s both ways.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ort::environment::Environment;
use ort::ep::{CUDA, ExecutionProvider};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{
    DynTensor, DynTensorValueType, DynValue, Sequence, TensorElementType, TensorValueTypeMarker,
    Value as OrtValue, ValueType,
};

use crate::report::IoDescription;
use crate::tensor::{Data, ElemType, Tensor, Value};

/// Which execution provider a worker or a `kaiyuan verify` run asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ep {
    Cpu,
    Cuda,
    /// CUDA when it initialises, else the CPU.
    Auto,
}

impl Ep {
    pub fn as_str(self) -> &'static str {
        match self {
            Ep::Cpu => "cpu",
            Ep::Cuda => "cuda",
            Ep::Auto => "auto",
        }
    }

    pub fn parse(s: &str) -> Result<Ep, String> {
        match s {
            "cpu" => Ok(Ep::Cpu),
            "cuda" => Ok(Ep::Cuda),
            "auto" => Ok(Ep::Auto),
            other => Err(format!(
                "execution provider `{other}`: expected cpu, cuda or auto"
            )),
        }
    }
}

/// The ONNX Runtime library to load: `ORT_DYLIB_PATH` (ort's own convention) over the
/// configured path over the one the install script puts under `~/.cache/kaiyuan/onnxruntime`
/// (the GPU build, when installed, for `cuda` and `auto`).
pub fn library_path(configured: Option<&Path>, ep: Ep) -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    let root = std::env::var_os("KAIYUAN_ORT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/kaiyuan/onnxruntime")
        });
    let gpu = root.join("gpu/libonnxruntime.so");
    if ep != Ep::Cpu && gpu.exists() {
        return gpu;
    }
    root.join("cpu/libonnxruntime.so")
}

/// Why no session was made.
#[derive(Debug)]
pub enum SessionError {
    /// The model does not load, whatever the provider: a failed verification.
    Model(String),
    /// The requested provider cannot run here: verification could not be done.
    Provider(String),
}

/// A loaded ONNX Runtime (one per process).
pub struct Runtime {
    env: Environment,
    pub version: String,
    pub library: PathBuf,
}

impl Runtime {
    pub fn load(library: &Path) -> Result<Runtime, String> {
        if !library.exists() {
            return Err(format!(
                "ONNX Runtime library {} not found: run scripts/install-deps.sh, or set ORT_DYLIB_PATH",
                library.display()
            ));
        }
        let env = ort::init_from(library)
            .map_err(|e| format!("loading ONNX Runtime from {}: {e}", library.display()))?
            .with_name("kaiyuan-verify")
            .build()
            .map_err(|e| format!("starting ONNX Runtime: {e}"))?;
        Ok(Runtime {
            env,
            version: version_from_file_name(library)
                .unwrap_or_else(|| version_from_build_info(ort::info())),
            library: library.to_path_buf(),
        })
    }

    /// Creates a session; returns it with the provider it runs on and, for `auto`, why CUDA
    /// was not used. When CUDA fails, a CPU session tells a model that does not load at all
    /// (the model's failure) from one that CUDA cannot run (the provider's).
    pub fn session(
        &self,
        model: &Path,
        ep: Ep,
    ) -> Result<(Session, &'static str, Option<String>), SessionError> {
        if ep == Ep::Cpu {
            return self
                .cpu(model)
                .map(|s| (s, "cpu", None))
                .map_err(SessionError::Model);
        }
        match self.try_cuda(model) {
            Ok(session) => Ok((session, "cuda", None)),
            Err(cuda) => match self.cpu(model) {
                Err(cpu) => Err(SessionError::Model(cpu)),
                Ok(session) if ep == Ep::Auto => Ok((session, "cpu", Some(cuda))),
                Ok(_) => Err(SessionError::Provider(format!(
                    "the CUDA execution provider could not be used: {cuda}"
                ))),
            },
        }
    }

    fn builder(&self) -> Result<ort::session::builder::SessionBuilder, String> {
        Session::builder(&self.env)
            .and_then(|b| {
                b.with_optimization_level(GraphOptimizationLevel::All)
                    .map_err(Into::into)
            })
            .map_err(|e| e.to_string())
    }

    fn cpu(&self, model: &Path) -> Result<Session, String> {
        self.builder()?
            .commit_from_file(model)
            .map_err(|e| format!("ONNX Runtime could not load the model: {e}"))
    }

    fn try_cuda(&self, model: &Path) -> Result<Session, String> {
        if !CUDA::is_available().unwrap_or(false) {
            return Err(format!(
                "this ONNX Runtime build ({}) has no CUDA execution provider",
                self.library.display()
            ));
        }
        let mut builder = self
            .builder()?
            // TF32 would trade the precision the reference comparisons need for speed.
            .with_execution_providers([CUDA::default().with_tf32(false).build().error_on_failure()])
            .map_err(|e| e.to_string())?;
        builder
            .commit_from_file(model)
            .map_err(|e| format!("ONNX Runtime could not load the model on CUDA: {e}"))
    }
}

/// The wheels ship `libonnxruntime.so.<version>`; the build info of a release build often
/// names only `git-branch=HEAD`.
fn version_from_file_name(library: &Path) -> Option<String> {
    let real = library.canonicalize().ok()?;
    let name = real.file_name()?.to_str()?;
    let version = name.split_once(".so.")?.1;
    version
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.')
        .then(|| version.to_string())
}

/// `ORT Build Info: git-branch=rel-1.31.1, ...` gives `1.31.1`.
fn version_from_build_info(info: &str) -> String {
    info.split([',', ' '])
        .find_map(|part| part.strip_prefix("git-branch=rel-"))
        .map(str::to_string)
        .unwrap_or_else(|| info.trim().to_string())
}

fn elem_type(ty: TensorElementType) -> Option<ElemType> {
    Some(match ty {
        TensorElementType::Float32 => ElemType::Float32,
        TensorElementType::Float64 => ElemType::Float64,
        TensorElementType::Float16 => ElemType::Float16,
        TensorElementType::Bfloat16 => ElemType::Bfloat16,
        TensorElementType::Int8 => ElemType::Int8,
        TensorElementType::Int16 => ElemType::Int16,
        TensorElementType::Int32 => ElemType::Int32,
        TensorElementType::Int64 => ElemType::Int64,
        TensorElementType::Uint8 => ElemType::Uint8,
        TensorElementType::Uint16 => ElemType::Uint16,
        TensorElementType::Uint32 => ElemType::Uint32,
        TensorElementType::Uint64 => ElemType::Uint64,
        TensorElementType::Bool => ElemType::Bool,
        TensorElementType::String => ElemType::String,
        _ => return None,
    })
}

pub fn describe(name: &str, ty: &ValueType) -> IoDescription {
    match ty {
        ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } => IoDescription {
            name: name.to_string(),
            kind: "tensor".into(),
            elem: elem_type(*ty),
            element_type: elem_type(*ty).map_or_else(
                || format!("{ty:?}").to_lowercase(),
                |e| e.name().to_string(),
            ),
            shape: shape.to_vec(),
            dimension_names: dimension_symbols.iter().cloned().collect(),
        },
        other => IoDescription {
            name: name.to_string(),
            kind: match other {
                ValueType::Sequence(_) => "sequence",
                ValueType::Map { .. } => "map",
                _ => "optional",
            }
            .into(),
            elem: None,
            element_type: other.to_string(),
            shape: vec![],
            dimension_names: vec![],
        },
    }
}

fn le_chunks<const N: usize, T>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|c| f(c.try_into().unwrap()))
        .collect()
}

fn tensor_to_ort(t: &Tensor) -> ort::Result<DynTensor> {
    use ort::value::Tensor as T;
    let shape = t.shape.clone();
    let raw = match &t.data {
        Data::Strings(s) => return Ok(T::from_string_array((shape, &s[..]))?.upcast()),
        Data::Raw(raw) => raw,
    };
    Ok(match t.elem {
        ElemType::Float32 => T::from_array((shape, le_chunks(raw, f32::from_le_bytes)))?.upcast(),
        ElemType::Float64 => T::from_array((shape, le_chunks(raw, f64::from_le_bytes)))?.upcast(),
        ElemType::Float16 => {
            T::from_array((shape, le_chunks(raw, half::f16::from_le_bytes)))?.upcast()
        }
        ElemType::Bfloat16 => {
            T::from_array((shape, le_chunks(raw, half::bf16::from_le_bytes)))?.upcast()
        }
        ElemType::Int8 => T::from_array((shape, le_chunks(raw, i8::from_le_bytes)))?.upcast(),
        ElemType::Int16 => T::from_array((shape, le_chunks(raw, i16::from_le_bytes)))?.upcast(),
        ElemType::Int32 => T::from_array((shape, le_chunks(raw, i32::from_le_bytes)))?.upcast(),
        ElemType::Int64 => T::from_array((shape, le_chunks(raw, i64::from_le_bytes)))?.upcast(),
        ElemType::Uint8 => T::from_array((shape, raw.clone()))?.upcast(),
        ElemType::Uint16 => T::from_array((shape, le_chunks(raw, u16::from_le_bytes)))?.upcast(),
        ElemType::Uint32 => T::from_array((shape, le_chunks(raw, u32::from_le_bytes)))?.upcast(),
        ElemType::Uint64 => T::from_array((shape, le_chunks(raw, u64::from_le_bytes)))?.upcast(),
        ElemType::Bool => {
            T::from_array((shape, raw.iter().map(|b| *b != 0).collect::<Vec<bool>>()))?.upcast()
        }
        ElemType::String => unreachable!("strings are Data::Strings"),
    })
}

pub fn to_ort(v: &Value) -> Result<DynValue, String> {
    let result = match v {
        Value::Tensor(t) => tensor_to_ort(t).map(|t| t.into_dyn()),
        Value::Sequence(items) => items
            .iter()
            .map(tensor_to_ort)
            .collect::<ort::Result<Vec<_>>>()
            .and_then(Sequence::<DynTensorValueType>::new)
            .map(|s| s.into_dyn()),
        Value::Opaque(kind) => return Err(format!("{kind} inputs cannot be fed")),
    };
    result.map_err(|e| format!("building an input tensor: {e}"))
}

fn tensor_from_ort<M: TensorValueTypeMarker + ?Sized>(v: &OrtValue<M>) -> Result<Tensor, String> {
    let ValueType::Tensor { ty, .. } = v.dtype() else {
        return Err(format!("{} outputs are not compared", v.dtype()));
    };
    let elem = elem_type(*ty).ok_or_else(|| format!("{ty:?} outputs are not compared"))?;
    macro_rules! raw {
        ($t:ty) => {{
            let (shape, data) = v.try_extract_tensor::<$t>().map_err(|e| e.to_string())?;
            (
                shape.to_vec(),
                data.iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )
        }};
    }
    let (shape, data) = match elem {
        ElemType::String => {
            let (shape, strings) = v.try_extract_strings().map_err(|e| e.to_string())?;
            return Ok(Tensor {
                name: None,
                elem,
                shape: shape.to_vec(),
                data: Data::Strings(strings),
            });
        }
        ElemType::Bool => {
            let (shape, data) = v.try_extract_tensor::<bool>().map_err(|e| e.to_string())?;
            (shape.to_vec(), data.iter().map(|b| *b as u8).collect())
        }
        ElemType::Float32 => raw!(f32),
        ElemType::Float64 => raw!(f64),
        ElemType::Float16 => raw!(half::f16),
        ElemType::Bfloat16 => raw!(half::bf16),
        ElemType::Int8 => raw!(i8),
        ElemType::Int16 => raw!(i16),
        ElemType::Int32 => raw!(i32),
        ElemType::Int64 => raw!(i64),
        ElemType::Uint8 => raw!(u8),
        ElemType::Uint16 => raw!(u16),
        ElemType::Uint32 => raw!(u32),
        ElemType::Uint64 => raw!(u64),
    };
    Ok(Tensor {
        name: None,
        elem,
        shape,
        data: Data::Raw(data),
    })
}

/// An output as a [`Value`]; what cannot be compared becomes [`Value::Opaque`].
pub fn from_ort(v: &DynValue) -> Result<Value, String> {
    Ok(comparable(v).unwrap_or_else(|_| Value::Opaque(v.dtype().to_string())))
}

fn comparable(v: &DynValue) -> Result<Value, String> {
    match v.dtype() {
        ValueType::Sequence(_) => {
            let items = v
                .try_extract_sequence::<DynTensorValueType>()
                .map_err(|e| format!("reading a sequence output: {e}"))?;
            items
                .iter()
                .map(tensor_from_ort)
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Sequence)
        }
        _ => tensor_from_ort(v).map(Value::Tensor),
    }
}

/// Runs the session on named inputs; returns outputs in the session's order and the time taken.
pub fn run(
    session: &mut Session,
    inputs: &[(String, DynValue)],
) -> Result<(Vec<(String, Value)>, f64), String> {
    let feed: Vec<(String, &DynValue)> = inputs.iter().map(|(n, v)| (n.clone(), v)).collect();
    let start = Instant::now();
    let outputs = session.run(feed).map_err(|e| e.to_string())?;
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    let mut out = Vec::with_capacity(outputs.len());
    for (name, value) in outputs.iter() {
        out.push((name.to_string(), from_ort(&value)?));
    }
    Ok((out, elapsed))
}

/// The CPU model, and the GPU model when the NVIDIA driver reports one.
pub fn device(provider: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    if provider != "cuda" {
        return cpu;
    }
    let gpu = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::trim).map(str::to_string))
        .unwrap_or_else(|| "NVIDIA GPU".into());
    format!("{gpu} (host CPU: {cpu})")
}
