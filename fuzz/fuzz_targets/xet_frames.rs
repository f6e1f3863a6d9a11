#![no_main]
//! Feeds the frame reader (a xorb range fetched from an upstream CAS) in two pieces (the first
//! byte picks the split point): it must never panic, and the chunks and the outcome must not
//! depend on where the bytes were split.
use libfuzzer_sys::fuzz_target;

fn read(pieces: &[&[u8]]) -> (Vec<Vec<u8>>, Result<(), String>) {
    let mut reader = kaiyuan_xet::FrameReader::new();
    let mut chunks = Vec::new();
    for piece in pieces {
        reader.feed(piece);
        loop {
            match reader.next_chunk() {
                Ok(Some(chunk)) => chunks.push(chunk.to_vec()),
                Ok(None) => break,
                Err(e) => return (chunks, Err(e.to_string())),
            }
        }
    }
    (chunks, reader.finish().map_err(|e| e.to_string()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) * body.len() / 255;
    assert_eq!(read(&[&body[..cut], &body[cut..]]), read(&[body]));
});
