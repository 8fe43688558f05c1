//! The Kubernetes body of the engine (`archlab operator`): Campaign and Experiment resources are
//! its memory, pods its trainers. It decides nothing: the engine and core decide, this module
//! moves their commands and observations between them and the API server.
//!
//! ```text
//!  Campaign watch ──reconcile──► controller ──spawn──► engine thread (actor.rs) ──Start/Stop──► body.rs ──► pods
//!                                                          ▲                                        │
//!                                                          └──── progress lines, pod endings ◄──────┘ (monitors)
//!  memory: store.rs (Experiment resources, Campaign status) · status.rs: phase and conditions
//! ```

pub mod actor;
pub mod body;
pub mod connect;
pub mod controller;
pub mod metrics;
pub mod outcome;
pub mod pod;
pub mod pod_watch;
pub mod retry;
pub mod status;
pub mod store;

use crate::api::Campaign;
use anyhow::{Context as _, Result};
use futures::StreamExt;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::{WatchStreamExt, watcher};
use kube_lease_manager::LeaseManagerBuilder;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct OperatorOptions {
    /// Watch Campaigns in this namespace only (all namespaces when absent).
    pub namespace: Option<String>,
    /// How long to wait for the API server before giving up with an error.
    pub connect_timeout: Duration,
    /// How often a trainer pod's clocks are checked between the changes its watch brings.
    pub poll: Duration,
    /// How long an ended trainer pod is kept (none: until its Experiment is deleted).
    pub finished_pod_ttl: Option<Duration>,
    /// This replica's name in Events and on the Lease (the pod name in a Deployment).
    pub instance: String,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (none: not served).
    pub metrics_address: Option<SocketAddr>,
    /// The Lease that elects the one replica running engines (none: no election, this replica
    /// always leads — for a single replica).
    pub lease: Option<LeaseOptions>,
    /// What trainer pods get when a Campaign leaves it out.
    pub trainer_defaults: crate::api::trainer::TrainerDefaults,
    /// What a Campaign may ask of the cluster (none: anything the CRD allows).
    pub policy: Option<crate::api::policy::Policy>,
}

pub struct LeaseOptions {
    pub name: String,
    pub namespace: String,
}

pub fn run(options: OperatorOptions) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(options))
}

async fn serve(options: OperatorOptions) -> Result<()> {
    let metrics = Arc::new(metrics::Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(address) = options.metrics_address {
        let (bound, _) = metrics::serve(address, metrics.clone(), ready.clone())
            .await
            .with_context(|| format!("serving metrics on {address}"))?;
        tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
    }
    let client = connect::connect(options.connect_timeout, options.namespace.as_deref()).await?;
    ready.store(true, Ordering::SeqCst);
    let campaigns: Api<Campaign> = match &options.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let leader = Arc::new(AtomicBool::new(false));
    let context = Arc::new(
        controller::Context::new(
            client.clone(),
            tokio::runtime::Handle::current(),
            Reporter {
                controller: "archlab".into(),
                instance: Some(options.instance.clone()),
            },
            options.poll,
            metrics.clone(),
            leader.clone(),
        )
        .with_trainer_defaults(options.trainer_defaults.clone())
        .with_policy(options.policy.clone())
        .with_finished_pod_ttl(options.finished_pod_ttl),
    );
    let scope = options
        .namespace
        .as_deref()
        .map_or("all namespaces".to_string(), |n| format!("namespace {n}"));
    let Some(lease) = &options.lease else {
        eprintln!("archlab operator: watching Campaigns in {scope}");
        leader.store(true, Ordering::SeqCst);
        metrics.set_leader(true);
        tokio::select! {
            _ = run_controller(campaigns, context.clone()) => {}
            _ = shutdown_signal() => {}
        }
        context.stop_all();
        return Ok(());
    };
    let manager = LeaseManagerBuilder::new(client, &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&options.instance)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await
        .with_context(|| format!("setting up the Lease {}/{}", lease.namespace, lease.name))?;
    let (mut leadership, lease_task) = manager.watch().await;
    eprintln!(
        "archlab operator: {} waits for the Lease {}/{} to watch Campaigns in {scope}",
        options.instance, lease.namespace, lease.name
    );
    loop {
        // A standby replica waits, ready, until it holds the lease.
        let acquired = tokio::select! {
            acquired = leadership.wait_for(|held| *held) => acquired.is_ok(),
            _ = shutdown_signal() => false,
        };
        if !acquired {
            break;
        }
        eprintln!(
            "archlab operator: {} leads; engines start",
            options.instance
        );
        leader.store(true, Ordering::SeqCst);
        metrics.set_leader(true);
        let lost = tokio::select! {
            _ = run_controller(campaigns.clone(), context.clone()) => false,
            _ = leadership.wait_for(|held| !*held) => true,
            _ = shutdown_signal() => false,
        };
        // Fence first: no engine writes or creates anything once the lease is gone.
        leader.store(false, Ordering::SeqCst);
        metrics.set_leader(false);
        context.stop_all();
        if !lost {
            break;
        }
        eprintln!(
            "archlab operator: {} lost the lease; engines stopped",
            options.instance
        );
    }
    // Closing the channel releases the lease for the next replica.
    drop(leadership);
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
    Ok(())
}

async fn run_controller(campaigns: Api<Campaign>, context: Arc<controller::Context>) {
    // The controller reconciles what exists; deletions it never sees, so a watch of its own
    // stops a deleted Campaign's engine. Metadata only: every Campaign decodes as that.
    let metadata: Api<PartialObjectMeta<Campaign>> = match campaigns.namespace() {
        Some(namespace) => Api::namespaced(context.client.clone(), namespace),
        None => Api::all(context.client.clone()),
    };
    let deletions = watcher(metadata, watcher::Config::default())
        .default_backoff()
        .for_each(|event| {
            if let Ok(watcher::Event::Delete(campaign)) = event {
                context.campaign_deleted(&campaign.metadata);
            }
            futures::future::ready(())
        });
    // Untyped, so one Campaign this version cannot decode is skipped (and reported) by its own
    // reconcile instead of failing the list every Campaign comes from.
    let resource = ApiResource::erase::<Campaign>(&());
    let stored: Api<DynamicObject> = match campaigns.namespace() {
        Some(namespace) => Api::namespaced_with(context.client.clone(), namespace, &resource),
        None => Api::all_with(context.client.clone(), &resource),
    };
    let reconciles = Controller::new_with(stored, watcher::Config::default(), resource)
        .run(
            controller::reconcile_stored,
            controller::error_policy,
            context.clone(),
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile");
            }
        });
    futures::future::join(reconciles, deletions).await;
}

/// Ctrl-C or SIGTERM (how Kubernetes stops a pod).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
