//! Bounded xz decoding (joblib `compress="xz"`, `.xz` files).
//!
//! lzma-rs (pure Rust) decodes, but it keeps a whole LZMA2 block's output in memory and has no
//! output limit. So the container is walked first, without decoding: stream header, block
//! headers, the LZMA2 chunk headers (each declares its unpacked size), index and footer. Only
//! when the declared sizes add up to no more than the limit is each stream handed to lzma-rs.

use std::fmt;

#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// Not a valid xz stream.
    Corrupt(&'static str),
    /// Valid so far, but it uses a filter other than LZMA2 alone (BCJ, delta).
    Unsupported(&'static str),
    /// The declared output exceeds the limit (a bomb, or too large to inspect).
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Corrupt(why) => write!(f, "corrupt xz stream: {why}"),
            Error::Unsupported(why) => write!(f, "unsupported xz stream: {why}"),
            Error::TooLarge => f.write_str("the declared output exceeds the limit"),
        }
    }
}

const MAGIC: &[u8] = b"\xfd7zXZ\x00";
const FOOTER_MAGIC: &[u8] = b"YZ";
const LZMA2: u64 = 0x21;

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self.data.get(self.at).ok_or(Error::Corrupt("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), Error> {
        if n > self.data.len() - self.at {
            return Err(Error::Corrupt("truncated"));
        }
        self.at += n;
        Ok(())
    }

    fn u16be(&mut self) -> Result<u64, Error> {
        Ok(u64::from(self.byte()?) << 8 | u64::from(self.byte()?))
    }

    /// xz's multibyte integer: 7 bits per byte, at most 9 bytes.
    fn varint(&mut self) -> Result<u64, Error> {
        let mut value = 0u64;
        for i in 0..9 {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::Corrupt("integer too long"))
    }

    fn align4(&mut self, from: usize) -> Result<(), Error> {
        while !(self.at - from).is_multiple_of(4) {
            if self.byte()? != 0 {
                return Err(Error::Corrupt("non-zero padding"));
            }
        }
        Ok(())
    }
}

/// Bytes of the integrity check for a check id (xz spec 2.1.1.2).
fn check_size(id: u8) -> usize {
    match id {
        0 => 0,
        1..=3 => 4,
        4..=6 => 8,
        7..=9 => 16,
        10..=12 => 32,
        _ => 64,
    }
}

/// Walks one stream starting at `c.at`; returns its declared output size. Leaves `c` after
/// the footer.
fn walk_stream(c: &mut Cursor<'_>, limit: u64) -> Result<u64, Error> {
    if !c.data[c.at..].starts_with(MAGIC) {
        return Err(Error::Corrupt("bad stream header"));
    }
    c.skip(MAGIC.len())?;
    if c.byte()? != 0 {
        return Err(Error::Corrupt("bad stream flags"));
    }
    let check = c.byte()?;
    if check > 0x0f {
        return Err(Error::Corrupt("bad stream flags"));
    }
    c.skip(4)?; // CRC32 of the flags: lzma-rs verifies it
    let mut total = 0u64;
    loop {
        let block_start = c.at;
        let size_byte = c.byte()?;
        if size_byte == 0 {
            break; // the index
        }
        let header_len = (usize::from(size_byte) + 1) * 4;
        let flags = c.byte()?;
        if flags & 0x3c != 0 {
            return Err(Error::Corrupt("reserved block flags"));
        }
        if flags & 0x03 != 0 {
            return Err(Error::Unsupported(
                "a filter chain (BCJ or delta) before LZMA2",
            ));
        }
        if flags & 0x40 != 0 {
            c.varint()?;
        }
        if flags & 0x80 != 0 {
            c.varint()?;
        }
        if c.varint()? != LZMA2 {
            return Err(Error::Unsupported("a filter other than LZMA2"));
        }
        let props = c.varint()?;
        c.skip(usize::try_from(props).map_err(|_| Error::Corrupt("filter properties"))?)?;
        let header_end = block_start + header_len;
        if c.at > header_end || header_end > c.data.len() {
            return Err(Error::Corrupt("block header size"));
        }
        c.at = header_end;
        // LZMA2 chunks.
        loop {
            let control = c.byte()?;
            match control {
                0x00 => break,
                0x01 | 0x02 => {
                    let n = c.u16be()? + 1;
                    total = total.saturating_add(n);
                    c.skip(n as usize)?;
                }
                0x80..=0xff => {
                    let unpacked = (u64::from(control & 0x1f) << 16 | c.u16be()?) + 1;
                    let packed = c.u16be()? + 1;
                    if control >= 0xc0 {
                        c.byte()?;
                    }
                    total = total.saturating_add(unpacked);
                    c.skip(packed as usize)?;
                }
                _ => return Err(Error::Corrupt("bad LZMA2 chunk")),
            }
            if total > limit {
                return Err(Error::TooLarge);
            }
        }
        c.align4(block_start)?;
        c.skip(check_size(check))?;
    }
    // The index: records, padding, CRC32.
    let index_start = c.at - 1;
    let records = c.varint()?;
    for _ in 0..records {
        c.varint()?;
        c.varint()?;
    }
    c.align4(index_start)?;
    c.skip(4)?;
    // The footer: CRC32, backward size, flags, magic.
    c.skip(12)?;
    if &c.data[c.at - 2..c.at] != FOOTER_MAGIC {
        return Err(Error::Corrupt("bad stream footer"));
    }
    Ok(total)
}

/// Decodes every stream of `data` (concatenated streams with zero padding, as `xz` and
/// Python's `lzma` accept), refusing output beyond `limit` before decoding any of it.
pub fn decode(data: &[u8], limit: u64) -> Result<Vec<u8>, Error> {
    let mut c = Cursor { data, at: 0 };
    let mut streams = Vec::new();
    let mut total = 0u64;
    while c.at < data.len() {
        let start = c.at;
        total = total.saturating_add(walk_stream(&mut c, limit.saturating_sub(total))?);
        streams.push(start..c.at);
        // Stream padding: zero bytes in groups of four.
        let pad = data[c.at..].iter().take_while(|&&b| b == 0).count();
        if !pad.is_multiple_of(4) {
            return Err(Error::Corrupt("stream padding"));
        }
        c.at += pad;
    }
    if streams.is_empty() {
        return Err(Error::Corrupt("empty"));
    }
    let mut out = Vec::with_capacity(total as usize);
    for range in streams {
        lzma_rs::xz_decompress(&mut &data[range], &mut out)
            .map_err(|_| Error::Corrupt("LZMA2 data"))?;
        if out.len() as u64 > limit {
            return Err(Error::TooLarge);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's `lzma.compress(b"hello\n")` (CRC64 check).
    const HELLO: &[u8] = b"\xfd\x37\x7a\x58\x5a\x00\x00\x04\xe6\xd6\xb4\x46\x02\x00\x21\x01\x16\x00\x00\x00\x74\x2f\xe5\xa3\x01\x00\x05\x68\x65\x6c\x6c\x6f\x0a\x00\x00\x00\xa5\x60\x97\xf1\x94\xf6\xfd\xe0\x00\x01\x1e\x06\xc1\x2f\xa4\x1d\x1f\xb6\xf3\x7d\x01\x00\x00\x00\x00\x04\x59\x5a";

    #[test]
    fn decodes_and_bounds() {
        assert_eq!(decode(HELLO, 100).unwrap(), b"hello\n");
        assert_eq!(decode(HELLO, 5), Err(Error::TooLarge));
        let mut two = HELLO.to_vec();
        two.extend([0, 0, 0, 0]);
        two.extend(HELLO);
        assert_eq!(decode(&two, 100).unwrap(), b"hello\nhello\n");
        assert!(matches!(decode(&HELLO[..30], 100), Err(Error::Corrupt(_))));
    }
}
