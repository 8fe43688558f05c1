//! When a running trainer has gone on too long: past its attempt deadline
//! (`qa.maxAttemptSeconds`, a pod's `activeDeadlineSeconds`), or silent — no line of output for
//! longer than `qa.silenceSeconds`, or `qa.silenceFactor` times the longest pause it has made
//! between lines so far, whichever is longer (a slow model that prints every ten minutes is not
//! hung; one that printed every second and stopped for half an hour is). The driver keeps the
//! clock and asks; a `Some` means kill the trainer and record the event.

use super::lifecycle::Event;
use super::qa::QaLimits;

/// What the driver knows of one running trainer, in seconds on its own clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Liveness {
    pub started_s: f64,
    /// The last line on stdout or stderr (`started_s` before the first).
    pub last_output_s: f64,
    /// The longest pause between lines so far, from the start to the first line included.
    pub longest_gap_s: f64,
}

/// Why a trainer is stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Overdue {
    Deadline { limit_s: u64 },
    Silent { silent_s: f64, limit_s: f64 },
}

impl Overdue {
    pub fn describe(&self) -> String {
        match self {
            Overdue::Deadline { limit_s } => {
                format!("the trainer ran past its deadline of {limit_s} s (qa.maxAttemptSeconds)")
            }
            Overdue::Silent { silent_s, limit_s } => format!(
                "the trainer printed nothing for {silent_s:.0} s (limit {limit_s:.0} s: \
                 qa.silenceSeconds, or qa.silenceFactor times its longest pause before) and was stopped"
            ),
        }
    }

    /// Both are the program's failure: it ran, and ran too long or hung.
    pub fn event(&self, log_tail: &str) -> Event {
        Event::Crashed {
            message: self.describe(),
            log_tail: log_tail.to_string(),
        }
    }
}

/// The longest a trainer that has paused `longest_gap_s` between lines may stay silent.
pub fn silence_limit(limits: &QaLimits, longest_gap_s: f64) -> f64 {
    (limits.silence_seconds as f64).max(limits.silence_factor * longest_gap_s)
}

/// Whether the trainer must be stopped at `now_s`.
pub fn overdue(limits: &QaLimits, liveness: &Liveness, now_s: f64) -> Option<Overdue> {
    if now_s - liveness.started_s > limits.max_attempt_seconds as f64 {
        return Some(Overdue::Deadline {
            limit_s: limits.max_attempt_seconds,
        });
    }
    let silent_s = now_s - liveness.last_output_s;
    let limit_s = silence_limit(limits, liveness.longest_gap_s);
    (silent_s > limit_s).then_some(Overdue::Silent { silent_s, limit_s })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> QaLimits {
        QaLimits {
            max_attempt_seconds: 1000,
            silence_seconds: 60,
            silence_factor: 10.0,
            ..QaLimits::default()
        }
    }

    fn liveness(last_output_s: f64, longest_gap_s: f64) -> Liveness {
        Liveness {
            started_s: 100.0,
            last_output_s,
            longest_gap_s,
        }
    }

    #[test]
    fn a_trainer_silent_past_the_floor_is_stopped_and_one_just_inside_it_is_not() {
        let alive = liveness(150.0, 1.0);
        assert_eq!(overdue(&limits(), &alive, 210.0), None);
        let stopped = overdue(&limits(), &alive, 210.5).expect("61 s of silence");
        assert_eq!(
            stopped,
            Overdue::Silent {
                silent_s: 60.5,
                limit_s: 60.0
            }
        );
        assert!(stopped.describe().contains("printed nothing for 60 s"));
    }

    #[test]
    fn a_slow_printer_gets_its_own_pauses_times_the_factor() {
        // It paused 30 s between lines before: 300 s of silence is still its pace.
        let slow = liveness(150.0, 30.0);
        assert_eq!(silence_limit(&limits(), 30.0), 300.0);
        assert_eq!(overdue(&limits(), &slow, 440.0), None);
        assert!(matches!(
            overdue(&limits(), &slow, 451.0),
            Some(Overdue::Silent { limit_s, .. }) if limit_s == 300.0
        ));
    }

    #[test]
    fn the_deadline_counts_from_the_start_whatever_the_trainer_prints() {
        let chatty = liveness(1099.0, 1.0);
        assert_eq!(overdue(&limits(), &chatty, 1100.0), None);
        let late = overdue(&limits(), &liveness(1100.5, 1.0), 1100.5).expect("past 1000 s");
        assert_eq!(late, Overdue::Deadline { limit_s: 1000 });
        match late.event("last lines") {
            Event::Crashed { message, log_tail } => {
                assert!(
                    message.contains("1000 s (qa.maxAttemptSeconds)"),
                    "{message}"
                );
                assert_eq!(log_tail, "last lines");
            }
            other => panic!("expected a crash, got {other:?}"),
        }
    }
}
