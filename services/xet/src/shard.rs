//! MDB shards (docs/xet/shard.md): the upload body of `/v1/shards` (file reconstructions and
//! the client's new xorbs) and the global-dedupe answer (keyed chunk hashes per xorb).
//!
//! Everything is 48-byte records: a header, the file info section and the CAS info section,
//! each ended by a bookend record whose hash is all ones, then optionally lookup tables and
//! a 200-byte footer.

use crate::hash::MerkleHash;
use crate::xorb::ChunkEntry;

/// Largest shard the CAS server accepts.
pub const MAX_SHARD_BYTES: usize = 64 * 1024 * 1024;

const HEADER_TAG: [u8; 32] = [
    b'H', b'F', b'R', b'e', b'p', b'o', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0, 85, 105,
    103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169,
];
const HEADER_VERSION: u64 = 2;
const HEADER_LEN: usize = 48;
const FOOTER_VERSION: u64 = 1;
const FOOTER_LEN: usize = 200;
/// Every record of the info sections is this long.
const RECORD: usize = 48;
const FLAG_VERIFICATION: u32 = 1 << 31;
const FLAG_METADATA_EXT: u32 = 1 << 30;

/// One reconstruction term: chunks `[chunk_start, chunk_end)` of `xorb`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub xorb: MerkleHash,
    pub unpacked_len: u32,
    pub chunk_start: u32,
    pub chunk_end: u32,
}

/// A file's reconstruction as uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub file_hash: MerkleHash,
    pub terms: Vec<Term>,
    /// One verification hash per term; empty when the shard had none.
    pub verification: Vec<MerkleHash>,
    /// The sha256 of the file's bytes, in the usual byte order (the wire carries it as a
    /// `MerkleHash`, each 8-byte group reversed; see [`sha256_wire`]).
    pub sha256: Option<[u8; 32]>,
}

/// Converts a sha256 between its usual byte order and the `FileMetadataExt` wire layout: the
/// reference client parses the hex digest as a `MerkleHash`, whose string form reverses each
/// 8-byte group. The conversion is its own inverse.
pub fn sha256_wire(sha256: [u8; 32]) -> [u8; 32] {
    let mut out = sha256;
    for group in out.chunks_exact_mut(8) {
        group.reverse();
    }
    out
}

/// A xorb the client created, as listed in the CAS info section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XorbInfo {
    pub hash: MerkleHash,
    /// (chunk hash, byte_range_start: the chunk's offset in the unpacked xorb, unpacked length).
    pub chunks: Vec<(MerkleHash, u32, u32)>,
    pub unpacked_len: u32,
    pub stored_len: u32,
}

/// A parsed upload shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadShard {
    pub files: Vec<FileInfo>,
    pub xorbs: Vec<XorbInfo>,
}

/// Why a shard is invalid; the messages are meant for an HTTP 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("shard is {0} bytes, more than 64 MiB")]
    TooLarge(usize),
    #[error("not a shard: wrong header tag")]
    BadTag,
    #[error("shard is {0} bytes, too short for its header")]
    NoHeader(usize),
    #[error("unsupported shard header version {0}, expected 2")]
    HeaderVersion(u64),
    #[error("header footer size is {0}, expected 0 or 200")]
    FooterSize(u64),
    #[error("{section} info section has no bookend: the shard ends at byte {at}")]
    MissingBookend { section: &'static str, at: usize },
    #[error("shard ends inside {what} at byte {at}")]
    Truncated { what: String, at: usize },
    #[error(
        "{what} at byte {at} claims {count} entries, more than the {remaining} remaining bytes can hold"
    )]
    Count {
        what: String,
        at: usize,
        count: u32,
        remaining: usize,
    },
    #[error("file {file} has unknown flags {flags:#010x}")]
    UnknownFlags { file: usize, flags: u32 },
    #[error("file {0} has no terms")]
    NoTerms(usize),
    #[error("file {file} term {term}: chunk range [{start}, {end}) is empty")]
    EmptyRange {
        file: usize,
        term: usize,
        start: u32,
        end: u32,
    },
    #[error("file {file} term {term}: unpacked length is 0")]
    EmptyTerm { file: usize, term: usize },
    #[error("file {file} {has} verification entries but file 0 {other}")]
    MixedVerification {
        file: usize,
        has: &'static str,
        other: &'static str,
    },
    #[error("xorb {index} ({hash}) lists no chunks")]
    EmptyXorb { index: usize, hash: MerkleHash },
    #[error("{len} unexpected bytes after the CAS info section at byte {at}")]
    TrailingBytes { at: usize, len: usize },
    #[error("malformed footer: {0}")]
    Footer(String),
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn hash_at(b: &[u8], at: usize) -> MerkleHash {
    MerkleHash::from_slice(&b[at..at + 32]).unwrap_or_default()
}

/// A reader over the shard's 48-byte records that checks every count against what is left.
struct Records<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Records<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next section header, or a missing-bookend error at the end of the body.
    fn header(&mut self, section: &'static str) -> Result<&'a [u8], ShardError> {
        if self.remaining() == 0 {
            return Err(ShardError::MissingBookend {
                section,
                at: self.pos,
            });
        }
        self.take(1, || format!("a {section} info header"))
    }

    /// `n` records, after checking they fit in the body.
    fn take(&mut self, n: usize, what: impl Fn() -> String) -> Result<&'a [u8], ShardError> {
        let len = n * RECORD;
        if self.remaining() < len {
            return Err(ShardError::Truncated {
                what: what(),
                at: self.pos,
            });
        }
        let out = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// Checks that `count` records (each `per` records long, plus `extra`) fit in the body.
    fn check_count(
        &self,
        what: impl Fn() -> String,
        count: u32,
        per: usize,
        extra: usize,
    ) -> Result<(), ShardError> {
        let need = (count as usize)
            .saturating_mul(per)
            .saturating_add(extra)
            .saturating_mul(RECORD);
        if need > self.remaining() {
            return Err(ShardError::Count {
                what: what(),
                at: self.pos,
                count,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }
}

fn parse_file(r: &mut Records<'_>, index: usize, header: &[u8]) -> Result<FileInfo, ShardError> {
    let flags = le_u32(header, 32);
    let n = le_u32(header, 36);
    if flags & !(FLAG_VERIFICATION | FLAG_METADATA_EXT) != 0 {
        return Err(ShardError::UnknownFlags { file: index, flags });
    }
    if n == 0 {
        return Err(ShardError::NoTerms(index));
    }
    let verified = flags & FLAG_VERIFICATION != 0;
    let ext = flags & FLAG_METADATA_EXT != 0;
    let what = || format!("file {index}");
    r.check_count(what, n, 1 + usize::from(verified), usize::from(ext))?;
    let n = n as usize;
    let terms = r
        .take(n, what)?
        .chunks_exact(RECORD)
        .enumerate()
        .map(|(term, e)| {
            let t = Term {
                xorb: hash_at(e, 0),
                unpacked_len: le_u32(e, 36),
                chunk_start: le_u32(e, 40),
                chunk_end: le_u32(e, 44),
            };
            if t.chunk_end <= t.chunk_start {
                return Err(ShardError::EmptyRange {
                    file: index,
                    term,
                    start: t.chunk_start,
                    end: t.chunk_end,
                });
            }
            if t.unpacked_len == 0 {
                return Err(ShardError::EmptyTerm { file: index, term });
            }
            Ok(t)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let verification = if verified {
        r.take(n, what)?
            .chunks_exact(RECORD)
            .map(|e| hash_at(e, 0))
            .collect()
    } else {
        Vec::new()
    };
    let sha256 = if ext {
        let mut s = [0u8; 32];
        s.copy_from_slice(&r.take(1, what)?[..32]);
        Some(sha256_wire(s))
    } else {
        None
    };
    Ok(FileInfo {
        file_hash: hash_at(header, 0),
        terms,
        verification,
        sha256,
    })
}

fn parse_xorb(r: &mut Records<'_>, index: usize, header: &[u8]) -> Result<XorbInfo, ShardError> {
    let hash = hash_at(header, 0);
    let n = le_u32(header, 36);
    if n == 0 {
        return Err(ShardError::EmptyXorb { index, hash });
    }
    let what = || format!("xorb {index} ({hash})");
    r.check_count(what, n, 1, 0)?;
    let chunks = r
        .take(n as usize, what)?
        .chunks_exact(RECORD)
        .map(|e| (hash_at(e, 0), le_u32(e, 32), le_u32(e, 36)))
        .collect();
    Ok(XorbInfo {
        hash,
        chunks,
        unpacked_len: le_u32(header, 40),
        stored_len: le_u32(header, 44),
    })
}

/// Parses a shard as POSTed to `/v1/shards`. The footer is normally omitted; a present one must
/// be well formed and agree with the sections (lookup tables before it are skipped, their
/// sizes checked). No count is trusted: each is checked against the remaining bytes first.
pub fn parse_upload(bytes: &[u8]) -> Result<UploadShard, ShardError> {
    if bytes.len() > MAX_SHARD_BYTES {
        return Err(ShardError::TooLarge(bytes.len()));
    }
    if bytes.len() < HEADER_LEN {
        return Err(ShardError::NoHeader(bytes.len()));
    }
    if bytes[..32] != HEADER_TAG {
        return Err(ShardError::BadTag);
    }
    let version = le_u64(bytes, 32);
    if version != HEADER_VERSION {
        return Err(ShardError::HeaderVersion(version));
    }
    let footer_size = le_u64(bytes, 40);
    // The spec asks for 0 without a footer; the reference writer always puts 200.
    if footer_size != 0 && footer_size != FOOTER_LEN as u64 {
        return Err(ShardError::FooterSize(footer_size));
    }
    let mut r = Records {
        data: bytes,
        pos: HEADER_LEN,
    };

    let mut files = Vec::new();
    loop {
        let header = r.header("file")?;
        if hash_at(header, 0) == MerkleHash::BOOKEND {
            break;
        }
        let file = parse_file(&mut r, files.len(), header)?;
        if let Some(first) = files.first().map(|f: &FileInfo| f.verification.is_empty())
            && first != file.verification.is_empty()
        {
            let (has, other) = if !first {
                ("has no", "does")
            } else {
                ("has", "does not")
            };
            return Err(ShardError::MixedVerification {
                file: files.len(),
                has,
                other,
            });
        }
        files.push(file);
    }
    let xorb_info_offset = r.pos;

    let mut xorbs = Vec::new();
    loop {
        let header = r.header("CAS")?;
        if hash_at(header, 0) == MerkleHash::BOOKEND {
            break;
        }
        xorbs.push(parse_xorb(&mut r, xorbs.len(), header)?);
    }

    if r.remaining() != 0 {
        check_trailing_footer(bytes, xorb_info_offset, r.pos)?;
    }
    Ok(UploadShard { files, xorbs })
}

/// Accepts what follows the CAS section only if it is lookup tables plus a footer whose
/// offsets describe exactly this shard.
fn check_trailing_footer(
    bytes: &[u8],
    xorb_info_offset: usize,
    cas_end: usize,
) -> Result<(), ShardError> {
    let len = bytes.len();
    let trailing = || ShardError::TrailingBytes {
        at: cas_end,
        len: len - cas_end,
    };
    if len - cas_end < FOOTER_LEN {
        return Err(trailing());
    }
    let f = &bytes[len - FOOTER_LEN..];
    if le_u64(f, 0) != FOOTER_VERSION {
        return Err(trailing());
    }
    let field = |i: usize| le_u64(f, 8 * i);
    let bad = |m: &str| Err(ShardError::Footer(m.to_string()));
    if field(24) != (len - FOOTER_LEN) as u64 {
        return bad("footer offset does not point at the footer");
    }
    if field(1) != HEADER_LEN as u64 || field(2) != xorb_info_offset as u64 {
        return bad("section offsets do not match the sections");
    }
    // Lookup tables: files and xorbs (u64 key, u32 index), chunks (u64 key, 2 × u32).
    let mut at = cas_end as u64;
    for (offset, count, size) in [
        (field(3), field(4), 12u64),
        (field(5), field(6), 12),
        (field(7), field(8), 16),
    ] {
        if offset != at {
            return bad("lookup table offsets are not contiguous");
        }
        at = count
            .checked_mul(size)
            .and_then(|n| n.checked_add(at))
            .unwrap_or(u64::MAX);
    }
    if at != (len - FOOTER_LEN) as u64 {
        return bad("lookup table sizes do not fill the space before the footer");
    }
    Ok(())
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A 48-byte record: a hash then four u32s.
fn put_record(out: &mut Vec<u8>, hash: &MerkleHash, a: u32, b: u32, c: u32, d: u32) {
    out.extend_from_slice(&hash.0);
    for v in [a, b, c, d] {
        put_u32(out, v);
    }
}

fn put_header(out: &mut Vec<u8>, footer_size: u64) {
    out.extend_from_slice(&HEADER_TAG);
    put_u64(out, HEADER_VERSION);
    put_u64(out, footer_size);
}

/// Test/tool helper: an upload shard (no footer, header footer size 0) describing `files`
/// and `xorbs`. A file gets verification entries when its `verification` is non-empty.
///
/// # Panics
/// When a non-empty `verification` does not have one hash per term.
pub fn encode_upload_shard(files: &[FileInfo], xorbs: &[XorbInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    put_header(&mut out, 0);
    for f in files {
        let verified = !f.verification.is_empty();
        assert!(
            !verified || f.verification.len() == f.terms.len(),
            "one verification hash per term"
        );
        let flags = if verified { FLAG_VERIFICATION } else { 0 }
            | if f.sha256.is_some() {
                FLAG_METADATA_EXT
            } else {
                0
            };
        put_record(&mut out, &f.file_hash, flags, f.terms.len() as u32, 0, 0);
        for t in &f.terms {
            put_record(
                &mut out,
                &t.xorb,
                0,
                t.unpacked_len,
                t.chunk_start,
                t.chunk_end,
            );
        }
        for v in &f.verification {
            put_record(&mut out, v, 0, 0, 0, 0);
        }
        if let Some(sha) = f.sha256 {
            put_record(&mut out, &MerkleHash(sha256_wire(sha)), 0, 0, 0, 0);
        }
    }
    put_record(&mut out, &MerkleHash::BOOKEND, 0, 0, 0, 0);
    for x in xorbs {
        put_record(
            &mut out,
            &x.hash,
            0,
            x.chunks.len() as u32,
            x.unpacked_len,
            x.stored_len,
        );
        for (h, start, len) in &x.chunks {
            put_record(&mut out, h, *start, *len, 0, 0);
        }
    }
    put_record(&mut out, &MerkleHash::BOOKEND, 0, 0, 0, 0);
    out
}

/// The global-dedupe answer: an empty file section, one CAS block per xorb with every chunk
/// hash keyed by `hmac_key` (so the shard reveals only chunks the client already holds), the
/// xorb and chunk lookup tables the reference client searches, and the footer carrying the key,
/// the creation time and the key's expiry.
pub fn encode_dedupe_shard(
    xorbs: &[(MerkleHash, Vec<ChunkEntry>)],
    hmac_key: &[u8; 32],
    created_unix: u64,
    expiry_unix: u64,
) -> Vec<u8> {
    let mut out = Vec::new();
    put_header(&mut out, FOOTER_LEN as u64);
    put_record(&mut out, &MerkleHash::BOOKEND, 0, 0, 0, 0);
    let xorb_info_offset = out.len() as u64;

    let mut xorb_lookup = Vec::with_capacity(xorbs.len());
    let mut chunk_lookup = Vec::new();
    let (mut stored_total, mut unpacked_total) = (0u64, 0u64);
    let mut index = 0u32;
    for (hash, chunks) in xorbs {
        let unpacked: u32 = chunks.iter().map(|c| c.unpacked_len).sum();
        let stored: u32 = chunks.iter().map(|c| c.frame_len).sum();
        stored_total += u64::from(stored);
        unpacked_total += u64::from(unpacked);
        xorb_lookup.push((hash.word(0), index));
        put_record(&mut out, hash, 0, chunks.len() as u32, unpacked, stored);
        let mut start = 0u32;
        for (i, c) in chunks.iter().enumerate() {
            let keyed = c.hash.keyed(hmac_key);
            chunk_lookup.push((keyed.word(0), index, i as u32));
            put_record(&mut out, &keyed, start, c.unpacked_len, 0, 0);
            start += c.unpacked_len;
        }
        index += 1 + chunks.len() as u32;
    }
    put_record(&mut out, &MerkleHash::BOOKEND, 0, 0, 0, 0);

    // Readers binary-search the lookup tables by the first 8 bytes of the hash.
    xorb_lookup.sort_by_key(|e| e.0);
    chunk_lookup.sort_by_key(|e| e.0);
    let file_lookup_offset = out.len() as u64;
    let xorb_lookup_offset = file_lookup_offset;
    for (key, idx) in &xorb_lookup {
        put_u64(&mut out, *key);
        put_u32(&mut out, *idx);
    }
    let chunk_lookup_offset = out.len() as u64;
    for (key, x, c) in &chunk_lookup {
        put_u64(&mut out, *key);
        put_u32(&mut out, *x);
        put_u32(&mut out, *c);
    }
    let footer_offset = out.len() as u64;

    for v in [
        FOOTER_VERSION,
        HEADER_LEN as u64,
        xorb_info_offset,
        file_lookup_offset,
        0,
        xorb_lookup_offset,
        xorb_lookup.len() as u64,
        chunk_lookup_offset,
        chunk_lookup.len() as u64,
    ] {
        put_u64(&mut out, v);
    }
    out.extend_from_slice(hmac_key);
    put_u64(&mut out, created_unix);
    put_u64(&mut out, expiry_unix);
    for v in [
        0,
        0,
        0,
        0,
        0,
        0,
        stored_total,
        0,
        unpacked_total,
        footer_offset,
    ] {
        put_u64(&mut out, v);
    }
    out
}
