//! `archlab report`: the leaderboard and the rest on stdout (text or JSON), the figures as
//! SVG files, and optionally one self-contained HTML page.

use crate::core::verification;
use crate::memory::Store;
use crate::memory::lock::StateLock;
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
    /// Simulated campaigns per false-claim scenario, when asked.
    pub false_claims: Option<usize>,
}

pub fn run(options: &ReportOptions) -> Result<ExitCode> {
    if !options.state.join(crate::memory::sqlite::DATABASE).exists() {
        bail!(
            "{} holds no archlab memory; pass the --state directory given to `archlab run`",
            options.state.display()
        );
    }
    // Reading beside a running campaign is what a report is for; only a report that would
    // upgrade the schema writes, and then it needs the state to itself.
    let _lock = if SqliteStore::open_would_write(&options.state)? {
        Some(StateLock::acquire(&options.state)?)
    } else {
        None
    };
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
    let rules = rules(&spec);
    let crate::memory::Loaded {
        experiments,
        quarantined,
    } = store.load(&campaign)?;
    let tokens = store.usage(&campaign)?.llm_tokens;
    let usage = crate::core::campaign::usage(&experiments, tokens);
    let mut report = Report::build(&campaign, &rules, &experiments, usage);
    report.quarantined = quarantined;
    report.seed = spec["seed"].as_u64();
    if let Some(trials) = options.false_claims {
        let seeds = spec["stages"]["verification"]["seeds"]
            .as_u64()
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(3);
        report.false_claims = Some(false_claims(&experiments, &report, seeds, trials)?);
    }
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

/// The claim rules of a stored campaign's spec. A spec this archlab can no longer read whole
/// (written by an older one) still gives its baseline, seeds, promotions and weights.
fn rules(spec: &serde_json::Value) -> verification::Rules {
    if let Ok(spec) = serde_json::from_value::<crate::api::CampaignSpec>(spec.clone()) {
        return verification::Rules::of(&spec);
    }
    let verification = &spec["stages"]["verification"];
    let count = |value: &serde_json::Value, default: u32| {
        value
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(default)
    };
    let scale = |train: &serde_json::Value| archspec::CheckConfig {
        d_model: count(&train["model"]["d_model"], 64) as usize,
        seq_len: count(&train["data"]["seq_len"], 64) as usize,
        max_complexity: None,
        ..archspec::CheckConfig::default()
    };
    let rungs = spec["stages"]["rungs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    verification::Rules {
        baseline: spec["baseline"].as_str().unwrap_or_default().to_string(),
        required_runs: verification::required_runs(count(&verification["seeds"], 3)),
        promote: count(&verification["promote"], 2) as usize,
        weights: serde_json::from_value(spec["fitness"].clone()).unwrap_or_default(),
        check: scale(&verification["train"]),
        ladder: rungs
            .iter()
            .map(|rung| crate::core::ladder::RungRule {
                promote: count(&rung["promote"], 1) as usize,
                seeds: count(&rung["seeds"], 1),
                check: scale(&rung["train"]),
            })
            .collect(),
    }
}

/// Most simulated campaigns per scenario (each is a whole verification summary).
const MAX_TRIALS: usize = 1_000_000;

/// The false-claim rate of every scenario under this campaign's measured noise: the twin as
/// the best's child and as its sibling, with none, half and most of each seed's deviation
/// shared between programs. Seeded from the campaign seed, so a report repeats its figures.
fn false_claims(
    experiments: &[crate::core::lifecycle::Experiment],
    report: &Report,
    seeds: u32,
    trials: usize,
) -> Result<crate::report::FalseClaims> {
    use crate::core::false_claims::{Lineage, Noise, false_claim_rate};
    use rand::SeedableRng;
    if trials == 0 || trials > MAX_TRIALS {
        bail!("--false-claims takes 1 to {MAX_TRIALS} trials, not {trials}");
    }
    let Some(noise) = Noise::measured(experiments, &report.verification) else {
        bail!(
            "--false-claims needs the noise of verification runs: the baseline has fewer than two finished verification runs"
        );
    };
    let mut rng = rand::rngs::SmallRng::seed_from_u64(report.seed.unwrap_or(0));
    let mut rates = Vec::new();
    for lineage in [Lineage::Child, Lineage::Sibling] {
        for shared in [0.0, 0.5, 0.9] {
            rates.push(false_claim_rate(
                &noise, lineage, shared, seeds, trials, &mut rng,
            ));
        }
    }
    Ok(crate::report::FalseClaims {
        residuals: noise.log_loss.len(),
        log_loss_sd: crate::core::stats::standard_deviation(&noise.log_loss).unwrap_or(0.0),
        degenerate: noise.is_degenerate(),
        rates,
    })
}
