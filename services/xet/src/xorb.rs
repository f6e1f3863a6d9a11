//! Xorbs (docs/xet/xorb.md): chunk frames, then the `XorbObjectInfo` footer, then the
//! footer's length as a little-endian u32.
//!
//! The CAS server never trusts a xorb: [`XorbValidator`] decompresses every frame as the body
//! streams in, recomputes the xorb hash from the chunks, and checks the footer against them.

use std::io::{Read, Write};

use crate::hash::{MerkleHash, chunk_hash, xorb_hash};

/// Largest serialized xorb the CAS server accepts. The reference client packs up to 64 MiB of
/// chunk data per xorb, so what it sends is a little larger (8 bytes of header per chunk, and
/// the footer when it sends one): 65 MiB covers even 8192 chunks of 8 KiB.
pub const MAX_XORB_BYTES: u64 = 65 * 1024 * 1024;
/// Largest uncompressed chunk.
pub const MAX_CHUNK_BYTES: u32 = 128 * 1024;
/// Largest compressed payload of a frame, as the reference reader allows (twice a chunk, so
/// incompressible data that grew under LZ4 still fits).
pub const MAX_FRAME_PAYLOAD: u32 = 2 * MAX_CHUNK_BYTES;
/// Length of a chunk header.
pub const FRAME_HEADER_LEN: usize = 8;

/// Footer identifier; its first byte `X` can never start a frame, whose version byte is 0.
const FOOTER_IDENT: &[u8; 7] = b"XETBLOB";
const IDENT_HASHES: &[u8; 7] = b"XBLBHSH";
const IDENT_BOUNDARIES: &[u8; 7] = b"XBLBBND";
/// Size of the V1 footer without its per-chunk arrays (40 bytes per chunk).
const FOOTER_V1_FIXED: usize = 92;
/// Size of the legacy V0 footer without its per-chunk arrays (36 bytes per chunk).
const FOOTER_V0_FIXED: usize = 60;
/// Extensibility buffer (uniqueness nonce + reserved) that ends both footer versions.
const FOOTER_BUFFER_LEN: usize = 16;

/// Compression schemes of a chunk header.
pub const SCHEME_NONE: u8 = 0;
pub const SCHEME_LZ4: u8 = 1;
pub const SCHEME_BG4_LZ4: u8 = 2;

/// One chunk of a validated xorb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    pub hash: MerkleHash,
    /// Where the chunk's frame starts in the serialized xorb.
    pub offset: u32,
    /// Header plus compressed bytes.
    pub frame_len: u32,
    pub unpacked_len: u32,
}

/// What a successful validation established about a xorb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidXorb {
    /// Computed from the decompressed chunks, never read from the footer.
    pub hash: MerkleHash,
    pub chunks: Vec<ChunkEntry>,
    /// Serialized size, footer included.
    pub stored_len: u64,
    /// Sum of the chunks' uncompressed sizes.
    pub unpacked_len: u64,
}

/// Why a single frame is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unsupported chunk format version {0}, expected 0")]
    Version(u8),
    #[error("unknown compression scheme {0}")]
    UnknownScheme(u8),
    #[error("frame claims {0} uncompressed bytes, more than {MAX_CHUNK_BYTES}")]
    UncompressedTooLarge(u32),
    #[error("frame claims {0} compressed bytes, more than {MAX_FRAME_PAYLOAD}")]
    CompressedTooLarge(u32),
    #[error("chunk has no bytes")]
    EmptyChunk,
    #[error("uncompressed frame stores {stored} bytes but claims {claimed}")]
    StoredMismatch { stored: u32, claimed: u32 },
    #[error("truncated frame: {needed} bytes needed, {available} present")]
    Truncated { needed: usize, available: usize },
    #[error("compressed size {0} runs past the end of the xorb")]
    PastEnd(u32),
    #[error("frame is {actual} bytes but its header says {expected}")]
    WrongLength { actual: usize, expected: usize },
    #[error("invalid LZ4 data: {0}")]
    Lz4(String),
    #[error("data decompresses to {actual} bytes, header claims {claimed}")]
    LengthMismatch { claimed: u32, actual: String },
}

/// Why a xorb (or a packed chunk table) is invalid; the messages are meant for an HTTP 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XorbError {
    #[error("xorb is larger than 65 MiB (64 MiB of chunks, their headers and the footer)")]
    TooLarge,
    #[error("xorb has no chunks")]
    Empty,
    #[error("{0}")]
    Frame(FrameError),
    #[error("chunk {index} at byte {offset}: {error}")]
    InChunk {
        index: usize,
        offset: u64,
        error: FrameError,
    },
    #[error(
        "footer length: only {0} bytes follow the last chunk, too few for a footer and its length"
    )]
    FooterTooShort(usize),
    #[error("footer length field says {stated} bytes but {actual} bytes follow the last chunk")]
    FooterLength { stated: u32, actual: usize },
    #[error(
        "footer length: more bytes follow the last chunk than a footer for {0} chunks can take"
    )]
    FooterTooLong(usize),
    #[error("malformed footer: {0}")]
    Footer(String),
    #[error("footer disagrees with the chunks: {0}")]
    FooterMismatch(String),
    #[error("malformed chunk table: {0}")]
    ChunkTable(String),
}

/// A parsed chunk header, checked against the format's limits.
#[derive(Clone, Copy, Debug)]
struct Header {
    compressed: u32,
    scheme: u8,
    uncompressed: u32,
}

fn u24(b: &[u8]) -> u32 {
    u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16
}

fn parse_header(h: &[u8]) -> Result<Header, FrameError> {
    if h[0] != 0 {
        return Err(FrameError::Version(h[0]));
    }
    let header = Header {
        compressed: u24(&h[1..4]),
        scheme: h[4],
        uncompressed: u24(&h[5..8]),
    };
    if header.scheme > SCHEME_BG4_LZ4 {
        return Err(FrameError::UnknownScheme(header.scheme));
    }
    if header.uncompressed > MAX_CHUNK_BYTES {
        return Err(FrameError::UncompressedTooLarge(header.uncompressed));
    }
    if header.compressed > MAX_FRAME_PAYLOAD {
        return Err(FrameError::CompressedTooLarge(header.compressed));
    }
    if header.uncompressed == 0 {
        return Err(FrameError::EmptyChunk);
    }
    if header.scheme == SCHEME_NONE && header.compressed != header.uncompressed {
        return Err(FrameError::StoredMismatch {
            stored: header.compressed,
            claimed: header.uncompressed,
        });
    }
    Ok(header)
}

/// Decodes an LZ4 frame-format payload, reading at most one byte more than `claimed` so a
/// decompression bomb costs no more memory than an honest chunk.
fn lz4_bounded(payload: &[u8], claimed: u32) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(claimed as usize);
    lz4_flex::frame::FrameDecoder::new(payload)
        .take(u64::from(claimed) + 1)
        .read_to_end(&mut out)
        .map_err(|e| FrameError::Lz4(e.to_string()))?;
    if out.len() != claimed as usize {
        let actual = if out.len() > claimed as usize {
            format!("more than {claimed}")
        } else {
            out.len().to_string()
        };
        return Err(FrameError::LengthMismatch { claimed, actual });
    }
    Ok(out)
}

/// Sizes of the four byte groups of an `n`-byte chunk: the remainder goes to the first groups.
fn bg4_sizes(n: usize) -> [usize; 4] {
    let (q, r) = (n / 4, n % 4);
    [
        q + usize::from(r > 0),
        q + usize::from(r > 1),
        q + usize::from(r > 2),
        q,
    ]
}

/// Byte grouping: every 4th byte into one group, groups concatenated.
fn bg4_split(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for g in 0..4 {
        out.extend(data.iter().skip(g).step_by(4));
    }
    out
}

/// Inverse of [`bg4_split`].
fn bg4_regroup(grouped: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; grouped.len()];
    let mut start = 0;
    for (g, size) in bg4_sizes(grouped.len()).into_iter().enumerate() {
        for (i, &b) in grouped[start..start + size].iter().enumerate() {
            out[4 * i + g] = b;
        }
        start += size;
    }
    out
}

fn decode_payload(header: Header, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    match header.scheme {
        SCHEME_NONE => Ok(payload.to_vec()),
        SCHEME_LZ4 => lz4_bounded(payload, header.uncompressed),
        _ => Ok(bg4_regroup(&lz4_bounded(payload, header.uncompressed)?)),
    }
}

/// Decodes one frame (header + payload, nothing more) into the chunk's bytes. Checks the
/// version, scheme and lengths, and that the payload decompresses to exactly the header's
/// uncompressed size; never allocates more than that size for the output.
pub fn decode_frame(frame: &[u8]) -> Result<Vec<u8>, XorbError> {
    decode_frame_inner(frame).map_err(XorbError::Frame)
}

fn decode_frame_inner(frame: &[u8]) -> Result<Vec<u8>, FrameError> {
    if frame.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Truncated {
            needed: FRAME_HEADER_LEN,
            available: frame.len(),
        });
    }
    let header = parse_header(&frame[..FRAME_HEADER_LEN])?;
    let expected = FRAME_HEADER_LEN + header.compressed as usize;
    if frame.len() < expected {
        return Err(FrameError::Truncated {
            needed: expected,
            available: frame.len(),
        });
    }
    if frame.len() > expected {
        return Err(FrameError::WrongLength {
            actual: frame.len(),
            expected,
        });
    }
    decode_payload(header, &frame[FRAME_HEADER_LEN..])
}

/// Cuts the frames of a fetched xorb range (frames only, as a CAS serves a chunk range) into
/// their chunks as the bytes arrive. It holds at most one incomplete frame and what was fed
/// after it; a stored (uncompressed) chunk is handed out as a slice of those bytes, not copied.
#[derive(Debug, Default)]
pub struct FrameReader {
    pending: bytes::BytesMut,
    /// Offset of `pending` in the range, for errors.
    offset: u64,
    chunks: usize,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next chunk, decoded and checked like a validated xorb's, once its whole frame has
    /// been fed; `None` until then.
    pub fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, XorbError> {
        if self.pending.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let header = parse_header(&self.pending[..FRAME_HEADER_LEN]).map_err(|e| self.at(e))?;
        let frame_len = FRAME_HEADER_LEN + header.compressed as usize;
        if self.pending.len() < frame_len {
            return Ok(None);
        }
        let frame = self.pending.split_to(frame_len).freeze();
        let chunk = match header.scheme {
            SCHEME_NONE => frame.slice(FRAME_HEADER_LEN..),
            _ => decode_payload(header, &frame[FRAME_HEADER_LEN..])
                .map_err(|e| self.at(e))?
                .into(),
        };
        self.offset += frame_len as u64;
        self.chunks += 1;
        Ok(Some(chunk))
    }

    /// Checks that the range ended on a frame boundary.
    pub fn finish(self) -> Result<(), XorbError> {
        let available = self.pending.len();
        if available == 0 {
            return Ok(());
        }
        let needed = match available >= FRAME_HEADER_LEN {
            true => parse_header(&self.pending[..FRAME_HEADER_LEN]).map_or(FRAME_HEADER_LEN, |h| {
                FRAME_HEADER_LEN + h.compressed as usize
            }),
            false => FRAME_HEADER_LEN,
        };
        Err(self.at(FrameError::Truncated { needed, available }))
    }

    fn at(&self, error: FrameError) -> XorbError {
        XorbError::InChunk {
            index: self.chunks,
            offset: self.offset,
            error,
        }
    }
}

/// What the validator can do with the bytes in front of it.
enum Step {
    /// At least this many bytes are needed before anything can be decided.
    Need(usize),
    /// A whole frame of this length was validated and recorded.
    Frame(usize),
    /// The chunk sequence is over; the footer starts here.
    Footer,
}

/// Incremental validator fed the request body as it arrives. It keeps at most one incomplete
/// frame plus the footer (whose size is bounded by the chunk count), never the whole xorb.
#[derive(Debug, Default)]
pub struct XorbValidator {
    /// Bytes received so far.
    received: u64,
    /// Offset where the next frame starts.
    frames_end: u64,
    /// An incomplete frame carried over between `feed` calls.
    pending: Vec<u8>,
    /// The footer and its length, once the chunk sequence ended.
    footer: Option<Vec<u8>>,
    chunks: Vec<ChunkEntry>,
    unpacked_len: u64,
}

/// Most bytes a footer for `n` chunks (V1 is the larger version) plus its length can take.
fn max_footer_len(n: usize) -> usize {
    FOOTER_V1_FIXED + 40 * n + 4
}

impl XorbValidator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece of the body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), XorbError> {
        self.received += bytes.len() as u64;
        if self.received > MAX_XORB_BYTES {
            return Err(XorbError::TooLarge);
        }
        if self.footer.is_some() {
            return self.push_footer(bytes);
        }
        let mut input = bytes;
        // First complete a frame left over from an earlier call, topping up only what it needs.
        while !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            match self.step(&pending)? {
                Step::Need(n) => {
                    self.pending = pending;
                    if input.is_empty() {
                        return Ok(());
                    }
                    let take = (n - self.pending.len()).min(input.len());
                    self.pending.extend_from_slice(&input[..take]);
                    input = &input[take..];
                }
                Step::Frame(len) => {
                    self.pending = pending;
                    self.pending.drain(..len);
                }
                Step::Footer => {
                    self.footer = Some(Vec::new());
                    self.push_footer(&pending)?;
                    return self.push_footer(input);
                }
            }
        }
        // Then validate whole frames straight from the input, keeping only the incomplete tail.
        loop {
            match self.step(input)? {
                Step::Need(_) => {
                    self.pending.extend_from_slice(input);
                    return Ok(());
                }
                Step::Frame(len) => input = &input[len..],
                Step::Footer => {
                    self.footer = Some(Vec::new());
                    return self.push_footer(input);
                }
            }
        }
    }

    fn push_footer(&mut self, bytes: &[u8]) -> Result<(), XorbError> {
        let max = max_footer_len(self.chunks.len());
        let footer = self.footer.get_or_insert_with(Vec::new);
        if footer.len() + bytes.len() > max {
            return Err(XorbError::FooterTooLong(self.chunks.len()));
        }
        footer.extend_from_slice(bytes);
        Ok(())
    }

    fn chunk_error(&self, error: FrameError) -> XorbError {
        XorbError::InChunk {
            index: self.chunks.len(),
            offset: self.frames_end,
            error,
        }
    }

    /// Looks at the bytes where the next frame (or the footer) starts.
    fn step(&mut self, data: &[u8]) -> Result<Step, XorbError> {
        let Some(&first) = data.first() else {
            return Ok(Step::Need(1));
        };
        if first == FOOTER_IDENT[0] {
            return Ok(Step::Footer);
        }
        if data.len() < FRAME_HEADER_LEN {
            // Reject a bad version byte at once rather than after 8 bytes.
            if first != 0 {
                return Err(self.chunk_error(FrameError::Version(first)));
            }
            return Ok(Step::Need(FRAME_HEADER_LEN));
        }
        let header = parse_header(&data[..FRAME_HEADER_LEN]).map_err(|e| self.chunk_error(e))?;
        let len = FRAME_HEADER_LEN + header.compressed as usize;
        // The body can no longer fit: this frame plus the smallest footer for the chunks.
        let n = self.chunks.len() + 1;
        let min_total = self.frames_end + len as u64 + (FOOTER_V0_FIXED + 36 * n + 4) as u64;
        if min_total > MAX_XORB_BYTES {
            return Err(XorbError::TooLarge);
        }
        if data.len() < len {
            return Ok(Step::Need(len));
        }
        let bytes = decode_payload(header, &data[FRAME_HEADER_LEN..len])
            .map_err(|e| self.chunk_error(e))?;
        self.chunks.push(ChunkEntry {
            hash: chunk_hash(&bytes),
            // Both fit: the xorb is at most 64 MiB.
            offset: self.frames_end as u32,
            frame_len: len as u32,
            unpacked_len: header.uncompressed,
        });
        self.frames_end += len as u64;
        self.unpacked_len += u64::from(header.uncompressed);
        Ok(Step::Frame(len))
    }

    /// Ends the body: checks the footer and returns the xorb's hash and chunks.
    pub fn finish(mut self) -> Result<ValidXorb, XorbError> {
        let Some(footer) = self.footer.take() else {
            if !self.pending.is_empty() {
                let error = if self.pending.len() < FRAME_HEADER_LEN {
                    FrameError::Truncated {
                        needed: FRAME_HEADER_LEN,
                        available: self.pending.len(),
                    }
                } else {
                    match parse_header(&self.pending[..FRAME_HEADER_LEN]) {
                        Ok(h) => FrameError::PastEnd(h.compressed),
                        Err(e) => e,
                    }
                };
                return Err(XorbError::InChunk {
                    index: self.chunks.len(),
                    offset: self.frames_end,
                    error,
                });
            }
            // The reference client uploads xorbs without the footer: the chunks are the xorb.
            return self.into_valid(None);
        };
        self.into_valid(Some(footer))
    }

    /// The xorb the chunks make, after checking the footer where one was sent.
    fn into_valid(self, footer: Option<Vec<u8>>) -> Result<ValidXorb, XorbError> {
        if self.chunks.is_empty() {
            return Err(XorbError::Empty);
        }
        let leaves: Vec<(MerkleHash, u64)> = self
            .chunks
            .iter()
            .map(|c| (c.hash, u64::from(c.unpacked_len)))
            .collect();
        let hash = xorb_hash(&leaves);
        if let Some(footer) = footer {
            check_footer_bytes(&footer, hash, &self.chunks)?;
        }
        Ok(ValidXorb {
            hash,
            chunks: self.chunks,
            stored_len: self.received,
            unpacked_len: self.unpacked_len,
        })
    }
}

/// Checks the footer and its trailing length against the chunks received.
fn check_footer_bytes(
    footer: &[u8],
    hash: MerkleHash,
    chunks: &[ChunkEntry],
) -> Result<(), XorbError> {
    {
        if footer.len() < 4 + FOOTER_V0_FIXED {
            return Err(XorbError::FooterTooShort(footer.len()));
        }
        let (info, len) = footer.split_at(footer.len() - 4);
        let stated = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        if stated as usize != info.len() {
            return Err(XorbError::FooterLength {
                stated,
                actual: info.len(),
            });
        }
        check_footer(info, hash, chunks)
    }
}

/// A bounds-checked little-endian reader over the footer.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], XorbError> {
        if self.data.len() - self.pos < n {
            return Err(XorbError::Footer(format!("truncated in {what}")));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    fn u8(&mut self, what: &str) -> Result<u8, XorbError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32, XorbError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn hash(&mut self, what: &str) -> Result<MerkleHash, XorbError> {
        Ok(MerkleHash::from_slice(self.take(32, what)?).unwrap_or_default())
    }
    fn ident(&mut self, ident: &[u8; 7], what: &str) -> Result<(), XorbError> {
        if self.take(7, what)? != ident {
            return Err(XorbError::Footer(format!(
                "{what} identifier is not {}",
                String::from_utf8_lossy(ident)
            )));
        }
        Ok(())
    }
}

fn mismatch(msg: String) -> XorbError {
    XorbError::FooterMismatch(msg)
}

/// Checks a V0 or V1 `XorbObjectInfo` against the chunks actually received.
fn check_footer(info: &[u8], hash: MerkleHash, chunks: &[ChunkEntry]) -> Result<(), XorbError> {
    let mut c = Cursor { data: info, pos: 0 };
    c.ident(FOOTER_IDENT, "footer")?;
    let version = c.u8("version")?;
    if version > 1 {
        return Err(XorbError::Footer(format!(
            "unsupported footer version {version}"
        )));
    }
    let stated_hash = c.hash("xorb hash")?;
    if stated_hash != hash {
        return Err(mismatch(format!(
            "it states xorb hash {stated_hash}, the chunks hash to {hash}"
        )));
    }
    let check_count = |n: u32| {
        if n as usize != chunks.len() {
            return Err(mismatch(format!(
                "it states {n} chunks, the xorb has {}",
                chunks.len()
            )));
        }
        Ok(())
    };
    let check_hashes = |c: &mut Cursor<'_>| {
        for (i, chunk) in chunks.iter().enumerate() {
            let h = c.hash("chunk hashes")?;
            if h != chunk.hash {
                return Err(mismatch(format!(
                    "chunk {i} hash is {h} in the footer, {} in the data",
                    chunk.hash
                )));
            }
        }
        Ok(())
    };
    let check_boundaries = |c: &mut Cursor<'_>| {
        for (i, chunk) in chunks.iter().enumerate() {
            let end = c.u32("chunk boundaries")?;
            if end != chunk.offset + chunk.frame_len {
                return Err(mismatch(format!(
                    "chunk {i} ends at byte {} but the footer says {end}",
                    chunk.offset + chunk.frame_len
                )));
            }
        }
        Ok(())
    };
    if version == 0 {
        check_count(c.u32("chunk count")?)?;
        check_boundaries(&mut c)?;
        check_hashes(&mut c)?;
    } else {
        let hashes_start = c.pos;
        c.ident(IDENT_HASHES, "hash section")?;
        let v = c.u8("hash section version")?;
        if v != 0 {
            return Err(XorbError::Footer(format!(
                "unsupported hash section version {v}"
            )));
        }
        check_count(c.u32("hash section chunk count")?)?;
        check_hashes(&mut c)?;
        let boundaries_start = c.pos;
        c.ident(IDENT_BOUNDARIES, "boundary section")?;
        let v = c.u8("boundary section version")?;
        if v != 1 {
            return Err(XorbError::Footer(format!(
                "unsupported boundary section version {v}"
            )));
        }
        check_count(c.u32("boundary section chunk count")?)?;
        check_boundaries(&mut c)?;
        let mut unpacked = 0u32;
        for (i, chunk) in chunks.iter().enumerate() {
            unpacked += chunk.unpacked_len;
            let end = c.u32("unpacked offsets")?;
            if end != unpacked {
                return Err(mismatch(format!(
                    "chunk {i} unpacked end is {unpacked} but the footer says {end}"
                )));
            }
        }
        check_count(c.u32("chunk count")?)?;
        let hashes_from_end = c.u32("hash section offset")?;
        let boundaries_from_end = c.u32("boundary section offset")?;
        let end = info.len();
        if hashes_from_end as usize != end - hashes_start
            || boundaries_from_end as usize != end - boundaries_start
        {
            return Err(XorbError::Footer(
                "section offsets do not match the footer layout".into(),
            ));
        }
    }
    c.take(FOOTER_BUFFER_LEN, "trailing buffer")?;
    if c.pos != info.len() {
        return Err(XorbError::Footer(format!(
            "{} unexpected bytes at the end",
            info.len() - c.pos
        )));
    }
    Ok(())
}

/// Chunk table format version, the first byte of [`pack_chunk_table`]'s output.
const CHUNK_TABLE_VERSION: u8 = 1;
const CHUNK_TABLE_ENTRY: usize = 32 + 4 * 3;

/// Compact binary form of a chunk list (for a PostgreSQL `bytea`): a version byte, the count
/// as u32 LE, then per chunk its 32 hash bytes, offset, frame length and unpacked length
/// (u32 LE each).
pub fn pack_chunk_table(chunks: &[ChunkEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + chunks.len() * CHUNK_TABLE_ENTRY);
    out.push(CHUNK_TABLE_VERSION);
    out.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
    for c in chunks {
        out.extend_from_slice(&c.hash.0);
        out.extend_from_slice(&c.offset.to_le_bytes());
        out.extend_from_slice(&c.frame_len.to_le_bytes());
        out.extend_from_slice(&c.unpacked_len.to_le_bytes());
    }
    out
}

/// Inverse of [`pack_chunk_table`]; rejects anything it would not have produced.
pub fn unpack_chunk_table(bytes: &[u8]) -> Result<Vec<ChunkEntry>, XorbError> {
    let err = |m: String| XorbError::ChunkTable(m);
    if bytes.len() < 5 {
        return Err(err(format!(
            "{} bytes, too short for a header",
            bytes.len()
        )));
    }
    if bytes[0] != CHUNK_TABLE_VERSION {
        return Err(err(format!("unknown version {}", bytes[0])));
    }
    let n = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    let body = &bytes[5..];
    if body.len() / CHUNK_TABLE_ENTRY != n || !body.len().is_multiple_of(CHUNK_TABLE_ENTRY) {
        return Err(err(format!("{} entry bytes for {n} chunks", body.len())));
    }
    let word = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    Ok(body
        .chunks_exact(CHUNK_TABLE_ENTRY)
        .map(|e| ChunkEntry {
            hash: MerkleHash::from_slice(&e[..32]).unwrap_or_default(),
            offset: word(e, 32),
            frame_len: word(e, 36),
            unpacked_len: word(e, 40),
        })
        .collect())
}

fn lz4_compress(data: &[u8]) -> Vec<u8> {
    let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Test/tool helper: serializes `chunks` as a xorb with a V1 footer (the layout the reference
/// client writes and reads), compressing every chunk with `scheme` even where that does not
/// shrink it. Returns the xorb hash and the bytes.
///
/// # Panics
/// On an unknown scheme, an empty chunk or one larger than [`MAX_CHUNK_BYTES`].
pub fn encode_xorb(chunks: &[&[u8]], scheme: u8) -> (MerkleHash, Vec<u8>) {
    assert!(
        scheme <= SCHEME_BG4_LZ4,
        "unknown compression scheme {scheme}"
    );
    let mut out = Vec::new();
    let mut hashes = Vec::with_capacity(chunks.len());
    let mut boundaries = Vec::with_capacity(chunks.len());
    let mut unpacked = Vec::with_capacity(chunks.len());
    let mut unpacked_end = 0u32;
    for chunk in chunks {
        assert!(
            !chunk.is_empty() && chunk.len() <= MAX_CHUNK_BYTES as usize,
            "bad chunk size {}",
            chunk.len()
        );
        let payload = match scheme {
            SCHEME_NONE => chunk.to_vec(),
            SCHEME_LZ4 => lz4_compress(chunk),
            _ => lz4_compress(&bg4_split(chunk)),
        };
        let len = payload.len() as u32;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes()[..3]);
        out.push(scheme);
        out.extend_from_slice(&(chunk.len() as u32).to_le_bytes()[..3]);
        out.extend_from_slice(&payload);
        hashes.push((chunk_hash(chunk), chunk.len() as u64));
        boundaries.push(out.len() as u32);
        unpacked_end += chunk.len() as u32;
        unpacked.push(unpacked_end);
    }
    let hash = xorb_hash(&hashes);
    let n = (chunks.len() as u32).to_le_bytes();
    let footer_start = out.len();
    out.extend_from_slice(FOOTER_IDENT);
    out.push(1);
    out.extend_from_slice(&hash.0);
    let hashes_start = out.len();
    out.extend_from_slice(IDENT_HASHES);
    out.push(0);
    out.extend_from_slice(&n);
    for (h, _) in &hashes {
        out.extend_from_slice(&h.0);
    }
    let boundaries_start = out.len();
    out.extend_from_slice(IDENT_BOUNDARIES);
    out.push(1);
    out.extend_from_slice(&n);
    for b in boundaries.iter().chain(&unpacked) {
        out.extend_from_slice(&b.to_le_bytes());
    }
    out.extend_from_slice(&n);
    // Offsets from the end of the footer, which is 3 u32s + the buffer away.
    let end = out.len() + 8 + FOOTER_BUFFER_LEN;
    out.extend_from_slice(&((end - hashes_start) as u32).to_le_bytes());
    out.extend_from_slice(&((end - boundaries_start) as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; FOOTER_BUFFER_LEN]);
    let info_len = (out.len() - footer_start) as u32;
    out.extend_from_slice(&info_len.to_le_bytes());
    (hash, out)
}

/// Most chunks in one xorb (the reference client's limit).
pub const MAX_XORB_CHUNKS: usize = 8 * 1024;
/// Serialized bytes of a xorb the hub packs itself (the reference client's 64 MiB).
pub const XORB_PACK_BYTES: u64 = 64 * 1024 * 1024;

/// Packs chunks into a xorb of the hub's own, frame by frame, so that the caller can stream the
/// frames to storage and learn the xorb's name at the end. Chunks are stored uncompressed
/// (scheme 0): what the hub chunks itself is mostly model weights, which LZ4 barely shrinks,
/// and compressing them would slow the fetch that a client is waiting for.
#[derive(Debug, Default)]
pub struct XorbPacker {
    chunks: Vec<ChunkEntry>,
    len: u64,
}

impl XorbPacker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Whether one more chunk of `len` bytes keeps the xorb within the limits.
    pub fn has_room(&self, len: usize) -> bool {
        self.chunks.len() < MAX_XORB_CHUNKS
            && self.len + (FRAME_HEADER_LEN + len) as u64 <= XORB_PACK_BYTES
    }

    /// Records `chunk` (1 to [`MAX_CHUNK_BYTES`] bytes) and returns the header of its frame:
    /// the frame is that header followed by the chunk's bytes unchanged.
    pub fn push(&mut self, chunk: &[u8]) -> ([u8; FRAME_HEADER_LEN], ChunkEntry) {
        assert!(
            !chunk.is_empty() && chunk.len() <= MAX_CHUNK_BYTES as usize,
            "bad chunk size {}",
            chunk.len()
        );
        let len = chunk.len() as u32;
        let mut header = [0u8; FRAME_HEADER_LEN];
        header[1..4].copy_from_slice(&len.to_le_bytes()[..3]);
        header[4] = SCHEME_NONE;
        header[5..8].copy_from_slice(&len.to_le_bytes()[..3]);
        let entry = ChunkEntry {
            hash: chunk_hash(chunk),
            offset: self.len as u32,
            frame_len: FRAME_HEADER_LEN as u32 + len,
            unpacked_len: len,
        };
        self.len += u64::from(entry.frame_len);
        self.chunks.push(entry);
        (header, entry)
    }

    /// The xorb the pushed frames make (no footer: the chunk table is the hub's record).
    ///
    /// # Panics
    /// When no chunk was pushed.
    pub fn finish(self) -> ValidXorb {
        assert!(!self.chunks.is_empty(), "a xorb holds at least one chunk");
        let leaves: Vec<(MerkleHash, u64)> = self
            .chunks
            .iter()
            .map(|c| (c.hash, u64::from(c.unpacked_len)))
            .collect();
        ValidXorb {
            hash: xorb_hash(&leaves),
            unpacked_len: self.len - (FRAME_HEADER_LEN * self.chunks.len()) as u64,
            stored_len: self.len,
            chunks: self.chunks,
        }
    }
}
