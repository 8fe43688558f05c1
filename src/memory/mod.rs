//! Memory: every campaign, experiment and attempt, failures included. The [`Store`] trait is
//! what drivers write through; [`sqlite::SqliteStore`] is the local-mode implementation (the
//! operator keeps the same records in Experiment resources).

pub mod fault;
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
    /// The disk holding the state is full: nothing half-written (the transaction rolled back).
    #[error(
        "the disk holding {path} is full; archlab stopped with its memory intact: free some space and run the same command to resume"
    )]
    DiskFull { path: String },
    #[error("database {path} has schema version {found}; this archlab reads up to {supported}")]
    NewerSchema {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error(
        "{path} is not a usable archlab memory: {reason}. archlab wrote nothing to it; move it aside (or restore a backup) and run again"
    )]
    Unusable { path: String, reason: String },
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

impl MemoryError {
    /// An SQLite error on `path`; a full disk is told apart, since it is the user's to mend.
    pub fn database(path: impl Into<String>, source: rusqlite::Error) -> MemoryError {
        let path = path.into();
        match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => MemoryError::DiskFull { path },
            _ => MemoryError::Database { path, source },
        }
    }
}

pub type Result<T, E = MemoryError> = std::result::Result<T, E>;

/// A stored experiment that cannot be read back (a damaged row). It is left out of the run
/// rather than stopping the campaign; its row stays as it was, for inspection, and its id is
/// never given again.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Quarantined {
    pub id: ExperimentId,
    /// Why it could not be read: which record, and the parser's message.
    pub reason: String,
}

/// A campaign's experiments as read back from memory.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every readable experiment, by id.
    pub experiments: Vec<Experiment>,
    pub quarantined: Vec<Quarantined>,
}

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
    /// Every experiment of a campaign, by id, and those that cannot be read back.
    fn load(&self, campaign: &str) -> Result<Loaded>;
    /// Every readable experiment of a campaign, by id.
    fn experiments(&self, campaign: &str) -> Result<Vec<Experiment>> {
        Ok(self.load(campaign)?.experiments)
    }
    /// The id the next experiment gets (one more than the highest stored).
    fn next_experiment_id(&self, campaign: &str) -> Result<ExperimentId>;
    /// Adds to the campaign's recorded usage and returns the new total.
    fn add_usage(&mut self, campaign: &str, delta: &Usage) -> Result<Usage>;
    fn usage(&self, campaign: &str) -> Result<Usage>;
    /// Stores the agents' statistics (JSON: per-role counters and any fallback reason).
    fn save_agent_stats(&mut self, campaign: &str, json: &str) -> Result<()>;
    fn agent_stats(&self, campaign: &str) -> Result<Option<String>>;
}
