//! The discovery core: everything that decides, as pure functions with no I/O, clock or
//! randomness of its own (time, ids and random generators come in as arguments). The local
//! driver and the Kubernetes operator both call it; neither decides anything itself.
//!
//! - [`lifecycle`]: the experiment state machine, `(experiment, event) -> (experiment, effects)`.
//! - [`campaign`]: what to create next (seeds, proposals, promotions), reconcile-style.
//! - [`ladder`]: the rungs between exploration and verification (successive halving), and how
//!   well each rung predicted the next (Spearman).
//! - [`verification`]: verified means and intervals, paired comparisons, the claim rule (Holm
//!   over the campaign), the noise floor, the discovery curve.
//! - [`false_claims`]: the claim rule's false-claim rate, simulated under a campaign's noise.
//! - [`sampling`]: two-tier choice of parent and references.
//! - [`novelty`]: structural and motivation novelty of a proposal.
//! - [`qa`]: rules that stop a running trainer.
//! - [`watchdog`]: when a running trainer is past its deadline or silent for too long.
//! - [`progress_writes`]: which steps are written to memory at once, which at a bounded rate.
//! - [`fitness`]: the documented fitness formula against the campaign's baseline.
//! - [`stats`]: mean and confidence interval, paired t-test, Wilcoxon's signed-rank, Holm,
//!   Spearman.
//! - [`trainer_output`]: the trainer's JSON lines as lifecycle events.
//! - [`budget`]: experiments, compute hours and LLM tokens against the campaign's limits.

pub mod budget;
pub mod campaign;
pub mod false_claims;
pub mod fitness;
pub mod ladder;
pub mod lifecycle;
pub mod novelty;
pub mod progress_writes;
pub mod qa;
pub mod sampling;
pub mod spec_change;
pub mod stats;
pub mod trainer_output;
pub mod verification;
pub mod watchdog;
