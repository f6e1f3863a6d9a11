//! A bounded 7z reader: the signature header, the header (plain, or packed as an "encoded
//! header"), the folders and their coders, and the members' names, sizes and CRCs.
//!
//! Nothing read from the file is trusted: every count is checked against the header bytes that
//! remain (each item takes at least a byte), every size against the file's length and the
//! scanner's limits, before anything is allocated or decoded. Decoding covers the coders that
//! real archives use: Copy, LZMA, LZMA2, and BCJ x86 in front of them (py7zr's default chain).
//! lzma-rs decodes; as for xz, LZMA2 chunk headers are summed first because lzma-rs keeps the
//! whole output of an LZMA2 stream in memory. The format: 7-Zip's `DOC/7zFormat.txt`.

use std::io::{self, Read};

use crate::{Blob, Limits, read_at};

#[derive(Debug)]
pub enum Error {
    /// The archive breaks the format: the message names the field that lies.
    Corrupt(String),
    /// Well formed, but uses a coder or feature this reader does not decode (named).
    Unsupported(String),
    /// Encrypted with AES-256 (the coder is named): nothing to inspect without the password.
    Encrypted(String),
    /// Honest, but larger than the limits allow to decode.
    TooLarge(String),
    /// More members (files, folders, streams: named) than the limit allows, though the header
    /// is large enough to describe them.
    TooMany(String),
    /// Reading the file failed (not the archive's fault).
    Io(io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

fn corrupt(why: impl Into<String>) -> Error {
    Error::Corrupt(why.into())
}

const SIGNATURE: &[u8] = b"7z\xbc\xaf\x27\x1c";
const SIGNATURE_HEADER_LEN: u64 = 32;
/// An encoded header may itself be encoded; 7-Zip writes one level.
const MAX_HEADER_ENCODINGS: usize = 4;
/// 7-Zip's own cap on coders and coder streams in one folder.
const MAX_CODERS: u64 = 64;

// Property ids (7zFormat.txt).
const K_END: u8 = 0x00;
const K_HEADER: u8 = 0x01;
const K_ARCHIVE_PROPERTIES: u8 = 0x02;
const K_ADDITIONAL_STREAMS: u8 = 0x03;
const K_MAIN_STREAMS: u8 = 0x04;
const K_FILES: u8 = 0x05;
const K_PACK_INFO: u8 = 0x06;
const K_UNPACK_INFO: u8 = 0x07;
const K_SUBSTREAMS: u8 = 0x08;
const K_SIZE: u8 = 0x09;
const K_CRC: u8 = 0x0a;
const K_FOLDER: u8 = 0x0b;
const K_CODERS_UNPACK_SIZE: u8 = 0x0c;
const K_NUM_UNPACK_STREAM: u8 = 0x0d;
const K_EMPTY_STREAM: u8 = 0x0e;
const K_ANTI: u8 = 0x10;
const K_NAME: u8 = 0x11;
const K_ATTRIBUTES: u8 = 0x15;
const K_ENCODED_HEADER: u8 = 0x17;

// Coder ids (7-Zip's Methods.txt).
const COPY: &[u8] = &[0x00];
const LZMA: &[u8] = &[0x03, 0x01, 0x01];
const LZMA2: &[u8] = &[0x21];
const BCJ_X86: &[u8] = &[0x03, 0x03, 0x01, 0x03];
const AES: &[u8] = &[0x06, 0xf1, 0x07, 0x01];

/// The coder id as 7-Zip lists it, with its name when known.
fn describe(id: &[u8]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02X}")).collect();
    let name = match id {
        COPY => "Copy",
        LZMA => "LZMA",
        LZMA2 => "LZMA2",
        BCJ_X86 => "BCJ x86",
        AES => "AES-256",
        [0x03] => "Delta",
        [0x03, 0x03, 0x01, 0x1b] => "BCJ2",
        [0x03, 0x03, 0x02, 0x05] => "BCJ PowerPC",
        [0x03, 0x03, 0x04, 0x01] => "BCJ IA64",
        [0x03, 0x03, 0x05, 0x01] => "BCJ ARM",
        [0x03, 0x03, 0x07, 0x01] => "BCJ ARM Thumb",
        [0x03, 0x03, 0x08, 0x05] => "BCJ SPARC",
        [0x0a] => "ARM64",
        [0x03, 0x04, 0x01] => "PPMd",
        [0x04, 0x01, 0x08] => "Deflate",
        [0x04, 0x01, 0x09] => "Deflate64",
        [0x04, 0x02, 0x02] => "BZip2",
        [0x04, 0xf7, 0x11, 0x01] => "Zstandard",
        [0x04, 0xf7, 0x11, 0x02] => "Brotli",
        _ => return format!("coder {hex}"),
    };
    format!("coder {hex} ({name})")
}

/// A cursor over header bytes; every read is checked against what remains.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, at: 0 }
    }

    fn left(&self) -> usize {
        self.data.len() - self.at
    }

    fn byte(&mut self, what: &str) -> Result<u8, Error> {
        let b = *self
            .data
            .get(self.at)
            .ok_or_else(|| corrupt(format!("the header ends inside {what}")))?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], Error> {
        if n > self.left() as u64 {
            return Err(corrupt(format!(
                "{what} declares {n} bytes but only {} remain in the header",
                self.left()
            )));
        }
        let slice = &self.data[self.at..self.at + n as usize];
        self.at += n as usize;
        Ok(slice)
    }

    fn expect(&mut self, id: u8, what: &str) -> Result<(), Error> {
        match self.byte(what)? {
            b if b == id => Ok(()),
            b => Err(corrupt(format!(
                "expected {what} (0x{id:02x}), found 0x{b:02x}"
            ))),
        }
    }

    /// 7z's variable-length number: the first byte's leading one bits count the extra bytes,
    /// which hold the low bits little-endian; the first byte's remaining bits are the high ones.
    fn number(&mut self, what: &str) -> Result<u64, Error> {
        let first = self.byte(what)?;
        let extra = first.leading_ones() as usize;
        let mut value = 0u64;
        for i in 0..extra {
            value |= u64::from(self.byte(what)?) << (8 * i);
        }
        if extra < 8 {
            let high = u64::from(first) & ((1u64 << (7 - extra)) - 1);
            value |= high << (8 * extra);
        }
        Ok(value)
    }

    /// A count of items that take at least `min_bytes` each of the header: a count that the
    /// remaining bytes cannot hold is a lie, refused before anything is allocated for it.
    fn count(&mut self, what: &str, min_bytes: u64) -> Result<usize, Error> {
        let n = self.number(what)?;
        if n.checked_mul(min_bytes)
            .is_none_or(|need| need > self.left() as u64)
        {
            return Err(corrupt(format!(
                "{what} is {n}, more than the {} header bytes left can describe",
                self.left()
            )));
        }
        Ok(n as usize)
    }

    fn u32(&mut self, what: &str) -> Result<u32, Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `n` flags, eight to a byte, most significant bit first.
    fn bits(&mut self, n: usize, what: &str) -> Result<Vec<bool>, Error> {
        let bytes = self.take(n.div_ceil(8) as u64, what)?;
        Ok((0..n)
            .map(|i| bytes[i / 8] & (0x80 >> (i % 8)) != 0)
            .collect())
    }

    /// "Digests": which of `n` streams have a CRC-32, then those CRCs.
    fn digests(&mut self, n: usize, what: &str) -> Result<Vec<Option<u32>>, Error> {
        let defined = if self.byte(what)? != 0 {
            vec![true; n]
        } else {
            self.bits(n, what)?
        };
        let count = defined.iter().filter(|d| **d).count() as u64;
        if count * 4 > self.left() as u64 {
            return Err(corrupt(format!(
                "{what} lists {count} CRCs but only {} header bytes remain",
                self.left()
            )));
        }
        defined
            .into_iter()
            .map(|d| d.then(|| self.u32(what)).transpose())
            .collect()
    }
}

#[derive(Debug)]
struct Coder {
    id: Vec<u8>,
    props: Vec<u8>,
    ins: u64,
    outs: u64,
}

/// A run of data decoded together: coders joined by bind pairs, fed by pack streams.
#[derive(Debug, Default)]
struct Folder {
    coders: Vec<Coder>,
    /// (coder input stream, coder output stream that feeds it).
    binds: Vec<(u64, u64)>,
    /// Coder input streams read from pack streams, in pack-stream order.
    packed: Vec<u64>,
    /// The output stream no bind pair consumes: the folder's content.
    main: u64,
    /// The size of every coder output stream.
    sizes: Vec<u64>,
    crc: Option<u32>,
    /// Index of its first pack stream.
    first_pack: usize,
}

impl Folder {
    fn size(&self) -> u64 {
        self.sizes.get(self.main as usize).copied().unwrap_or(0)
    }
}

/// A folder's files, in order: (size, CRC).
type FolderFiles = Vec<(u64, Option<u32>)>;

#[derive(Debug, Default)]
struct Streams {
    /// Absolute offset and size of every pack stream, checked to lie within the file.
    packs: Vec<(u64, u64)>,
    folders: Vec<Folder>,
    substreams: Vec<FolderFiles>,
}

/// Where a member's data lies: a slice of its folder's decoded content.
#[derive(Debug, Clone)]
pub struct Span {
    pub folder: usize,
    pub offset: u64,
    pub size: u64,
    pub crc: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Member {
    /// The stored name, with `\` read as a separator (as py7zr and 7-Zip on Windows do).
    pub name: String,
    /// Windows attributes; with bit 15 set, the high 16 bits are a unix mode.
    pub attributes: Option<u32>,
    pub data: Option<Span>,
}

impl Member {
    /// The unix file type bits, when the writer recorded a unix mode.
    pub fn unix_type(&self) -> Option<u32> {
        self.attributes
            .filter(|a| a & 0x8000 != 0)
            .map(|a| (a >> 16) & 0o170000)
    }

    /// A symbolic link, by its unix mode (as for zip: Windows reparse-point attributes are not
    /// taken to mean one, since files stored with their content can keep that bit).
    pub fn is_link(&self) -> bool {
        self.unix_type() == Some(0o120000)
    }
}

#[derive(Debug, Default)]
pub struct Archive {
    streams: Streams,
    pub members: Vec<Member>,
}

impl Archive {
    pub fn folders(&self) -> usize {
        self.streams.folders.len()
    }

    /// The bytes a folder's pack streams hold, and the size its content declares.
    pub fn sizes(&self, folder: usize) -> (u64, u64) {
        let f = &self.streams.folders[folder];
        let packed = self.streams.packs[f.first_pack..f.first_pack + f.packed.len()]
            .iter()
            .fold(0u64, |sum, (_, size)| sum.saturating_add(*size));
        (packed, f.size())
    }

    /// Whether the folder's coders can be decoded here (`Encrypted` or `Unsupported` if not),
    /// and whether the size-preserving ones (Copy, BCJ) declare the size they are given.
    pub fn check(&self, folder: usize) -> Result<(), Error> {
        let f = &self.streams.folders[folder];
        let mut input = self.streams.packs[f.first_pack].1;
        for coder in chain(f)? {
            let (id, output) = (f.coders[coder].id.as_slice(), f.sizes[coder]);
            if (id == COPY || id == BCJ_X86) && output != input {
                return Err(corrupt(format!(
                    "{} turns {input} bytes into a declared {output}",
                    describe(id)
                )));
            }
            input = output;
        }
        Ok(())
    }

    /// Where a folder stored with the Copy coder alone begins in the file: its members can be
    /// read in place, whatever their size.
    pub fn stored_at(&self, folder: usize) -> Option<u64> {
        let f = &self.streams.folders[folder];
        let (offset, size) = self.streams.packs[f.first_pack];
        (f.coders.len() == 1 && f.coders[0].id == COPY && size == f.size()).then_some(offset)
    }

    /// Decodes a folder's whole content, refusing more than `limit` bytes before decoding.
    pub fn decode(
        &self,
        blob: &mut dyn Blob,
        len: u64,
        folder: usize,
        limit: u64,
    ) -> Result<Vec<u8>, Error> {
        decode_folder(blob, len, &self.streams, folder, limit)
    }
}

/// Opens an archive: checks the signature header and its CRCs, decodes an encoded header
/// within `max_structure_bytes`, and parses the streams and members.
pub fn open(blob: &mut dyn Blob, len: u64, limits: &Limits) -> Result<Archive, Error> {
    if len < SIGNATURE_HEADER_LEN {
        return Err(corrupt(format!(
            "the file ends inside the 32-byte signature header ({len} bytes)"
        )));
    }
    let sig = read_at(blob, 0, SIGNATURE_HEADER_LEN, len, SIGNATURE_HEADER_LEN)?;
    if !sig.starts_with(SIGNATURE) {
        return Err(corrupt("no 7z signature"));
    }
    if sig[6] != 0 {
        return Err(Error::Unsupported(format!(
            "7z format version {}.{}, which no known writer uses: not inspected",
            sig[6], sig[7]
        )));
    }
    let le32 = |at: usize| u32::from_le_bytes([sig[at], sig[at + 1], sig[at + 2], sig[at + 3]]);
    let le64 = |at: usize| u64::from(le32(at)) | u64::from(le32(at + 4)) << 32;
    if crc32fast::hash(&sig[12..32]) != le32(8) {
        return Err(corrupt("the start header's CRC does not match"));
    }
    let (next_offset, next_size, next_crc) = (le64(12), le64(20), le32(28));
    if next_size == 0 {
        // An archive without members: 7-Zip writes no header at all.
        return Ok(Archive::default());
    }
    let start = SIGNATURE_HEADER_LEN.checked_add(next_offset);
    if start
        .and_then(|s| s.checked_add(next_size))
        .is_none_or(|end| end > len)
    {
        return Err(corrupt(format!(
            "the next header ({next_size} bytes at offset {next_offset} after the signature header) lies past the end of the file ({len} bytes)"
        )));
    }
    if next_size > limits.max_structure_bytes {
        return Err(Error::TooLarge(format!(
            "the header of {next_size} bytes is too large to inspect"
        )));
    }
    let mut header = read_at(
        blob,
        SIGNATURE_HEADER_LEN + next_offset,
        next_size,
        len,
        next_size,
    )?;
    if crc32fast::hash(&header) != next_crc {
        return Err(corrupt("the next header's CRC does not match"));
    }
    for _ in 0..MAX_HEADER_ENCODINGS {
        let mut r = Reader::new(&header);
        match r.byte("the header")? {
            K_HEADER => return parse_header(&mut r, len, limits),
            K_ENCODED_HEADER => {
                let streams = streams_info(&mut r, len, limits.archive_max_members)?;
                header = decode_header(blob, len, &streams, limits)?;
            }
            other => {
                return Err(corrupt(format!(
                    "the next header starts with property 0x{other:02x}, not a header"
                )));
            }
        }
    }
    Err(corrupt(format!(
        "the header is encoded more than {MAX_HEADER_ENCODINGS} times"
    )))
}

/// The content of an encoded header's folders, concatenated: at most `max_structure_bytes`,
/// and (past 1 MiB) no more than the compression-ratio limit times the packed bytes, as for
/// the compressed streams, so that a few bytes cannot make the scanner inflate 100 MB.
fn decode_header(
    blob: &mut dyn Blob,
    len: u64,
    streams: &Streams,
    limits: &Limits,
) -> Result<Vec<u8>, Error> {
    if streams.folders.is_empty() {
        return Err(corrupt("the encoded header has no folder"));
    }
    let mut header = Vec::new();
    for (index, folder) in streams.folders.iter().enumerate() {
        let packed = streams.packs[folder.first_pack].1;
        let left = limits
            .max_structure_bytes
            .saturating_sub(header.len() as u64)
            .min(
                packed
                    .saturating_mul(limits.max_compression_ratio)
                    .max(1 << 20),
            );
        match decode_folder(blob, len, streams, index, left) {
            Ok(part) => header.extend(part),
            Err(Error::Encrypted(coder)) => {
                return Err(Error::Encrypted(format!(
                    "the header is encrypted with {coder}: member names and contents cannot be inspected without the password"
                )));
            }
            Err(Error::Unsupported(coder)) => {
                return Err(Error::Unsupported(format!(
                    "the header is packed with {coder}, which this scanner does not decode: no member was inspected"
                )));
            }
            Err(Error::TooLarge(_)) => {
                return Err(Error::TooLarge(
                    "the packed header is too large to inspect".into(),
                ));
            }
            Err(Error::Corrupt(why)) => return Err(corrupt(format!("the packed header: {why}"))),
            Err(e) => return Err(e),
        }
    }
    Ok(header)
}

fn parse_header(r: &mut Reader<'_>, len: u64, limits: &Limits) -> Result<Archive, Error> {
    let mut id = r.byte("the header")?;
    if id == K_ARCHIVE_PROPERTIES {
        loop {
            if r.byte("the archive properties")? == K_END {
                break;
            }
            let size = r.number("an archive property size")?;
            r.take(size, "an archive property")?;
        }
        id = r.byte("the header")?;
    }
    if id == K_ADDITIONAL_STREAMS {
        return Err(Error::Unsupported(
            "additional streams (header data stored outside the header), which this scanner does not read: no member was inspected".into(),
        ));
    }
    let mut streams = Streams::default();
    if id == K_MAIN_STREAMS {
        streams = streams_info(r, len, limits.archive_max_members)?;
        id = r.byte("the header")?;
    }
    let mut members = Vec::new();
    if id == K_FILES {
        members = files_info(r, &streams, limits)?;
        id = r.byte("the header")?;
    } else if streams.substreams.iter().any(|s| !s.is_empty()) {
        return Err(corrupt("the archive holds data but lists no files"));
    }
    if id != K_END {
        return Err(corrupt(format!(
            "unexpected property 0x{id:02x} at the end of the header"
        )));
    }
    Ok(Archive { streams, members })
}

/// PackInfo, UnpackInfo (folders) and SubStreamsInfo, each optional, then kEnd. Folders and
/// files beyond `max_items` are refused before they are allocated (each costs far more
/// memory than the few header bytes that describe it).
fn streams_info(r: &mut Reader<'_>, len: u64, max_items: usize) -> Result<Streams, Error> {
    let mut streams = Streams::default();
    let mut substreams = None;
    // Each part at most once and in order (as 7-Zip requires): a repeated part would cost
    // work for every folder again from a couple of header bytes.
    let mut last = 0u8;
    loop {
        let id = r.byte("the streams info")?;
        if id != K_END && id <= last {
            return Err(corrupt(format!(
                "property 0x{id:02x} repeated or out of order in the streams info"
            )));
        }
        last = id;
        match id {
            K_END => break,
            K_PACK_INFO => streams.packs = pack_info(r, len, max_items)?,
            K_UNPACK_INFO => streams.folders = unpack_info(r, max_items)?,
            K_SUBSTREAMS => {
                substreams = Some(substreams_info(r, &streams.folders, max_items)?);
            }
            other => {
                return Err(corrupt(format!(
                    "unexpected property 0x{other:02x} in the streams info"
                )));
            }
        }
    }
    let mut next_pack = 0usize;
    for (i, folder) in streams.folders.iter_mut().enumerate() {
        folder.first_pack = next_pack;
        next_pack += folder.packed.len();
        if next_pack > streams.packs.len() {
            return Err(corrupt(format!(
                "folder {i} needs pack stream {} but the pack info declares {}",
                next_pack - 1,
                streams.packs.len()
            )));
        }
    }
    streams.substreams = match substreams {
        Some(s) if s.len() == streams.folders.len() => s,
        Some(_) => return Err(corrupt("the substreams info comes before the folders")),
        // Without SubStreamsInfo each folder is one file.
        None => streams
            .folders
            .iter()
            .map(|f| vec![(f.size(), f.crc)])
            .collect(),
    };
    Ok(streams)
}

fn pack_info(r: &mut Reader<'_>, len: u64, max_items: usize) -> Result<Vec<(u64, u64)>, Error> {
    let position = r.number("the pack position")?;
    let count = r.count("the number of pack streams", 1)?;
    // BCJ2 folders read four pack streams; other folders one.
    if count > max_items.saturating_mul(4) {
        return Err(Error::TooMany(format!("{count} pack streams")));
    }
    let mut sizes = Vec::new();
    loop {
        match r.byte("the pack info")? {
            K_END => break,
            K_SIZE => {
                sizes = (0..count)
                    .map(|_| r.number("a pack size"))
                    .collect::<Result<_, _>>()?;
            }
            K_CRC => {
                r.digests(count, "the pack streams' CRCs")?;
            }
            other => {
                return Err(corrupt(format!(
                    "unexpected property 0x{other:02x} in the pack info"
                )));
            }
        }
    }
    if sizes.len() != count {
        return Err(corrupt("the pack info gives no pack sizes"));
    }
    let mut at = SIGNATURE_HEADER_LEN.checked_add(position);
    let mut packs = Vec::with_capacity(count);
    for (i, size) in sizes.into_iter().enumerate() {
        let end = at.and_then(|a| a.checked_add(size));
        match (at, end) {
            (Some(start), Some(end)) if end <= len => {
                packs.push((start, size));
                at = Some(end);
            }
            _ => {
                return Err(corrupt(format!(
                    "pack stream {i} ({size} bytes, pack position {position}) runs past the end of the file ({len} bytes)"
                )));
            }
        }
    }
    Ok(packs)
}

fn unpack_info(r: &mut Reader<'_>, max_items: usize) -> Result<Vec<Folder>, Error> {
    r.expect(K_FOLDER, "the folder list")?;
    // A folder takes at least two bytes: its coder count and one coder's flags.
    let count = r.count("the number of folders", 2)?;
    if count > max_items {
        return Err(Error::TooMany(format!("{count} folders")));
    }
    if r.byte("the folders' external flag")? != 0 {
        return Err(Error::Unsupported(
            "folders stored outside the header, which this scanner does not read: no member was inspected"
                .into(),
        ));
    }
    let mut folders = Vec::with_capacity(count);
    let mut coders = 0usize;
    for _ in 0..count {
        let folder = folder(r)?;
        // Real folders have one to four coders; each costs far more than its header bytes.
        coders += folder.coders.len();
        if coders > max_items.saturating_mul(4) {
            return Err(Error::TooMany(format!(
                "over {} coders",
                max_items.saturating_mul(4)
            )));
        }
        folders.push(folder);
    }
    r.expect(K_CODERS_UNPACK_SIZE, "the folders' unpack sizes")?;
    for folder in &mut folders {
        let outs: u64 = folder.coders.iter().map(|c| c.outs).sum();
        folder.sizes = (0..outs)
            .map(|_| r.number("an unpack size"))
            .collect::<Result<_, _>>()?;
    }
    loop {
        match r.byte("the unpack info")? {
            K_END => break,
            K_CRC => {
                let crcs = r.digests(count, "the folders' CRCs")?;
                for (folder, crc) in folders.iter_mut().zip(crcs) {
                    folder.crc = crc;
                }
            }
            other => {
                return Err(corrupt(format!(
                    "unexpected property 0x{other:02x} in the unpack info"
                )));
            }
        }
    }
    Ok(folders)
}

fn folder(r: &mut Reader<'_>) -> Result<Folder, Error> {
    let count = r.number("a folder's number of coders")?;
    if count == 0 || count > MAX_CODERS {
        return Err(corrupt(format!(
            "a folder declares {count} coders (1 to {MAX_CODERS} allowed)"
        )));
    }
    let mut folder = Folder::default();
    let (mut ins, mut outs) = (0u64, 0u64);
    for _ in 0..count {
        let flags = r.byte("a coder")?;
        if flags & 0xc0 != 0 {
            return Err(corrupt(format!(
                "coder flags 0x{flags:02x} set reserved bits"
            )));
        }
        let id_len = flags & 0x0f;
        if id_len > 8 {
            return Err(corrupt(format!("a coder id of {id_len} bytes (8 at most)")));
        }
        let id = r.take(u64::from(id_len), "a coder id")?.to_vec();
        let (coder_ins, coder_outs) = if flags & 0x10 != 0 {
            (
                r.number("a coder's number of inputs")?,
                r.number("a coder's number of outputs")?,
            )
        } else {
            (1, 1)
        };
        ins = ins.saturating_add(coder_ins);
        outs = outs.saturating_add(coder_outs);
        if coder_ins == 0 || coder_outs == 0 || ins > MAX_CODERS || outs > MAX_CODERS {
            return Err(corrupt(format!(
                "a coder declares {coder_ins} inputs and {coder_outs} outputs (1 to {MAX_CODERS} streams per folder allowed)"
            )));
        }
        let props = if flags & 0x20 != 0 {
            let size = r.number("a coder's properties size")?;
            r.take(size, "a coder's properties")?.to_vec()
        } else {
            Vec::new()
        };
        folder.coders.push(Coder {
            id,
            props,
            ins: coder_ins,
            outs: coder_outs,
        });
    }
    for _ in 0..outs - 1 {
        let (input, output) = (r.number("a bind pair")?, r.number("a bind pair")?);
        if input >= ins || output >= outs {
            return Err(corrupt(format!(
                "a bind pair joins input {input} to output {output}, which the folder lacks"
            )));
        }
        if folder
            .binds
            .iter()
            .any(|(i, o)| *i == input || *o == output)
        {
            return Err(corrupt("a folder binds a stream twice"));
        }
        folder.binds.push((input, output));
    }
    let packed = ins
        .checked_sub(outs - 1)
        .filter(|n| *n > 0)
        .ok_or_else(|| corrupt("a folder's coders leave no input for packed data"))?;
    if packed == 1 {
        let free = (0..ins).find(|i| !folder.binds.iter().any(|(b, _)| b == i));
        folder
            .packed
            .push(free.ok_or_else(|| corrupt("a folder has no packed input"))?);
    } else {
        for _ in 0..packed {
            let index = r.number("a packed stream index")?;
            if index >= ins {
                return Err(corrupt(format!(
                    "packed stream index {index} names an input the folder lacks"
                )));
            }
            folder.packed.push(index);
        }
    }
    folder.main = (0..outs)
        .find(|o| !folder.binds.iter().any(|(_, b)| b == o))
        .ok_or_else(|| corrupt("every output of a folder is bound: it has no content"))?;
    Ok(folder)
}

fn substreams_info(
    r: &mut Reader<'_>,
    folders: &[Folder],
    max_items: usize,
) -> Result<Vec<FolderFiles>, Error> {
    let mut counts = vec![1u64; folders.len()];
    let mut id = r.byte("the substreams info")?;
    if id == K_NUM_UNPACK_STREAM {
        // Every file of a folder but the last takes at least a byte for its size.
        let (mut sized, mut total) = (0u64, 0u64);
        for count in &mut counts {
            *count = r.number("a folder's number of files")?;
            sized = sized.saturating_add(count.saturating_sub(1));
            total = total.saturating_add(*count);
            if sized > r.left() as u64 {
                return Err(corrupt(format!(
                    "a folder declares {count} files, more than the {} header bytes left can describe",
                    r.left()
                )));
            }
            if total > max_items as u64 {
                return Err(Error::TooMany(format!("{total} files with data")));
            }
        }
        id = r.byte("the substreams info")?;
    }
    let mut streams: Vec<FolderFiles> = Vec::with_capacity(folders.len());
    for (i, (folder, &count)) in folders.iter().zip(&counts).enumerate() {
        let mut sizes = Vec::with_capacity(count as usize);
        if count == 0 {
            streams.push(sizes);
            continue;
        }
        let mut sum = 0u64;
        if id == K_SIZE {
            for _ in 1..count {
                let size = r.number("a file size")?;
                sum = sum
                    .checked_add(size)
                    .ok_or_else(|| corrupt("file sizes overflow"))?;
                sizes.push((size, None));
            }
        } else if count > 1 {
            return Err(corrupt(format!(
                "folder {i} holds {count} files but no sizes are given"
            )));
        }
        let total = folder.size();
        let last = total.checked_sub(sum).ok_or_else(|| {
            corrupt(format!(
                "the files of folder {i} add up to {sum} bytes, more than its {total}"
            ))
        })?;
        sizes.push((last, None));
        streams.push(sizes);
    }
    if id == K_SIZE {
        id = r.byte("the substreams info")?;
    }
    // A folder holding one file with a known CRC gives that file's CRC; the others are listed.
    let known = |f: &Folder, count: u64| count == 1 && f.crc.is_some();
    for (folder, files) in folders.iter().zip(&mut streams) {
        if known(folder, files.len() as u64) {
            files[0].1 = folder.crc;
        }
    }
    if id == K_CRC {
        let unknown = folders
            .iter()
            .zip(&streams)
            .filter(|(f, s)| !known(f, s.len() as u64))
            .map(|(_, s)| s.len())
            .sum();
        let mut crcs = r.digests(unknown, "the files' CRCs")?.into_iter();
        for (folder, files) in folders.iter().zip(&mut streams) {
            if !known(folder, files.len() as u64) {
                for file in files {
                    file.1 = crcs.next().flatten();
                }
            }
        }
        id = r.byte("the substreams info")?;
    }
    if id != K_END {
        return Err(corrupt(format!(
            "unexpected property 0x{id:02x} in the substreams info"
        )));
    }
    Ok(streams)
}

/// FilesInfo: one entry per file; those without an "empty stream" bit take the folders'
/// substreams in order. Unknown properties (times, padding) are skipped by their size.
fn files_info(
    r: &mut Reader<'_>,
    streams: &Streams,
    limits: &Limits,
) -> Result<Vec<Member>, Error> {
    let with_data: usize = streams.substreams.iter().map(Vec::len).sum();
    let count = r.number("the number of files")?;
    // A file either has data (a substream) or an empty-stream bit: more cannot be described.
    let describable = (with_data as u64).saturating_add(8 * r.left() as u64);
    if count > describable {
        return Err(corrupt(format!(
            "the number of files is {count}, more than the header can describe"
        )));
    }
    if count > limits.archive_max_members as u64 {
        return Err(Error::TooMany(format!("{count} files")));
    }
    let n = count as usize;
    let mut empty = vec![false; n];
    let mut empties = 0usize;
    let mut anti = Vec::new();
    let mut names = None;
    let mut attributes = vec![None; n];
    loop {
        let property = r.byte("the files info")?;
        if property == K_END {
            break;
        }
        let size = r.number("a file property size")?;
        let mut body = Reader::new(r.take(size, &format!("file property 0x{property:02x}"))?);
        match property {
            K_EMPTY_STREAM => {
                empty = body.bits(n, "the empty-stream flags")?;
                empties = empty.iter().filter(|e| **e).count();
            }
            K_ANTI => anti = body.bits(empties, "the anti-item flags")?,
            K_NAME => names = Some(read_names(&mut body, n)?),
            K_ATTRIBUTES => {
                let defined = if body.byte("the attributes")? != 0 {
                    vec![true; n]
                } else {
                    body.bits(n, "the attributes")?
                };
                if body.byte("the attributes' external flag")? != 0 {
                    return Err(Error::Unsupported(
                        "attributes stored outside the header, which this scanner does not read: no member was inspected".into(),
                    ));
                }
                for (slot, defined) in attributes.iter_mut().zip(defined) {
                    if defined {
                        *slot = Some(body.u32("the attributes")?);
                    }
                }
            }
            _ => {} // times, start positions, padding: not needed to judge the content
        }
    }
    let files_with_data = empty.iter().filter(|e| !**e).count();
    if files_with_data != with_data {
        return Err(corrupt(format!(
            "{files_with_data} files have data but the folders hold {with_data} streams"
        )));
    }
    let mut spans = streams
        .substreams
        .iter()
        .enumerate()
        .flat_map(|(folder, files)| {
            files.iter().scan(0u64, move |offset, &(size, crc)| {
                let span = Span {
                    folder,
                    offset: *offset,
                    size,
                    crc,
                };
                *offset += size;
                Some(span)
            })
        });
    let mut names = names.map(Vec::into_iter);
    let mut members = Vec::with_capacity(n);
    let mut empty_index = 0usize;
    for (i, (is_empty, attributes)) in empty.into_iter().zip(attributes).enumerate() {
        let name = names
            .as_mut()
            .and_then(Iterator::next)
            .unwrap_or_else(|| format!("<member {i}>"));
        let mut is_anti = false;
        let data = if is_empty {
            is_anti = anti.get(empty_index).copied().unwrap_or(false);
            empty_index += 1;
            None
        } else {
            spans.next()
        };
        if is_anti {
            continue; // a deletion marker for updates: no file, no data
        }
        members.push(Member {
            name,
            attributes,
            data,
        });
    }
    Ok(members)
}

/// Zero-terminated UTF-16LE names, exactly one per file.
fn read_names(body: &mut Reader<'_>, n: usize) -> Result<Vec<String>, Error> {
    if body.byte("the names")? != 0 {
        return Err(Error::Unsupported(
            "file names stored outside the header, which this scanner does not read: no member was inspected".into(),
        ));
    }
    let bytes = body.take(body.left() as u64, "the names")?;
    if bytes.len() % 2 != 0 || (!bytes.is_empty() && bytes[bytes.len() - 2..] != [0, 0]) {
        return Err(corrupt("the names property is not zero-terminated UTF-16"));
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let names: Vec<String> = units
        .split(|u| *u == 0)
        .take(n + 1)
        .map(|name| String::from_utf16_lossy(name).replace('\\', "/"))
        .collect();
    // `split` yields one empty piece after the final terminator.
    if names.len() != n + 1 || units.iter().filter(|u| **u == 0).count() != n {
        return Err(corrupt(format!(
            "the names property does not hold exactly {n} names"
        )));
    }
    Ok(names.into_iter().take(n).collect())
}

/// The coders from the packed stream to the folder's content, when each has one input and one
/// output (then coder k owns input stream k and output stream k) and each can be decoded here.
fn chain(folder: &Folder) -> Result<Vec<usize>, Error> {
    if let Some(aes) = folder.coders.iter().find(|c| c.id == AES) {
        return Err(Error::Encrypted(describe(&aes.id)));
    }
    let supported = [COPY, LZMA, LZMA2, BCJ_X86];
    if let Some(coder) = folder
        .coders
        .iter()
        .find(|c| c.ins != 1 || c.outs != 1 || !supported.contains(&c.id.as_slice()))
    {
        return Err(Error::Unsupported(describe(&coder.id)));
    }
    if folder.packed.len() != 1 {
        return Err(corrupt(
            "a folder of single-stream coders reads several pack streams",
        ));
    }
    let mut order = vec![folder.main as usize];
    let mut at = folder.main;
    while at != folder.packed[0] {
        let Some(&(_, from)) = folder.binds.iter().find(|(to, _)| *to == at) else {
            return Err(corrupt(format!(
                "coder {at}'s input is neither bound nor packed"
            )));
        };
        if order.len() == folder.coders.len() {
            return Err(corrupt("a folder's bind pairs form a cycle"));
        }
        order.push(from as usize);
        at = from;
    }
    if order.len() != folder.coders.len() {
        return Err(corrupt("a folder has coders that feed nothing"));
    }
    order.reverse();
    Ok(order)
}

fn decode_folder(
    blob: &mut dyn Blob,
    len: u64,
    streams: &Streams,
    index: usize,
    limit: u64,
) -> Result<Vec<u8>, Error> {
    let folder = &streams.folders[index];
    let order = chain(folder)?;
    for &coder in &order {
        let size = folder.sizes[coder];
        if size > limit {
            return Err(Error::TooLarge(format!(
                "folder {index} declares {size} bytes, more than the {limit} that may be decoded"
            )));
        }
    }
    let (offset, size) = streams.packs[folder.first_pack];
    // Packed data is at most slightly larger than its output (incompressible LZMA chunks).
    if size > limit.saturating_add(limit / 8).saturating_add(1 << 16) {
        return Err(Error::TooLarge(format!(
            "folder {index}'s packed data of {size} bytes is too large to decode"
        )));
    }
    let mut data = read_at(blob, offset, size, len, size)?;
    for &coder in &order {
        let coder_out = folder.sizes[coder];
        let what = |why: String| corrupt(format!("folder {index}: {why}"));
        data = run_coder(&folder.coders[coder], data, coder_out).map_err(what)?;
    }
    if folder.crc.is_some_and(|crc| crc != crc32fast::hash(&data)) {
        return Err(corrupt(format!(
            "folder {index}'s CRC does not match its decoded content"
        )));
    }
    Ok(data)
}

/// Runs one supported coder; `size` (its declared output) is already within the limit.
fn run_coder(coder: &Coder, input: Vec<u8>, size: u64) -> Result<Vec<u8>, String> {
    let same_size = |input: &[u8]| {
        if input.len() as u64 == size {
            Ok(())
        } else {
            Err(format!(
                "{} turns {} bytes into {size}",
                describe(&coder.id),
                input.len()
            ))
        }
    };
    match coder.id.as_slice() {
        COPY => same_size(&input).map(|()| input),
        LZMA => lzma(&coder.props, &input, size),
        LZMA2 => lzma2(&coder.props, &input, size),
        BCJ_X86 => {
            same_size(&input)?;
            let start = match coder.props.as_slice() {
                [] => 0,
                [a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
                other => return Err(format!("BCJ properties of {} bytes", other.len())),
            };
            let mut data = input;
            bcj_x86_decode(&mut data, start);
            Ok(data)
        }
        other => Err(format!("{} cannot be decoded", describe(other))),
    }
}

/// Raw LZMA with 7z's 5-byte properties (lc/lp/pb, dictionary size) and the declared size.
fn lzma(props: &[u8], packed: &[u8], size: u64) -> Result<Vec<u8>, String> {
    if props.len() != 5 || props[0] >= 9 * 5 * 5 {
        return Err(format!("invalid LZMA properties {props:02x?}"));
    }
    let options = lzma_rs::decompress::Options {
        unpacked_size: lzma_rs::decompress::UnpackedSize::UseProvided(Some(size)),
        // The dictionary buffer grows with the output; this also caps it.
        memlimit: Some(
            usize::try_from(size)
                .unwrap_or(usize::MAX)
                .saturating_add(4096),
        ),
        allow_incomplete: false,
    };
    let mut out = Vec::with_capacity(size as usize);
    lzma_rs::lzma_decompress_with_options(&mut props.chain(packed), &mut out, &options)
        .map_err(|_| "the LZMA data is corrupt".to_string())?;
    if out.len() as u64 != size {
        return Err(format!(
            "the LZMA data decodes to {} bytes, not the declared {size}",
            out.len()
        ));
    }
    Ok(out)
}

/// LZMA2: the chunk headers' sizes must add up to the declared size before lzma-rs runs.
fn lzma2(props: &[u8], packed: &[u8], size: u64) -> Result<Vec<u8>, String> {
    if props.len() != 1 || props[0] > 40 {
        return Err(format!("invalid LZMA2 properties {props:02x?}"));
    }
    let end = lzma2_chunks(packed, size)?;
    // The end marker is supplied: 7-Zip accepts a stream that stops at the declared size.
    let mut input = (&packed[..end]).chain(&[0u8][..]);
    let mut out = Vec::with_capacity(size as usize);
    lzma_rs::lzma2_decompress(&mut input, &mut out)
        .map_err(|_| "the LZMA2 data is corrupt".to_string())?;
    if out.len() as u64 != size {
        return Err(format!(
            "the LZMA2 data decodes to {} bytes, not the declared {size}",
            out.len()
        ));
    }
    Ok(out)
}

/// Walks LZMA2 chunk headers without decoding; returns where the chunks end (before the end
/// marker, if any). Their declared output must be exactly `size`.
fn lzma2_chunks(data: &[u8], size: u64) -> Result<usize, String> {
    let (mut at, mut total) = (0usize, 0u64);
    let field = |at: usize, n: usize| {
        data.get(at..at + n)
            .ok_or_else(|| "the LZMA2 data ends inside a chunk header".to_string())
    };
    while let Some(&control) = data.get(at) {
        // The end marker, or the declared size reached (7-Zip stops there too).
        if control == 0 || total == size {
            break;
        }
        let (unpacked, packed, header) = match control {
            0x01 | 0x02 => {
                let b = field(at + 1, 2)?;
                let n = u64::from(u16::from_be_bytes([b[0], b[1]])) + 1;
                (n, n, 3)
            }
            0x80..=0xff => {
                let b = field(at + 1, 4)?;
                let unpacked = (u64::from(control & 0x1f) << 16
                    | u64::from(u16::from_be_bytes([b[0], b[1]])))
                    + 1;
                let packed = u64::from(u16::from_be_bytes([b[2], b[3]])) + 1;
                (unpacked, packed, if control >= 0xc0 { 6 } else { 5 })
            }
            _ => return Err(format!("bad LZMA2 chunk control byte 0x{control:02x}")),
        };
        total += unpacked;
        if total > size {
            return Err(format!(
                "the LZMA2 chunks declare more than the {size} bytes the folder declares"
            ));
        }
        at = at + header + packed as usize;
        if at > data.len() {
            return Err("an LZMA2 chunk runs past the packed data".into());
        }
    }
    if total != size {
        return Err(format!(
            "the LZMA2 chunks declare {total} bytes but the folder declares {size}"
        ));
    }
    Ok(at)
}

/// Undoes the BCJ x86 filter over a whole stream: the encoder turned the relative targets of
/// CALL (E8) and JMP (E9) into absolute ones where the operand's top byte is 00 or FF, skipping
/// opcode bytes that fall inside a recent candidate's operand (tracked in `mask`, one bit per
/// position of the last three). The last four bytes are never converted.
fn bcj_x86_decode(buf: &mut [u8], start: u32) {
    const ALLOWED: [bool; 8] = [true, true, true, false, true, false, false, false];
    const TOP_BYTE: [usize; 8] = [0, 1, 2, 2, 3, 3, 3, 3];
    let is_top = |b: u8| b == 0x00 || b == 0xff;
    if buf.len() < 5 {
        return;
    }
    let end = buf.len() - 4;
    let mut mask = 0usize;
    // Position of the last E8/E9 seen; far enough back at the start to clear the mask.
    let mut last: Option<usize> = None;
    let mut i = 0usize;
    while i < end {
        if buf[i] & 0xfe != 0xe8 {
            i += 1;
            continue;
        }
        let gap = last.map_or(usize::MAX, |p| i - p);
        if gap > 3 {
            mask = 0;
        } else {
            mask = (mask << (gap - 1)) & 7;
            if mask != 0 && (!ALLOWED[mask] || is_top(buf[i + 4 - TOP_BYTE[mask]])) {
                last = Some(i);
                mask = (mask << 1) | 1;
                i += 1;
                continue;
            }
        }
        last = Some(i);
        if !is_top(buf[i + 4]) {
            mask = (mask << 1) | 1;
            i += 1;
            continue;
        }
        let mut src = u32::from_le_bytes([buf[i + 1], buf[i + 2], buf[i + 3], buf[i + 4]]);
        let here = start.wrapping_add(i as u32).wrapping_add(5);
        let mut dest;
        loop {
            dest = src.wrapping_sub(here);
            if mask == 0 {
                break;
            }
            let shift = TOP_BYTE[mask & 7] * 8;
            if !is_top((dest >> (24 - shift)) as u8) {
                break;
            }
            src = dest ^ ((1u32 << (32 - shift)) - 1);
        }
        // Bits 25..31 repeat bit 24: the operand stays within ±16 MiB.
        dest &= 0x01ff_ffff;
        if dest & 0x0100_0000 != 0 {
            dest |= 0xff00_0000;
        }
        buf[i + 1..i + 5].copy_from_slice(&dest.to_le_bytes());
        i += 5;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_decode_as_7z_writes_them() {
        let cases: &[(&[u8], u64)] = &[
            (&[0x05], 5),
            (&[0x7f], 127),
            (&[0x80, 0x80], 128),
            (&[0x81, 0x00], 256),
            (&[0xc0, 0x00, 0x40], 0x4000),
            (&[0xff, 1, 2, 3, 4, 5, 6, 7, 8], 0x0807_0605_0403_0201),
        ];
        for (bytes, value) in cases {
            assert_eq!(
                Reader::new(bytes).number("n").unwrap(),
                *value,
                "{bytes:02x?}"
            );
        }
        assert!(matches!(
            Reader::new(&[0xc0, 0x00]).number("n"),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn counts_beyond_the_remaining_bytes_are_refused() {
        let Err(Error::Corrupt(why)) = Reader::new(&[0x7f, 0, 0]).count("the number of folders", 2)
        else {
            panic!("a count of 127 two-byte items in 2 bytes must be refused");
        };
        assert!(why.contains("the number of folders is 127"), "{why}");
    }

    #[test]
    fn bcj_leaves_plain_bytes_and_converts_calls() {
        let mut plain = b"no calls here at all".to_vec();
        let copy = plain.clone();
        bcj_x86_decode(&mut plain, 0);
        assert_eq!(plain, copy);
        // CALL at 0 whose absolute target 0x105 becomes relative to the next instruction (5).
        let mut call = vec![0xe8, 0x05, 0x01, 0x00, 0x00, 0x90, 0x90, 0x90, 0x90];
        bcj_x86_decode(&mut call, 0);
        assert_eq!(call[1..5], 0x100u32.to_le_bytes());
    }

    #[test]
    fn lzma2_chunk_sizes_are_checked_before_decoding() {
        // One uncompressed chunk of 3 bytes, then the end marker.
        let stream = [0x01, 0x00, 0x02, b'a', b'b', b'c', 0x00];
        assert_eq!(lzma2(&[0x10], &stream, 3).unwrap(), b"abc");
        assert!(
            lzma2(&[0x10], &stream, 2)
                .unwrap_err()
                .contains("more than")
        );
        assert!(
            lzma2(&[0x10], &stream, 4)
                .unwrap_err()
                .contains("declare 3 bytes")
        );
        // Without its end marker the stream still decodes (7-Zip stops at the declared size).
        assert_eq!(lzma2(&[0x10], &stream[..6], 3).unwrap(), b"abc");
    }
}
