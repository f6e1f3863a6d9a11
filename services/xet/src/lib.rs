//! Pure, I/O-free implementation of the Hugging Face Xet formats and hashes that the hub's CAS
//! server needs: chunk/xorb/file/verification hashes and their string form, streaming xorb
//! validation, and upload/global-dedupe shards.
//!
//! The authority is the Xet specification (docs/xet/ in huggingface/hub-docs); the tests
//! cross-check every hash and format against the reference implementation
//! (`xet-core-structures`).

mod hash;
pub mod shard;
pub mod xorb;

pub use hash::{
    GLOBAL_DEDUPE_MODULUS, HashParseError, MerkleHash, chunk_hash, file_hash, verification_hash,
    xorb_hash,
};
pub use shard::*;
pub use xorb::*;
