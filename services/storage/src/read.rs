//! Streaming reads of stored blobs, with a fast path for the local filesystem.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};

use crate::{Backend, BlobStore, Sha256Digest, StorageError};

/// A stream of a blob's bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// Read size of the local fast path: large reads keep the syscall and wake-up cost per byte low.
const LOCAL_CHUNK: usize = 1024 * 1024;
/// Chunks buffered ahead of a slow client; bounds memory per download to a few MiB.
const LOCAL_CHUNKS_AHEAD: usize = 2;

pub(crate) async fn read_range(
    store: &BlobStore,
    digest: &Sha256Digest,
    range: Range<u64>,
) -> Result<ByteStream, StorageError> {
    read_object(store, &store.blob_key(digest), range, || {
        StorageError::NotFound(*digest)
    })
    .await
}

/// Streams `range` of the object at `key`; `missing` is the error when there is none.
pub(crate) async fn read_object(
    store: &BlobStore,
    key: &Path,
    range: Range<u64>,
    missing: impl FnOnce() -> StorageError,
) -> Result<ByteStream, StorageError> {
    match &store.backend {
        Backend::Local { root } => {
            // object_store's local reader hands out 8 KiB chunks, one blocking task each, which
            // caps a download far below disk speed: read on one blocking thread instead.
            let path = root.join(key.as_ref());
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
                Err(e) => return Err(e.into()),
            };
            Ok(local_stream(file, range))
        }
        Backend::S3 { .. } => {
            let options = GetOptions {
                range: Some(GetRange::Bounded(range)),
                ..Default::default()
            };
            match store.store.get_opts(key, options).await {
                Ok(result) => Ok(result.into_stream().map_err(StorageError::from).boxed()),
                Err(object_store::Error::NotFound { .. }) => Err(missing()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn local_stream(mut file: std::fs::File, range: Range<u64>) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, StorageError>>(LOCAL_CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(SeekFrom::Start(range.start)) {
            let _ = tx.blocking_send(Err(e.into()));
            return;
        }
        let mut remaining = range.end - range.start;
        while remaining > 0 {
            let want = remaining.min(LOCAL_CHUNK as u64);
            // read_to_end fills spare capacity without zeroing it first.
            let mut buf = Vec::with_capacity(want as usize);
            let chunk = match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(0) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob is shorter than recorded",
                )
                .into()),
                Ok(n) => {
                    remaining -= n as u64;
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(e.into()),
            };
            let failed = chunk.is_err();
            // A closed channel means the client went away: stop reading.
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, StorageError>>,
) -> ByteStream {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
