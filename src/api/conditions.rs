//! An Experiment's conditions, for `kubectl describe exp`: what it is waiting for or why it
//! ended, in words, for every phase. Pure: the time comes in, and a condition keeps its
//! transition time while its status stays the same.

use super::campaign::Condition;
use crate::core::lifecycle::{Experiment, Outcome, Phase};

/// Longest condition message (the outcome's full text stays in `status.attempts`).
const MESSAGE_BYTES: usize = 1024;

pub fn experiment_conditions(
    record: &Experiment,
    previous: &[Condition],
    now: &str,
) -> Vec<Condition> {
    let attempt = record.current();
    let number = attempt.map_or(0, |a| a.number);
    let last_outcome = attempt.and_then(|a| a.outcome.as_ref());
    let (progressing, progress_reason, progress_message) = match record.phase {
        Phase::Proposing => (
            true,
            "Proposing",
            "waiting for the Researcher's proposal".to_string(),
        ),
        Phase::Training => {
            let retries = record.infrastructure_retries();
            let rerun = record
                .infrastructure_failures
                .last()
                .filter(|_| retries > 0)
                .map_or_else(String::new, |f| {
                    format!(" (rerun {retries} after: {})", f.reason)
                });
            let message = match attempt.and_then(|a| a.progress.last()) {
                Some(point) => format!(
                    "attempt {number} training: step {} of trial {}, loss {:.4}, {:.0} s elapsed{rerun}",
                    point.step,
                    point.trial + 1,
                    point.loss,
                    point.elapsed_s
                ),
                None => format!("attempt {number}: waiting for its trainer to start{rerun}"),
            };
            (true, "Training", message)
        }
        Phase::Revising => (
            true,
            "Revising",
            format!(
                "attempt {number} failed ({}); the Engineer is repairing the program",
                last_outcome.map(Outcome::describe).unwrap_or_default()
            ),
        ),
        Phase::Analysing => (
            true,
            "Analysing",
            match record.summary() {
                Some(summary) => format!(
                    "trained (validation loss {:.4}); the Analyst is analysing it",
                    summary.val_loss
                ),
                None => "the Analyst is analysing it".into(),
            },
        ),
        Phase::Succeeded | Phase::Failed => (false, "Ended", "the experiment has ended".into()),
    };
    let (succeeded, succeeded_reason, succeeded_message) = match record.phase {
        Phase::Succeeded => (
            Some(true),
            "Succeeded",
            format!(
                "fitness {}{}",
                record
                    .fitness
                    .map_or("unknown".into(), |f| format!("{f:.3}")),
                record.summary().map_or_else(String::new, |s| format!(
                    ", validation loss {:.4}",
                    s.val_loss
                ))
            ),
        ),
        Phase::Failed => (
            Some(false),
            last_outcome.map_or("Failed", outcome_reason),
            match (last_outcome, &record.analysis) {
                (Some(outcome), _) => format!(
                    "attempt {number} of {}: {}",
                    record.attempts.len(),
                    outcome.describe()
                ),
                (None, Some(analysis)) => analysis.clone(),
                (None, None) => "the experiment failed".into(),
            },
        ),
        _ => (None, "InProgress", "the experiment has not ended".into()),
    };
    let mut conditions = vec![
        condition(
            "Progressing",
            Some(progressing),
            progress_reason,
            progress_message,
            now,
        ),
        condition(
            "Succeeded",
            succeeded,
            succeeded_reason,
            succeeded_message,
            now,
        ),
    ];
    keep_transition_times(&mut conditions, previous);
    conditions
}

fn condition(
    type_: &str,
    status: Option<bool>,
    reason: &str,
    message: String,
    now: &str,
) -> Condition {
    let mut message = message;
    if message.len() > MESSAGE_BYTES {
        let mut end = MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    Condition {
        type_: type_.into(),
        status: match status {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        }
        .into(),
        reason: reason.into(),
        message,
        last_transition_time: now.into(),
        observed_generation: None,
    }
}

/// A condition whose status did not change keeps the time it last changed (shared by the
/// Campaign's and the Experiments' conditions).
pub fn keep_transition_times(conditions: &mut [Condition], previous: &[Condition]) {
    for condition in conditions {
        if let Some(old) = previous
            .iter()
            .find(|old| old.type_ == condition.type_ && old.status == condition.status)
        {
            condition.last_transition_time = old.last_transition_time.clone();
        }
    }
}

/// The outcome's kind as a condition reason.
fn outcome_reason(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Invalid { .. } => "InvalidProgram",
        Outcome::NotNovel { .. } => "NotNovel",
        Outcome::Stopped { .. } => "StoppedByQualityAssurance",
        Outcome::Diverged => "Diverged",
        Outcome::Crashed { .. } => "TrainerFailed",
        Outcome::Finished { .. } => "Finished",
        Outcome::AgentFailed { .. } => "AgentFailed",
        Outcome::Infrastructure { .. } => "InfrastructureFailed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Attempt, InfrastructureFailure, Stage};
    use crate::core::qa::ProgressPoint;

    fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("{type_}"))
    }

    fn training() -> Experiment {
        let mut e = Experiment::new(1, Stage::Exploration, None, vec![]);
        e.phase = Phase::Training;
        e.attempts.push(Attempt {
            number: 2,
            program: "p".into(),
            outcome: None,
            progress: vec![ProgressPoint {
                step: 340,
                loss: 1.23456,
                elapsed_s: 61.2,
                trial: 0,
            }],
            structure: None,
        });
        e
    }

    #[test]
    fn every_phase_says_what_it_waits_for() {
        let mut e = training();
        let c = experiment_conditions(&e, &[], "t");
        let progressing = find(&c, "Progressing");
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_str()),
            ("True", "Training")
        );
        assert_eq!(
            progressing.message,
            "attempt 2 training: step 340 of trial 1, loss 1.2346, 61 s elapsed"
        );
        assert_eq!(find(&c, "Succeeded").status, "Unknown");
        e.infrastructure_failures.push(InfrastructureFailure {
            attempt: 2,
            reason: "the node was lost".into(),
        });
        e.attempts[0].progress.clear();
        let c = experiment_conditions(&e, &[], "t");
        assert_eq!(
            find(&c, "Progressing").message,
            "attempt 2: waiting for its trainer to start (rerun 1 after: the node was lost)"
        );
        e.phase = Phase::Revising;
        e.attempts[0].outcome = Some(Outcome::Diverged);
        let c = experiment_conditions(&e, &[], "t");
        assert!(
            find(&c, "Progressing").message.contains("loss became NaN"),
            "{c:?}"
        );
        assert!(
            find(&c, "Progressing")
                .message
                .contains("the Engineer is repairing"),
            "{c:?}"
        );
    }

    #[test]
    fn an_ended_experiment_says_how() {
        let mut e = training();
        e.phase = Phase::Failed;
        e.attempts[0].outcome = Some(Outcome::Infrastructure {
            reason: "no node could run the pod: 0/3 nodes are available".into(),
        });
        let c = experiment_conditions(&e, &[], "t");
        let succeeded = find(&c, "Succeeded");
        assert_eq!(
            (succeeded.status.as_str(), succeeded.reason.as_str()),
            ("False", "InfrastructureFailed")
        );
        assert!(
            succeeded.message.contains("0/3 nodes are available"),
            "{}",
            succeeded.message
        );
        assert_eq!(find(&c, "Progressing").status, "False");
    }

    #[test]
    fn transition_times_hold_while_the_status_holds() {
        let e = training();
        let first = experiment_conditions(&e, &[], "t1");
        let again = experiment_conditions(&e, &first, "t2");
        assert_eq!(find(&again, "Progressing").last_transition_time, "t1");
        let mut ended = e.clone();
        ended.phase = Phase::Succeeded;
        let later = experiment_conditions(&ended, &again, "t3");
        assert_eq!(find(&later, "Progressing").last_transition_time, "t3");
        assert_eq!(find(&later, "Succeeded").status, "True");
    }
}
