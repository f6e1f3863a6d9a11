//! Streaming uploads: bytes go to a staging object while their sha256 is computed in the same
//! pass; the finished object is promoted to its content address only when it matches what the
//! client declared.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::{BlobStore, Sha256Digest, StorageError};

/// Size of one multipart part (S3 needs at least 5 MiB per part).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight per upload; with [`PART_SIZE`] this bounds an upload's buffers to ~40 MiB.
const PARTS_IN_FLIGHT: usize = 4;

/// What the client promised about the bytes it is sending, and the hub's limit.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub sha256: Option<Sha256Digest>,
    pub size: Option<u64>,
    /// Largest accepted blob, in bytes.
    pub max_size: u64,
}

impl Expected {
    /// The size after `more` bytes on top of `size`, if that stays within the limit and the
    /// declared size.
    pub(crate) fn admit(&self, size: u64, more: usize) -> Result<u64, UploadError> {
        let size = size + more as u64;
        if size > self.max_size {
            return Err(UploadError::TooLarge {
                limit: self.max_size,
            });
        }
        if let Some(expected) = self.size.filter(|&expected| size > expected) {
            return Err(UploadError::SizeMismatch {
                expected,
                actual: size,
            });
        }
        Ok(size)
    }

    /// Whether the whole of what arrived is what was declared.
    pub(crate) fn check(&self, size: u64, sha256: Sha256Digest) -> Result<(), UploadError> {
        if let Some(expected) = self.size.filter(|&e| e != size) {
            return Err(UploadError::SizeMismatch {
                expected,
                actual: size,
            });
        }
        if let Some(expected) = self.sha256.filter(|&e| e != sha256) {
            return Err(UploadError::DigestMismatch {
                expected,
                actual: sha256,
            });
        }
        Ok(())
    }
}

/// A blob that is durably stored at its content address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBlob {
    pub sha256: Sha256Digest,
    pub size: u64,
    /// False when the store already held these bytes and nothing new was written.
    pub newly_stored: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the declared size was {expected} bytes but {actual} bytes were received")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("the declared sha256 was {expected} but the received bytes hash to {actual}")]
    DigestMismatch {
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<object_store::Error> for UploadError {
    fn from(e: object_store::Error) -> Self {
        Self::Storage(e.into())
    }
}

/// One upload in progress. Feed it with [`Upload::write`], then [`Upload::finish`] it; dropping it
/// unfinished (a client that went away) aborts it and removes the staging object.
pub struct Upload {
    store: BlobStore,
    expected: Expected,
    hasher: BackgroundHasher,
    size: u64,
    /// Where the bytes go; `None` when the declared blob is already stored and the upload only
    /// has to prove, by hashing, that the client really holds those bytes.
    sink: Option<(Path, WriteMultipart)>,
}

impl Upload {
    pub(crate) async fn begin(store: BlobStore, expected: Expected) -> Result<Self, StorageError> {
        let already_stored = match expected.sha256 {
            Some(digest) => store.blob_size(&digest).await?.is_some(),
            None => false,
        };
        let sink = if already_stored {
            None
        } else {
            let key = store.staging_key(&staging_name());
            let upload = store.store.put_multipart(&key).await?;
            Some((key, WriteMultipart::new_with_chunk_size(upload, PART_SIZE)))
        };
        Ok(Self {
            hasher: BackgroundHasher::start(&store),
            store,
            expected,
            size: 0,
            sink,
        })
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.size
    }

    /// Appends a chunk, waiting while too many parts are in flight (back-pressure to the client).
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), UploadError> {
        self.size = self.expected.admit(self.size, chunk.len())?;
        self.hasher.update(chunk.clone()).await?;
        if let Some((_, writer)) = &mut self.sink {
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            writer.put(chunk);
        }
        Ok(())
    }

    /// Completes the upload: checks the declared size and digest, then makes the blob durable at
    /// its content address (or discards the copy when the store already holds the same bytes).
    pub async fn finish(mut self) -> Result<StoredBlob, UploadError> {
        let actual = self.hasher.finish().await?;
        self.expected.check(self.size, actual)?;
        let final_key = self.store.blob_key(&actual);
        let Some((staging_key, writer)) = self.sink.take() else {
            // Hash-only upload: the blob must still be there (the garbage collector's grace
            // period covers uploads in progress, this is the last line of defence).
            return match self.store.blob_size(&actual).await? {
                Some(_) => Ok(StoredBlob {
                    sha256: actual,
                    size: self.size,
                    newly_stored: false,
                }),
                None => Err(StorageError::NotFound(actual).into()),
            };
        };
        writer.finish().await?;
        let newly_stored = if self.store.blob_size(&actual).await?.is_some() {
            self.store.store.delete(&staging_key).await?;
            false
        } else {
            // Same digest means same bytes, so a concurrent promotion of the same blob is harmless.
            self.store.store.rename(&staging_key, &final_key).await?;
            true
        };
        Ok(StoredBlob {
            sha256: actual,
            size: self.size,
            newly_stored,
        })
    }
}

/// SHA-256 in a task of its own: the task that receives the bytes hands each chunk over and
/// goes on receiving, so hashing and receiving can use two cores. A bounded channel keeps
/// at most [`CHUNKS_QUEUED`] chunks waiting (they are shared with the writer, not copied).
pub(crate) struct BackgroundHasher {
    chunks: Option<tokio::sync::mpsc::Sender<Bytes>>,
    digest: Option<tokio::task::JoinHandle<Sha256Digest>>,
}

const CHUNKS_QUEUED: usize = 64;

impl BackgroundHasher {
    pub(crate) fn start(store: &BlobStore) -> Self {
        let (chunks, mut received) = tokio::sync::mpsc::channel::<Bytes>(CHUNKS_QUEUED);
        // A task, not a blocking thread: an idle upload (a slow client) then holds no thread,
        // and each chunk is hashed in well under a millisecond.
        let hashing = async move {
            let mut hasher = Sha256::new();
            while let Some(chunk) = received.recv().await {
                hasher.update(&chunk);
            }
            Sha256Digest::from_bytes(hasher.finalize().into())
        };
        let digest = match &store.background {
            Some(runtime) => runtime.spawn(hashing),
            None => tokio::spawn(hashing),
        };
        Self {
            chunks: Some(chunks),
            digest: Some(digest),
        }
    }

    pub(crate) async fn update(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        let sent = match &self.chunks {
            Some(chunks) => chunks.send(chunk).await.is_ok(),
            None => false,
        };
        sent.then_some(()).ok_or_else(hasher_gone)
    }

    pub(crate) async fn finish(&mut self) -> Result<Sha256Digest, StorageError> {
        self.chunks = None;
        match self.digest.take() {
            Some(digest) => digest.await.map_err(|_| hasher_gone()),
            None => Err(hasher_gone()),
        }
    }
}

fn hasher_gone() -> StorageError {
    StorageError::Io(std::io::Error::other("the hashing task stopped"))
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some((key, writer)) = self.sink.take() {
            tracing::debug!(staging.key = %key, "aborting unfinished upload");
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = writer.abort().await {
                        tracing::warn!(error = %e, staging.key = %key, "could not abort upload; the garbage collector will remove it");
                    }
                });
            }
        }
    }
}

/// A unique staging object name; the timestamp makes leftovers easy to judge by eye.
pub(crate) fn staging_name() -> String {
    let random: u64 = rand::rng().random();
    format!(
        "{}-{random:016x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S")
    )
}
