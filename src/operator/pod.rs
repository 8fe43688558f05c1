//! The trainer pod of one attempt, built from a `Start` command and the Campaign's
//! `spec.trainer`. Pure: the same inputs give the same pod, so applying it twice is a no-op.

pub use crate::api::names::label_value;
use crate::api::trainer::TrainerSpec;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    LocalObjectReference, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Toleration, Volume, VolumeMount,
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
/// The label that puts a pod in a Kueue LocalQueue.
pub const KUEUE_QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";

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
    // The Campaign's labels first, the operator's own over them: a pod must stay findable by
    // the labels the body selects on.
    let mut labels = trainer.pod_labels.clone();
    if let Some(queue) = &trainer.queue_name {
        labels.insert(KUEUE_QUEUE_LABEL.to_string(), queue.clone());
    }
    labels.extend([
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
    let mut args: Vec<String> = vec![
        "train".into(),
        "--program-env".into(),
        PROGRAM_ENV.into(),
        "--config-env".into(),
        CONFIG_ENV.into(),
        "--device".into(),
        trainer.device.as_str().into(),
        "--termination-message".into(),
        TERMINATION_LOG.into(),
    ];
    if let Some(dir) = trainer.checkpoint_dir(run.campaign, run.experiment_name, run.attempt) {
        args.extend(["--checkpoint-dir".into(), dir]);
    }
    let container = Container {
        name: super::outcome::TRAINER_CONTAINER.into(),
        image: Some(trainer.image().to_string()),
        image_pull_policy: trainer.image_pull_policy.map(|p| p.as_str().to_string()),
        command: Some(vec!["archlab".into()]),
        args: Some(args),
        env: Some(
            trainer
                .env
                .iter()
                .filter(|e| e.name != PROGRAM_ENV && e.name != CONFIG_ENV)
                .map(|e| EnvVar {
                    name: e.name.clone(),
                    value: Some(e.value.clone()),
                    ..EnvVar::default()
                })
                .chain([
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
                ])
                .collect(),
        ),
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
        volume_mounts: Some(
            std::iter::once(VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            })
            .chain(trainer.volumes.iter().map(|v| VolumeMount {
                name: v.name.clone(),
                mount_path: v.mount_path.clone(),
                read_only: Some(v.read_only),
                ..VolumeMount::default()
            }))
            .collect(),
        ),
        ..Container::default()
    };
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(run.experiment_name, run.attempt, run.retry)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: (!trainer.pod_annotations.is_empty())
                .then(|| trainer.pod_annotations.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: i64::try_from(max_attempt_seconds).ok(),
            automount_service_account_token: Some(trainer.mount_service_account_token),
            service_account_name: trainer.service_account_name.clone(),
            priority_class_name: trainer.priority_class_name.clone(),
            runtime_class_name: trainer.runtime_class_name.clone(),
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
                // Volumes (a checkpoint claim) writable by the non-root trainer.
                fs_group: (!trainer.volumes.is_empty()).then_some(NON_ROOT_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            volumes: Some(
                std::iter::once(Volume {
                    name: "tmp".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                })
                .chain(trainer.volumes.iter().map(volume))
                .collect(),
            ),
            containers: vec![container],
            ..PodSpec::default()
        }),
        status: None,
    })
}

/// A label value (≤ 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends).
/// A volume of `spec.trainer.volumes` as the pod has it (only the sources the manifest
/// check allows exist in the type).
fn volume(volume: &crate::api::trainer::TrainerVolume) -> Volume {
    Volume {
        name: volume.name.clone(),
        persistent_volume_claim: volume.persistent_volume_claim.as_ref().map(|claim| {
            PersistentVolumeClaimVolumeSource {
                claim_name: claim.claim_name.clone(),
                read_only: Some(volume.read_only),
            }
        }),
        config_map: volume.config_map.as_ref().map(|map| ConfigMapVolumeSource {
            name: map.name.clone(),
            ..ConfigMapVolumeSource::default()
        }),
        empty_dir: volume.empty_dir.as_ref().map(|dir| EmptyDirVolumeSource {
            size_limit: dir.size_limit.clone().map(Quantity),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::trainer::{ClaimSource, EmptyDirSource, TrainerVolume};

    fn config() -> TrainConfig {
        TrainConfig::from_yaml(
            "model: {d_model: 16, n_layers: 1}\ndata: {vocab_size: 16, seq_len: 16, tasks: [{kind: mqar, num_kv_pairs: 2}]}\nsteps: 1\nbatch_size: 1\n",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The first run of experiment 1 of campaign `c`.
    fn first_run(config: &TrainConfig) -> TrainerRun<'_> {
        TrainerRun {
            campaign: "c",
            experiment_name: "c-e00001",
            experiment_id: 1,
            attempt: 1,
            retry: 0,
            program: "mixer m(d_model) { return x }",
            config,
        }
    }

    #[test]
    fn named_volumes_are_mounted_read_only_unless_writable_and_the_group_can_write() {
        let config = config();
        let run = first_run(&config);
        let trainer = TrainerSpec {
            volumes: vec![
                TrainerVolume {
                    name: "data".into(),
                    mount_path: "/data".into(),
                    read_only: true,
                    persistent_volume_claim: Some(ClaimSource {
                        claim_name: "corpus".into(),
                    }),
                    config_map: None,
                    empty_dir: None,
                },
                TrainerVolume {
                    name: "scratch".into(),
                    mount_path: "/scratch".into(),
                    read_only: false,
                    persistent_volume_claim: None,
                    config_map: None,
                    empty_dir: Some(EmptyDirSource {
                        size_limit: Some("1Gi".into()),
                    }),
                },
            ],
            checkpoints: Some("scratch".into()),
            ..TrainerSpec::default()
        };
        let pod = trainer_pod(&run, &trainer, 60, "ns", OwnerReference::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let retried = trainer_pod(
            &TrainerRun {
                retry: 1,
                ..run.clone()
            },
            &trainer,
            60,
            "ns",
            OwnerReference::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for pod in [&pod, &retried] {
            let args = pod.spec.as_ref().map(|s| s.containers[0].args.clone());
            let args = args.flatten().unwrap_or_default();
            let at = args.iter().position(|a| a == "--checkpoint-dir");
            assert_eq!(
                at.and_then(|i| args.get(i + 1)).map(String::as_str),
                Some("/scratch/c/c-e00001/a1"),
                "a retry of the attempt resumes from the same directory"
            );
        }
        let spec = pod.spec.unwrap_or_default();
        let volumes = spec.volumes.unwrap_or_default();
        let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["tmp", "data", "scratch"]);
        let claim = volumes[1]
            .persistent_volume_claim
            .clone()
            .unwrap_or_default();
        assert_eq!(
            (claim.claim_name.as_str(), claim.read_only),
            ("corpus", Some(true))
        );
        assert_eq!(
            volumes[2]
                .empty_dir
                .as_ref()
                .and_then(|d| d.size_limit.clone()),
            Some(Quantity("1Gi".into()))
        );
        let mounts = spec.containers[0].volume_mounts.clone().unwrap_or_default();
        let mounted: Vec<(&str, &str, Option<bool>)> = mounts
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounted,
            [
                ("tmp", "/tmp", None),
                ("data", "/data", Some(true)),
                ("scratch", "/scratch", Some(false))
            ]
        );
        let security = spec.security_context.unwrap_or_default();
        assert_eq!(security.fs_group, Some(NON_ROOT_UID));
        // Without volumes the pod is as before: no fsGroup.
        let plain = trainer_pod(
            &run,
            &TrainerSpec::default(),
            60,
            "ns",
            OwnerReference::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let plain = plain.spec.unwrap_or_default();
        assert_eq!(plain.volumes.map(|v| v.len()), Some(1));
        assert_eq!(plain.security_context.and_then(|s| s.fs_group), None);
    }

    #[test]
    fn cluster_hooks_reach_the_pod_and_never_replace_the_operators_own() {
        let config = config();
        let run = first_run(&config);
        let trainer = TrainerSpec {
            runtime_class_name: Some("nvidia".into()),
            queue_name: Some("team-a".into()),
            pod_labels: BTreeMap::from([
                ("team".into(), "a".into()),
                (LABEL_EXPERIMENT.into(), "999".into()),
            ]),
            pod_annotations: BTreeMap::from([(
                "karpenter.sh/do-not-disrupt".into(),
                "true".into(),
            )]),
            env: vec![
                crate::api::trainer::EnvVar {
                    name: "HF_HOME".into(),
                    value: "/data/hf".into(),
                },
                crate::api::trainer::EnvVar {
                    name: PROGRAM_ENV.into(),
                    value: "mixer evil(d_model) { return x }".into(),
                },
            ],
            ..TrainerSpec::default()
        };
        let pod = trainer_pod(&run, &trainer, 60, "ns", OwnerReference::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["team"], "a");
        assert_eq!(labels[KUEUE_QUEUE_LABEL], "team-a");
        assert_eq!(labels[LABEL_EXPERIMENT], "1", "the operator's label wins");
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations["karpenter.sh/do-not-disrupt"], "true");
        let spec = pod.spec.unwrap_or_default();
        assert_eq!(spec.runtime_class_name.as_deref(), Some("nvidia"));
        let env = spec.containers[0].env.clone().unwrap_or_default();
        let value = |name: &str| {
            env.iter()
                .filter(|e| e.name == name)
                .map(|e| e.value.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(value("HF_HOME"), ["/data/hf"]);
        assert_eq!(
            value(PROGRAM_ENV),
            ["mixer m(d_model) { return x }"],
            "the program comes from the engine only"
        );
    }
}
