//! The contract between a trainer and the drivers that run it: JSON lines on stdout (progress
//! at a steady cadence, then one result), written by the trainer ([`events`]) and read by the
//! local driver from a child's stdout and by the operator from a pod's log ([`reading`]), one
//! bounded line at a time ([`lines`]).
//!
//! It is its own small crate so that both sides share one definition and so that its readers,
//! which take untrusted bytes, can be fuzzed without building the trainer (see `fuzz/`).

pub mod events;
pub mod lines;
pub mod reading;
pub mod termination;

pub use events::{BenchmarkScore, Event, Status, TrainResult};
pub use reading::{Reading, read};
pub use termination::{TERMINATION_MESSAGE_LIMIT, termination_message};
