//! `archlab check FILE`: static checks and analyses of one archspec program.

use super::{EXIT_FAILURE, EXIT_OK, exit};
use anyhow::{Context, Result};
use archspec::diagnostic::render;
use archspec::{CheckConfig, Code, Complexity, ModelShape, check_source};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// What `check` needs besides the file.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub config: CheckConfig,
    pub model: ModelShape,
    /// Sequences per step and the chunk length, for the peak-memory estimate.
    pub batch_size: usize,
    pub chunk_size: usize,
    pub json: bool,
}

/// The `--json` report. Fields other than `valid` and `errors` are null when unknown.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub file: String,
    pub valid: bool,
    pub errors: Vec<archspec::Located>,
    pub name: Option<String>,
    pub causal: Option<bool>,
    pub complexity: Option<Complexity>,
    /// Parameters of one mixer.
    pub params: Option<u64>,
    /// Parameters of the whole model (backbone of `--layers` blocks around this mixer).
    pub model_params: Option<u64>,
    /// Of `model_params`, the embedding and head (not counted by a campaign's `maxParams`).
    pub embedding_params: Option<u64>,
    pub flops_per_token: Option<u64>,
    pub state_size: Option<u64>,
    /// Estimated peak bytes of a training step at `--batch-size` (README, "Peak memory").
    pub training_memory_bytes: Option<u64>,
    pub hash: Option<String>,
    pub hyperparameters: BTreeMap<String, i64>,
}

/// Checks the program in `path` (`-` reads stdin).
pub fn run(path: &Path, options: &CheckOptions) -> Result<ExitCode> {
    let source = read_source(path)?;
    let report = report(&path.display().to_string(), &source, options);
    let mut stdout = std::io::stdout().lock();
    if options.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else if report.valid {
        write_summary(&mut stdout, &report)?;
    } else {
        let diagnostics = match check_source(&source, &options.config) {
            Err(diagnostics) => render(&source, &diagnostics),
            Ok(_) => String::new(),
        };
        eprint!("{diagnostics}");
        eprintln!("{}: invalid ({} errors)", report.file, report.errors.len());
    }
    Ok(exit(if report.valid { EXIT_OK } else { EXIT_FAILURE }))
}

fn read_source(path: &Path) -> Result<String> {
    let bytes = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).context("reading stdin")?;
        bytes
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    // Invalid UTF-8 becomes replacement characters, which the lexer reports with their position.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Builds the report for one source text.
pub fn report(file: &str, source: &str, options: &CheckOptions) -> CheckReport {
    let mut report = CheckReport {
        file: file.to_string(),
        valid: false,
        errors: Vec::new(),
        name: None,
        causal: None,
        complexity: None,
        params: None,
        model_params: None,
        embedding_params: None,
        flops_per_token: None,
        state_size: None,
        training_memory_bytes: None,
        hash: None,
        hyperparameters: BTreeMap::new(),
    };
    match check_source(source, &options.config) {
        Ok(valid) => {
            let model = ModelShape {
                d_model: options.config.d_model,
                seq_len: options.config.seq_len,
                ..options.model
            };
            report.valid = true;
            report.name = Some(valid.program.name.name.clone());
            report.causal = Some(true);
            report.complexity = Some(valid.analysis.complexity);
            report.params = Some(valid.analysis.params);
            report.model_params = Some(model.params(valid.analysis.params));
            report.embedding_params = Some(model.embedding_params());
            report.flops_per_token = Some(valid.analysis.flops_per_token);
            report.state_size = Some(valid.analysis.state_size);
            let activations = archspec::analysis::activations_per_token(
                &valid.checked.graph,
                options.config.seq_len,
                options.chunk_size,
            );
            report.training_memory_bytes = Some(model.training_memory_bytes(
                valid.analysis.params,
                activations,
                options.batch_size,
            ));
            report.hash = Some(valid.hash());
            report.hyperparameters = valid.checked.hyperparameters.iter().cloned().collect();
        }
        Err(diagnostics) => {
            if diagnostics.iter().any(|d| d.code == Code::E0401NotCausal) {
                report.causal = Some(false);
            }
            report.errors = diagnostics.iter().map(|d| d.locate(source)).collect();
        }
    }
    report
}

fn write_summary(out: &mut impl Write, report: &CheckReport) -> Result<()> {
    let number = |value: Option<u64>| value.map_or("-".to_string(), group_digits);
    writeln!(
        out,
        "{}: valid mixer `{}`",
        report.file,
        report.name.as_deref().unwrap_or("?")
    )?;
    writeln!(
        out,
        "  complexity       {}",
        report.complexity.map_or("-", Complexity::name)
    )?;
    writeln!(out, "  causal           yes")?;
    writeln!(
        out,
        "  params (mixer)   {}  (one layer's; what a campaign's maxParams limits)",
        number(report.params)
    )?;
    writeln!(out, "  params (model)   {}", number(report.model_params))?;
    writeln!(
        out,
        "  of which embedding and head {}",
        number(report.embedding_params)
    )?;
    writeln!(out, "  flops per token  {}", number(report.flops_per_token))?;
    writeln!(out, "  state size       {}", number(report.state_size))?;
    if let Some(bytes) = report.training_memory_bytes {
        writeln!(
            out,
            "  training memory  ≈ {:.1} MiB a step (an estimate: README, \"Peak memory\")",
            bytes as f64 / f64::from(1 << 20)
        )?;
    }
    writeln!(
        out,
        "  hash             {}",
        report.hash.as_deref().unwrap_or("-")
    )?;
    let hyperparameters: Vec<String> = report
        .hyperparameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    writeln!(out, "  hyperparameters  {}", hyperparameters.join(" "))?;
    Ok(())
}

/// `1234567` → `1,234,567`.
pub fn group_digits(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, ch) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
