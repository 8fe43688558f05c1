//! Trainer child processes: `archlab train` with the attempt's program and config written to
//! the run directory, stdout streamed line by line to the driver, a tail of stderr kept for
//! crash reports. The child watches its stdin, so it exits when the driver dies (even by
//! SIGKILL) instead of training on as an orphan.

use crate::core::lifecycle::ExperimentId;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use trainer::TrainConfig;

/// Lines of stderr kept for a crash report.
const STDERR_TAIL_LINES: usize = 20;

/// What the reader threads report to the driver loop.
#[derive(Debug)]
pub enum Message {
    Line {
        experiment: ExperimentId,
        attempt: u32,
        line: String,
    },
    /// The child closed its stdout: it has exited or is about to.
    Closed {
        experiment: ExperimentId,
        attempt: u32,
    },
    Interrupt,
}

pub struct TrainerChild {
    pub experiment: ExperimentId,
    pub attempt: u32,
    child: Child,
    // Held open so the child sees EOF only when we drop it or die.
    _stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<String>>,
}

/// The directory of one attempt's files.
pub fn run_dir(state: &Path, experiment: ExperimentId, attempt: u32) -> PathBuf {
    state
        .join("runs")
        .join(format!("e{experiment:05}"))
        .join(format!("a{attempt}"))
}

impl TrainerChild {
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        exe: &Path,
        state: &Path,
        experiment: ExperimentId,
        attempt: u32,
        program: &str,
        config: &TrainConfig,
        device: &str,
        messages: Sender<Message>,
    ) -> std::io::Result<TrainerChild> {
        let dir = run_dir(state, experiment, attempt);
        std::fs::create_dir_all(&dir)?;
        let program_path = dir.join("program.arch");
        let config_path = dir.join("config.json");
        std::fs::write(&program_path, program)?;
        let config_json = serde_json::to_string_pretty(config).map_err(std::io::Error::other)?;
        std::fs::write(&config_path, config_json)?;
        let mut child = Command::new(exe)
            .arg("train")
            .arg("--program")
            .arg(&program_path)
            .arg("--config")
            .arg(&config_path)
            .arg("--result")
            .arg(dir.join("result.json"))
            .arg("--device")
            .arg(device)
            .arg("--exit-on-stdin-eof")
            // Per attempt: a resumed campaign's restarted attempt goes on from its last save.
            .arg("--checkpoint-dir")
            .arg(dir.join("checkpoints"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let log_path = dir.join("stdout.jsonl");
        std::thread::spawn(move || {
            if let Some(stdout) = stdout {
                let mut log = std::fs::File::create(log_path).ok();
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(log) = log.as_mut() {
                        let _ = writeln!(log, "{line}");
                    }
                    let message = Message::Line {
                        experiment,
                        attempt,
                        line,
                    };
                    if messages.send(message).is_err() {
                        return;
                    }
                }
            }
            let _ = messages.send(Message::Closed {
                experiment,
                attempt,
            });
        });
        let stderr_log = dir.join("stderr.log");
        let stderr = stderr.map(|stderr| std::thread::spawn(move || tail(stderr, &stderr_log)));
        Ok(TrainerChild {
            experiment,
            attempt,
            _stdin: child.stdin.take(),
            child,
            stderr,
        })
    }

    /// Kills the child (if still running) and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the exit (after stdout closed) and returns the status with the stderr tail.
    pub fn finish(mut self) -> (Option<ExitStatus>, String) {
        let status = self.child.wait().ok();
        let tail = self
            .stderr
            .take()
            .and_then(|handle| handle.join().ok())
            .unwrap_or_default();
        (status, tail)
    }
}

/// Copies a stream to a log file and returns its last lines.
fn tail(stream: impl Read, log_path: &Path) -> String {
    let mut log = std::fs::File::create(log_path).ok();
    let mut lines: VecDeque<String> = VecDeque::new();
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if let Some(log) = log.as_mut() {
            let _ = writeln!(log, "{line}");
        }
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
    Vec::from(lines).join("\n")
}
