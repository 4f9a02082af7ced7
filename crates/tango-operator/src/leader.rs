//! Leader election on a `coordination.k8s.io` Lease, so that of several replicas exactly one reconciles. The
//! lease is taken when free or expired and renewed every third of its duration; a replica that fails to renew
//! stops (as controller-runtime's managers do) and its pod restarts as a follower.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;
use tracing::{info, warn};

pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

/// Whether a lease held by someone else has run out.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(MicroTime(renewed)) = &spec.renew_time else { return true };
    let seconds = spec.lease_duration_seconds.unwrap_or(15);
    *renewed + SignedDuration::from_secs(i64::from(seconds)) < now
}

impl LeaderElection {
    pub fn new(client: Client, namespace: &str, name: &str, identity: String, duration: Duration) -> LeaderElection {
        LeaderElection { api: Api::namespaced(client, namespace), name: name.into(), identity, duration }
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Tries once to take or renew the lease; true when this replica holds it afterwards.
    async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let mine = current.holder_identity.as_deref() == Some(self.identity.as_str());
        if !mine && !expired(&current, now) {
            return Ok(false);
        }
        let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { current.acquire_time.clone() } else { None };
        lease.spec = Some(self.spec(now, acquired, transitions));
        // The resourceVersion in `lease` makes this a compare-and-swap: a concurrent taker gets 409.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Waits until this replica leads.
    pub async fn acquire(&self) {
        info!(lease = %self.name, identity = %self.identity, "waiting for leadership");
        loop {
            match self.try_hold().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => warn!(%error, "leader election"),
            }
            tokio::time::sleep(self.duration / 5).await;
        }
        info!(lease = %self.name, identity = %self.identity, "leading");
    }

    /// Renews the lease; returns when it could not be renewed before it would expire.
    pub async fn hold(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_hold().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(error) => warn!(%error, "could not renew the leader lease"),
            }
            if last_renewed.elapsed() >= self.duration {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_expire_after_their_duration() {
        let now = Timestamp::now();
        let renewed = |ago: i64| LeaseSpec {
            renew_time: Some(MicroTime(now - SignedDuration::from_secs(ago))),
            lease_duration_seconds: Some(15),
            ..Default::default()
        };
        assert!(!expired(&renewed(10), now));
        assert!(expired(&renewed(16), now));
        assert!(expired(&LeaseSpec::default(), now));
    }
}
