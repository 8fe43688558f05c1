//! Requests to the API server tried again when the failure may pass: the server was busy or
//! failing (429, 5xx) or the connection broke. Without this, one such answer stopped a
//! campaign's engine, which then restarted by listing every Experiment again: under load, the
//! heaviest request at the worst time. A refusal (any other 4xx) is returned at once.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Tries of one request before its error is the caller's.
pub const TRIES: u32 = 5;
/// The first wait; each next one doubles, up to `LONGEST_WAIT`.
const FIRST_WAIT: Duration = Duration::from_millis(500);
const LONGEST_WAIT: Duration = Duration::from_secs(8);

/// Whether a failed request may succeed if tried again.
pub fn transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The wait before try `next` (1 for the first retry): `FIRST_WAIT` doubled each time, at
/// most `LONGEST_WAIT`, scaled by `jitter` in [0.5, 1.5) so that replicas and engines hit by
/// the same outage do not all return at once.
pub fn backoff(next: u32, jitter: f64) -> Duration {
    let doubled = FIRST_WAIT.saturating_mul(1 << next.saturating_sub(1).min(16));
    doubled.min(LONGEST_WAIT).mul_f64(jitter.clamp(0.5, 1.5))
}

/// A number in [0.5, 1.5), different on each call (the standard library's hash keys are random).
pub fn jitter() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    0.5 + (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `request` until it succeeds, fails for good, or has been tried `TRIES` times; before
/// each retry `may_retry` is asked (a write stops retrying once the replica lost the lease).
pub async fn with_retries<T, F, Fut>(
    what: &str,
    may_retry: impl Fn() -> bool,
    mut request: F,
) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut tries = 1;
    loop {
        match request().await {
            Err(error) if transient(&error) && tries < TRIES && may_retry() => {
                let wait = backoff(tries, jitter());
                tracing::debug!(%error, what, ?wait, "the API server failed a request; trying again");
                tokio::time::sleep(wait).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn busy_and_failing_servers_are_retried_refusals_are_not() {
        for code in [429, 500, 503, 504] {
            assert!(transient(&api_error(code)), "{code}");
        }
        for code in [400, 403, 404, 409, 410, 422] {
            assert!(!transient(&api_error(code)), "{code}");
        }
    }

    #[test]
    fn waits_double_up_to_the_cap_within_the_jitter() {
        assert_eq!(backoff(1, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(2, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(4, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(5, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(40, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(1, 0.5), Duration::from_millis(250));
        assert_eq!(backoff(5, 1.49), Duration::from_secs(8).mul_f64(1.49));
        let draws: Vec<f64> = (0..200).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.5..1.5).contains(j)));
        // Spread, not one value: replicas must not return together.
        let low = draws.iter().filter(|j| **j < 1.0).count();
        assert!((40..160).contains(&low), "{low} of 200 below 1.0");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_is_tried_until_it_succeeds_or_the_tries_run_out() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let result = with_retries(
            "reading",
            || true,
            || async {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n < 2 { Err(api_error(503)) } else { Ok(n) }
            },
        )
        .await;
        assert_eq!(result.ok(), Some(2));
        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let result: Result<u32, _> = with_retries(
            "reading",
            || true,
            || async {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(api_error(500))
            },
        )
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), TRIES);
        // A write whose replica lost the lease is not tried again.
        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let result: Result<u32, _> = with_retries(
            "writing",
            || false,
            || async {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(api_error(503))
            },
        )
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
