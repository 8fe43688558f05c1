//! `archlab library list|show`: the shipped architectures.

use super::{EXIT_FAILURE, EXIT_OK, exit};
use crate::cli::check::group_digits;
use anyhow::Result;
use archspec::{CheckConfig, check_source, library};
use serde::Serialize;
use std::io::Write;
use std::process::ExitCode;

#[derive(Debug, Serialize)]
struct Listing {
    name: &'static str,
    summary: &'static str,
    complexity: Option<archspec::Complexity>,
    params: Option<u64>,
    state_size: Option<u64>,
}

/// Lists every library program with its cost class and size at the default config.
pub fn list(json: bool) -> Result<ExitCode> {
    let config = CheckConfig::default();
    let listings: Vec<Listing> = library::ENTRIES
        .iter()
        .map(|entry| {
            let valid = check_source(entry.source, &config).ok();
            Listing {
                name: entry.name,
                summary: entry.summary(),
                complexity: valid.as_ref().map(|v| v.analysis.complexity),
                params: valid.as_ref().map(|v| v.analysis.params),
                state_size: valid.as_ref().map(|v| v.analysis.state_size),
            }
        })
        .collect();
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &listings)?;
        writeln!(stdout)?;
        return Ok(exit(EXIT_OK));
    }
    writeln!(
        stdout,
        "{:<18} {:<10} {:>10} {:>10}  description (params and state per layer at d_model {}, T {})",
        "name", "cost", "params", "state", config.d_model, config.seq_len
    )?;
    for listing in listings {
        writeln!(
            stdout,
            "{:<18} {:<10} {:>10} {:>10}  {}",
            listing.name,
            listing
                .complexity
                .map_or("invalid", archspec::Complexity::name),
            listing.params.map_or("-".into(), group_digits),
            listing.state_size.map_or("-".into(), group_digits),
            listing.summary
        )?;
    }
    Ok(exit(EXIT_OK))
}

/// Prints one library program's source.
pub fn show(name: &str) -> Result<ExitCode> {
    match library::get(name) {
        Some(entry) => {
            print!("{}", entry.source);
            Ok(exit(EXIT_OK))
        }
        None => {
            let names: Vec<&str> = library::ENTRIES.iter().map(|e| e.name).collect();
            eprintln!(
                "no library program named `{name}`; available: {}",
                names.join(", ")
            );
            Ok(exit(EXIT_FAILURE))
        }
    }
}
