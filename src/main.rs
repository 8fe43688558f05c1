//! The `archlab` command line: parses arguments and hands them to `archlab::cli`.

use anyhow::Result;
use archlab::cli;
use archspec::{CheckConfig, Complexity, ModelShape};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Autonomous discovery of token-mixing layers for language models.
#[derive(Debug, Parser)]
#[command(name = "archlab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an archspec program: syntax, shapes, causality, cost in T, parameters, FLOPs and state.
    ///
    /// Exits 0 when the program is valid and 1 when it is not (the errors name line and column).
    Check(CheckArgs),
    /// The shipped architectures (seeds and baselines of every campaign).
    Library {
        #[command(subcommand)]
        command: LibraryCommand,
    },
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The program file, or `-` for standard input.
    file: PathBuf,
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
    /// Model width the program is checked at.
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    /// Sequence length for FLOPs and state size.
    #[arg(long, default_value_t = 512)]
    seq_len: usize,
    /// Blocks in the model, for the whole-model parameter count.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Vocabulary size, for the whole-model parameter count.
    #[arg(long, default_value_t = 256)]
    vocab: usize,
    /// Hidden width of the SwiGLU MLP (default: 2 × d_model).
    #[arg(long)]
    d_ff: Option<usize>,
    /// Reject programs whose cost in T is above this.
    #[arg(long, value_enum)]
    max_complexity: Option<ComplexityArg>,
    /// Override a hyperparameter: `--set heads=8` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_override)]
    overrides: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ComplexityArg {
    Linear,
    Window,
    Quadratic,
}

impl From<ComplexityArg> for Complexity {
    fn from(value: ComplexityArg) -> Self {
        match value {
            ComplexityArg::Linear => Complexity::Linear,
            ComplexityArg::Window => Complexity::Window,
            ComplexityArg::Quadratic => Complexity::Quadratic,
        }
    }
}

#[derive(Debug, Subcommand)]
enum LibraryCommand {
    /// List the library programs with cost class, parameters and state size.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print one library program.
    Show { name: String },
}

fn parse_override(text: &str) -> Result<(String, i64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, found `{text}`"))?;
    let value = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not an integer"))?;
    Ok((name.trim().to_string(), value))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check(args) => {
            let options = cli::check::CheckOptions {
                config: CheckConfig {
                    d_model: args.d_model,
                    seq_len: args.seq_len,
                    overrides: args.overrides.into_iter().collect(),
                    max_complexity: args.max_complexity.map(Complexity::from),
                },
                model: ModelShape {
                    d_model: args.d_model,
                    n_layers: args.layers,
                    vocab_size: args.vocab,
                    d_ff: args.d_ff.unwrap_or(2 * args.d_model),
                    seq_len: args.seq_len,
                },
                json: args.json,
            };
            cli::check::run(&args.file, &options)
        }
        Command::Library { command } => match command {
            LibraryCommand::List { json } => cli::library::list(json),
            LibraryCommand::Show { name } => cli::library::show(&name),
        },
    }
}
