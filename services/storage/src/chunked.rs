//! Uploads the store keeps as Xet chunks rather than as one object: the bytes are cut by
//! content (the chunking every Xet client uses), packed into xorbs that stream to staging
//! objects, and hashed with sha256 alongside. Only when the whole file has the declared size and
//! digest are the xorbs moved to their content addresses; the caller then records them and the
//! file's reconstruction. Memory: one chunk being cut plus the parts in flight of the xorb
//! being filled and of the (at most two) being completed.

use std::collections::VecDeque;

use bytes::Bytes;
use kaiyuan_xet::xorb::{MAX_CHUNK_BYTES, ValidXorb, XorbPacker};
use kaiyuan_xet::{Chunker, MerkleHash, file_hash};
use tokio::task::JoinHandle;

use crate::upload::BackgroundHasher;
use crate::xet::StagedXorb;
use crate::{BlobStore, Expected, Sha256Digest, StorageError, UploadError, XorbUpload};

/// Xorbs completing in the background at once (each holds at most its parts in flight).
const XORBS_CLOSING: usize = 2;

/// A file stored as xorbs: each of `xorbs`, in order, holds a consecutive run of its chunks,
/// all of them, so the file's reconstruction is one whole-xorb term per xorb.
#[derive(Debug)]
pub struct ChunkedBlob {
    pub sha256: Sha256Digest,
    pub size: u64,
    /// The Xet file hash, as a client computes it for the same bytes.
    pub file_hash: MerkleHash,
    pub xorbs: Vec<ValidXorb>,
    /// For each of `xorbs`, whether this upload put it in the store (false: it was there).
    pub newly_stored: Vec<bool>,
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

    async fn pack(&mut self, chunk: Bytes) -> Result<(), UploadError> {
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
            self.closing
                .push_back((tokio::spawn(upload.stage()), packer.finish()));
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
        })
    }
}

impl BlobStore {
    /// Starts an upload kept as Xet chunks. See [`ChunkedUpload`].
    pub fn begin_chunked_upload(&self, expected: Expected) -> ChunkedUpload {
        ChunkedUpload::begin(self.clone(), expected)
    }
}
