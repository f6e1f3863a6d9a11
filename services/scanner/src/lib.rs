//! Pure scanners for model files: no database, no HTTP.
//!
//! [`scan`] takes a blob (a reader with its length, and its path as a hint), recognises the
//! format by content, runs every check that applies (recursing into containers within
//! [`Limits`]) and returns findings and one [`Verdict`]. Tensor bytes are never read: parsers
//! read only the structure, and every length field is checked against the bytes that exist
//! before anything is allocated. A hostile file can make a scan say `malformed` or `error`; it
//! cannot make it crash, hang or exhaust memory.

mod archive;
mod formats;
mod gguf;
mod jinja;
mod keras;
mod lz4;
mod numpy;
mod openvino;
mod pickle;
mod policy;
pub use policy::{POLICY_VERSION, valid_deny_entry};
mod protobuf;
mod safetensors;
mod sevenz;
mod text;
mod xz;

use std::io::{self, Read, Seek, SeekFrom};

use serde::Serialize;

/// Bumped whenever rules or parsers change, so the hub knows to rescan every blob.
pub const SCANNER_VERSION: &str = "5";

/// The outcome of a scan, ordered from harmless to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Clean,
    /// Needs a human: something could not be vetted statically.
    Suspicious,
    /// The scan could not finish (I/O, limits): never reported as clean.
    Error,
    /// The file breaks its format's rules (a parser-safety risk).
    Malformed,
    /// Loading it runs someone's code or reads/writes outside the model.
    Malicious,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Suspicious => "suspicious",
            Verdict::Error => "error",
            Verdict::Malformed => "malformed",
            Verdict::Malicious => "malicious",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Verdict::Clean,
            Verdict::Suspicious,
            Verdict::Error,
            Verdict::Malformed,
            Verdict::Malicious,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// One thing the scanner found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable rule id, e.g. `pickle-dangerous-global`.
    pub rule: &'static str,
    /// What this finding alone makes of the file (never `clean`).
    pub severity: Verdict,
    /// Where: archive member path, then byte offset, opcode, tensor or node name.
    pub location: String,
    /// A sentence a person understands.
    pub message: String,
    /// The offending thing itself: a callable, a path, a field value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// The result of scanning one blob.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The format recognised from the content, e.g. `pickle`, `pytorch-zip`, `safetensors`.
    pub format: String,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
}

/// Hard caps that keep a scan bounded whatever the input.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Opcodes executed per pickle. Every opcode consumes at least one byte and pickles have no
    /// jumps, so time is linear in size anyway; this only stops pathological multi-GiB pickles.
    pub pickle_max_ops: u64,
    pub pickle_max_stack: usize,
    pub pickle_max_memo: usize,
    /// Bytes of pickle string/bytes values kept for analysis (nested payloads), per pickle.
    pub pickle_max_retained_bytes: usize,
    /// Members per archive.
    pub archive_max_members: usize,
    /// Containers inside containers.
    pub max_depth: usize,
    /// A member decompressed into memory for a nested scan may not exceed this.
    pub max_member_in_memory: u64,
    /// Total bytes a scan may decompress.
    pub max_inflated_total: u64,
    /// Compression ratios above this are treated as a bomb.
    pub max_compression_ratio: u64,
    /// Header/config sizes (safetensors header, JSON configs, protobufs read whole).
    pub max_structure_bytes: u64,
    /// Community additions to the pickle deny list: `module.name`, or `module.*` for a whole
    /// module. A pickle importing one is malicious.
    pub extra_deny: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            pickle_max_ops: 4_000_000_000,
            pickle_max_stack: 100_000,
            pickle_max_memo: 1_000_000,
            pickle_max_retained_bytes: 16 * 1024 * 1024,
            archive_max_members: 100_000,
            max_depth: 6,
            max_member_in_memory: 128 * 1024 * 1024,
            max_inflated_total: 4 * 1024 * 1024 * 1024,
            max_compression_ratio: 200,
            max_structure_bytes: 100 * 1024 * 1024,
            extra_deny: Vec::new(),
        }
    }
}

/// Anything the scanner can read: seekable bytes of a known length.
pub trait Blob: Read + Seek {}
impl<T: Read + Seek> Blob for T {}

/// Scans a blob with the default limits.
pub fn scan(blob: &mut dyn Blob, len: u64, path_hint: &str) -> Report {
    scan_with(blob, len, path_hint, &Limits::default())
}

/// Scans a blob. Never panics on hostile input: failures become findings.
pub fn scan_with(blob: &mut dyn Blob, len: u64, path_hint: &str, limits: &Limits) -> Report {
    let mut ctx = Ctx::new(limits);
    let format = ctx.scan_blob(blob, len, path_hint);
    ctx.into_report(format)
}

/// Scans in-memory bytes (convenience for tests and small members).
pub fn scan_bytes(bytes: &[u8], path_hint: &str) -> Report {
    scan(&mut io::Cursor::new(bytes), bytes.len() as u64, path_hint)
}

/// Scan state shared by all format scanners: limits, findings, where we are.
pub(crate) struct Ctx<'a> {
    pub limits: &'a Limits,
    findings: Vec<Finding>,
    /// Member path of the blob being scanned inside its containers (`a.zip!inner/data.pkl`).
    prefix: String,
    pub depth: usize,
    pub inflated: u64,
    /// PyTorch storages referenced by persistent ids in the pickles scanned so far:
    /// (key, storage type, element count).
    pub storage_refs: Vec<(String, String, u64)>,
}

impl<'a> Ctx<'a> {
    fn new(limits: &'a Limits) -> Self {
        Self {
            limits,
            findings: Vec::new(),
            prefix: String::new(),
            depth: 0,
            inflated: 0,
            storage_refs: Vec::new(),
        }
    }

    /// Records a finding at `location` inside the current member.
    pub fn add(
        &mut self,
        rule: &'static str,
        severity: Verdict,
        location: impl AsRef<str>,
        message: impl Into<String>,
        evidence: Option<String>,
    ) {
        let location = match (self.prefix.is_empty(), location.as_ref().is_empty()) {
            (true, _) => location.as_ref().to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{} {}", self.prefix, location.as_ref()),
        };
        // A hostile file could produce millions of identical findings: keep the report small.
        if self.findings.len() >= 1000 {
            return;
        }
        if self
            .findings
            .iter()
            .any(|f| f.rule == rule && f.location == location && f.evidence == evidence)
        {
            return;
        }
        self.findings.push(Finding {
            rule,
            severity,
            location,
            message: message.into(),
            evidence,
        });
    }

    #[cfg(test)]
    pub fn new_for_tests(limits: &'a Limits) -> Self {
        Self::new(limits)
    }

    pub fn findings_len(&self) -> usize {
        self.findings.len()
    }

    /// Forgets findings recorded after `len` (a speculative parse that turned out not to apply).
    pub fn truncate_findings(&mut self, len: usize) {
        self.findings.truncate(len);
    }

    /// The worst severity among findings recorded after `len`.
    pub fn worst_since(&self, len: usize) -> Verdict {
        self.findings[len.min(self.findings.len())..]
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Verdict::Clean)
    }

    pub fn worst(&self) -> Verdict {
        self.findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Verdict::Clean)
    }

    fn into_report(self, format: String) -> Report {
        let verdict = self.worst();
        Report {
            format,
            verdict,
            findings: self.findings,
        }
    }

    /// Scans a member of a container under `name`, one level deeper.
    pub fn scan_member(&mut self, blob: &mut dyn Blob, len: u64, name: &str) -> String {
        if self.depth >= self.limits.max_depth {
            self.add(
                "archive-too-deep",
                Verdict::Suspicious,
                name,
                format!(
                    "containers are nested more than {} deep; the innermost was not inspected",
                    self.limits.max_depth
                ),
                None,
            );
            return "unscanned".into();
        }
        let nested = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}!{name}", self.prefix)
        };
        let saved = std::mem::replace(&mut self.prefix, nested);
        self.depth += 1;
        let format = self.scan_blob(blob, len, name);
        self.depth -= 1;
        self.prefix = saved;
        format
    }

    /// Recognises the format by content and runs its checks. Returns the format name.
    fn scan_blob(&mut self, blob: &mut dyn Blob, len: u64, path: &str) -> String {
        let mut head = [0u8; 512];
        let got = match read_head(blob, &mut head) {
            Ok(n) => n,
            Err(e) => {
                self.add(
                    "io-error",
                    Verdict::Error,
                    "",
                    format!("could not read the file: {e}"),
                    None,
                );
                return "unknown".into();
            }
        };
        let head = &head[..got];
        let format = formats::detect(head, len, path);
        formats::check_extension(self, format, path);
        match formats::run(self, format, blob, len, path) {
            Ok(name) => name.to_string(),
            Err(e) => {
                self.add(
                    "io-error",
                    Verdict::Error,
                    "",
                    format!("could not read the file: {e}"),
                    None,
                );
                format.name().to_string()
            }
        }
    }
}

fn read_head(blob: &mut dyn Blob, buf: &mut [u8]) -> io::Result<usize> {
    blob.seek(SeekFrom::Start(0))?;
    let mut filled = 0;
    while filled < buf.len() {
        match blob.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    blob.seek(SeekFrom::Start(0))?;
    Ok(filled)
}

/// A window `[start, start + len)` of another blob, itself a blob.
pub(crate) struct Section<'b> {
    inner: &'b mut dyn Blob,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'b> Section<'b> {
    pub fn new(inner: &'b mut dyn Blob, start: u64, len: u64) -> Self {
        Self {
            inner,
            start,
            len,
            pos: 0,
        }
    }
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.len.saturating_sub(self.pos);
        if remaining == 0 {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(remaining) as usize;
        self.inner.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.inner.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Section<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        self.pos = target;
        Ok(target)
    }
}

/// Reads exactly `len` bytes at `offset`, refusing lengths beyond `cap` or the blob.
pub(crate) fn read_at(
    blob: &mut dyn Blob,
    offset: u64,
    len: u64,
    blob_len: u64,
    cap: u64,
) -> io::Result<Vec<u8>> {
    if len > cap || offset.checked_add(len).is_none_or(|end| end > blob_len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "length beyond the file or the limit",
        ));
    }
    blob.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len as usize);
    blob.take(len).read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file ended early",
        ));
    }
    Ok(buf)
}
