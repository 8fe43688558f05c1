//! `archlab eval`: scores a saved model again, on the validation and test data of a config.

use super::{EXIT_FAILURE, EXIT_OK, exit};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::ExitCode;
use trainer::TrainConfig;
use trainer::checkpoint::{self, ModelCard};
use trainer::data::Split;

pub fn run(checkpoint_dir: &Path, config_path: &Path, device: &str) -> Result<ExitCode> {
    match evaluate(checkpoint_dir, config_path, device) {
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

fn evaluate(checkpoint_dir: &Path, config_path: &Path, device_name: &str) -> Result<String> {
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
    let device = trainer::device(device_name)?;
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
    let score = |split| {
        trainer::training::evaluate(
            &model,
            &store,
            &prepared.config,
            &prepared.sources,
            split,
            &device,
        )
    };
    let validation = score(Split::Validation)?;
    let test = score(Split::Test)?;
    Ok(serde_json::json!({
        "event": "result",
        "status": "ok",
        "program": card.program_name,
        "program_hash": card.program_hash,
        "val_loss": validation.loss,
        "accuracy": validation.accuracy,
        "test_loss": test.loss,
        "test_accuracy": test.accuracy,
        "params": store.count(),
        "steps": card.steps,
    })
    .to_string())
}
