//! Files stored as Xet reconstructions: the bytes live once, as compressed chunks inside xorbs
//! (`xorbs/default/<hash>`), and a file is the ordered list of chunks that rebuild it (its
//! [`Recipe`]). Every reader of a blob (downloads, ranges, the scanner, the verifier) goes
//! through [`BlobStore::read`] or [`BlobStore::open_blocking`], which fall back to the recipe
//! when no plain object holds the digest: one way to read a file, whichever way it arrived.
//!
//! Reads fetch runs of consecutive frames of one xorb with one ranged GET of at most
//! [`WINDOW_BYTES`], decode them and hand them on, so memory stays bounded by a window whatever
//! the file's size.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use kaiyuan_xet::MerkleHash;
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};

use crate::read::ByteStream;
use crate::{BlobStore, Sha256Digest, StorageError};

/// Largest ranged GET of one read step (compressed bytes).
const WINDOW_BYTES: u64 = 8 * 1024 * 1024;
/// Decoded windows buffered ahead of a slow reader.
const WINDOWS_AHEAD: usize = 2;

/// One chunk of a file: where its frame (header and payload) lies in which xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipeChunk {
    pub xorb: MerkleHash,
    pub offset: u64,
    pub frame_len: u32,
    pub unpacked_len: u32,
}

/// The chunks that rebuild a file, in order, with each chunk's start in the file.
#[derive(Debug, Clone)]
pub struct Recipe {
    chunks: Vec<RecipeChunk>,
    starts: Vec<u64>,
    size: u64,
}

impl Recipe {
    pub fn new(chunks: Vec<RecipeChunk>) -> Self {
        let mut starts = Vec::with_capacity(chunks.len());
        let mut size = 0u64;
        for chunk in &chunks {
            starts.push(size);
            size += u64::from(chunk.unpacked_len);
        }
        Self {
            chunks,
            starts,
            size,
        }
    }

    /// The file's length.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chunk holding byte `pos` (`pos < size`).
    fn chunk_at(&self, pos: u64) -> usize {
        self.starts.partition_point(|&start| start <= pos) - 1
    }
}

/// Where the recipes live (the hub keeps them in PostgreSQL).
#[async_trait::async_trait]
pub trait Recipes: Send + Sync + std::fmt::Debug {
    /// The recipe of the file whose sha256 is `digest`, if it is stored as a reconstruction.
    async fn recipe(&self, digest: &Sha256Digest) -> Result<Option<Arc<Recipe>>, StorageError>;
}

impl BlobStore {
    /// The same store, reading blobs that have no plain object through `recipes`.
    pub fn with_recipes(mut self, recipes: Arc<dyn Recipes>) -> Self {
        self.recipes = Some(recipes);
        self
    }

    pub(crate) async fn recipe_for(
        &self,
        digest: &Sha256Digest,
    ) -> Result<Option<Arc<Recipe>>, StorageError> {
        match &self.recipes {
            Some(recipes) => recipes.recipe(digest).await,
            None => Ok(None),
        }
    }

    fn xorb_key(&self, hash: &MerkleHash) -> Path {
        self.key(&format!("xorbs/default/{hash}"))
    }

    /// Size of a stored xorb, or `None` when the store does not hold it.
    pub async fn xorb_size(&self, hash: &MerkleHash) -> Result<Option<u64>, StorageError> {
        match self.store.head(&self.xorb_key(hash)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams `range` of a stored xorb's serialized bytes (what a Xet client fetches).
    pub async fn read_xorb(
        &self,
        hash: &MerkleHash,
        range: Range<u64>,
    ) -> Result<ByteStream, StorageError> {
        crate::read::read_object(self, &self.xorb_key(hash), range, || {
            StorageError::Corrupt(format!("xorb {hash} is not in the store"))
        })
        .await
    }

    /// Deletes a xorb; deleting a missing one is not an error.
    pub async fn delete_xorb(&self, hash: &MerkleHash) -> Result<(), StorageError> {
        match self.store.delete(&self.xorb_key(hash)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts writing a xorb's bytes to a staging object; the caller validates them as they
    /// pass and then [`XorbUpload::commit`]s under the hash it computed.
    pub async fn begin_xorb_upload(&self) -> Result<XorbUpload, StorageError> {
        let key = self.staging_key(&crate::upload::staging_name());
        let upload = self.store.put_multipart(&key).await?;
        Ok(XorbUpload {
            store: self.clone(),
            sink: Some((key, WriteMultipart::new_with_chunk_size(upload, PART_SIZE))),
        })
    }

    /// Streams `range` of a file rebuilt from `recipe`.
    pub fn read_recipe(&self, recipe: Arc<Recipe>, range: Range<u64>) -> ByteStream {
        let (tx, mut rx) = tokio::sync::mpsc::channel(WINDOWS_AHEAD);
        let store = self.clone();
        tokio::spawn(async move {
            let mut pos = range.start;
            while pos < range.end.min(recipe.size) {
                let window = match store.fetch_window(&recipe, pos, range.end).await {
                    Ok(window) => window,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                pos = window.end;
                for piece in window.pieces {
                    // A closed channel means the reader went away: stop fetching.
                    if tx.send(Ok(piece)).await.is_err() {
                        return;
                    }
                }
            }
        });
        use futures_util::StreamExt;
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }

    /// Decodes the frames from the one holding `pos` on, as far as one ranged GET of one xorb
    /// reaches, trimmed to `pos..end`.
    async fn fetch_window(
        &self,
        recipe: &Recipe,
        pos: u64,
        end: u64,
    ) -> Result<Window, StorageError> {
        let first = recipe.chunk_at(pos);
        let head = recipe.chunks[first];
        let mut last = first;
        let mut bytes = u64::from(head.frame_len);
        while let Some(next) = recipe.chunks.get(last + 1) {
            let prev = recipe.chunks[last];
            let contiguous =
                next.xorb == head.xorb && next.offset == prev.offset + u64::from(prev.frame_len);
            if !contiguous
                || bytes + u64::from(next.frame_len) > WINDOW_BYTES
                || recipe.starts[last + 1] >= end
            {
                break;
            }
            bytes += u64::from(next.frame_len);
            last += 1;
        }
        let data = match self
            .store
            .get_range(&self.xorb_key(&head.xorb), head.offset..head.offset + bytes)
            .await
        {
            Ok(data) => data,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::Corrupt(format!(
                    "xorb {} is not in the store",
                    head.xorb
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if data.len() as u64 != bytes {
            return Err(StorageError::Corrupt(format!(
                "xorb {} is shorter than its recorded frames",
                head.xorb
            )));
        }
        let mut pieces = Vec::with_capacity(last - first + 1);
        let mut at = 0usize;
        for index in first..=last {
            let chunk = recipe.chunks[index];
            let frame = data.slice(at..at + chunk.frame_len as usize);
            at += chunk.frame_len as usize;
            let decoded = kaiyuan_xet::xorb::decode_frame(&frame).map_err(|e| {
                StorageError::Corrupt(format!(
                    "xorb {} frame at byte {}: {e}",
                    chunk.xorb, chunk.offset
                ))
            })?;
            if decoded.len() != chunk.unpacked_len as usize {
                return Err(StorageError::Corrupt(format!(
                    "xorb {} frame at byte {} holds {} bytes, its recipe says {}",
                    chunk.xorb,
                    chunk.offset,
                    decoded.len(),
                    chunk.unpacked_len
                )));
            }
            let start = recipe.starts[index];
            let from = pos.saturating_sub(start) as usize;
            let to = (end.min(start + u64::from(chunk.unpacked_len)) - start) as usize;
            if from < to {
                pieces.push(Bytes::from(decoded).slice(from..to));
            }
        }
        let window_end = recipe.starts[last] + u64::from(recipe.chunks[last].unpacked_len);
        Ok(Window {
            pieces,
            end: window_end.min(end),
        })
    }
}

/// Decoded bytes of one window, and the file position after them.
struct Window {
    pieces: Vec<Bytes>,
    end: u64,
}

/// Size of one multipart part of a xorb upload (S3 needs at least 5 MiB per part).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight per xorb upload.
const PARTS_IN_FLIGHT: usize = 2;

/// A xorb being written to staging. Dropping it unfinished aborts it.
pub struct XorbUpload {
    store: BlobStore,
    sink: Option<(Path, WriteMultipart)>,
}

impl XorbUpload {
    /// Appends bytes, waiting while too many parts are in flight.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if let Some((_, writer)) = &mut self.sink {
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            writer.put(chunk);
        }
        Ok(())
    }

    /// Makes the staged bytes the xorb `hash`; false when the store already held it.
    pub async fn commit(self, hash: &MerkleHash) -> Result<bool, StorageError> {
        self.stage().await?.promote(hash).await
    }

    /// Completes the staging object without naming it yet: the caller promotes it once more
    /// than this xorb has been checked, or discards it.
    pub async fn stage(mut self) -> Result<StagedXorb, StorageError> {
        let Some((staging, writer)) = self.sink.take() else {
            return Err(StorageError::Corrupt(
                "the xorb upload was already used".into(),
            ));
        };
        writer.finish().await?;
        Ok(StagedXorb {
            store: self.store.clone(),
            key: Some(staging),
        })
    }
}

/// A complete xorb in staging, not yet under its name. Dropping it removes it.
pub struct StagedXorb {
    store: BlobStore,
    key: Option<Path>,
}

impl StagedXorb {
    /// Moves it to `xorbs/default/{hash}`; false when the store already held that xorb.
    pub async fn promote(mut self, hash: &MerkleHash) -> Result<bool, StorageError> {
        let Some(staging) = self.key.take() else {
            return Ok(false);
        };
        if self.store.xorb_size(hash).await?.is_some() {
            self.store.store.delete(&staging).await?;
            return Ok(false);
        }
        // Same hash, same chunks: a concurrent promotion of the same xorb is harmless.
        self.store
            .store
            .rename(&staging, &self.store.xorb_key(hash))
            .await?;
        Ok(true)
    }
}

impl Drop for StagedXorb {
    fn drop(&mut self) {
        if let Some(key) = self.key.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let store = self.store.store.clone();
            runtime.spawn(async move {
                if let Err(e) = store.delete(&key).await {
                    tracing::warn!(error = %e, staging.key = %key, "could not remove a staged xorb; the garbage collector will");
                }
            });
        }
    }
}

impl Drop for XorbUpload {
    fn drop(&mut self) {
        if let Some((key, writer)) = self.sink.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(e) = writer.abort().await {
                    tracing::warn!(error = %e, staging.key = %key, "could not abort xorb upload; the garbage collector will remove it");
                }
            });
        }
    }
}

/// Blocking `Read + Seek` over a file rebuilt from its recipe, for parsers that jump around.
/// Must be used from a blocking thread (it blocks on the runtime).
pub struct RecipeReader {
    store: BlobStore,
    recipe: Arc<Recipe>,
    runtime: tokio::runtime::Handle,
    pos: u64,
    /// Decoded bytes of the current window and where they start in the file.
    window: Bytes,
    window_start: u64,
}

impl RecipeReader {
    pub(crate) fn new(
        store: BlobStore,
        recipe: Arc<Recipe>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            store,
            recipe,
            runtime,
            pos: 0,
            window: Bytes::new(),
            window_start: 0,
        }
    }
}

impl Read for RecipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.recipe.size || out.is_empty() {
            return Ok(0);
        }
        let in_window = self.pos >= self.window_start
            && self.pos < self.window_start + self.window.len() as u64;
        if !in_window {
            let recipe = self.recipe.clone();
            let window = self
                .runtime
                .block_on(self.store.fetch_window(&recipe, self.pos, recipe.size))
                .map_err(io::Error::other)?;
            let mut joined = Vec::with_capacity(window.pieces.iter().map(Bytes::len).sum());
            for piece in &window.pieces {
                joined.extend_from_slice(piece);
            }
            self.window_start = self.pos;
            self.window = Bytes::from(joined);
            if self.window.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "empty window"));
            }
        }
        let at = (self.pos - self.window_start) as usize;
        let n = out.len().min(self.window.len() - at);
        out[..n].copy_from_slice(&self.window[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RecipeReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.recipe.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}
