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
pub mod outcome;
pub mod pod;
pub mod status;
pub mod store;

use crate::api::Campaign;
use anyhow::{Context as _, Result};
use futures::StreamExt;
use kube::Api;
use kube::runtime::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use std::sync::Arc;
use std::time::Duration;

pub struct OperatorOptions {
    /// Watch Campaigns in this namespace only (all namespaces when absent).
    pub namespace: Option<String>,
    /// How long to wait for the API server before giving up with an error.
    pub connect_timeout: Duration,
    /// How often trainer pods are read.
    pub poll: Duration,
    /// This replica's name in Events (the pod name in a Deployment).
    pub instance: String,
}

pub fn run(options: OperatorOptions) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(options))
}

async fn serve(options: OperatorOptions) -> Result<()> {
    let client = connect::connect(options.connect_timeout).await?;
    let campaigns: Api<Campaign> = match &options.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let context = Arc::new(controller::Context::new(
        client,
        tokio::runtime::Handle::current(),
        Reporter {
            controller: "archlab".into(),
            instance: Some(options.instance.clone()),
        },
        options.poll,
    ));
    eprintln!(
        "archlab operator: watching Campaigns in {}",
        options
            .namespace
            .as_deref()
            .map_or("all namespaces".to_string(), |n| format!("namespace {n}"))
    );
    Controller::new(campaigns, watcher::Config::default())
        .shutdown_on_signal()
        .run(
            controller::reconcile,
            controller::error_policy,
            context.clone(),
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile");
            }
        })
        .await;
    // Engines stop; pods keep running for the next operator to adopt.
    context.stop_all();
    Ok(())
}
