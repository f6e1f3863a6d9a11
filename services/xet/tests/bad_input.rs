//! Malformed xorbs and shards, split-independence of the streaming validator, the spec's
//! string-form example.

use kaiyuan_xet::*;
use proptest::prelude::*;

fn validate(bytes: &[u8]) -> Result<ValidXorb, XorbError> {
    let mut v = XorbValidator::new();
    v.feed(bytes)?;
    v.finish()
}

fn err(bytes: &[u8]) -> String {
    validate(bytes).unwrap_err().to_string()
}

/// The frames of `sample()` without its footer, as a CAS serves a chunk range.
fn sample_frames() -> Vec<u8> {
    let (_, bytes) = sample();
    let valid = validate(&bytes).unwrap();
    let end = valid.chunks.last().map(|c| c.offset + c.frame_len).unwrap();
    bytes[..end as usize].to_vec()
}

fn read_frames(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut reader = FrameReader::new();
    reader.feed(bytes);
    let mut chunks = Vec::new();
    while let Some(chunk) = reader.next_chunk().map_err(|e| e.to_string())? {
        chunks.push(chunk.to_vec());
    }
    reader.finish().map_err(|e| e.to_string())?;
    Ok(chunks)
}

#[test]
fn fetched_ranges_that_lie_are_refused() {
    let frames = sample_frames();
    assert_eq!(read_frames(&frames).unwrap().len(), 3);
    assert_eq!(read_frames(&[]).unwrap(), Vec::<Vec<u8>>::new());
    // Cut inside the last frame, or inside a header.
    let err = read_frames(&frames[..frames.len() - 1]).unwrap_err();
    assert!(
        err.contains("chunk 2") && err.contains("truncated"),
        "{err}"
    );
    let err = read_frames(&frames[..3]).unwrap_err();
    assert!(
        err.contains("truncated frame: 8 bytes needed, 3 present"),
        "{err}"
    );
    // A header claiming a chunk larger than any chunk may be is refused before its bytes
    // arrive; so is an unknown version.
    let mut big = frames.clone();
    big[5..8].copy_from_slice(&[0, 0, 0x10]);
    let err = read_frames(&big[..8]).unwrap_err();
    assert!(err.contains("chunk 0"), "{err}");
    let mut version = frames.clone();
    version[0] = 1;
    assert!(read_frames(&version).unwrap_err().contains("version"));
    // A compressed payload that does not decompress to its header's size.
    let mut lying = frames;
    lying[5] ^= 1;
    assert!(read_frames(&lying).is_err());
}

fn sample() -> (MerkleHash, Vec<u8>) {
    let a = vec![1u8; 5000];
    let b: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    encode_xorb(&[&a, &b, b"tail"], 1)
}

#[test]
fn string_form_example() {
    let h = MerkleHash(std::array::from_fn(|i| i as u8));
    // api.md prints this value with the "10" of the third group missing (62 characters);
    // the procedure it describes gives the 64 below.
    let s = "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918";
    assert_eq!(h.to_string(), s);
    assert_eq!(s.parse::<MerkleHash>().unwrap(), h);
    assert!(
        "07060504030201000f0e0d0c0b0a0908171615141312111f1e1d1c1b1a1918"
            .parse::<MerkleHash>()
            .is_err()
    );
    assert!(s.replace('f', "g").parse::<MerkleHash>().is_err());
    assert!(format!("{s}0").parse::<MerkleHash>().is_err());
    assert_eq!(MerkleHash::from_slice(&[0; 31]), None);
    assert_eq!(file_hash(&[]), MerkleHash::default());
}

#[test]
fn bad_frames() {
    let (_, good) = sample();
    assert!(validate(&good).is_ok());
    // Truncated inside the first frame.
    assert_eq!(
        err(&good[..5]),
        "chunk 0 at byte 0: truncated frame: 8 bytes needed, 5 present"
    );
    let e = err(&good[..100]);
    assert!(
        e.starts_with("chunk 1 at byte ") && e.ends_with("runs past the end of the xorb"),
        "{e}"
    );
    // 9 MB uncompressed.
    let mut x = good.clone();
    x[5..8].copy_from_slice(&9_000_000u32.to_le_bytes()[..3]);
    assert_eq!(
        err(&x),
        "chunk 0 at byte 0: frame claims 9000000 uncompressed bytes, more than 131072"
    );
    // Unknown scheme, bad version.
    let mut x = good.clone();
    x[4] = 7;
    assert_eq!(err(&x), "chunk 0 at byte 0: unknown compression scheme 7");
    let mut x = good.clone();
    x[0] = 1;
    assert_eq!(
        err(&x),
        "chunk 0 at byte 0: unsupported chunk format version 1, expected 0"
    );
    // LZ4 that decodes to another length than the header says.
    let mut x = good.clone();
    x[5..8].copy_from_slice(&4999u32.to_le_bytes()[..3]);
    assert!(
        err(&x).contains("decompresses to more than 4999 bytes"),
        "{}",
        err(&x)
    );
    let mut x = good.clone();
    x[5..8].copy_from_slice(&5001u32.to_le_bytes()[..3]);
    assert!(
        err(&x).contains("decompresses to 5000 bytes, header claims 5001"),
        "{}",
        err(&x)
    );
    // Corrupt LZ4.
    let mut x = good.clone();
    x[8] ^= 0xff;
    assert!(err(&x).contains("invalid LZ4 data"), "{}", err(&x));
    // decode_frame on its own.
    assert_eq!(
        decode_frame(&[0, 3, 0, 0, 0, 3, 0, 0, 1, 2, 3]).unwrap(),
        vec![1, 2, 3]
    );
    assert_eq!(
        decode_frame(&[0, 3, 0, 0, 0, 3, 0, 0, 1, 2, 3, 4])
            .unwrap_err()
            .to_string(),
        "frame is 12 bytes but its header says 11"
    );
    assert_eq!(
        decode_frame(&[0, 3, 0, 0, 0, 4, 0, 0, 1, 2, 3])
            .unwrap_err()
            .to_string(),
        "uncompressed frame stores 3 bytes but claims 4"
    );
}

#[test]
fn bad_footers() {
    let (hash, good) = sample();
    assert_eq!(validate(&good).unwrap().hash, hash);
    let n = good.len();
    // Footer length lying.
    let mut x = good.clone();
    x[n - 4] ^= 1;
    assert!(
        err(&x).starts_with("footer length field says"),
        "{}",
        err(&x)
    );
    // Footer states another xorb hash.
    let last_frame_end = validate(&good)
        .unwrap()
        .chunks
        .iter()
        .map(|c| c.offset + c.frame_len)
        .max()
        .unwrap() as usize;
    let mut x = good.clone();
    x[last_frame_end + 8] ^= 1;
    assert!(
        err(&x).starts_with("footer disagrees with the chunks: it states xorb hash"),
        "{}",
        err(&x)
    );
    // Footer states another chunk count (the hash section's count).
    let mut x = good.clone();
    x[last_frame_end + 48] ^= 1;
    assert!(err(&x).contains("it states"), "{}", err(&x));
    // No footer (what the reference client sends) is the same xorb; no chunks, bad ident are not.
    let mut v = XorbValidator::new();
    v.feed(&good[..last_frame_end]).unwrap();
    let bare = v.finish().unwrap();
    let mut v = XorbValidator::new();
    v.feed(&good).unwrap();
    assert_eq!(bare.hash, v.finish().unwrap().hash);
    assert_eq!(err(&[]), "xorb has no chunks");
    let mut x = good.clone();
    x[last_frame_end + 1] = b'Y';
    assert!(err(&x).contains("identifier is not XETBLOB"), "{}", err(&x));
    // Trailing bytes after a correct footer.
    let mut x = good.clone();
    x.extend_from_slice(&[0; 4]);
    assert!(err(&x).starts_with("footer length"), "{}", err(&x));
}

#[test]
fn too_large() {
    let mut v = XorbValidator::new();
    let chunk = vec![0u8; 131_072];
    let (_, one) = encode_xorb(&[&chunk], 0);
    let frame = &one[..8 + 131_072];
    let mut result = Ok(());
    for _ in 0..530 {
        result = v.feed(frame);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(
        result.unwrap_err().to_string(),
        "xorb is larger than 65 MiB (64 MiB of chunks, their headers and the footer)"
    );
    let mut v = XorbValidator::new();
    assert!(
        v.feed(&vec![0u8; 65 * 1024 * 1024 + 1])
            .unwrap_err()
            .to_string()
            .starts_with("xorb is larger than 65 MiB")
    );
}

#[test]
fn chunk_table_rejects_garbage() {
    assert!(unpack_chunk_table(&[]).is_err());
    assert!(unpack_chunk_table(&[1, 2, 0, 0, 0]).is_err());
    assert!(unpack_chunk_table(&[2, 0, 0, 0, 0]).is_err());
    assert_eq!(unpack_chunk_table(&pack_chunk_table(&[])).unwrap(), vec![]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The outcome never depends on how the body was split, valid or corrupted.
    #[test]
    fn split_independent(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..2000), 1..8),
        scheme in 0u8..3,
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        corrupt in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
        let (_, mut bytes) = encode_xorb(&refs, scheme);
        if let Some((at, b)) = corrupt {
            let i = at.index(bytes.len());
            bytes[i] ^= b;
        }
        let whole = validate(&bytes).map_err(|e| e.to_string());
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut v = XorbValidator::new();
        let mut prev = 0;
        let mut fed = Ok(());
        for p in points.into_iter().chain([bytes.len()]) {
            fed = fed.and_then(|_| v.feed(&bytes[prev..p]));
            prev = p;
        }
        let split = fed.and_then(|_| v.finish()).map_err(|e| e.to_string());
        prop_assert_eq!(whole, split);
    }
}

fn shard() -> Vec<u8> {
    let h = |i: u8| chunk_hash(&[i]);
    let xorbs = vec![XorbInfo {
        hash: h(1),
        chunks: vec![(h(2), 0, 10), (h(3), 10, 5)],
        unpacked_len: 15,
        stored_len: 40,
    }];
    let files = vec![
        FileInfo {
            file_hash: h(4),
            terms: vec![Term {
                xorb: h(1),
                unpacked_len: 15,
                chunk_start: 0,
                chunk_end: 2,
            }],
            verification: vec![h(5)],
            sha256: None,
        },
        FileInfo {
            file_hash: h(6),
            terms: vec![Term {
                xorb: h(1),
                unpacked_len: 5,
                chunk_start: 1,
                chunk_end: 2,
            }],
            verification: vec![h(7)],
            sha256: Some([9; 32]),
        },
    ];
    encode_upload_shard(&files, &xorbs)
}

fn shard_err(bytes: &[u8]) -> String {
    parse_upload(bytes).unwrap_err().to_string()
}

#[test]
fn bad_shards() {
    let good = shard();
    let parsed = parse_upload(&good).unwrap();
    assert_eq!(parsed.files.len(), 2);
    assert_eq!(parsed.files[1].sha256, Some([9; 32]));
    let mut x = good.clone();
    x[0] = b'X';
    assert_eq!(shard_err(&x), "not a shard: wrong header tag");
    let mut x = good.clone();
    x[32] = 3;
    assert_eq!(
        shard_err(&x),
        "unsupported shard header version 3, expected 2"
    );
    // A count larger than the body: file 0 claims 1000 terms.
    let mut x = good.clone();
    x[48 + 36..48 + 40].copy_from_slice(&1000u32.to_le_bytes());
    assert!(
        shard_err(&x).starts_with("file 0 at byte 96 claims 1000 entries"),
        "{}",
        shard_err(&x)
    );
    let mut x = good.clone();
    x[48 + 36..48 + 40].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(
        shard_err(&x).contains("claims 4294967295 entries"),
        "{}",
        shard_err(&x)
    );
    // Missing CAS bookend, missing file bookend.
    assert_eq!(
        shard_err(&good[..good.len() - 48]),
        format!(
            "CAS info section has no bookend: the shard ends at byte {}",
            good.len() - 48
        )
    );
    assert!(
        shard_err(&good[..48 * 4]).contains("no bookend")
            || shard_err(&good[..48 * 4]).contains("ends inside")
    );
    assert!(
        shard_err(&good[..good.len() - 10]).starts_with("shard ends inside"),
        "{}",
        shard_err(&good[..good.len() - 10])
    );
    // Trailing bytes.
    let mut x = good.clone();
    x.extend_from_slice(&[0; 7]);
    assert_eq!(
        shard_err(&x),
        format!(
            "7 unexpected bytes after the CAS info section at byte {}",
            good.len()
        )
    );
    let mut x = good.clone();
    x.extend_from_slice(&[1; 200]);
    assert!(
        shard_err(&x).contains("unexpected bytes"),
        "{}",
        shard_err(&x)
    );
    // Mixed verification: drop file 1's verification flag and entry.
    let h = |i: u8| chunk_hash(&[i]);
    let xorbs = vec![XorbInfo {
        hash: h(1),
        chunks: vec![(h(2), 0, 10)],
        unpacked_len: 10,
        stored_len: 20,
    }];
    let term = Term {
        xorb: h(1),
        unpacked_len: 10,
        chunk_start: 0,
        chunk_end: 1,
    };
    let mixed = encode_upload_shard(
        &[
            FileInfo {
                file_hash: h(4),
                terms: vec![term.clone()],
                verification: vec![h(5)],
                sha256: None,
            },
            FileInfo {
                file_hash: h(6),
                terms: vec![term.clone()],
                verification: vec![],
                sha256: None,
            },
        ],
        &xorbs,
    );
    assert_eq!(
        shard_err(&mixed),
        "file 1 has no verification entries but file 0 does"
    );
    // Empty term list, empty range, zero length.
    let one = |t: Vec<Term>| {
        encode_upload_shard(
            &[FileInfo {
                file_hash: h(4),
                terms: t,
                verification: vec![],
                sha256: None,
            }],
            &xorbs,
        )
    };
    assert_eq!(shard_err(&one(vec![])), "file 0 has no terms");
    let bad = Term {
        chunk_start: 1,
        chunk_end: 1,
        ..term.clone()
    };
    assert_eq!(
        shard_err(&one(vec![bad])),
        "file 0 term 0: chunk range [1, 1) is empty"
    );
    let bad = Term {
        unpacked_len: 0,
        ..term.clone()
    };
    assert_eq!(
        shard_err(&one(vec![term.clone(), bad])),
        "file 0 term 1: unpacked length is 0"
    );
    assert!(parse_upload(&one(vec![term])).is_ok());
    assert!(shard_err(&[0; 10]).contains("too short"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn shard_parser_never_panics(data in prop::collection::vec(any::<u8>(), 0..600), at in any::<prop::sample::Index>()) {
        let _ = parse_upload(&data);
        let mut good = shard();
        let i = at.index(good.len());
        good[i] ^= data.first().copied().unwrap_or(1);
        let _ = parse_upload(&good);
        let _ = validate(&data);
    }
}
