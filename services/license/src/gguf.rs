//! Reads a GGUF header without trusting any length field: every count and string is bounded
//! before reading. [`licence_keys`] picks the licence keys (`general.license`,
//! `general.license.name`); [`header`] returns the whole key/value metadata and tensor list
//! (the file viewer shows them).

use std::io::{self, Read};

use serde::Serialize;

const MAX_KEYS: u64 = 1 << 16;
const MAX_STRING: u64 = 1 << 20;
/// Metadata before the tensor infos rarely exceeds a few MiB (tokenizer vocabularies).
const MAX_HEADER: u64 = 64 << 20;

struct Bounded<R> {
    inner: R,
    read: u64,
    /// Bytes that may be read in all: the file's size or a smaller budget.
    limit: u64,
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

impl<R: Read> Bounded<R> {
    fn check(&self, n: u64) -> io::Result<()> {
        if self.read.saturating_add(n) > self.limit {
            return Err(invalid("GGUF header exceeds the metadata budget"));
        }
        Ok(())
    }
    fn skip(&mut self, n: u64) -> io::Result<()> {
        self.check(n)?;
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        self.read += copied;
        if copied != n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
    fn bytes(&mut self, n: u64) -> io::Result<Vec<u8>> {
        if self.read.saturating_add(n) > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "GGUF header exceeds the metadata budget",
            ));
        }
        let mut buf = vec![0; n as usize];
        self.inner.read_exact(&mut buf)?;
        self.read += n;
        Ok(buf)
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(
            self.bytes(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(
            self.bytes(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self) -> io::Result<Vec<u8>> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "GGUF string too long",
            ));
        }
        self.bytes(len)
    }
    fn skip_value(&mut self, kind: u32, depth: u8) -> io::Result<()> {
        match kind {
            0 | 1 | 7 => self.bytes(1).map(drop),
            2 | 3 => self.bytes(2).map(drop),
            4..=6 => self.bytes(4).map(drop),
            10..=12 => self.bytes(8).map(drop),
            8 => self.string().map(drop),
            9 if depth < 2 => {
                let inner = self.u32()?;
                let n = self.u64()?;
                for _ in 0..n {
                    self.skip_value(inner, depth + 1)?;
                }
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("GGUF value type {kind} unknown"),
            )),
        }
    }
}

/// `(key, value)` pairs of the licence keys in a GGUF header; `None` if not a GGUF file.
pub fn licence_keys(reader: impl Read) -> io::Result<Option<Vec<(String, String)>>> {
    let mut r = Bounded {
        inner: reader,
        read: 0,
        limit: MAX_HEADER,
    };
    if r.bytes(4)? != b"GGUF" {
        return Ok(None);
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Ok(Some(vec![]));
    }
    let _tensors = r.u64()?;
    let keys = r.u64()?;
    if keys > MAX_KEYS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "GGUF declares too many keys",
        ));
    }
    let mut out = Vec::new();
    for _ in 0..keys {
        let key = String::from_utf8_lossy(&r.string()?).into_owned();
        let kind = r.u32()?;
        if kind == 8 && key.starts_with("general.license") {
            out.push((key, String::from_utf8_lossy(&r.string()?).into_owned()));
        } else {
            r.skip_value(kind, 0)?;
        }
    }
    Ok(Some(out))
}

/// Strings longer than this are not kept by [`header`] (their length is).
const MAX_KEPT_STRING: u64 = 64 << 10;
/// Arrays of at most this many items are kept by [`header`]; longer ones are counted.
const MAX_KEPT_ITEMS: u64 = 16;
const MAX_TENSORS: u64 = 1 << 20;
const MAX_DIMS: u32 = 8;

/// A metadata value of a GGUF header, as [`header`] keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GgufValue {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    /// A string longer than the viewer keeps: its length in bytes.
    LongText(u64),
    /// `items` when the array is short (at most 16 scalars or strings), its length always.
    Array {
        item_type: &'static str,
        len: u64,
        items: Option<Vec<GgufValue>>,
    },
}

impl GgufValue {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            GgufValue::Uint(n) => Some(*n),
            GgufValue::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl std::fmt::Display for GgufValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GgufValue::Uint(n) => write!(f, "{n}"),
            GgufValue::Int(n) => write!(f, "{n}"),
            GgufValue::Float(n) => write!(f, "{n}"),
            GgufValue::Bool(b) => write!(f, "{b}"),
            GgufValue::Text(s) => f.write_str(s),
            GgufValue::LongText(n) => write!(f, "(a string of {n} bytes)"),
            GgufValue::Array {
                items: Some(items), ..
            } => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match item {
                        GgufValue::Text(s) => write!(f, "{s:?}")?,
                        other => write!(f, "{other}")?,
                    }
                }
                f.write_str("]")
            }
            GgufValue::Array { item_type, len, .. } => write!(f, "{len} items ({item_type})"),
        }
    }
}

/// A tensor a GGUF header describes (its data was not read).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GgufTensor {
    pub name: String,
    /// The ggml type number and its name (`F16`, `Q4_K`, ...; `type 99` when unknown).
    pub ggml_type: u32,
    pub type_name: String,
    /// Dimensions as GGUF lists them (innermost first).
    pub shape: Vec<u64>,
    pub offset: u64,
}

impl GgufTensor {
    pub fn parameters(&self) -> u128 {
        self.shape.iter().map(|&d| d as u128).product()
    }
}

/// The metadata and tensor list of a GGUF file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: Vec<(String, GgufValue)>,
    pub tensors: Vec<GgufTensor>,
    /// Bytes the header took (metadata and tensor infos, before alignment).
    pub header_bytes: u64,
}

impl GgufHeader {
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn parameters(&self) -> u128 {
        self.tensors
            .iter()
            .fold(0u128, |sum, t| sum.saturating_add(t.parameters()))
    }
}

/// The name of a GGUF metadata value type.
fn value_type_name(kind: u32) -> &'static str {
    match kind {
        0 => "u8",
        1 => "i8",
        2 => "u16",
        3 => "i16",
        4 => "u32",
        5 => "i32",
        6 => "f32",
        7 => "bool",
        8 => "string",
        9 => "array",
        10 => "u64",
        11 => "i64",
        12 => "f64",
        _ => "unknown",
    }
}

fn scalar_size(kind: u32) -> Option<u64> {
    Some(match kind {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

/// The name of a ggml tensor type.
pub fn ggml_type_name(ty: u32) -> Option<&'static str> {
    const NAMES: [&str; 40] = [
        "F32", "F16", "Q4_0", "Q4_1", "", "", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K",
        "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
        "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "", "", "", "TQ1_0",
        "TQ2_0", "", "", "", "MXFP4",
    ];
    NAMES
        .get(ty as usize)
        .copied()
        .filter(|name| !name.is_empty())
}

/// The quantization `general.file_type` names (llama.cpp's `LLAMA_FTYPE_*`).
pub fn file_type_name(file_type: u64) -> Option<&'static str> {
    const NAMES: [&str; 39] = [
        "F32",
        "F16",
        "Q4_0",
        "Q4_1",
        "",
        "",
        "",
        "Q8_0",
        "Q5_0",
        "Q5_1",
        "Q2_K",
        "Q3_K_S",
        "Q3_K_M",
        "Q3_K_L",
        "Q4_K_S",
        "Q4_K_M",
        "Q5_K_S",
        "Q5_K_M",
        "Q6_K",
        "IQ2_XXS",
        "IQ2_XS",
        "Q2_K_S",
        "IQ3_XS",
        "IQ3_XXS",
        "IQ1_S",
        "IQ4_NL",
        "IQ3_S",
        "IQ3_M",
        "IQ2_S",
        "IQ2_M",
        "IQ4_XS",
        "IQ1_M",
        "BF16",
        "",
        "",
        "",
        "TQ1_0",
        "TQ2_0",
        "MXFP4_MOE",
    ];
    NAMES
        .get(usize::try_from(file_type).ok()?)
        .copied()
        .filter(|name| !name.is_empty())
}

impl<R: Read> Bounded<R> {
    fn left(&self) -> u64 {
        self.limit.saturating_sub(self.read)
    }
    fn text(&mut self, cap: u64, what: &str) -> io::Result<String> {
        let len = self.u64()?;
        if len > cap {
            return Err(invalid(format!("GGUF {what} longer than {cap} bytes")));
        }
        Ok(String::from_utf8_lossy(&self.bytes(len)?).into_owned())
    }
    fn value(&mut self, kind: u32, top: bool) -> io::Result<GgufValue> {
        let mut le = |n: u64| -> io::Result<u64> {
            let b = self.bytes(n)?;
            Ok(b.iter().rev().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
        };
        Ok(match kind {
            0 | 2 | 4 | 10 => GgufValue::Uint(le(scalar_size(kind).unwrap_or(8))?),
            1 => GgufValue::Int(le(1)? as u8 as i8 as i64),
            3 => GgufValue::Int(le(2)? as u16 as i16 as i64),
            5 => GgufValue::Int(le(4)? as u32 as i32 as i64),
            11 => GgufValue::Int(le(8)? as i64),
            6 => GgufValue::Float(f32::from_bits(le(4)? as u32) as f64),
            12 => GgufValue::Float(f64::from_bits(le(8)?)),
            7 => GgufValue::Bool(le(1)? != 0),
            8 => {
                let len = self.u64()?;
                if len > MAX_KEPT_STRING {
                    self.skip(len)?;
                    GgufValue::LongText(len)
                } else {
                    GgufValue::Text(String::from_utf8_lossy(&self.bytes(len)?).into_owned())
                }
            }
            9 if top => self.array()?,
            _ => return Err(invalid(format!("GGUF value type {kind} unknown here"))),
        })
    }
    fn array(&mut self) -> io::Result<GgufValue> {
        let inner = self.u32()?;
        let len = self.u64()?;
        // Every item takes at least one byte (a string eight): the length must fit what is left.
        let least = scalar_size(inner).unwrap_or(8);
        if len.checked_mul(least).is_none_or(|n| n > self.left()) {
            return Err(invalid(format!(
                "a GGUF array of {len} items cannot fit in the bytes left"
            )));
        }
        let items = if len <= MAX_KEPT_ITEMS && inner != 9 {
            Some(
                (0..len)
                    .map(|_| self.value(inner, false))
                    .collect::<io::Result<Vec<_>>>()?,
            )
        } else {
            match scalar_size(inner) {
                Some(size) => self.skip(len * size)?,
                None => {
                    for _ in 0..len {
                        self.skip_value(inner, 1)?;
                    }
                }
            }
            None
        };
        Ok(GgufValue::Array {
            item_type: value_type_name(inner),
            len,
            items,
        })
    }
    fn tensor(&mut self) -> io::Result<GgufTensor> {
        let name = self.text(MAX_KEY, "tensor name")?;
        let dims = self.u32()?;
        if dims > MAX_DIMS {
            return Err(invalid(format!("GGUF tensor {name} has {dims} dimensions")));
        }
        let shape = (0..dims)
            .map(|_| self.u64())
            .collect::<io::Result<Vec<_>>>()?;
        let ggml_type = self.u32()?;
        let offset = self.u64()?;
        Ok(GgufTensor {
            name,
            ggml_type,
            type_name: ggml_type_name(ggml_type)
                .map_or_else(|| format!("type {ggml_type}"), str::to_string),
            shape,
            offset,
        })
    }
}

/// Keys and tensor names longer than this are refused.
const MAX_KEY: u64 = 64 << 10;

/// The metadata and tensor list of a GGUF header, reading at most `max_bytes` (pass the
/// smaller of the file's size and a budget); `None` if the file is not GGUF (version 2 or 3).
/// Counts and lengths are checked against what remains before anything is read or allocated;
/// long strings and arrays are kept as their lengths.
pub fn header(reader: impl Read, max_bytes: u64) -> io::Result<Option<GgufHeader>> {
    let mut r = Bounded {
        inner: reader,
        read: 0,
        limit: max_bytes,
    };
    if r.bytes(4)? != b"GGUF" {
        return Ok(None);
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Ok(None);
    }
    let tensors = r.u64()?;
    let keys = r.u64()?;
    // A key/value takes at least 13 bytes, a tensor description 24.
    if keys > MAX_KEYS || keys * 13 > r.left() {
        return Err(invalid(format!("GGUF declares {keys} keys")));
    }
    if tensors > MAX_TENSORS || tensors * 24 > r.left() {
        return Err(invalid(format!("GGUF declares {tensors} tensors")));
    }
    let mut out = GgufHeader {
        version,
        ..GgufHeader::default()
    };
    for _ in 0..keys {
        let key = r.text(MAX_KEY, "key")?;
        let kind = r.u32()?;
        let value = r.value(kind, true)?;
        out.metadata.push((key, value));
    }
    for _ in 0..tensors {
        out.tensors.push(r.tensor()?);
    }
    out.header_bytes = r.read;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Vec<u8> {
        let mut b = (v.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(v.as_bytes());
        b
    }

    #[test]
    fn reads_licence_and_skips_the_rest() {
        let mut f = b"GGUF".to_vec();
        f.extend(3u32.to_le_bytes());
        f.extend(0u64.to_le_bytes());
        f.extend(3u64.to_le_bytes());
        f.extend(s("general.architecture"));
        f.extend(8u32.to_le_bytes());
        f.extend(s("llama"));
        f.extend(s("tokenizer.ggml.tokens"));
        f.extend(9u32.to_le_bytes());
        f.extend(8u32.to_le_bytes());
        f.extend(2u64.to_le_bytes());
        f.extend(s("a"));
        f.extend(s("b"));
        f.extend(s("general.license"));
        f.extend(8u32.to_le_bytes());
        f.extend(s("llama3.2"));
        let keys = licence_keys(&f[..]).unwrap().unwrap();
        assert_eq!(
            keys,
            vec![("general.license".to_string(), "llama3.2".to_string())]
        );
    }

    #[test]
    fn hostile_lengths_are_refused() {
        let mut f = b"GGUF".to_vec();
        f.extend(3u32.to_le_bytes());
        f.extend(0u64.to_le_bytes());
        f.extend(1u64.to_le_bytes());
        f.extend(u64::MAX.to_le_bytes());
        assert!(licence_keys(&f[..]).is_err());
        assert_eq!(licence_keys(&b"PK\x03\x04rest"[..]).unwrap(), None);
    }

    #[test]
    fn header_keeps_metadata_and_tensors_and_summarises_long_arrays() {
        let mut f = b"GGUF".to_vec();
        f.extend(3u32.to_le_bytes());
        f.extend(1u64.to_le_bytes());
        f.extend(3u64.to_le_bytes());
        f.extend(s("general.architecture"));
        f.extend(8u32.to_le_bytes());
        f.extend(s("llama"));
        f.extend(s("tokenizer.ggml.scores"));
        f.extend(9u32.to_le_bytes());
        f.extend(6u32.to_le_bytes());
        f.extend(20u64.to_le_bytes());
        f.extend([0u8; 80]);
        f.extend(s("llama.context_length"));
        f.extend(4u32.to_le_bytes());
        f.extend(2048u32.to_le_bytes());
        f.extend(s("token_embd.weight"));
        f.extend(2u32.to_le_bytes());
        f.extend(64u64.to_le_bytes());
        f.extend(10u64.to_le_bytes());
        f.extend(12u32.to_le_bytes());
        f.extend(0u64.to_le_bytes());
        let h = header(&f[..], f.len() as u64).unwrap().unwrap();
        assert_eq!(
            h.get("general.architecture").unwrap().as_str(),
            Some("llama")
        );
        assert_eq!(h.get("llama.context_length").unwrap().as_u64(), Some(2048));
        assert_eq!(
            h.get("tokenizer.ggml.scores").unwrap().to_string(),
            "20 items (f32)"
        );
        assert_eq!(h.tensors[0].type_name, "Q4_K");
        assert_eq!(h.tensors[0].shape, [64, 10]);
        assert_eq!(h.parameters(), 640);
        // Cut anywhere, or given a smaller budget, it is an error and never a panic.
        for cut in 0..f.len() {
            assert!(header(&f[..cut], cut as u64).is_err());
            assert!(header(&f[..], cut as u64).is_err());
        }
        let mut lying = f[..24].to_vec();
        lying.extend(u64::MAX.to_le_bytes());
        assert!(header(&lying[..], 1 << 30).is_err());
    }
}
