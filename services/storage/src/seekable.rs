//! Blocking `Read + Seek` access to a stored blob, for parsers that jump around (the scanner).
//! Local files are opened directly; S3 objects are read with ranged GETs through a read-ahead
//! window, so a parser that reads only headers fetches only headers.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// Size of one ranged GET.
const WINDOW: u64 = 1024 * 1024;

/// Anything readable and seekable that can move to a blocking thread.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// Ranged reads of one object; must be used from a blocking thread (it blocks on the runtime).
pub struct RangeReader {
    store: Arc<dyn ObjectStore>,
    key: Path,
    len: u64,
    pos: u64,
    window: Range<u64>,
    buf: Bytes,
    runtime: tokio::runtime::Handle,
}

impl RangeReader {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        key: Path,
        len: u64,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            store,
            key,
            len,
            pos: 0,
            window: 0..0,
            buf: Bytes::new(),
            runtime,
        }
    }
}

impl Read for RangeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || out.is_empty() {
            return Ok(0);
        }
        if !self.window.contains(&self.pos) {
            let end = (self.pos + WINDOW.max(out.len() as u64)).min(self.len);
            let range = self.pos..end;
            let fetched = self
                .runtime
                .block_on(self.store.get_range(&self.key, range.clone()))
                .map_err(io::Error::other)?;
            if fetched.len() as u64 != range.end - range.start {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object shorter than recorded",
                ));
            }
            self.window = range;
            self.buf = fetched;
        }
        let at = (self.pos - self.window.start) as usize;
        let n = out.len().min(self.buf.len() - at);
        out[..n].copy_from_slice(&self.buf[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}
