//! Reaching the API server, with an answer within a bounded time: a missing kubeconfig, an
//! unreachable server, refused credentials or missing CRDs each become one clear line.

use crate::api::Campaign;
use anyhow::{Result, anyhow};
use kube::api::{ListParams, PartialObjectMeta};
use kube::{Api, Client, Config};
use std::time::Duration;

/// A client that has talked to the API server and found the CRDs (listing Campaigns only in
/// `namespace` when given, so that a namespaced Role suffices).
pub async fn connect(timeout: Duration, namespace: Option<&str>) -> Result<Client> {
    let config = tokio::time::timeout(timeout, Config::infer())
        .await
        .map_err(|_| anyhow!("no Kubernetes configuration found within {} s", timeout.as_secs()))?
        .map_err(|e| {
            anyhow!(
                "no Kubernetes cluster configured (KUBECONFIG, ~/.kube/config or a service account in a pod): {e}"
            )
        })?;
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| {
        anyhow!("cannot build a client for the Kubernetes API server at {url}: {e}")
    })?;
    let version = tokio::time::timeout(timeout, client.apiserver_version())
        .await
        .map_err(|_| {
            anyhow!(
                "cannot reach the Kubernetes API server at {url}: no answer within {} s",
                timeout.as_secs()
            )
        })?
        .map_err(|e| {
            anyhow!(
                "cannot reach the Kubernetes API server at {url}: {}",
                causes(&e)
            )
        })?;
    tracing::info!(server = %url, version = %version.git_version, "connected");
    // Metadata only: a Campaign this version cannot decode must not stop the operator here.
    let campaigns: Api<PartialObjectMeta<Campaign>> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    match tokio::time::timeout(timeout, campaigns.list(&ListParams::default().limit(1))).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(kube::Error::Api(status))) if status.code == 404 => Err(anyhow!(
            "the archlab CRDs are not installed in the cluster at {url}: run `archlab crd | kubectl apply -f -`"
        )),
        Ok(Err(e)) => Err(anyhow!("listing Campaigns at {url}: {}", causes(&e))),
        Err(_) => Err(anyhow!(
            "listing Campaigns at {url}: no answer within {} s",
            timeout.as_secs()
        )),
    }
}

/// An error with its causes, `a: b: c` (kube's own message alone says little: "client error").
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
