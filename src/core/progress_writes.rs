//! When a step's result is written to memory. Every progress point stays in the engine's
//! mirror at once (QA judges each one, and a later write carries them all), but a step that
//! only added a progress point is written at most once per interval per experiment: a trainer
//! printing a line every few steps would otherwise cost the operator two API writes a line, and
//! the pod's ending, handled in order, would wait behind that backlog. Everything else — a
//! phase change, a QA stop, an ending — is written at once.

use super::lifecycle::{Effect, Event};
use std::time::Duration;

/// Progress-only changes of one experiment are written at most this often.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// What the engine does with the experiment a step produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Write it to memory now.
    Now,
    /// Keep it in the mirror; write it once `INTERVAL` has passed since the last write.
    Later,
}

/// The kind of event a step handled (taken before the event moves into the step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Progress,
    Other,
}

impl Handled {
    pub fn of(event: &Event) -> Handled {
        match event {
            Event::Progress(_) => Handled::Progress,
            _ => Handled::Other,
        }
    }
}

/// `since_written`: how long ago this experiment was last written by this run (`None`: not
/// yet, so memory may hold an older phase and the write cannot wait).
pub fn decide(
    handled: Handled,
    effects: &[Effect],
    since_written: Option<Duration>,
    interval: Duration,
) -> Write {
    let progress_only = handled == Handled::Progress && effects.is_empty();
    match since_written {
        Some(since) if progress_only && since < interval => Write::Later,
        _ => Write::Now,
    }
}

/// How long until a change kept for later must be written (zero: now).
pub fn due_in(since_written: Duration, interval: Duration) -> Duration {
    interval.saturating_sub(since_written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::qa::ProgressPoint;

    fn progress() -> Handled {
        Handled::of(&Event::Progress(ProgressPoint {
            trial: 0,
            step: 5,
            loss: 2.0,
            elapsed_s: 0.1,
        }))
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn progress_within_the_interval_of_the_last_write_waits() {
        assert_eq!(
            decide(progress(), &[], Some(SECOND), INTERVAL),
            Write::Later
        );
    }

    #[test]
    fn progress_once_the_interval_passed_is_written() {
        assert_eq!(
            decide(progress(), &[], Some(INTERVAL), INTERVAL),
            Write::Now
        );
    }

    #[test]
    fn progress_of_an_experiment_not_yet_written_by_this_run_is_written() {
        assert_eq!(decide(progress(), &[], None, INTERVAL), Write::Now);
    }

    #[test]
    fn a_progress_point_that_stops_the_trainer_is_written_at_once() {
        let stop = [Effect::StopTrainer {
            attempt: 1,
            reason: "NaN".into(),
        }];
        assert_eq!(
            decide(progress(), &stop, Some(SECOND), INTERVAL),
            Write::Now
        );
    }

    #[test]
    fn any_other_event_is_written_at_once() {
        let crashed = Handled::of(&Event::Crashed {
            message: "gone".into(),
            log_tail: String::new(),
        });
        assert_eq!(decide(crashed, &[], Some(SECOND), INTERVAL), Write::Now);
    }

    #[test]
    fn a_kept_change_is_due_when_the_interval_is_over() {
        assert_eq!(due_in(SECOND, INTERVAL), INTERVAL - SECOND);
        assert_eq!(due_in(INTERVAL * 2, INTERVAL), Duration::ZERO);
    }
}
