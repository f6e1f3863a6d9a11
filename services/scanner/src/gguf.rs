//! GGUF: magic and version, counts and lengths bounded by the bytes that remain, known value and
//! tensor types, at most 4 dims with overflow-checked products, aligned in-file non-overlapping
//! tensor data, and the chat template checked as code.

use std::io::{self, BufReader, Read};

use crate::{Blob, Ctx, Section, Verdict, jinja};

/// (elements per block, bytes per block) of each ggml tensor type.
fn block(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),
        1 => (1, 2),
        2 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 36),
        10 => (256, 84),
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 => (256, 66),
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        20 => (32, 18),
        21 => (256, 110),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),
        29 => (256, 56),
        30 => (1, 2),
        34 => (256, 54),
        35 => (256, 66),
        39 => (32, 17),
        _ => return None,
    })
}

struct Reader<'a> {
    inner: BufReader<Section<'a>>,
    pos: u64,
    len: u64,
    version: u32,
}

type Bad = String;

impl Reader<'_> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], Bad> {
        let mut b = [0u8; N];
        self.inner
            .read_exact(&mut b)
            .map_err(|_| format!("file ends at offset {} inside a field", self.pos))?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, Bad> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    /// Counts are u32 in version 1 and u64 afterwards.
    fn count(&mut self) -> Result<u64, Bad> {
        if self.version == 1 {
            Ok(self.u32()? as u64)
        } else {
            self.u64()
        }
    }
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }
    /// A string: kept when at most `keep` bytes, skipped otherwise; the length is checked first.
    fn string(&mut self, keep: u64) -> Result<Option<String>, Bad> {
        let n = self.count()?;
        if n > self.remaining() {
            return Err(format!(
                "a string length of {n} bytes exceeds the {} bytes left",
                self.remaining()
            ));
        }
        if n <= keep {
            let mut buf = Vec::with_capacity(n as usize);
            (&mut self.inner)
                .take(n)
                .read_to_end(&mut buf)
                .map_err(|e| e.to_string())?;
            self.pos += n;
            Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
        } else {
            io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(|e| e.to_string())?;
            self.pos += n;
            Ok(None)
        }
    }
    fn skip(&mut self, n: u64) -> Result<(), Bad> {
        if n > self.remaining() {
            return Err(format!(
                "a value of {n} bytes exceeds the {} bytes left",
                self.remaining()
            ));
        }
        io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(|e| e.to_string())?;
        self.pos += n;
        Ok(())
    }
}

fn scalar_size(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

/// Reads one value; returns the string when the value is a kept string, and a u32 for alignment.
fn value(
    r: &mut Reader,
    ty: u32,
    depth: usize,
    keep: u64,
) -> Result<(Option<String>, Option<u64>), Bad> {
    if let Some(size) = scalar_size(ty) {
        if size == 4 && ty == 4 {
            return Ok((None, Some(r.u32()? as u64)));
        }
        r.skip(size)?;
        return Ok((None, None));
    }
    match ty {
        8 => Ok((r.string(keep)?, None)),
        9 => {
            if depth > 2 {
                return Err("arrays nested more than 2 deep".into());
            }
            let item_ty = r.u32()?;
            let count = r.count()?;
            let min = scalar_size(item_ty).unwrap_or(8);
            if count
                .checked_mul(min)
                .is_none_or(|need| need > r.remaining())
            {
                return Err(format!(
                    "an array of {count} items cannot fit in the {} bytes left",
                    r.remaining()
                ));
            }
            if let Some(size) = scalar_size(item_ty) {
                r.skip(count * size)?;
            } else {
                for _ in 0..count {
                    value(r, item_ty, depth + 1, 0)?;
                }
            }
            Ok((None, None))
        }
        other => Err(format!("unknown metadata value type {other}")),
    }
}

pub(crate) fn scan(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<()> {
    if let Err(why) = parse(ctx, blob, len) {
        ctx.add(
            "gguf-malformed",
            Verdict::Malformed,
            "",
            format!("invalid GGUF: {why}"),
            None,
        );
    }
    Ok(())
}

fn parse(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> Result<(), Bad> {
    let mut r = Reader {
        inner: BufReader::with_capacity(64 * 1024, Section::new(blob, 0, len)),
        pos: 0,
        len,
        version: 3,
    };
    let magic: [u8; 4] = r.bytes()?;
    if &magic != b"GGUF" {
        return Err("bad magic".into());
    }
    r.version = r.u32()?;
    if !(1..=3).contains(&r.version) {
        return Err(format!("unknown version {}", r.version));
    }
    let tensors = r.count()?;
    let kvs = r.count()?;
    // Each metadata entry needs at least 13 bytes and each tensor description 24.
    if kvs.checked_mul(13).is_none_or(|n| n > r.remaining()) {
        return Err(format!(
            "{kvs} metadata entries cannot fit in a {len}-byte file"
        ));
    }
    if tensors.checked_mul(24).is_none_or(|n| n > r.remaining()) {
        return Err(format!("{tensors} tensors cannot fit in a {len}-byte file"));
    }
    let mut alignment = 32u64;
    for _ in 0..kvs {
        let key = r.string(65_536)?.ok_or("metadata key longer than 64 KiB")?;
        let ty = r.u32()?;
        let keep = if key.ends_with("chat_template") || key.starts_with("tokenizer.chat_template") {
            4 << 20
        } else {
            0
        };
        let (text, number) = value(&mut r, ty, 0, keep)?;
        if let Some(text) = text {
            jinja::check_template(ctx, &text, &format!("metadata {key}"));
        } else if keep > 0 && ty == 8 {
            ctx.add(
                "gguf-template-too-large",
                Verdict::Suspicious,
                format!("metadata {key}"),
                "the chat template is too large to inspect",
                None,
            );
        }
        if key == "general.alignment" {
            alignment = number.ok_or("general.alignment is not a u32")?;
            if alignment == 0 || !alignment.is_power_of_two() || alignment > 1 << 20 {
                return Err(format!("alignment {alignment} is not a small power of two"));
            }
        }
    }
    let mut infos = Vec::with_capacity(tensors.min(1 << 16) as usize);
    for _ in 0..tensors {
        let name = r.string(65_536)?.ok_or("tensor name longer than 64 KiB")?;
        let dims = r.u32()?;
        if dims > 4 {
            return Err(format!("tensor {name} has {dims} dimensions (at most 4)"));
        }
        let mut elements: u64 = 1;
        let mut first = 1u64;
        for i in 0..dims {
            let d = r.u64()?;
            if i == 0 {
                first = d;
            }
            elements = elements
                .checked_mul(d)
                .ok_or_else(|| format!("tensor {name}: the dimensions overflow 64 bits"))?;
        }
        let ty = r.u32()?;
        let (per_block, block_bytes) =
            block(ty).ok_or_else(|| format!("tensor {name} has unknown type {ty}"))?;
        if !first.is_multiple_of(per_block) {
            return Err(format!(
                "tensor {name}: first dimension {first} is not a multiple of the block size {per_block}"
            ));
        }
        let size = (elements / per_block)
            .checked_mul(block_bytes)
            .ok_or_else(|| format!("tensor {name}: byte size overflows"))?;
        let offset = r.u64()?;
        if offset % alignment != 0 {
            return Err(format!(
                "tensor {name}: offset {offset} is not aligned to {alignment}"
            ));
        }
        infos.push((offset, size, name));
    }
    let data_start = r.pos.div_ceil(alignment) * alignment;
    infos.sort();
    let mut end_prev = 0u64;
    for (offset, size, name) in &infos {
        let end = data_start
            .checked_add(*offset)
            .and_then(|s| s.checked_add(*size));
        if end.is_none_or(|e| e > len) {
            return Err(format!(
                "tensor {name}: data [{offset}, +{size}) runs past the end of the file"
            ));
        }
        if *offset < end_prev {
            return Err(format!("tensor {name} overlaps the previous tensor"));
        }
        end_prev = offset + size;
    }
    Ok(())
}
