//! Parts of a multipart upload that a client sends separately (the LFS multipart transfer of
//! Hugging Face clients). Each part is a staging object, so the garbage collector removes the
//! parts of uploads that are never completed; completion streams them, in order, into a normal
//! [`crate::Upload`], which checks the digest of the whole.

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::read::ByteStream;
use crate::{BlobStore, Sha256Digest, StorageError};

/// Size of the chunks a part is written in.
const CHUNK: usize = 8 * 1024 * 1024;

impl BlobStore {
    fn part_key(&self, upload: &str, number: u32) -> Path {
        self.key(&format!("staging/parts/{upload}/{number:05}"))
    }

    /// Stores part `number` of upload `upload` (a name made of safe characters), at most
    /// `max_size` bytes; returns its sha256 and size.
    pub async fn put_part<S, E>(
        &self,
        upload: &str,
        number: u32,
        max_size: u64,
        mut body: S,
    ) -> Result<(Sha256Digest, u64), StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let key = self.part_key(upload, number);
        let mut writer =
            WriteMultipart::new_with_chunk_size(self.store.put_multipart(&key).await?, CHUNK);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StorageError::Io(std::io::Error::other(format!(
                        "the part ended early: {e}"
                    ))));
                }
            };
            size += chunk.len() as u64;
            if size > max_size {
                let _ = writer.abort().await;
                return Err(StorageError::Io(std::io::Error::other(format!(
                    "the part is larger than {max_size} bytes"
                ))));
            }
            hasher.update(&chunk);
            writer.wait_for_capacity(2).await?;
            writer.put(chunk);
        }
        writer.finish().await?;
        Ok((Sha256Digest::from_bytes(hasher.finalize().into()), size))
    }

    /// The bytes of a stored part.
    pub async fn read_part(&self, upload: &str, number: u32) -> Result<ByteStream, StorageError> {
        let result = self.store.get(&self.part_key(upload, number)).await?;
        Ok(result.into_stream().map_err(StorageError::from).boxed())
    }

    /// Size of a stored part, if it exists.
    pub async fn part_size(&self, upload: &str, number: u32) -> Result<Option<u64>, StorageError> {
        match self.store.head(&self.part_key(upload, number)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete_part(&self, upload: &str, number: u32) -> Result<(), StorageError> {
        match self.store.delete(&self.part_key(upload, number)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
