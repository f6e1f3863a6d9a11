//! Reads the licence keys of a GGUF header (`general.license`, `general.license.name`)
//! without trusting any length field: every count and string is bounded before reading.

use std::io::{self, Read};

const MAX_KEYS: u64 = 1 << 16;
const MAX_STRING: u64 = 1 << 20;
/// Metadata before the tensor infos rarely exceeds a few MiB (tokenizer vocabularies).
const MAX_HEADER: u64 = 64 << 20;

struct Bounded<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Bounded<R> {
    fn bytes(&mut self, n: u64) -> io::Result<Vec<u8>> {
        if self.read + n > MAX_HEADER {
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
}
