//! Cross-checks against the reference implementation, `xet-core-structures` 1.8.0.

use std::io::Cursor;

use kaiyuan_xet::*;
use proptest::prelude::*;
use xet_core_structures::merklehash::{self as r, DataHash};
use xet_core_structures::metadata_shard::chunk_verification::range_hash_from_chunks;
use xet_core_structures::metadata_shard::file_structs::{
    FileDataSequenceEntry, FileDataSequenceHeader, FileMetadataExt, FileVerificationEntry,
    MDBFileInfo,
};
use xet_core_structures::metadata_shard::shard_in_memory::MDBInMemoryShard;
use xet_core_structures::metadata_shard::streaming_shard::MDBMinimalShard;
use xet_core_structures::metadata_shard::xorb_structs::{
    MDBXorbInfo, XorbChunkSequenceEntry, XorbChunkSequenceHeader,
};
use xet_core_structures::metadata_shard::{MDBShardInfo, hash_is_global_dedup_eligible};
use xet_core_structures::xorb_object::{
    Chunk, CompressionScheme, RawXorbData, SerializedXorbObject, XorbObject,
};

fn to_ref(h: &MerkleHash) -> DataHash {
    DataHash::from(h.0)
}

fn from_ref(h: &DataHash) -> MerkleHash {
    MerkleHash(<[u8; 32]>::from(*h))
}

fn hashes() -> impl Strategy<Value = Vec<(MerkleHash, u64)>> {
    prop::collection::vec(
        (any::<[u8; 32]>().prop_map(MerkleHash), 0u64..200_000),
        0..200,
    )
}

/// Chunks that compress a little, a lot, or not at all.
fn chunk_data() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 1..3000),
            (1usize..20_000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
            (1usize..40_000).prop_map(|n| (0..n)
                .map(|i| (i as u32).to_le_bytes()[i % 4] / 3)
                .collect()),
        ],
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn hashes_agree(leaves in hashes(), data in prop::collection::vec(any::<u8>(), 0..5000), key in any::<[u8; 32]>()) {
        let rleaves: Vec<(DataHash, u64)> = leaves.iter().map(|(h, n)| (to_ref(h), *n)).collect();
        prop_assert_eq!(xorb_hash(&leaves), from_ref(&r::xorb_hash(&rleaves)));
        prop_assert_eq!(file_hash(&leaves), from_ref(&r::file_hash(&rleaves)));
        prop_assert_eq!(chunk_hash(&data), from_ref(&r::compute_data_hash(&data)));
        let only: Vec<MerkleHash> = leaves.iter().map(|l| l.0).collect();
        let ronly: Vec<DataHash> = only.iter().map(to_ref).collect();
        prop_assert_eq!(verification_hash(&only), from_ref(&range_hash_from_chunks(&ronly)));
        for h in &only {
            prop_assert_eq!(h.keyed(&key), from_ref(&to_ref(h).hmac(DataHash::from(key))));
            prop_assert_eq!(h.to_string(), to_ref(h).hex());
            prop_assert_eq!(format!("{h:?}"), to_ref(h).hex());
            prop_assert_eq!(h.to_string().parse::<MerkleHash>().unwrap(), *h);
            prop_assert_eq!(h.to_string().to_uppercase().parse::<MerkleHash>().unwrap(), *h);
            prop_assert_eq!(from_ref(&DataHash::from_hex(&h.to_string()).unwrap()), *h);
            prop_assert_eq!(h.is_global_dedupe_eligible(), hash_is_global_dedup_eligible(&to_ref(h)));
        }
    }

    #[test]
    fn our_xorbs_read_by_reference(chunks in chunk_data(), scheme in 0u8..3) {
        let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
        let (hash, bytes) = encode_xorb(&refs, scheme);
        let obj = XorbObject::validate_xorb_object(&mut Cursor::new(&bytes), &to_ref(&hash)).unwrap();
        prop_assert!(obj.is_some(), "reference rejected our xorb");
        let mut v = XorbValidator::new();
        v.feed(&bytes).unwrap();
        let valid = v.finish().unwrap();
        prop_assert_eq!(valid.hash, hash);
        prop_assert_eq!(valid.stored_len, bytes.len() as u64);
        for (entry, data) in valid.chunks.iter().zip(&chunks) {
            let frame = &bytes[entry.offset as usize..(entry.offset + entry.frame_len) as usize];
            prop_assert_eq!(&decode_frame(frame).unwrap(), data);
        }
        prop_assert_eq!(unpack_chunk_table(&pack_chunk_table(&valid.chunks)).unwrap(), valid.chunks);
    }

    /// The hub's own xorbs (uncompressed frames, no footer) validate, and hash as the reference's.
    #[test]
    fn packed_xorbs_validate_and_hash_as_the_reference(chunks in chunk_data()) {
        let mut packer = XorbPacker::new();
        let mut bytes = Vec::new();
        for c in &chunks {
            prop_assert!(packer.has_room(c.len()));
            let (header, entry) = packer.push(c);
            prop_assert_eq!(entry.offset as usize, bytes.len());
            bytes.extend_from_slice(&header);
            bytes.extend_from_slice(c);
        }
        let packed = packer.finish();
        let mut v = XorbValidator::new();
        v.feed(&bytes).unwrap();
        prop_assert_eq!(&v.finish().unwrap(), &packed);
        let rchunks: Vec<Chunk> = chunks.iter().map(|c| Chunk::new(bytes::Bytes::from(c.clone()))).collect();
        let raw = RawXorbData::from_chunks(&rchunks, vec![0]);
        prop_assert_eq!(packed.hash, from_ref(&raw.hash()));
    }

    #[test]
    fn reference_xorbs_validate(chunks in chunk_data(), scheme in 0usize..3) {
        let scheme = [CompressionScheme::None, CompressionScheme::LZ4, CompressionScheme::ByteGrouping4LZ4][scheme];
        let rchunks: Vec<Chunk> = chunks.iter().map(|c| Chunk::new(bytes::Bytes::from(c.clone()))).collect();
        let raw = RawXorbData::from_chunks(&rchunks, vec![0]);
        let ser = SerializedXorbObject::from_xorb_with_compression(raw, scheme, true, 0).unwrap();
        let obj = XorbObject::deserialize(&mut Cursor::new(&ser.serialized_data)).unwrap();
        let mut v = XorbValidator::new();
        v.feed(&ser.serialized_data).unwrap();
        let valid = v.finish().unwrap();
        prop_assert_eq!(valid.hash, from_ref(&ser.hash));
        prop_assert_eq!(valid.chunks.len(), chunks.len());
        let ends: Vec<u32> = valid.chunks.iter().map(|c| c.offset + c.frame_len).collect();
        prop_assert_eq!(&ends, &obj.info.chunk_boundary_offsets);
        let starts: Vec<u32> = valid.chunks.iter().map(|c| c.offset).collect();
        let mut expected = vec![0];
        expected.extend(&obj.info.chunk_boundary_offsets[..chunks.len() - 1]);
        prop_assert_eq!(starts, expected);
        let hashes: Vec<MerkleHash> = valid.chunks.iter().map(|c| c.hash).collect();
        let rhashes: Vec<MerkleHash> = obj.info.chunk_hashes.iter().map(from_ref).collect();
        prop_assert_eq!(hashes, rhashes);
    }

    /// A chunk range of a reference xorb, as a CAS serves it (frames only), read back in
    /// pieces of any size: the same chunks, whatever the compression.
    #[test]
    fn chunk_ranges_of_reference_xorbs_read_back(
        chunks in chunk_data(),
        scheme in 0usize..3,
        from in any::<prop::sample::Index>(),
        piece in 1usize..70_000,
    ) {
        let scheme = [CompressionScheme::None, CompressionScheme::LZ4, CompressionScheme::ByteGrouping4LZ4][scheme];
        let rchunks: Vec<Chunk> = chunks.iter().map(|c| Chunk::new(bytes::Bytes::from(c.clone()))).collect();
        let raw = RawXorbData::from_chunks(&rchunks, vec![0]);
        let ser = SerializedXorbObject::from_xorb_with_compression(raw, scheme, true, 0).unwrap();
        let obj = XorbObject::deserialize(&mut Cursor::new(&ser.serialized_data)).unwrap();
        let first = from.index(chunks.len());
        let bounds = &obj.info.chunk_boundary_offsets;
        let start = if first == 0 { 0 } else { bounds[first - 1] as usize };
        let range = &ser.serialized_data[start..bounds[chunks.len() - 1] as usize];
        let mut reader = FrameReader::new();
        let mut read = Vec::new();
        for part in range.chunks(piece) {
            reader.feed(part);
            while let Some(chunk) = reader.next_chunk().unwrap() {
                read.push(chunk.to_vec());
            }
        }
        reader.finish().unwrap();
        prop_assert_eq!(&read[..], &chunks[first..]);
    }
}

/// A random-ish upload: files with terms over the given xorbs.
fn sample_upload(verified: bool, seed: u8) -> (Vec<FileInfo>, Vec<XorbInfo>) {
    let h = |i: u8| chunk_hash(&[seed, i]);
    let xorbs: Vec<XorbInfo> = (0..3u8)
        .map(|x| {
            let chunks: Vec<(MerkleHash, u32, u32)> = (0..4u8)
                .map(|c| (h(10 * x + c), u32::from(c) * 1000, 1000))
                .collect();
            XorbInfo {
                hash: h(100 + x),
                chunks,
                unpacked_len: 4000,
                stored_len: 4100,
            }
        })
        .collect();
    let files = (0..3u8)
        .map(|f| {
            let terms: Vec<Term> = (0..=f)
                .map(|t| Term {
                    xorb: xorbs[usize::from(t)].hash,
                    unpacked_len: 2000,
                    chunk_start: 1,
                    chunk_end: 3,
                })
                .collect();
            let verification = if verified {
                terms.iter().map(|t| h(200 + t.chunk_start as u8)).collect()
            } else {
                vec![]
            };
            FileInfo {
                file_hash: h(150 + f),
                terms,
                verification,
                sha256: (f != 1).then_some([f; 32]),
            }
        })
        .collect();
    (files, xorbs)
}

fn to_ref_file(f: &FileInfo) -> MDBFileInfo {
    MDBFileInfo {
        metadata: FileDataSequenceHeader::new(
            to_ref(&f.file_hash),
            f.terms.len(),
            !f.verification.is_empty(),
            f.sha256.is_some(),
        ),
        segments: f
            .terms
            .iter()
            .map(|t| {
                FileDataSequenceEntry::new(
                    to_ref(&t.xorb),
                    t.unpacked_len,
                    t.chunk_start,
                    t.chunk_end,
                )
            })
            .collect(),
        verification: f
            .verification
            .iter()
            .map(|v| FileVerificationEntry::new(to_ref(v)))
            .collect(),
        metadata_ext: f.sha256.map(|s| FileMetadataExt::new(DataHash::from(s))),
    }
}

fn to_ref_xorb(x: &XorbInfo) -> MDBXorbInfo {
    let mut metadata =
        XorbChunkSequenceHeader::new(to_ref(&x.hash), x.chunks.len(), x.unpacked_len);
    metadata.num_bytes_on_disk = x.stored_len;
    MDBXorbInfo {
        metadata,
        chunks: x
            .chunks
            .iter()
            .map(|(h, s, l)| XorbChunkSequenceEntry::new(to_ref(h), *l, *s))
            .collect(),
    }
}

#[test]
fn our_upload_shard_read_by_reference() {
    for verified in [false, true] {
        let (files, xorbs) = sample_upload(verified, 1);
        let bytes = encode_upload_shard(&files, &xorbs);
        let shard = MDBMinimalShard::from_reader(&mut Cursor::new(&bytes), true, true).unwrap();
        assert_eq!(shard.num_files(), files.len());
        assert_eq!(shard.num_xorb(), xorbs.len());
        for (i, f) in files.iter().enumerate() {
            let view = shard.file(i).unwrap();
            assert_eq!(from_ref(&view.file_hash()), f.file_hash);
            assert_eq!(view.contains_verification(), verified);
            for (t, term) in f.terms.iter().enumerate() {
                assert_eq!(view.entry(t), to_ref_file(f).segments[t]);
                if verified {
                    assert_eq!(
                        from_ref(&view.verification(t).range_hash),
                        f.verification[t]
                    );
                }
                assert_eq!(view.entry(t).chunk_index_end, term.chunk_end);
            }
        }
        for (i, x) in xorbs.iter().enumerate() {
            let view = shard.xorb(i).unwrap();
            assert_eq!(from_ref(&view.xorb_hash()), x.hash);
            assert_eq!(view.num_entries(), x.chunks.len());
        }
        assert_eq!(parse_upload(&bytes).unwrap(), UploadShard { files, xorbs });
    }
}

#[test]
fn reference_shards_parse() {
    for verified in [false, true] {
        let (files, xorbs) = sample_upload(verified, 2);
        let mut mem = MDBInMemoryShard::default();
        for f in &files {
            mem.add_file_reconstruction_info(to_ref_file(f)).unwrap();
        }
        for x in &xorbs {
            mem.add_xorb_block(to_ref_xorb(x)).unwrap();
        }
        // The reference orders files and xorbs by hash.
        let mut files = files;
        files.sort_by_key(|f| to_ref(&f.file_hash));
        let mut xorbs = xorbs;
        xorbs.sort_by_key(|x| to_ref(&x.hash));

        // With footer and lookup tables.
        let full = mem.to_bytes().unwrap();
        let parsed = parse_upload(&full).unwrap();
        assert_eq!(parsed.files, files);
        assert_eq!(parsed.xorbs, xorbs);

        // Without a footer, as uploads are sent.
        let minimal = MDBMinimalShard::from_reader(&mut Cursor::new(&full), true, true).unwrap();
        let mut no_footer = Vec::new();
        minimal.serialize(&mut no_footer, verified, None).unwrap();
        let parsed = parse_upload(&no_footer).unwrap();
        assert_eq!(parsed.files, files);
        assert_eq!(parsed.xorbs.len(), xorbs.len());
        for (p, x) in parsed.xorbs.iter().zip(&xorbs) {
            assert_eq!((p.hash, &p.chunks), (x.hash, &x.chunks));
        }
    }
}

#[test]
fn dedupe_shard_read_by_reference() {
    let key = [7u8; 32];
    let xorbs: Vec<(MerkleHash, Vec<ChunkEntry>)> = (0..5u8)
        .map(|x| {
            let mut offset = 0;
            let chunks = (0..(3 + x))
                .map(|c| {
                    let e = ChunkEntry {
                        hash: chunk_hash(&[x, c]),
                        offset,
                        frame_len: 500 + u32::from(c),
                        unpacked_len: 1000,
                    };
                    offset += e.frame_len;
                    e
                })
                .collect();
            (chunk_hash(&[x]), chunks)
        })
        .collect();
    let bytes = encode_dedupe_shard(&xorbs, &key, 1_700_000_000, 1_700_604_800);
    let mut cur = Cursor::new(&bytes);
    let info = MDBShardInfo::load_from_reader(&mut cur).unwrap();
    assert_eq!(info.metadata.chunk_hash_hmac_key, DataHash::from(key));
    assert_eq!(info.metadata.shard_creation_timestamp, 1_700_000_000);
    assert_eq!(info.metadata.shard_key_expiry, 1_700_604_800);
    assert_eq!(info.num_xorb_entries(), xorbs.len());
    assert_eq!(info.num_file_entries(), 0);
    let blocks = info.read_all_xorb_blocks_full(&mut cur).unwrap();
    assert_eq!(blocks.len(), xorbs.len());
    for (block, (hash, chunks)) in blocks.iter().zip(&xorbs) {
        assert_eq!(from_ref(&block.metadata.xorb_hash), *hash);
        for (c, e) in block.chunks.iter().zip(chunks) {
            assert_eq!(from_ref(&c.chunk_hash), e.hash.keyed(&key));
        }
    }
    // The client's dedupe query: its own (unkeyed) chunk hashes find the xorb and range.
    for (hash, chunks) in &xorbs {
        let query: Vec<DataHash> = chunks[1..].iter().map(|c| to_ref(&c.hash)).collect();
        let (n, entry) = info
            .chunk_hash_dedup_query(&mut cur, &query)
            .unwrap()
            .expect("chunk found");
        assert_eq!(n, chunks.len() - 1);
        assert_eq!(from_ref(&entry.xorb_hash), *hash);
        assert_eq!(
            (entry.chunk_index_start, entry.chunk_index_end),
            (1, chunks.len() as u32)
        );
        assert_eq!(
            entry.unpacked_segment_bytes,
            1000 * (chunks.len() as u32 - 1)
        );
    }
    // Streaming readers too.
    let shard = MDBInMemoryShard::from_reader(&mut Cursor::new(&bytes)).unwrap();
    assert_eq!(shard.num_xorb_entries(), xorbs.len());
    // And ours: no files, the keyed chunks.
    let ours = parse_upload(&bytes).unwrap();
    assert!(ours.files.is_empty());
    assert_eq!(ours.xorbs.len(), xorbs.len());
}

/// The reference client fills `FileMetadataExt` with `DataHash::from_hex(<sha256 hex>)`: on the
/// wire each 8-byte group of the digest is reversed, which `sha256_wire` undoes.
#[test]
fn sha256_travels_as_the_reference_parses_its_hex() {
    let sha: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    let wire = DataHash::from_hex(&hex).unwrap();
    assert_eq!(wire.as_bytes(), shard::sha256_wire(sha).as_slice());
    assert_eq!(shard::sha256_wire(shard::sha256_wire(sha)), sha);
}
