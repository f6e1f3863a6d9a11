//! What an ONNX file says about itself, read by streaming its protobuf: IR version, opsets,
//! producer, the main graph's inputs and outputs, and every external-data file its tensors
//! point to (checked to stay inside the model's folder before ONNX Runtime opens anything).

use std::collections::{BTreeSet, HashSet};
use std::io::{BufReader, Read};
use std::path::{Component, Path};

use serde::Serialize;

use crate::proto::{Wire, WireError, WireResult, WireType};

#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelHeader {
    pub ir_version: Option<u64>,
    /// `domain` (`""` is the default ONNX domain) to version.
    pub opsets: Vec<Opset>,
    pub producer_name: Option<String>,
    pub producer_version: Option<String>,
    pub domain: Option<String>,
    pub model_version: Option<i64>,
    pub metadata: Vec<(String, String)>,
    /// Files named by `external_data` `location` entries, relative to the model's folder.
    pub external_data: BTreeSet<String>,
    pub initializers: u64,
    /// The main graph's inputs (initializers listed as inputs, as IR < 4 does, left out) and
    /// outputs, the first [`MAX_VALUES`] of each.
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    /// Names of the main graph's initializers, to tell them from real inputs.
    #[serde(skip)]
    initializer_names: HashSet<String>,
}

/// An input or output of a graph.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ValueInfo {
    pub name: String,
    /// `tensor(float32)`, `sequence(tensor(int64))`, `map(string, tensor(float32))`, ...
    pub type_name: String,
    /// Each dimension: its size, its symbolic name, or `?`; `None` when the rank is unknown.
    pub shape: Option<Vec<String>>,
}

/// Inputs and outputs kept per graph, dimensions kept per shape, initializer names remembered.
pub const MAX_VALUES: usize = 4096;
const MAX_DIMS: usize = 64;
const MAX_NAMES: usize = 1 << 16;
const MAX_TYPE_DEPTH: u32 = 8;

#[derive(Debug, Clone, Serialize)]
pub struct Opset {
    pub domain: String,
    pub version: i64,
}

/// How deep subgraphs (If/Loop/Scan bodies) may nest before the file is refused.
const MAX_GRAPH_DEPTH: u32 = 32;
const SMALL: u64 = 1 << 20;

/// Reads the header of the ONNX file at `path`.
pub fn read_header(path: &Path) -> WireResult<ModelHeader> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    read_header_from(file, len)
}

/// Reads the header of an ONNX model of `len` bytes from `reader` (buffered here); the
/// initializers' bytes are streamed past, never held. Every length is checked against `len`.
pub fn read_header_from(reader: impl Read, len: u64) -> WireResult<ModelHeader> {
    let mut w = Wire::new(BufReader::with_capacity(1 << 16, reader), len);
    let mut header = ModelHeader::default();
    while let Some((field, wire)) = w.next_field()? {
        match (field, wire) {
            (1, WireType::Varint) => header.ir_version = Some(w.varint()?),
            (2, WireType::Len(n)) => {
                header.producer_name = Some(w.string(n, SMALL, "producer_name")?)
            }
            (3, WireType::Len(n)) => {
                header.producer_version = Some(w.string(n, SMALL, "producer_version")?)
            }
            (4, WireType::Len(n)) => header.domain = Some(w.string(n, SMALL, "domain")?),
            (5, WireType::Varint) => header.model_version = Some(w.varint()? as i64),
            (7, WireType::Len(n)) => w.nested(n, |w| graph(w, &mut header, 0))?,
            (8, WireType::Len(n)) => {
                let opset = w.nested(n, opset)?;
                header.opsets.push(opset);
            }
            (14, WireType::Len(n)) => {
                let (k, v) = w.nested(n, string_pair)?;
                header.metadata.push((k, v));
            }
            _ => w.skip(wire)?,
        }
    }
    let names = std::mem::take(&mut header.initializer_names);
    header.inputs.retain(|input| !names.contains(&input.name));
    Ok(header)
}

fn opset<R: Read>(w: &mut Wire<R>) -> WireResult<Opset> {
    let mut out = Opset {
        domain: String::new(),
        version: 0,
    };
    while let Some((field, wire)) = w.next_field()? {
        match (field, wire) {
            (1, WireType::Len(n)) => out.domain = w.string(n, SMALL, "opset domain")?,
            (2, WireType::Varint) => out.version = w.varint()? as i64,
            _ => w.skip(wire)?,
        }
    }
    Ok(out)
}

fn string_pair<R: Read>(w: &mut Wire<R>) -> WireResult<(String, String)> {
    let (mut k, mut v) = (String::new(), String::new());
    while let Some((field, wire)) = w.next_field()? {
        match (field, wire) {
            (1, WireType::Len(n)) => k = w.string(n, SMALL, "key")?,
            (2, WireType::Len(n)) => v = w.string(n, SMALL, "value")?,
            _ => w.skip(wire)?,
        }
    }
    Ok((k, v))
}

fn graph<R: Read>(w: &mut Wire<R>, header: &mut ModelHeader, depth: u32) -> WireResult<()> {
    if depth > MAX_GRAPH_DEPTH {
        return Err(WireError::Malformed(format!(
            "subgraphs nest deeper than {MAX_GRAPH_DEPTH}"
        )));
    }
    while let Some((field, wire)) = w.next_field()? {
        match (field, wire) {
            // node: its attributes may hold tensors and subgraphs
            (1, WireType::Len(n)) => w.nested(n, |w| node(w, header, depth))?,
            // initializer
            (5, WireType::Len(n)) => {
                header.initializers += 1;
                let name = w.nested(n, |w| tensor(w, header))?;
                if depth == 0 && header.initializer_names.len() < MAX_NAMES {
                    header.initializer_names.extend(name);
                }
            }
            // input, output
            (11 | 12, WireType::Len(n)) if depth == 0 => {
                let list = if field == 11 {
                    &header.inputs
                } else {
                    &header.outputs
                };
                if list.len() < MAX_VALUES {
                    let value = w.nested(n, value_info)?;
                    if field == 11 {
                        header.inputs.push(value);
                    } else {
                        header.outputs.push(value);
                    }
                } else {
                    w.skip(wire)?;
                }
            }
            // sparse_initializer: values (1) and indices (2) are tensors
            (15, WireType::Len(n)) => w.nested(n, |w| {
                while let Some((field, wire)) = w.next_field()? {
                    match (field, wire) {
                        (1 | 2, WireType::Len(n)) => {
                            w.nested(n, |w| tensor(w, header))?;
                        }
                        _ => w.skip(wire)?,
                    }
                }
                Ok(())
            })?,
            _ => w.skip(wire)?,
        }
    }
    Ok(())
}

fn node<R: Read>(w: &mut Wire<R>, header: &mut ModelHeader, depth: u32) -> WireResult<()> {
    while let Some((field, wire)) = w.next_field()? {
        match (field, wire) {
            (5, WireType::Len(n)) => w.nested(n, |w| {
                while let Some((field, wire)) = w.next_field()? {
                    match (field, wire) {
                        // t, tensors
                        (5 | 10, WireType::Len(n)) => {
                            w.nested(n, |w| tensor(w, header))?;
                        }
                        // g, graphs
                        (6 | 11, WireType::Len(n)) => {
                            w.nested(n, |w| graph(w, header, depth + 1))?
                        }
                        _ => w.skip(wire)?,
                    }
                }
                Ok(())
            })?,
            _ => w.skip(wire)?,
        }
    }
    Ok(())
}

/// Records a tensor's external-data location; skips its bytes; returns its name when short.
fn tensor<R: Read>(w: &mut Wire<R>, header: &mut ModelHeader) -> WireResult<Option<String>> {
    let mut name = None;
    while let Some((field, wire)) = w.next_field()? {
        match (field, wire) {
            (8, WireType::Len(n)) if n <= 4096 => name = Some(w.string(n, 4096, "tensor name")?),
            (13, WireType::Len(n)) => {
                let (k, v) = w.nested(n, string_pair)?;
                if k == "location" {
                    header.external_data.insert(v);
                }
            }
            _ => w.skip(wire)?,
        }
    }
    Ok(name)
}

/// `ValueInfoProto`: a name and a type.
fn value_info<R: Read>(w: &mut Wire<R>) -> WireResult<ValueInfo> {
    let mut out = ValueInfo {
        type_name: "unknown".into(),
        ..ValueInfo::default()
    };
    while let Some((field, wire)) = w.next_field()? {
        match (field, wire) {
            (1, WireType::Len(n)) => out.name = w.string(n, SMALL, "value name")?,
            (2, WireType::Len(n)) => {
                let (type_name, shape) = w.nested(n, |w| type_proto(w, 0))?;
                out.type_name = type_name;
                out.shape = shape;
            }
            _ => w.skip(wire)?,
        }
    }
    Ok(out)
}

/// `TypeProto`: its name, and the shape when it is a (sparse) tensor.
fn type_proto<R: Read>(w: &mut Wire<R>, depth: u32) -> WireResult<(String, Option<Vec<String>>)> {
    if depth > MAX_TYPE_DEPTH {
        return Err(WireError::Malformed(format!(
            "types nest deeper than {MAX_TYPE_DEPTH}"
        )));
    }
    let mut out = ("unknown".to_string(), None);
    while let Some((field, wire)) = w.next_field()? {
        out = match (field, wire) {
            // tensor_type, sparse_tensor_type: elem_type (1), shape (2)
            (1 | 8, WireType::Len(n)) => w.nested(n, |w| {
                let (mut elem, mut shape) = (0, None);
                while let Some((field, wire)) = w.next_field()? {
                    match (field, wire) {
                        (1, WireType::Varint) => elem = w.varint()?,
                        (2, WireType::Len(n)) => shape = Some(w.nested(n, dims)?),
                        _ => w.skip(wire)?,
                    }
                }
                let kind = if field == 1 {
                    "tensor"
                } else {
                    "sparse_tensor"
                };
                Ok((format!("{kind}({})", elem_type_name(elem)), shape))
            })?,
            // sequence_type, optional_type: elem_type (1) is a type
            (4 | 9, WireType::Len(n)) => w.nested(n, |w| {
                let mut inner = "unknown".to_string();
                while let Some((field, wire)) = w.next_field()? {
                    match (field, wire) {
                        (1, WireType::Len(n)) => {
                            inner = w.nested(n, |w| type_proto(w, depth + 1))?.0
                        }
                        _ => w.skip(wire)?,
                    }
                }
                let kind = if field == 4 { "sequence" } else { "optional" };
                Ok((format!("{kind}({inner})"), None))
            })?,
            // map_type: key_type (1), value_type (2)
            (5, WireType::Len(n)) => w.nested(n, |w| {
                let (mut key, mut value) = (0, "unknown".to_string());
                while let Some((field, wire)) = w.next_field()? {
                    match (field, wire) {
                        (1, WireType::Varint) => key = w.varint()?,
                        (2, WireType::Len(n)) => {
                            value = w.nested(n, |w| type_proto(w, depth + 1))?.0
                        }
                        _ => w.skip(wire)?,
                    }
                }
                Ok((format!("map({}, {value})", elem_type_name(key)), None))
            })?,
            _ => {
                w.skip(wire)?;
                out
            }
        };
    }
    Ok(out)
}

/// `TensorShapeProto`: each dimension as its value, its symbolic name, or `?`.
fn dims<R: Read>(w: &mut Wire<R>) -> WireResult<Vec<String>> {
    let mut out = vec![];
    while let Some((field, wire)) = w.next_field()? {
        match (field, wire) {
            (1, WireType::Len(n)) if out.len() < MAX_DIMS => out.push(w.nested(n, |w| {
                let mut dim = "?".to_string();
                while let Some((field, wire)) = w.next_field()? {
                    match (field, wire) {
                        (1, WireType::Varint) => dim = (w.varint()? as i64).to_string(),
                        (2, WireType::Len(n)) => dim = w.string(n, 4096, "dimension name")?,
                        _ => w.skip(wire)?,
                    }
                }
                Ok(dim)
            })?),
            _ => w.skip(wire)?,
        }
    }
    Ok(out)
}

/// The name of a `TensorProto.DataType`.
pub fn elem_type_name(code: u64) -> String {
    const NAMES: [&str; 24] = [
        "undefined",
        "float32",
        "uint8",
        "int8",
        "uint16",
        "int16",
        "int32",
        "int64",
        "string",
        "bool",
        "float16",
        "float64",
        "uint32",
        "uint64",
        "complex64",
        "complex128",
        "bfloat16",
        "float8e4m3fn",
        "float8e4m3fnuz",
        "float8e5m2",
        "float8e5m2fnuz",
        "uint4",
        "int4",
        "float4e2m1",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("type {code}"), |name| name.to_string())
}

/// Why an external-data location is refused: it must name a file below the model's folder.
pub fn location_problem(location: &str) -> Option<&'static str> {
    let path = Path::new(location);
    if location.is_empty() {
        return Some("is empty");
    }
    if location.contains('\0') {
        return Some("contains a NUL byte");
    }
    for part in path.components() {
        match part {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Some("leaves the model's folder (`..`)"),
            Component::RootDir | Component::Prefix(_) => return Some("is an absolute path"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::location_problem;

    #[test]
    fn locations_must_stay_below_the_model() {
        assert_eq!(location_problem("weights/data.bin"), None);
        assert_eq!(location_problem("./data.bin"), None);
        assert!(location_problem("../other/data.bin").is_some());
        assert!(location_problem("/etc/passwd").is_some());
        assert!(location_problem("a/../../b").is_some());
        assert!(location_problem("").is_some());
    }
}
