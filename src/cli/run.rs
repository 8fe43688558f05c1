//! `archlab run CAMPAIGN.yaml`: exit 0 when the campaign ends, 130 when interrupted (run the
//! same command to resume), 1 on a bad manifest or a failure of the machinery.

use crate::local::{RunEnd, RunOptions, run as run_campaign};
use anyhow::Result;
use std::process::ExitCode;

/// The conventional exit status after SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

pub fn run(options: &RunOptions) -> Result<ExitCode> {
    match run_campaign(options)? {
        RunEnd::Finished(_) => Ok(ExitCode::SUCCESS),
        RunEnd::Interrupted => Ok(ExitCode::from(EXIT_INTERRUPTED)),
    }
}
