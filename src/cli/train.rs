//! `archlab train`: trains one archspec program with one config and prints JSON lines.
//!
//! Exit codes: 0 when a result was produced (`ok` or `diverged`), 1 when the program, config
//! or data is invalid (before any training) or training failed with an error, 143 (128 +
//! SIGTERM) when SIGTERM stopped it first: no result line then, since the run did not end; with
//! `--checkpoint-dir` the step it reached is saved and the same command resumes there.

use super::{EXIT_FAILURE, EXIT_OK, exit};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use trainer::{Event, Status, TrainConfig};

/// The exit status of a run stopped by SIGTERM, as a shell reports a process it killed.
const EXIT_STOPPED: u8 = 128 + 15;

/// Where a text input comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    File(PathBuf),
    /// An environment variable (how the operator hands a pod its program and config).
    Env(String),
}

impl Input {
    fn read(&self) -> Result<String> {
        match self {
            Input::File(path) => read(path),
            Input::Env(name) => std::env::var(name)
                .with_context(|| format!("reading the environment variable {name}")),
        }
    }

    fn describe(&self) -> String {
        match self {
            Input::File(path) => path.display().to_string(),
            Input::Env(name) => format!("${name}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub program: Input,
    pub config: Input,
    pub result: Option<PathBuf>,
    pub termination_message: Option<PathBuf>,
    pub device: String,
    pub exit_on_stdin_eof: bool,
    pub dump_first_step: Option<PathBuf>,
    pub checkpoint_dir: Option<PathBuf>,
}

pub fn run(options: &TrainOptions) -> Result<ExitCode> {
    if options.exit_on_stdin_eof {
        exit_when_stdin_closes();
    }
    let prepared = match load(options) {
        Ok(prepared) => prepared,
        Err(error) => {
            let message = format!("{error:#}");
            eprintln!("error: {message}");
            let line = serde_json::json!({"event": "result", "status": "error", "error": message})
                .to_string();
            println!("{line}");
            write_outputs(options, &line)?;
            return Ok(exit(EXIT_FAILURE));
        }
    };
    let device = trainer::device(&options.device)?;
    if let Some(path) = &options.dump_first_step {
        let step = trainer::first_step::first_step(&prepared, &device)?;
        let json = serde_json::to_string(&step).context("serialising the first step")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "wrote the first step (loss {:.6}) to {}",
            step.loss,
            path.display()
        );
        return Ok(exit(EXIT_OK));
    }
    // The kubelet sends SIGTERM when the pod is deleted or evicted and SIGKILL when its grace
    // period ends. As a container's PID 1 the trainer would otherwise ignore SIGTERM (the
    // kernel drops signals PID 1 has no handler for), losing the grace period.
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(error) = signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))
    {
        eprintln!("warning: SIGTERM will kill the trainer without a checkpoint: {error}");
    }
    let mut stdout = std::io::stdout().lock();
    let mut emit = |event: Event| {
        // A closed stdout (the reader went away) must not stop training.
        let _ = writeln!(stdout, "{}", event.to_line());
        let _ = stdout.flush();
    };
    let result = trainer::run_with_checkpoints(
        &prepared,
        &device,
        options.checkpoint_dir.as_deref(),
        &stop,
        &mut emit,
    );
    if stop.load(Ordering::Relaxed) && result.status == Status::Error {
        // Not a result: the run was interrupted, not finished, and whoever reruns it decides.
        let message = result.error.unwrap_or_default();
        eprintln!("{message}");
        if let Some(path) = &options.termination_message {
            write_termination_message(path, &message)?;
        }
        return Ok(exit(EXIT_STOPPED));
    }
    let status = result.status;
    let line = Event::Result(Box::new(result)).to_line();
    emit_line(&line);
    write_outputs(options, &line)?;
    Ok(exit(if status == Status::Error {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }))
}

/// `archlab run` holds our stdin open; EOF means it is gone (even by SIGKILL), so stop
/// rather than train on as an orphan. Ctrl-C in the terminal reaches us too; the driver
/// decides what stops, so we ignore it.
fn exit_when_stdin_closes() {
    let _ = ctrlc::set_handler(|| {});
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin().lock();
        loop {
            match std::io::Read::read(&mut stdin, &mut sink) {
                Ok(0) | Err(_) => std::process::exit(3),
                Ok(_) => {}
            }
        }
    });
}

fn emit_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn load(options: &TrainOptions) -> Result<trainer::Prepared> {
    let program = options.program.read()?;
    let config_text = options.config.read()?;
    let config = TrainConfig::from_yaml(&config_text)
        .map_err(|message| anyhow::anyhow!("{}: {message}", options.config.describe()))?;
    // A data error names its own file; only the program's and config's need their source.
    trainer::prepare(&program, config).map_err(|error| match error {
        trainer::TrainError::InvalidProgram(_) => {
            anyhow::Error::new(error).context(options.program.describe())
        }
        trainer::TrainError::InvalidConfig(_) => {
            anyhow::Error::new(error).context(options.config.describe())
        }
        other => anyhow::Error::new(other),
    })
}

fn read(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn write_outputs(options: &TrainOptions, line: &str) -> Result<()> {
    if let Some(path) = &options.result {
        std::fs::write(path, format!("{line}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &options.termination_message {
        write_termination_message(path, line)?;
    }
    Ok(())
}

/// Writes `text` within the bytes the kubelet keeps of a termination message: a result line
/// too long for it keeps its fields, with the error shortened in its middle.
fn write_termination_message(path: &Path, text: &str) -> Result<()> {
    let message = protocol::termination_message(text, protocol::TERMINATION_MESSAGE_LIMIT);
    std::fs::write(path, message).with_context(|| format!("writing {}", path.display()))
}
