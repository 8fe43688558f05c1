//! Reading a Campaign manifest: the CRD schema's size bounds, YAML → typed spec with the field
//! path of any error, then the semantic checks serde cannot make (seed programs check, the
//! baseline names a seed, …).

use super::campaign::Campaign;
use std::collections::HashSet;

/// A manifest problem: where (`spec.stages.exploration.train.steps`) and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ManifestError {
    pub path: String,
    pub message: String,
}

fn error(path: impl Into<String>, message: impl Into<String>) -> ManifestError {
    ManifestError {
        path: path.into(),
        message: message.into(),
    }
}

/// Most revisions per experiment: bounds the size of an Experiment resource.
pub const MAX_REVISIONS: u32 = 10;

/// Parses and validates a Campaign manifest.
pub fn parse_campaign(text: &str) -> Result<Campaign, ManifestError> {
    let head: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| error("(document)", e.to_string()))?;
    let field = |name: &str| {
        head.get(name)
            .and_then(serde_yaml::Value::as_str)
            .map(str::to_string)
    };
    match (field("apiVersion").as_deref(), field("kind").as_deref()) {
        (Some("archlab.dev/v1alpha1"), Some("Campaign")) => {}
        (api_version, kind) => {
            return Err(error(
                "apiVersion/kind",
                format!(
                    "expected archlab.dev/v1alpha1 Campaign, found {} {}",
                    api_version.unwrap_or("(none)"),
                    kind.unwrap_or("(none)")
                ),
            ));
        }
    }
    // JSON, and so the API server, has no infinities or NaN: YAML's `.inf` and `.nan` are
    // refused wherever they stand, before they could reach a duration or a threshold.
    if let Some(path) = super::schema_bounds::non_finite(&head, "") {
        return Err(error(path, "expected a finite number, found .inf or .nan"));
    }
    // The CRD's bounds first, as the API server checks them before anything else (and a
    // number past its type's range gets the bound's message rather than serde's).
    if let Ok(document) = serde_json::to_value(&head) {
        super::schema_bounds::check(&super::crds::campaign_schema(), &document, "")
            .map_err(|e| error(e.path, e.message))?;
    }
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let campaign: Campaign = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        error(
            if path == "." {
                "(document)".to_string()
            } else {
                path
            },
            e.into_inner().to_string(),
        )
    })?;
    validate(&campaign)?;
    Ok(campaign)
}

/// Checks what the types cannot express.
pub fn validate(campaign: &Campaign) -> Result<(), ManifestError> {
    let spec = &campaign.spec;
    if spec.seeds.is_empty() {
        return Err(error("spec.seeds", "needs at least one seed"));
    }
    let mut names = HashSet::new();
    for (index, seed) in spec.seeds.iter().enumerate() {
        let path = format!("spec.seeds[{index}]");
        if !names.insert(seed.name.as_str()) {
            return Err(error(
                format!("{path}.name"),
                format!("seed name `{}` is used twice", seed.name),
            ));
        }
        let exploration = &spec.stages.exploration.train;
        let check_config = archspec::CheckConfig {
            d_model: exploration.model.d_model,
            seq_len: exploration.data.seq_len,
            ..archspec::CheckConfig::default()
        };
        match (&seed.library, &seed.program) {
            (Some(library), None) => {
                let entry = archspec::library::get(library).ok_or_else(|| {
                    let known: Vec<&str> =
                        archspec::library::ENTRIES.iter().map(|e| e.name).collect();
                    error(
                        format!("{path}.library"),
                        format!(
                            "no library program `{library}`; expected one of {}",
                            known.join(", ")
                        ),
                    )
                })?;
                archspec::check_source(entry.source, &check_config).map_err(|d| {
                    error(
                        format!("{path}.library"),
                        format!(
                            "invalid at the exploration config:\n{}",
                            archspec::diagnostic::render(entry.source, &d)
                        ),
                    )
                })?;
            }
            (None, Some(program)) => {
                archspec::check_source(program, &check_config).map_err(|d| {
                    error(
                        format!("{path}.program"),
                        format!(
                            "invalid program:\n{}",
                            archspec::diagnostic::render(program, &d)
                        ),
                    )
                })?;
            }
            _ => return Err(error(path, "give exactly one of `library` or `program`")),
        }
    }
    if !names.contains(spec.baseline.as_str()) {
        return Err(error(
            "spec.baseline",
            format!("`{}` is not the name of a seed", spec.baseline),
        ));
    }
    let stages = &spec.stages;
    if !stages.rungs.is_empty() && stages.verification.promote == 0 {
        return Err(error(
            "spec.stages.rungs",
            "rungs lead to verification, which promotes nothing (`verification.promote: 0`)",
        ));
    }
    let mut configs = vec![(
        "spec.stages.exploration.train".to_string(),
        &stages.exploration.train,
    )];
    for (index, rung) in stages.rungs.iter().enumerate() {
        configs.push((format!("spec.stages.rungs[{index}].train"), &rung.train));
    }
    configs.push((
        "spec.stages.verification.train".to_string(),
        &stages.verification.train,
    ));
    for (path, config) in configs {
        config
            .validate()
            .map_err(|e| error(format!("{path}.{}", e.field), e.message))?;
    }
    check_ladder(stages)?;
    // qa.behindFactor's range (at least 1) is its type's schema bound, checked with the rest.
    if !(0.0..=1.0).contains(&spec.qa.behind_after) {
        return Err(error(
            "spec.qa.behindAfter",
            format!(
                "must be a fraction of training between 0 and 1, found {}",
                spec.qa.behind_after
            ),
        ));
    }
    if spec.budget.max_experiments == 0 {
        return Err(error("spec.budget.maxExperiments", "must be at least 1"));
    }
    if let Some(hours) = spec.budget.max_compute_hours
        && !(hours.is_finite() && hours > 0.0)
    {
        return Err(error(
            "spec.budget.maxComputeHours",
            format!("must be a positive number of hours, found {hours}"),
        ));
    }
    if spec.budget.max_llm_tokens == Some(0) {
        return Err(error(
            "spec.budget.maxLlmTokens",
            "must be at least 1 (leave it out for no limit)",
        ));
    }
    if spec.parallelism == 0 {
        return Err(error("spec.parallelism", "must be at least 1"));
    }
    if spec.agents.backend == super::campaign::AgentBackend::Llm {
        let Some(llm) = &spec.agents.llm else {
            return Err(error(
                "spec.agents.llm",
                "`backend: llm` needs an `llm` block with `baseUrl` and `model`",
            ));
        };
        if !(llm.base_url.starts_with("http://") || llm.base_url.starts_with("https://")) {
            return Err(error(
                "spec.agents.llm.baseUrl",
                format!(
                    "expected an http:// or https:// URL, found `{}`",
                    llm.base_url
                ),
            ));
        }
        if !(llm.timeout_seconds > 0.0 && llm.timeout_seconds.is_finite()) {
            return Err(error(
                "spec.agents.llm.timeoutSeconds",
                "must be a positive number",
            ));
        }
    }
    if spec.cognition.embedder == super::campaign::EmbedderKind::Endpoint
        && spec
            .agents
            .llm
            .as_ref()
            .and_then(|llm| llm.embeddings_model.as_ref())
            .is_none()
    {
        return Err(error(
            "spec.cognition.embedder",
            "`endpoint` needs `spec.agents.llm.embeddingsModel` (and its baseUrl)",
        ));
    }
    if spec.search.max_revisions > MAX_REVISIONS {
        return Err(error(
            "spec.search.maxRevisions",
            format!(
                "at most {MAX_REVISIONS} (each revision is kept whole in the experiment's record), found {}",
                spec.search.max_revisions
            ),
        ));
    }
    validate_trainer(&spec.trainer)?;
    if spec.search.sampling.parent_top_k == 0 {
        return Err(error(
            "spec.search.sampling.parentTopK",
            "must be at least 1",
        ));
    }
    Ok(())
}

/// `spec.trainer`: what Kubernetes would refuse only when the first pod is created.
fn validate_trainer(trainer: &super::trainer::TrainerSpec) -> Result<(), ManifestError> {
    if let Some(image) = &trainer.image
        && (image.trim().is_empty() || image.contains(char::is_whitespace))
    {
        return Err(error(
            "spec.trainer.image",
            format!(
                "expected an image reference such as `registry/archlab:0.1.0`, found `{image}`"
            ),
        ));
    }
    if let Some(resources) = &trainer.resources {
        for (section, map) in [
            ("requests", &resources.requests),
            ("limits", &resources.limits),
        ] {
            for (name, quantity) in map {
                if !is_quantity(quantity) {
                    return Err(error(
                        format!("spec.trainer.resources.{section}.{name}"),
                        format!(
                            "expected a Kubernetes quantity such as `1`, `500m` or `2Gi`, found `{quantity}`"
                        ),
                    ));
                }
            }
        }
    }
    validate_volumes(&trainer.volumes)?;
    for (index, variable) in trainer.env.iter().enumerate() {
        let valid = variable
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && variable
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(error(
                format!("spec.trainer.env[{index}].name"),
                format!(
                    "expected a variable name of letters, digits and `_`, found `{}`",
                    variable.name
                ),
            ));
        }
        if variable.name.starts_with("ARCHLAB_") {
            return Err(error(
                format!("spec.trainer.env[{index}].name"),
                format!(
                    "`{}`: ARCHLAB_ variables carry the program and config; the operator sets them",
                    variable.name
                ),
            ));
        }
    }
    for key in trainer.pod_labels.keys() {
        if key.starts_with("archlab.dev/")
            || key == "app.kubernetes.io/managed-by"
            || key == "kueue.x-k8s.io/queue-name"
        {
            return Err(error(
                format!("spec.trainer.podLabels.{key}"),
                "the operator sets this label (name a Kueue queue with spec.trainer.queueName)",
            ));
        }
    }
    if let Some(name) = &trainer.checkpoints {
        match trainer.volumes.iter().find(|v| &v.name == name) {
            None => {
                return Err(error(
                    "spec.trainer.checkpoints",
                    format!("names no volume of spec.trainer.volumes: `{name}`"),
                ));
            }
            Some(volume) if volume.read_only || volume.config_map.is_some() => {
                return Err(error(
                    "spec.trainer.checkpoints",
                    format!(
                        "volume `{name}` is read-only; checkpoints need a claim or emptyDir with `readOnly: false`"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    for (index, toleration) in trainer.tolerations.iter().enumerate() {
        if let Some(operator) = &toleration.operator
            && operator != "Exists"
            && operator != "Equal"
        {
            return Err(error(
                format!("spec.trainer.tolerations[{index}].operator"),
                format!("expected `Exists` or `Equal`, found `{operator}`"),
            ));
        }
        if let Some(effect) = &toleration.effect
            && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect.as_str())
        {
            return Err(error(
                format!("spec.trainer.tolerations[{index}].effect"),
                format!(
                    "expected `NoSchedule`, `PreferNoSchedule` or `NoExecute`, found `{effect}`"
                ),
            ));
        }
    }
    Ok(())
}

/// `spec.trainer.volumes`: one allowed source each, names and mount paths the pod accepts.
fn validate_volumes(volumes: &[super::trainer::TrainerVolume]) -> Result<(), ManifestError> {
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    for (index, volume) in volumes.iter().enumerate() {
        let path = format!("spec.trainer.volumes[{index}]");
        let sources = [
            volume.persistent_volume_claim.is_some(),
            volume.config_map.is_some(),
            volume.empty_dir.is_some(),
        ];
        if sources.iter().filter(|&&given| given).count() != 1 {
            return Err(error(
                path,
                "give exactly one of `persistentVolumeClaim`, `configMap` or `emptyDir` (no other volume source, `hostPath` among them, is allowed)",
            ));
        }
        let name = &volume.name;
        let label = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !label || name == "tmp" {
            return Err(error(
                format!("{path}.name"),
                format!(
                    "expected a DNS label (lowercase letters, digits, `-`) other than `tmp` (the pod's own), found `{name}`"
                ),
            ));
        }
        if !names.insert(name.as_str()) {
            return Err(error(
                format!("{path}.name"),
                format!("volume name `{name}` is used twice"),
            ));
        }
        let mount = volume.mount_path.trim_end_matches('/');
        if !mount.starts_with('/')
            || mount.split('/').any(|part| part == "..")
            || mount == "/tmp"
            || mount.starts_with("/tmp/")
        {
            return Err(error(
                format!("{path}.mountPath"),
                format!(
                    "expected an absolute path without `..`, outside /tmp (the pod's scratch space), found `{}`",
                    volume.mount_path
                ),
            ));
        }
        if !paths.insert(mount) {
            return Err(error(
                format!("{path}.mountPath"),
                format!("`{}` is mounted twice", volume.mount_path),
            ));
        }
        if let Some(limit) = volume
            .empty_dir
            .as_ref()
            .and_then(|e| e.size_limit.as_ref())
            && !is_quantity(limit)
        {
            return Err(error(
                format!("{path}.emptyDir.sizeLimit"),
                format!("expected a Kubernetes quantity such as `10Gi`, found `{limit}`"),
            ));
        }
    }
    Ok(())
}

/// A Kubernetes resource quantity: a decimal number with an optional SI or binary suffix.
fn is_quantity(text: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P",
    ];
    let number = SUFFIXES
        .iter()
        .find_map(|suffix| text.strip_suffix(suffix))
        .unwrap_or(text);
    !number.is_empty()
        && number
            .parse::<f64>()
            .is_ok_and(|n| n.is_finite() && n >= 0.0)
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// The ladder narrows as it climbs (successive halving): each rung retrains at most as many
/// programs as the rung below promoted to it, with at least as many seeds.
fn check_ladder(stages: &super::campaign::Stages) -> Result<(), ManifestError> {
    let verification = &stages.verification;
    if verification.seeds < 3 {
        return Err(error(
            "spec.stages.verification.seeds",
            "verification needs at least 3 seeds for an interval",
        ));
    }
    let mut below: Option<(String, u32, u32)> = None;
    for (index, rung) in stages.rungs.iter().enumerate() {
        let path = format!("spec.stages.rungs[{index}]");
        if rung.promote == 0 {
            return Err(error(
                format!("{path}.promote"),
                "must be at least 1 (leave the rung out to skip it)",
            ));
        }
        if rung.seeds == 0 {
            return Err(error(format!("{path}.seeds"), "must be at least 1"));
        }
        narrower(&below, &path, rung.promote, rung.seeds)?;
        below = Some((path, rung.promote, rung.seeds));
    }
    if verification.promote > 0 {
        narrower(
            &below,
            "spec.stages.verification",
            verification.promote,
            verification.seeds,
        )?;
    }
    Ok(())
}

/// A rung against the one below it: no more programs, no fewer seeds.
fn narrower(
    below: &Option<(String, u32, u32)>,
    path: &str,
    promote: u32,
    seeds: u32,
) -> Result<(), ManifestError> {
    let Some((below, below_promote, below_seeds)) = below else {
        return Ok(());
    };
    if promote > *below_promote {
        return Err(error(
            format!("{path}.promote"),
            format!(
                "{promote} is more than the {below_promote} programs {below} promotes to this rung"
            ),
        ));
    }
    if seeds < *below_seeds {
        return Err(error(
            format!("{path}.seeds"),
            format!(
                "{seeds} is fewer than the {below_seeds} seeds of {below}: seeds grow with the rung"
            ),
        ));
    }
    Ok(())
}
