//! Size bounds on what the cluster stores: an Experiment resource must stay far below etcd's
//! object limit (1.5 MiB) whatever the agents write, so loss curves are thinned and long texts
//! are cut, keeping what QA, the agents and the report need (the current attempt's program
//! whole, the first and latest progress points, the ends of logs). Every bound here is at most
//! the Experiment schema's (`api::limits`): bytes, never fewer than characters.

use super::limits;
use crate::core::lifecycle::{Attempt, Experiment, Outcome};
use crate::core::qa::ProgressPoint;

/// Progress points kept for the attempt in progress / for earlier attempts.
pub const CURRENT_PROGRESS_POINTS: usize = 256;
pub const EARLIER_PROGRESS_POINTS: usize = 64;
/// Longest program kept for an earlier attempt (the current one is kept whole up to archspec's
/// size limit: it may train).
pub const EARLIER_PROGRAM_BYTES: usize = 4 * 1024;
pub const ANALYSIS_BYTES: usize = 16 * 1024;
pub const MOTIVATION_BYTES: usize = 4 * 1024;
pub const SUMMARY_BYTES: usize = 2 * 1024;
/// Text of an outcome (diagnostics, log tails, messages): the current attempt's / earlier ones'.
pub const CURRENT_OUTCOME_BYTES: usize = 4 * 1024;
pub const EARLIER_OUTCOME_BYTES: usize = 1024;
pub const INFRASTRUCTURE_FAILURES: usize = 16;

/// `experiment` within the bounds. Within them it is returned unchanged.
pub fn bounded(experiment: &Experiment) -> Experiment {
    let mut out = experiment.clone();
    let last = out.attempts.len().saturating_sub(1);
    for (index, attempt) in out.attempts.iter_mut().enumerate() {
        bound_attempt(attempt, index == last);
    }
    out.name = head(&out.name, limits::EXPERIMENT_NAME);
    out.motivation = head(&out.motivation, MOTIVATION_BYTES);
    out.retrieved.truncate(limits::TOP_K);
    for id in &mut out.retrieved {
        *id = head(id, limits::ENTRY_ID);
    }
    out.analysis = out.analysis.map(|a| head(&a, ANALYSIS_BYTES));
    out.problem_summary = out.problem_summary.map(|s| head(&s, SUMMARY_BYTES));
    let failures = out.infrastructure_failures.len();
    if failures > INFRASTRUCTURE_FAILURES {
        out.infrastructure_failures
            .drain(..failures - INFRASTRUCTURE_FAILURES);
    }
    for failure in &mut out.infrastructure_failures {
        failure.reason = head(&failure.reason, EARLIER_OUTCOME_BYTES);
    }
    out
}

fn bound_attempt(attempt: &mut Attempt, current: bool) {
    let (points, text) = if current {
        (CURRENT_PROGRESS_POINTS, CURRENT_OUTCOME_BYTES)
    } else {
        (EARLIER_PROGRESS_POINTS, EARLIER_OUTCOME_BYTES)
    };
    attempt.progress = thin(&attempt.progress, points);
    // Past archspec's size limit a program is refused unread, so its head is all it needs.
    attempt.program = head(
        &attempt.program,
        if current {
            limits::PROGRAM
        } else {
            EARLIER_PROGRAM_BYTES
        },
    );
    if let Some(outcome) = &mut attempt.outcome {
        match outcome {
            Outcome::Invalid { diagnostics } => *diagnostics = head(diagnostics, text),
            Outcome::NotNovel { reason, .. } | Outcome::Infrastructure { reason } => {
                *reason = head(reason, text)
            }
            Outcome::Crashed { message, log_tail } => {
                // An error chain says what failed first and why last: keep both ends.
                *message = middle(message, text / 2);
                // The end of a log says why it failed.
                *log_tail = tail(log_tail, text / 2);
            }
            Outcome::AgentFailed { message } => *message = middle(message, text),
            Outcome::Stopped { .. } | Outcome::Diverged | Outcome::Finished { .. } => {}
        }
    }
}

/// At most `max` points: the first, the last, and evenly spaced ones between, in order.
pub fn thin(points: &[ProgressPoint], max: usize) -> Vec<ProgressPoint> {
    if points.len() <= max || max < 2 {
        return points.iter().take(max).copied().collect();
    }
    let last = points.len() - 1;
    (0..max).map(|i| points[i * last / (max - 1)]).collect()
}

const CUT: &str = "…[cut]";

/// The first `max` bytes of `text` (on a character boundary), marked when cut.
fn head(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(CUT.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", &text[..end])
}

/// At most `max` bytes of `text`: its start and its end, marked where the middle was cut.
fn middle(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(CUT.len());
    let mut end = keep / 2;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut start = text.len() - (keep - end);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{}{CUT}{}", &text[..end], &text[start..])
}

/// The last `max` bytes of `text`, marked when cut.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max.saturating_sub(CUT.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{CUT}{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{InfrastructureFailure, Phase, Stage};
    use crate::core::qa::QaVerdict;

    fn points(n: usize) -> Vec<ProgressPoint> {
        (0..n)
            .map(|step| ProgressPoint {
                step,
                loss: 5.0 - step as f64 * 1e-4,
                elapsed_s: step as f64 * 0.123_456_789,
                trial: step / 10_000,
            })
            .collect()
    }

    /// Everything as large as an agent or a trainer can make it.
    fn worst_case() -> Experiment {
        let line = "  h = x |> linear(d_model) |> silu |> short_conv(4) |> linear(d_model) # ✓\n";
        let program: String = line.repeat(archspec::limits::MAX_SOURCE_BYTES / line.len());
        let long = "ü".repeat(200_000);
        let mut experiment =
            Experiment::new(99_999, Stage::Verification, Some(99_998), (0..16).collect());
        experiment.name = long.clone();
        experiment.motivation = long.clone();
        experiment.analysis = Some(long.clone());
        experiment.problem_summary = Some(long.clone());
        experiment.retrieved = (0..100).map(|i| format!("entry-{i}-{long}")).collect();
        experiment.phase = Phase::Failed;
        let revisions = crate::api::manifest::MAX_REVISIONS as usize;
        for number in 1..=revisions + 1 {
            experiment.attempts.push(Attempt {
                number: number as u32,
                program: program.clone(),
                outcome: Some(match number % 3 {
                    0 => Outcome::Crashed {
                        message: long.clone(),
                        log_tail: long.clone(),
                    },
                    1 => Outcome::Invalid {
                        diagnostics: long.clone(),
                    },
                    _ => Outcome::Stopped {
                        verdict: QaVerdict::NotFinite { step: 10 },
                    },
                }),
                progress: points(100_000),
                structure: None,
            });
        }
        experiment.infrastructure_failures = (0..100)
            .map(|i| InfrastructureFailure {
                attempt: 1 + i % 3,
                reason: long.clone(),
            })
            .collect();
        experiment
    }

    #[test]
    fn a_worst_case_experiment_stays_under_256_kib_as_a_resource() {
        let record = worst_case();
        let resource = crate::api::experiment::to_resource("a-campaign-with-a-long-name", &record);
        let json = serde_json::to_string(&resource).unwrap_or_default();
        assert!(json.len() < 256 * 1024, "{} bytes", json.len());
        // And within every bound of the CRD, which the API server enforces.
        let value = serde_json::to_value(&resource).unwrap_or_default();
        let schema = crate::api::crds::experiment_schema();
        assert_eq!(
            crate::api::schema_bounds::check(&schema, &value, ""),
            Ok(())
        );
        // What must survive: the current program whole, first and last progress points.
        let bounded = bounded(&record);
        let current = bounded.attempts.last().map(|a| a.program.clone());
        assert_eq!(current, record.attempts.last().map(|a| a.program.clone()));
        let progress = &bounded.attempts[0].progress;
        assert_eq!(progress.first(), record.attempts[0].progress.first());
        assert_eq!(progress.last(), record.attempts[0].progress.last());
    }

    #[test]
    fn small_records_are_unchanged() {
        let mut record = Experiment::new(1, Stage::Exploration, None, vec![]);
        record.motivation = "short".into();
        record.attempts.push(Attempt {
            number: 1,
            program: "mixer a(d_model) { return x }".into(),
            outcome: Some(Outcome::Crashed {
                message: "boom".into(),
                log_tail: "last line".into(),
            }),
            progress: points(100),
            structure: None,
        });
        assert_eq!(bounded(&record), record);
    }

    #[test]
    fn thinning_keeps_order_ends_and_count() {
        let all = points(1000);
        let kept = thin(&all, 64);
        assert_eq!(kept.len(), 64);
        assert_eq!(kept[0], all[0]);
        assert_eq!(kept[63], all[999]);
        assert!(kept.windows(2).all(|w| w[0].step < w[1].step));
        assert_eq!(thin(&all[..10], 64), all[..10].to_vec());
    }

    #[test]
    fn cuts_respect_character_boundaries_and_keep_the_end_of_logs() {
        let text = "é".repeat(100);
        let cut = head(&text, 51);
        assert!(cut.len() <= 51 && cut.ends_with(CUT), "{cut}");
        let log = format!("{}the real error", "x".repeat(10_000));
        assert!(tail(&log, 100).ends_with("the real error"));
    }

    #[test]
    fn a_cut_error_keeps_what_failed_and_why() {
        let error = format!(
            "reading text file /data/{}/корпус.txt: No such file or directory",
            "数据/".repeat(1000)
        );
        for max in [64, 65, 66, 2048] {
            let cut = middle(&error, max);
            assert!(cut.len() <= max, "{max}: {}", cut.len());
            assert!(cut.len() + 4 >= max, "{max}: {}", cut.len());
            assert!(cut.starts_with("reading text"), "{cut}");
            assert!(cut.ends_with("or directory") && cut.contains(CUT), "{cut}");
        }
        assert_eq!(middle("short", 64), "short");
    }
}
