//! One trainer pod followed through a watch, so the monitor sees every state the API server
//! records, in order. A poll sees only the states that happen to last across a look: an
//! eviction's `DisruptionTarget` mark lasts about as long as the trainer takes to exit on
//! SIGTERM, often less than a poll interval, and a missed mark turns "the cluster took the pod
//! away" into "deleted before it finished".

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// What the watch says of the pod.
#[derive(Debug)]
pub enum PodState {
    /// Its newest state.
    Present(Box<Pod>),
    /// It is gone; `last` is its final state when the deletion itself was seen (a watch
    /// restarted after the pod went only sees it missing from the new list).
    Gone { last: Option<Box<Pod>> },
}

pub struct PodWatch {
    events: BoxStream<'static, Result<watcher::Event<Pod>, watcher::Error>>,
    /// Set while a (re)list is being read: the pod, once listed.
    listing: Option<Option<Pod>>,
}

impl PodWatch {
    /// Watches the pod `name` alone (a field selector on its name); a dropped connection or a
    /// refused request is retried with the watcher's backoff, and the relist that follows says
    /// whether the pod is still there.
    pub fn new(pods: Api<Pod>, name: &str) -> PodWatch {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        PodWatch {
            events: watcher(pods, config).default_backoff().boxed(),
            listing: None,
        }
    }

    /// The pod's next state. Cancel-safe: state changes happen between awaits only.
    pub async fn next(&mut self) -> PodState {
        loop {
            let Some(event) = self.events.next().await else {
                // A watcher's stream does not end; if it ever did, the pod could not be followed.
                return PodState::Gone { last: None };
            };
            match event {
                Ok(watcher::Event::Apply(pod)) => return PodState::Present(Box::new(pod)),
                Ok(watcher::Event::Delete(pod)) => {
                    return PodState::Gone {
                        last: Some(Box::new(pod)),
                    };
                }
                Ok(watcher::Event::Init) => self.listing = Some(None),
                Ok(watcher::Event::InitApply(pod)) => self.listing = Some(Some(pod)),
                Ok(watcher::Event::InitDone) => {
                    return match self.listing.take().flatten() {
                        Some(pod) => PodState::Present(Box::new(pod)),
                        None => PodState::Gone { last: None },
                    };
                }
                Err(error) => tracing::debug!(%error, "watching a trainer pod"),
            }
        }
    }
}
