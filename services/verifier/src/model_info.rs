//! What an ONNX file says about itself, read by streaming its protobuf: IR version, opsets,
//! producer, and every external-data file its tensors point to (checked to stay inside the
//! model's folder before ONNX Runtime opens anything).

use std::collections::BTreeSet;
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
}

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
    let mut w = Wire::new(BufReader::with_capacity(1 << 16, file), len);
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
                w.nested(n, |w| tensor(w, header))?
            }
            // sparse_initializer: values (1) and indices (2) are tensors
            (15, WireType::Len(n)) => w.nested(n, |w| {
                while let Some((field, wire)) = w.next_field()? {
                    match (field, wire) {
                        (1 | 2, WireType::Len(n)) => w.nested(n, |w| tensor(w, header))?,
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
                        (5 | 10, WireType::Len(n)) => w.nested(n, |w| tensor(w, header))?,
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

/// Records a tensor's external-data location; skips its bytes.
fn tensor<R: Read>(w: &mut Wire<R>, header: &mut ModelHeader) -> WireResult<()> {
    while let Some((field, wire)) = w.next_field()? {
        match (field, wire) {
            (13, WireType::Len(n)) => {
                let (k, v) = w.nested(n, string_pair)?;
                if k == "location" {
                    header.external_data.insert(v);
                }
            }
            _ => w.skip(wire)?,
        }
    }
    Ok(())
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
