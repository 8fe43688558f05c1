//! The `Campaign` custom resource: seeds, constraints, stages, search, budget, QA limits and
//! agents of one discovery campaign. Field names are camelCase on the wire, except inside
//! `train` blocks, which are the trainer's own config (`archlab train --config`).

use super::limits;
use crate::core::budget::{Budget, Usage};
use crate::core::fitness::FitnessWeights;
use crate::core::novelty::NoveltyConfig;
use crate::core::qa::QaLimits;
use crate::core::sampling::SamplingConfig;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use trainer::TrainConfig;

// Several print columns share a type; clippy reads that as a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "archlab.dev",
    version = "v1alpha1",
    kind = "Campaign",
    namespaced,
    status = "CampaignStatus",
    shortname = "camp",
    derive = "PartialEq",
    doc = "An architecture-discovery campaign: seeds, stages, search settings and budget.",
    category = "archlab",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Experiments",
        type_ = "string",
        description = "Experiments finished / the budget's maximum",
        json_path = ".status.progress"
    ),
    printcolumn(name = "Best", type_ = "number", json_path = ".status.bestFitness"),
    printcolumn(
        name = "Verified",
        type_ = "integer",
        json_path = ".status.verifiedDiscoveries"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// CEL rules for `kubectl apply` users (Kubernetes 1.25+; older servers ignore them and the
// operator's own checks refuse the same with a condition).
#[x_kube(validation = Rule::new("self.seeds.exists(s, s.name == self.baseline)").message("baseline must be the name of one of the seeds"))]
pub struct CampaignSpec {
    /// The starting population: library programs or inline archspec programs.
    #[schemars(length(max = limits::SEEDS))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("seeds cannot change while the campaign exists (its results would no longer compare); create a new Campaign"))]
    pub seeds: Vec<SeedSpec>,
    /// The seed every experiment is compared with (trained at every stage, same config).
    #[schemars(length(max = limits::SEED_NAME))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("baseline cannot change while the campaign exists (its results would no longer compare); create a new Campaign"))]
    pub baseline: String,
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("constraints cannot change while the campaign exists (its results would no longer compare); create a new Campaign"))]
    pub constraints: Constraints,
    #[x_kube(validation = Rule::new("self == oldSelf").message("stages cannot change while the campaign exists (its results would no longer compare); create a new Campaign"))]
    pub stages: Stages,
    #[serde(default)]
    pub search: SearchSpec,
    #[x_kube(validation = Rule::new("self.maxExperiments >= oldSelf.maxExperiments").message("a running campaign's budget can only be raised"))]
    pub budget: Budget,
    /// Trainer runs at once.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub parallelism: u32,
    #[serde(default)]
    pub qa: QaLimits,
    #[serde(default)]
    pub agents: AgentsSpec,
    #[serde(default)]
    pub fitness: FitnessWeights,
    #[serde(default)]
    pub cognition: CognitionSpec,
    /// Seed of every random choice the campaign makes (sampling, mutation, training).
    #[serde(default)]
    pub seed: u64,
    /// How the operator runs trainer pods (ignored by `archlab run`).
    #[serde(default)]
    pub trainer: super::trainer::TrainerSpec,
}

fn one() -> u32 {
    1
}

/// One seed: a library program by name, or an inline program (exactly one of the two).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedSpec {
    #[schemars(length(max = limits::SEED_NAME))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = limits::LIBRARY_NAME))]
    pub library: Option<String>,
    #[serde(default)]
    #[schemars(length(max = limits::PROGRAM))]
    pub program: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ComplexityLimit {
    #[default]
    Linear,
    Window,
    Quadratic,
}

impl From<ComplexityLimit> for archspec::Complexity {
    fn from(limit: ComplexityLimit) -> Self {
        match limit {
            ComplexityLimit::Linear => archspec::Complexity::Linear,
            ComplexityLimit::Window => archspec::Complexity::Window,
            ComplexityLimit::Quadratic => archspec::Complexity::Quadratic,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Constraints {
    /// Highest cost in the sequence length a proposal may have (seeds are exempt).
    #[serde(default)]
    pub max_complexity: ComplexityLimit,
    /// Most parameters per mixer at the exploration config; unset, [`DEFAULT_MAX_PARAMS`].
    #[serde(default)]
    pub max_params: Option<u64>,
    /// Memory of the device each trainer runs on, in GiB (a GPU's memory, or a CPU
    /// trainer's memory limit). A program whose estimated peak training memory (README,
    /// "Peak memory") exceeds it is refused before it trains, seeds included. Unset: locally
    /// this machine's RAM; in the operator, not checked.
    #[serde(
        default,
        rename = "deviceMemoryGiB",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0.01, max = 1048576.0))]
    pub device_memory_gib: Option<f64>,
}

/// A proposal's parameter limit when a campaign sets none: 64 Mi per mixer (a layer of a
/// model far larger than any exploration run), so that a chain of `linear(65536)` — legal
/// dimension by dimension, billions of parameters together — is refused before it trains.
pub const DEFAULT_MAX_PARAMS: u64 = 64 << 20;

impl Constraints {
    /// The parameter limit proposals are held to.
    pub fn max_params_or_default(&self) -> u64 {
        self.max_params.unwrap_or(DEFAULT_MAX_PARAMS)
    }

    /// The device memory the campaign states, in bytes.
    pub fn device_memory_bytes(&self) -> Option<u64> {
        self.device_memory_gib
            .map(|gib| (gib * f64::from(1u32 << 30)) as u64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stages {
    pub exploration: ExplorationStage,
    /// Rungs between exploration and verification, smallest first (successive halving): each
    /// retrains the best `promote` programs of the rung below, and the baseline, under its own
    /// config and seeds. None by default: exploration, then verification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::RUNGS))]
    pub rungs: Vec<RungStage>,
    pub verification: VerificationStage,
}

/// One rung of the ladder between exploration and verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RungStage {
    pub train: TrainConfig,
    /// How many of the rung below's best programs (by mean fitness, above the baseline) are
    /// retrained here.
    pub promote: u32,
    /// Training seeds per program at this rung.
    #[serde(default = "one")]
    pub seeds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExplorationStage {
    pub train: TrainConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationStage {
    pub train: TrainConfig,
    /// How many of the best explorations are promoted.
    #[serde(default = "promote")]
    pub promote: u32,
    /// Training seeds per verified program (mean and 95% interval are reported).
    #[serde(default = "three")]
    pub seeds: u32,
}

fn promote() -> u32 {
    2
}
fn three() -> u32 {
    3
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchSpec {
    #[serde(default)]
    pub sampling: SamplingConfig,
    #[serde(default)]
    pub novelty: NoveltyConfig,
    /// Repairs per experiment after a failed attempt.
    #[serde(default = "max_revisions")]
    pub max_revisions: u32,
}

fn max_revisions() -> u32 {
    2
}

impl Default for SearchSpec {
    fn default() -> Self {
        SearchSpec {
            sampling: SamplingConfig::default(),
            novelty: NoveltyConfig::default(),
            max_revisions: max_revisions(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AgentBackend {
    /// Mutation and crossover guided by analyses and cognition; needs no network.
    #[default]
    Evolutionary,
    /// An OpenAI-compatible chat-completions endpoint.
    Llm,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentsSpec {
    #[serde(default)]
    pub backend: AgentBackend,
    /// The endpoint and models, for `backend: llm`.
    #[serde(default)]
    pub llm: Option<LlmSpec>,
}

/// An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp's server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmSpec {
    /// Base URL up to and including `/v1`, e.g. `http://localhost:8000/v1`.
    #[schemars(length(max = limits::URL))]
    pub base_url: String,
    /// Environment variable holding the API key (locally); none for keyless endpoints. The key
    /// itself never appears in the spec, logs, status or memory.
    #[serde(default)]
    #[schemars(length(max = limits::ENV_VAR_NAME))]
    pub api_key_env: Option<String>,
    /// The Secret (in the Campaign's namespace) holding the API key, read by the operator.
    #[serde(default)]
    pub api_key_secret_ref: Option<SecretKeyRef>,
    /// The model every role uses unless it names its own.
    #[schemars(length(max = limits::MODEL_NAME))]
    pub model: String,
    #[serde(default)]
    pub researcher: RoleSpec,
    #[serde(default)]
    pub engineer: RoleSpec,
    #[serde(default)]
    pub analyst: RoleSpec,
    #[serde(default)]
    pub judge: RoleSpec,
    /// Ask the judge for a score that enters fitness.
    #[serde(default = "yes")]
    pub use_judge: bool,
    /// Seconds before a request counts as hung.
    #[serde(default = "timeout_seconds")]
    #[schemars(range(min = 1.0, max = 3600.0))]
    pub timeout_seconds: f64,
    /// Retries after a 429, a 5xx, a timeout or a refused connection.
    #[serde(default = "max_retries")]
    #[schemars(range(max = 20))]
    pub max_retries: u32,
    /// First backoff in seconds (doubled each retry, with jitter; `Retry-After` wins).
    #[serde(default = "backoff_seconds")]
    #[schemars(range(min = 0.0, max = 300.0))]
    pub backoff_seconds: f64,
    /// Re-asks after a reply that is not valid JSON of the role's schema.
    #[serde(default = "max_reasks")]
    #[schemars(range(max = 10))]
    pub max_reasks: u32,
    /// Model for `/v1/embeddings` (cognition retrieval); none: the built-in embedding.
    #[serde(default)]
    #[schemars(length(max = limits::MODEL_NAME))]
    pub embeddings_model: Option<String>,
    /// Use the evolutionary agents when the endpoint stays unreachable or the token budget is
    /// spent, instead of failing those experiments.
    #[serde(default = "yes")]
    pub fallback_to_evolutionary: bool,
}

fn yes() -> bool {
    true
}
fn timeout_seconds() -> f64 {
    120.0
}
fn max_retries() -> u32 {
    4
}
fn backoff_seconds() -> f64 {
    1.0
}
fn max_reasks() -> u32 {
    2
}

/// One key of a Secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    #[schemars(length(max = limits::OBJECT_NAME))]
    pub name: String,
    #[schemars(length(max = limits::SECRET_KEY))]
    pub key: String,
}

/// One role's model settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    #[serde(default)]
    #[schemars(length(max = limits::MODEL_NAME))]
    pub model: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum EmbedderKind {
    #[default]
    Lexical,
    Minilm,
    /// `/v1/embeddings` of the agents' endpoint (`agents.llm.embeddingsModel`).
    Endpoint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CognitionSpec {
    /// Directories of extra entries (a ConfigMap mount in the cluster).
    #[serde(default)]
    #[schemars(length(max = limits::EXTRA_DIRS), inner(length(max = limits::PATH)))]
    pub extra_dirs: Vec<String>,
    #[serde(default)]
    pub embedder: EmbedderKind,
    /// Entries retrieved per proposal.
    #[serde(default = "top_k")]
    #[schemars(range(min = 1, max = limits::TOP_K))]
    pub top_k: usize,
    #[serde(default = "min_score")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_score: f64,
}

fn top_k() -> usize {
    3
}
fn min_score() -> f64 {
    0.05
}

impl Default for CognitionSpec {
    fn default() -> Self {
        CognitionSpec {
            extra_dirs: Vec::new(),
            embedder: EmbedderKind::default(),
            top_k: top_k(),
            min_score: min_score(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CampaignPhase {
    Pending,
    Running,
    Completed,
    Failed,
}

/// One status condition, keyed by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    #[schemars(length(max = limits::CONDITION_TYPE))]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[schemars(length(max = limits::CONDITION_STATUS))]
    pub status: String,
    #[schemars(length(max = limits::CONDITION_REASON))]
    pub reason: String,
    #[schemars(length(max = limits::CONDITION_MESSAGE))]
    pub message: String,
    #[schemars(length(max = limits::TIMESTAMP), extend("format" = "date-time"))]
    pub last_transition_time: String,
    #[serde(default)]
    pub observed_generation: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignStatus {
    #[serde(default)]
    pub phase: Option<CampaignPhase>,
    #[serde(default)]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    #[schemars(length(max = limits::CONDITIONS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub usage: Usage,
    /// Experiments finished / the budget's maximum, e.g. `12/50` (a printer column).
    #[serde(default)]
    #[schemars(length(max = limits::PROGRESS))]
    pub progress: Option<String>,
    #[serde(default)]
    pub best_fitness: Option<f64>,
    /// Verified wins over the previous state of the art.
    #[serde(default)]
    pub verified_discoveries: u32,
    /// LLM tokens spent by the agents (memory: the rest of the usage is counted from the
    /// Experiments).
    #[serde(default)]
    pub llm_tokens: u64,
    /// The agents' per-role statistics and any fallback reason (as `archlab report` shows).
    #[serde(default)]
    #[schemars(schema_with = "crate::api::experiment::free_object")]
    pub agents: Option<serde_json::Value>,
    /// The spec the engine runs: the one it first opened with and every edit it accepted since
    /// (a raised budget). A restarted operator opens the campaign with it, so an edit refused
    /// while the campaign ran stays refused. Only the operator writes it (status subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::experiment::free_object")]
    pub accepted_spec: Option<serde_json::Value>,
    /// The generation whose spec (or budget) the engine last accepted; `observedGeneration` is
    /// the last one it judged, accepted or refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_generation: Option<i64>,
}
