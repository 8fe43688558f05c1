//! Quality assurance: pure rules over a run's progress, deciding whether to stop it.
//! The driver feeds every progress line; a `Some(verdict)` means stop the trainer now.

use serde::{Deserialize, Serialize};

/// The longest any of QA's time limits may be set to: 30 days.
pub const MAX_SECONDS: u64 = 30 * 24 * 3600;

/// Thresholds, from the campaign spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QaLimits {
    /// Stop when the projected wall time exceeds this many times the median of finished peers.
    #[serde(default = "slow_factor")]
    #[schemars(range(min = 1.0, max = 1e6))]
    pub slow_factor: f64,
    /// Peers needed before the slowness rule applies.
    #[serde(default = "min_peers")]
    #[schemars(range(max = 100_000))]
    pub min_peers: usize,
    /// Stop when the loss exceeds this many times the first reported loss (after `grace_steps`).
    #[serde(default = "divergence_factor")]
    #[schemars(range(min = 1.0, max = 1e6))]
    pub divergence_factor: f64,
    /// Stop when the training loss falls below this fraction of the best validation loss known
    /// at this stage: far better than anything seen is a sign of future-token leakage.
    #[serde(default = "leakage_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub leakage_ratio: f64,
    /// The leakage rule only applies while the best known loss is above this (solved tasks can
    /// legitimately reach ~0).
    #[serde(default = "leakage_floor")]
    #[schemars(range(min = 0.0, max = 1e6))]
    pub leakage_floor: f64,
    /// Steps before the divergence and leakage rules apply.
    #[serde(default = "grace_steps")]
    #[schemars(range(max = 1_000_000_000))]
    pub grace_steps: usize,
    /// The leakage rule looks only at this first fraction of training: a leak shows as a
    /// collapse long before honest learning gets there (solved synthetic tasks legitimately
    /// end near zero).
    #[serde(default = "leakage_window")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub leakage_window: f64,
    /// Times one attempt is rerun after the infrastructure lost it (eviction, node lost, no
    /// node to schedule on, image pull); then the experiment fails, never charged as a
    /// revision.
    #[serde(default = "max_infrastructure_retries")]
    #[schemars(range(max = 100))]
    pub max_infrastructure_retries: u32,
    /// Longest one trainer run may take, in seconds (the pod's `activeDeadlineSeconds`).
    #[serde(default = "max_attempt_seconds")]
    #[schemars(range(min = 1, max = MAX_SECONDS))]
    pub max_attempt_seconds: u64,
    /// Seconds a local trainer may print nothing (stdout or stderr) before it is stopped as
    /// hung: the floor of the silence limit, long enough for start-up and final evaluation.
    #[serde(default = "silence_seconds")]
    #[schemars(range(min = 1, max = MAX_SECONDS))]
    pub silence_seconds: u64,
    /// A local trainer may also stay silent this many times the longest pause it made between
    /// lines so far (a slow model's own pace), when that is longer than `silenceSeconds`.
    #[serde(default = "silence_factor")]
    #[schemars(range(min = 1.0, max = 1e6))]
    pub silence_factor: f64,
    /// Seconds a trainer pod may wait for a node before that counts as an infrastructure
    /// failure.
    #[serde(default = "max_pending_seconds")]
    #[schemars(range(min = 1, max = MAX_SECONDS))]
    pub max_pending_seconds: u64,
    /// Seconds a trainer pod may be held by a scheduling gate (a queue such as Kueue waiting
    /// for quota) before that counts as an infrastructure failure. Queued time is never
    /// charged to the program, and it is not the wait for a node.
    #[serde(default = "max_queued_seconds")]
    #[schemars(range(min = 1, max = MAX_SECONDS))]
    pub max_queued_seconds: u64,
    /// Stop a proposal (or a program screened at a rung) whose training loss stays above this
    /// many times the worst loss its finished peers at the same rung had at the same point of
    /// training: its learning curve says it will not catch up. Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 1e6))]
    pub behind_factor: Option<f64>,
    /// The fraction of its steps a run must have done before it is compared with its peers'
    /// curves.
    #[serde(default = "behind_after")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub behind_after: f64,
}

fn behind_after() -> f64 {
    0.5
}

fn max_infrastructure_retries() -> u32 {
    3
}
fn max_attempt_seconds() -> u64 {
    24 * 3600
}
fn silence_seconds() -> u64 {
    1800
}
fn silence_factor() -> f64 {
    20.0
}
fn max_pending_seconds() -> u64 {
    600
}
fn max_queued_seconds() -> u64 {
    24 * 3600
}

fn slow_factor() -> f64 {
    3.0
}
fn min_peers() -> usize {
    3
}
fn divergence_factor() -> f64 {
    3.0
}
fn leakage_ratio() -> f64 {
    0.25
}
fn leakage_window() -> f64 {
    0.25
}
fn leakage_floor() -> f64 {
    0.1
}
fn grace_steps() -> usize {
    20
}

impl Default for QaLimits {
    fn default() -> Self {
        QaLimits {
            slow_factor: slow_factor(),
            min_peers: min_peers(),
            divergence_factor: divergence_factor(),
            leakage_ratio: leakage_ratio(),
            leakage_floor: leakage_floor(),
            grace_steps: grace_steps(),
            leakage_window: leakage_window(),
            max_infrastructure_retries: max_infrastructure_retries(),
            max_attempt_seconds: max_attempt_seconds(),
            silence_seconds: silence_seconds(),
            silence_factor: silence_factor(),
            max_pending_seconds: max_pending_seconds(),
            max_queued_seconds: max_queued_seconds(),
            behind_factor: None,
            behind_after: behind_after(),
        }
    }
}

/// One progress report of a running trainer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProgressPoint {
    pub step: usize,
    /// NaN or infinite losses are stored as `null` (JSON has no NaN) and read back as NaN.
    #[serde(with = "nullable_f64")]
    #[schemars(with = "Option<f64>")]
    pub loss: f64,
    /// Seconds since this trial started.
    pub elapsed_s: f64,
    /// Which learning rate of a sweep (0-based): each trial restarts its steps and clock.
    #[serde(default)]
    pub trial: usize,
}

/// Serde for a float that may be NaN: `null` on the wire.
mod nullable_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else {
            serializer.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
    }
}

/// What the rules know beyond the run itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QaContext {
    /// Steps of one trial (one learning rate).
    pub steps: usize,
    /// Trials in the run: the learning rates of a sweep, else 1.
    pub trials: usize,
    /// Wall times of finished runs of the same stage.
    pub peer_wall_s: Vec<f64>,
    /// The best validation loss known at this stage.
    pub best_val_loss: Option<f64>,
    /// Points of training (steps) with the highest training loss any finished peer had there,
    /// when enough peers have finished and the curve rule applies to this run.
    pub worst_peer_loss: Vec<(usize, f64)>,
}

/// The steps a run's curve is compared with its peers' at: when `behind_after` of training
/// is done, and halfway from there to the end.
pub fn curve_checkpoints(steps: usize, limits: &QaLimits) -> Vec<usize> {
    let after = limits.behind_after.clamp(0.0, 1.0);
    let first = (after * steps as f64).ceil() as usize;
    let second = ((1.0 + after) / 2.0 * steps as f64).ceil() as usize;
    let mut points = vec![first.max(1), second.max(1)];
    points.dedup();
    points
}

/// The highest training loss any of `curves` (each a finished peer's progress in its last
/// trial) had at each checkpoint: the first point at or after it. Empty below `min_peers`.
pub fn worst_at(
    curves: &[&[ProgressPoint]],
    checkpoints: &[usize],
    min_peers: usize,
) -> Vec<(usize, f64)> {
    if curves.len() < min_peers.max(1) {
        return Vec::new();
    }
    checkpoints
        .iter()
        .filter_map(|at| {
            let worst = curves
                .iter()
                .filter_map(|curve| {
                    let trial = curve.last()?.trial;
                    curve
                        .iter()
                        .find(|p| p.trial == trial && p.step >= *at && p.loss.is_finite())
                        .map(|p| p.loss)
                })
                .fold(f64::NEG_INFINITY, f64::max);
            worst.is_finite().then_some((*at, worst))
        })
        .collect()
}

/// Why QA stopped a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum QaVerdict {
    /// The loss is NaN or infinite.
    NotFinite { step: usize },
    /// The loss grew far above where it started.
    Diverging {
        step: usize,
        loss: f64,
        first_loss: f64,
    },
    /// At this pace the run would take far longer than its peers.
    TooSlow {
        projected_s: f64,
        peer_median_s: f64,
    },
    /// The loss is implausibly far below the best known.
    SuspectedLeakage { loss: f64, best_known: f64 },
    /// The learning curve is far behind every finished peer's at the same point of training.
    BehindPeers {
        step: usize,
        loss: f64,
        worst_peer_loss: f64,
        peer_step: usize,
    },
}

impl QaVerdict {
    /// A sentence for the Engineer and the report.
    pub fn describe(&self) -> String {
        match self {
            QaVerdict::NotFinite { step } => {
                format!("the loss became NaN or infinite at step {step}")
            }
            QaVerdict::Diverging {
                step,
                loss,
                first_loss,
            } => {
                format!(
                    "the loss rose to {loss:.3} at step {step} from {first_loss:.3} at the start: training diverges"
                )
            }
            QaVerdict::TooSlow {
                projected_s,
                peer_median_s,
            } => {
                format!(
                    "at this pace the run takes {projected_s:.0} s, against a median of {peer_median_s:.0} s for its peers"
                )
            }
            QaVerdict::BehindPeers {
                step,
                loss,
                worst_peer_loss,
                peer_step,
            } => format!(
                "training loss {loss:.3} at step {step} is far above the worst finished peer's {worst_peer_loss:.3} at step {peer_step}: at this rung its learning curve will not catch up"
            ),
            QaVerdict::SuspectedLeakage { loss, best_known } => format!(
                "training loss {loss:.4} is implausibly far below the best known validation loss {best_known:.4}: the mixer probably reads future tokens"
            ),
        }
    }
}

/// Applies every rule to the latest point of a run (`history` ends with it).
///
/// A learning-rate sweep runs several trials in one attempt, each restarting its steps and
/// clock. The rules read the current trial; a trial that diverges before the last one is the
/// sweep's business (the trainer moves on to the next rate), so NaN and divergence stop only
/// the last trial. Slowness projects the whole run: the trials done, the rest of this one and
/// the trials to come.
pub fn judge(
    history: &[ProgressPoint],
    context: &QaContext,
    limits: &QaLimits,
) -> Option<QaVerdict> {
    let latest = history.last()?;
    let trials = context.trials.max(1);
    let last_trial = latest.trial + 1 >= trials;
    if !latest.loss.is_finite() {
        return last_trial.then_some(QaVerdict::NotFinite { step: latest.step });
    }
    let first_loss = history
        .iter()
        .find(|p| p.trial == latest.trial)
        .map(|p| p.loss)
        .filter(|l| l.is_finite())?;
    let past_grace = latest.step >= limits.grace_steps;
    if last_trial && past_grace && latest.loss > limits.divergence_factor * first_loss {
        return Some(QaVerdict::Diverging {
            step: latest.step,
            loss: latest.loss,
            first_loss,
        });
    }
    let early = (latest.step as f64) <= limits.leakage_window * context.steps as f64;
    if past_grace
        && early
        && context.peer_wall_s.len() >= limits.min_peers
        && let Some(best) = context
            .best_val_loss
            .filter(|b| b.is_finite() && *b > limits.leakage_floor)
        && latest.loss < limits.leakage_ratio * best
    {
        return Some(QaVerdict::SuspectedLeakage {
            loss: latest.loss,
            best_known: best,
        });
    }
    if let Some(verdict) = behind_peers(history, context, limits) {
        return Some(verdict);
    }
    if context.peer_wall_s.len() >= limits.min_peers
        && latest.step > 0
        && let Some(peer_median_s) = super::stats::median(&context.peer_wall_s)
    {
        // Each earlier trial's time is the clock of its last point.
        let mut earlier_s = 0.0;
        for trial in 0..latest.trial {
            earlier_s += history
                .iter()
                .rev()
                .find(|p| p.trial == trial)
                .map_or(0.0, |p| p.elapsed_s);
        }
        let per_step_s = latest.elapsed_s / latest.step as f64;
        let this_trial_s = per_step_s * context.steps.max(latest.step) as f64;
        let later_trials = trials.saturating_sub(latest.trial + 1) as f64;
        let projected_s = earlier_s + this_trial_s * (1.0 + later_trials);
        if projected_s > limits.slow_factor * peer_median_s {
            return Some(QaVerdict::TooSlow {
                projected_s,
                peer_median_s,
            });
        }
    }
    None
}

/// The curve rule: past the latest checkpoint it has reached, the run's last
/// [`BEHIND_POINTS`] losses all lie above `behind_factor` times the worst peer's there. Only for
/// runs of one trial (a sweep's later rates restart the curve).
fn behind_peers(
    history: &[ProgressPoint],
    context: &QaContext,
    limits: &QaLimits,
) -> Option<QaVerdict> {
    let factor = limits.behind_factor.filter(|f| f.is_finite() && *f > 0.0)?;
    if context.trials > 1 {
        return None;
    }
    let latest = history.last()?;
    let (peer_step, worst) = context
        .worst_peer_loss
        .iter()
        .rev()
        .find(|(at, _)| *at <= latest.step)?;
    let recent: Vec<&ProgressPoint> = history
        .iter()
        .rev()
        .take_while(|p| p.step >= *peer_step && p.trial == latest.trial)
        .take(BEHIND_POINTS)
        .collect();
    let behind = recent.len() == BEHIND_POINTS && recent.iter().all(|p| p.loss > factor * worst);
    behind.then_some(QaVerdict::BehindPeers {
        step: latest.step,
        loss: latest.loss,
        worst_peer_loss: *worst,
        peer_step: *peer_step,
    })
}

/// Consecutive progress points that must all be behind (one batch's loss is noisy).
const BEHIND_POINTS: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: usize, loss: f64, elapsed_s: f64) -> ProgressPoint {
        ProgressPoint {
            step,
            loss,
            elapsed_s,
            trial: 0,
        }
    }

    fn check(history: &[ProgressPoint], context: &QaContext) -> Option<QaVerdict> {
        judge(history, context, &QaLimits::default())
    }

    #[test]
    fn a_nan_loss_survives_storage() {
        let json = serde_json::to_string(&point(3, f64::NAN, 0.1)).unwrap_or_default();
        assert!(json.contains("null"), "{json}");
        let back: ProgressPoint = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert!(back.loss.is_nan());
        assert_eq!(back.step, 3);
    }

    #[test]
    fn a_healthy_run_is_left_alone() {
        let context = QaContext {
            steps: 100,
            trials: 1,
            peer_wall_s: vec![10.0, 12.0, 11.0],
            best_val_loss: Some(2.0),
            worst_peer_loss: Vec::new(),
        };
        assert_eq!(
            check(&[point(10, 4.0, 1.0), point(50, 2.5, 5.5)], &context),
            None
        );
    }

    #[test]
    fn nan_stops_at_once_and_divergence_after_the_grace_steps() {
        let context = QaContext::default();
        assert_eq!(
            check(&[point(1, 4.0, 0.1), point(2, f64::NAN, 0.2)], &context),
            Some(QaVerdict::NotFinite { step: 2 })
        );
        assert_eq!(
            check(&[point(1, 4.0, 0.1), point(10, 13.0, 0.2)], &context),
            None,
            "within grace"
        );
        assert!(matches!(
            check(&[point(1, 4.0, 0.1), point(30, 13.0, 0.2)], &context),
            Some(QaVerdict::Diverging { .. })
        ));
        // Twice the first loss is a bump, not divergence (the factor is 3).
        assert_eq!(
            check(&[point(1, 4.0, 0.1), point(30, 11.0, 0.2)], &context),
            None
        );
    }

    #[test]
    fn slowness_is_judged_against_peers_only_when_there_are_enough() {
        let few = QaContext {
            steps: 100,
            trials: 1,
            peer_wall_s: vec![10.0],
            best_val_loss: None,
            worst_peer_loss: Vec::new(),
        };
        let slow_point = [point(10, 3.0, 5.0)]; // projects 50 s
        assert_eq!(check(&slow_point, &few), None);
        let enough = QaContext {
            peer_wall_s: vec![10.0, 12.0, 14.0],
            ..few
        };
        match check(&slow_point, &enough) {
            Some(QaVerdict::TooSlow {
                projected_s,
                peer_median_s,
            }) => assert_eq!((projected_s, peer_median_s), (50.0, 12.0)),
            other => panic!("expected too slow, got {other:?}"),
        }
        // Twice the median is slower, not too slow (the factor is 3).
        assert_eq!(check(&[point(10, 3.0, 3.0)], &enough), None);
    }

    #[test]
    fn a_loss_far_below_the_best_known_suggests_leakage_unless_the_task_is_solved() {
        let context = QaContext {
            steps: 100,
            trials: 1,
            peer_wall_s: vec![10.0, 10.0, 10.0],
            best_val_loss: Some(2.0),
            worst_peer_loss: Vec::new(),
        };
        assert!(matches!(
            check(&[point(1, 4.0, 0.1), point(20, 0.4, 1.0)], &context),
            Some(QaVerdict::SuspectedLeakage { .. })
        ));
        // The same loss late in training is honest learning.
        assert_eq!(
            check(&[point(1, 4.0, 0.1), point(60, 0.4, 6.0)], &context),
            None
        );
        // Too few finished peers to know what is plausible.
        let lonely = QaContext {
            peer_wall_s: vec![10.0],
            ..context.clone()
        };
        assert_eq!(
            check(&[point(1, 4.0, 0.1), point(20, 0.4, 1.0)], &lonely),
            None
        );
        // Within the window, but the best known loss is under the floor: a solved task.
        let solved = QaContext {
            best_val_loss: Some(0.09),
            ..context.clone()
        };
        assert_eq!(
            check(&[point(1, 4.0, 0.1), point(20, 0.001, 1.0)], &solved),
            None
        );
        let just_above_floor = QaContext {
            best_val_loss: Some(0.11),
            ..context.clone()
        };
        assert!(matches!(
            check(
                &[point(1, 4.0, 0.1), point(20, 0.001, 1.0)],
                &just_above_floor
            ),
            Some(QaVerdict::SuspectedLeakage { .. })
        ));
        // The window's edge: step 25 of 100 is inside, 26 outside; grace: step 19 is too early.
        assert!(check(&[point(1, 4.0, 0.1), point(25, 0.4, 1.0)], &context).is_some());
        assert_eq!(
            check(&[point(1, 4.0, 0.1), point(26, 0.4, 1.0)], &context),
            None
        );
        assert_eq!(
            check(&[point(1, 4.0, 0.1), point(19, 0.4, 1.0)], &context),
            None
        );
        // The ratio: below 0.25 × 2.0 = 0.5 fires, above does not.
        assert!(check(&[point(1, 4.0, 0.1), point(20, 0.49, 1.0)], &context).is_some());
        assert_eq!(
            check(&[point(1, 4.0, 0.1), point(20, 0.51, 1.0)], &context),
            None
        );
    }
    fn in_trial(trial: usize, step: usize, loss: f64, elapsed_s: f64) -> ProgressPoint {
        ProgressPoint {
            trial,
            ..point(step, loss, elapsed_s)
        }
    }

    #[test]
    fn in_a_sweep_an_early_trial_may_diverge_the_last_may_not() {
        let sweep = QaContext {
            steps: 100,
            trials: 2,
            ..QaContext::default()
        };
        // Trial 0 blows up: the trainer will move on to the next rate.
        let first = [in_trial(0, 1, 4.0, 0.1), in_trial(0, 30, 40.0, 1.0)];
        assert_eq!(check(&first, &sweep), None);
        let nan = [in_trial(0, 1, 4.0, 0.1), in_trial(0, 30, f64::NAN, 1.0)];
        assert_eq!(check(&nan, &sweep), None);
        // The last trial is judged, against its own first loss (not trial 0's 40).
        let mut history = first.to_vec();
        history.push(in_trial(1, 1, 4.0, 0.1));
        history.push(in_trial(1, 30, 20.0, 1.0));
        assert!(matches!(
            check(&history, &sweep),
            Some(QaVerdict::Diverging { first_loss, .. }) if first_loss == 4.0
        ));
        history.push(in_trial(1, 40, f64::NAN, 1.2));
        assert!(matches!(
            check(&history, &sweep),
            Some(QaVerdict::NotFinite { step: 40 })
        ));
        // A healthy second trial after a bad first one is left alone.
        let healthy = [
            in_trial(0, 30, 40.0, 1.0),
            in_trial(1, 1, 4.0, 0.1),
            in_trial(1, 30, 3.0, 1.0),
        ];
        assert_eq!(check(&healthy, &sweep), None);
    }

    #[test]
    fn a_sweep_is_projected_as_a_whole_for_slowness() {
        let sweep = QaContext {
            steps: 100,
            trials: 3,
            peer_wall_s: vec![30.0, 30.0, 30.0],
            best_val_loss: None,
            worst_peer_loss: Vec::new(),
        };
        // 0.1 s a step: each trial 10 s, the run 30 s, as its peers: not slow.
        let even = [in_trial(0, 100, 3.0, 10.0), in_trial(1, 50, 3.0, 5.0)];
        assert_eq!(check(&even, &sweep), None);
        // The second trial runs at 1 s a step: 10 + 100 + 100 s projected.
        let slow = [in_trial(0, 100, 3.0, 10.0), in_trial(1, 50, 3.0, 50.0)];
        match check(&slow, &sweep) {
            Some(QaVerdict::TooSlow { projected_s, .. }) => {
                assert!((projected_s - 210.0).abs() < 1e-9, "{projected_s}")
            }
            other => panic!("expected too slow, got {other:?}"),
        }
        // Steps restarting in the next trial do not make the run look fast or slow: the first
        // trial alone projects its own 10 s times three.
        let first = [in_trial(0, 50, 3.0, 5.0)];
        assert_eq!(check(&first, &sweep), None);
    }
    #[test]
    fn every_threshold_is_strict() {
        // Exactly at a threshold, no rule fires: each compares strictly.
        let diverging_edge = [point(1, 4.0, 0.1), point(30, 12.0, 0.2)]; // 3 × 4
        assert_eq!(check(&diverging_edge, &QaContext::default()), None);
        let leaky = QaContext {
            steps: 100,
            trials: 1,
            peer_wall_s: vec![10.0, 10.0, 10.0],
            best_val_loss: Some(2.0),
            worst_peer_loss: Vec::new(),
        };
        let ratio_edge = [point(1, 4.0, 0.1), point(20, 0.5, 1.0)]; // 0.25 × 2
        assert_eq!(check(&ratio_edge, &leaky), None);
        let at_floor = QaContext {
            best_val_loss: Some(0.1),
            ..leaky.clone()
        };
        assert_eq!(
            check(&[point(1, 4.0, 0.1), point(20, 0.001, 1.0)], &at_floor),
            None
        );
        let slow = QaContext {
            steps: 128,
            trials: 1,
            peer_wall_s: vec![16.0, 16.0, 16.0],
            best_val_loss: None,
            worst_peer_loss: Vec::new(),
        };
        let slow_edge = [point(64, 3.0, 24.0)]; // projects 48 s = 3 × 16, exactly
        assert_eq!(check(&slow_edge, &slow), None);
        // A point at step 0 projects nothing (no division by zero).
        assert_eq!(check(&[point(0, 3.0, 5.0)], &slow), None);
    }

    #[test]
    fn a_curve_far_behind_every_finished_peer_is_stopped_once_past_the_checkpoint() {
        let limits = QaLimits {
            behind_factor: Some(1.5),
            ..QaLimits::default()
        };
        // Three finished peers over 100 steps; checkpoints at 50 and 75.
        let peer = |end: f64| -> Vec<ProgressPoint> {
            (0..=10)
                .map(|k| point(10 * k, 4.0 - (4.0 - end) * k as f64 / 10.0, k as f64))
                .collect()
        };
        let peers = [peer(1.0), peer(0.5), peer(2.0)];
        let curves: Vec<&[ProgressPoint]> = peers.iter().map(|c| c.as_slice()).collect();
        let checkpoints = curve_checkpoints(100, &limits);
        assert_eq!(checkpoints, [50, 75]);
        // The worst peer (ending at 2.0) is at 3.0 at step 50, 2.4 at step 80 (the first
        // point at or after 75).
        let worst = worst_at(&curves, &checkpoints, 3);
        assert_eq!(worst.len(), 2);
        assert!(
            (worst[0].1 - 3.0).abs() < 1e-9 && (worst[1].1 - 2.4).abs() < 1e-9,
            "{worst:?}"
        );
        // Too few finished peers: no reference, no rule.
        assert!(worst_at(&curves[..2], &checkpoints, 3).is_empty());
        let context = QaContext {
            steps: 100,
            trials: 1,
            worst_peer_loss: worst,
            ..QaContext::default()
        };
        let flat = |until: usize| -> Vec<ProgressPoint> {
            (0..=until / 5)
                .map(|k| point(5 * k, 5.0, k as f64))
                .collect()
        };
        // Behind, but before the first checkpoint: left alone.
        assert_eq!(judge(&flat(45), &context, &limits), None);
        // Three points past step 50 above 1.5 × 3.0: stopped.
        match judge(&flat(60), &context, &limits) {
            Some(QaVerdict::BehindPeers {
                step,
                peer_step,
                worst_peer_loss,
                ..
            }) => {
                assert_eq!((step, peer_step), (60, 50));
                assert!((worst_peer_loss - 3.0).abs() < 1e-9);
            }
            other => panic!("expected a stop, got {other:?}"),
        }
        // Two points past it are not yet enough (one batch's loss is noisy).
        assert_eq!(judge(&flat(55), &context, &limits), None);
        // A curve within 1.5× of the worst peer goes on; so does any curve with the rule off
        // or in a learning-rate sweep.
        let close: Vec<ProgressPoint> = (0..=12).map(|k| point(5 * k, 4.4, k as f64)).collect();
        assert_eq!(judge(&close, &context, &limits), None);
        assert_eq!(judge(&flat(60), &context, &QaLimits::default()), None);
        let sweep = QaContext {
            trials: 2,
            ..context.clone()
        };
        assert_eq!(judge(&flat(60), &sweep, &limits), None);
    }
}
