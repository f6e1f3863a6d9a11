//! kaiyuan's provenance library, pure and offline: OpenSSF model-signing bundles (verify and
//! produce, byte-compatible with the `model_signing` tool), certificate chains, and the
//! transparency log's Merkle tree and checkpoints.

pub mod bundle;
pub mod cert;
pub mod checkpoint;
pub mod keys;
pub mod manifest;
pub mod merkle;
pub mod verify;
