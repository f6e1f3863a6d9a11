//! kaiyuan hub: the HTTP API, persistence and background work around the pure libraries.
//!
//! A guided tour: [`config`] reads settings; [`app`] wires the actix server; [`routes`] are thin
//! handlers (parse, authorise, call, map errors); [`db`] is the only module that speaks SQL;
//! [`jobs`] runs the PostgreSQL-backed queue; [`gc`] collects garbage; [`embedded_pg`] runs the
//! local PostgreSQL cluster of the embedded default.

pub mod app;
pub mod auth;
pub mod body_budget;
pub mod commit_id;
pub mod config;
pub mod db;
pub mod domain;
pub mod embedded_pg;
pub mod error;
pub mod error_code;
pub mod gc;
pub mod hmac;
pub mod jobs;
pub mod license_cli;
pub mod licensing;
pub mod liveness;
pub mod log_cli;
pub mod metrics;
pub mod middleware;
pub mod mirror;
pub mod names;
pub mod notify;
pub mod outbound;
pub mod paths;
pub mod routes;
pub mod scan_cli;
pub mod sign_cli;
pub mod signatures;
pub mod state;
pub mod telemetry;
pub mod tlog;
pub mod tree;
pub mod verification;
pub mod verify_cli;
pub mod web;
pub mod xet;
pub mod yara;
