//! NumPy `.npy`: a strict header parser (never `eval`), the data length checked against the
//! shape, and object arrays' pickle payloads scanned.

use std::io::{self, Read, SeekFrom};

use crate::{Blob, Ctx, Section, Verdict, pickle};

/// Bytes per element of a dtype code such as `<f4`, `|u1`, `<U10`, `<M8[ns]`.
pub fn itemsize(code: &str) -> Option<u64> {
    let code = code.trim_start_matches(['<', '>', '|', '=']);
    let code = code.split('[').next().unwrap_or(code);
    let mut chars = code.chars();
    let kind = chars.next()?;
    let digits: String = chars.collect();
    let n: Option<u64> = if digits.is_empty() {
        None
    } else {
        digits.parse().ok()
    };
    match (kind, n) {
        ('?', None) | ('b', None) | ('B', None) => Some(1),
        ('e', None) => Some(2),
        ('f', None) => Some(4),
        ('d', None) | ('g', None) => Some(8),
        ('b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'a' | 'V', Some(n)) => Some(n),
        ('U', Some(n)) => n.checked_mul(4),
        ('M' | 'm', Some(8)) => Some(8),
        _ => None,
    }
}

pub struct Header {
    pub descr: String,
    pub shape: Vec<u64>,
    pub data_offset: u64,
}

/// Parses the header; errors are messages for a malformed finding.
pub fn parse_header(blob: &mut dyn Read, len: u64) -> Result<Header, String> {
    let mut fixed = [0u8; 10];
    blob.read_exact(&mut fixed)
        .map_err(|_| "file shorter than the .npy preamble".to_string())?;
    if &fixed[..6] != b"\x93NUMPY" {
        return Err("missing \\x93NUMPY magic".into());
    }
    let (header_len, start) = match fixed[6] {
        1 => (u16::from_le_bytes([fixed[8], fixed[9]]) as u64, 10u64),
        2 | 3 => {
            let mut more = [0u8; 2];
            blob.read_exact(&mut more)
                .map_err(|_| "truncated preamble".to_string())?;
            (
                u32::from_le_bytes([fixed[8], fixed[9], more[0], more[1]]) as u64,
                12u64,
            )
        }
        v => return Err(format!("unknown .npy version {v}")),
    };
    if header_len > 1024 * 1024 || start + header_len > len {
        return Err(format!("header length {header_len} runs past the file"));
    }
    let mut header = vec![0u8; header_len as usize];
    blob.read_exact(&mut header)
        .map_err(|_| "truncated header".to_string())?;
    let text = std::str::from_utf8(&header).map_err(|_| "header is not text".to_string())?;
    let descr = dict_value(text, "descr").ok_or("header has no 'descr'")?;
    let shape_text = dict_value(text, "shape").ok_or("header has no 'shape'")?;
    let fortran = dict_value(text, "fortran_order").ok_or("header has no 'fortran_order'")?;
    if fortran != "True" && fortran != "False" {
        return Err(format!("fortran_order is `{fortran}`"));
    }
    let inner = shape_text
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or("shape is not a tuple")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|d| {
            d.trim_end_matches('L')
                .parse::<u64>()
                .map_err(|_| format!("shape entry `{d}` is not a size"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Header {
        descr: descr.trim().to_string(),
        shape,
        data_offset: start + header_len,
    })
}

/// The raw text of `'key': value` in a Python dict literal (values here are strings, booleans,
/// tuples or lists of tuples).
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("'{key}':");
    let start = text.find(&needle)? + needle.len();
    let rest = text[start..].trim_start();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, c) in rest.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']') => depth -= 1,
            (None, '}') if depth == 0 => return Some(rest[..i].trim().trim_end_matches(',')),
            (None, '}') => depth -= 1,
            (None, ',') if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    None
}

pub(crate) fn scan_npy(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<&'static str> {
    blob.seek(SeekFrom::Start(0))?;
    let header = match parse_header(&mut *blob, len) {
        Ok(h) => h,
        Err(why) => {
            ctx.add(
                "npy-malformed",
                Verdict::Malformed,
                "header",
                format!("invalid .npy header: {why}"),
                None,
            );
            return Ok("numpy-npy");
        }
    };
    let object = header.descr.contains('O');
    let data_len = len - header.data_offset;
    if object {
        let section = Section::new(blob, header.data_offset, data_len);
        pickle::scan_stream(ctx, section, data_len, true)?;
        return Ok("numpy-npy-object");
    }
    let descr = header.descr.trim_matches(|c| c == '\'' || c == '"');
    let Some(size) = itemsize(descr) else {
        if header.descr.starts_with('[') {
            return Ok("numpy-npy"); // structured dtype without objects: sizes not checked
        }
        ctx.add(
            "npy-malformed",
            Verdict::Malformed,
            "header",
            format!("unknown dtype {}", header.descr),
            Some(header.descr.clone()),
        );
        return Ok("numpy-npy");
    };
    let expected = header
        .shape
        .iter()
        .try_fold(size, |acc, d| acc.checked_mul(*d));
    if expected != Some(data_len) {
        ctx.add(
            "npy-size-mismatch",
            Verdict::Malformed,
            "data",
            format!(
                "shape {:?} of {} needs {} bytes but the file holds {data_len}",
                header.shape,
                descr,
                expected.map_or("overflowing".into(), |e| e.to_string())
            ),
            None,
        );
    }
    Ok("numpy-npy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itemsizes() {
        assert_eq!(itemsize("<f4"), Some(4));
        assert_eq!(itemsize("f8"), Some(8));
        assert_eq!(itemsize("|b1"), Some(1));
        assert_eq!(itemsize("<U10"), Some(40));
        assert_eq!(itemsize("<M8[ns]"), Some(8));
        assert_eq!(itemsize("|O"), None);
    }

    #[test]
    fn reads_header_values() {
        let text = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        assert_eq!(dict_value(text, "descr"), Some("'<f4'"));
        assert_eq!(dict_value(text, "shape"), Some("(2, 3)"));
        assert_eq!(dict_value(text, "fortran_order"), Some("False"));
    }
}
