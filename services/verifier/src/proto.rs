//! A protobuf wire-format reader that checks every length against what encloses it.
//!
//! ONNX files are protobuf messages of up to 2 GiB and test vectors are small ones. This reader
//! walks fields one at a time over any [`std::io::Read`], skipping what the caller does not ask
//! for, so a multi-gigabyte initializer is skipped without being held in memory, and a length
//! field that points past the end of its message is an error rather than an allocation.

use std::io::{self, Read};

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("truncated protobuf: {0}")]
    Truncated(&'static str),
    #[error("malformed protobuf: {0}")]
    Malformed(String),
    #[error("reading: {0}")]
    Io(#[from] io::Error),
}

pub type WireResult<T> = Result<T, WireError>;

/// A field's payload as the wire format carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    Varint,
    Fixed64,
    /// A length-delimited payload of this many bytes, not yet read.
    Len(u64),
    Fixed32,
}

/// A reader over `inner` that knows its position and refuses to read past `limit`.
pub struct Wire<R> {
    inner: R,
    pos: u64,
    limit: u64,
}

impl<R: Read> Wire<R> {
    /// `len` is the number of bytes the message occupies (a file's size).
    pub fn new(inner: R, len: u64) -> Self {
        Wire {
            inner,
            pos: 0,
            limit: len,
        }
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Runs `body` with the readable end narrowed to `len` more bytes (a nested message), and
    /// checks that `body` consumed exactly them.
    pub fn nested<T>(
        &mut self,
        len: u64,
        body: impl FnOnce(&mut Self) -> WireResult<T>,
    ) -> WireResult<T> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.limit)
            .ok_or(WireError::Truncated(
                "a nested message runs past its parent",
            ))?;
        let outer = std::mem::replace(&mut self.limit, end);
        let result = body(self);
        self.limit = outer;
        let value = result?;
        if self.pos != end {
            self.skip_bytes(end - self.pos)?;
        }
        Ok(value)
    }

    /// The next field key, or `None` at the end of the current message.
    pub fn next_field(&mut self) -> WireResult<Option<(u32, WireType)>> {
        if self.pos >= self.limit {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3)
            .ok()
            .filter(|f| *f > 0)
            .ok_or_else(|| WireError::Malformed(format!("field number {}", key >> 3)))?;
        let wire = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => {
                let len = self.varint()?;
                if len > self.limit - self.pos {
                    return Err(WireError::Truncated(
                        "a length field points past the end of its message",
                    ));
                }
                WireType::Len(len)
            }
            5 => WireType::Fixed32,
            other => {
                return Err(WireError::Malformed(format!(
                    "wire type {other} (groups are not used by ONNX)"
                )));
            }
        };
        Ok(Some((field, wire)))
    }

    pub fn varint(&mut self) -> WireResult<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            if shift == 63 && byte > 1 {
                return Err(WireError::Malformed("varint overflows 64 bits".into()));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::Malformed("varint longer than 10 bytes".into()))
    }

    fn byte(&mut self) -> WireResult<u8> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn exact(&mut self, buf: &mut [u8]) -> WireResult<()> {
        if (buf.len() as u64) > self.limit - self.pos {
            return Err(WireError::Truncated(
                "field runs past the end of its message",
            ));
        }
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => WireError::Truncated("file ends inside a field"),
            _ => WireError::Io(e),
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    pub fn fixed32(&mut self) -> WireResult<[u8; 4]> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(b)
    }

    pub fn fixed64(&mut self) -> WireResult<[u8; 8]> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(b)
    }

    /// Reads a length-delimited payload of `len` bytes into memory, refusing more than `cap`.
    pub fn bytes(&mut self, len: u64, cap: u64, what: &str) -> WireResult<Vec<u8>> {
        if len > cap {
            return Err(WireError::Malformed(format!(
                "{what} of {len} bytes exceeds the {cap}-byte limit"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.exact(&mut buf)?;
        Ok(buf)
    }

    pub fn string(&mut self, len: u64, cap: u64, what: &str) -> WireResult<String> {
        let bytes = self.bytes(len, cap, what)?;
        String::from_utf8(bytes).map_err(|_| WireError::Malformed(format!("{what} is not UTF-8")))
    }

    pub fn skip(&mut self, wire: WireType) -> WireResult<()> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.fixed64().map(drop),
            WireType::Fixed32 => self.fixed32().map(drop),
            WireType::Len(len) => self.skip_bytes(len),
        }
    }

    fn skip_bytes(&mut self, len: u64) -> WireResult<()> {
        if len > self.limit - self.pos {
            return Err(WireError::Truncated(
                "field runs past the end of its message",
            ));
        }
        let copied = io::copy(&mut (&mut self.inner).take(len), &mut io::sink())?;
        self.pos += copied;
        if copied != len {
            return Err(WireError::Truncated("file ends inside a field"));
        }
        Ok(())
    }

    /// Reads a repeated varint field in either encoding (packed payload or one value).
    pub fn varints(&mut self, wire: WireType, out: &mut Vec<u64>) -> WireResult<()> {
        match wire {
            WireType::Varint => out.push(self.varint()?),
            WireType::Len(len) => self.nested(len, |w| {
                while w.pos < w.limit {
                    out.push(w.varint()?);
                }
                Ok(())
            })?,
            other => {
                return Err(WireError::Malformed(format!(
                    "{other:?} where varints were expected"
                )));
            }
        }
        Ok(())
    }

    /// Reads a repeated fixed-width field (packed or one value) as raw little-endian bytes.
    pub fn fixed_le(
        &mut self,
        wire: WireType,
        width: u64,
        cap: u64,
        out: &mut Vec<u8>,
    ) -> WireResult<()> {
        match (wire, width) {
            (WireType::Fixed32, 4) => out.extend_from_slice(&self.fixed32()?),
            (WireType::Fixed64, 8) => out.extend_from_slice(&self.fixed64()?),
            (WireType::Len(len), _) if len % width == 0 => {
                if (out.len() as u64).saturating_add(len) > cap {
                    return Err(WireError::Malformed(format!(
                        "tensor data exceeds the {cap}-byte limit"
                    )));
                }
                out.extend_from_slice(&self.bytes(len, cap, "tensor data")?);
            }
            (other, _) => {
                return Err(WireError::Malformed(format!(
                    "{other:?} where {width}-byte values were expected"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_past_the_end_is_refused_before_any_allocation() {
        // field 1, length-delimited, claims 2^40 bytes in a 4-byte message
        let msg = [0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
        let mut w = Wire::new(&msg[..], msg.len() as u64);
        assert!(matches!(w.next_field(), Err(WireError::Truncated(_))));
    }

    #[test]
    fn nested_messages_cannot_overrun_their_parent() {
        // outer field 1 of length 2 holding an inner field that claims 5 bytes
        let msg = [0x0a, 0x02, 0x0a, 0x05, 0, 0, 0, 0, 0];
        let mut w = Wire::new(&msg[..], msg.len() as u64);
        let Some((1, WireType::Len(len))) = w.next_field().unwrap() else {
            panic!("expected field 1")
        };
        let inner = w.nested(len, |w| w.next_field());
        assert!(matches!(inner, Err(WireError::Truncated(_))));
    }

    #[test]
    fn reads_packed_and_unpacked_varints() {
        let msg = [0x08, 0x96, 0x01, 0x0a, 0x03, 0x01, 0x02, 0x03];
        let mut w = Wire::new(&msg[..], msg.len() as u64);
        let mut out = Vec::new();
        while let Some((_, wire)) = w.next_field().unwrap() {
            w.varints(wire, &mut out).unwrap();
        }
        assert_eq!(out, [150, 1, 2, 3]);
    }

    #[test]
    fn overlong_varints_are_malformed() {
        let msg = [0xff; 11];
        let mut w = Wire::new(&msg[..], msg.len() as u64);
        assert!(matches!(w.varint(), Err(WireError::Malformed(_))));
    }
}
