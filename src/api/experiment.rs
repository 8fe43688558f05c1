//! The `Experiment` custom resource: one experiment of a campaign, as the operator keeps it in
//! the cluster. The spec is what never changes (identity, stage, lineage); the status is the
//! lifecycle's record (phase, every attempt with its outcome, fitness, analysis). Conversion
//! to and from the core's record is lossless, so both drivers remember the same things.

use super::limits;
use crate::core::lifecycle::{self, Attempt, ExperimentId, Origin, Phase, Stage};
use crate::core::qa::ProgressPoint;
use archspec::canon::Structure;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

// Several print columns share a type; clippy reads that as a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "archlab.dev",
    version = "v1alpha1",
    kind = "Experiment",
    namespaced,
    status = "ExperimentStatus",
    shortname = "exp",
    derive = "PartialEq",
    doc = "One architecture experiment of a campaign: its program's attempts, outcome and fitness.",
    category = "archlab",
    printcolumn(name = "Campaign", type_ = "string", json_path = ".spec.campaign"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Stage", type_ = "string", json_path = ".spec.stage"),
    printcolumn(name = "Fitness", type_ = "number", json_path = ".status.fitness"),
    printcolumn(
        name = "Attempts",
        type_ = "integer",
        json_path = ".status.attemptCount"
    ),
    printcolumn(name = "Parent", type_ = "integer", json_path = ".spec.parent"),
    printcolumn(
        name = "Progress",
        type_ = "number",
        description = "Percent of the running attempt's training done (kubectl get -o wide)",
        json_path = ".status.training.percent",
        priority = 1
    ),
    printcolumn(
        name = "ETA",
        type_ = "number",
        description = "Seconds of training left at the pace so far (kubectl get -o wide)",
        json_path = ".status.training.etaSeconds",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    /// The Campaign this experiment belongs to.
    #[schemars(length(max = limits::OBJECT_NAME))]
    pub campaign: String,
    /// Number within the campaign (1, 2, …), in creation order.
    pub id: ExperimentId,
    pub stage: Stage,
    pub origin: Origin,
    #[serde(default)]
    pub parent: Option<ExperimentId>,
    #[serde(default)]
    #[schemars(length(max = limits::REFERENCES))]
    pub references: Vec<ExperimentId>,
    /// Training seed index at verification.
    #[serde(default)]
    pub replica: u32,
    /// The rung of the ladder (1 for the first above exploration) when `stage` is `screening`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rung: u32,
    /// The campaign seed this experiment trains, for seeds (their identity: a status lost in a
    /// failed write must not lose which seed it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::SEED_NAME))]
    pub seed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    #[serde(default)]
    pub phase: Option<Phase>,
    // Empty strings are left out: server-side apply in Kubernetes 1.20 turns "" into null,
    // which the schema then refuses.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = limits::EXPERIMENT_NAME))]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = super::bounds::MOTIVATION_BYTES))]
    pub motivation: String,
    #[serde(default)]
    #[schemars(length(max = limits::REPLICA_NAME))]
    pub operator: Option<String>,
    /// `Progressing` (what it waits for) and `Succeeded` (how it ended), in words.
    #[serde(default)]
    #[schemars(length(max = limits::CONDITIONS), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<super::campaign::Condition>,
    #[serde(default)]
    #[schemars(length(max = limits::ATTEMPTS))]
    pub attempts: Vec<AttemptStatus>,
    /// How many attempts were made (a printer column; derived from `attempts`).
    #[serde(default)]
    pub attempt_count: u32,
    #[serde(default)]
    pub fitness: Option<f64>,
    #[serde(default)]
    #[schemars(length(max = super::bounds::ANALYSIS_BYTES))]
    pub analysis: Option<String>,
    #[serde(default)]
    #[schemars(length(max = super::bounds::SUMMARY_BYTES))]
    pub problem_summary: Option<String>,
    #[serde(default)]
    #[schemars(length(max = limits::TOP_K), inner(length(max = limits::ENTRY_ID)))]
    pub retrieved: Vec<String>,
    /// How far the running attempt's training is (absent when none runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingStatus>,
    /// Trainer runs lost to the infrastructure, each retried as the same attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::bounds::INFRASTRUCTURE_FAILURES))]
    pub infrastructure_failures: Vec<lifecycle::InfrastructureFailure>,
}

/// Progress of the attempt in training: where it is, how much is done, how long is left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingStatus {
    pub attempt: u32,
    /// The learning rate of a sweep being tried (1-based) and how many there are.
    pub trial: usize,
    pub trials: usize,
    pub step: usize,
    pub steps: usize,
    pub loss: Option<f64>,
    /// Of the whole attempt (every trial of the sweep).
    pub percent: f64,
    /// At the pace so far.
    pub eta_seconds: Option<f64>,
}

/// The training progress of `record`'s running attempt, given its config's steps per trial and
/// number of trials.
pub fn training_status(
    record: &lifecycle::Experiment,
    steps: usize,
    trials: usize,
) -> Option<TrainingStatus> {
    if record.phase != Phase::Training || steps == 0 {
        return None;
    }
    let attempt = record.current()?;
    let point = attempt.progress.last()?;
    let trials = trials.max(1);
    let done = (point.trial * steps + point.step.min(steps)) as f64;
    let total = (trials * steps) as f64;
    let seconds_per_step =
        (point.step > 0 && point.elapsed_s > 0.0).then(|| point.elapsed_s / point.step as f64);
    Some(TrainingStatus {
        attempt: attempt.number,
        trial: point.trial + 1,
        trials,
        step: point.step,
        steps,
        loss: point.loss.is_finite().then_some(point.loss),
        percent: (100.0 * done / total).clamp(0.0, 100.0),
        eta_seconds: seconds_per_step.map(|rate| ((total - done).max(0.0) * rate).round()),
    })
}

/// One attempt as stored in the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptStatus {
    pub number: u32,
    /// Empty (left out) when no program was produced.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = limits::PROGRAM))]
    pub program: String,
    /// The outcome (`kind` plus its fields, as in memory), absent while running. Kept as free
    /// JSON: Kubernetes' structural schemas cannot express internally tagged unions.
    #[serde(default)]
    #[schemars(schema_with = "free_object")]
    pub outcome: Option<serde_json::Value>,
    #[serde(default)]
    #[schemars(length(max = super::bounds::CURRENT_PROGRESS_POINTS))]
    pub progress: Vec<ProgressPoint>,
    /// The program's structural hash and distance features (what novelty compares), computed
    /// once when the attempt started; absent when the program did not check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure: Option<StructureStatus>,
}

/// `archspec::canon::Structure` in a status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StructureStatus {
    #[schemars(length(max = limits::STRUCTURE_HASH))]
    pub hash: String,
    #[schemars(extend("maxProperties" = limits::STRUCTURE_FEATURES))]
    pub features: BTreeMap<String, u32>,
}

impl From<&Structure> for StructureStatus {
    fn from(structure: &Structure) -> StructureStatus {
        StructureStatus {
            hash: structure.hash.clone(),
            features: structure.features.clone(),
        }
    }
}

impl From<StructureStatus> for Structure {
    fn from(status: StructureStatus) -> Structure {
        Structure {
            hash: status.hash,
            features: status.features,
        }
    }
}

pub(crate) fn free_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// `value` without its empty-string fields: server-side apply in Kubernetes 1.20 turns "" into
/// null, which a reader would then have to tell from a real null (the outcome's text fields read
/// a missing value as empty).
fn is_zero(value: &u32) -> bool {
    *value == 0
}

fn without_empty_strings(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(object) = value.as_object_mut() {
        object.retain(|_, v| v.as_str() != Some(""));
        for field in object.values_mut() {
            *field = without_empty_strings(field.take());
        }
    }
    value
}

/// The resource name of experiment `id` of `campaign` (a DNS label: lowercase, ≤ 63), unique
/// for every Campaign name (`super::names`).
pub fn resource_name(campaign: &str, id: ExperimentId) -> String {
    format!("{}-e{id:05}", super::names::name_prefix(campaign))
}

/// The core record as a resource, within the size bounds of [`super::bounds`] (conditions
/// stamped with no time; the operator's memory uses [`to_resource_at`]).
pub fn to_resource(campaign: &str, record: &lifecycle::Experiment) -> Experiment {
    to_resource_at(campaign, record, &[], "")
}

/// The resource with conditions as of `now`, keeping `previous` transition times.
pub fn to_resource_at(
    campaign: &str,
    record: &lifecycle::Experiment,
    previous: &[super::campaign::Condition],
    now: &str,
) -> Experiment {
    let record = &super::bounds::bounded(record);
    let mut resource = Experiment::new(
        &resource_name(campaign, record.id),
        ExperimentSpec {
            campaign: campaign.to_string(),
            id: record.id,
            stage: record.stage,
            origin: record.origin,
            parent: record.parent,
            references: record.references.clone(),
            replica: record.replica,
            rung: record.rung,
            seed: (record.origin == Origin::Seed && !record.name.is_empty())
                .then(|| record.name.clone()),
        },
    );
    resource.status = Some(ExperimentStatus {
        phase: Some(record.phase),
        name: record.name.clone(),
        motivation: record.motivation.clone(),
        operator: record.operator.clone(),
        attempt_count: record.attempts.len() as u32,
        conditions: super::conditions::experiment_conditions(record, previous, now),
        training: None,
        attempts: record
            .attempts
            .iter()
            .map(|a| AttemptStatus {
                number: a.number,
                program: a.program.clone(),
                outcome: a
                    .outcome
                    .as_ref()
                    .and_then(|o| serde_json::to_value(o).ok())
                    .map(without_empty_strings),
                progress: a.progress.clone(),
                structure: a.structure.as_ref().map(StructureStatus::from),
            })
            .collect(),
        fitness: record.fitness,
        analysis: record.analysis.clone(),
        problem_summary: record.problem_summary.clone(),
        retrieved: record.retrieved.clone(),
        infrastructure_failures: record.infrastructure_failures.clone(),
    });
    resource
}

/// The core record a resource holds (a resource without status is waiting for its proposal).
/// An outcome that does not parse is an error naming the attempt.
pub fn from_resource(resource: &Experiment) -> Result<lifecycle::Experiment, String> {
    let spec = &resource.spec;
    let status = resource.status.clone().unwrap_or_default();
    let mut attempts = Vec::with_capacity(status.attempts.len());
    for (index, attempt) in status.attempts.into_iter().enumerate() {
        let outcome = match attempt.outcome {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(
                serde_json::from_value(value)
                    .map_err(|e| format!("status.attempts[{index}].outcome: {e}"))?,
            ),
        };
        attempts.push(Attempt {
            number: attempt.number,
            program: attempt.program,
            outcome,
            progress: attempt.progress,
            structure: attempt.structure.map(Structure::from),
        });
    }
    let name = match (&spec.seed, status.name.is_empty()) {
        (Some(seed), true) => seed.clone(),
        _ => status.name,
    };
    Ok(lifecycle::Experiment {
        id: spec.id,
        name,
        stage: spec.stage,
        origin: spec.origin,
        replica: spec.replica,
        rung: spec.rung,
        operator: status.operator,
        parent: spec.parent,
        references: spec.references.clone(),
        motivation: status.motivation,
        phase: status.phase.unwrap_or(Phase::Proposing),
        attempts,
        fitness: status.fitness,
        analysis: status.analysis,
        problem_summary: status.problem_summary,
        retrieved: status.retrieved,
        infrastructure_failures: status.infrastructure_failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Outcome, TrainSummary};
    use crate::core::qa::{ProgressPoint, QaVerdict};
    use kube::CustomResourceExt;
    use std::collections::BTreeMap;

    #[test]
    fn records_survive_the_round_trip_through_the_resource_and_yaml() {
        let mut record = lifecycle::Experiment::new(7, Stage::Exploration, Some(3), vec![1, 2]);
        record.name = "gla-conv-7".into();
        record.motivation = "a short convolution".into();
        record.operator = Some("toggle_short_conv".into());
        record.phase = Phase::Succeeded;
        record.fitness = Some(0.7);
        record.retrieved = vec!["h3".into()];
        record.attempts = vec![
            Attempt {
                number: 1,
                program: "mixer a(d_model) { return x }".into(),
                outcome: Some(Outcome::Stopped {
                    verdict: QaVerdict::NotFinite { step: 4 },
                }),
                progress: vec![ProgressPoint {
                    step: 4,
                    loss: 2.0,
                    elapsed_s: 0.5,
                    trial: 0,
                }],
                structure: None,
            },
            Attempt {
                number: 2,
                program: "mixer b(d_model) { return x }".into(),
                outcome: Some(Outcome::Finished {
                    summary: TrainSummary {
                        val_loss: 1.25,
                        accuracy: BTreeMap::from([("mqar".into(), 0.5)]),
                        wall_s: 3.0,
                        params: 100,
                        benchmarks: BTreeMap::new(),
                    },
                }),
                progress: vec![],
                structure: None,
            },
        ];
        let resource = to_resource("Quick_Start", &record);
        assert_eq!(
            resource.metadata.name.as_deref(),
            // The mapping changed the name, so its hash keeps it apart from `quick-start`'s.
            Some("quick-start-3855e5bb-e00007")
        );
        let yaml = serde_yaml::to_string(&resource).unwrap_or_default();
        let parsed: Experiment =
            serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(from_resource(&parsed), Ok(record));
    }

    #[test]
    fn empty_texts_are_left_out_of_the_resource_and_read_back_as_empty() {
        let mut record = lifecycle::Experiment::new(3, Stage::Exploration, Some(1), vec![]);
        record.phase = Phase::Failed;
        record.attempts = vec![
            Attempt {
                number: 1,
                program: "mixer a(d_model) { return x }".into(),
                outcome: Some(Outcome::Crashed {
                    message: "d_model must be even".into(),
                    log_tail: String::new(),
                }),
                progress: vec![],
                structure: None,
            },
            Attempt {
                number: 2,
                program: String::new(),
                outcome: Some(Outcome::AgentFailed {
                    message: String::new(),
                }),
                progress: vec![],
                structure: None,
            },
        ];
        let resource = to_resource_at("quick", &record, &[], "2026-11-29T12:00:00Z");
        let json = serde_json::to_string(&resource).unwrap_or_default();
        assert!(!json.contains(r#":"""#), "no empty string is sent: {json}");
        assert_eq!(from_resource(&resource), Ok(record));
    }

    #[test]
    fn training_progress_counts_every_trial_and_projects_the_rest() {
        let mut record = lifecycle::Experiment::new(4, Stage::Exploration, None, vec![]);
        assert_eq!(training_status(&record, 100, 2), None, "nothing trains yet");
        record.phase = Phase::Training;
        record.attempts.push(Attempt {
            number: 1,
            program: "p".into(),
            outcome: None,
            progress: vec![ProgressPoint {
                step: 50,
                loss: 1.5,
                elapsed_s: 10.0,
                trial: 1,
            }],
            structure: None,
        });
        let status = training_status(&record, 100, 2).unwrap_or_else(|| panic!("training"));
        assert_eq!(
            (status.trial, status.trials, status.step, status.steps),
            (2, 2, 50, 100)
        );
        assert_eq!(status.percent, 75.0);
        // 50 steps left at 0.2 s a step.
        assert_eq!(status.eta_seconds, Some(10.0));
        assert_eq!(status.loss, Some(1.5));
    }

    #[test]
    fn a_seed_whose_status_was_never_written_still_knows_its_seed() {
        let mut record = lifecycle::Experiment::new(1, Stage::Exploration, None, vec![]);
        record.origin = Origin::Seed;
        record.name = "linear_attention".into();
        let mut resource = to_resource("quick", &record);
        resource.status = None;
        let read = from_resource(&resource).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.name, "linear_attention");
        assert_eq!(read.phase, Phase::Proposing);
    }

    #[test]
    fn the_crd_names_group_version_and_kind() {
        let crd = serde_json::to_value(Experiment::crd()).unwrap_or_default();
        assert_eq!(crd["spec"]["group"], "archlab.dev");
        assert_eq!(crd["spec"]["names"]["kind"], "Experiment");
        assert_eq!(crd["spec"]["versions"][0]["name"], "v1alpha1");
        let status =
            &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
        assert!(status["properties"]["attempts"].is_object(), "{status}");
    }
}
