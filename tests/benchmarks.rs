//! Zero-shot benchmarks, as lm-evaluation-harness scores them: each task layout reads rows
//! written to its dataset's published schema (tests/fixtures/benchmarks, made by
//! scripts/harness/make_fixtures.py) into the harness's prompts; bad rows are refused with
//! the file and row; and a model trained on a corpus these tests see nowhere else (the prose
//! of the Markdown files of the crates cargo fetched for this build) tells a held-out
//! document's true continuation from other documents' well above chance, and at chance
//! untrained.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

use std::path::{Path, PathBuf};
use std::process::Command;
use trainer::benchmarks::encode::BenchTokenizer;
use trainer::benchmarks::{self, Doc, Request};
use trainer::config::BenchmarkConfig;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/benchmarks");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archlab-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(task: &str, path: &Path) -> BenchmarkConfig {
    BenchmarkConfig {
        task: task.into(),
        path: path.to_path_buf(),
        limit: None,
        name: None,
        tokenizer: None,
    }
}

fn load(task: &str, file: &str) -> Result<benchmarks::Benchmark, String> {
    benchmarks::load(
        &config(task, &Path::new(FIXTURES).join(file)),
        &BenchTokenizer::Bytes,
        512,
    )
    .map_err(|error| error.to_string())
}

fn request(doc: &Doc, index: usize) -> &Request {
    &doc.requests()[index]
}

#[test]
fn each_layout_makes_the_harness_s_prompts_from_its_published_schema() {
    let piqa = load("piqa", "piqa.jsonl").unwrap();
    assert_eq!(piqa.docs.len(), 8);
    let Doc::Choice { gold, lengths, .. } = &piqa.docs[1] else {
        panic!("piqa is multiple choice")
    };
    assert_eq!(*gold, 1);
    assert_eq!(
        request(&piqa.docs[1], 1),
        &Request {
            context: "Question: To make a cup of tea,\nAnswer:".into(),
            continuation: " pour boiling water over the leaves and let them steep.".into(),
        }
    );
    // acc_norm divides by the choice's characters, without the delimiter.
    assert_eq!(
        lengths[1],
        "pour boiling water over the leaves and let them steep.".len()
    );

    // Expected strings are the harness's own `utils.process_docs` on these rows.
    let hellaswag = load("hellaswag", "hellaswag.jsonl").unwrap();
    assert_eq!(
        request(&hellaswag.docs[0], 1),
        &Request {
            context: "Making tea: How to make tea. Boil fresh water in a kettle. once it boils,"
                .into(),
            continuation: " the kettle is painted blue.".into(),
        }
    );
    assert_eq!(
        request(&hellaswag.docs[4], 0).context,
        "Baking cookies:. Preheat the oven. Mix the butter and sugar. Then add the flour and"
    );

    // ARC from Parquet, its choices a nested struct; answer keys may be digits.
    let arc = load("arc_easy", "arc_easy.parquet").unwrap();
    assert_eq!(arc.docs.len(), 6);
    let Doc::Choice { gold, requests, .. } = &arc.docs[3] else {
        panic!("arc is multiple choice")
    };
    assert_eq!((*gold, requests.len()), (2, 4));
    assert_eq!(
        requests[2],
        Request {
            context: "Question: Water freezes at what temperature in degrees Celsius?\nAnswer:"
                .into(),
            continuation: " 0".into(),
        }
    );
    assert_eq!(
        load("arc_challenge", "arc_easy.parquet").unwrap().task,
        "arc_challenge"
    );

    // WinoGrande: each option fills the blank; the rest of the sentence is scored.
    let winogrande = load("winogrande", "winogrande.jsonl").unwrap();
    let Doc::Choice { gold, requests, .. } = &winogrande.docs[0] else {
        panic!("winogrande is multiple choice")
    };
    assert_eq!(*gold, 0);
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.context.as_str(), r.continuation.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                "The trophy did not fit in the suitcase because the trophy",
                " was too big."
            ),
            (
                "The trophy did not fit in the suitcase because the suitcase",
                " was too big."
            )
        ]
    );
    assert!(!winogrande.acc_norm, "the harness reports only acc");

    let lambada = load("lambada_openai", "lambada_openai.jsonl").unwrap();
    assert_eq!(
        lambada.docs[0],
        Doc::Continuation(Request {
            context: "She opened the door and the cold wind blew in. She shivered and pulled her coat tighter around".into(),
            continuation: " her".into(),
        })
    );
    let limited = benchmarks::load(
        &BenchmarkConfig {
            limit: Some(3),
            ..config("piqa", &Path::new(FIXTURES).join("piqa.jsonl"))
        },
        &BenchTokenizer::Bytes,
        512,
    )
    .unwrap();
    assert_eq!(limited.docs.len(), 3, "limit keeps the first rows");
}

#[test]
fn bad_rows_are_refused_with_the_file_and_row() {
    let dir = temp_dir("bad");
    let cases = [
        (
            "piqa",
            r#"{"goal": "g", "sol1": "a", "label": 0}"#,
            "line 2: no field `sol2`",
        ),
        (
            "piqa",
            r#"{"goal": "g", "sol1": "a", "sol2": "b", "label": 2}"#,
            "line 2: the answer is choice 2 but there are 2 choices (counting from 0)",
        ),
        (
            "piqa",
            r#"{"goal": "g", "sol1": "a", "sol2": " ", "label": 0}"#,
            "line 2: choice 1 is empty",
        ),
        (
            "hellaswag",
            r#"{"activity_label": "x", "ctx_a": "a", "ctx_b": "b", "endings": ["p", 3], "label": "0"}"#,
            "line 2: field `endings`[1] is a number, expected a string",
        ),
        (
            "winogrande",
            r#"{"sentence": "no blank here", "option1": "a", "option2": "b", "answer": "1"}"#,
            "line 2: field `sentence` has no blank `_`",
        ),
        (
            "winogrande",
            r#"{"sentence": "a _ b", "option1": "a", "option2": "b", "answer": "3"}"#,
            "line 2: field `answer` is `3`, expected \"1\" or \"2\"",
        ),
        (
            "lambada_openai",
            r#"{"text": "oneword"}"#,
            "line 2: field `text` is one word",
        ),
        (
            "multiple_choice",
            r#"{"context": "c", "choices": ["a", "b"], "label": -1}"#,
            "line 2: field `label` is -1, expected a non-negative integer",
        ),
        ("multiple_choice", "not json", "line 2: not JSON"),
    ];
    let first = [
        (
            "piqa",
            r#"{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}"#,
        ),
        (
            "hellaswag",
            r#"{"activity_label": "x", "ctx_a": "a", "ctx_b": "b", "endings": ["p", "q"], "label": "0"}"#,
        ),
        (
            "winogrande",
            r#"{"sentence": "a _ b", "option1": "a", "option2": "b", "answer": "1"}"#,
        ),
        ("lambada_openai", r#"{"text": "two words"}"#),
        (
            "multiple_choice",
            r#"{"context": "c", "choices": ["a", "b"], "label": 1}"#,
        ),
    ];
    for (index, (task, row, expected)) in cases.iter().enumerate() {
        let good = first.iter().find(|(t, _)| t == task).unwrap().1;
        let path = dir.join(format!("{index}.jsonl"));
        std::fs::write(&path, format!("{good}\n{row}\n")).unwrap();
        let error =
            benchmarks::load(&config(task, &path), &BenchTokenizer::Bytes, 512).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("{}: {expected}", path.display())),
            "{task}: {message}"
        );
    }
}

#[test]
fn every_example_training_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/train");
    let mut parsed = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let config = trainer::TrainConfig::from_yaml(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            parsed.push((path, config));
        }
    }
    let zero_shot = parsed
        .iter()
        .find(|(path, _)| path.ends_with("zero-shot.yaml"))
        .map(|(_, config)| config)
        .unwrap();
    // Its benchmark files are the fixtures, there to be read from the repository's root.
    for benchmark in &zero_shot.benchmarks {
        let rooted = BenchmarkConfig {
            path: Path::new(env!("CARGO_MANIFEST_DIR")).join(&benchmark.path),
            ..benchmark.clone()
        };
        let loaded = benchmarks::load(&rooted, &BenchTokenizer::Bytes, 512)
            .unwrap_or_else(|error| panic!("{}: {error}", rooted.path.display()));
        assert_eq!(
            loaded.docs.len(),
            benchmark.limit.unwrap_or(loaded.docs.len())
        );
    }
}

/// `archlab ARGS…`, which must succeed; its standard output.
fn archlab(args: &[String]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "archlab {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The Markdown files (README, CHANGELOG, guides) of at least 2 kB of the crates in cargo's
/// registry, sorted: real prose that no test or example was tuned on.
fn crate_markdown() -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && depth > 0 {
                walk(&path, depth - 1, out);
            } else if kind.is_file()
                && path.extension().is_some_and(|e| e == "md")
                && entry.metadata().is_ok_and(|m| m.len() >= 2000)
            {
                out.push(path);
            }
        }
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let mut files = Vec::new();
    // registry/src/<index>/<crate>/…: a crate's own docs sit at most a few folders down.
    walk(&home.join("registry").join("src"), 5, &mut files);
    files.sort();
    files
}

/// The prose of a Markdown file: no code blocks, headings, lists, tables, links, badges or
/// HTML; within a line, only the words made of letters, digits and plain punctuation.
fn prose(markdown: &str) -> String {
    let mut lines = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        let line = line.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            in_code = !in_code;
            continue;
        }
        let first = line.chars().next().unwrap_or('#');
        if in_code || "#[<|!>-*".contains(first) || first.is_ascii_digit() {
            continue;
        }
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|word| {
                word.chars().any(char::is_alphabetic)
                    && !word
                        .chars()
                        .any(|c| "/`[]()<>*#={}|\\$@~^&%!?\"".contains(c))
            })
            .collect();
        if words.len() >= 4 {
            lines.push(words.join(" "));
        }
    }
    lines.join("\n")
}

/// A deterministic stream of indices (a 64-bit LCG): the test's choices, not the trainer's.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// 4-way items from held-out documents: 40 words of a document, then its next two words
/// against two words from each of three other documents. The foils are matched to the truth
/// in word frequency (log unigram frequency in the training documents, summed, within 0.6)
/// and in length (characters, within a tenth), so that only the context can tell the truth:
/// a model that ignores it scores chance.
fn write_choice_file(train: &[Vec<&str>], held_out: &[Vec<&str>], path: &Path, items: usize) {
    const CONTEXT: usize = 40;
    const CONTINUATION: usize = 2;
    let mut counts = std::collections::HashMap::new();
    for word in train.iter().flatten() {
        *counts.entry(*word).or_insert(0usize) += 1;
    }
    let total = counts.values().sum::<usize>() as f64;
    let log_frequency = |words: &[&str]| -> f64 {
        words
            .iter()
            .map(|w| ((counts.get(w).copied().unwrap_or(0) + 1) as f64 / total).ln())
            .sum()
    };
    let mut draw = Draw(7);
    let mut lines = Vec::new();
    while lines.len() < items {
        let doc = draw.below(held_out.len());
        let text = &held_out[doc];
        if text.len() < CONTEXT + CONTINUATION {
            continue;
        }
        let start = draw.below(text.len() - CONTEXT - CONTINUATION + 1);
        let truth = &text[start + CONTEXT..start + CONTEXT + CONTINUATION];
        let (frequency, length) = (log_frequency(truth), truth.join(" ").len());
        let mut foils = Vec::new();
        for _ in 0..20_000 {
            if foils.len() == 3 {
                break;
            }
            let other = draw.below(held_out.len());
            let other_text = &held_out[other];
            if other == doc || other_text.len() < CONTINUATION {
                continue;
            }
            let at = draw.below(other_text.len() - CONTINUATION + 1);
            let foil = &other_text[at..at + CONTINUATION];
            let foil_text = foil.join(" ");
            if (log_frequency(foil) - frequency).abs() <= 0.3 * CONTINUATION as f64
                && foil_text.len().abs_diff(length) <= 1 + length / 10
            {
                foils.push(foil_text);
            }
        }
        if foils.len() < 3 {
            continue;
        }
        let label = draw.below(4);
        foils.insert(label, truth.join(" "));
        lines.push(
            serde_json::json!({
                "context": text[start..start + CONTEXT].join(" "),
                "choices": foils,
                "label": label,
            })
            .to_string(),
        );
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn words(texts: &[String]) -> Vec<Vec<&str>> {
    texts
        .iter()
        .map(|t| t.split_whitespace().collect())
        .collect()
}

fn write_jsonl(path: &Path, documents: &[String]) {
    let lines: Vec<String> = documents
        .iter()
        .map(|text| serde_json::json!({ "text": text }).to_string())
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_trained_model_tells_held_out_continuations_apart_and_an_untrained_one_does_not() {
    let documents: Vec<String> = crate_markdown()
        .iter()
        .map(|path| prose(&String::from_utf8_lossy(&std::fs::read(path).unwrap())))
        .filter(|text| text.split_whitespace().count() >= 100)
        .collect();
    assert!(
        documents.len() >= 200,
        "expected the Markdown files of this build's crates in cargo's registry, found {} with prose",
        documents.len()
    );
    // Every fourth document is held out: the tokenizer and the model never see it.
    let (mut train, mut held_out) = (Vec::new(), Vec::new());
    for (index, text) in documents.into_iter().enumerate() {
        if index % 4 == 3 {
            held_out.push(text);
        } else {
            train.push(text);
        }
    }
    let dir = temp_dir("choice");
    let (train_file, held_out_file) = (dir.join("train.jsonl"), dir.join("held_out.jsonl"));
    write_jsonl(&train_file, &train);
    write_jsonl(&held_out_file, &held_out);
    let tokenizer = dir.join("tokenizer.json");
    let path = |p: &Path| p.display().to_string();
    archlab(&[
        "tokenizer".into(),
        "train".into(),
        "--vocab-size".into(),
        "1024".into(),
        "-o".into(),
        path(&tokenizer),
        path(&train_file),
    ]);
    let choices = dir.join("held_out_choice.jsonl");
    write_choice_file(&words(&train), &words(&held_out), &choices, 1000);
    let config = format!(
        r#"
model: {{d_model: 128, n_layers: 2}}
data:
  seq_len: 64
  tasks:
    - {{kind: corpus, tokenizer: {tokenizer:?}, train: [{train:?}], validation: [{held_out:?}]}}
optim: {{lr: 0.008, warmup_steps: 30}}
steps: 300
batch_size: 64
benchmarks:
  - {{task: multiple_choice, path: {choices:?}, name: held_out_choice}}
"#,
        tokenizer = path(&tokenizer),
        train = path(&train_file),
        held_out = path(&held_out_file),
        choices = path(&choices),
    );
    let config_path = dir.join("config.yaml");
    std::fs::write(&config_path, &config).unwrap();
    let program = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/archspec/library/softmax_rope.arch"
    );

    // Untrained: the model as initialised, scored by the same code.
    let prepared = trainer::prepare(
        &std::fs::read_to_string(program).unwrap(),
        trainer::TrainConfig::from_yaml(&config).unwrap(),
    )
    .unwrap();
    let device = trainer::device("cpu").unwrap();
    let (model, store) = trainer::training::fresh_model(
        &prepared.program.checked.graph,
        prepared.shape,
        &prepared.config,
        &device,
    );
    let untrained =
        &trainer::score_benchmarks(&prepared, &model, &store, &device)["held_out_choice"];
    assert_eq!(untrained.n, 1000);

    // Trained, through the binary: the result line carries the benchmark.
    let stdout = archlab(&[
        "train".into(),
        "--program".into(),
        program.into(),
        "--config".into(),
        path(&config_path),
    ]);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let trained = &result["benchmarks"]["held_out_choice"];
    let acc = trained["acc"].as_f64().unwrap();
    eprintln!(
        "held-out 4-way choice ({} training documents, {} held out; files in {}): untrained acc {:.3} acc_norm {:.3}; trained acc {acc:.3} ± {:.3} acc_norm {:.3}, validation loss {:.3}",
        train.len(),
        held_out.len(),
        dir.display(),
        untrained.acc,
        untrained.acc_norm.unwrap(),
        trained["acc_stderr"].as_f64().unwrap(),
        trained["acc_norm"].as_f64().unwrap(),
        result["val_loss"].as_f64().unwrap(),
    );
    assert!(
        (untrained.acc - 0.25).abs() <= 0.05,
        "untrained acc {} is not chance",
        untrained.acc
    );
    assert!(acc >= 0.45, "trained acc {acc} is not 0.20 above chance");
    assert_eq!(trained["n"], 1000);
}
