//! The size of everything a Campaign or an Experiment may hold. Each bound is declared once, on
//! the field's type (`#[schemars(length(max = …))]`, `extend("maxProperties" = …)`), so it
//! reaches the CRDs, where the API server refuses what exceeds it and estimates the cost of the
//! CEL rules from it (a rule reading an unbounded list or string is refused when the CRD is
//! written), and `archlab run` checks a manifest against the same schema
//! ([`super::schema_bounds`]). Strings are measured in characters, as the API server does.

/// A Kubernetes object name (a DNS subdomain): Secrets, service accounts, priority classes,
/// Campaigns.
pub const OBJECT_NAME: usize = 253;
/// A seed's name, and so the baseline: a DNS label.
pub const SEED_NAME: usize = 63;
/// Seeds of one campaign.
pub const SEEDS: usize = 64;
/// Rungs of a campaign's ladder between exploration and verification.
pub const RUNGS: usize = 6;
/// A program's source, as archspec accepts it.
pub const PROGRAM: usize = archspec::limits::MAX_SOURCE_BYTES;
/// A library program's name.
pub const LIBRARY_NAME: usize = 63;
pub const URL: usize = 2048;
/// A model name of an OpenAI-compatible endpoint.
pub const MODEL_NAME: usize = 256;
/// An environment variable's name.
pub const ENV_VAR_NAME: usize = 256;
/// A Secret's key (Kubernetes: 253).
pub const SECRET_KEY: usize = 253;
/// A file or directory path.
pub const PATH: usize = 4096;
/// Extra cognition directories.
pub const EXTRA_DIRS: usize = 16;
/// Cognition entries retrieved per proposal (`spec.cognition.topK`).
pub const TOP_K: usize = 32;
/// A cognition entry's id.
pub const ENTRY_ID: usize = 256;
/// An image reference.
pub const IMAGE: usize = 1024;
pub const IMAGE_PULL_SECRETS: usize = 16;
/// A label or taint key: an optional DNS-subdomain prefix, `/`, a 63-character name.
pub const LABEL_KEY: usize = 317;
/// A label or taint value.
pub const LABEL_VALUE: usize = 63;
pub const NODE_SELECTOR: usize = 64;
pub const TOLERATIONS: usize = 64;
/// A toleration's `operator` or `effect` (`PreferNoSchedule` is the longest).
pub const TOLERATION_WORD: usize = 32;
/// Volumes of the trainer pods.
pub const VOLUMES: usize = 16;
/// Extra labels, annotations and environment variables of the trainer pods.
pub const POD_LABELS: usize = 32;
pub const POD_ANNOTATIONS: usize = 32;
/// An annotation's value (Kubernetes bounds all of a pod's annotations at 256 KiB together).
pub const ANNOTATION_VALUE: usize = 4096;
pub const ENV_VARS: usize = 32;
pub const ENV_VAR_VALUE: usize = 4096;
/// Resource names per `requests` / `limits`.
pub const RESOURCES: usize = 32;
/// A resource name (`nvidia.com/gpu`) and a quantity (`500m`).
pub const RESOURCE_NAME: usize = 317;
pub const QUANTITY: usize = 64;
/// Status conditions (one per type) and their fields, as `metav1.Condition` bounds them.
pub const CONDITIONS: usize = 16;
pub const CONDITION_TYPE: usize = 316;
pub const CONDITION_STATUS: usize = 16;
pub const CONDITION_REASON: usize = 1024;
pub const CONDITION_MESSAGE: usize = 32768;
/// A timestamp (RFC 3339 with nanoseconds is 35).
pub const TIMESTAMP: usize = 64;
/// `status.progress` of a Campaign: `finished/maximum`.
pub const PROGRESS: usize = 64;
/// An experiment's name (agents choose it).
pub const EXPERIMENT_NAME: usize = 253;
/// The operator replica that owns an experiment (a pod name).
pub const REPLICA_NAME: usize = 253;
/// References (crossover parents) of one experiment.
pub const REFERENCES: usize = crate::core::sampling::MAX_REFERENCES;
/// Attempts of one experiment: the first and every revision.
pub const ATTEMPTS: usize = super::manifest::MAX_REVISIONS as usize + 1;
/// A structural hash (hex).
pub const STRUCTURE_HASH: usize = 128;
/// Structural features of one program: each node alone and with its inputs.
pub const STRUCTURE_FEATURES: usize = 2 * archspec::limits::MAX_NODES;
