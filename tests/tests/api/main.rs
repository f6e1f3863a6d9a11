//! End-to-end tests: the real server on a random port, a fresh PostgreSQL database per test, and
//! both real object-store backends (local filesystem and the S3-compatible server).
//! One binary, one module per capability.

mod accounts;
mod audit;
mod authz;
mod commits;
mod downloads;
mod gc;
mod hf;
mod jobs;
mod licenses;
mod matrix;
mod mirror;
mod mirror_hostile;
mod notifications;
mod ops;
mod provenance;
mod reads_at_scale;
mod repos;
mod resilience;
mod reviews;
mod scanning;
mod schemathesis;
mod search_plans;
mod security;
mod storage_contract;
mod tlog;
mod uploads;
mod verification;
mod viewer;
mod web;
mod xet;
