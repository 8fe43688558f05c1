//! Test support shared by several test crates.

pub mod llm_server;
