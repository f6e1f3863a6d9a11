//! The same storage contract, run against the local filesystem and the S3-compatible server.

use bytes::Bytes;
use futures_util::TryStreamExt;
use kaiyuan_storage::{BlobStore, Expected, Sha256Digest, UploadError};
use kaiyuan_tests::{Backend, pseudo_random_bytes, sha256_hex, test_store};

const NO_LIMIT: u64 = u64::MAX;

async fn put(
    store: &BlobStore,
    bytes: &[u8],
    expected: Expected,
) -> Result<kaiyuan_storage::StoredBlob, UploadError> {
    let mut upload = store.begin_upload(expected).await?;
    // Uneven chunks exercise the part buffering.
    for chunk in bytes.chunks(777_777) {
        upload.write(Bytes::copy_from_slice(chunk)).await?;
    }
    upload.finish().await
}

/// Nothing is left in staging (aborted uploads are removed asynchronously: give them a moment).
async fn assert_no_staging_left(store: &BlobStore, why: &str) {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let swept = store
        .collect_staging(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(swept, 0, "{why}");
}

async fn read_all(
    store: &BlobStore,
    digest: &Sha256Digest,
    range: std::ops::Range<u64>,
) -> Vec<u8> {
    let chunks: Vec<Bytes> = store
        .read(digest, range)
        .await
        .expect("read")
        .try_collect()
        .await
        .expect("stream");
    chunks.concat()
}

fn open() -> Expected {
    Expected {
        sha256: None,
        size: None,
        max_size: NO_LIMIT,
    }
}

async fn round_trip_with_ranges_and_dedup(backend: Backend) {
    let (store, _guard) = test_store(backend);
    // Larger than one 8 MiB part so multipart is exercised.
    let bytes = pseudo_random_bytes(9 * 1024 * 1024 + 123, 1);
    let stored = put(&store, &bytes, open()).await.expect("upload");
    assert_eq!(stored.sha256.to_hex(), sha256_hex(&bytes));
    assert_eq!(stored.size, bytes.len() as u64);
    assert!(stored.newly_stored);
    assert_eq!(
        store.blob_size(&stored.sha256).await.unwrap(),
        Some(bytes.len() as u64)
    );
    assert_eq!(
        read_all(&store, &stored.sha256, 0..bytes.len() as u64).await,
        bytes
    );
    assert_eq!(
        read_all(&store, &stored.sha256, 100..5_000_000).await,
        &bytes[100..5_000_000]
    );

    let again = put(&store, &bytes, open()).await.expect("second upload");
    assert_eq!(again.sha256, stored.sha256);
    assert!(!again.newly_stored, "identical bytes are stored once");

    // A declared digest of a stored blob is verified by hashing alone.
    let declared = Expected {
        sha256: Some(stored.sha256),
        size: Some(bytes.len() as u64),
        max_size: NO_LIMIT,
    };
    let third = put(&store, &bytes, declared)
        .await
        .expect("declared upload");
    assert!(!third.newly_stored);
    assert_eq!(
        store
            .collect_staging(std::time::Duration::ZERO)
            .await
            .unwrap(),
        0,
        "no staging leftovers"
    );
}

async fn mismatches_leave_nothing(backend: Backend) {
    let (store, _guard) = test_store(backend);
    let bytes = pseudo_random_bytes(10_000, 2);
    let wrong: Sha256Digest = "00".repeat(32).parse().unwrap();
    let err = put(
        &store,
        &bytes,
        Expected {
            sha256: Some(wrong),
            size: None,
            max_size: NO_LIMIT,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, UploadError::DigestMismatch { .. }), "{err}");
    let actual: Sha256Digest = sha256_hex(&bytes).parse().unwrap();
    assert_eq!(
        store.blob_size(&actual).await.unwrap(),
        None,
        "rejected bytes are not stored"
    );

    let err = put(
        &store,
        &bytes,
        Expected {
            sha256: None,
            size: Some(9_999),
            max_size: NO_LIMIT,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            UploadError::SizeMismatch {
                expected: 9_999,
                actual: 10_000
            }
        ),
        "{err}"
    );
    let err = put(
        &store,
        &bytes,
        Expected {
            sha256: None,
            size: Some(20_000),
            max_size: NO_LIMIT,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            UploadError::SizeMismatch {
                expected: 20_000,
                actual: 10_000
            }
        ),
        "{err}"
    );
    let err = put(
        &store,
        &bytes,
        Expected {
            sha256: None,
            size: None,
            max_size: 9_000,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, UploadError::TooLarge { limit: 9_000 }),
        "{err}"
    );
    assert_eq!(store.blob_size(&actual).await.unwrap(), None);
    assert_no_staging_left(&store, "aborted uploads left no staging object").await;
}

/// A file kept as Xet chunks (a mirror's fetch): cut as the Xet client cuts it, packed into
/// xorbs of at most 64 MiB, readable back through its recipe; bytes off their digest leave no
/// xorb and no staging object behind.
async fn chunked_uploads_keep_only_checked_xorbs(backend: Backend) {
    let (store, _guard) = test_store(backend);
    let bytes = pseudo_random_bytes((70 << 20) + 3, 9);
    let digest: Sha256Digest = sha256_hex(&bytes).parse().unwrap();
    let chunked = |sha256| {
        let store = store.clone();
        let bytes = bytes.clone();
        async move {
            let mut upload = store.begin_chunked_upload(Expected {
                sha256,
                size: Some(bytes.len() as u64),
                max_size: NO_LIMIT,
            });
            for piece in bytes.chunks(777_777) {
                upload.write(Bytes::copy_from_slice(piece)).await?;
            }
            upload.finish().await
        }
    };
    let wrong: Sha256Digest = "00".repeat(32).parse().unwrap();
    let err = chunked(Some(wrong)).await.unwrap_err();
    assert!(matches!(err, UploadError::DigestMismatch { .. }), "{err}");
    assert_no_staging_left(&store, "the refused file's staged xorbs were removed").await;

    let file = chunked(Some(digest)).await.unwrap();
    assert_eq!((file.sha256, file.size), (digest, bytes.len() as u64));
    assert_eq!(
        file.xorbs.len(),
        2,
        "70 MiB make two xorbs of at most 64 MiB"
    );
    assert_eq!(
        file.newly_stored,
        [true, true],
        "the refused upload had put no xorb under its name"
    );
    let leaves: Vec<(kaiyuan_xet::MerkleHash, u64)> = kaiyuan_xet::chunker::chunk_all(&bytes)
        .iter()
        .map(|c| (kaiyuan_xet::chunk_hash(c), c.len() as u64))
        .collect();
    assert_eq!(file.file_hash, kaiyuan_xet::file_hash(&leaves));
    let mut recipe = Vec::new();
    for xorb in &file.xorbs {
        assert!(xorb.stored_len <= kaiyuan_xet::xorb::XORB_PACK_BYTES);
        assert_eq!(
            store.xorb_size(&xorb.hash).await.unwrap(),
            Some(xorb.stored_len)
        );
        recipe.extend(xorb.chunks.iter().map(|c| kaiyuan_storage::RecipeChunk {
            xorb: xorb.hash,
            offset: u64::from(c.offset),
            frame_len: c.frame_len,
            unpacked_len: c.unpacked_len,
        }));
    }
    let recipe = std::sync::Arc::new(kaiyuan_storage::Recipe::new(recipe));
    let back: Vec<Bytes> = store
        .read_recipe(recipe, 0..bytes.len() as u64)
        .try_collect()
        .await
        .unwrap();
    assert!(back.concat() == bytes, "the xorbs rebuild the file");

    // A range of a xorb, as a Xet client fetches it: the frames' bytes, in large pieces (the
    // local store once handed out 8 KiB ones, a blocking task each, which capped every Xet
    // download at a third of the disk's speed).
    let first = &file.xorbs[0];
    let frames = first.chunks[1].offset as u64..first.chunks[40].offset as u64;
    let pieces: Vec<Bytes> = store
        .read_xorb(&first.hash, frames.clone())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let fetched = pieces.concat();
    assert_eq!(fetched.len() as u64, frames.end - frames.start);
    let mut reader = kaiyuan_xet::FrameReader::new();
    reader.feed(&fetched);
    let mut chunk_bytes = Vec::new();
    while let Some(chunk) = reader.next_chunk().unwrap() {
        chunk_bytes.extend_from_slice(&chunk);
    }
    reader.finish().unwrap();
    let from = first.chunks[1].offset as usize - 8; // one frame header before chunk 1
    assert!(chunk_bytes == bytes[from..from + chunk_bytes.len()]);
    if matches!(backend, Backend::Local) {
        assert!(
            pieces.len() <= 4,
            "{} pieces for {} bytes",
            pieces.len(),
            fetched.len()
        );
    }

    // The same chunks handed over already cut (as a mirror reads them from an upstream's CAS)
    // make the same xorbs, which the store already holds.
    let mut again = store.begin_chunked_upload(Expected {
        sha256: Some(digest),
        size: Some(bytes.len() as u64),
        max_size: NO_LIMIT,
    });
    for chunk in kaiyuan_xet::chunker::chunk_all(&bytes) {
        again.write_chunk(Bytes::from(chunk)).await.unwrap();
    }
    let again = again.finish().await.unwrap();
    assert_eq!(again.file_hash, file.file_hash);
    assert_eq!(again.xorbs, file.xorbs);
    assert_eq!(again.newly_stored, [false, false]);

    // The first xorb's chunks read back from the store, the rest written: one term names the
    // stored xorb, and only the second is packed (again, so the store holds it already).
    let mut reusing = store.begin_chunked_upload(Expected {
        sha256: Some(digest),
        size: Some(bytes.len() as u64),
        max_size: NO_LIMIT,
    });
    let mut reader = kaiyuan_xet::FrameReader::new();
    reader.feed(&xorb_bytes(&store, &first.hash, 0..first.stored_len).await);
    for entry in &first.chunks {
        let chunk = reader
            .next_chunk()
            .unwrap()
            .expect("a chunk per table entry");
        reusing.write_stored_chunk(entry.hash, chunk).await.unwrap();
    }
    let whole_first = kaiyuan_xet::shard::Term {
        xorb: first.hash,
        unpacked_len: first.unpacked_len as u32,
        chunk_start: 0,
        chunk_end: first.chunks.len() as u32,
    };
    reusing.stored_term(whole_first.clone()).unwrap();
    let packed_from = first.unpacked_len as usize;
    for chunk in kaiyuan_xet::chunker::chunk_all(&bytes[packed_from..]) {
        reusing.write_chunk(Bytes::from(chunk)).await.unwrap();
    }
    let reused = reusing.finish().await.unwrap();
    assert_eq!(reused.file_hash, file.file_hash);
    assert_eq!(reused.xorbs, file.xorbs[1..]);
    assert_eq!(reused.newly_stored, [false]);
    assert_eq!(reused.terms.len(), 2);
    assert_eq!(reused.terms[0], whole_first);
    assert_eq!(reused.terms[1].xorb, file.xorbs[1].hash);
    // A term must account for exactly the stored chunks written before it.
    let mut mismatched = store.begin_chunked_upload(open());
    let entry = &first.chunks[0];
    let chunk = reader_chunk(&store, &first.hash, entry).await;
    mismatched
        .write_stored_chunk(entry.hash, chunk.clone())
        .await
        .unwrap();
    let two = kaiyuan_xet::shard::Term {
        xorb: first.hash,
        unpacked_len: chunk.len() as u32,
        chunk_start: 0,
        chunk_end: 2,
    };
    let err = mismatched.stored_term(two).unwrap_err();
    assert!(err.to_string().contains("for 1 chunks and"), "{err}");
    let mut unnamed = store.begin_chunked_upload(open());
    unnamed
        .write_stored_chunk(entry.hash, chunk.clone())
        .await
        .unwrap();
    let err = unnamed.write_chunk(chunk).await.unwrap_err();
    assert!(err.to_string().contains("without their term"), "{err}");

    let mut oversized = store.begin_chunked_upload(Expected {
        sha256: None,
        size: None,
        max_size: NO_LIMIT,
    });
    let err = oversized
        .write_chunk(Bytes::from(vec![0u8; (128 << 10) + 1]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("chunks hold 1 to"), "{err}");
}

/// One chunk of a stored xorb, read back through its frame.
async fn reader_chunk(
    store: &BlobStore,
    xorb: &kaiyuan_xet::MerkleHash,
    entry: &kaiyuan_xet::xorb::ChunkEntry,
) -> Bytes {
    let range = u64::from(entry.offset)..u64::from(entry.offset) + u64::from(entry.frame_len);
    let mut reader = kaiyuan_xet::FrameReader::new();
    reader.feed(&xorb_bytes(store, xorb, range).await);
    reader.next_chunk().unwrap().expect("one chunk")
}

/// Bytes `range` of a stored xorb, as the store reads them back.
async fn xorb_bytes(
    store: &BlobStore,
    xorb: &kaiyuan_xet::MerkleHash,
    range: std::ops::Range<u64>,
) -> Vec<u8> {
    let pieces: Vec<Bytes> = store
        .read_xorb(xorb, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    pieces.concat()
}

#[tokio::test]
async fn local_chunked_uploads_keep_only_checked_xorbs() {
    chunked_uploads_keep_only_checked_xorbs(Backend::Local).await;
}

#[tokio::test]
async fn s3_chunked_uploads_keep_only_checked_xorbs() {
    chunked_uploads_keep_only_checked_xorbs(Backend::S3).await;
}

async fn missing_blobs_are_reported(backend: Backend) {
    let (store, _guard) = test_store(backend);
    let absent: Sha256Digest = "ab".repeat(32).parse().unwrap();
    assert_eq!(store.blob_size(&absent).await.unwrap(), None);
    assert!(matches!(
        store.read(&absent, 0..1).await,
        Err(kaiyuan_storage::StorageError::NotFound(_))
    ));
    store
        .delete_blob(&absent)
        .await
        .expect("deleting a missing blob is fine");
    store.check_reachable().await.expect("reachable");
}

#[tokio::test]
async fn local_round_trip_with_ranges_and_dedup() {
    round_trip_with_ranges_and_dedup(Backend::Local).await;
}

#[tokio::test]
async fn s3_round_trip_with_ranges_and_dedup() {
    round_trip_with_ranges_and_dedup(Backend::S3).await;
}

#[tokio::test]
async fn local_mismatches_leave_nothing() {
    mismatches_leave_nothing(Backend::Local).await;
}

#[tokio::test]
async fn s3_mismatches_leave_nothing() {
    mismatches_leave_nothing(Backend::S3).await;
}

#[tokio::test]
async fn local_missing_blobs_are_reported() {
    missing_blobs_are_reported(Backend::Local).await;
}

#[tokio::test]
async fn s3_missing_blobs_are_reported() {
    missing_blobs_are_reported(Backend::S3).await;
}

#[tokio::test]
async fn s3_presigns_urls_that_serve_the_bytes_and_local_does_not() {
    let (s3, _) = test_store(Backend::S3);
    let bytes = pseudo_random_bytes(4096, 3);
    let stored = put(&s3, &bytes, open()).await.unwrap();
    let url = s3
        .presigned_get(&stored.sha256, std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .expect("S3 presigns");
    let fetched = reqwest::get(url).await.unwrap();
    assert!(fetched.status().is_success());
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let (local, _guard) = test_store(Backend::Local);
    let stored = put(&local, &bytes, open()).await.unwrap();
    assert!(
        local
            .presigned_get(&stored.sha256, std::time::Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn crashed_local_uploads_are_swept_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::local(dir.path()).unwrap();
    let mut upload = store.begin_upload(open()).await.unwrap();
    upload
        .write(Bytes::from(pseudo_random_bytes(9 * 1024 * 1024, 4)))
        .await
        .unwrap();
    // Simulate a crash: the upload is never finished, aborted or dropped.
    std::mem::forget(upload);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let leftovers = || {
        std::fs::read_dir(dir.path().join("staging"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert!(leftovers() > 0, "the crashed upload left a partial file");
    assert_eq!(
        store
            .collect_staging(std::time::Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "young leftovers are kept"
    );
    assert!(
        store
            .collect_staging(std::time::Duration::ZERO)
            .await
            .unwrap()
            > 0
    );
    assert_eq!(leftovers(), 0);
}
