//! safetensors: the header must be a bounded JSON object of known dtypes whose byte ranges are
//! in bounds, sized exactly by their shapes, sorted, non-overlapping and covering the data
//! section completely (trailing or unindexed bytes would allow polyglot files).

use std::io;

use serde_json::{Map, Value};

use crate::{Blob, Ctx, Verdict, read_at};

/// The reference loader's cap on header size.
const MAX_HEADER: u64 = 100 * 1024 * 1024;

fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" | "C64" => 8,
        "C128" => 16,
        _ => return None,
    })
}

/// Records a structural defect of the file.
fn bad(ctx: &mut Ctx, location: &str, why: String, evidence: Option<String>) {
    ctx.add(
        "safetensors-malformed",
        Verdict::Malformed,
        location,
        why,
        evidence,
    );
}

pub(crate) fn scan(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<()> {
    let Some((header_len, map)) = read_header(ctx, blob, len)? else {
        return Ok(());
    };
    let data_len = len - 8 - header_len;
    let mut ranges: Vec<(u64, u64, String)> = Vec::new();
    for (name, value) in &map {
        if name == "__metadata__" {
            check_metadata(ctx, value);
            continue;
        }
        if let Some((start, end)) = check_tensor(ctx, name, value, data_len) {
            ranges.push((start, end, name.clone()));
        }
    }
    let covered = check_coverage(ctx, ranges);
    if covered < data_len {
        report_unindexed(ctx, blob, 8 + header_len + covered, data_len - covered);
    }
    Ok(())
}

/// Reads the header: its length, then a JSON object with unique keys. `None` when it is not
/// one (the defect is recorded).
fn read_header(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
) -> io::Result<Option<(u64, Map<String, Value>)>> {
    if len < 8 {
        bad(
            ctx,
            "header",
            "shorter than the 8-byte header length".into(),
            None,
        );
        return Ok(None);
    }
    let prefix = read_at(blob, 0, 8, len, 8)?;
    let header_len = u64::from_le_bytes(prefix[..8].try_into().unwrap_or_default());
    if header_len > MAX_HEADER || header_len > len - 8 {
        bad(
            ctx,
            "header",
            format!(
                "declared header length {header_len} exceeds the file ({len} bytes) or the 100 MB limit"
            ),
            Some(header_len.to_string()),
        );
        return Ok(None);
    }
    let header = read_at(blob, 8, header_len, len, MAX_HEADER)?;
    let text = match std::str::from_utf8(&header) {
        Ok(t) => t.trim_end_matches(' '),
        Err(_) => {
            bad(ctx, "header", "header is not UTF-8".into(), None);
            return Ok(None);
        }
    };
    if let Err(why) = crate::text::object_keys_unique(text) {
        bad(
            ctx,
            "header",
            format!("header is not a JSON object: {why}"),
            None,
        );
        return Ok(None);
    }
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        bad(ctx, "header", "header is not a JSON object".into(), None);
        return Ok(None);
    };
    Ok(Some((header_len, map)))
}

fn check_metadata(ctx: &mut Ctx, value: &Value) {
    let ok = value
        .as_object()
        .is_some_and(|m| m.values().all(Value::is_string));
    if !ok {
        bad(
            ctx,
            "__metadata__",
            "__metadata__ must map strings to strings".into(),
            None,
        );
    }
}

/// Checks one tensor entry; its byte range when it lies within the data section.
fn check_tensor(ctx: &mut Ctx, name: &str, value: &Value, data_len: u64) -> Option<(u64, u64)> {
    let location = format!("tensor {name}");
    let Some(tensor) = value.as_object() else {
        bad(ctx, &location, "tensor entry is not an object".into(), None);
        return None;
    };
    let dtype = tensor.get("dtype").and_then(Value::as_str).unwrap_or("");
    let Some(size) = dtype_size(dtype) else {
        bad(
            ctx,
            &location,
            format!("unknown dtype `{dtype}`"),
            Some(dtype.to_string()),
        );
        return None;
    };
    let shape: Option<Vec<u64>> = tensor
        .get("shape")
        .and_then(Value::as_array)
        .map(|dims| dims.iter().filter_map(Value::as_u64).collect());
    let dims = tensor
        .get("shape")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let Some(shape) = shape.filter(|s| s.len() == dims) else {
        bad(ctx, &location, "shape is not a list of sizes".into(), None);
        return None;
    };
    let offsets: Option<Vec<u64>> = tensor
        .get("data_offsets")
        .and_then(Value::as_array)
        .map(|o| o.iter().filter_map(Value::as_u64).collect());
    let Some([start, end]) = offsets
        .as_deref()
        .and_then(|o| <[u64; 2]>::try_from(o).ok())
    else {
        bad(
            ctx,
            &location,
            "data_offsets is not [begin, end]".into(),
            None,
        );
        return None;
    };
    let expected = shape.iter().try_fold(size, |acc, d| acc.checked_mul(*d));
    if end < start || end > data_len {
        bad(
            ctx,
            &location,
            format!("data_offsets [{start}, {end}] outside the {data_len}-byte data section"),
            Some(format!("[{start}, {end}]")),
        );
        return None;
    }
    if expected != Some(end - start) {
        bad(
            ctx,
            &location,
            format!(
                "shape {shape:?} of {dtype} needs {} bytes but data_offsets span {}",
                expected.map_or("overflowing".into(), |e| e.to_string()),
                end - start
            ),
            None,
        );
    }
    Some((start, end))
}

/// Checks that the tensors' ranges neither overlap nor leave gaps; how far they cover.
fn check_coverage(ctx: &mut Ctx, mut ranges: Vec<(u64, u64, String)>) -> u64 {
    ranges.sort();
    let mut covered = 0u64;
    for (start, end, name) in &ranges {
        if *start < covered {
            bad(
                ctx,
                &format!("tensor {name}"),
                format!("data_offsets [{start}, {end}] overlap another tensor"),
                None,
            );
        } else if *start > covered {
            bad(
                ctx,
                &format!("tensor {name}"),
                format!(
                    "{} bytes before this tensor belong to no tensor",
                    start - covered
                ),
                None,
            );
        }
        covered = covered.max(*end);
    }
    covered
}

/// Reports the `len` bytes at `offset` that no tensor indexes. What hides there is named as
/// evidence; safetensors loaders never interpret these bytes, so the file is malformed rather
/// than malicious in itself.
fn report_unindexed(ctx: &mut Ctx, blob: &mut dyn Blob, offset: u64, len: u64) {
    let mut tail = crate::Section::new(blob, offset, len);
    let inner = crate::scan_with(&mut tail, len, "unindexed", ctx.limits);
    let evidence = (inner.format != "unknown").then(|| {
        let rules: Vec<&str> = inner.findings.iter().map(|f| f.rule).collect();
        format!(
            "the unindexed bytes are a {} file ({}{})",
            inner.format,
            inner.verdict.as_str(),
            if rules.is_empty() {
                String::new()
            } else {
                format!(": {}", rules.join(", "))
            }
        )
    });
    ctx.add(
        "safetensors-trailing-data",
        Verdict::Malformed,
        "data",
        format!("{len} bytes after the last tensor are not indexed by the header (room for a polyglot file)"),
        evidence,
    );
}
