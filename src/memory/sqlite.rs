//! The SQLite store: one file in the state directory, write-ahead logging, a versioned schema
//! upgraded in place, and every write in a transaction so a killed process leaves either the
//! old or the new record, never half of one.

use super::{Loaded, MemoryError, Quarantined, Result, Store, fault};
use crate::core::budget::Usage;
use crate::core::lifecycle::{Attempt, Experiment, ExperimentId};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// Schema migrations; `user_version` holds how many have run.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE campaigns (
        name TEXT PRIMARY KEY,
        spec_json TEXT NOT NULL,
        usage_json TEXT NOT NULL
    );
    CREATE TABLE experiments (
        campaign TEXT NOT NULL REFERENCES campaigns(name),
        id INTEGER NOT NULL,
        name TEXT NOT NULL,
        stage TEXT NOT NULL,
        phase TEXT NOT NULL,
        parent INTEGER,
        fitness REAL,
        record_json TEXT NOT NULL,
        PRIMARY KEY (campaign, id)
    );
    CREATE TABLE attempts (
        campaign TEXT NOT NULL,
        experiment INTEGER NOT NULL,
        number INTEGER NOT NULL,
        program TEXT NOT NULL,
        outcome_json TEXT,
        progress_json TEXT NOT NULL,
        PRIMARY KEY (campaign, experiment, number),
        FOREIGN KEY (campaign, experiment) REFERENCES experiments(campaign, id)
    );
",
    "
    ALTER TABLE campaigns ADD COLUMN agents_json TEXT;
",
    // Each attempt's structural hash and distance features, so that novelty and the planner
    // need not re-check every stored program per proposal. Older rows stay NULL until the
    // engine that opens them fills them in (`Engine::open`).
    "
    ALTER TABLE attempts ADD COLUMN structure_json TEXT;
",
];

/// One row of the `attempts` table, its JSON columns as text.
struct AttemptRow {
    number: i64,
    program: String,
    outcome: Option<String>,
    progress: String,
    structure: Option<String>,
}

/// The database file's name inside the state directory.
pub const DATABASE: &str = "archlab.db";

pub struct SqliteStore {
    connection: Connection,
    path: String,
}

impl SqliteStore {
    /// Opens (creating if needed) `archlab.db` in `state_dir` and brings its schema up to date.
    pub fn open(state_dir: &Path) -> Result<SqliteStore> {
        let path = state_dir.join(DATABASE);
        let display = path.display().to_string();
        let database = |source| MemoryError::database(display.clone(), source);
        std::fs::create_dir_all(state_dir).map_err(|source| MemoryError::StateDir {
            path: state_dir.display().to_string(),
            source,
        })?;
        let connection = Connection::open(&path).map_err(database)?;
        connection
            .execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(database)?;
        // Before anything is written (even the journal mode): a file that is not ours, or is
        // damaged, is refused whole with one message and left exactly as it was.
        refuse_unusable(&connection, &display)?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")
            .map_err(database)?;
        let mut store = SqliteStore {
            connection,
            path: display,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Whether opening `state_dir`'s memory would write to it: no database yet, or one whose
    /// schema this archlab would upgrade. Reads without writing (a run may hold the state).
    pub fn open_would_write(state_dir: &Path) -> Result<bool> {
        let path = state_dir.join(DATABASE);
        if !path.exists() {
            return Ok(true);
        }
        let database = |source| MemoryError::database(path.display().to_string(), source);
        let connection =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(database)?;
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(database)?;
        Ok(version < MIGRATIONS.len() as i64)
    }

    fn error(&self, source: rusqlite::Error) -> MemoryError {
        MemoryError::database(self.path.clone(), source)
    }

    /// The schema version in the file.
    pub fn schema_version(&self) -> Result<i64> {
        self.connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| self.error(e))
    }

    fn migrate(&mut self) -> Result<()> {
        let version = self.schema_version()?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(MemoryError::NewerSchema {
                path: self.path.clone(),
                found: version,
                supported,
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let transaction = self
                .connection
                .transaction()
                .map_err(|e| MemoryError::database(self.path.clone(), e))?;
            transaction
                .execute_batch(migration)
                .and_then(|()| {
                    transaction.execute_batch(&format!("PRAGMA user_version = {}", index + 1))
                })
                .and_then(|()| transaction.commit())
                .map_err(|e| MemoryError::database(self.path.clone(), e))?;
        }
        Ok(())
    }
}

/// Refuses a database file that is not an SQLite database, is damaged (a truncated copy, a
/// disk error), or is another program's SQLite database (tables, but no archlab schema).
fn refuse_unusable(connection: &Connection, path: &str) -> Result<()> {
    let unusable = |reason: String| MemoryError::Unusable {
        path: path.to_string(),
        reason,
    };
    let describe = |error: rusqlite::Error| match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => "it is not an SQLite database".to_string(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => format!("it is damaged: {error}"),
        _ => format!("it cannot be read: {error}"),
    };
    // quick_check reads every page (O(size), about a second per 100 MB): a truncated file
    // fails here rather than in the middle of a campaign.
    let problems: Vec<String> = connection
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))
                .and_then(|rows| rows.collect())
        })
        .map_err(describe)
        .map_err(unusable)?;
    if problems != ["ok"] {
        return Err(unusable(format!("it is damaged: {}", problems.join("; "))));
    }
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(describe)
        .map_err(unusable)?;
    if version == 0 {
        let tables: Vec<String> = connection
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name LIMIT 5")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get::<_, String>(0))
                    .and_then(|rows| rows.collect())
            })
            .map_err(describe)
            .map_err(unusable)?;
        if !tables.is_empty() {
            return Err(unusable(format!(
                "it is another program's SQLite database (tables {})",
                tables.join(", ")
            )));
        }
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| MemoryError::Corrupt {
        what: what.to_string(),
        message: e.to_string(),
    })
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| MemoryError::Corrupt {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// One experiment from its row and its attempts' rows.
fn read_experiment(id: i64, record_json: &str, attempts: Vec<AttemptRow>) -> Result<Experiment> {
    let mut experiment: Experiment = from_json(record_json, &format!("experiment {id}"))?;
    if i64::try_from(experiment.id).ok() != Some(id) {
        return Err(MemoryError::Corrupt {
            what: format!("experiment {id}"),
            message: format!("its record says it is experiment {}", experiment.id),
        });
    }
    for row in attempts {
        let what = format!("attempt {} of experiment {id}", row.number);
        experiment.attempts.push(Attempt {
            number: u32::try_from(row.number).map_err(|e| MemoryError::Corrupt {
                what: what.clone(),
                message: e.to_string(),
            })?,
            program: row.program,
            outcome: row.outcome.map(|o| from_json(&o, &what)).transpose()?,
            progress: from_json(&row.progress, &what)?,
            structure: row.structure.map(|s| from_json(&s, &what)).transpose()?,
        });
    }
    Ok(experiment)
}

impl Store for SqliteStore {
    fn campaigns(&self) -> Result<Vec<String>> {
        let mut statement = self
            .connection
            .prepare("SELECT name FROM campaigns ORDER BY name")
            .map_err(|e| self.error(e))?;
        let names = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| self.error(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        Ok(names)
    }

    fn save_agent_stats(&mut self, campaign: &str, json: &str) -> Result<()> {
        self.connection
            .execute(
                "UPDATE campaigns SET agents_json = ?2 WHERE name = ?1",
                params![campaign, json],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    fn agent_stats(&self, campaign: &str) -> Result<Option<String>> {
        self.connection
            .query_row(
                "SELECT agents_json FROM campaigns WHERE name = ?1",
                [campaign],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.error(e))
    }

    fn campaign_spec(&self, name: &str) -> Result<Option<String>> {
        self.connection
            .query_row(
                "SELECT spec_json FROM campaigns WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    fn register_campaign(&mut self, name: &str, spec_json: &str) -> Result<()> {
        let stored: Option<String> = self
            .connection
            .query_row(
                "SELECT spec_json FROM campaigns WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        match stored {
            Some(stored) if stored == spec_json => Ok(()),
            Some(_) => Err(MemoryError::SpecChanged {
                name: name.to_string(),
                reason: "register it once; edits go through replace_campaign_spec".into(),
            }),
            None => {
                let usage = to_json(&Usage::default(), "usage")?;
                self.connection
                    .execute(
                        "INSERT INTO campaigns (name, spec_json, usage_json) VALUES (?1, ?2, ?3)",
                        params![name, spec_json, usage],
                    )
                    .map_err(|e| self.error(e))?;
                Ok(())
            }
        }
    }

    fn replace_campaign_spec(&mut self, name: &str, spec_json: &str) -> Result<()> {
        let changed = self
            .connection
            .execute(
                "UPDATE campaigns SET spec_json = ?2 WHERE name = ?1",
                params![name, spec_json],
            )
            .map_err(|e| self.error(e))?;
        if changed == 0 {
            return Err(MemoryError::Corrupt {
                what: format!("campaign {name}"),
                message: "not registered".into(),
            });
        }
        Ok(())
    }

    fn save_experiment(&mut self, campaign: &str, experiment: &Experiment) -> Result<()> {
        // The attempts live in their own table; the record keeps the rest.
        let mut record = experiment.clone();
        record.attempts.clear();
        let record_json = to_json(&record, "experiment")?;
        let stage = to_json(&experiment.stage, "stage")?;
        let phase = to_json(&experiment.phase, "phase")?;
        let attempts: Vec<AttemptRow> = experiment
            .attempts
            .iter()
            .map(|attempt| {
                Ok(AttemptRow {
                    number: i64::from(attempt.number),
                    program: attempt.program.clone(),
                    outcome: attempt
                        .outcome
                        .as_ref()
                        .map(|o| to_json(o, "outcome"))
                        .transpose()?,
                    progress: to_json(&attempt.progress, "progress")?,
                    structure: attempt
                        .structure
                        .as_ref()
                        .map(|s| to_json(s, "structure"))
                        .transpose()?,
                })
            })
            .collect::<Result<_>>()?;
        let path = self.path.clone();
        let database = |source| MemoryError::database(path.clone(), source);
        let transaction = self.connection.transaction().map_err(database)?;
        transaction
            .execute(
                "INSERT INTO experiments (campaign, id, name, stage, phase, parent, fitness, record_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (campaign, id) DO UPDATE SET name = excluded.name, stage = excluded.stage,
                   phase = excluded.phase, parent = excluded.parent, fitness = excluded.fitness,
                   record_json = excluded.record_json",
                params![
                    campaign,
                    experiment.id as i64,
                    experiment.name,
                    stage,
                    phase,
                    experiment.parent.map(|p| p as i64),
                    experiment.fitness,
                    record_json
                ],
            )
            .map_err(database)?;
        fault::point("save_experiment.between_rows");
        for row in attempts {
            transaction
                .execute(
                    "INSERT INTO attempts (campaign, experiment, number, program, outcome_json, progress_json, structure_json)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (campaign, experiment, number) DO UPDATE SET program = excluded.program,
                       outcome_json = excluded.outcome_json, progress_json = excluded.progress_json,
                       structure_json = excluded.structure_json",
                    params![
                        campaign,
                        experiment.id as i64,
                        row.number,
                        row.program,
                        row.outcome,
                        row.progress,
                        row.structure
                    ],
                )
                .map_err(database)?;
        }
        fault::point("save_experiment.before_commit");
        transaction.commit().map_err(database)?;
        fault::point("save_experiment.after_commit");
        Ok(())
    }

    fn load(&self, campaign: &str) -> Result<Loaded> {
        let mut statement = self
            .connection
            .prepare("SELECT id, record_json FROM experiments WHERE campaign = ?1 ORDER BY id")
            .map_err(|e| self.error(e))?;
        let rows: Vec<(i64, String)> = statement
            .query_map([campaign], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error(e))?;
        let mut attempts_statement = self
            .connection
            .prepare("SELECT number, program, outcome_json, progress_json, structure_json FROM attempts WHERE campaign = ?1 AND experiment = ?2 ORDER BY number")
            .map_err(|e| self.error(e))?;
        let mut loaded = Loaded::default();
        for (id, record_json) in rows {
            // Rows whose values SQLite cannot give as the columns' types fail the query: the
            // file is damaged, not one record. What fails to parse is that experiment's alone.
            let attempt_rows: Vec<AttemptRow> = attempts_statement
                .query_map(params![campaign, id], |row| {
                    Ok(AttemptRow {
                        number: row.get(0)?,
                        program: row.get(1)?,
                        outcome: row.get(2)?,
                        progress: row.get(3)?,
                        structure: row.get(4)?,
                    })
                })
                .and_then(|rows| rows.collect())
                .map_err(|e| self.error(e))?;
            match read_experiment(id, &record_json, attempt_rows) {
                Ok(experiment) => loaded.experiments.push(experiment),
                Err(error) => loaded.quarantined.push(Quarantined {
                    id: ExperimentId::try_from(id).unwrap_or(0),
                    reason: error.to_string(),
                }),
            }
        }
        Ok(loaded)
    }

    fn next_experiment_id(&self, campaign: &str) -> Result<ExperimentId> {
        let highest: Option<i64> = self
            .connection
            .query_row(
                "SELECT MAX(id) FROM experiments WHERE campaign = ?1",
                [campaign],
                |row| row.get(0),
            )
            .map_err(|e| self.error(e))?;
        Ok(highest.map_or(1, |id| id as u64 + 1))
    }

    fn add_usage(&mut self, campaign: &str, delta: &Usage) -> Result<Usage> {
        let path = self.path.clone();
        let database = |source| MemoryError::database(path.clone(), source);
        let transaction = self.connection.transaction().map_err(database)?;
        let stored: String = transaction
            .query_row(
                "SELECT usage_json FROM campaigns WHERE name = ?1",
                [campaign],
                |row| row.get(0),
            )
            .map_err(database)?;
        let current: Usage = from_json(&stored, "usage")?;
        let total = Usage {
            experiments: current.experiments + delta.experiments,
            compute_seconds: current.compute_seconds + delta.compute_seconds,
            llm_tokens: current.llm_tokens.saturating_add(delta.llm_tokens),
        };
        transaction
            .execute(
                "UPDATE campaigns SET usage_json = ?2 WHERE name = ?1",
                params![campaign, to_json(&total, "usage")?],
            )
            .map_err(database)?;
        transaction.commit().map_err(database)?;
        Ok(total)
    }

    fn usage(&self, campaign: &str) -> Result<Usage> {
        let stored: Option<String> = self
            .connection
            .query_row(
                "SELECT usage_json FROM campaigns WHERE name = ?1",
                [campaign],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        stored.map_or(Ok(Usage::default()), |s| from_json(&s, "usage"))
    }
}
