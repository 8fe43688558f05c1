//! `archlab tokenizer train` and `archlab data prepare`: from a directory of text to a
//! tokenizer and token shards, with no download.

use super::{EXIT_OK, exit};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use trainer::corpus::{self, Position};
use trainer::shards::{self, TokenWidth};
use trainer::tokenizer::{self, TextTokenizer};

/// Trains a byte-level BPE on `files` and writes it to `output`.
pub fn train_tokenizer(
    files: &[PathBuf],
    vocab_size: usize,
    output: &Path,
    text_field: &str,
) -> Result<ExitCode> {
    let started = Instant::now();
    let mut documents = Vec::new();
    for path in files {
        corpus::for_each_document(path, text_field, 0, &mut |_| {}, &mut |_, text| {
            documents.push(text);
            Ok(())
        })?;
    }
    if documents.is_empty() {
        bail!("no documents in {} file(s)", files.len());
    }
    let count = documents.len();
    let trained = tokenizer::train_byte_level_bpe(documents.into_iter(), vocab_size, output)?;
    eprintln!(
        "wrote {} ({} tokens, end-of-text {} = `{}`), trained on {count} documents in {:.1} s",
        output.display(),
        trained.vocab_size(),
        trained.end_of_text,
        tokenizer::END_OF_TEXT,
        started.elapsed().as_secs_f64()
    );
    Ok(exit(EXIT_OK))
}

/// `archlab data prepare`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct PrepareOptions {
    /// Text files: `.jsonl` one document a line, `.parquet` one a row, anything else one
    /// document a file.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// A Hugging Face tokenizer.json.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Directory for the shards.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Shard file names: `<prefix>_000000.bin`.
    #[arg(long, default_value = "train")]
    pub prefix: String,
    /// Tokens per shard (llm.c: 10^8).
    #[arg(long, default_value_t = trainer::corpus::SHARD_TOKENS)]
    pub shard_tokens: usize,
    /// The JSONL field or Parquet column holding a document's text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// The end-of-text token (default: the tokenizer's `<|endoftext|>`, `</s>`, …).
    #[arg(long)]
    pub eot: Option<String>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// What a preparation is of, and how far it got: `<prefix>.prepare.json` beside the shards,
/// rewritten after each shard so an interrupted run resumes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct PrepareState {
    inputs: Inputs,
    shards: usize,
    tokens: u64,
    next: Position,
    done: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Inputs {
    tokenizer: String,
    /// Each file and its size in bytes.
    files: Vec<(PathBuf, u64)>,
    shard_tokens: usize,
    text_field: String,
    end_of_text: u32,
}

pub fn prepare(options: &PrepareOptions) -> Result<ExitCode> {
    if options.shard_tokens < 2 || i32::try_from(options.shard_tokens).is_err() {
        bail!(
            "--shard-tokens must be in 2..=2147483647 (llm.c's header counts tokens in an int32), found {}",
            options.shard_tokens
        );
    }
    let tokenizer = TextTokenizer::load(&options.tokenizer, options.eot.as_deref())?;
    let width = if tokenizer.vocab_size() <= 1 << 16 {
        TokenWidth::Uint16
    } else {
        TokenWidth::Uint32
    };
    let mut files = Vec::new();
    for path in &options.files {
        let size = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        files.push((path.clone(), size));
    }
    let inputs = Inputs {
        tokenizer: tokenizer.fingerprint.clone(),
        files,
        shard_tokens: options.shard_tokens,
        text_field: options.text_field.clone(),
        end_of_text: tokenizer.end_of_text,
    };
    std::fs::create_dir_all(&options.output)
        .with_context(|| format!("creating {}", options.output.display()))?;
    let state_path = options
        .output
        .join(format!("{}.prepare.json", options.prefix));
    let mut state = match read_state(&state_path)? {
        Some(state) if state.inputs != inputs => bail!(
            "{}: these shards were prepared from other files, tokenizer or settings; use another --output or --prefix, or delete the directory to start over",
            state_path.display()
        ),
        Some(state) if state.done => {
            eprintln!(
                "{}: already prepared ({} shards, {} tokens)",
                options.output.display(),
                state.shards,
                state.tokens
            );
            return Ok(exit(EXIT_OK));
        }
        Some(state) => {
            eprintln!(
                "resuming after shard {} ({} tokens written)",
                state.shards, state.tokens
            );
            state
        }
        None => PrepareState {
            inputs: inputs.clone(),
            shards: 0,
            tokens: 0,
            next: Position::default(),
            done: false,
        },
    };
    let total_bytes: u64 = inputs.files.iter().map(|(_, size)| size).sum();
    let progress = if options.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total_bytes)
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} tokenizing [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let skipped: u64 = inputs.files[..state.next.file.min(inputs.files.len())]
        .iter()
        .map(|(_, size)| size)
        .sum();
    progress.set_position(skipped);
    let started = Instant::now();
    let paths: Vec<PathBuf> = inputs.files.iter().map(|(path, _)| path.clone()).collect();
    let output = options.output.clone();
    let prefix = options.prefix.clone();
    let from = state.next;
    let mut written_now = 0u64;
    let mut counts = vec![0u64; tokenizer.vocab_size()];
    corpus::tokenize_into_shards(
        &tokenizer,
        &paths,
        &options.text_field,
        options.shard_tokens,
        from,
        &mut |bytes| progress.inc(bytes),
        &mut |tokens, next| {
            let name = format!("{prefix}_{:06}.bin", state.shards);
            let path = output.join(&name);
            let partial = output.join(format!("{name}.partial"));
            shards::write_llmc(&partial, &tokens, width)
                .and_then(|()| std::fs::rename(&partial, &path))
                .map_err(|error| {
                    corpus::CorpusError::Sink(format!("writing {}: {error}", path.display()))
                })?;
            state.shards += 1;
            state.tokens += tokens.len() as u64;
            state.next = next;
            written_now += tokens.len() as u64;
            for &token in &tokens {
                if let Some(count) = counts.get_mut(token as usize) {
                    *count += 1;
                }
            }
            write_state(&state_path, &state)
                .map_err(|error| corpus::CorpusError::Sink(format!("{error:#}")))?;
            progress.set_message(format!("{} shards", state.shards));
            Ok(())
        },
    )?;
    state.done = true;
    write_state(&state_path, &state)?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} shards ({} tokens, {width:?}) to {} in {seconds:.1} s ({:.0} tokens/s)",
        state.shards,
        state.tokens,
        options.output.display(),
        written_now as f64 / seconds.max(1e-9)
    );
    if written_now > 0 {
        eprintln!(
            "unigram entropy of the tokens written: {:.3} nats/token (what a model that ignores context reaches at best)",
            unigram_entropy(&counts)
        );
    }
    Ok(exit(EXIT_OK))
}

/// Entropy in nats of the distribution the counts describe.
fn unigram_entropy(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let p = count as f64 / total as f64;
            -p * p.ln()
        })
        .sum()
}

fn read_state(path: &Path) -> Result<Option<PrepareState>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{}: not a preparation state", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_state(path: &Path, state: &PrepareState) -> Result<()> {
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(state)?)
        .and_then(|()| std::fs::rename(&partial, path))
        .with_context(|| format!("writing {}", path.display()))
}
