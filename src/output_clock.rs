//! When a trainer last printed: the clock each driver keeps for the watchdog
//! (`core::watchdog` decides; it keeps no clock). The local driver ticks it from a child's
//! stdout and stderr readers, the operator from a pod's log stream.

use crate::core::watchdog::Liveness;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug)]
pub struct OutputClock {
    started: Instant,
    last_ms: AtomicU64,
    longest_gap_ms: AtomicU64,
}

impl OutputClock {
    /// A clock started now (the trainer's start).
    pub fn start() -> OutputClock {
        OutputClock {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            longest_gap_ms: AtomicU64::new(0),
        }
    }

    /// The trainer printed a line.
    pub fn tick(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        let before = self.last_ms.swap(now, Ordering::SeqCst);
        self.longest_gap_ms
            .fetch_max(now.saturating_sub(before), Ordering::SeqCst);
    }

    /// Its start and output so far, in seconds since it started, and the time now on that clock.
    pub fn liveness(&self) -> (Liveness, f64) {
        let seconds = |ms: &AtomicU64| ms.load(Ordering::SeqCst) as f64 / 1000.0;
        let liveness = Liveness {
            started_s: 0.0,
            last_output_s: seconds(&self.last_ms),
            longest_gap_s: seconds(&self.longest_gap_ms),
        };
        (liveness, self.started.elapsed().as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_moves_the_last_output_and_the_longest_gap() {
        let clock = OutputClock::start();
        let (before, _) = clock.liveness();
        assert_eq!((before.last_output_s, before.longest_gap_s), (0.0, 0.0));
        std::thread::sleep(std::time::Duration::from_millis(30));
        clock.tick();
        let (after, now) = clock.liveness();
        assert!(after.last_output_s >= 0.03 && after.last_output_s <= now);
        assert_eq!(after.longest_gap_s, after.last_output_s);
    }
}
