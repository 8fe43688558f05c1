//! Memory: every campaign, experiment and attempt, failures included. The [`Store`] trait is
//! what drivers write through; [`sqlite::SqliteStore`] is the local-mode implementation (the
//! operator keeps the same records in Experiment resources).

pub mod lock;
pub mod sqlite;

use crate::core::budget::Usage;
use crate::core::lifecycle::{Experiment, ExperimentId};

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("creating the state directory {path}: {source}")]
    StateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Database {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}; this archlab reads up to {supported}")]
    NewerSchema {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("stored record {what} is unreadable: {message}")]
    Corrupt { what: String, message: String },
    #[error(
        "campaign `{name}` is already stored with a different spec ({reason}); use a new state directory or name"
    )]
    SpecChanged { name: String, reason: String },
    /// The Kubernetes API refused or failed a read or write of the operator's memory.
    #[error("Kubernetes API, {what}: {message}")]
    Cluster { what: String, message: String },
}

pub type Result<T, E = MemoryError> = std::result::Result<T, E>;

/// Persistent memory of campaigns. Every write is one transaction.
pub trait Store {
    /// Names of the campaigns in memory.
    fn campaigns(&self) -> Result<Vec<String>>;
    /// A campaign's spec as registered (JSON), if known.
    fn campaign_spec(&self, name: &str) -> Result<Option<String>>;
    /// Records a campaign's spec (as JSON) the first time; later calls must pass the same spec.
    fn register_campaign(&mut self, name: &str, spec_json: &str) -> Result<()>;
    /// Replaces a registered campaign's spec. Which edits are acceptable (a raised budget) is
    /// the core's rule, judged by the engine before it calls this.
    fn replace_campaign_spec(&mut self, name: &str, spec_json: &str) -> Result<()>;
    /// Inserts or replaces an experiment with all its attempts.
    fn save_experiment(&mut self, campaign: &str, experiment: &Experiment) -> Result<()>;
    /// Every experiment of a campaign, by id.
    fn experiments(&self, campaign: &str) -> Result<Vec<Experiment>>;
    /// The id the next experiment gets (one more than the highest stored).
    fn next_experiment_id(&self, campaign: &str) -> Result<ExperimentId>;
    /// Adds to the campaign's recorded usage and returns the new total.
    fn add_usage(&mut self, campaign: &str, delta: &Usage) -> Result<Usage>;
    fn usage(&self, campaign: &str) -> Result<Usage>;
    /// Stores the agents' statistics (JSON: per-role counters and any fallback reason).
    fn save_agent_stats(&mut self, campaign: &str, json: &str) -> Result<()>;
    fn agent_stats(&self, campaign: &str) -> Result<Option<String>>;
}
