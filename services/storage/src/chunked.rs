//! Uploads the store keeps as Xet chunks rather than as one object: the bytes are cut by
//! content (the chunking every Xet client uses), packed into xorbs that stream to staging
//! objects, and hashed with sha256 alongside. Only when the whole file has the declared size and
//! digest are the xorbs moved to their content addresses; the caller then records them and the
//! file's reconstruction. Memory: one chunk being cut plus the parts in flight of the xorb
//! being filled and of the (at most two) being completed.

use std::collections::VecDeque;

use bytes::Bytes;
use kaiyuan_xet::shard::Term;
use kaiyuan_xet::xorb::{MAX_CHUNK_BYTES, ValidXorb, XorbPacker};
use kaiyuan_xet::{Chunker, MerkleHash, file_hash};
use tokio::task::JoinHandle;

use crate::upload::BackgroundHasher;
use crate::xet::StagedXorb;
use crate::{BlobStore, Expected, Sha256Digest, StorageError, UploadError, XorbUpload};

/// Xorbs completing in the background at once (each holds at most its parts in flight).
const XORBS_CLOSING: usize = 2;

/// A file stored as xorbs: those this upload packed (`xorbs`, each whole in the file's
/// reconstruction) and, where [`ChunkedUpload::write_stored_chunk`] was used, ranges of xorbs the
/// store held already.
#[derive(Debug)]
pub struct ChunkedBlob {
    pub sha256: Sha256Digest,
    pub size: u64,
    /// The Xet file hash, as a client computes it for the same bytes.
    pub file_hash: MerkleHash,
    pub xorbs: Vec<ValidXorb>,
    /// For each of `xorbs`, whether this upload put it in the store (false: it was there).
    pub newly_stored: Vec<bool>,
    /// The file's reconstruction, in order.
    pub terms: Vec<Term>,
}

/// One chunked upload in progress: [`ChunkedUpload::write`] then [`ChunkedUpload::finish`].
/// Dropping it unfinished removes what it staged.
pub struct ChunkedUpload {
    store: BlobStore,
    expected: Expected,
    hasher: BackgroundHasher,
    size: u64,
    chunker: Chunker,
    open: Option<(XorbUpload, XorbPacker)>,
    /// Full xorbs whose last parts are being written (and, on a local disk, synced), oldest
    /// first: the next xorb fills meanwhile.
    closing: VecDeque<(JoinHandle<Result<StagedXorb, StorageError>>, ValidXorb)>,
    staged: Vec<(StagedXorb, ValidXorb)>,
    leaves: Vec<(MerkleHash, u64)>,
    terms: Vec<Term>,
    /// Chunks and bytes written with [`ChunkedUpload::write_stored_chunk`] since the last term.
    stored_run: (u32, u64),
}

impl ChunkedUpload {
    pub(crate) fn begin(store: BlobStore, expected: Expected) -> Self {
        Self {
            hasher: BackgroundHasher::start(&store),
            store,
            expected,
            size: 0,
            chunker: Chunker::new(),
            open: None,
            closing: VecDeque::new(),
            staged: Vec::new(),
            leaves: Vec::new(),
            terms: Vec::new(),
            stored_run: (0, 0),
        }
    }

    /// Appends bytes, waiting while the store is behind.
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), UploadError> {
        self.size = self.expected.admit(self.size, bytes.len())?;
        self.hasher.update(bytes.clone()).await?;
        for chunk in self.chunker.feed(&bytes) {
            self.pack(Bytes::from(chunk)).await?;
        }
        Ok(())
    }

    /// Appends one chunk already cut by a Xet client (an upstream hub's CAS serves a file's
    /// chunks as they were cut), so the bytes are not chunked again. Not to be mixed with
    /// [`ChunkedUpload::write`] in one upload.
    pub async fn write_chunk(&mut self, chunk: Bytes) -> Result<(), UploadError> {
        if chunk.is_empty() || chunk.len() > MAX_CHUNK_BYTES as usize {
            return Err(StorageError::Corrupt(format!(
                "a chunk of {} bytes: chunks hold 1 to {MAX_CHUNK_BYTES} bytes",
                chunk.len()
            ))
            .into());
        }
        self.size = self.expected.admit(self.size, chunk.len())?;
        self.hasher.update(chunk.clone()).await?;
        self.pack(chunk).await
    }

    /// Ends the xorb being filled, so that the next chunk starts a new one. A mirror keeps each
    /// of an upstream's terms in xorbs of its own: a term that covered a whole upstream xorb is
    /// then stored under that xorb's hash, and later files that name it need not fetch it.
    pub async fn end_xorb(&mut self) -> Result<(), UploadError> {
        self.close_xorb().await
    }

    /// Appends one chunk of a xorb the store holds already, read back by the caller: hashed like
    /// written bytes, not stored again. [`ChunkedUpload::stored_term`] then names the range.
    pub async fn write_stored_chunk(
        &mut self,
        hash: MerkleHash,
        chunk: Bytes,
    ) -> Result<(), UploadError> {
        self.close_xorb().await?;
        self.size = self.expected.admit(self.size, chunk.len())?;
        self.leaves.push((hash, chunk.len() as u64));
        self.stored_run.0 += 1;
        self.stored_run.1 += chunk.len() as u64;
        self.hasher.update(chunk).await?;
        Ok(())
    }

    /// Records the range of a stored xorb whose chunks were just written with
    /// [`ChunkedUpload::write_stored_chunk`]; it must account for exactly those chunks.
    pub fn stored_term(&mut self, term: Term) -> Result<(), UploadError> {
        let (chunks, bytes) = std::mem::take(&mut self.stored_run);
        if term.chunk_end.checked_sub(term.chunk_start) != Some(chunks)
            || u64::from(term.unpacked_len) != bytes
        {
            return Err(StorageError::Corrupt(format!(
                "a term of {} chunks and {} bytes of xorb {} for {chunks} chunks and {bytes} bytes written",
                term.chunk_end.saturating_sub(term.chunk_start),
                term.unpacked_len,
                term.xorb
            ))
            .into());
        }
        self.terms.push(term);
        Ok(())
    }

    async fn pack(&mut self, chunk: Bytes) -> Result<(), UploadError> {
        if self.stored_run.0 > 0 {
            return Err(StorageError::Corrupt(
                "stored chunks were written without their term".into(),
            )
            .into());
        }
        if self
            .open
            .as_ref()
            .is_some_and(|(_, packer)| !packer.has_room(chunk.len()))
        {
            self.close_xorb().await?;
        }
        if self.open.is_none() {
            self.open = Some((self.store.begin_xorb_upload().await?, XorbPacker::new()));
        }
        let (upload, packer) = self.open.as_mut().unwrap_or_else(|| unreachable!());
        let (header, entry) = packer.push(&chunk);
        self.leaves
            .push((entry.hash, u64::from(entry.unpacked_len)));
        upload.write(Bytes::copy_from_slice(&header)).await?;
        upload.write(chunk).await?;
        Ok(())
    }

    /// Completes the open xorb in the background. Waiting for it here would stall the stream
    /// for each xorb's write to disk (a second per GiB on this project's machine, as long as the
    /// hashing); at most [`XORBS_CLOSING`] complete at once, which bounds their memory.
    async fn close_xorb(&mut self) -> Result<(), UploadError> {
        if let Some((upload, packer)) = self.open.take() {
            if self.closing.len() >= XORBS_CLOSING {
                self.wait_for_oldest().await?;
            }
            let xorb = packer.finish();
            self.terms.push(Term {
                xorb: xorb.hash,
                unpacked_len: xorb.unpacked_len as u32,
                chunk_start: 0,
                chunk_end: xorb.chunks.len() as u32,
            });
            self.closing.push_back((tokio::spawn(upload.stage()), xorb));
        }
        Ok(())
    }

    async fn wait_for_oldest(&mut self) -> Result<(), UploadError> {
        if let Some((closing, xorb)) = self.closing.pop_front() {
            let staged = closing
                .await
                .map_err(|e| StorageError::Corrupt(format!("a xorb's upload stopped: {e}")))??;
            self.staged.push((staged, xorb));
        }
        Ok(())
    }

    /// Checks the size and digest, then moves the xorbs to their names.
    pub async fn finish(mut self) -> Result<ChunkedBlob, UploadError> {
        let chunker = std::mem::take(&mut self.chunker);
        if let Some(last) = chunker.finish() {
            self.pack(Bytes::from(last)).await?;
        }
        self.close_xorb().await?;
        if self.stored_run.0 > 0 {
            return Err(StorageError::Corrupt(
                "stored chunks were written without their term".into(),
            )
            .into());
        }
        while !self.closing.is_empty() {
            self.wait_for_oldest().await?;
        }
        let actual = self.hasher.finish().await?;
        self.expected.check(self.size, actual)?;
        let mut xorbs = Vec::with_capacity(self.staged.len());
        let mut newly_stored = Vec::with_capacity(self.staged.len());
        for (staged, xorb) in std::mem::take(&mut self.staged) {
            newly_stored.push(staged.promote(&xorb.hash).await?);
            xorbs.push(xorb);
        }
        Ok(ChunkedBlob {
            sha256: actual,
            size: self.size,
            file_hash: file_hash(&self.leaves),
            xorbs,
            newly_stored,
            terms: std::mem::take(&mut self.terms),
        })
    }
}

impl BlobStore {
    /// Starts an upload kept as Xet chunks. See [`ChunkedUpload`].
    pub fn begin_chunked_upload(&self, expected: Expected) -> ChunkedUpload {
        ChunkedUpload::begin(self.clone(), expected)
    }
}
