//! `archlab eval`: scores a saved model again, on the validation and test data of a config
//! on its benchmarks and on its long-context evaluation.

use super::{EXIT_FAILURE, EXIT_OK, exit};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trainer::TrainConfig;
use trainer::benchmarks::score;
use trainer::checkpoint::{self, ModelCard};
use trainer::data::Split;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A directory `archlab train --checkpoint-dir` wrote (it holds model.json).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The config whose validation and test data, and benchmarks, to score on.
    #[arg(long)]
    config: PathBuf,
    /// Where to evaluate: `cpu`; with the `tch` feature also `tch-cpu` and `cuda`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Also write every benchmark request as a JSON line: benchmark, doc, request, context,
    /// continuation, their token counts, log-likelihood and whether greedy decoding gives it.
    #[arg(long, value_name = "FILE")]
    items: Option<PathBuf>,
}

pub fn run(args: &EvalArgs) -> Result<ExitCode> {
    match evaluate(args) {
        Ok(line) => {
            println!("{line}");
            Ok(exit(EXIT_OK))
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            Ok(exit(EXIT_FAILURE))
        }
    }
}

fn evaluate(args: &EvalArgs) -> Result<String> {
    let (checkpoint_dir, config_path) = (args.checkpoint.as_path(), args.config.as_path());
    let card: ModelCard = checkpoint::read_json(&checkpoint_dir.join(checkpoint::MODEL_JSON))
        .context("reading the saved model's description (is this a --checkpoint-dir of a finished `archlab train`?)")?;
    if card.format != checkpoint::FORMAT {
        bail!(
            "{}: checkpoint format {} (this archlab reads {})",
            checkpoint_dir.display(),
            card.format,
            checkpoint::FORMAT
        );
    }
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let config = TrainConfig::from_yaml(&text)
        .map_err(|message| anyhow::anyhow!("{}: {message}", config_path.display()))?;
    if config.model != card.config.model {
        bail!(
            "{}: its `model` section ({:?}) is not the saved model's ({:?})",
            config_path.display(),
            config.model,
            card.config.model
        );
    }
    let prepared = trainer::prepare(&card.program, config)
        .with_context(|| format!("{}: the saved program", checkpoint_dir.display()))?;
    if prepared.program.hash() != card.program_hash {
        bail!(
            "{}: the saved program hashes to {} but model.json says {}",
            checkpoint_dir.display(),
            prepared.program.hash(),
            card.program_hash
        );
    }
    if prepared.config.data.vocab_size != card.config.data.vocab_size {
        bail!(
            "{}: a vocabulary of {} but the saved model's is {} (another tokenizer?)",
            config_path.display(),
            prepared.config.data.vocab_size,
            card.config.data.vocab_size
        );
    }
    let device = trainer::device(&args.device)?;
    let (model, mut store) = trainer::training::fresh_model(
        &prepared.program.checked.graph,
        prepared.shape,
        &prepared.config,
        &device,
    );
    checkpoint::load_params(
        &checkpoint_dir.join(checkpoint::MODEL_FILE),
        &mut store,
        &device,
    )?;
    let score_split = |split| {
        trainer::training::evaluate(
            &model,
            &store,
            &prepared.config,
            &prepared.sources,
            split,
            &device,
        )
    };
    let validation = score_split(Split::Validation)?;
    let test = score_split(Split::Test)?;
    let mut benchmarks = serde_json::Map::new();
    let mut items = Vec::new();
    for benchmark in &prepared.benchmarks {
        let scores = score::log_likelihoods(
            &model,
            &store,
            benchmark,
            prepared.config.data.seq_len,
            prepared.config.batch_size,
            &device,
        );
        let metrics = score::metrics(benchmark, &scores);
        benchmarks.insert(benchmark.name.clone(), serde_json::to_value(&metrics)?);
        if args.items.is_some() {
            items.extend(item_lines(benchmark, &scores));
        }
    }
    if let Some(path) = &args.items {
        write_items(path, &items)?;
    }
    Ok(serde_json::json!({
        "event": "result",
        "status": "ok",
        "program": card.program_name,
        "program_hash": card.program_hash,
        "val_loss": validation.loss,
        "accuracy": validation.accuracy,
        "test_loss": test.loss,
        "test_accuracy": test.accuracy,
        "benchmarks": benchmarks,
        "long_context": trainer::score_long_context(&prepared, &model, &store, &device),
        "params": store.count(),
        "steps": card.steps,
    })
    .to_string())
}

/// One JSON line per request of `benchmark`.
fn item_lines(
    benchmark: &trainer::benchmarks::Benchmark,
    scores: &[Vec<score::Scored>],
) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for (doc_index, ((doc, tokens), scored)) in benchmark
        .docs
        .iter()
        .zip(&benchmark.tokens)
        .zip(scores)
        .enumerate()
    {
        for (request_index, ((request, tokens), scored)) in
            doc.requests().iter().zip(tokens).zip(scored).enumerate()
        {
            lines.push(serde_json::json!({
                "benchmark": benchmark.name,
                "doc": doc_index,
                "request": request_index,
                "context": request.context,
                "continuation": request.continuation,
                "context_tokens": tokens.context.len(),
                "continuation_tokens": tokens.continuation.len(),
                "log_likelihood": scored.log_likelihood,
                "greedy": scored.greedy,
            }));
        }
    }
    lines
}

fn write_items(path: &Path, items: &[serde_json::Value]) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for item in items {
            writeln!(file, "{item}")?;
        }
        file.flush()
    };
    write().with_context(|| format!("writing {}", path.display()))
}
