//! `archlab crd`: prints the Campaign and Experiment CRDs (`archlab crd | kubectl apply -f -`).

use super::{EXIT_OK, exit};
use anyhow::{Context, Result};
use std::io::Write;
use std::process::ExitCode;

pub fn run() -> Result<ExitCode> {
    let yaml = crate::api::crds::yaml().context("serialising the CRDs")?;
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`archlab crd | head`) is not an error worth a message.
    let _ = stdout.write_all(yaml.as_bytes());
    Ok(exit(EXIT_OK))
}
