//! What a Campaign may ask of the cluster, as the cluster administrator allows it: images,
//! service accounts, priority and runtime classes, tolerations, volume sources, the service-account token,
//! LLM endpoints and GPUs in total. One source feeds both enforcers: the Helm chart writes the
//! policy as a ConfigMap whose keys are comma-separated lists; the chart's
//! `ValidatingAdmissionPolicy` reads that ConfigMap as its parameter (so `kubectl apply`
//! refuses), and the operator reads the same keys from the ConfigMap mounted as a directory
//! (`archlab operator --policy-dir`), so a Campaign created before the policy, or where
//! admission policies do not run, is refused too. The rules here and the CEL expressions in
//! `charts/archlab/templates/admissionpolicy.yaml` say the same thing; the e2e tests hold both
//! to it.
//!
//! Nothing here can loosen the pod itself: its security context, the volume kinds the API
//! allows (claims, ConfigMaps, emptyDir; never `hostPath`) and the absence of host namespaces
//! are fixed in `operator/pod.rs`.

use super::campaign::CampaignSpec;
use super::trainer::TrainerDevice;
use std::path::{Path, PathBuf};

/// The ConfigMap keys, each a file of the mounted ConfigMap.
pub const KEYS: [&str; 13] = [
    "images",
    "trainerServiceAccount",
    "operatorServiceAccount",
    "serviceAccounts",
    "priorityClasses",
    "runtimeClasses",
    "tolerationKeys",
    "volumeSources",
    "allowServiceAccountToken",
    "llmEndpoints",
    "gpuResource",
    "gpusPerTrainer",
    "maxGpusPerCampaign",
];

/// The largest policy file read (a list of a few hundred entries).
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// Image repositories (any tag or digest: `ghcr.io/lab/archlab`) or prefixes ending in `/`
    /// (`registry.lab/`) that `spec.trainer.image` may name.
    pub images: Vec<String>,
    /// The account trainer pods run under when a Campaign names none: no permissions, token
    /// never mounted. A Campaign may also name it.
    pub trainer_service_account: String,
    /// The operator's own account: never a trainer's, whatever the lists say.
    pub operator_service_account: String,
    /// Other accounts a Campaign may name.
    pub service_accounts: Vec<String>,
    pub priority_classes: Vec<String>,
    /// RuntimeClasses a Campaign may name (`nvidia` on k3s and RKE2).
    pub runtime_classes: Vec<String>,
    /// Taint keys a Campaign may tolerate; a toleration without a key (all taints) never.
    pub toleration_keys: Vec<String>,
    /// `persistentVolumeClaim`, `configMap`, `emptyDir`.
    pub volume_sources: Vec<String>,
    pub allow_service_account_token: bool,
    /// Base URLs the agents may call (the shared key goes only there): a Campaign's `baseUrl`
    /// is one of them or below one (`http://llm.lab:8000/v1` allows `…/v1` and `…/v1/x`).
    pub llm_endpoints: Vec<String>,
    /// The extended resource a GPU is, and what a `cuda` trainer gets when it names none.
    pub gpu_resource: String,
    pub gpus_per_trainer: u64,
    /// Most GPUs one Campaign may hold at once (per trainer × `spec.parallelism`).
    pub max_gpus_per_campaign: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Policy {
    /// Reads the policy from a mounted ConfigMap: one file per key of [`KEYS`], every one
    /// required (the admission policy reads the same keys and refuses when one is missing).
    pub fn from_dir(dir: &Path) -> Result<Policy, PolicyError> {
        let read = |key: &str| -> Result<String, PolicyError> {
            let path = dir.join(key);
            let size = std::fs::metadata(&path)
                .map_err(|source| PolicyError::Read {
                    path: path.clone(),
                    source,
                })?
                .len();
            if size > MAX_FILE_BYTES {
                return Err(PolicyError::TooLarge { path });
            }
            std::fs::read_to_string(&path)
                .map(|text| text.trim().to_string())
                .map_err(|source| PolicyError::Read { path, source })
        };
        let list = |key: &str| -> Result<Vec<String>, PolicyError> { Ok(split(&read(key)?)) };
        let invalid = |key: &str, message: String| PolicyError::Invalid {
            path: dir.join(key),
            message,
        };
        let number = |key: &str, text: &str| -> Result<u64, PolicyError> {
            text.parse()
                .map_err(|_| invalid(key, format!("expected a whole number, found {text:?}")))
        };
        let allow_token = match read("allowServiceAccountToken")?.as_str() {
            "true" => true,
            "false" | "" => false,
            other => {
                return Err(invalid(
                    "allowServiceAccountToken",
                    format!("expected true or false, found {other:?}"),
                ));
            }
        };
        let volume_sources = list("volumeSources")?;
        if let Some(unknown) = volume_sources
            .iter()
            .find(|s| !["persistentVolumeClaim", "configMap", "emptyDir"].contains(&s.as_str()))
        {
            return Err(invalid(
                "volumeSources",
                format!(
                    "{unknown:?} is not a volume source a Campaign can use (persistentVolumeClaim, configMap, emptyDir)"
                ),
            ));
        }
        let max_gpus = read("maxGpusPerCampaign")?;
        Ok(Policy {
            images: list("images")?,
            trainer_service_account: read("trainerServiceAccount")?,
            operator_service_account: read("operatorServiceAccount")?,
            service_accounts: list("serviceAccounts")?,
            priority_classes: list("priorityClasses")?,
            runtime_classes: list("runtimeClasses")?,
            toleration_keys: list("tolerationKeys")?,
            volume_sources,
            allow_service_account_token: allow_token,
            llm_endpoints: list("llmEndpoints")?,
            gpu_resource: read("gpuResource")?,
            gpus_per_trainer: number("gpusPerTrainer", &read("gpusPerTrainer")?)?,
            max_gpus_per_campaign: if max_gpus.is_empty() {
                None
            } else {
                Some(number("maxGpusPerCampaign", &max_gpus)?)
            },
        })
    }

    /// Every way `spec` breaks the policy, each naming the field, what it asks and what is
    /// allowed. What `spec.trainer` leaves out is the operator's default, which the
    /// administrator chose, so only what the Campaign itself names is judged, as the
    /// admission policy judges it.
    pub fn violations(&self, spec: &CampaignSpec) -> Vec<String> {
        let trainer = &spec.trainer;
        let mut found = Vec::new();
        if let Some(image) = &trainer.image
            && !self
                .images
                .iter()
                .any(|allowed| image_allowed(image, allowed))
        {
            found.push(format!(
                "spec.trainer.image: {image} is not allowed by the archlab policy (allowed: {})",
                listed(&self.images)
            ));
        }
        if let Some(account) = &trainer.service_account_name {
            let allowed = *account != self.operator_service_account
                && (*account == self.trainer_service_account
                    || self.service_accounts.contains(account));
            if !allowed {
                found.push(format!(
                    "spec.trainer.serviceAccountName: {account} is not allowed by the archlab policy (allowed: {})",
                    listed(
                        &std::iter::once(self.trainer_service_account.clone())
                            .chain(self.service_accounts.iter().cloned())
                            .filter(|a| *a != self.operator_service_account)
                            .collect::<Vec<_>>()
                    )
                ));
            }
        }
        if trainer.mount_service_account_token && !self.allow_service_account_token {
            found.push(
                "spec.trainer.mountServiceAccountToken: the archlab policy does not allow trainer pods a service-account token".into(),
            );
        }
        if let Some(class) = &trainer.priority_class_name
            && !self.priority_classes.contains(class)
        {
            found.push(format!(
                "spec.trainer.priorityClassName: {class} is not allowed by the archlab policy (allowed: {})",
                listed(&self.priority_classes)
            ));
        }
        if let Some(class) = &trainer.runtime_class_name
            && !self.runtime_classes.contains(class)
        {
            found.push(format!(
                "spec.trainer.runtimeClassName: {class} is not allowed by the archlab policy (allowed: {})",
                listed(&self.runtime_classes)
            ));
        }
        for (index, toleration) in trainer.tolerations.iter().enumerate() {
            let allowed = toleration
                .key
                .as_ref()
                .is_some_and(|key| self.toleration_keys.contains(key));
            if !allowed {
                found.push(format!(
                    "spec.trainer.tolerations[{index}]: tolerating {} is not allowed by the archlab policy (allowed keys: {})",
                    toleration
                        .key
                        .as_deref()
                        .map_or("every taint".to_string(), |k| format!("the taint {k}")),
                    listed(&self.toleration_keys)
                ));
            }
        }
        for (index, volume) in trainer.volumes.iter().enumerate() {
            let source = if volume.persistent_volume_claim.is_some() {
                "persistentVolumeClaim"
            } else if volume.config_map.is_some() {
                "configMap"
            } else {
                "emptyDir"
            };
            if !self.volume_sources.iter().any(|s| s == source) {
                found.push(format!(
                    "spec.trainer.volumes[{index}]: {source} volumes are not allowed by the archlab policy (allowed: {})",
                    listed(&self.volume_sources)
                ));
            }
        }
        if let Some(llm) = &spec.agents.llm
            && !self
                .llm_endpoints
                .iter()
                .any(|allowed| endpoint_allowed(&llm.base_url, allowed))
        {
            found.push(format!(
                "spec.agents.llm.baseUrl: {} is not allowed by the archlab policy (allowed: {})",
                llm.base_url,
                listed(&self.llm_endpoints)
            ));
        }
        if let Some(cap) = self.max_gpus_per_campaign {
            let per_trainer = self.gpus_per_trainer_of(spec);
            let total = per_trainer.saturating_mul(u64::from(spec.parallelism));
            if total > cap {
                found.push(format!(
                    "spec.parallelism: {} trainers of {per_trainer} GPU(s) each hold {total} GPUs at once; the archlab policy allows {cap} per Campaign",
                    spec.parallelism
                ));
            }
        }
        found
    }

    /// GPUs one trainer of `spec` holds: its own `resources.limits`, else the default.
    fn gpus_per_trainer_of(&self, spec: &CampaignSpec) -> u64 {
        match &spec.trainer.resources {
            Some(resources) => resources
                .limits
                .get(&self.gpu_resource)
                .and_then(|q| q.parse().ok())
                .unwrap_or(0),
            None if spec.trainer.device == TrainerDevice::Cpu => 0,
            None => self.gpus_per_trainer,
        }
    }
}

/// An image matches a repository with any tag or digest, or a prefix ending in `/`.
fn image_allowed(image: &str, allowed: &str) -> bool {
    if allowed.ends_with('/') {
        return image.starts_with(allowed);
    }
    image == allowed
        || image
            .strip_prefix(allowed)
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('@'))
}

/// A base URL is an allowed endpoint or a path below one (never a longer host name).
fn endpoint_allowed(base_url: &str, allowed: &str) -> bool {
    let allowed = allowed.trim_end_matches('/');
    let base_url = base_url.trim_end_matches('/');
    base_url == allowed
        || base_url
            .strip_prefix(allowed)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A ConfigMap value as a list: comma-separated, blanks dropped.
fn split(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            images: vec!["ghcr.io/archlab/archlab".into(), "registry.lab/".into()],
            trainer_service_account: "archlab-trainer".into(),
            operator_service_account: "archlab".into(),
            service_accounts: vec!["data-reader".into(), "archlab".into()],
            priority_classes: vec!["batch".into()],
            runtime_classes: vec!["nvidia".into()],
            toleration_keys: vec!["nvidia.com/gpu".into()],
            volume_sources: vec!["persistentVolumeClaim".into(), "emptyDir".into()],
            allow_service_account_token: false,
            llm_endpoints: vec!["http://llm.lab:8000/v1".into()],
            gpu_resource: "nvidia.com/gpu".into(),
            gpus_per_trainer: 1,
            max_gpus_per_campaign: Some(4),
        }
    }

    fn spec(trainer: &str, extra: &str) -> CampaignSpec {
        let text = include_str!("../../tests/fixtures/tiny_campaign.yaml").replace(
            "  seed: 3",
            &format!("  seed: 3\n  trainer: {trainer}\n{extra}"),
        );
        super::super::parse_campaign(&text)
            .unwrap_or_else(|e| panic!("{e}"))
            .spec
    }

    fn violations(trainer: &str, extra: &str) -> Vec<String> {
        policy().violations(&spec(trainer, extra))
    }

    #[test]
    fn a_campaign_within_the_policy_passes() {
        assert_eq!(violations("{}", ""), Vec::<String>::new());
        let within = "{image: 'ghcr.io/archlab/archlab:0.2.0', serviceAccountName: data-reader, priorityClassName: batch, runtimeClassName: nvidia, tolerations: [{key: nvidia.com/gpu, operator: Exists}], volumes: [{name: d, mountPath: /d, persistentVolumeClaim: {claimName: data}}]}";
        assert_eq!(violations(within, ""), Vec::<String>::new());
        assert_eq!(
            violations("{image: 'registry.lab/team/archlab@sha256:abc'}", ""),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_operators_account_is_refused_even_when_listed() {
        let found = violations("{serviceAccountName: archlab}", "");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.trainer.serviceAccountName: archlab is not allowed"),
            "{found:?}"
        );
        assert!(
            found[0].ends_with("(allowed: archlab-trainer, data-reader)"),
            "{found:?}"
        );
        let token = violations("{mountServiceAccountToken: true}", "");
        assert!(token[0].contains("service-account token"), "{token:?}");
    }

    #[test]
    fn images_match_a_repository_or_a_registry_prefix_never_a_longer_name() {
        for image in [
            "ghcr.io/archlab/archlab-miner:1",
            "ghcr.io/archlab/archlabx",
            "registry.lab.evil/x:1",
            "docker.io/library/python:3",
        ] {
            let found = violations(&format!("{{image: '{image}'}}"), "");
            assert_eq!(found.len(), 1, "{image}: {found:?}");
            assert!(found[0].starts_with("spec.trainer.image: "), "{found:?}");
        }
    }

    #[test]
    fn llm_endpoints_match_a_base_url_or_a_path_below_never_another_host() {
        let llm = |url: &str| {
            format!("  agents:\n    backend: llm\n    llm: {{baseUrl: '{url}', model: m}}\n")
        };
        assert_eq!(
            violations("{}", &llm("http://llm.lab:8000/v1/")),
            Vec::<String>::new()
        );
        for url in [
            "http://llm.lab:8000.evil.com/v1",
            "http://llm.lab:8000/v10",
            "https://api.example.com/v1",
        ] {
            let found = violations("{}", &llm(url));
            assert_eq!(found.len(), 1, "{url}: {found:?}");
            assert!(
                found[0].starts_with(&format!("spec.agents.llm.baseUrl: {url} is not allowed")),
                "{found:?}"
            );
        }
    }

    #[test]
    fn gpus_in_total_are_capped_per_campaign() {
        let at = |trainer: &str, parallelism: u32| {
            let mut spec = spec(trainer, "");
            spec.parallelism = parallelism;
            policy().violations(&spec)
        };
        assert_eq!(at("{}", 4).len(), 0);
        assert_eq!(
            at("{}", 5),
            [
                "spec.parallelism: 5 trainers of 1 GPU(s) each hold 5 GPUs at once; the archlab policy allows 4 per Campaign"
            ]
        );
        let two_each = at("{resources: {limits: {nvidia.com/gpu: '2'}}}", 3);
        assert_eq!(two_each.len(), 1, "{two_each:?}");
        assert_eq!(at("{device: cpu}", 50).len(), 0);
    }

    #[test]
    fn priority_classes_tolerations_and_volume_sources_are_allow_lists() {
        let found = violations(
            "{priorityClassName: system-cluster-critical, runtimeClassName: kata, tolerations: [{operator: Exists}], volumes: [{name: c, mountPath: /c, configMap: {name: c}}]}",
            "",
        );
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].starts_with("spec.trainer.priorityClassName: system-cluster-critical"));
        assert!(
            found[1].starts_with("spec.trainer.runtimeClassName: kata is not allowed"),
            "{found:?}"
        );
        assert!(
            found[2].contains("tolerations[0]: tolerating every taint"),
            "{found:?}"
        );
        assert!(
            found[3].starts_with("spec.trainer.volumes[0]: configMap volumes"),
            "{found:?}"
        );
    }

    #[test]
    fn the_policy_reads_from_a_mounted_configmap_and_names_a_bad_key() {
        let dir = std::env::temp_dir().join(format!("archlab-policy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let write = |key: &str, value: &str| {
            std::fs::write(dir.join(key), value).unwrap_or_else(|e| panic!("{e}"))
        };
        for (key, value) in [
            ("images", "ghcr.io/archlab/archlab, registry.lab/"),
            ("trainerServiceAccount", "archlab-trainer"),
            ("operatorServiceAccount", "archlab"),
            ("serviceAccounts", "data-reader,archlab"),
            ("priorityClasses", "batch"),
            ("runtimeClasses", "nvidia"),
            ("tolerationKeys", "nvidia.com/gpu"),
            ("volumeSources", "persistentVolumeClaim,emptyDir"),
            ("allowServiceAccountToken", "false"),
            ("llmEndpoints", "http://llm.lab:8000/v1"),
            ("gpuResource", "nvidia.com/gpu"),
            ("gpusPerTrainer", "1"),
            ("maxGpusPerCampaign", "4\n"),
        ] {
            write(key, value);
        }
        let read = Policy::from_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, policy());
        write("maxGpusPerCampaign", "");
        assert_eq!(
            Policy::from_dir(&dir).map(|p| p.max_gpus_per_campaign).ok(),
            Some(None)
        );
        write("volumeSources", "hostPath");
        let error = Policy::from_dir(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("volumeSources: \"hostPath\" is not a volume source"),
            "{error}"
        );
        std::fs::remove_file(dir.join("volumeSources")).unwrap_or_else(|e| panic!("{e}"));
        let error = Policy::from_dir(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("volumeSources"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
