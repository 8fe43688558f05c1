//! `archlab report`: the leaderboard and the rest on stdout (text or JSON), the figures as
//! SVG files, and optionally one self-contained HTML page.

use crate::memory::Store;
use crate::memory::sqlite::SqliteStore;
use crate::report::{Report, html, plots, text};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

pub struct ReportOptions {
    pub state: PathBuf,
    pub campaign: Option<String>,
    pub json: bool,
    pub html: Option<PathBuf>,
    pub plots: Option<PathBuf>,
}

pub fn run(options: &ReportOptions) -> Result<ExitCode> {
    if !options.state.join(crate::memory::sqlite::DATABASE).exists() {
        bail!(
            "{} holds no archlab memory; pass the --state directory given to `archlab run`",
            options.state.display()
        );
    }
    let store = SqliteStore::open(&options.state)?;
    let campaigns = store.campaigns()?;
    let campaign = match (&options.campaign, campaigns.as_slice()) {
        (Some(name), _) if campaigns.iter().any(|c| c == name) => name.clone(),
        (Some(name), _) => bail!(
            "no campaign `{name}` in {}; found: {}",
            options.state.display(),
            campaigns.join(", ")
        ),
        (None, [only]) => only.clone(),
        (None, []) => bail!("no campaign in {} yet", options.state.display()),
        (None, many) => bail!(
            "several campaigns in {}; choose one with --campaign: {}",
            options.state.display(),
            many.join(", ")
        ),
    };
    let spec = store
        .campaign_spec(&campaign)?
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
        .unwrap_or_default();
    let baseline = spec["baseline"].as_str().unwrap_or_default().to_string();
    let seeds = spec["stages"]["verification"]["seeds"]
        .as_u64()
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(3);
    let experiments = store.experiments(&campaign)?;
    let tokens = store.usage(&campaign)?.llm_tokens;
    let usage = crate::core::campaign::usage(&experiments, tokens);
    let required = crate::core::verification::required_runs(seeds);
    let mut report = Report::build(&campaign, &baseline, required, &experiments, usage);
    report.seed = spec["seed"].as_u64();
    report.agents = store
        .agent_stats(&campaign)?
        .and_then(|json| serde_json::from_str(&json).ok());
    let figures = plots::all(&report).map_err(|e| anyhow::anyhow!("drawing the figures: {e}"))?;
    let plot_dir = options
        .plots
        .clone()
        .unwrap_or_else(|| options.state.join("report"));
    std::fs::create_dir_all(&plot_dir)
        .with_context(|| format!("creating {}", plot_dir.display()))?;
    for (name, svg) in &figures {
        let path = plot_dir.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &options.html {
        std::fs::write(path, html::render(&report, &figures))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    if options.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", text::render(&report))?;
        writeln!(stdout, "\nfigures: {}", plot_dir.display())?;
        if let Some(path) = &options.html {
            writeln!(stdout, "html: {}", path.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
