//! Real text end to end, through the `archlab` binary: a tokenizer trained by `archlab
//! tokenizer train`, a corpus tokenized on the fly or by `archlab data prepare`, checkpoints
//! that survive SIGKILL, a SIGTERM that saves the step it stops at, and `archlab eval` of the saved model.
//!
//! The corpus is the licence texts every Debian system has (`/usr/share/common-licenses`,
//! package base-files): real English prose that no test or example was tuned on. Training
//! and validation are different licences, so they share no document.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const LICENSES: &str = "/usr/share/common-licenses";
const TRAIN: [&str; 10] = [
    "Apache-2.0",
    "Artistic",
    "BSD",
    "GFDL-1.3",
    "GPL-1",
    "GPL-2",
    "GPL-3",
    "LGPL-2.1",
    "LGPL-3",
    "MPL-1.1",
];
const VALIDATION: [&str; 2] = ["MPL-2.0", "LGPL-2"];
const PROGRAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/archspec/library/deltanet.arch"
);

fn archlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args(args)
        .output()
        .expect("archlab runs")
}

fn succeed(args: &[&str]) -> Output {
    let output = archlab(args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "archlab {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archlab-text-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn licence_paths(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|name| {
            let path = Path::new(LICENSES).join(name);
            assert!(
                path.is_file(),
                "{} is missing: these tests read the licence texts of Debian's base-files",
                path.display()
            );
            path.display().to_string()
        })
        .collect()
}

fn quoted(paths: &[String]) -> String {
    paths
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The config of every run here; `task` is the data task's YAML.
fn config(task: &str, extra: &str) -> String {
    format!(
        "model: {{d_model: 48, n_layers: 2, tie_embeddings: true}}
data: {{seq_len: 64, vocab_size: 512, tasks: [{task}]}}
steps: 240
batch_size: 16
seed: 3
optim: {{lr: 0.004, warmup_steps: 20}}
eval_batches: 8
progress_every: 10
{extra}"
    )
}

fn result_of(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rev()
        .find(|line| line.contains("\"event\":\"result\""))
        .unwrap_or_else(|| panic!("no result line in {text}"));
    serde_json::from_str(line).unwrap()
}

/// A tokenizer trained on the training licences and a config of each kind.
struct Setup {
    dir: PathBuf,
    corpus_config: PathBuf,
}

fn setup(name: &str, extra: &str) -> Setup {
    let dir = temp_dir(name);
    let tokenizer = dir.join("tokenizer.json");
    let train = licence_paths(&TRAIN);
    let mut args = vec!["tokenizer", "train", "--vocab-size", "512", "-o"];
    args.push(tokenizer.to_str().unwrap());
    args.extend(train.iter().map(String::as_str));
    succeed(&args);
    let task = format!(
        "{{kind: corpus, tokenizer: {:?}, train: [{}], validation: [{}]}}",
        tokenizer.display().to_string(),
        quoted(&train),
        quoted(&licence_paths(&VALIDATION))
    );
    let corpus_config = dir.join("corpus.yaml");
    std::fs::write(&corpus_config, config(&task, extra)).unwrap();
    Setup { dir, corpus_config }
}

/// `archlab train` of `program` on `config`, saving under `checkpoints`.
fn train_args<'a>(program: &'a str, config: &'a Path, checkpoints: &'a Path) -> [&'a str; 7] {
    [
        "train",
        "--program",
        program,
        "--config",
        config.to_str().unwrap(),
        "--checkpoint-dir",
        checkpoints.to_str().unwrap(),
    ]
}

fn train(config: &Path, checkpoints: Option<&Path>) -> serde_json::Value {
    let args = match checkpoints {
        Some(dir) => train_args(PROGRAM, config, dir).to_vec(),
        None => train_args(PROGRAM, config, Path::new(""))[..5].to_vec(),
    };
    result_of(&succeed(&args).stdout)
}

/// Entropy in nats of the unigram distribution of the first half of a shard (the part that
/// validates): what a model that ignores context reaches at best.
fn unigram_entropy(shard: &Path) -> f64 {
    let shard = trainer::shards::Shard::open(shard, None).unwrap();
    let half = shard.len() / 2;
    let tokens = shard.read(0, half as usize, 1 << 20).unwrap();
    let mut counts = std::collections::HashMap::new();
    for token in &tokens {
        *counts.entry(*token).or_insert(0u64) += 1;
    }
    let total = tokens.len() as f64;
    counts
        .values()
        .map(|&count| {
            let p = count as f64 / total;
            -p * p.ln()
        })
        .sum()
}

/// Length extrapolation at 1×, 2× and 4× the training length, and passkeys at every default
/// depth of three lengths (the key's sentences alone take about 50 of these tokens).
const LONG_CONTEXT: &str =
    "long_context: {extrapolation: [1, 2, 4], passkey: {items: 4, lengths: [128, 256, 512]}}";

#[test]
fn a_corpus_learns_below_its_unigram_entropy_prepared_shards_give_the_same_loss_and_longer_contexts_are_scored()
 {
    let setup = setup("learns", LONG_CONTEXT);
    let on_the_fly = train(&setup.corpus_config, None);
    assert_eq!(on_the_fly["status"], "ok", "{on_the_fly}");
    assert_eq!(
        on_the_fly["tokens"],
        240 * 16 * 64,
        "tokens seen are reported"
    );
    let held_out = &on_the_fly["held_out"][0];
    assert_eq!(held_out["by"], "files", "{on_the_fly}");
    assert!(held_out["held_out_tokens"].as_u64().unwrap() > 1000);

    // The same files through `archlab data prepare`, trained on as a `tokens` task.
    let shards = setup.dir.join("shards");
    let tokenizer = setup.dir.join("tokenizer.json");
    for (prefix, names) in [("train", &TRAIN[..]), ("val", &VALIDATION[..])] {
        let mut args = vec![
            "data",
            "prepare",
            "--quiet",
            "--tokenizer",
            tokenizer.to_str().unwrap(),
            "-o",
            shards.to_str().unwrap(),
            "--prefix",
            prefix,
        ];
        let paths = licence_paths(names);
        args.extend(paths.iter().map(String::as_str));
        let output = succeed(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("wrote 1 shards"), "{stderr}");
        // Again: nothing to do.
        let again = succeed(&args);
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("already prepared"),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
    }
    let validation_shard = shards.join("val_000000.bin");
    let task = format!(
        "{{kind: tokens, train: [{:?}], validation: [{:?}]}}",
        shards.join("train_000000.bin").display().to_string(),
        validation_shard.display().to_string()
    );
    let tokens_config = setup.dir.join("tokens.yaml");
    std::fs::write(&tokens_config, config(&task, "")).unwrap();
    let prepared = train(&tokens_config, None);
    let (fly, shard) = (
        on_the_fly["val_loss"].as_f64().unwrap(),
        prepared["val_loss"].as_f64().unwrap(),
    );
    assert!(
        (fly - shard).abs() < 1e-9,
        "on the fly {fly}, prepared {shard}"
    );

    let entropy = unigram_entropy(&validation_shard);
    eprintln!("validation loss {fly:.3} nats/token; unigram entropy {entropy:.3}");
    assert!(
        fly < entropy - 0.5,
        "validation loss {fly} is not well below the unigram entropy {entropy}"
    );

    // At 1× the extrapolation loss is the validation loss itself; DeltaNet, a recurrence
    // without positions, still beats the unigram entropy at 4×.
    let long = &on_the_fly["long_context"];
    let at = |length: usize| long["val_loss"][length.to_string()].as_f64();
    assert!((at(64).unwrap() - fly).abs() < 1e-9, "{long}");
    let (twice, four) = (at(128).unwrap(), at(256).unwrap());
    eprintln!("validation loss at 128 tokens {twice:.3}, at 256 {four:.3}");
    assert!(
        four < entropy,
        "loss {four} at 4× is not below the unigram entropy"
    );
    let passkeys = long["passkey"].as_array().unwrap();
    let cells: Vec<(u64, f64)> = passkeys
        .iter()
        .map(|cell| {
            assert_eq!(cell["n"], 4, "{cell}");
            let acc = cell["acc"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&acc), "{cell}");
            (
                cell["length"].as_u64().unwrap(),
                cell["depth"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(cells.len(), 15, "3 lengths × 5 depths: {long}");
    assert_eq!(cells[0], (128, 0.0));
    assert_eq!(cells[14], (512, 1.0));
}

#[test]
fn sigterm_saves_the_step_reached_and_the_same_command_resumes_there() {
    // No periodic saves: whatever is saved, SIGTERM asked for.
    let setup = setup("sigterm", "");
    let dir = setup.dir.join("stopped");
    let mut child = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args(train_args(PROGRAM, &setup.corpus_config, &dir))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("\"step\":50,") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "ended before step 50"
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(
        !rest.contains("\"event\":\"result\""),
        "an interrupted run has no result: {rest}"
    );
    let step: usize = stderr
        .split("stopped by SIGTERM after step ")
        .nth(1)
        .and_then(|tail| tail.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stop message: {stderr}"));
    assert!((50..240).contains(&step), "{stderr}");
    assert!(
        dir.join(format!("trials/0/step-{step:09}/state.json"))
            .is_file(),
        "the step reached is saved: {stderr}"
    );

    let output = succeed(&train_args(PROGRAM, &setup.corpus_config, &dir));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("resuming trial 0 at step {step} ")),
        "{stderr}"
    );
    let resumed = result_of(&output.stdout);
    assert_eq!(resumed["status"], "ok", "{resumed}");
    assert_eq!(resumed["steps"], 240);
    assert_eq!(
        resumed["tokens"],
        240 * 16 * 64,
        "no step trained twice or skipped"
    );
}

#[test]
fn sigkill_mid_training_resumes_from_the_last_checkpoint_and_ends_as_an_uninterrupted_run() {
    let setup = setup("resume", "checkpoint: {every_steps: 20, keep: 2}\n");
    let whole = train(&setup.corpus_config, Some(&setup.dir.join("whole")));

    let interrupted = setup.dir.join("interrupted");
    let mut child = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args(train_args(PROGRAM, &setup.corpus_config, &interrupted))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        let line = line.unwrap();
        // The save after step 100 is whole once step 110 is reported.
        if line.contains("\"step\":110,") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let saves: Vec<String> = std::fs::read_dir(interrupted.join("trials/0"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("step-"))
        .collect();
    assert!(saves.len() <= 2, "keep: 2 holds {saves:?}");
    assert!(
        !interrupted.join("model.json").exists(),
        "killed before the end"
    );
    // A copy of the saves, to try resuming under another config below.
    let partial = setup.dir.join("partial");
    copy_dir(&interrupted, &partial);

    let output = succeed(&train_args(PROGRAM, &setup.corpus_config, &interrupted));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("resuming trial 0 at step 1"), "{stderr}");
    let first_step: u64 = String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            value["step"].as_u64()
        })
        .unwrap();
    assert!(
        first_step > 100,
        "resumed runs do not start over: {first_step}"
    );
    let resumed = result_of(&output.stdout);
    assert_eq!(resumed["steps"], whole["steps"]);
    assert_eq!(resumed["tokens"], whole["tokens"]);
    let (a, b) = (
        whole["val_loss"].as_f64().unwrap(),
        resumed["val_loss"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-3, "uninterrupted {a}, resumed {b}");

    // The saved model scores again to what training reported.
    let eval = succeed(&[
        "eval",
        "--checkpoint",
        interrupted.to_str().unwrap(),
        "--config",
        setup.corpus_config.to_str().unwrap(),
    ]);
    let scored = result_of(&eval.stdout);
    let again = scored["val_loss"].as_f64().unwrap();
    assert!((again - b).abs() < 1e-6, "eval {again}, train {b}");
    assert!(
        !interrupted.join("trials").exists(),
        "once the model is saved, the trials' saves are gone"
    );

    // A checkpoint of another program is refused, naming it.
    let other = concat!(env!("CARGO_MANIFEST_DIR"), "/archspec/library/gla.arch");
    let refused = archlab(&train_args(other, &setup.corpus_config, &interrupted));
    let result = result_of(&refused.stdout);
    assert_eq!(result["status"], "error");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("a checkpoint of another program"),
        "{result}"
    );
    // So is one of another config, naming the field.
    let changed = setup.dir.join("changed.yaml");
    let text = std::fs::read_to_string(&setup.corpus_config)
        .unwrap()
        .replace("seed: 3", "seed: 4");
    std::fs::write(&changed, text).unwrap();
    // Evaluating on other data (here: another seed's windows) is allowed...
    let other_windows = archlab(&[
        "eval",
        "--checkpoint",
        setup.dir.join("whole").to_str().unwrap(),
        "--config",
        changed.to_str().unwrap(),
    ]);
    assert_eq!(other_windows.status.code(), Some(0));
    // ...resuming a trial saved under another config is not.
    let refused = archlab(&train_args(PROGRAM, &changed, &partial));
    let result = result_of(&refused.stdout);
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("another config: `seed` differs"),
        "{result}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn bad_text_inputs_are_named() {
    let dir = temp_dir("bad");
    let not_a_tokenizer = dir.join("vocab.json");
    std::fs::write(&not_a_tokenizer, "{\"a\": 1}").unwrap();
    let small = dir.join("small.txt");
    std::fs::write(&small, "too short").unwrap();
    let task = format!(
        "{{kind: corpus, tokenizer: {:?}, train: [{:?}], validation: [{:?}]}}",
        not_a_tokenizer.display().to_string(),
        small.display().to_string(),
        small.display().to_string() + ".val"
    );
    let config = dir.join("bad.yaml");
    std::fs::write(&config, self::config(&task, "")).unwrap();
    let run = |config: &Path| {
        let output = archlab(&[
            "train",
            "--program",
            PROGRAM,
            "--config",
            config.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(1));
        result_of(&output.stdout)["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let error = run(&config);
    assert!(
        error.contains("vocab.json: not a Hugging Face tokenizer.json"),
        "{error}"
    );
    // A missing file is named once, and the program (which is fine) is not blamed.
    let missing = dir.join("missing.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("vocab.json", "absent.json");
    std::fs::write(&missing, text).unwrap();
    let error = run(&missing);
    assert!(error.contains("absent.json"), "{error}");
    assert_eq!(error.matches("No such file").count(), 1, "{error}");
    assert!(!error.contains("deltanet.arch"), "{error}");

    // A real tokenizer, but a corpus shorter than one window.
    let tokenizer = dir.join("tokenizer.json");
    succeed(&[
        "tokenizer",
        "train",
        "--vocab-size",
        "300",
        "-o",
        tokenizer.to_str().unwrap(),
        &licence_paths(&["BSD"])[0],
    ]);
    std::fs::write(dir.join("small.txt.val"), "also short").unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("vocab.json", "tokenizer.json");
    std::fs::write(&config, text).unwrap();
    let error = run(&config);
    assert!(
        error.contains("no Train shard holds seq_len + 1 = 65 tokens"),
        "{error}"
    );

    // A JSONL document without its text field names the file and line.
    let jsonl = dir.join("docs.jsonl");
    std::fs::write(&jsonl, "{\"text\": \"fine\"}\n{\"content\": \"no text\"}\n").unwrap();
    let output = archlab(&[
        "data",
        "prepare",
        "--quiet",
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "-o",
        dir.join("shards").to_str().unwrap(),
        jsonl.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("docs.jsonl:2: no field `text`"), "{stderr}");
}
