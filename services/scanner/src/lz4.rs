//! A bounded LZ4 frame decoder (the format joblib writes with `compress="lz4"`): no dictionary,
//! output capped, every length checked against the input before it is used.

/// Decodes an LZ4 frame. Output beyond `limit` bytes stops the decoder: the result is then
/// `limit + 1` bytes long, so the caller can tell a bomb from a complete stream.
pub fn decode_frame(data: &[u8], limit: u64) -> Result<Vec<u8>, &'static str> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if !data.starts_with(&[0x04, 0x22, 0x4d, 0x18]) || data.len() < 7 {
        return Err("not an LZ4 frame");
    }
    let flags = data[4];
    if flags >> 6 != 1 {
        return Err("unknown LZ4 frame version");
    }
    if flags & 0x01 != 0 {
        return Err("LZ4 frames with a dictionary are not supported");
    }
    let block_checksum = flags & 0x10 != 0;
    let mut at = 6 + if flags & 0x08 != 0 { 8 } else { 0 } + 1; // FLG, BD, size, HC
    let mut out = Vec::new();
    loop {
        let size = read_u32(data, at)?;
        at += 4;
        if size == 0 {
            return Ok(out);
        }
        let (stored, size) = (size & 0x8000_0000 != 0, (size & 0x7fff_ffff) as usize);
        let block = data
            .get(at..at + size)
            .ok_or("LZ4 block beyond the input")?;
        at += size + if block_checksum { 4 } else { 0 };
        if stored {
            out.extend_from_slice(block);
        } else {
            decode_block(block, &mut out, limit)?;
        }
        if out.len() > limit {
            out.truncate(limit + 1);
            return Ok(out);
        }
    }
}

fn read_u32(data: &[u8], at: usize) -> Result<u32, &'static str> {
    let b = data.get(at..at + 4).ok_or("LZ4 frame ends early")?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// A length nibble with its 255-byte extensions.
fn length(block: &[u8], at: &mut usize, nibble: u8) -> Result<usize, &'static str> {
    let mut n = nibble as usize;
    if nibble == 15 {
        loop {
            let b = *block.get(*at).ok_or("LZ4 length beyond the block")?;
            *at += 1;
            n = n.checked_add(b as usize).ok_or("LZ4 length overflows")?;
            if b != 255 {
                break;
            }
        }
    }
    Ok(n)
}

/// One LZ4 block appended to `out` (earlier blocks stay addressable by matches).
fn decode_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), &'static str> {
    let mut at = 0;
    while at < block.len() {
        let token = block[at];
        at += 1;
        let literals = length(block, &mut at, token >> 4)?;
        let lit = block
            .get(at..at.saturating_add(literals))
            .ok_or("LZ4 literals beyond the block")?;
        out.extend_from_slice(lit);
        at += literals;
        if at == block.len() {
            return Ok(());
        }
        let offset = block
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
            .ok_or("LZ4 match offset beyond the block")?;
        at += 2;
        let matched = length(block, &mut at, token & 0x0f)?.saturating_add(4);
        if offset == 0 || offset > out.len() {
            return Err("LZ4 match refers before the start of the output");
        }
        if out.len().saturating_add(matched) > limit.saturating_add(1) {
            out.resize(limit.saturating_add(1), 0);
            return Ok(());
        }
        let start = out.len() - offset;
        for i in 0..matched {
            let b = out[start + i];
            out.push(b);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_literals_and_overlapping_matches_and_caps_output() {
        // One block: literal "ab", then a match of 6 at offset 2 ("ababab"), then literal "c".
        let block = [0x22, b'a', b'b', 0x02, 0x00, 0x10, b'c'];
        let mut frame = vec![0x04, 0x22, 0x4d, 0x18, 0x40, 0x40, 0x00];
        frame.extend((block.len() as u32).to_le_bytes());
        frame.extend(block);
        frame.extend(0u32.to_le_bytes());
        assert_eq!(decode_frame(&frame, 100).unwrap(), b"ababababc");
        assert_eq!(decode_frame(&frame, 4).unwrap().len(), 5);
        assert!(decode_frame(&frame[..12], 100).is_err());
        let bad_offset = [0x10, b'a', 0x09, 0x00];
        assert!(decode_block(&bad_offset, &mut Vec::new(), 100).is_err());
    }
}
