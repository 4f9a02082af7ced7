//! Retries: one capped exponential backoff, with a named policy per kind of failure, so that every daemon
//! waits alike and says so alike.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How long to wait after consecutive failures: `initial`, doubled after each, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub name: &'static str,
    pub initial: Duration,
    pub max: Duration,
}

impl Policy {
    /// A read or write of the configuration database, or a watch on it, that failed (it restarts or moves).
    pub const DATABASE: Policy =
        Policy { name: "database", initial: Duration::from_millis(500), max: Duration::from_secs(10) };
    /// A Kubernetes watch that failed (API server away, a CRD not installed yet).
    pub const KUBERNETES_WATCH: Policy =
        Policy { name: "kubernetes-watch", initial: Duration::from_secs(1), max: Duration::from_secs(60) };
    /// A helm operation on one release that failed (a bad chart, the cluster refusing): retried per release.
    pub const HELM_RELEASE: Policy =
        Policy { name: "helm-release", initial: Duration::from_secs(1), max: Duration::from_secs(300) };
    /// Waiting for or holding the lead of a replicated daemon, after an error.
    pub const LEADERSHIP: Policy =
        Policy { name: "leadership", initial: Duration::from_secs(2), max: Duration::from_secs(30) };

    /// The same policy with another ceiling.
    pub const fn with_max(self, max: Duration) -> Policy {
        Policy { max, ..self }
    }

    /// The wait after `failures` consecutive failures (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }
}

/// The consecutive failures of one thing retried under a policy.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: Policy,
    failures: u32,
}

impl Backoff {
    pub fn new(policy: Policy) -> Backoff {
        Backoff { policy, failures: 0 }
    }

    /// Counts a failure; returns how long to wait before the next try.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.policy.delay(self.failures)
    }

    /// A success: the next failure waits the initial delay again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Counts a failure, logs `error` about `what`, and gives the wait the policy asks for.
    pub fn wait_after(&mut self, what: &str, error: &dyn Display) -> tokio::time::Sleep {
        let delay = self.failed();
        tracing::warn!(%error, policy = self.policy.name, failures = self.failures, retry_in = ?delay, "{what} failed; retrying");
        tokio::time::sleep(delay)
    }
}

/// Runs `op` until it succeeds, waiting between failures as `policy` says and logging each with `what`.
pub async fn retry<T, E, F, Fut>(policy: Policy, what: &str, mut op: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(policy);
    loop {
        match op().await {
            Ok(value) => return value,
            Err(error) => backoff.wait_after(what, &error).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_and_starts_over_after_a_success() {
        let policy = Policy { name: "t", initial: Duration::from_millis(100), max: Duration::from_millis(700) };
        let mut backoff = Backoff::new(policy);
        let waits: Vec<u128> = (0..5).map(|_| backoff.failed().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 700, 700]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_millis(100));
        assert_eq!(Policy::HELM_RELEASE.with_max(Duration::from_secs(5)).delay(40), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn retries_until_it_succeeds() {
        let quick = Policy { name: "quick", initial: Duration::from_millis(1), max: Duration::from_millis(2) };
        let mut calls = 0;
        let value = retry(quick, "a flaky read", || {
            calls += 1;
            let outcome = if calls < 3 { Err("not yet") } else { Ok(calls) };
            async move { outcome }
        })
        .await;
        assert_eq!(value, 3);
    }
}
