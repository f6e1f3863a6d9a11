//! Pure, I/O-free implementation of the Hugging Face Xet formats and hashes that the hub's CAS
//! server needs: content-defined chunking, chunk/xorb/file/verification hashes and their string
//! form, streaming xorb validation and packing, and upload/global-dedupe shards.
//!
//! The authority is the Xet specification (docs/xet/ in huggingface/hub-docs); the tests
//! cross-check every hash and format against the reference implementation
//! (`xet-core-structures`).

pub mod chunker;
mod hash;
pub mod shard;
pub mod xorb;

pub use chunker::Chunker;
pub use hash::{
    GLOBAL_DEDUPE_MODULUS, HashParseError, MerkleHash, chunk_hash, file_hash, verification_hash,
    xorb_hash,
};
pub use shard::*;
pub use xorb::*;
