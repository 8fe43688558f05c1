//! The `archlab` command line: parses arguments and hands them to `archlab::cli`.

use anyhow::{Context, Result};
use archlab::cli;
use archspec::{CheckConfig, Complexity, ModelShape};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Autonomous discovery of token-mixing layers for language models.
#[derive(Debug, Parser)]
#[command(name = "archlab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an archspec program: syntax, shapes, causality, cost in T, parameters, FLOPs and state.
    ///
    /// Exits 0 when the program is valid and 1 when it is not (the errors name line and column).
    Check(CheckArgs),
    /// Train one archspec program with one training config; prints JSON lines.
    ///
    /// Progress lines `{"event":"progress",…}` at a steady cadence, then one
    /// `{"event":"result","status":"ok"|"diverged"|"error",…}`. Exits 1 before training when the
    /// program, config or data is invalid. SIGTERM stops it at the next step, with no result:
    /// it saves that step under `--checkpoint-dir` and exits 143.
    Train(TrainArgs),
    /// Re-score a saved model (`archlab train --checkpoint-dir`) on a config's validation and
    /// test data and its benchmarks; prints one result line.
    ///
    /// The config's model section and vocabulary must be the saved model's; its data and
    /// benchmarks may differ (score on other text). `--items` writes every benchmark request's
    /// log-likelihood, to compare with lm-evaluation-harness. Exits 1 when the checkpoint does
    /// not fit the config.
    Eval(cli::eval::EvalArgs),
    /// Tokenizers: train a byte-level BPE `tokenizer.json` on local text.
    Tokenizer {
        #[command(subcommand)]
        command: TokenizerCommand,
    },
    /// Data: tokenize a corpus into token shards.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Run a discovery campaign on this machine: the manifest you would `kubectl apply`.
    ///
    /// Trainers run as child processes (`spec.parallelism` at once); every experiment, attempt
    /// and failure is kept in SQLite under --state. Ctrl-C stops cleanly; running the same
    /// command again resumes. Exits 0 when the campaign ends (budget spent or stages done).
    Run(RunArgs),
    /// Report on a campaign from memory: leaderboard, verification, lineage, failed attempts
    /// and figures (SVG), as text, JSON or one self-contained HTML page.
    Report(ReportArgs),
    /// The shipped architectures (seeds and baselines of every campaign).
    Library {
        #[command(subcommand)]
        command: LibraryCommand,
    },
    /// Run the Kubernetes operator: `kubectl apply` a Campaign and its experiments train in pods.
    ///
    /// Uses KUBECONFIG (or ~/.kube/config, or the pod's service account). One engine per
    /// Campaign; its Experiments are the memory, one trainer pod per attempt. Install the CRDs
    /// first: `archlab crd | kubectl apply -f -`. Exits 1 with one line when no cluster answers.
    Operator(OperatorArgs),
    /// Print the Campaign and Experiment CustomResourceDefinitions (YAML).
    ///
    /// `archlab crd | kubectl apply -f -` installs them; `crds/archlab.yaml` holds the same text.
    Crd,
    /// The cognition base: prior knowledge retrieved for each proposal.
    Cognition {
        /// Also load every *.yaml entry in this directory (repeatable).
        #[arg(long = "entries", value_name = "DIR", global = true)]
        extra_dirs: Vec<PathBuf>,
        #[command(subcommand)]
        command: CognitionCommand,
    },
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The program file, or `-` for standard input.
    file: PathBuf,
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
    /// Model width the program is checked at.
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    /// Sequence length for FLOPs and state size.
    #[arg(long, default_value_t = 512)]
    seq_len: usize,
    /// Blocks in the model, for the whole-model parameter count.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Vocabulary size, for the whole-model parameter count.
    #[arg(long, default_value_t = 256)]
    vocab: usize,
    /// Hidden width of the SwiGLU MLP (default: 2 × d_model).
    #[arg(long)]
    d_ff: Option<usize>,
    /// Count the output head as the input embedding's transpose (`model.tie_embeddings`).
    #[arg(long)]
    tie_embeddings: bool,
    /// Sequences per training step, for the peak-memory estimate.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// The trainer's chunk length for chunked kernels (`chunk_size`), for the estimate.
    #[arg(long, default_value_t = 16)]
    chunk_size: usize,
    /// Reject programs whose cost in T is above this.
    #[arg(long, value_enum)]
    max_complexity: Option<ComplexityArg>,
    /// Override a hyperparameter: `--set heads=8` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_override)]
    overrides: Vec<(String, i64)>,
}

#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// The archspec program to train.
    #[arg(long, required_unless_present = "program_env")]
    program: Option<PathBuf>,
    /// Read the program from this environment variable instead (trainer pods).
    #[arg(long, value_name = "VAR", conflicts_with = "program")]
    program_env: Option<String>,
    /// The training config (YAML or JSON), e.g. examples/train/mqar.yaml.
    #[arg(long, required_unless_present = "config_env")]
    config: Option<PathBuf>,
    /// Read the config from this environment variable instead (trainer pods).
    #[arg(long, value_name = "VAR", conflicts_with = "config")]
    config_env: Option<String>,
    /// Also write the result line to this file.
    #[arg(long)]
    result: Option<PathBuf>,
    /// Also write the result (at most 4096 bytes) here, e.g. /dev/termination-log in a pod.
    #[arg(long)]
    termination_message: Option<PathBuf>,
    /// Where to train: `cpu`; with the `tch` feature also `tch-cpu` and `cuda`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Instead of training, write the initial parameters, the first batch, its loss, logits
    /// and gradients as JSON to this file (for scripts/parity's exact comparison).
    #[arg(long, value_name = "FILE")]
    dump_first_step: Option<PathBuf>,
    /// Exit when standard input closes (set by `archlab run`, so trainers die with it).
    #[arg(long, hide = true)]
    exit_on_stdin_eof: bool,
    /// Save checkpoints here (the config's `checkpoint` says how often) and the final model
    /// (`model.safetensors`, `model.json`); a run started again with the same program and
    /// config resumes from the newest checkpoint found here (or the step SIGTERM stopped at).
    #[arg(long, value_name = "DIR", env = "ARCHLAB_CHECKPOINT_DIR")]
    checkpoint_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TokenizerCommand {
    /// Train a byte-level BPE (GPT-2's scheme) with `<|endoftext|>` as its special token.
    ///
    /// Documents as the corpus task reads them: a `.jsonl` file holds one a line, a
    /// `.parquet` file one a row (in the `--text-field` string), any other file is one
    /// plain-text document.
    Train {
        /// Text files to learn merges from.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Tokens in the vocabulary, the 256 bytes and `<|endoftext|>` included.
        #[arg(long, default_value_t = 8192)]
        vocab_size: usize,
        /// Where to write the tokenizer.
        #[arg(long, short, default_value = "tokenizer.json")]
        output: PathBuf,
        /// The JSONL field or Parquet column holding a document's text.
        #[arg(long, default_value = "text")]
        text_field: String,
    },
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Tokenize text files into llm.c shards (`<prefix>_000000.bin`, …) for a `tokens` task.
    ///
    /// Each document is preceded by the end-of-text token; shards hold `--shard-tokens` tokens
    /// (uint16 when the vocabulary fits, else uint32). Run it again after an interruption and
    /// it resumes after the last finished shard. Prepare the validation files with another
    /// prefix (e.g. `--prefix val`); training on the shards then sees the same windows as a
    /// `corpus` task on the files.
    Prepare(cli::data::PrepareOptions),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The Campaign manifest (YAML), e.g. examples/quickstart.yaml.
    manifest: PathBuf,
    /// Directory for memory (archlab.db) and run files; reuse it to resume.
    #[arg(long, default_value = ".archlab")]
    state: PathBuf,
    /// Where trainers run: `cpu`; with the `tch` feature also `tch-cpu` and `cuda`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Replace the manifest's agents by an offline search strategy (for benchmarks).
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
    /// No progress bars; one line per ended experiment.
    #[arg(long, short)]
    quiet: bool,
    /// Run trainers with this executable instead of this archlab; it gets the arguments of
    /// `archlab train` (a wrapper script that sets the environment and execs archlab, say).
    #[arg(long, value_name = "PATH")]
    trainer_exe: Option<PathBuf>,
    /// Seconds between saves of a running experiment's progress to memory (what `archlab
    /// report` shows while it runs); 0 saves every line. Phase changes and endings are saved
    /// at once.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS", value_parser = seconds)]
    progress_interval: f64,
}

/// A non-negative, finite number of seconds.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.0..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "expected seconds between 0 and 86400, got `{text}`"
        )),
    }
}

#[derive(Debug, clap::Args)]
struct OperatorArgs {
    /// Watch Campaigns in this namespace only (default: all namespaces).
    #[arg(long, env = "ARCHLAB_NAMESPACE")]
    namespace: Option<String>,
    /// Seconds to wait for the API server before giving up.
    #[arg(long, default_value_t = 8, value_name = "SECONDS")]
    connect_timeout: u64,
    /// Seconds between checks of a trainer pod's clocks (deadlines, the silence rule); its
    /// changes arrive through a watch as they happen.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    poll_interval: u64,
    /// Seconds an ended trainer pod is kept (for `kubectl logs` and `describe`) before it is
    /// deleted; what the Experiment needs of it is in its status. 0: kept until its Experiment
    /// is deleted.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    finished_pod_ttl: u64,
    /// This replica's name in Kubernetes Events and on the Lease (the chart sets the pod name).
    #[arg(long, env = "POD_NAME", default_value = "archlab-operator")]
    instance: String,
    /// Serve /metrics, /healthz and /readyz here.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDRESS")]
    metrics_address: std::net::SocketAddr,
    /// Do not serve metrics.
    #[arg(long, conflicts_with = "metrics_address")]
    no_metrics: bool,
    /// The Lease that elects which replica runs the engines.
    #[arg(long, default_value = "archlab-operator", value_name = "NAME")]
    lease_name: String,
    /// Namespace of the Lease (default: the operator pod's namespace, else `default`).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "default",
        value_name = "NAMESPACE"
    )]
    lease_namespace: String,
    /// Run without leader election (only safe with a single replica).
    #[arg(long)]
    no_leader_election: bool,
    /// YAML file of what trainer pods get when a Campaign leaves it out: `image`,
    /// `imagePullPolicy`, `gpuResource`, `gpusPerTrainer`, `nodeSelector`, `tolerations`,
    /// `priorityClassName`, `imagePullSecrets`, `serviceAccountName` (the Helm chart writes it from its values).
    #[arg(long, value_name = "FILE")]
    trainer_defaults: Option<PathBuf>,
    /// The cluster administrator's policy: a directory holding the keys of the Helm chart's
    /// policy ConfigMap (`images`, `serviceAccounts`, `llmEndpoints`, `maxGpusPerCampaign`, …),
    /// one file each, as Kubernetes mounts a ConfigMap. A Campaign asking for more than it
    /// allows gets `SpecAccepted=False` (`PolicyViolation`, naming the field) and no pod.
    /// Without it every Campaign may choose its trainer's image, account and endpoint.
    #[arg(long, value_name = "DIR")]
    policy_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StrategyArg {
    /// Fitness-ranked parents, operator statistics, analysis and cognition steering.
    Evolutionary,
    /// Uniform operators without steering (the benchmark's control).
    Random,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// The state directory given to `archlab run`.
    #[arg(long, default_value = ".archlab")]
    state: PathBuf,
    /// Which campaign (default: the only one in the state directory).
    #[arg(long)]
    campaign: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write one self-contained HTML page here.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Directory for the SVG figures (default: STATE/report).
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    /// Also measure the claim rule's false-claim rate: this many simulated campaigns per
    /// scenario, in which a promoted program is the best under another name, under the noise
    /// of this campaign's verification runs (text: a FALSE CLAIMS section; JSON:
    /// `false_claims`).
    #[arg(long, value_name = "TRIALS")]
    false_claims: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ComplexityArg {
    Linear,
    Window,
    Quadratic,
}

impl From<ComplexityArg> for Complexity {
    fn from(value: ComplexityArg) -> Self {
        match value {
            ComplexityArg::Linear => Complexity::Linear,
            ComplexityArg::Window => Complexity::Window,
            ComplexityArg::Quadratic => Complexity::Quadratic,
        }
    }
}

#[derive(Debug, Subcommand)]
enum LibraryCommand {
    /// List the library programs with cost class, parameters and state size.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print one library program.
    Show { name: String },
}

#[derive(Debug, Subcommand)]
enum CognitionCommand {
    /// Entries whose triggers best match a problem description.
    Search {
        /// The problem, described by its symptoms.
        text: String,
        /// How many entries to return.
        #[arg(short, default_value_t = 5)]
        k: usize,
        /// Leave out entries scoring below this similarity (0–1).
        #[arg(long, default_value_t = 0.05)]
        min_score: f64,
        #[arg(long)]
        json: bool,
        /// `lexical` (built in, no files) or `minilm` (all-MiniLM-L6-v2 from local files).
        #[arg(long, value_enum, default_value_t = EmbedderArg::Lexical)]
        embedder: EmbedderArg,
        /// Directory with MiniLM's model.safetensors and vocab.txt
        /// (default: $ARCHLAB_MINILM_DIR, else models/all-MiniLM-L6-v2).
        #[arg(long)]
        minilm_dir: Option<PathBuf>,
    },
    /// Print one entry.
    Show { id: String },
    /// List every entry.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EmbedderArg {
    Lexical,
    Minilm,
}

fn parse_override(text: &str) -> Result<(String, i64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, found `{text}`"))?;
    let value = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not an integer"))?;
    Ok((name.trim().to_string(), value))
}

/// A file or an environment variable (clap guarantees exactly one).
fn input(file: Option<PathBuf>, env: Option<String>) -> cli::train::Input {
    match (file, env) {
        (Some(path), _) => cli::train::Input::File(path),
        (None, Some(name)) => cli::train::Input::Env(name),
        (None, None) => cli::train::Input::File(PathBuf::from("-")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Diagnostics for developers: `ARCHLAB_LOG=debug archlab run …` (default: warnings only).
    let filter = tracing_subscriber::EnvFilter::try_from_env("ARCHLAB_LOG")
        // kube's client logs every failed request itself; archlab reports them once, in words.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,kube_client::client::builder=off")
        });
    // Colour only on a terminal: logs redirected to a file or collected from a pod stay plain.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check(args) => {
            let options = cli::check::CheckOptions {
                config: CheckConfig {
                    d_model: args.d_model,
                    seq_len: args.seq_len,
                    overrides: args.overrides.into_iter().collect(),
                    max_complexity: args.max_complexity.map(Complexity::from),
                },
                model: ModelShape {
                    d_model: args.d_model,
                    n_layers: args.layers,
                    vocab_size: args.vocab,
                    d_ff: args.d_ff.unwrap_or(2 * args.d_model),
                    seq_len: args.seq_len,
                    tied_embeddings: args.tie_embeddings,
                },
                batch_size: args.batch_size,
                chunk_size: args.chunk_size,
                json: args.json,
            };
            cli::check::run(&args.file, &options)
        }
        Command::Train(args) => cli::train::run(&cli::train::TrainOptions {
            program: input(args.program, args.program_env),
            config: input(args.config, args.config_env),
            result: args.result,
            termination_message: args.termination_message,
            device: args.device,
            exit_on_stdin_eof: args.exit_on_stdin_eof,
            dump_first_step: args.dump_first_step,
            checkpoint_dir: args.checkpoint_dir,
        }),
        Command::Eval(args) => cli::eval::run(&args),
        Command::Tokenizer {
            command:
                TokenizerCommand::Train {
                    files,
                    vocab_size,
                    output,
                    text_field,
                },
        } => cli::data::train_tokenizer(&files, vocab_size, &output, &text_field),
        Command::Data {
            command: DataCommand::Prepare(options),
        } => cli::data::prepare(&options),
        Command::Run(args) => cli::run::run(&archlab::local::RunOptions {
            manifest: args.manifest,
            state: args.state,
            strategy: args.strategy.map(|s| match s {
                StrategyArg::Evolutionary => archlab::agents::SearchStrategy::Evolutionary,
                StrategyArg::Random => archlab::agents::SearchStrategy::Random,
            }),
            trainer_exe: args.trainer_exe,
            device: args.device,
            quiet: args.quiet,
            progress_interval: std::time::Duration::from_secs_f64(args.progress_interval),
        }),
        Command::Report(args) => cli::report::run(&cli::report::ReportOptions {
            state: args.state,
            campaign: args.campaign,
            json: args.json,
            html: args.html,
            plots: args.plots,
            false_claims: args.false_claims,
        }),
        Command::Cognition {
            extra_dirs,
            command,
        } => match command {
            CognitionCommand::Search {
                text,
                k,
                min_score,
                json,
                embedder,
                minilm_dir,
            } => cli::cognition::search(
                &cli::cognition::SearchOptions {
                    query: &text,
                    k,
                    min_score,
                    json,
                    embedder: match embedder {
                        EmbedderArg::Lexical => cli::cognition::EmbedderChoice::Lexical,
                        EmbedderArg::Minilm => cli::cognition::EmbedderChoice::Minilm,
                    },
                    minilm_dir,
                },
                &extra_dirs,
            ),
            CognitionCommand::Show { id } => cli::cognition::show(&id, &extra_dirs),
            CognitionCommand::List { json } => cli::cognition::list(json, &extra_dirs),
        },
        Command::Crd => cli::crd::run(),
        Command::Operator(args) => {
            archlab::operator::run(archlab::operator::OperatorOptions {
                namespace: args.namespace,
                connect_timeout: std::time::Duration::from_secs(args.connect_timeout.max(1)),
                poll: std::time::Duration::from_secs(args.poll_interval.max(1)),
                finished_pod_ttl: (args.finished_pod_ttl > 0)
                    .then(|| std::time::Duration::from_secs(args.finished_pod_ttl)),
                instance: args.instance,
                metrics_address: (!args.no_metrics).then_some(args.metrics_address),
                lease: (!args.no_leader_election).then_some(archlab::operator::LeaseOptions {
                    name: args.lease_name,
                    namespace: args.lease_namespace,
                }),
                trainer_defaults: match &args.trainer_defaults {
                    Some(path) => read_trainer_defaults(path)?,
                    None => Default::default(),
                },
                policy: match &args.policy_dir {
                    Some(dir) => Some(
                        archlab::api::policy::Policy::from_dir(dir)
                            .context("reading the policy (--policy-dir)")?,
                    ),
                    None => None,
                },
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Library { command } => match command {
            LibraryCommand::List { json } => cli::library::list(json),
            LibraryCommand::Show { name } => cli::library::show(&name),
        },
    }
}

/// `--trainer-defaults`: a YAML file; an error names the file and the field.
fn read_trainer_defaults(path: &std::path::Path) -> Result<archlab::api::trainer::TrainerDefaults> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the trainer defaults {}", path.display()))?;
    serde_yaml::from_str(&text)
        .with_context(|| format!("{}: not valid trainer defaults", path.display()))
}
