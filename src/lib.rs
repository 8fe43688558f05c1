//! archlab: autonomous neural-architecture discovery for token-mixing layers.
//!
//! The library holds everything the `archlab` binary runs; `main.rs` only wires the CLI.

pub mod agents;
pub mod api;
pub mod cli;
pub mod cognition;
pub mod core;
pub mod engine;
pub mod local;
pub mod memory;
pub mod operator;
pub mod output_clock;
pub mod report;
pub mod setup;
