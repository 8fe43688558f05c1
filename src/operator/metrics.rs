//! Prometheus metrics on `/metrics`, and `/healthz` and `/readyz`. Campaign figures are read
//! from memory after each engine step (so a restarted operator reports the same numbers);
//! reconciles and pod outcomes are counted as they happen, with controller-runtime's names.

use crate::agents::llm::client::RoleStats;
use crate::core::budget::{Budget, Usage};
use crate::core::lifecycle::{Experiment, Outcome, Phase};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Metrics {
    registry: Registry,
    experiments: IntGaugeVec,
    attempts: IntGaugeVec,
    revisions: IntGaugeVec,
    qa_stops: IntGaugeVec,
    outcomes: IntGaugeVec,
    infrastructure_reruns: IntGaugeVec,
    compute_seconds: GaugeVec,
    best_fitness: GaugeVec,
    verified: IntGaugeVec,
    llm_requests: IntGaugeVec,
    llm_errors: IntGaugeVec,
    llm_tokens: IntGaugeVec,
    llm_latency_seconds: GaugeVec,
    running: IntGaugeVec,
    budget_spent: GaugeVec,
    pod_endings: IntCounterVec,
    reconciles: IntCounterVec,
    reconcile_errors: IntCounterVec,
    undecodable: IntCounterVec,
    reconcile_time: HistogramVec,
    leader: IntGauge,
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric =
        IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    metric
}

fn float_gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let metric =
        GaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric =
        IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    metric
}

impl Default for Metrics {
    /// The metric set. Names and labels are constants, so registering cannot fail at run time;
    /// a mistake in them fails every test that builds the set.
    fn default() -> Self {
        let registry = Registry::new();
        let campaign = &["namespace", "campaign"];
        let reconcile_time = HistogramVec::new(
            HistogramOpts::new(
                "archlab_reconcile_time_seconds",
                "Time spent in one reconcile.",
            )
            .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            &["controller"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        registry
            .register(Box::new(reconcile_time.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        let leader = IntGauge::new(
            "archlab_leader",
            "1 while this replica holds the lease and runs engines.",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        registry
            .register(Box::new(leader.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        Metrics {
            experiments: gauge(
                &registry,
                "archlab_experiments",
                "Experiments in memory by phase.",
                &["namespace", "campaign", "phase"],
            ),
            attempts: gauge(
                &registry,
                "archlab_attempts",
                "Attempts (training runs of a program) in memory.",
                campaign,
            ),
            revisions: gauge(
                &registry,
                "archlab_revisions",
                "Attempts after an experiment's first: the Engineer's repairs.",
                campaign,
            ),
            qa_stops: gauge(
                &registry,
                "archlab_qa_stops",
                "Attempts quality assurance stopped, by rule.",
                &["namespace", "campaign", "rule"],
            ),
            outcomes: gauge(
                &registry,
                "archlab_attempt_outcomes",
                "Ended attempts by outcome.",
                &["namespace", "campaign", "outcome"],
            ),
            infrastructure_reruns: gauge(
                &registry,
                "archlab_infrastructure_reruns",
                "Trainer runs lost to the infrastructure and rerun.",
                campaign,
            ),
            compute_seconds: float_gauge(
                &registry,
                "archlab_compute_seconds",
                "Trainer seconds over all attempts.",
                campaign,
            ),
            best_fitness: float_gauge(
                &registry,
                "archlab_best_fitness",
                "Best fitness among succeeded experiments.",
                campaign,
            ),
            verified: gauge(
                &registry,
                "archlab_verified_discoveries",
                "Programs verified to beat the baseline.",
                campaign,
            ),
            llm_requests: gauge(
                &registry,
                "archlab_llm_requests",
                "LLM requests by role.",
                &["namespace", "campaign", "role"],
            ),
            llm_errors: gauge(
                &registry,
                "archlab_llm_errors",
                "Failed LLM requests by role.",
                &["namespace", "campaign", "role"],
            ),
            llm_tokens: gauge(
                &registry,
                "archlab_llm_tokens",
                "LLM tokens (prompt and completion) by role.",
                &["namespace", "campaign", "role"],
            ),
            llm_latency_seconds: float_gauge(
                &registry,
                "archlab_llm_latency_seconds",
                "Seconds spent waiting for the LLM, by role.",
                &["namespace", "campaign", "role"],
            ),
            running: gauge(
                &registry,
                "archlab_campaign_running",
                "1 while the campaign runs (proposes or trains), 0 once it ended.",
                campaign,
            ),
            budget_spent: float_gauge(
                &registry,
                "archlab_budget_spent_ratio",
                "Fraction of each set budget limit spent (1 = reached), by limit.",
                &["namespace", "campaign", "limit"],
            ),
            pod_endings: counter(
                &registry,
                "archlab_pod_outcomes_total",
                "Trainer pods ended, by class.",
                &["namespace", "campaign", "class"],
            ),
            undecodable: counter(
                &registry,
                "archlab_undecodable_objects_total",
                "Objects this version could not read (written by a newer one, or by hand) and skipped, by kind.",
                &["namespace", "kind"],
            ),
            reconciles: counter(
                &registry,
                "archlab_reconcile_total",
                "Reconciles by result.",
                &["controller", "result"],
            ),
            reconcile_errors: counter(
                &registry,
                "archlab_reconcile_errors_total",
                "Reconciles that failed.",
                &["controller"],
            ),
            reconcile_time,
            leader,
            registry,
        }
    }
}

impl Metrics {
    /// Sets a campaign's figures from memory.
    pub fn observe_campaign(
        &self,
        namespace: &str,
        campaign: &str,
        experiments: &[Experiment],
        verified: u32,
        agents: &BTreeMap<String, RoleStats>,
    ) {
        let labels = [namespace, campaign];
        for phase in [
            "proposing",
            "training",
            "revising",
            "analysing",
            "succeeded",
            "failed",
        ] {
            let count = experiments
                .iter()
                .filter(|e| phase_name(e.phase) == phase)
                .count();
            self.experiments
                .with_label_values(&[namespace, campaign, phase])
                .set(count as i64);
        }
        let attempts: usize = experiments.iter().map(|e| e.attempts.len()).sum();
        self.attempts
            .with_label_values(&labels)
            .set(attempts as i64);
        let revisions: usize = experiments
            .iter()
            .map(|e| e.attempts.len().saturating_sub(1))
            .sum();
        self.revisions
            .with_label_values(&labels)
            .set(revisions as i64);
        let mut stops: BTreeMap<String, i64> = BTreeMap::new();
        let mut outcomes: BTreeMap<&str, i64> = BTreeMap::new();
        for outcome in experiments
            .iter()
            .flat_map(|e| &e.attempts)
            .filter_map(|a| a.outcome.as_ref())
        {
            *outcomes.entry(outcome.kind()).or_default() += 1;
            if let Outcome::Stopped { verdict } = outcome
                && let Ok(value) = serde_json::to_value(verdict)
            {
                let rule = value["rule"].as_str().unwrap_or("unknown").to_string();
                *stops.entry(rule).or_default() += 1;
            }
        }
        for (rule, count) in stops {
            self.qa_stops
                .with_label_values(&[namespace, campaign, &rule])
                .set(count);
        }
        for (outcome, count) in outcomes {
            self.outcomes
                .with_label_values(&[namespace, campaign, outcome])
                .set(count);
        }
        let reruns: usize = experiments
            .iter()
            .map(|e| e.infrastructure_failures.len())
            .sum();
        self.infrastructure_reruns
            .with_label_values(&labels)
            .set(reruns as i64);
        let compute: f64 = experiments.iter().map(Experiment::compute_seconds).sum();
        self.compute_seconds.with_label_values(&labels).set(compute);
        if let Some(best) = experiments
            .iter()
            .filter(|e| e.phase == Phase::Succeeded)
            .filter_map(|e| e.fitness)
            .reduce(f64::max)
        {
            self.best_fitness.with_label_values(&labels).set(best);
        }
        self.verified
            .with_label_values(&labels)
            .set(i64::from(verified));
        for (role, stats) in agents {
            let labels = [namespace, campaign, role.as_str()];
            self.llm_requests
                .with_label_values(&labels)
                .set(stats.requests as i64);
            self.llm_errors
                .with_label_values(&labels)
                .set(stats.errors as i64);
            self.llm_tokens
                .with_label_values(&labels)
                .set(stats.tokens() as i64);
            self.llm_latency_seconds
                .with_label_values(&labels)
                .set(stats.latency_ms as f64 / 1000.0);
        }
    }

    /// Sets whether the campaign runs and how much of its budget is spent.
    pub fn observe_budget(
        &self,
        namespace: &str,
        campaign: &str,
        budget: &Budget,
        usage: &Usage,
        running: bool,
    ) {
        self.running
            .with_label_values(&[namespace, campaign])
            .set(i64::from(running));
        for (limit, fraction) in budget.spent_fractions(usage) {
            self.budget_spent
                .with_label_values(&[namespace, campaign, limit])
                .set(fraction);
        }
    }

    /// Drops a deleted campaign's series, so that dashboards and alerts forget it.
    pub fn forget_campaign(&self, namespace: &str, campaign: &str) {
        forget(&self.experiments, namespace, campaign);
        forget(&self.attempts, namespace, campaign);
        forget(&self.revisions, namespace, campaign);
        forget(&self.qa_stops, namespace, campaign);
        forget(&self.outcomes, namespace, campaign);
        forget(&self.infrastructure_reruns, namespace, campaign);
        forget(&self.verified, namespace, campaign);
        forget(&self.llm_requests, namespace, campaign);
        forget(&self.llm_errors, namespace, campaign);
        forget(&self.llm_tokens, namespace, campaign);
        forget(&self.running, namespace, campaign);
        forget(&self.compute_seconds, namespace, campaign);
        forget(&self.best_fitness, namespace, campaign);
        forget(&self.llm_latency_seconds, namespace, campaign);
        forget(&self.budget_spent, namespace, campaign);
        forget(&self.pod_endings, namespace, campaign);
    }

    /// Counts a trainer pod's ending (`class` as in Events: `TrainerSucceeded`, `TrainerEvicted`, …).
    pub fn pod_ended(&self, namespace: &str, campaign: &str, class: &str) {
        self.pod_endings
            .with_label_values(&[namespace, campaign, class])
            .inc();
    }

    /// Counts an object skipped because it could not be decoded.
    pub fn undecodable(&self, namespace: &str, kind: &str) {
        self.undecodable.with_label_values(&[namespace, kind]).inc();
    }

    pub fn reconciled(&self, seconds: f64, ok: bool) {
        let controller = "campaign";
        self.reconciles
            .with_label_values(&[controller, if ok { "success" } else { "error" }])
            .inc();
        if !ok {
            self.reconcile_errors.with_label_values(&[controller]).inc();
        }
        self.reconcile_time
            .with_label_values(&[controller])
            .observe(seconds);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Removes every series of `vec` labelled with the campaign.
fn forget<T: MetricVecBuilder>(vec: &MetricVec<T>, namespace: &str, campaign: &str) {
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: HashMap<&str, &str> = metric
                .get_label()
                .iter()
                .map(|pair| (pair.name(), pair.value()))
                .collect();
            if labels.get("namespace") == Some(&namespace)
                && labels.get("campaign") == Some(&campaign)
            {
                let _ = vec.remove(&labels);
            }
        }
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Proposing => "proposing",
        Phase::Training => "training",
        Phase::Revising => "revising",
        Phase::Analysing => "analysing",
        Phase::Succeeded => "succeeded",
        Phase::Failed => "failed",
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` (ready once `ready` is set) until the process
/// ends. Binding is checked before this returns.
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            let ready = ready.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let response =
                            respond(request.uri().path(), &metrics, ready.load(Ordering::SeqCst));
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok((bound, task))
}

fn respond(path: &str, metrics: &Metrics, ready: bool) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (StatusCode::OK, prometheus::TEXT_FORMAT, metrics.render()),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" if ready => (StatusCode::OK, "text/plain", "ready\n".to_string()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready: still connecting to the API server\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Attempt, InfrastructureFailure, Stage};
    use crate::core::qa::QaVerdict;

    #[test]
    fn campaign_figures_come_from_memory() {
        let metrics = Metrics::default();
        let mut stopped = Experiment::new(1, Stage::Exploration, None, vec![]);
        stopped.phase = Phase::Failed;
        for number in 1..=2 {
            stopped.attempts.push(Attempt {
                number,
                program: String::new(),
                outcome: Some(Outcome::Stopped {
                    verdict: QaVerdict::NotFinite { step: 3 },
                }),
                progress: Vec::new(),
                structure: None,
            });
        }
        stopped.infrastructure_failures.push(InfrastructureFailure {
            attempt: 1,
            reason: "evicted".into(),
        });
        let mut good = Experiment::new(2, Stage::Exploration, None, vec![]);
        good.phase = Phase::Succeeded;
        good.fitness = Some(0.75);
        let agents = BTreeMap::from([(
            "researcher".to_string(),
            RoleStats {
                requests: 4,
                errors: 1,
                retries: 0,
                downgrades: 0,
                prompt_tokens: 100,
                completion_tokens: 20,
                latency_ms: 1500,
            },
        )]);
        metrics.observe_campaign("lab", "quick", &[stopped, good], 1, &agents);
        metrics.pod_ended("lab", "quick", "TrainerEvicted");
        metrics.reconciled(0.01, true);
        metrics.reconciled(0.02, false);
        metrics.set_leader(true);
        let text = metrics.render();
        for line in [
            r#"archlab_experiments{campaign="quick",namespace="lab",phase="failed"} 1"#,
            r#"archlab_experiments{campaign="quick",namespace="lab",phase="succeeded"} 1"#,
            r#"archlab_attempts{campaign="quick",namespace="lab"} 2"#,
            r#"archlab_revisions{campaign="quick",namespace="lab"} 1"#,
            r#"archlab_qa_stops{campaign="quick",namespace="lab",rule="not_finite"} 2"#,
            r#"archlab_infrastructure_reruns{campaign="quick",namespace="lab"} 1"#,
            r#"archlab_best_fitness{campaign="quick",namespace="lab"} 0.75"#,
            r#"archlab_verified_discoveries{campaign="quick",namespace="lab"} 1"#,
            r#"archlab_llm_tokens{campaign="quick",namespace="lab",role="researcher"} 120"#,
            r#"archlab_llm_latency_seconds{campaign="quick",namespace="lab",role="researcher"} 1.5"#,
            r#"archlab_pod_outcomes_total{campaign="quick",class="TrainerEvicted",namespace="lab"} 1"#,
            r#"archlab_reconcile_total{controller="campaign",result="error"} 1"#,
            r#"archlab_reconcile_errors_total{controller="campaign"} 1"#,
            r#"archlab_reconcile_time_seconds_count{controller="campaign"} 2"#,
            "archlab_leader 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
    }

    #[test]
    fn budget_figures_and_a_deleted_campaigns_series_go_away() {
        let metrics = Metrics::default();
        let budget = Budget {
            max_experiments: 10,
            max_compute_hours: None,
            max_llm_tokens: Some(1000),
        };
        let usage = Usage {
            experiments: 9,
            compute_seconds: 5.0,
            llm_tokens: 250,
        };
        metrics.observe_budget("lab", "quick", &budget, &usage, true);
        metrics.observe_budget("lab", "other", &budget, &usage, false);
        metrics.pod_ended("lab", "quick", "TrainerSucceeded");
        let text = metrics.render();
        for line in [
            r#"archlab_campaign_running{campaign="quick",namespace="lab"} 1"#,
            r#"archlab_campaign_running{campaign="other",namespace="lab"} 0"#,
            r#"archlab_budget_spent_ratio{campaign="quick",limit="experiments",namespace="lab"} 0.9"#,
            r#"archlab_budget_spent_ratio{campaign="quick",limit="llm_tokens",namespace="lab"} 0.25"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
        metrics.forget_campaign("lab", "quick");
        let text = metrics.render();
        assert!(!text.contains(r#"campaign="quick""#), "{text}");
        assert!(text.contains(r#"campaign="other""#), "{text}");
    }
}
