//! The trainer pod of one attempt, built from a `Start` command and the Campaign's
//! `spec.trainer`. Pure: the same inputs give the same pod, so applying it twice is a no-op.

use crate::api::trainer::TrainerSpec;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, LocalObjectReference, Pod,
    PodSecurityContext, PodSpec, ResourceRequirements, SeccompProfile, SecurityContext, Toleration,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;
use trainer::TrainConfig;

pub const LABEL_CAMPAIGN: &str = "archlab.dev/campaign";
pub const LABEL_EXPERIMENT: &str = "archlab.dev/experiment";
pub const LABEL_ATTEMPT: &str = "archlab.dev/attempt";
pub const LABEL_RETRY: &str = "archlab.dev/retry";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "archlab";

/// The environment variables that carry the program and the config into the pod: they live
/// and die with it (no ConfigMap to clean up).
pub const PROGRAM_ENV: &str = "ARCHLAB_PROGRAM";
pub const CONFIG_ENV: &str = "ARCHLAB_CONFIG";
const TERMINATION_LOG: &str = "/dev/termination-log";
/// The distroless `nonroot` user.
const NON_ROOT_UID: i64 = 65_532;

/// One run of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerRun<'a> {
    pub campaign: &'a str,
    /// The Experiment resource's name (`<campaign>-e00012`).
    pub experiment_name: &'a str,
    pub experiment_id: u64,
    pub attempt: u32,
    pub retry: u32,
    pub program: &'a str,
    pub config: &'a TrainConfig,
}

/// `<campaign>-e00012-a2`, and `…-a2-r1` for the first rerun after an infrastructure failure.
pub fn pod_name(experiment_name: &str, attempt: u32, retry: u32) -> String {
    if retry == 0 {
        format!("{experiment_name}-a{attempt}")
    } else {
        format!("{experiment_name}-a{attempt}-r{retry}")
    }
}

/// The pod for `run`, owned by its Experiment (`owner`), so deleting the Experiment deletes it.
pub fn trainer_pod(
    run: &TrainerRun<'_>,
    trainer: &TrainerSpec,
    max_attempt_seconds: u64,
    namespace: &str,
    owner: OwnerReference,
) -> Result<Pod, serde_json::Error> {
    let config = serde_json::to_string(run.config)?;
    let labels = BTreeMap::from([
        (LABEL_CAMPAIGN.to_string(), label_value(run.campaign)),
        (LABEL_EXPERIMENT.to_string(), run.experiment_id.to_string()),
        (LABEL_ATTEMPT.to_string(), run.attempt.to_string()),
        (LABEL_RETRY.to_string(), run.retry.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
    ]);
    let resources = trainer.effective_resources();
    let quantities = |map: &BTreeMap<String, String>| {
        (!map.is_empty()).then(|| {
            map.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect::<BTreeMap<_, _>>()
        })
    };
    let container = Container {
        name: "trainer".into(),
        image: Some(trainer.image().to_string()),
        image_pull_policy: trainer.image_pull_policy.map(|p| p.as_str().to_string()),
        command: Some(vec!["archlab".into()]),
        args: Some(vec![
            "train".into(),
            "--program-env".into(),
            PROGRAM_ENV.into(),
            "--config-env".into(),
            CONFIG_ENV.into(),
            "--device".into(),
            trainer.device.as_str().into(),
            "--termination-message".into(),
            TERMINATION_LOG.into(),
        ]),
        env: Some(vec![
            EnvVar {
                name: PROGRAM_ENV.into(),
                value: Some(run.program.to_string()),
                ..EnvVar::default()
            },
            EnvVar {
                name: CONFIG_ENV.into(),
                value: Some(config),
                ..EnvVar::default()
            },
        ]),
        resources: Some(ResourceRequirements {
            requests: quantities(&resources.requests),
            limits: quantities(&resources.limits),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        termination_message_path: Some(TERMINATION_LOG.into()),
        // The result line when the trainer wrote one; the log's tail when it crashed first.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(run.experiment_name, run.attempt, run.retry)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: i64::try_from(max_attempt_seconds).ok(),
            automount_service_account_token: Some(trainer.mount_service_account_token),
            service_account_name: trainer.service_account_name.clone(),
            priority_class_name: trainer.priority_class_name.clone(),
            node_selector: (!trainer.node_selector.is_empty())
                .then(|| trainer.node_selector.clone()),
            tolerations: (!trainer.tolerations.is_empty()).then(|| {
                trainer
                    .tolerations
                    .iter()
                    .map(|t| Toleration {
                        key: t.key.clone(),
                        operator: t.operator.clone(),
                        value: t.value.clone(),
                        effect: t.effect.clone(),
                        toleration_seconds: t.toleration_seconds,
                    })
                    .collect()
            }),
            image_pull_secrets: (!trainer.image_pull_secrets.is_empty()).then(|| {
                trainer
                    .image_pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(NON_ROOT_UID),
                run_as_group: Some(NON_ROOT_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            volumes: Some(vec![Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            }]),
            containers: vec![container],
            ..PodSpec::default()
        }),
        status: None,
    })
}

/// A label value (≤ 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends).
pub fn label_value(text: &str) -> String {
    let mut value: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    while value.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        value.pop();
    }
    value
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}
