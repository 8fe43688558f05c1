//! Training end to end on tiny configs: determinism, divergence, config errors, and the
//! learning-rate sweep keeping the best run.

use trainer::{Event, Status, TrainConfig};

fn tiny_config(extra: &str) -> TrainConfig {
    let text = format!(
        "model: {{d_model: 32, n_layers: 1}}
data:
  vocab_size: 32
  seq_len: 32
  tasks:
    - {{kind: mqar, num_kv_pairs: 4}}
    - {{kind: induction, prefix_len: 8, weight: 0.5}}
    - {{kind: selective_copy, num_tokens: 4, weight: 0.5}}
steps: 12
batch_size: 8
eval_batches: 2
progress_every: 4
{extra}"
    );
    TrainConfig::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn train(program: &str, config: TrainConfig) -> (trainer::TrainResult, Vec<Event>) {
    let prepared = trainer::prepare(program, config).expect("valid");
    let mut events = Vec::new();
    let result = trainer::run(
        &prepared,
        &trainer::device("cpu").expect("cpu"),
        &mut |event| events.push(event),
    );
    (result, events)
}

fn deltanet() -> &'static str {
    archspec::library::get("deltanet")
        .expect("in library")
        .source
}

#[test]
fn same_seed_same_config_gives_the_same_losses() {
    let (first, first_events) = train(deltanet(), tiny_config("seed: 7"));
    let (second, second_events) = train(deltanet(), tiny_config("seed: 7"));
    assert_eq!(first.status, Status::Ok);
    assert_eq!(first.val_loss, second.val_loss);
    let losses = |events: &[Event]| -> Vec<f64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Progress(p) => Some(p.loss),
                Event::Result(_) => None,
            })
            .collect()
    };
    assert_eq!(losses(&first_events), losses(&second_events));
    assert_eq!(
        losses(&first_events).len(),
        3,
        "a progress line every 4 of 12 steps"
    );
    let (other_seed, _) = train(deltanet(), tiny_config("seed: 8"));
    assert_ne!(first.val_loss, other_seed.val_loss);
}

#[test]
fn result_reports_every_task_and_the_model_size() {
    let (result, _) = train(deltanet(), tiny_config(""));
    assert_eq!(result.status, Status::Ok);
    for task in ["mqar", "induction", "selective_copy"] {
        let accuracy = result.accuracy[task];
        assert!((0.0..=1.0).contains(&accuracy), "{task}: {accuracy}");
        assert!(result.test_accuracy.contains_key(task));
    }
    assert!(result.val_loss.is_some_and(f64::is_finite));
    assert!(result.params > 0 && result.flops_per_token > 0 && result.state_size > 0);
    assert!(result.tokens_per_s > 0.0 && result.wall_s > 0.0);
    assert_eq!(result.steps, 12);
}

#[test]
fn a_loss_that_becomes_nan_ends_the_run_as_diverged() {
    let program = "mixer broken(d_model) {\n  return x / (x - x) |> linear(d_model)\n}\n";
    let (result, _) = train(program, tiny_config(""));
    assert_eq!(result.status, Status::Diverged);
    assert!(result.val_loss.is_none());
    assert_eq!(result.trials[0].status, Status::Diverged);
}

#[test]
fn the_sweep_keeps_the_best_learning_rate() {
    let (result, _) = train(
        deltanet(),
        tiny_config("optim: {lr_sweep: [0.0001, 0.003]}"),
    );
    assert_eq!(result.trials.len(), 2);
    let best = result
        .trials
        .iter()
        .filter_map(|t| t.val_loss.map(|loss| (loss, t.lr)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("a finished trial");
    assert_eq!(result.lr, Some(best.1));
    assert!(result.trials.iter().all(|t| t.status == Status::Ok));
}

#[test]
fn a_sweep_keeps_the_surviving_rate_when_another_diverges() {
    // Dividing by a learned sigmoid: at a huge rate the sigmoid saturates to 0 and the loss
    // becomes NaN at once; at a small one it stays near 0.5.
    let fragile = "mixer fragile(d_model) {\n  return x / (x |> linear(d_model) |> sigmoid) |> linear(d_model)\n}\n";
    let (result, _) = train(
        fragile,
        tiny_config("optim: {lr_sweep: [9.0, 0.001], grad_clip: 0}"),
    );
    assert_eq!(result.trials.len(), 2);
    assert_eq!(result.trials[0].status, Status::Diverged);
    assert_eq!(result.trials[0].val_loss, None);
    assert!(result.trials[0].steps < 12);
    assert_eq!(result.trials[1].status, Status::Ok);
    assert_eq!(
        result.status,
        Status::Ok,
        "one surviving rate makes the run ok"
    );
    assert_eq!(result.lr, Some(0.001));
    assert_eq!(result.val_loss, result.trials[1].val_loss);
}

#[test]
fn the_time_limit_stops_training_and_still_evaluates() {
    let mut config = tiny_config("time_limit_s: 0.3");
    config.steps = 1_000_000;
    let (result, _) = train(deltanet(), config);
    assert!(result.time_limit_reached);
    assert_eq!(result.status, Status::Ok);
    assert!(result.trials[0].steps < 1_000_000);
    assert!(result.val_loss.is_some_and(f64::is_finite));
}

#[test]
fn config_errors_name_the_field() {
    let unknown = TrainConfig::from_yaml(
        "model: {d_model: 8, n_layers: 1, width: 3}\ndata: {seq_len: 8, tasks: []}\nsteps: 1\nbatch_size: 1\n",
    );
    let message = unknown.expect_err("unknown field");
    assert!(message.contains("width"), "{message}");
    let range = TrainConfig::from_yaml(
        "model: {d_model: 8, n_layers: 1}\ndata: {seq_len: 8, tasks: [{kind: mqar, num_kv_pairs: 40}]}\nsteps: 1\nbatch_size: 1\n",
    );
    let message = range.expect_err("too many pairs");
    assert!(message.contains("data.tasks[0].num_kv_pairs"), "{message}");
    let kind = TrainConfig::from_yaml(
        "model: {d_model: 8, n_layers: 1}\ndata: {seq_len: 8, tasks: [{kind: poetry}]}\nsteps: 1\nbatch_size: 1\n",
    );
    assert!(kind.expect_err("unknown task").contains("poetry"));
}

#[test]
fn every_declared_range_and_non_finite_number_is_refused_with_its_field() {
    let base = "model: {d_model: 8, n_layers: 1}\ndata: {seq_len: 8, tasks: [{kind: mqar, num_kv_pairs: 1}]}\nsteps: 1\nbatch_size: 1\n";
    assert!(TrainConfig::from_yaml(base).is_ok());
    for (from, to, expected) in [
        ("steps: 1", "steps: 0", "`steps`: at least 1, found 0"),
        (
            "n_layers: 1",
            "n_layers: 300",
            "`model.n_layers`: at most 256, found 300",
        ),
        (
            "n_layers: 1",
            "n_layers: 1, d_ff: 40000",
            "`model.d_ff`: at most 32768",
        ),
        (
            "seq_len: 8",
            "seq_len: 70000",
            "`data.seq_len`: at most 65536",
        ),
        (
            "batch_size: 1\n",
            "batch_size: 1\noptim: {lr: .nan}\n",
            "`optim.lr`: must be a finite number",
        ),
        (
            "batch_size: 1\n",
            "batch_size: 1\noptim: {lr: 0}\n",
            "`optim.lr`: a learning rate must be above 0",
        ),
        (
            "batch_size: 1\n",
            "batch_size: 1\noptim: {lr_sweep: [0.01, 11]}\n",
            "`optim.lr_sweep[1]`: at most 10",
        ),
        (
            "batch_size: 1\n",
            "batch_size: 1\noptim: {beta2: 1.0}\n",
            "`optim.beta2`: at most 0.999999",
        ),
        (
            "batch_size: 1\n",
            "batch_size: 1\ntime_limit_s: .inf\n",
            "`time_limit_s`: must be a finite number",
        ),
        (
            "batch_size: 1\n",
            "batch_size: 1\ncheckpoint: {keep: 0}\n",
            "`checkpoint.keep`: at least 1",
        ),
    ] {
        let yaml = base.replacen(from, to, 1);
        let message = TrainConfig::from_yaml(&yaml).expect_err(&yaml);
        assert!(message.contains(expected), "{yaml}\n{message}");
    }
}

#[test]
fn a_program_invalid_at_the_configs_width_is_rejected_before_training() {
    // 4 heads do not divide d_model 30.
    let config = TrainConfig::from_yaml("model: {d_model: 30, n_layers: 1}\ndata: {seq_len: 8, tasks: [{kind: induction, prefix_len: 3}]}\nsteps: 1\nbatch_size: 1\n").expect("valid config");
    let error = trainer::prepare(deltanet(), config).expect_err("invalid program");
    assert!(error.to_string().contains("E0205"), "{error}");
}

#[test]
fn byte_level_language_modelling_on_a_local_file() {
    let dir = std::env::temp_dir().join(format!("archlab-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("corpus.txt");
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(200);
    std::fs::write(&path, text).expect("write corpus");
    let config = TrainConfig::from_yaml(&format!(
        "model: {{d_model: 32, n_layers: 1}}\ndata: {{seq_len: 32, tasks: [{{kind: text, paths: [{:?}]}}]}}\nsteps: 30\nbatch_size: 8\neval_batches: 2\noptim: {{lr: 0.01}}\n",
        path.display().to_string()
    ))
    .expect("valid config");
    assert_eq!(config.vocab_size(), 256, "text is modelled as bytes");
    let (result, events) = train(deltanet(), config);
    assert_eq!(result.status, Status::Ok);
    let losses: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress(p) => Some(p.loss),
            Event::Result(_) => None,
        })
        .collect();
    assert!(losses.last() < losses.first(), "the loss fell: {losses:?}");
    assert!(
        result.accuracy["text"] > 0.2,
        "a repeated sentence is easy to predict: {:?}",
        result.accuracy
    );
    let missing = TrainConfig::from_yaml("model: {d_model: 32, n_layers: 1}\ndata: {seq_len: 32, tasks: [{kind: text, paths: [/no/such/file]}]}\nsteps: 1\nbatch_size: 1\n").expect("valid config");
    let error = trainer::prepare(deltanet(), missing)
        .expect_err("unreadable data is rejected before training");
    assert!(error.to_string().contains("/no/such/file"), "{error}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

/// A first-order Markov source over `vocab` tokens: each token is followed by one successor
/// nine times in ten, by a uniform draw otherwise (a small LCG: the test needs no RNG crate).
fn markov_tokens(count: usize, vocab: u32, seed: u64) -> Vec<u32> {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) as u32
    };
    let mut token = 0;
    (0..count)
        .map(|_| {
            token = if next() % 10 < 9 {
                (token * 7 + 3) % vocab
            } else {
                next() % vocab
            };
            token
        })
        .collect()
}

/// Cross-entropy in nats of the tokens' own unigram distribution: what a model that ignores
/// context scores at best.
fn unigram_entropy(tokens: &[u32]) -> f64 {
    let mut counts = std::collections::BTreeMap::new();
    for token in tokens {
        *counts.entry(token).or_insert(0usize) += 1;
    }
    let total = tokens.len() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.ln()
        })
        .sum()
}

#[test]
fn language_modelling_on_token_shards_learns_below_the_unigram_entropy() {
    use trainer::shards::{TokenWidth, write_llmc};
    let dir = std::env::temp_dir().join(format!("archlab-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let train_path = dir.join("corpus_train_000001.bin");
    let val_path = dir.join("corpus_val_000000.bin");
    write_llmc(
        &train_path,
        &markov_tokens(40_000, 64, 1),
        TokenWidth::Uint16,
    )
    .expect("write");
    let held_out = markov_tokens(8_000, 64, 2);
    write_llmc(&val_path, &held_out, TokenWidth::Uint16).expect("write");
    let config = |train: &std::path::Path, validation: &std::path::Path, extra: &str| {
        TrainConfig::from_yaml(&format!(
            "model: {{d_model: 32, n_layers: 1}}\ndata: {{vocab_size: 64, seq_len: 32, tasks: [{{kind: tokens, train: [{:?}], validation: [{:?}]{extra}}}]}}\nsteps: 80\nbatch_size: 8\neval_batches: 4\noptim: {{lr: 0.01}}\n",
            train.display().to_string(),
            validation.display().to_string(),
        ))
        .expect("valid config")
    };
    let (result, _) = train(deltanet(), config(&train_path, &val_path, ""));
    assert_eq!(result.status, Status::Ok);
    let entropy = unigram_entropy(&held_out);
    let val_loss = result.val_loss.expect("validation loss");
    eprintln!("token shards: validation loss {val_loss:.3} nats, unigram entropy {entropy:.3}");
    assert!(
        val_loss < 0.75 * entropy,
        "validation loss {val_loss:.3} nats is not well below the unigram entropy {entropy:.3}"
    );
    assert!(result.test_loss.is_some());

    // The same tokens headerless (nanoGPT's .bin) read the same once given their width.
    let raw = |path: &std::path::Path, name: &str| {
        let bytes = std::fs::read(path).expect("read");
        let out = dir.join(name);
        std::fs::write(&out, &bytes[trainer::shards::HEADER_BYTES as usize..]).expect("write");
        out
    };
    let (train_raw, val_raw) = (raw(&train_path, "train.bin"), raw(&val_path, "val.bin"));
    let (headerless, _) = train(deltanet(), config(&train_raw, &val_raw, ", dtype: uint16"));
    assert_eq!(headerless.val_loss, result.val_loss);

    // A shard of a larger vocabulary: refused naming the file and the byte.
    let foreign = dir.join("foreign.bin");
    write_llmc(&foreign, &markov_tokens(4_000, 1000, 3), TokenWidth::Uint16).expect("write");
    let prepared = trainer::prepare(deltanet(), config(&foreign, &val_path, "")).expect("opens");
    let failed = trainer::run(
        &prepared,
        &trainer::device("cpu").expect("cpu"),
        &mut |_| {},
    );
    let error = failed.error.unwrap_or_default();
    assert!(
        error.contains("foreign.bin") && error.contains("not below the vocabulary size 64"),
        "{error}"
    );
    // Training and validation must not share a shard.
    let shared = TrainConfig::from_yaml(&format!(
        "model: {{d_model: 32, n_layers: 1}}\ndata: {{vocab_size: 64, seq_len: 32, tasks: [{{kind: tokens, train: [{0:?}], validation: [{0:?}]}}]}}\nsteps: 1\nbatch_size: 1\n",
        train_path.display().to_string()
    ));
    let error = shared.expect_err("shared shard");
    assert!(error.contains("held out"), "{error}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}
