//! `spec.trainer` of a Campaign: how the operator runs trainer pods (image, device, resources,
//! placement). `archlab run` ignores it: locally trainers are child processes.

use super::limits;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The image the operator uses when a Campaign names none: the `archlab` binary built with the
/// `tch` feature (its `train` command is the trainer).
pub const DEFAULT_IMAGE: &str = "ghcr.io/archlab/archlab:0.1.0";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainerSpec {
    /// Container image holding the `archlab` binary. Absent: the operator's default (its
    /// `--trainer-defaults`, the Helm chart's `trainer.image`), else the released image.
    #[serde(default)]
    #[schemars(length(max = limits::IMAGE))]
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`; Kubernetes' default when absent.
    #[serde(default)]
    pub image_pull_policy: Option<PullPolicy>,
    /// Where the trainer computes: `cuda` (a GPU node) or `cpu`.
    #[serde(default)]
    pub device: TrainerDevice,
    /// Requests and limits of the trainer container. Absent: the operator's GPUs per trainer
    /// (one `nvidia.com/gpu` unless its `--trainer-defaults` say otherwise) for `cuda`, one
    /// CPU and 2Gi of memory for `cpu`.
    #[serde(default)]
    pub resources: Option<Resources>,
    /// Nodes the pods may run on; empty: the operator's default.
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = limits::NODE_SELECTOR,
        "additionalProperties" = {"type": "string", "maxLength": limits::LABEL_VALUE}
    ))]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate; empty: the operator's default.
    #[serde(default)]
    #[schemars(length(max = limits::TOLERATIONS))]
    pub tolerations: Vec<Toleration>,
    /// Absent: the operator's default.
    #[serde(default)]
    #[schemars(length(max = limits::OBJECT_NAME))]
    pub priority_class_name: Option<String>,
    /// The pods' service account; its token is mounted only with `mountServiceAccountToken`.
    #[serde(default)]
    #[schemars(length(max = limits::OBJECT_NAME))]
    pub service_account_name: Option<String>,
    #[serde(default)]
    pub mount_service_account_token: bool,
    /// Names of Secrets for pulling the image; empty: the operator's default.
    #[serde(default)]
    #[schemars(
        length(max = limits::IMAGE_PULL_SECRETS),
        inner(length(max = limits::OBJECT_NAME))
    )]
    pub image_pull_secrets: Vec<String>,
    /// Volumes mounted into every trainer pod: data (read-only by default) and checkpoints
    /// (`readOnly: false`). Only PersistentVolumeClaims, ConfigMaps and emptyDir: a Campaign
    /// author cannot reach the node's filesystem (`hostPath`) or any other volume source.
    #[serde(default)]
    #[schemars(length(max = limits::VOLUMES))]
    pub volumes: Vec<TrainerVolume>,
    /// The RuntimeClass of the pods (k3s and RKE2 run GPUs under `nvidia`). Absent: the
    /// operator's default.
    #[serde(default)]
    #[schemars(length(max = limits::OBJECT_NAME))]
    pub runtime_class_name: Option<String>,
    /// `Burstable` (the default: CPU and memory requested, so never the first evicted) or
    /// `Guaranteed` (limits equal to the requests).
    #[serde(default)]
    pub qos_class: QosClass,
    /// Extra labels of the pods, beside the operator's own (`archlab.dev/…`), which they
    /// cannot replace.
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = limits::POD_LABELS,
        "additionalProperties" = {"type": "string", "maxLength": limits::LABEL_VALUE}
    ))]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra annotations of the pods (Karpenter's `karpenter.sh/do-not-disrupt`, Istio's
    /// `sidecar.istio.io/inject`, …).
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = limits::POD_ANNOTATIONS,
        "additionalProperties" = {"type": "string", "maxLength": limits::ANNOTATION_VALUE}
    ))]
    pub pod_annotations: BTreeMap<String, String>,
    /// Extra environment variables of the trainer (literal values: no Secret references).
    #[serde(default)]
    #[schemars(length(max = limits::ENV_VARS))]
    pub env: Vec<EnvVar>,
    /// A Kueue LocalQueue in the Campaign's namespace: the pods carry
    /// `kueue.x-k8s.io/queue-name` and wait, gated, for Kueue to admit them (bounded by
    /// `qa.maxQueuedSeconds`, never charged to the program).
    #[serde(default)]
    #[schemars(length(max = limits::LABEL_VALUE))]
    pub queue_name: Option<String>,
    /// The name of a writable volume (`readOnly: false`) of `volumes` for checkpoints: each
    /// attempt saves under `<mountPath>/<campaign>/<experiment>/a<attempt>`, so a pod evicted
    /// and started again (`…-a2-r1`) resumes from its predecessor's last save.
    #[serde(default)]
    #[schemars(length(max = limits::LABEL_VALUE))]
    pub checkpoints: Option<String>,
}

impl TrainerSpec {
    /// Where one attempt's trainer saves checkpoints, when the Campaign names a volume for them.
    pub fn checkpoint_dir(&self, campaign: &str, experiment: &str, attempt: u32) -> Option<String> {
        let name = self.checkpoints.as_ref()?;
        let volume = self.volumes.iter().find(|v| &v.name == name)?;
        Some(format!(
            "{}/{campaign}/{experiment}/a{attempt}",
            volume.mount_path.trim_end_matches('/')
        ))
    }
}

/// An environment variable of the trainer container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    #[schemars(length(max = limits::ENV_VAR_NAME))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = limits::ENV_VAR_VALUE))]
    pub value: String,
}

/// The pods' quality-of-service class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum QosClass {
    #[default]
    Burstable,
    Guaranteed,
}

/// One volume of the trainer pods and where the trainer container mounts it; exactly one of
/// `persistentVolumeClaim`, `configMap` and `emptyDir`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainerVolume {
    /// The volume's name in the pod (a DNS label; `tmp` is the pod's own).
    #[schemars(length(max = limits::LABEL_VALUE))]
    pub name: String,
    /// Where the trainer container sees it (an absolute path).
    #[schemars(length(max = limits::PATH))]
    pub mount_path: String,
    /// Data is mounted read-only unless this is `false` (checkpoints).
    #[serde(default = "read_only")]
    pub read_only: bool,
    #[serde(default)]
    pub persistent_volume_claim: Option<ClaimSource>,
    #[serde(default)]
    pub config_map: Option<ConfigMapSource>,
    #[serde(default)]
    pub empty_dir: Option<EmptyDirSource>,
}

fn read_only() -> bool {
    true
}

/// A PersistentVolumeClaim in the Campaign's namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimSource {
    #[schemars(length(max = limits::OBJECT_NAME))]
    pub claim_name: String,
}

/// A ConfigMap in the Campaign's namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapSource {
    #[schemars(length(max = limits::OBJECT_NAME))]
    pub name: String,
}

/// Scratch space that lives and dies with the pod.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmptyDirSource {
    /// A quantity such as `10Gi`.
    #[serde(default)]
    #[schemars(length(max = limits::QUANTITY))]
    pub size_limit: Option<String>,
}

impl TrainerSpec {
    /// The image the pods run.
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or(DEFAULT_IMAGE)
    }

    /// The resources the trainer container gets: the spec's, or the device's defaults.
    pub fn effective_resources(&self) -> Resources {
        if let Some(resources) = &self.resources {
            return resources.clone();
        }
        match self.device {
            TrainerDevice::Cuda => Resources {
                requests: BTreeMap::new(),
                limits: BTreeMap::from([("nvidia.com/gpu".into(), "1".into())]),
            },
            TrainerDevice::Cpu => Resources {
                requests: BTreeMap::from([
                    ("cpu".into(), "1".into()),
                    ("memory".into(), "2Gi".into()),
                ]),
                limits: BTreeMap::from([("memory".into(), "2Gi".into())]),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TrainerDevice {
    #[default]
    Cuda,
    Cpu,
}

impl TrainerDevice {
    /// The `archlab train --device` value.
    pub fn as_str(self) -> &'static str {
        match self {
            TrainerDevice::Cuda => "cuda",
            TrainerDevice::Cpu => "cpu",
        }
    }
}

/// Quantities as Kubernetes writes them (`"1"`, `"500m"`, `"2Gi"`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = limits::RESOURCES,
        "additionalProperties" = {"type": "string", "maxLength": limits::QUANTITY}
    ))]
    pub requests: BTreeMap<String, String>,
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = limits::RESOURCES,
        "additionalProperties" = {"type": "string", "maxLength": limits::QUANTITY}
    ))]
    pub limits: BTreeMap<String, String>,
}

/// A pod toleration, as in a Pod spec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    #[serde(default)]
    #[schemars(length(max = limits::LABEL_KEY))]
    pub key: Option<String>,
    /// `Exists` or `Equal` (the default).
    #[serde(default)]
    #[schemars(length(max = limits::TOLERATION_WORD))]
    pub operator: Option<String>,
    #[serde(default)]
    #[schemars(length(max = limits::LABEL_VALUE))]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; all effects when absent.
    #[serde(default)]
    #[schemars(length(max = limits::TOLERATION_WORD))]
    pub effect: Option<String>,
    #[serde(default)]
    pub toleration_seconds: Option<i64>,
}

/// What the operator gives trainer pods of Campaigns that leave it out (`archlab operator
/// --trainer-defaults FILE`; the Helm chart writes the file from its `trainer` values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainerDefaults {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub image_pull_policy: Option<PullPolicy>,
    /// The extended resource a GPU is scheduled as.
    #[serde(default = "gpu_resource")]
    pub gpu_resource: String,
    /// GPUs per `cuda` trainer pod.
    #[serde(default = "gpus_per_trainer")]
    pub gpus_per_trainer: u32,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    #[serde(default)]
    pub priority_class_name: Option<String>,
    #[serde(default)]
    pub image_pull_secrets: Vec<String>,
    /// The account trainer pods run under when a Campaign names none (the Helm chart's trainer
    /// account: no permissions, its token never mounted). Absent: the namespace's `default`.
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// CPU and memory every trainer requests unless its Campaign's `resources` say: a pod
    /// without them is BestEffort, the first the kubelet evicts.
    #[serde(default = "cpu_request")]
    pub cpu_request: String,
    #[serde(default = "memory_request")]
    pub memory_request: String,
    #[serde(default)]
    pub runtime_class_name: Option<String>,
    /// Labels and annotations every trainer pod carries (a Campaign's own add to them).
    #[serde(default)]
    pub pod_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub pod_annotations: BTreeMap<String, String>,
}

fn cpu_request() -> String {
    "1".into()
}

fn memory_request() -> String {
    "4Gi".into()
}

fn gpu_resource() -> String {
    "nvidia.com/gpu".into()
}

fn gpus_per_trainer() -> u32 {
    1
}

impl Default for TrainerDefaults {
    fn default() -> Self {
        TrainerDefaults {
            image: None,
            image_pull_policy: None,
            gpu_resource: gpu_resource(),
            gpus_per_trainer: gpus_per_trainer(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            priority_class_name: None,
            image_pull_secrets: Vec::new(),
            service_account_name: None,
            cpu_request: cpu_request(),
            memory_request: memory_request(),
            runtime_class_name: None,
            pod_labels: BTreeMap::new(),
            pod_annotations: BTreeMap::new(),
        }
    }
}

impl TrainerDefaults {
    /// The Campaign's trainer spec with what it leaves out taken from these defaults.
    pub fn apply(&self, spec: &TrainerSpec) -> TrainerSpec {
        let mut spec = spec.clone();
        if spec.image.is_none() {
            spec.image = self.image.clone();
        }
        if spec.image_pull_policy.is_none() {
            spec.image_pull_policy = self.image_pull_policy;
        }
        if spec.resources.is_none() && spec.device == TrainerDevice::Cuda {
            spec.resources = Some(Resources {
                requests: BTreeMap::new(),
                limits: BTreeMap::from([(
                    self.gpu_resource.clone(),
                    self.gpus_per_trainer.to_string(),
                )]),
            });
        }
        if spec.node_selector.is_empty() {
            spec.node_selector = self.node_selector.clone();
        }
        if spec.tolerations.is_empty() {
            spec.tolerations = self.tolerations.clone();
        }
        if spec.priority_class_name.is_none() {
            spec.priority_class_name = self.priority_class_name.clone();
        }
        if spec.image_pull_secrets.is_empty() {
            spec.image_pull_secrets = self.image_pull_secrets.clone();
        }
        if spec.service_account_name.is_none() {
            spec.service_account_name = self.service_account_name.clone();
        }
        if spec.runtime_class_name.is_none() {
            spec.runtime_class_name = self.runtime_class_name.clone();
        }
        for (key, value) in &self.pod_labels {
            spec.pod_labels
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        for (key, value) in &self.pod_annotations {
            spec.pod_annotations
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        // Never BestEffort: CPU and memory requested whatever else the Campaign asks for.
        let mut resources = spec.effective_resources();
        resources
            .requests
            .entry("cpu".into())
            .or_insert_with(|| self.cpu_request.clone());
        resources
            .requests
            .entry("memory".into())
            .or_insert_with(|| self.memory_request.clone());
        if spec.qos_class == QosClass::Guaranteed {
            for name in ["cpu", "memory"] {
                if let Some(request) = resources.requests.get(name).cloned() {
                    resources.limits.insert(name.into(), request);
                }
            }
        }
        spec.resources = Some(resources);
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_only_what_the_campaign_leaves_out() {
        let defaults = TrainerDefaults {
            image: Some("registry.local/archlab:gpu".into()),
            gpu_resource: "amd.com/gpu".into(),
            gpus_per_trainer: 2,
            node_selector: BTreeMap::from([("pool".into(), "gpu".into())]),
            priority_class_name: Some("batch".into()),
            service_account_name: Some("archlab-trainer".into()),
            ..TrainerDefaults::default()
        };
        let filled = defaults.apply(&TrainerSpec::default());
        assert_eq!(
            filled.service_account_name.as_deref(),
            Some("archlab-trainer")
        );
        assert!(!filled.mount_service_account_token);
        assert_eq!(filled.image(), "registry.local/archlab:gpu");
        assert_eq!(
            filled.effective_resources().limits,
            BTreeMap::from([("amd.com/gpu".into(), "2".into())])
        );
        assert_eq!(filled.node_selector["pool"], "gpu");
        assert_eq!(filled.priority_class_name.as_deref(), Some("batch"));

        let own = TrainerSpec {
            image: Some("mine:1".into()),
            device: TrainerDevice::Cpu,
            node_selector: BTreeMap::from([("pool".into(), "cpu".into())]),
            ..TrainerSpec::default()
        };
        let kept = defaults.apply(&own);
        assert_eq!(kept.image(), "mine:1");
        assert_eq!(kept.node_selector["pool"], "cpu");
        assert_eq!(
            kept.effective_resources().requests["cpu"],
            "1",
            "CPU trainers get no GPU"
        );
        assert_eq!(TrainerSpec::default().image(), DEFAULT_IMAGE);
    }

    #[test]
    fn every_trainer_requests_cpu_and_memory_and_guaranteed_sets_limits_to_them() {
        let defaults = TrainerDefaults::default();
        let gpu = defaults
            .apply(&TrainerSpec::default())
            .effective_resources();
        assert_eq!(gpu.requests["cpu"], "1");
        assert_eq!(gpu.requests["memory"], "4Gi");
        assert_eq!(gpu.limits["nvidia.com/gpu"], "1");
        assert!(!gpu.limits.contains_key("cpu"), "Burstable by default");
        // The Campaign's own requests stay; what it leaves out is filled.
        let own = TrainerSpec {
            resources: Some(Resources {
                requests: BTreeMap::from([("memory".into(), "64Gi".into())]),
                limits: BTreeMap::from([("nvidia.com/gpu".into(), "8".into())]),
            }),
            qos_class: QosClass::Guaranteed,
            ..TrainerSpec::default()
        };
        let filled = defaults.apply(&own).effective_resources();
        assert_eq!(filled.requests["memory"], "64Gi");
        assert_eq!(filled.requests["cpu"], "1");
        assert_eq!(filled.limits["memory"], "64Gi");
        assert_eq!(filled.limits["cpu"], "1");
        assert_eq!(filled.limits["nvidia.com/gpu"], "8");
    }
}
