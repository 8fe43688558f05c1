//! Trainer child processes: `archlab train` with the attempt's program and config written to
//! the run directory, stdout streamed line by line to the driver, a tail of stderr kept for
//! crash reports. The child watches its stdin, so it exits when the driver dies (even by
//! SIGKILL) instead of training on as an orphan.

use super::capped_log::CappedLog;
use crate::core::lifecycle::ExperimentId;
use crate::core::watchdog::Liveness;
use crate::output_clock::OutputClock;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use protocol::lines::{Line, read_line};
use std::collections::VecDeque;
use std::io::{BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use trainer::TrainConfig;

/// Lines of stderr kept for a crash report.
const STDERR_TAIL_LINES: usize = 20;
/// The longest stdout line read (a result line with every benchmark is a few KiB).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The longest stderr line kept in the tail; longer ones are cut.
const MAX_STDERR_LINE_BYTES: usize = 4096;
/// What the run directory keeps of each stream.
const STDOUT_LOG_CAP: u64 = 64 << 20;
const STDERR_LOG_CAP: u64 = 16 << 20;
/// How long a trainer that closed its stdout may take to exit before it is stopped.
pub const EXIT_GRACE: Duration = Duration::from_secs(5);

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
    /// The child broke the output contract (bytes that are not UTF-8, a line past
    /// [`MAX_LINE_BYTES`]); its stdout is no longer read.
    Broken {
        experiment: ExperimentId,
        attempt: u32,
        reason: String,
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
    clock: Arc<OutputClock>,
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
            // Its own process group, so that stopping it stops whatever it started.
            .process_group(0)
            .spawn()?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let clock = Arc::new(OutputClock::start());
        let log_path = dir.join("stdout.jsonl");
        let stdout_clock = clock.clone();
        std::thread::spawn(move || {
            if let Some(stdout) = stdout
                && let Err(reason) = read_stdout(stdout, &log_path, &stdout_clock, |line| {
                    messages
                        .send(Message::Line {
                            experiment,
                            attempt,
                            line,
                        })
                        .is_ok()
                })
            {
                let _ = messages.send(Message::Broken {
                    experiment,
                    attempt,
                    reason,
                });
                return;
            }
            let _ = messages.send(Message::Closed {
                experiment,
                attempt,
            });
        });
        let stderr_log = dir.join("stderr.log");
        let stderr_clock = clock.clone();
        let stderr = stderr
            .map(|stderr| std::thread::spawn(move || tail(stderr, &stderr_log, &stderr_clock)));
        Ok(TrainerChild {
            experiment,
            attempt,
            _stdin: child.stdin.take(),
            child,
            stderr,
            clock,
        })
    }

    /// Its start and output so far, in seconds since it started, and the time now on that clock.
    pub fn liveness(&self) -> (Liveness, f64) {
        self.clock.liveness()
    }

    /// Kills the child and its process group (if still running) and reaps it.
    pub fn kill(mut self) {
        self.kill_group();
        let _ = self.child.wait();
    }

    /// Kills the child and its process group, reaps it and returns its stderr tail.
    pub fn stop(mut self) -> String {
        self.kill_group();
        let _ = self.child.wait();
        self.stderr_tail()
    }

    /// Waits up to `grace` for the exit (after stdout closed); a child still running then is
    /// killed. Returns the status (`None` when it had to be killed or vanished), whether it
    /// was killed, and the stderr tail.
    pub fn finish(mut self, grace: Duration) -> (Option<ExitStatus>, bool, String) {
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return (Some(status), false, self.stderr_tail()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    self.kill_group();
                    let _ = self.child.wait();
                    return (None, true, self.stderr_tail());
                }
                Err(_) => return (None, false, self.stderr_tail()),
            }
        }
    }

    /// SIGKILL to the child's process group; only while the child is unreaped, so the group's
    /// id cannot have been reused.
    fn kill_group(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
    }

    /// The stderr reader's tail, once it has read to the end; a stream still held open by
    /// something outside the process group is given up on after a moment.
    fn stderr_tail(&mut self) -> String {
        let Some(handle) = self.stderr.take() else {
            return String::new();
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if handle.is_finished() {
            handle.join().unwrap_or_default()
        } else {
            String::new()
        }
    }
}

/// Reads stdout line by line into the log and `deliver` (which says whether to go on); an
/// error is how the trainer broke the output contract.
fn read_stdout(
    stream: impl Read,
    log_path: &Path,
    clock: &OutputClock,
    mut deliver: impl FnMut(String) -> bool,
) -> Result<(), String> {
    let mut reader = BufReader::new(stream);
    let mut log = CappedLog::create(log_path, STDOUT_LOG_CAP);
    let mut number = 0usize;
    loop {
        let line = match read_line(&mut reader, MAX_LINE_BYTES) {
            Ok(Line::End) | Err(_) => return Ok(()),
            Ok(line) => line,
        };
        number += 1;
        clock.tick();
        match line {
            Line::Text(bytes) => {
                log.write_line(&bytes);
                let Ok(text) = String::from_utf8(bytes) else {
                    return Err(format!(
                        "line {number} of the trainer's output is not UTF-8 text"
                    ));
                };
                if !deliver(text) {
                    return Ok(());
                }
            }
            Line::TooLong(start) => {
                log.write_line(&start);
                return Err(format!(
                    "line {number} of the trainer's output is longer than {MAX_LINE_BYTES} bytes"
                ));
            }
            Line::End => return Ok(()),
        }
    }
}

/// Copies a stream to a capped log file and returns its last lines (each cut at
/// [`MAX_STDERR_LINE_BYTES`]).
fn tail(stream: impl Read, log_path: &Path, clock: &OutputClock) -> String {
    let mut reader = BufReader::new(stream);
    let mut log = CappedLog::create(log_path, STDERR_LOG_CAP);
    let mut lines: VecDeque<String> = VecDeque::new();
    loop {
        let (bytes, cut) = match read_line(&mut reader, MAX_STDERR_LINE_BYTES) {
            Ok(Line::Text(bytes)) => (bytes, false),
            Ok(Line::TooLong(bytes)) => (bytes, true),
            Ok(Line::End) | Err(_) => break,
        };
        clock.tick();
        log.write_line(&bytes);
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        let mut line = String::from_utf8_lossy(&bytes).into_owned();
        if cut {
            line.push_str(" […]");
        }
        lines.push_back(line);
    }
    Vec::from(lines).join("\n")
}
