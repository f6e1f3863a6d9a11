//! Content-defined chunking (specification `chunking.md`): a Gear rolling hash over the bytes,
//! a boundary where its top 16 bits are zero, chunks of 8 KiB to 128 KiB. Boundaries depend only
//! on content, so the same bytes chunk the same way here and in every client: a file the hub
//! chunks itself gets the Xet hash a client would compute, and its chunks deduplicate.

use gearhash::{DEFAULT_TABLE, Hasher};

pub const MIN_CHUNK: usize = 8 * 1024;
pub const MAX_CHUNK: usize = 128 * 1024;
/// 16 one-bits: a boundary about every 64 KiB.
const MASK: u64 = 0xFFFF_0000_0000_0000;
/// The hash at a position depends only on the last 64 bytes (each step shifts left by one), so
/// bytes earlier than this offset in a chunk cannot affect its first admissible boundary.
const HASH_FROM: usize = MIN_CHUNK - 64;

/// Streaming chunker: feed any split of the bytes, get the same chunks as in one piece.
pub struct Chunker {
    hasher: Hasher<'static>,
    /// The chunk in progress (at most [`MAX_CHUNK`] bytes).
    pending: Vec<u8>,
}

impl Default for Chunker {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunker {
    pub fn new() -> Self {
        Self {
            hasher: Hasher::new(&DEFAULT_TABLE),
            pending: Vec::with_capacity(MAX_CHUNK),
        }
    }

    /// Consumes `data`; returns the chunks it completed, in order.
    pub fn feed(&mut self, mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut done = Vec::new();
        while !data.is_empty() {
            let have = self.pending.len();
            if have < MIN_CHUNK - 1 {
                // No boundary may fall before MIN_CHUNK bytes: only hash what the first test sees.
                let take = (MIN_CHUNK - 1 - have).min(data.len());
                let skip = HASH_FROM.saturating_sub(have).min(take);
                self.hasher.update(&data[skip..take]);
                self.pending.extend_from_slice(&data[..take]);
                data = &data[take..];
                continue;
            }
            let room = (MAX_CHUNK - have).min(data.len());
            let cut = self.hasher.next_match(&data[..room], MASK);
            let take = cut.unwrap_or(room);
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if cut.is_some() || self.pending.len() == MAX_CHUNK {
                done.push(self.take_chunk());
            }
        }
        done
    }

    /// The last chunk: whatever is left, if anything.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| self.take_chunk())
    }

    fn take_chunk(&mut self) -> Vec<u8> {
        self.hasher.set_hash(0);
        std::mem::replace(&mut self.pending, Vec::with_capacity(MAX_CHUNK))
    }
}

/// Chunks `data` in one piece (tests and small inputs).
pub fn chunk_all(data: &[u8]) -> Vec<Vec<u8>> {
    let mut chunker = Chunker::new();
    let mut chunks = chunker.feed(data);
    chunks.extend(chunker.finish());
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The specification's pseudocode, byte by byte, with no skipping: the definition.
    fn boundaries_by_definition(data: &[u8]) -> Vec<usize> {
        let mut ends = Vec::new();
        let (mut h, mut start) = (0u64, 0usize);
        for (i, &b) in data.iter().enumerate() {
            h = (h << 1).wrapping_add(DEFAULT_TABLE[b as usize]);
            let size = i + 1 - start;
            if size < MIN_CHUNK {
                continue;
            }
            if size >= MAX_CHUNK || h & MASK == 0 {
                ends.push(i + 1);
                start = i + 1;
                h = 0;
            }
        }
        if start < data.len() {
            ends.push(data.len());
        }
        ends
    }

    fn ends_of(chunks: &[Vec<u8>]) -> Vec<usize> {
        chunks
            .iter()
            .scan(0, |end, c| {
                *end += c.len();
                Some(*end)
            })
            .collect()
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn random_bytes_chunk_as_the_definition_says() {
        let data = noise(3 << 20, 7);
        let chunks = chunk_all(&data);
        assert_eq!(ends_of(&chunks), boundaries_by_definition(&data));
        assert_eq!(chunks.concat(), data);
        // About 64 KiB on average, never outside the bounds (the last may be short).
        let average = data.len() / chunks.len();
        assert!((40_000..100_000).contains(&average), "average {average}");
        for c in &chunks[..chunks.len() - 1] {
            assert!((MIN_CHUNK..=MAX_CHUNK).contains(&c.len()), "{}", c.len());
        }
    }

    #[test]
    fn constant_bytes_are_cut_at_the_maximum() {
        // A run of one byte value never matches the mask: every chunk is forced at 128 KiB.
        let data = vec![0u8; 300 * 1024];
        let chunks = chunk_all(&data);
        assert_eq!(ends_of(&chunks), boundaries_by_definition(&data));
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_CHUNK, MAX_CHUNK, 300 * 1024 - 2 * MAX_CHUNK]
        );
    }

    #[test]
    fn small_inputs_are_one_chunk() {
        assert!(chunk_all(&[]).is_empty());
        for len in [1, MIN_CHUNK - 1, MIN_CHUNK] {
            let data = noise(len, 3);
            assert_eq!(chunk_all(&data), vec![data.clone()]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Any split of the input into pieces gives the chunks of the whole, and the definition's.
        #[test]
        fn streaming_matches_one_piece(
            seed in any::<u64>(),
            len in 0usize..400_000,
            cuts in proptest::collection::vec(1usize..70_000, 0..40),
        ) {
            let data = noise(len, seed);
            let mut chunker = Chunker::new();
            let mut chunks = Vec::new();
            let mut rest = data.as_slice();
            for cut in cuts {
                let (piece, tail) = rest.split_at(cut.min(rest.len()));
                chunks.extend(chunker.feed(piece));
                rest = tail;
            }
            chunks.extend(chunker.feed(rest));
            chunks.extend(chunker.finish());
            prop_assert_eq!(ends_of(&chunks), boundaries_by_definition(&data));
        }
    }
}
