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
