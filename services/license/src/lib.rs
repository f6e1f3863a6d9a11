//! kaiyuan's licence compliance engine, pure and offline: the hub and `kaiyuan license
//! audit` call the same code.
//!
//! - [`expr`] parses declared licences into SPDX expressions (normalising near misses);
//! - [`catalog`] holds the structured terms of the licences open models use;
//! - [`detect`] identifies licence texts shipped with a model;
//! - [`lineage`] finds the licences of base models, teachers and datasets;
//! - [`evaluate`] turns all of it, a policy and a use context into a decision.

pub mod card;
pub mod catalog;
pub mod detect;
pub mod evaluate;
pub mod export;
pub mod expr;
pub mod folder;
pub mod gguf;
pub mod lineage;
pub mod policy;
pub mod report;

pub use evaluate::{ModelFacts, TextFile, evaluate};
pub use policy::{Policy, Purpose, UseContext};
pub use report::{Decision, Finding, Report, Severity};
