//! Command handlers. Each takes typed arguments, writes data to stdout and messages to
//! stderr, and returns the process exit code.

pub mod check;
pub mod cognition;
pub mod crd;
pub mod data;
pub mod eval;
pub mod library;
pub mod report;
pub mod run;
pub mod train;

use std::process::ExitCode;

/// Exit code for a valid result.
pub const EXIT_OK: u8 = 0;
/// Exit code for an invalid program, unreadable input or a failed command.
pub const EXIT_FAILURE: u8 = 1;

pub(crate) fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}
