//! Reading the trainer's JSON-lines contract into lifecycle events. Both bodies use it: the
//! local driver on a child's stdout, the operator on a pod's log stream. The lines themselves
//! are read by the `protocol` crate (fuzzed there); what they mean to a run is decided here.

use super::lifecycle::{Event, TrainSummary};
use super::qa::ProgressPoint;
use protocol::Reading;

/// The event a line carries, if it is one of the trainer's.
pub fn parse_line(line: &str) -> Option<Event> {
    Some(match protocol::read(line)? {
        Reading::Progress {
            step,
            loss,
            elapsed_s,
            trial,
        } => Event::Progress(ProgressPoint {
            step,
            loss,
            elapsed_s,
            trial,
        }),
        Reading::Finished {
            val_loss,
            mut accuracy,
            wall_s,
            params,
            benchmarks,
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
        Reading::Diverged => Event::Diverged,
        // A full disk says nothing of the program: never charged to it (the local driver
        // stops the run; a pod's run is retried as the infrastructure's failure).
        Reading::Failed {
            error,
            storage_full: true,
        } => Event::InfrastructureFailed {
            reason: format!("the trainer's disk is full: {}", error.unwrap_or_default()),
        },
        Reading::Failed { error, .. } => Event::Crashed {
            message: error.unwrap_or_else(|| "the trainer reported an error".into()),
            log_tail: String::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn each_reading_becomes_its_lifecycle_event() {
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
        assert!(matches!(
            parse_line(r#"{"event":"result","status":"error"}"#),
            Some(Event::Crashed { message, .. }) if message == "the trainer reported an error"
        ));
        assert!(matches!(
            parse_line(r#"{"event":"result","status":"error","error":"checkpoint: x: No space left on device","storage_full":true}"#),
            Some(Event::InfrastructureFailed { reason }) if reason.contains("disk is full") && reason.contains("No space left")
        ));
        assert_eq!(parse_line("warning: x"), None);
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
