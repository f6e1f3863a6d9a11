//! Reference inputs and outputs shipped next to a model.
//!
//! Two conventions:
//! - ONNX's: `test_data_set_N/input_K.pb` and `output_K.pb` (`TensorProto` or `SequenceProto`)
//!   in the model's folder, used when the model is `model.onnx` or the only `.onnx` there;
//! - safetensors: `<model stem>.test_vectors*.safetensors` beside the model, holding tensors
//!   named `input.<input name>` and `output.<output name>`, one set per file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::tensor::{self, Data, ElemType, MAX_VECTOR_BYTES, Tensor, Value};

/// One set of reference data: inputs and outputs, each with the name it was given, if any.
#[derive(Debug)]
pub struct VectorSet {
    pub name: String,
    pub inputs: Vec<(Option<String>, Value)>,
    pub outputs: Vec<(Option<String>, Value)>,
}

/// The sets that apply to the model at `model`, sorted by name; errors name the bad file.
pub fn find(model: &Path) -> Vec<Result<VectorSet, (String, String)>> {
    let dir = model.parent().unwrap_or(Path::new("."));
    let stem = model
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    let onnx_here = entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .count();
    let mut sets = Vec::new();
    let owns_onnx_sets = stem == "model" || onnx_here == 1;
    for entry in &entries {
        let name = entry
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if owns_onnx_sets && name.starts_with("test_data_set_") && entry.is_dir() {
            sets.push(load_onnx_set(entry).map_err(|e| (name.to_string(), e)));
        } else if name.starts_with(&format!("{stem}.test_vectors"))
            && name.ends_with(".safetensors")
        {
            sets.push(load_safetensors_set(entry).map_err(|e| (name.to_string(), e)));
        }
    }
    sets
}

fn indexed(dir: &Path, prefix: &str) -> Result<Vec<(usize, PathBuf)>, String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(k) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".pb"))
            .and_then(|k| k.parse::<usize>().ok())
        {
            found.push((k, path));
        }
    }
    found.sort();
    for (i, (k, _)) in found.iter().enumerate() {
        if *k != i {
            return Err(format!("{prefix}{i}.pb is missing"));
        }
    }
    Ok(found)
}

fn read_pb(path: &Path) -> Result<Value, String> {
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{name}: {e}"))?
        .len();
    if len > MAX_VECTOR_BYTES {
        return Err(format!(
            "{name}: {len} bytes is over the {MAX_VECTOR_BYTES}-byte limit"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
    tensor::decode_value(&bytes).map_err(|e| format!("{name}: {e}"))
}

fn load_onnx_set(dir: &Path) -> Result<VectorSet, String> {
    let mut set = VectorSet {
        name: dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        inputs: vec![],
        outputs: vec![],
    };
    for (_, path) in indexed(dir, "input_")? {
        let v = read_pb(&path)?;
        set.inputs
            .push((v.name().filter(|n| !n.is_empty()).map(String::from), v));
    }
    for (_, path) in indexed(dir, "output_")? {
        let v = read_pb(&path)?;
        set.outputs
            .push((v.name().filter(|n| !n.is_empty()).map(String::from), v));
    }
    if set.outputs.is_empty() {
        return Err("no output_0.pb".into());
    }
    Ok(set)
}

/// Reads a safetensors file, checking the header length and every offset against the file.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, Tensor>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_VECTOR_BYTES {
        return Err(format!("over the {MAX_VECTOR_BYTES}-byte limit"));
    }
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .ok_or("shorter than the 8-byte header length")?;
    let rest = (bytes.len() - 8) as u64;
    if header_len > rest || header_len > 100 << 20 {
        return Err(format!(
            "header length {header_len} runs past the end of the file"
        ));
    }
    let data = &bytes[8 + header_len as usize..];
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + header_len as usize])
            .map_err(|e| format!("header is not a JSON object: {e}"))?;
    let mut out = BTreeMap::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            continue;
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            dtype: String,
            shape: Vec<i64>,
            data_offsets: [u64; 2],
        }
        let entry: Entry = serde_json::from_value(entry).map_err(|e| format!("{name}: {e}"))?;
        let elem = match entry.dtype.as_str() {
            "F32" => ElemType::Float32,
            "F64" => ElemType::Float64,
            "F16" => ElemType::Float16,
            "BF16" => ElemType::Bfloat16,
            "I8" => ElemType::Int8,
            "I16" => ElemType::Int16,
            "I32" => ElemType::Int32,
            "I64" => ElemType::Int64,
            "U8" => ElemType::Uint8,
            "U16" => ElemType::Uint16,
            "U32" => ElemType::Uint32,
            "U64" => ElemType::Uint64,
            "BOOL" => ElemType::Bool,
            other => return Err(format!("{name}: dtype {other} is not supported")),
        };
        let [begin, end] = entry.data_offsets;
        if begin > end || end > data.len() as u64 {
            return Err(format!(
                "{name}: data offsets {begin}..{end} run past the data"
            ));
        }
        let t = Tensor {
            name: Some(name.clone()),
            elem,
            shape: entry.shape,
            data: Data::Raw(data[begin as usize..end as usize].to_vec()),
        };
        t.check().map_err(|e| format!("{name}: {e}"))?;
        out.insert(name, t);
    }
    Ok(out)
}

fn load_safetensors_set(path: &Path) -> Result<VectorSet, String> {
    let tensors = read_safetensors(path)?;
    let mut set = VectorSet {
        name: path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        inputs: vec![],
        outputs: vec![],
    };
    for (name, mut t) in tensors {
        if let Some(input) = name.strip_prefix("input.") {
            t.name = Some(input.to_string());
            set.inputs.push((Some(input.to_string()), Value::Tensor(t)));
        } else if let Some(output) = name.strip_prefix("output.") {
            t.name = Some(output.to_string());
            set.outputs
                .push((Some(output.to_string()), Value::Tensor(t)));
        } else {
            return Err(format!(
                "tensor `{name}` is neither `input.<name>` nor `output.<name>`"
            ));
        }
    }
    if set.outputs.is_empty() {
        return Err("no `output.<name>` tensor".into());
    }
    Ok(set)
}
