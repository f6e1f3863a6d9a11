//! Xet hashes: chunk, xorb (Merkle), file and term-verification hashes, and the spec's string
//! form of a hash (docs/xet/hashing.md, docs/xet/api.md).

use std::fmt;
use std::str::FromStr;

/// Key of the chunk (leaf) hash; a keyed blake3 so chunk hashes never collide with node hashes.
const DATA_KEY: [u8; 32] = [
    102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16,
    155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41,
];

/// Key of the Merkle tree's internal nodes.
const INTERNAL_NODE_KEY: [u8; 32] = [
    1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83, 111, 55,
    199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63,
];

/// Key of the term verification ("range") hash that proves a client holds the chunk hashes.
const VERIFICATION_KEY: [u8; 32] = [
    127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243, 164, 205, 38, 213,
    181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195,
];

/// Mean branching factor of the aggregated Merkle tree: a group closes on `hash % 4 == 0`.
const BRANCHING: u64 = 4;
/// Groups never exceed `2 * BRANCHING + 1` children.
const MAX_GROUP: usize = 2 * BRANCHING as usize + 1;

/// Modulus the reference client (`hash_is_global_dedup_eligible` in xet-core-structures,
/// `MDB_SHARD_GLOBAL_DEDUP_CHUNK_MODULUS`) uses to choose the chunks it asks the
/// global-dedupe API about (besides the first chunk of every file).
pub const GLOBAL_DEDUPE_MODULUS: u64 = 1024;

/// A 256-bit Xet hash, kept as the raw 32 bytes the formats store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MerkleHash(pub [u8; 32]);

/// Why a string is not a hash in the spec's string form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    #[error("hash must be 64 hexadecimal characters, got {0}")]
    Length(usize),
    #[error("hash contains a non-hexadecimal character at position {0}")]
    Character(usize),
}

impl MerkleHash {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `None` unless `b` is exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Option<MerkleHash> {
        Some(MerkleHash(b.try_into().ok()?))
    }

    /// The spec's HMAC: blake3 keyed with `key` over the 32 hash bytes. Global-dedupe
    /// shards carry chunk hashes in this form so they do not reveal the chunks.
    pub fn keyed(&self, key: &[u8; 32]) -> MerkleHash {
        MerkleHash(*blake3::keyed_hash(key, &self.0).as_bytes())
    }

    /// The hash's `% n` as the spec defines it: on the little-endian u64 of bytes 24..32.
    fn rem(&self, n: u64) -> u64 {
        self.word(3) % n
    }

    /// The little-endian u64 at word `i` (0..4).
    pub(crate) fn word(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    }

    /// Whether the reference client would query the global-dedupe API with this chunk hash
    /// (`hash % 1024 == 0`; the client also queries each file's first chunk).
    pub fn is_global_dedupe_eligible(&self) -> bool {
        self.rem(GLOBAL_DEDUPE_MODULUS) == 0
    }

    /// The all-ones hash that marks the end of a shard section.
    pub(crate) const BOOKEND: MerkleHash = MerkleHash([0xff; 32]);

    /// Writes the string form into `out` (64 bytes): each 8-byte group reversed, lowercase hex.
    fn write_hex(&self, out: &mut [u8; 64]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (i, out) in out.chunks_exact_mut(2).enumerate() {
            let byte = self.0[(i / 8) * 8 + (7 - i % 8)];
            out[0] = DIGITS[usize::from(byte >> 4)];
            out[1] = DIGITS[usize::from(byte & 0xf)];
        }
    }
}

impl fmt::Display for MerkleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        self.write_hex(&mut buf);
        // Only ASCII hex digits were written.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for MerkleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MerkleHash {
    type Err = HashParseError;

    /// Parses the spec's string form (either case), the inverse of `Display`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return Err(HashParseError::Length(s.len()));
        }
        let nibble = |i: usize| -> Result<u8, HashParseError> {
            match s[i] {
                c @ b'0'..=b'9' => Ok(c - b'0'),
                c @ b'a'..=b'f' => Ok(c - b'a' + 10),
                c @ b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(HashParseError::Character(i)),
            }
        };
        let mut out = [0u8; 32];
        for i in 0..32 {
            out[(i / 8) * 8 + (7 - i % 8)] = (nibble(2 * i)? << 4) | nibble(2 * i + 1)?;
        }
        Ok(MerkleHash(out))
    }
}

/// The chunk hash: blake3 keyed with the data key over the chunk's bytes.
pub fn chunk_hash(data: &[u8]) -> MerkleHash {
    MerkleHash(*blake3::keyed_hash(&DATA_KEY, data).as_bytes())
}

/// One internal node: the keyed hash of `"{hash} : {len}\n"` lines of its children.
fn merge(children: &[(MerkleHash, u64)]) -> (MerkleHash, u64) {
    let mut hasher = blake3::Hasher::new_keyed(&INTERNAL_NODE_KEY);
    let mut total = 0u64;
    let mut hex = [0u8; 64];
    for (h, len) in children {
        h.write_hex(&mut hex);
        hasher.update(&hex);
        hasher.update(format!(" : {len}\n").as_bytes());
        total = total.wrapping_add(*len);
    }
    (MerkleHash(*hasher.finalize().as_bytes()), total)
}

/// Length of the next group: it closes after the first child from index 2 on whose hash is
/// `0 mod 4`, or at 9 children, or at the end; never fewer than 2 unless fewer remain.
fn next_group(nodes: &[(MerkleHash, u64)]) -> usize {
    if nodes.len() <= 2 {
        return nodes.len();
    }
    let end = MAX_GROUP.min(nodes.len());
    (2..end)
        .find(|&i| nodes[i].0.rem(BRANCHING) == 0)
        .map_or(end, |i| i + 1)
}

/// The aggregated Merkle root over (hash, length) leaves; the all-zero hash when empty.
fn merkle_root(leaves: &[(MerkleHash, u64)]) -> MerkleHash {
    if leaves.is_empty() {
        return MerkleHash::default();
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len() / 2 + 1);
        let mut rest = &level[..];
        while !rest.is_empty() {
            let n = next_group(rest);
            next.push(merge(&rest[..n]));
            rest = &rest[n..];
        }
        level = next;
    }
    level[0].0
}

/// The xorb hash: the Merkle root over the xorb's (chunk hash, uncompressed length) pairs.
pub fn xorb_hash(chunks: &[(MerkleHash, u64)]) -> MerkleHash {
    merkle_root(chunks)
}

/// The file hash: the Merkle root over the file's chunks, keyed with the all-zero salt. An
/// empty file hashes to all zeros, as in the reference.
pub fn file_hash(chunks: &[(MerkleHash, u64)]) -> MerkleHash {
    if chunks.is_empty() {
        return MerkleHash::default();
    }
    merkle_root(chunks).keyed(&[0u8; 32])
}

/// The verification hash of a term: blake3 keyed with the verification key over the raw
/// bytes of the chunk hashes the term covers, in order.
pub fn verification_hash(chunk_hashes: &[MerkleHash]) -> MerkleHash {
    let mut hasher = blake3::Hasher::new_keyed(&VERIFICATION_KEY);
    for h in chunk_hashes {
        hasher.update(&h.0);
    }
    MerkleHash(*hasher.finalize().as_bytes())
}
