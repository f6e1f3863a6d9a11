//! A streaming protobuf walker and what it checks in ONNX models and TensorFlow SavedModels.
//! Messages are walked field by field from the file; tensor payloads (`raw_data`) are skipped,
//! never read, and every length is checked against the bytes of its enclosing message.

use std::io::{self, BufReader, Read};

use crate::{Blob, Ctx, Section, Verdict};

/// Nesting of sub-messages followed (graphs in control-flow nodes nest).
const MAX_NESTING: usize = 64;
/// Strings kept (names, op types, paths).
const MAX_STRING: u64 = 64 * 1024;

struct Reader<'a> {
    inner: BufReader<Section<'a>>,
    pos: u64,
}

enum Wire {
    Varint(u64),
    Fixed,
    /// A length-delimited field: its payload starts at `pos` and has this length.
    Len(u64),
}

type Bad = String;

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Bad> {
        let mut b = [0u8; 1];
        self.inner
            .read_exact(&mut b)
            .map_err(|_| format!("truncated at offset {}", self.pos))?;
        self.pos += 1;
        Ok(b[0])
    }

    fn varint(&mut self) -> Result<u64, Bad> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    /// The next field of a message ending at `end`, or `None` at its end.
    fn field(&mut self, end: u64) -> Result<Option<(u32, Wire)>, Bad> {
        if self.pos >= end {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = (key >> 3) as u32;
        if number == 0 {
            return Err(format!("field number 0 at offset {}", self.pos));
        }
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.skip(8, end)?;
                Wire::Fixed
            }
            5 => {
                self.skip(4, end)?;
                Wire::Fixed
            }
            2 => {
                let len = self.varint()?;
                if self.pos.checked_add(len).is_none_or(|e| e > end) {
                    return Err(format!(
                        "a field of {len} bytes at offset {} runs past its message",
                        self.pos
                    ));
                }
                Wire::Len(len)
            }
            other => {
                return Err(format!(
                    "unsupported wire type {other} at offset {}",
                    self.pos
                ));
            }
        };
        if self.pos > end {
            return Err("field runs past its message".into());
        }
        Ok(Some((number, wire)))
    }

    fn skip(&mut self, n: u64, end: u64) -> Result<(), Bad> {
        if self.pos + n > end {
            return Err("field runs past its message".into());
        }
        self.inner
            .seek_relative(n as i64)
            .map_err(|e| e.to_string())?;
        self.pos += n;
        Ok(())
    }

    fn string(&mut self, len: u64) -> Result<String, Bad> {
        if len > MAX_STRING {
            self.inner
                .seek_relative(len as i64)
                .map_err(|e| e.to_string())?;
            self.pos += len;
            return Ok(String::new());
        }
        let mut buf = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| "truncated string".to_string())?;
        self.pos += len;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

fn reader(blob: &mut dyn Blob, len: u64) -> io::Result<Reader<'_>> {
    blob.seek(io::SeekFrom::Start(0))?;
    Ok(Reader {
        inner: BufReader::with_capacity(64 * 1024, Section::new(blob, 0, len)),
        pos: 0,
    })
}

/// Whether the first bytes look like an ONNX ModelProto (ir_version first, then a known field).
pub fn looks_like_onnx(head: &[u8]) -> bool {
    head.len() > 3
        && head[0] == 0x08
        && (3..=15).contains(&head[1])
        && matches!(head[2], 0x12 | 0x1a | 0x22 | 0x28 | 0x32 | 0x3a | 0x42)
}

/// Operator domains that ONNX Runtime implements itself.
const STANDARD_DOMAINS: &[&str] = &[
    "",
    "ai.onnx",
    "ai.onnx.ml",
    "ai.onnx.training",
    "ai.onnx.preview.training",
    "com.microsoft",
    "com.microsoft.nchwc",
    "com.microsoft.experimental",
];

fn elem_size(data_type: u64) -> Option<u64> {
    Some(match data_type {
        1 | 6 | 12 => 4,
        2 | 3 | 9 | 17..=20 | 23..=24 => 1,
        4 | 5 | 10 | 16 => 2,
        7 | 11 | 13 | 14 => 8,
        15 => 16,
        _ => return None,
    })
}

struct Onnx {
    custom_domains: Vec<String>,
    local_function_domains: Vec<String>,
}

pub(crate) fn scan_onnx(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
    _path: &str,
) -> io::Result<()> {
    let mut r = reader(blob, len)?;
    let mut state = Onnx {
        custom_domains: Vec::new(),
        local_function_domains: Vec::new(),
    };
    let result = model(ctx, &mut r, len, &mut state);
    if let Err(why) = result {
        ctx.add(
            "onnx-malformed",
            Verdict::Malformed,
            format!("offset {}", r.pos),
            format!("invalid ONNX protobuf: {why}"),
            None,
        );
    }
    for domain in state.custom_domains {
        if !state.local_function_domains.contains(&domain) {
            ctx.add(
                "onnx-custom-domain",
                Verdict::Suspicious,
                "",
                format!("operators from the non-standard domain `{domain}` need a custom-op library (native code) to run"),
                Some(domain),
            );
        }
    }
    Ok(())
}

fn model(ctx: &mut Ctx, r: &mut Reader, end: u64, state: &mut Onnx) -> Result<(), Bad> {
    let mut saw_graph = false;
    while let Some((number, wire)) = r.field(end)? {
        match (number, wire) {
            (7, Wire::Len(n)) => {
                saw_graph = true;
                let end = r.pos + n;
                graph(ctx, r, end, state, "graph", 0)?;
            }
            (25, Wire::Len(n)) => {
                let end = r.pos + n;
                function(ctx, r, end, state)?;
            }
            (_, Wire::Len(n)) => r.skip(n, end)?,
            _ => {}
        }
    }
    if !saw_graph {
        return Err("the model has no graph".into());
    }
    Ok(())
}

fn function(ctx: &mut Ctx, r: &mut Reader, end: u64, state: &mut Onnx) -> Result<(), Bad> {
    while let Some((number, wire)) = r.field(end)? {
        match (number, wire) {
            (10, Wire::Len(n)) => {
                let domain = r.string(n)?;
                state.local_function_domains.push(domain);
            }
            (7, Wire::Len(n)) => {
                let end = r.pos + n;
                node(ctx, r, end, state, "function", 1)?;
            }
            (_, Wire::Len(n)) => r.skip(n, end)?,
            _ => {}
        }
    }
    Ok(())
}

fn graph(
    ctx: &mut Ctx,
    r: &mut Reader,
    end: u64,
    state: &mut Onnx,
    path: &str,
    depth: usize,
) -> Result<(), Bad> {
    if depth > MAX_NESTING {
        return Err("graphs nested too deep".into());
    }
    while let Some((number, wire)) = r.field(end)? {
        match (number, wire) {
            (1, Wire::Len(n)) => {
                let end = r.pos + n;
                node(ctx, r, end, state, path, depth)?;
            }
            (5, Wire::Len(n)) => {
                let end = r.pos + n;
                tensor(ctx, r, end, path)?;
            }
            (_, Wire::Len(n)) => r.skip(n, end)?,
            _ => {}
        }
    }
    Ok(())
}

fn node(
    ctx: &mut Ctx,
    r: &mut Reader,
    end: u64,
    state: &mut Onnx,
    path: &str,
    depth: usize,
) -> Result<(), Bad> {
    let mut name = String::new();
    while let Some((number, wire)) = r.field(end)? {
        match (number, wire) {
            (3, Wire::Len(n)) => name = r.string(n)?,
            (7, Wire::Len(n)) => {
                let domain = r.string(n)?;
                if !STANDARD_DOMAINS.contains(&domain.as_str())
                    && !state.custom_domains.contains(&domain)
                {
                    state.custom_domains.push(domain);
                }
            }
            (5, Wire::Len(n)) => {
                let end = r.pos + n;
                attribute(ctx, r, end, state, &format!("{path}/{name}"), depth)?;
            }
            (_, Wire::Len(n)) => r.skip(n, end)?,
            _ => {}
        }
    }
    Ok(())
}

fn attribute(
    ctx: &mut Ctx,
    r: &mut Reader,
    end: u64,
    state: &mut Onnx,
    path: &str,
    depth: usize,
) -> Result<(), Bad> {
    while let Some((number, wire)) = r.field(end)? {
        match (number, wire) {
            // A subgraph of a control-flow node (If, Loop, Scan): walked like the main graph.
            (6 | 11, Wire::Len(n)) => {
                let end = r.pos + n;
                graph(ctx, r, end, state, path, depth + 1)?;
            }
            (5 | 10, Wire::Len(n)) => {
                let end = r.pos + n;
                tensor(ctx, r, end, path)?;
            }
            (_, Wire::Len(n)) => r.skip(n, end)?,
            _ => {}
        }
    }
    Ok(())
}

/// Checks a path from `external_data.location`: relative, normalised, inside the model folder.
fn location_problem(location: &str) -> Option<(&'static str, Verdict)> {
    if location.is_empty() {
        return Some(("is empty", Verdict::Malformed));
    }
    if location.starts_with('/')
        || location.starts_with("\\")
        || (location.len() > 1 && location.as_bytes()[1] == b':')
    {
        return Some((
            "is absolute: the runtime would read any file on the machine",
            Verdict::Malicious,
        ));
    }
    if location.split(['/', '\\']).any(|seg| seg == "..") {
        return Some((
            "contains `..` and can escape the model folder (CVE-2022-25882, CVE-2024-27318)",
            Verdict::Malicious,
        ));
    }
    if location.contains('\\')
        || location.contains('\0')
        || location.starts_with('~')
        || location.contains("://")
    {
        return Some(("is not a plain relative path", Verdict::Suspicious));
    }
    None
}

fn tensor(ctx: &mut Ctx, r: &mut Reader, end: u64, path: &str) -> Result<(), Bad> {
    let mut dims: Vec<i64> = Vec::new();
    let mut data_type = 0u64;
    let mut name = String::new();
    let mut raw_len: Option<u64> = None;
    let mut external: Vec<(String, String)> = Vec::new();
    while let Some((number, wire)) = r.field(end)? {
        match (number, wire) {
            (1, Wire::Varint(d)) => dims.push(d as i64),
            (1, Wire::Len(n)) => {
                let end = r.pos + n;
                while r.pos < end {
                    dims.push(r.varint()? as i64);
                    if dims.len() > 64 {
                        return Err("tensor with more than 64 dims".into());
                    }
                }
            }
            (2, Wire::Varint(t)) => data_type = t,
            (8, Wire::Len(n)) => name = r.string(n)?,
            (9, Wire::Len(n)) => {
                raw_len = Some(n);
                r.skip(n, end)?;
            }
            (13, Wire::Len(n)) => {
                let end = r.pos + n;
                let (mut key, mut value) = (String::new(), String::new());
                while let Some((k, w)) = r.field(end)? {
                    match (k, w) {
                        (1, Wire::Len(n)) => key = r.string(n)?,
                        (2, Wire::Len(n)) => value = r.string(n)?,
                        (_, Wire::Len(n)) => r.skip(n, end)?,
                        _ => {}
                    }
                }
                external.push((key, value));
            }
            (_, Wire::Len(n)) => r.skip(n, end)?,
            _ => {}
        }
    }
    let location_text = format!("{path} initializer {name}");
    if dims.iter().any(|d| *d < 0) {
        ctx.add(
            "onnx-bad-dims",
            Verdict::Malformed,
            &location_text,
            format!("negative dimension in {dims:?}"),
            None,
        );
        return Ok(());
    }
    let elements = dims
        .iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(*d as u64));
    let expected = elements
        .zip(elem_size(data_type))
        .and_then(|(e, s)| e.checked_mul(s));
    if elements.is_none() || expected.is_some_and(|e| e > 1 << 44) {
        ctx.add(
            "onnx-absurd-size",
            Verdict::Malformed,
            &location_text,
            format!("dims {dims:?} describe an absurd amount of data"),
            None,
        );
    }
    if let (Some(raw), Some(expected)) = (raw_len, expected)
        && raw != expected
    {
        ctx.add(
            "onnx-size-mismatch",
            Verdict::Malformed,
            &location_text,
            format!("raw_data has {raw} bytes but dims {dims:?} need {expected}"),
            None,
        );
    }
    for (key, value) in &external {
        match key.as_str() {
            "location" => {
                if let Some((why, severity)) = location_problem(value) {
                    ctx.add(
                        "onnx-external-data-path",
                        severity,
                        &location_text,
                        format!("external data location `{value}` {why}"),
                        Some(value.clone()),
                    );
                }
            }
            "offset" | "length" if value.parse::<u64>().is_err() => {
                ctx.add(
                    "onnx-external-data-malformed",
                    Verdict::Malformed,
                    &location_text,
                    format!("external data {key} `{value}` is not a byte count"),
                    Some(value.clone()),
                );
            }
            _ => {}
        }
    }
    if let (Some(length), Some(expected)) = (
        external
            .iter()
            .find(|(k, _)| k == "length")
            .and_then(|(_, v)| v.parse::<u64>().ok()),
        expected,
    ) && length != expected
    {
        ctx.add(
            "onnx-size-mismatch",
            Verdict::Malformed,
            &location_text,
            format!("external data length {length} but dims {dims:?} need {expected}"),
            None,
        );
    }
    Ok(())
}

/// TensorFlow ops that touch files, run Python or load other programs at inference.
fn dangerous_op(op: &str) -> Option<(&'static str, Verdict)> {
    Some(match op {
        "ReadFile"
        | "WriteFile"
        | "MatchingFiles"
        | "DeleteFile"
        | "WholeFileReader"
        | "WholeFileReaderV2"
        | "TextLineReader"
        | "TextLineReaderV2"
        | "FixedLengthRecordReader"
        | "FixedLengthRecordReaderV2"
        | "TFRecordReader"
        | "TFRecordReaderV2"
        | "LMDBReader"
        | "DatasetToTFRecord"
        | "ImmutableConst"
        | "CreateSummaryFileWriter" => ("reads or writes files", Verdict::Malicious),
        "PyFunc" | "PyFuncStateless" | "EagerPyFunc" => {
            ("runs arbitrary Python", Verdict::Malicious)
        }
        "LoadAndRemapMatrix" | "LoadLibrary" => {
            ("loads external files or libraries", Verdict::Suspicious)
        }
        _ => return None,
    })
}

/// Whether the first bytes look like a SavedModel (schema version 1, then the meta graphs).
pub fn looks_like_saved_model(head: &[u8]) -> bool {
    head.starts_with(&[0x08, 0x01, 0x12])
}

pub(crate) fn scan_saved_model(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<()> {
    let mut head = [0u8; 3];
    blob.seek(io::SeekFrom::Start(0))?;
    let is_saved_model = blob.read_exact(&mut head).is_ok() && looks_like_saved_model(&head);
    let mut r = reader(blob, len)?;
    let mut ops: Vec<String> = Vec::new();
    // A SavedModel, or else a frozen GraphDef (what `tf.compat.v1` imports from a .pb).
    let level = if is_saved_model { 0 } else { 2 };
    if let Err(why) = collect_ops(&mut r, len, level, &mut ops) {
        ctx.add(
            "tf-malformed",
            Verdict::Malformed,
            format!("offset {}", r.pos),
            format!("invalid SavedModel protobuf: {why}"),
            None,
        );
    }
    for op in ops {
        if let Some((why, severity)) = dangerous_op(&op) {
            ctx.add(
                "tf-dangerous-op",
                severity,
                format!("op {op}"),
                format!("the graph uses {op}, which {why} when the model runs"),
                Some(op.clone()),
            );
        }
    }
    Ok(())
}

/// Walks SavedModel → MetaGraphDef → GraphDef/FunctionDefLibrary → NodeDef and collects `op`.
/// Field paths: SavedModel.meta_graphs(2) → graph_def(2) → node(1).op(2) and
/// library(2) → function(1) → node_def(3).op(2).
fn collect_ops(r: &mut Reader, end: u64, level: u8, ops: &mut Vec<String>) -> Result<(), Bad> {
    while let Some((number, wire)) = r.field(end)? {
        let Wire::Len(n) = wire else { continue };
        let sub_end = r.pos + n;
        match (level, number) {
            (0, 2) => collect_ops(r, sub_end, 1, ops)?, // SavedModel.meta_graphs
            (1, 2) => collect_ops(r, sub_end, 2, ops)?, // MetaGraphDef.graph_def
            (2, 1) => collect_ops(r, sub_end, 3, ops)?, // GraphDef.node
            (2, 2) => collect_ops(r, sub_end, 4, ops)?, // GraphDef.library
            (4, 1) => collect_ops(r, sub_end, 5, ops)?, // FunctionDefLibrary.function
            (5, 3) => collect_ops(r, sub_end, 3, ops)?, // FunctionDef.node_def
            (3, 2) => {
                let op = r.string(n)?;
                if !ops.contains(&op) && ops.len() < 10_000 {
                    ops.push(op);
                }
            }
            _ => r.skip(n, end)?,
        }
    }
    Ok(())
}

/// The top-level shape of a CoreML `Model` message: `specificationVersion` (1), `description`
/// (2) and one model-type field (numbers 200 and up: neuralNetwork, mlProgram, pipeline, …).
/// ONNX has no field above 20 at the top level, so this tells the two protobufs apart.
pub(crate) fn coreml_shape(blob: &mut dyn Blob, len: u64) -> io::Result<Result<(), Bad>> {
    let mut r = reader(blob, len)?;
    let (mut version, mut model_type) = (false, false);
    loop {
        match r.field(len) {
            Ok(None) => break,
            Ok(Some((1, Wire::Varint(_)))) => version = true,
            Ok(Some((n, Wire::Len(l)))) => {
                model_type |= n >= 200;
                if let Err(why) = r.skip(l, len) {
                    return Ok(Err(why));
                }
            }
            Ok(Some(_)) => {}
            Err(why) => return Ok(Err(why)),
        }
    }
    Ok(match (version, model_type) {
        (true, true) => Ok(()),
        _ => Err("no specificationVersion and model type".into()),
    })
}

/// CoreML (`.mlmodel`, the `model.mlmodel` of an `.mlpackage`): Core ML compiles it into
/// its own runtime format; it names no files and runs no code beyond its layers.
pub(crate) fn scan_coreml(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<()> {
    if let Err(why) = coreml_shape(blob, len)? {
        ctx.add(
            "coreml-malformed",
            Verdict::Malformed,
            "",
            format!("invalid CoreML protobuf: {why}"),
            None,
        );
    }
    Ok(())
}

/// TensorFlow Lite flatbuffers: `TFL3` at offset 4 and a root table inside the file.
pub(crate) fn scan_tflite(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<()> {
    let head = crate::read_at(blob, 0, 8.min(len), len, 8)?;
    let root = head
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64);
    if root.is_none_or(|root| root < 8 || root.saturating_add(4) > len) {
        ctx.add(
            "tflite-malformed",
            Verdict::Malformed,
            "",
            "the flatbuffer's root table lies outside the file",
            None,
        );
    }
    Ok(())
}
