//! The SQLite memory on real files: records round-trip across reopening, writes are upserts,
//! usage accumulates, the schema is versioned and a newer one is refused.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

use archlab::core::budget::Usage;
use archlab::core::lifecycle::{Attempt, Experiment, Outcome, Phase, Stage, TrainSummary};
use archlab::core::qa::ProgressPoint;
use archlab::memory::sqlite::SqliteStore;
use archlab::memory::{MemoryError, Store};
use archspec::canon::Structure;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archlab-memory-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn experiment(id: u64) -> Experiment {
    let mut experiment = Experiment::new(id, Stage::Exploration, Some(1), vec![2, 3]);
    experiment.name = format!("candidate-{id}");
    experiment.motivation = "forget stale keys".into();
    experiment.retrieved = vec!["gated-deltanet".into(), "gla".into()];
    experiment.attempts.push(Attempt {
        number: 1,
        program: "mixer a(d_model) { return x }".into(),
        outcome: Some(Outcome::Invalid {
            diagnostics: "error[E0401] at 2:10: not causal".into(),
        }),
        progress: vec![],
        structure: None,
    });
    experiment.attempts.push(Attempt {
        number: 2,
        program: "mixer b(d_model) { return x }".into(),
        outcome: Some(Outcome::Finished {
            summary: TrainSummary {
                val_loss: 1.25,
                accuracy: BTreeMap::from([("mqar".into(), 0.75)]),
                wall_s: 12.5,
                params: 4096,
                benchmarks: BTreeMap::new(),
            },
        }),
        progress: vec![ProgressPoint {
            step: 10,
            loss: 2.5,
            elapsed_s: 1.5,
            trial: 0,
        }],
        structure: Some(Structure {
            hash: "00000000deadbeef".into(),
            features: BTreeMap::from([("linear".into(), 2), ("silu<-linear".into(), 1)]),
        }),
    });
    experiment.phase = Phase::Analysing;
    experiment.fitness = Some(0.625);
    experiment
}

#[test]
fn experiments_and_their_attempts_survive_reopening() {
    let dir = state_dir("roundtrip");
    {
        let mut store = SqliteStore::open(&dir).unwrap();
        store.register_campaign("c", "{\"seeds\":[]}").unwrap();
        store.save_experiment("c", &experiment(1)).unwrap();
        store.save_experiment("c", &experiment(2)).unwrap();
    }
    let store = SqliteStore::open(&dir).unwrap();
    let stored = store.experiments("c").unwrap();
    assert_eq!(stored, vec![experiment(1), experiment(2)]);
    assert_eq!(store.next_experiment_id("c").unwrap(), 3);
    assert_eq!(store.next_experiment_id("other").unwrap(), 1);
}

#[test]
fn saving_again_updates_in_place_and_keeps_every_attempt() {
    let dir = state_dir("upsert");
    let mut store = SqliteStore::open(&dir).unwrap();
    store.register_campaign("c", "{}").unwrap();
    let mut record = experiment(5);
    store.save_experiment("c", &record).unwrap();
    record.phase = Phase::Succeeded;
    record.analysis = Some("better than its parent".into());
    record.attempts.push(Attempt {
        number: 3,
        program: "mixer c(d_model) { return x }".into(),
        outcome: None,
        progress: vec![],
        structure: None,
    });
    store.save_experiment("c", &record).unwrap();
    let stored = store.experiments("c").unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0], record);
    assert_eq!(stored[0].attempts.len(), 3);
}

#[test]
fn usage_accumulates_and_persists() {
    let dir = state_dir("usage");
    {
        let mut store = SqliteStore::open(&dir).unwrap();
        store.register_campaign("c", "{}").unwrap();
        store
            .add_usage(
                "c",
                &Usage {
                    experiments: 1,
                    compute_seconds: 10.0,
                    llm_tokens: 100,
                },
            )
            .unwrap();
        let total = store
            .add_usage(
                "c",
                &Usage {
                    experiments: 1,
                    compute_seconds: 5.0,
                    llm_tokens: 0,
                },
            )
            .unwrap();
        assert_eq!(
            total,
            Usage {
                experiments: 2,
                compute_seconds: 15.0,
                llm_tokens: 100
            }
        );
    }
    let store = SqliteStore::open(&dir).unwrap();
    assert_eq!(store.usage("c").unwrap().experiments, 2);
}

#[test]
fn a_changed_spec_under_the_same_name_is_refused() {
    let dir = state_dir("spec");
    let mut store = SqliteStore::open(&dir).unwrap();
    store.register_campaign("c", "{\"a\":1}").unwrap();
    store.register_campaign("c", "{\"a\":1}").unwrap();
    assert!(
        matches!(store.register_campaign("c", "{\"a\":2}"), Err(MemoryError::SpecChanged { name, .. }) if name == "c")
    ); // A replaced spec is the registered one from then on, and survives reopening.
    store.replace_campaign_spec("c", "{\"a\":2}").unwrap();
    drop(store);
    let mut store = SqliteStore::open(&dir).unwrap();
    store.register_campaign("c", "{\"a\":2}").unwrap();
    assert_eq!(
        store.campaign_spec("c").unwrap().as_deref(),
        Some("{\"a\":2}")
    );
    assert!(store.replace_campaign_spec("unknown", "{}").is_err());
}

#[test]
fn the_schema_is_versioned_in_wal_mode_and_a_newer_one_is_refused() {
    let dir = state_dir("schema");
    let store = SqliteStore::open(&dir).unwrap();
    assert_eq!(store.schema_version().unwrap(), 3);
    drop(store);
    let connection = rusqlite::Connection::open(dir.join("archlab.db")).unwrap();
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    connection
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    drop(connection);
    match SqliteStore::open(&dir) {
        Err(MemoryError::NewerSchema {
            found: 99,
            supported: 3,
            ..
        }) => {}
        other => panic!("expected a newer-schema error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_version_1_database_is_upgraded_in_place_keeping_its_records() {
    let dir = state_dir("upgrade");
    std::fs::create_dir_all(&dir).unwrap();
    {
        // What the first release wrote: schema 1, one campaign.
        let connection = rusqlite::Connection::open(dir.join("archlab.db")).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE campaigns (name TEXT PRIMARY KEY, spec_json TEXT NOT NULL, usage_json TEXT NOT NULL);
                 CREATE TABLE experiments (campaign TEXT NOT NULL REFERENCES campaigns(name), id INTEGER NOT NULL, name TEXT NOT NULL, stage TEXT NOT NULL, phase TEXT NOT NULL, parent INTEGER, fitness REAL, record_json TEXT NOT NULL, PRIMARY KEY (campaign, id));
                 CREATE TABLE attempts (campaign TEXT NOT NULL, experiment INTEGER NOT NULL, number INTEGER NOT NULL, program TEXT NOT NULL, outcome_json TEXT, progress_json TEXT NOT NULL, PRIMARY KEY (campaign, experiment, number), FOREIGN KEY (campaign, experiment) REFERENCES experiments(campaign, id));
                 INSERT INTO campaigns VALUES ('old', '{}', '{\"experiments\":0,\"computeSeconds\":0.0,\"llmTokens\":7}');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
    }
    let mut store = SqliteStore::open(&dir).unwrap();
    assert_eq!(store.schema_version().unwrap(), 3);
    assert_eq!(store.usage("old").unwrap().llm_tokens, 7);
    assert_eq!(store.agent_stats("old").unwrap(), None);
    store.save_agent_stats("old", "{\"roles\":{}}").unwrap();
    assert_eq!(
        store.agent_stats("old").unwrap().as_deref(),
        Some("{\"roles\":{}}")
    );
}

/// Runs one SQL statement on the state's database, as damage from outside would.
fn damage(dir: &std::path::Path, sql: &str) {
    let connection = rusqlite::Connection::open(dir.join("archlab.db")).unwrap();
    connection.execute_batch(sql).unwrap();
}

fn row_of(dir: &std::path::Path, id: u64) -> (String, String) {
    let connection = rusqlite::Connection::open(dir.join("archlab.db")).unwrap();
    connection
        .query_row(
            "SELECT e.record_json, (SELECT group_concat(progress_json, '|') FROM attempts a WHERE a.experiment = e.id) FROM experiments e WHERE e.id = ?1",
            [id as i64],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
}

#[test]
fn a_damaged_row_quarantines_its_experiment_only_and_is_kept_as_it_was() {
    let dir = state_dir("quarantine");
    {
        let mut store = SqliteStore::open(&dir).unwrap();
        store.register_campaign("c", "{\"seeds\":[]}").unwrap();
        for id in 1..=4 {
            store.save_experiment("c", &experiment(id)).unwrap();
        }
    }
    // One record cut short, one attempt's progress that is not JSON, one record that claims
    // another experiment's id.
    damage(
        &dir,
        "UPDATE experiments SET record_json = substr(record_json, 1, 40) WHERE id = 2;
         UPDATE attempts SET progress_json = 'not json' WHERE experiment = 3 AND number = 2;
         UPDATE experiments SET record_json = replace(record_json, '\"id\":4', '\"id\":1') WHERE id = 4;",
    );
    let damaged: Vec<_> = [2, 3, 4].iter().map(|&id| row_of(&dir, id)).collect();

    let mut store = SqliteStore::open(&dir).unwrap();
    let loaded = store.load("c").unwrap();
    let ids: Vec<u64> = loaded.experiments.iter().map(|e| e.id).collect();
    assert_eq!(ids, [1]);
    assert_eq!(loaded.experiments[0], experiment(1));
    let quarantined: Vec<(u64, &str)> = loaded
        .quarantined
        .iter()
        .map(|q| (q.id, q.reason.as_str()))
        .collect();
    assert_eq!(quarantined.len(), 3, "{quarantined:?}");
    assert!(
        quarantined[0].0 == 2 && quarantined[0].1.contains("experiment 2"),
        "{quarantined:?}"
    );
    assert!(
        quarantined[1].0 == 3 && quarantined[1].1.contains("attempt 2 of experiment 3"),
        "{quarantined:?}"
    );
    assert!(
        quarantined[2].0 == 4 && quarantined[2].1.contains("says it is experiment 1"),
        "{quarantined:?}"
    );
    // Their ids are never given again, and the campaign goes on writing around them.
    assert_eq!(store.next_experiment_id("c").unwrap(), 5);
    store.save_experiment("c", &experiment(5)).unwrap();
    assert_eq!(store.experiments("c").unwrap().len(), 2);
    drop(store);
    let kept: Vec<_> = [2, 3, 4].iter().map(|&id| row_of(&dir, id)).collect();
    assert_eq!(kept, damaged, "quarantined rows are kept exactly as found");
}

/// The error opening `dir` gives, and whether the database file is byte for byte as before.
fn open_refused(dir: &std::path::Path) -> (String, bool) {
    let before = std::fs::read(dir.join("archlab.db")).unwrap();
    let error = match SqliteStore::open(dir) {
        Ok(_) => panic!("{} was opened", dir.display()),
        Err(error) => error,
    };
    assert!(matches!(error, MemoryError::Unusable { .. }), "{error:?}");
    let after = std::fs::read(dir.join("archlab.db")).unwrap();
    let others: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "archlab.db")
        .collect();
    (error.to_string(), before == after && others.is_empty())
}

#[test]
fn a_foreign_a_truncated_and_a_non_database_file_are_refused_whole_and_left_untouched() {
    // Not a database at all.
    let text = state_dir("not-a-database");
    std::fs::create_dir_all(&text).unwrap();
    std::fs::write(
        text.join("archlab.db"),
        "campaign notes, saved under the wrong name\n".repeat(200),
    )
    .unwrap();
    let (message, untouched) = open_refused(&text);
    assert!(message.contains("is not an SQLite database"), "{message}");
    assert!(message.contains("wrote nothing"), "{message}");
    assert!(untouched);

    // Another program's SQLite database: no archlab schema, tables of its own.
    let foreign = state_dir("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    rusqlite::Connection::open(foreign.join("archlab.db"))
        .unwrap()
        .execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT); INSERT INTO photos (path) VALUES ('a.jpg');")
        .unwrap();
    let (message, untouched) = open_refused(&foreign);
    assert!(
        message.contains("another program's SQLite database (tables photos)"),
        "{message}"
    );
    assert!(untouched, "a foreign database was written to");

    // A real memory cut to half its length (a copy that stopped short).
    let truncated = state_dir("truncated");
    {
        let mut store = SqliteStore::open(&truncated).unwrap();
        store.register_campaign("c", "{\"seeds\":[]}").unwrap();
        for id in 1..=200 {
            store.save_experiment("c", &experiment(id)).unwrap();
        }
    }
    let path = truncated.join("archlab.db");
    let length = std::fs::metadata(&path).unwrap().len();
    assert!(length > 64 * 1024, "{length} bytes: too small to cut");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(length / 2).unwrap();
    drop(file);
    let (message, untouched) = open_refused(&truncated);
    assert!(message.contains("damaged"), "{message}");
    assert!(untouched, "a damaged database was written to");
}
