//! The discovery core: everything that decides, as pure functions with no I/O, clock or
//! randomness of its own (time, ids and random generators come in as arguments). The local
//! driver and the Kubernetes operator both call it; neither decides anything itself.
//!
//! - [`lifecycle`]: the experiment state machine, `(experiment, event) -> (experiment, effects)`.
//! - [`sampling`]: two-tier choice of parent and references.
//! - [`novelty`]: structural and motivation novelty of a proposal.
//! - [`qa`]: rules that stop a running trainer.
//! - [`fitness`]: the documented fitness formula against the campaign's baseline.
//! - [`stats`]: mean and confidence interval over verification seeds.
//! - [`budget`]: experiments, compute hours and LLM tokens against the campaign's limits.

pub mod budget;
pub mod fitness;
pub mod lifecycle;
pub mod novelty;
pub mod qa;
pub mod sampling;
pub mod stats;
