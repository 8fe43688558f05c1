//! `spec.trainer` of a Campaign: how the operator runs trainer pods (image, device, resources,
//! placement). `archlab run` ignores it: locally trainers are child processes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The image the operator uses when a Campaign names none: the `archlab` binary built with the
/// `tch` feature (its `train` command is the trainer).
pub const DEFAULT_IMAGE: &str = "ghcr.io/archlab/archlab:0.1.0";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainerSpec {
    /// Container image holding the `archlab` binary.
    #[serde(default = "default_image")]
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`; Kubernetes' default when absent.
    #[serde(default)]
    pub image_pull_policy: Option<PullPolicy>,
    /// Where the trainer computes: `cuda` (a GPU node) or `cpu`.
    #[serde(default)]
    pub device: TrainerDevice,
    /// Requests and limits of the trainer container. Absent: one `nvidia.com/gpu` for `cuda`,
    /// one CPU and 2Gi of memory for `cpu`.
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    #[serde(default)]
    pub priority_class_name: Option<String>,
    /// The pods' service account; its token is mounted only with `mountServiceAccountToken`.
    #[serde(default)]
    pub service_account_name: Option<String>,
    #[serde(default)]
    pub mount_service_account_token: bool,
    /// Names of Secrets for pulling the image.
    #[serde(default)]
    pub image_pull_secrets: Vec<String>,
}

fn default_image() -> String {
    DEFAULT_IMAGE.to_string()
}

impl Default for TrainerSpec {
    fn default() -> Self {
        TrainerSpec {
            image: default_image(),
            image_pull_policy: None,
            device: TrainerDevice::default(),
            resources: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            priority_class_name: None,
            service_account_name: None,
            mount_service_account_token: false,
            image_pull_secrets: Vec::new(),
        }
    }
}

impl TrainerSpec {
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
    pub requests: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

/// A pod toleration, as in a Pod spec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    #[serde(default)]
    pub key: Option<String>,
    /// `Exists` or `Equal` (the default).
    #[serde(default)]
    pub operator: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; all effects when absent.
    #[serde(default)]
    pub effect: Option<String>,
    #[serde(default)]
    pub toleration_seconds: Option<i64>,
}
