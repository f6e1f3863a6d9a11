//! The hub's side of Xet storage: CAS access tokens, file recipes the store reads through, and
//! the registration of uploaded shards. The HTTP routes are in `routes::cas` (the CAS) and
//! `routes::hf` (the token route); the formats and hashes in the `kaiyuan-xet` crate.

pub mod recipes;
pub mod register;
pub mod token;
