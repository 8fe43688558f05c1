//! Reading a trainer's output lines. Lines that are not trainer events (warnings, partial
//! lines, other JSON) read as nothing rather than being trusted.

use crate::events::{BenchmarkScore, Status};
use serde::Deserialize;
use std::collections::BTreeMap;

/// What one line of trainer output says.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Progress {
        step: usize,
        /// NaN where the trainer wrote `null` (JSON has no NaN).
        loss: f64,
        elapsed_s: f64,
        trial: usize,
    },
    /// A result with status `ok` and a validation loss.
    Finished {
        val_loss: f64,
        accuracy: BTreeMap<String, f64>,
        wall_s: f64,
        params: u64,
        benchmarks: BTreeMap<String, BenchmarkScore>,
    },
    /// A result with status `diverged`, or `ok` without a validation loss.
    Diverged,
    /// A result with status `error`.
    Failed {
        error: Option<String>,
        /// A full disk stopped the trainer (see `TrainResult::storage_full`).
        storage_full: bool,
    },
}

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line {
    Progress {
        step: usize,
        loss: Option<f64>,
        elapsed_s: f64,
        #[serde(default)]
        trial: usize,
    },
    Result {
        status: Status,
        #[serde(default)]
        val_loss: Option<f64>,
        #[serde(default)]
        accuracy: BTreeMap<String, f64>,
        #[serde(default)]
        wall_s: f64,
        #[serde(default)]
        params: u64,
        #[serde(default)]
        benchmarks: BTreeMap<String, BenchmarkScore>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        storage_full: bool,
    },
}

/// The event a line carries, if it is one of the trainer's.
pub fn read(line: &str) -> Option<Reading> {
    let parsed: Line = serde_json::from_str(line.trim()).ok()?;
    Some(match parsed {
        Line::Progress {
            step,
            loss,
            elapsed_s,
            trial,
        } => Reading::Progress {
            step,
            loss: loss.unwrap_or(f64::NAN),
            elapsed_s,
            trial,
        },
        Line::Result {
            status: Status::Ok,
            val_loss: Some(val_loss),
            accuracy,
            wall_s,
            params,
            benchmarks,
            ..
        } => Reading::Finished {
            val_loss,
            accuracy,
            wall_s,
            params,
            benchmarks,
        },
        Line::Result {
            status: Status::Diverged,
            ..
        }
        | Line::Result {
            status: Status::Ok,
            val_loss: None,
            ..
        } => Reading::Diverged,
        Line::Result {
            status: Status::Error,
            error,
            storage_full,
            ..
        } => Reading::Failed {
            error,
            storage_full,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, Progress};

    #[test]
    fn progress_results_and_noise() {
        assert_eq!(
            read(
                r#"{"event":"progress","step":10,"loss":2.5,"lr":0.001,"tokens_per_s":1.0,"elapsed_s":0.5,"trial":1}"#
            ),
            Some(Reading::Progress {
                step: 10,
                loss: 2.5,
                elapsed_s: 0.5,
                trial: 1,
            })
        );
        match read(r#"{"event":"progress","step":3,"loss":null,"elapsed_s":0.1}"#) {
            Some(Reading::Progress { loss, .. }) => assert!(loss.is_nan()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read(r#"{"event":"result","status":"ok","val_loss":1.5,"accuracy":{"mqar":0.5},"wall_s":3.0,"params":10}"#),
            Some(Reading::Finished { val_loss, params: 10, .. }) if val_loss == 1.5
        ));
        assert_eq!(
            read(r#"{"event":"result","status":"diverged","val_loss":null}"#),
            Some(Reading::Diverged)
        );
        assert_eq!(
            read(r#"{"event":"result","status":"error","error":"bad config"}"#),
            Some(Reading::Failed {
                error: Some("bad config".into()),
                storage_full: false,
            })
        );
        for noise in [
            "",
            "warning: x",
            "{\"event\":\"other\"}",
            "{\"event\":\"progress\"",
            "[1,2]",
        ] {
            assert_eq!(read(noise), None, "{noise}");
        }
    }

    #[test]
    fn what_the_trainer_writes_reads_back() {
        let progress = Event::Progress(Progress {
            step: 7,
            loss: 1.25,
            lr: 0.01,
            tokens_per_s: 100.0,
            tokens: 512,
            elapsed_s: 2.5,
            trial: 2,
        });
        assert_eq!(
            read(&progress.to_line()),
            Some(Reading::Progress {
                step: 7,
                loss: 1.25,
                elapsed_s: 2.5,
                trial: 2
            })
        );
    }
}
