//! The operator's memory: the engine's [`Store`] over the cluster's own resources. An
//! experiment is an Experiment resource (spec: identity and lineage; status: the lifecycle
//! record), the LLM tokens and agent statistics live in the Campaign's status. Writes are
//! server-side applies with one field manager and deterministic names, so writing the same
//! record twice changes nothing and a restarted operator finds exactly what was done.
//!
//! The engine is synchronous (it runs on its own thread, where LLM calls may block), so each
//! call blocks on the async client through a runtime handle; never call it on a runtime thread.

use crate::api::Campaign;
use crate::api::campaign::Condition;
use crate::api::experiment::{self, Experiment};
use crate::core::budget::Usage;
use crate::core::lifecycle::{self, ExperimentId};
use crate::memory::{Loaded, MemoryError, Quarantined, Result, Store};
use crate::operator::pod::{LABEL_CAMPAIGN, MANAGER, label_value};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DynamicObject, ListParams, ObjectMeta, PartialObjectMeta, Patch, PatchParams,
};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct KubeStore {
    runtime: tokio::runtime::Handle,
    campaigns: Api<Campaign>,
    /// Campaigns' metadata, which every Campaign decodes as.
    campaign_names: Api<PartialObjectMeta<Campaign>>,
    experiments: Api<Experiment>,
    /// The same Experiments undecoded, read one at a time: one this version cannot decode
    /// (written by a newer one) is quarantined, not the failure of the whole list.
    stored: Api<DynamicObject>,
    /// The highest experiment id seen (this store's engine is the campaign's only writer).
    highest_id: BTreeMap<String, ExperimentId>,
    llm_tokens: BTreeMap<String, u64>,
    campaign_owner: BTreeMap<String, OwnerReference>,
    /// Conditions last written per Experiment, so transition times hold while nothing changes.
    conditions: std::sync::Mutex<BTreeMap<String, Vec<Condition>>>,
    /// Cleared the moment this replica loses the leader lease: no write gets through after.
    fence: Arc<AtomicBool>,
    /// The campaign's spec, for the training progress in an Experiment's status.
    spec: Option<crate::api::CampaignSpec>,
    /// The apply body last sent for each Experiment's main resource: a save that changes only
    /// the status (most of them: progress, phases) writes only the status.
    applied: BTreeMap<String, Vec<u8>>,
}

/// Experiments per list request.
const LIST_PAGE: u32 = 500;

/// The id of an Experiment that does not decode: its `spec.id`, else its name's `-eNNNNN`.
fn stored_id(object: &DynamicObject) -> Option<ExperimentId> {
    object.data["spec"]["id"].as_u64().or_else(|| {
        let name = object.metadata.name.as_deref()?;
        name.rsplit_once("-e")?.1.parse().ok()
    })
}

impl KubeStore {
    /// `request` to the API server, tried again while the failure may pass; a write stops
    /// retrying once this replica is no longer the leader.
    fn request<T, F, Fut>(
        &self,
        what: &str,
        write: bool,
        request: F,
    ) -> std::result::Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, kube::Error>>,
    {
        let fence = self.fence.clone();
        let may_retry = move || !write || fence.load(Ordering::SeqCst);
        self.runtime
            .block_on(super::retry::with_retries(what, may_retry, request))
    }
}

fn cluster(what: impl Into<String>) -> impl FnOnce(kube::Error) -> MemoryError {
    let what = what.into();
    move |error| MemoryError::Cluster {
        what,
        message: error.to_string(),
    }
}

impl KubeStore {
    pub fn new(
        runtime: tokio::runtime::Handle,
        client: kube::Client,
        namespace: &str,
    ) -> KubeStore {
        KubeStore {
            runtime,
            campaigns: Api::namespaced(client.clone(), namespace),
            campaign_names: Api::namespaced(client.clone(), namespace),
            experiments: Api::namespaced(client.clone(), namespace),
            stored: Api::namespaced_with(client, namespace, &ApiResource::erase::<Experiment>(&())),
            highest_id: BTreeMap::new(),
            llm_tokens: BTreeMap::new(),
            campaign_owner: BTreeMap::new(),
            conditions: std::sync::Mutex::new(BTreeMap::new()),
            fence: Arc::new(AtomicBool::new(true)),
            spec: None,
            applied: BTreeMap::new(),
        }
    }

    /// Reports training progress (percent, time left) in Experiment status, from `spec`'s configs.
    pub fn with_spec(mut self, spec: crate::api::CampaignSpec) -> KubeStore {
        self.spec = Some(spec);
        self
    }

    /// Writes only while `fence` is set (the leader flag).
    pub fn with_fence(mut self, fence: Arc<AtomicBool>) -> KubeStore {
        self.fence = fence;
        self
    }

    fn check_fence(&self) -> Result<()> {
        if self.fence.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(MemoryError::Cluster {
                what: "writing memory".into(),
                message: "this replica is no longer the leader".into(),
            })
        }
    }

    fn campaign(&self, name: &str) -> Result<Option<Campaign>> {
        self.request("reading a Campaign", false, || self.campaigns.get_opt(name))
            .map_err(cluster(format!("reading Campaign {name}")))
    }

    /// The owner reference that makes the Campaign's deletion delete its Experiments.
    fn owner(&mut self, campaign: &str) -> Result<Option<OwnerReference>> {
        if let Some(owner) = self.campaign_owner.get(campaign) {
            return Ok(Some(owner.clone()));
        }
        let owner = self
            .campaign(campaign)?
            .and_then(|c| c.controller_owner_ref(&()));
        if let Some(owner) = &owner {
            self.campaign_owner
                .insert(campaign.to_string(), owner.clone());
        }
        Ok(owner)
    }

    fn previous_conditions(&self, name: &str) -> Vec<Condition> {
        self.conditions
            .lock()
            .ok()
            .and_then(|c| c.get(name).cloned())
            .unwrap_or_default()
    }

    fn apply_main(&self, name: &str, resource: &Experiment, what: &str) -> Result<()> {
        let apply = PatchParams::apply(MANAGER).force();
        let patch = Patch::Apply(resource);
        self.request("writing an Experiment", true, || {
            self.experiments.patch(name, &apply, &patch)
        })
        .map(|_| ())
        .map_err(cluster(what))
    }

    fn merge_status(&self, campaign: &str, status: serde_json::Value) -> Result<()> {
        self.check_fence()?;
        let patch = Patch::Merge(json!({ "status": status }));
        let params = PatchParams::default();
        self.request("writing a Campaign's status", true, || {
            self.campaigns.patch_status(campaign, &params, &patch)
        })
        .map(|_| ())
        .map_err(cluster(format!(
            "updating the status of Campaign {campaign}"
        )))
    }
}

impl Store for KubeStore {
    fn campaigns(&self) -> Result<Vec<String>> {
        let params = ListParams::default();
        let list = self
            .request("listing Campaigns", false, || {
                self.campaign_names.list(&params)
            })
            .map_err(cluster("listing Campaigns"))?;
        Ok(list.items.iter().map(|c| c.name_any()).collect())
    }

    fn campaign_spec(&self, name: &str) -> Result<Option<String>> {
        self.campaign(name)?
            .map(|c| serde_json::to_string(&c.spec))
            .transpose()
            .map_err(|e| MemoryError::Corrupt {
                what: format!("Campaign {name}"),
                message: e.to_string(),
            })
    }

    /// The Campaign resource is the registration; which spec changes a running campaign may
    /// take is the operator's reconcile to judge, not memory's.
    fn register_campaign(&mut self, _name: &str, _spec_json: &str) -> Result<()> {
        Ok(())
    }

    /// The Campaign resource holds the spec; the edit is already in it.
    fn replace_campaign_spec(&mut self, _name: &str, _spec_json: &str) -> Result<()> {
        Ok(())
    }

    fn save_experiment(&mut self, campaign: &str, record: &lifecycle::Experiment) -> Result<()> {
        self.check_fence()?;
        let name = experiment::resource_name(campaign, record.id);
        let previous = self.previous_conditions(&name);
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let mut resource = experiment::to_resource_at(campaign, record, &previous, &now);
        if let (Some(spec), Some(status)) = (&self.spec, resource.status.as_mut()) {
            let config = crate::core::campaign::train_config(spec, record.level(), record.replica);
            status.training =
                experiment::training_status(record, config.steps, config.learning_rates().len());
        }
        if let Some(status) = &resource.status
            && let Ok(mut conditions) = self.conditions.lock()
        {
            conditions.insert(name.clone(), status.conditions.clone());
        }
        let status = resource.status.take();
        resource.metadata = ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([(
                LABEL_CAMPAIGN.to_string(),
                label_value(campaign),
            )])),
            owner_references: self.owner(campaign)?.map(|o| vec![o]),
            ..ObjectMeta::default()
        };
        let apply = PatchParams::apply(MANAGER).force();
        let what = format!("writing Experiment {name}");
        let body = serde_json::to_vec(&resource).map_err(|e| MemoryError::Corrupt {
            what: what.clone(),
            message: e.to_string(),
        })?;
        if self.applied.get(&name) != Some(&body) {
            self.apply_main(&name, &resource, &what)?;
            self.applied.insert(name.clone(), body);
        }
        let status_patch = json!({
            "apiVersion": Experiment::api_version(&()),
            "kind": Experiment::kind(&()),
            "status": status,
        });
        let status_apply = |store: &Self| {
            let patch = Patch::Apply(&status_patch);
            store.request("writing an Experiment's status", true, || {
                store.experiments.patch_status(&name, &apply, &patch)
            })
        };
        match status_apply(self) {
            // Deleted behind our back since the main resource was last applied: create it
            // again, as a save always has.
            Err(kube::Error::Api(status)) if status.code == 404 => {
                self.apply_main(&name, &resource, &what)?;
                status_apply(self).map_err(cluster(what))?;
            }
            other => {
                other.map_err(cluster(what))?;
            }
        }
        let highest = self.highest_id.entry(campaign.to_string()).or_default();
        *highest = (*highest).max(record.id);
        Ok(())
    }

    fn load(&self, campaign: &str) -> Result<Loaded> {
        let selector = format!("{LABEL_CAMPAIGN}={}", label_value(campaign));
        let mut loaded = Loaded::default();
        let mut resources = Vec::new();
        // Page by page: a campaign of thousands of Experiments is never one response.
        let mut params = ListParams::default().labels(&selector).limit(LIST_PAGE);
        loop {
            let page = self
                .request("listing Experiments", false, || self.stored.list(&params))
                .map_err(cluster(format!(
                    "listing the Experiments of Campaign {campaign}"
                )))?;
            for object in page.items {
                match serde_json::to_value(&object).and_then(serde_json::from_value::<Experiment>) {
                    Ok(resource) => resources.push(resource),
                    Err(error) => match stored_id(&object) {
                        // Its id stays taken and its record untouched.
                        Some(id) => loaded.quarantined.push(Quarantined {
                            id,
                            reason: format!(
                                "Experiment {}: this operator version cannot read it: {error}",
                                object.name_any()
                            ),
                        }),
                        None => tracing::warn!(
                            experiment = %object.name_any(),
                            %error,
                            "an Experiment without a readable id cannot be read and is skipped"
                        ),
                    },
                }
            }
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        if let Ok(mut conditions) = self.conditions.lock() {
            for resource in &resources {
                if let Some(status) = &resource.status {
                    conditions.insert(resource.name_any(), status.conditions.clone());
                }
            }
        }
        for resource in resources.iter().filter(|r| r.spec.campaign == campaign) {
            match experiment::from_resource(resource) {
                Ok(record) => loaded.experiments.push(record),
                Err(message) => loaded.quarantined.push(Quarantined {
                    id: resource.spec.id,
                    reason: format!("Experiment {}: {message}", resource.name_any()),
                }),
            }
        }
        loaded.experiments.sort_by_key(|r| r.id);
        Ok(loaded)
    }

    fn next_experiment_id(&self, campaign: &str) -> Result<ExperimentId> {
        if let Some(highest) = self.highest_id.get(campaign) {
            return Ok(highest + 1);
        }
        let loaded = self.load(campaign)?;
        let highest = loaded
            .experiments
            .iter()
            .map(|e| e.id)
            .chain(loaded.quarantined.iter().map(|q| q.id))
            .max()
            .unwrap_or(0);
        Ok(highest + 1)
    }

    /// Only the LLM tokens are kept: the rest of the usage is counted from the Experiments.
    fn add_usage(&mut self, campaign: &str, delta: &Usage) -> Result<Usage> {
        let total = self
            .usage(campaign)?
            .llm_tokens
            .saturating_add(delta.llm_tokens);
        self.merge_status(campaign, json!({ "llmTokens": total }))?;
        self.llm_tokens.insert(campaign.to_string(), total);
        Ok(Usage {
            llm_tokens: total,
            ..Usage::default()
        })
    }

    fn usage(&self, campaign: &str) -> Result<Usage> {
        let llm_tokens = match self.llm_tokens.get(campaign) {
            Some(tokens) => *tokens,
            None => self
                .campaign(campaign)?
                .and_then(|c| c.status)
                .map_or(0, |s| s.llm_tokens),
        };
        Ok(Usage {
            llm_tokens,
            ..Usage::default()
        })
    }

    fn save_agent_stats(&mut self, campaign: &str, json: &str) -> Result<()> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| MemoryError::Corrupt {
                what: "agent statistics".into(),
                message: e.to_string(),
            })?;
        self.merge_status(campaign, json!({ "agents": value }))
    }

    fn agent_stats(&self, campaign: &str) -> Result<Option<String>> {
        Ok(self
            .campaign(campaign)?
            .and_then(|c| c.status)
            .and_then(|s| s.agents)
            .map(|v| v.to_string()))
    }
}
