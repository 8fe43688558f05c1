//! Reading the trainer's JSON-lines contract into lifecycle events. Both bodies use it: the
//! local driver on a child's stdout, the operator on a pod's log stream. Lines that are not
//! trainer events (warnings, partial lines) are ignored rather than trusted.

use super::lifecycle::{Event, TrainSummary};
use super::qa::ProgressPoint;
use serde::Deserialize;
use std::collections::BTreeMap;

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
        status: trainer::Status,
        #[serde(default)]
        val_loss: Option<f64>,
        #[serde(default)]
        accuracy: BTreeMap<String, f64>,
        #[serde(default)]
        wall_s: f64,
        #[serde(default)]
        params: u64,
        #[serde(default)]
        benchmarks: BTreeMap<String, trainer::BenchmarkScore>,
        #[serde(default)]
        error: Option<String>,
    },
}

/// The event a line carries, if it is one of the trainer's.
pub fn parse_line(line: &str) -> Option<Event> {
    let parsed: Line = serde_json::from_str(line.trim()).ok()?;
    Some(match parsed {
        // JSON has no NaN: the trainer writes a non-finite loss as null.
        Line::Progress {
            step,
            loss,
            elapsed_s,
            trial,
        } => Event::Progress(ProgressPoint {
            step,
            loss: loss.unwrap_or(f64::NAN),
            elapsed_s,
            trial,
        }),
        Line::Result {
            status: trainer::Status::Ok,
            val_loss: Some(val_loss),
            mut accuracy,
            wall_s,
            params,
            benchmarks,
            ..
        } => {
            // A benchmark's `acc` is one more task accuracy: fitness, verification and the
            // report weigh it as they weigh the tasks'. A name a task has keeps the task's.
            for (name, score) in &benchmarks {
                accuracy.entry(name.clone()).or_insert(score.acc);
            }
            Event::Finished(TrainSummary {
                val_loss,
                accuracy,
                wall_s,
                params,
                benchmarks,
            })
        }
        Line::Result {
            status: trainer::Status::Diverged,
            ..
        }
        | Line::Result {
            status: trainer::Status::Ok,
            val_loss: None,
            ..
        } => Event::Diverged,
        Line::Result {
            status: trainer::Status::Error,
            error,
            ..
        } => Event::Crashed {
            message: error.unwrap_or_else(|| "the trainer reported an error".into()),
            log_tail: String::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_results_and_noise() {
        assert_eq!(
            parse_line(
                r#"{"event":"progress","step":10,"loss":2.5,"lr":0.001,"tokens_per_s":1.0,"elapsed_s":0.5,"trial":1}"#
            ),
            Some(Event::Progress(ProgressPoint {
                step: 10,
                loss: 2.5,
                elapsed_s: 0.5,
                trial: 1,
            }))
        );
        match parse_line(r#"{"event":"progress","step":3,"loss":null,"elapsed_s":0.1}"#) {
            Some(Event::Progress(point)) => assert!(point.loss.is_nan()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_line(r#"{"event":"result","status":"ok","val_loss":1.5,"accuracy":{"mqar":0.5},"wall_s":3.0,"params":10}"#),
            Some(Event::Finished(TrainSummary { val_loss, .. })) if val_loss == 1.5
        ));
        assert_eq!(
            parse_line(r#"{"event":"result","status":"diverged","val_loss":null}"#),
            Some(Event::Diverged)
        );
        assert!(matches!(
            parse_line(r#"{"event":"result","status":"error","error":"bad config"}"#),
            Some(Event::Crashed { message, .. }) if message == "bad config"
        ));
        for noise in [
            "",
            "warning: x",
            "{\"event\":\"other\"}",
            "{\"event\":\"progress\"",
            "[1,2]",
        ] {
            assert_eq!(parse_line(noise), None, "{noise}");
        }
    }

    #[test]
    fn a_benchmark_s_acc_weighs_in_as_a_task_accuracy_and_keeps_its_errors() {
        let line = r#"{"event":"result","status":"ok","val_loss":1.5,"accuracy":{"mqar":0.5},"wall_s":3.0,"params":10,
            "benchmarks":{"piqa":{"task":"piqa","n":500,"acc":0.61,"acc_stderr":0.0218,"acc_norm":0.6,"acc_norm_stderr":0.0219}}}"#;
        let Some(Event::Finished(summary)) = parse_line(&line.replace('\n', "")) else {
            panic!("a result line")
        };
        assert_eq!(
            summary.accuracy,
            BTreeMap::from([("mqar".to_string(), 0.5), ("piqa".to_string(), 0.61)])
        );
        let piqa = &summary.benchmarks["piqa"];
        assert_eq!(
            (piqa.n, piqa.acc_stderr, piqa.acc_norm),
            (500, Some(0.0218), Some(0.6))
        );
    }
}
