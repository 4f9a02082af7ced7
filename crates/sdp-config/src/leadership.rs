//! Leadership: of several replicas of a daemon on one database, one works at a time. The leader holds the
//! owner entry at the component's key ([`keys::paths::leader`]), attached to its lease: when the leader dies
//! or loses the database, the lease expires, the entry goes, and a standby takes over.
//!
//! An owner entry on no live lease (written without one, or on one that ended) names nobody who is alive: it
//! does not count, and a standby replaces it ([`Txn::take_owner_entry`]). Nobody can stall the lead by writing
//! the entry.

use std::future::Future;

use sdp_ops::{Backoff, Policy};

use crate::keys::paths;
use crate::{Config, Error, Lease, Owner, Txn};

/// Lease TTL of the daemons' owner entries, seconds: how long a standby waits to take over after the leader
/// died. Every daemon of the platform leads with it; tests pass shorter ones.
pub const LEASE_TTL: i64 = 10;

/// How taking an owner entry went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// There was none: it is ours.
    Free,
    /// It was on no live lease (`lease`, 0 for none): it is ours now.
    Stale { lease: i64 },
    /// A live owner holds it.
    Held,
}

impl Taken {
    /// Why a stale entry did not count, for the log.
    pub fn reason(self) -> Option<String> {
        match self {
            Taken::Stale { lease: 0 } => Some("the owner entry had no lease".into()),
            Taken::Stale { lease } => Some(format!("the owner entry's lease {lease:x} no longer exists")),
            Taken::Free | Taken::Held => None,
        }
    }
}

impl Txn {
    /// Makes this process the owner at `path`, on `lease`, unless a live owner holds it. An entry on no live
    /// lease is replaced; the commit requires it still as read, so two takers cannot both win.
    pub async fn take_owner_entry(&self, path: &str, lease: &Lease) -> Result<Taken, Error> {
        let owner = Owner::this_process();
        match self.lease_of(path).await? {
            None => {
                self.create_json(path, &owner, Some(lease)).await?;
                Ok(Taken::Free)
            }
            Some(held) if held != 0 && self.lease_alive(held).await? => Ok(Taken::Held),
            Some(held) => {
                self.replace_json_on_lease(path, &owner, lease).await?;
                Ok(Taken::Stale { lease: held })
            }
        }
    }
}

/// The lead of one component, held while this value lives.
pub struct Leadership {
    config: Config,
    path: String,
    lease: Lease,
}

impl Leadership {
    /// Waits until no other replica leads `component`, then takes the lead with a lease of `ttl` seconds.
    pub async fn acquire(config: &Config, component: &str, ttl: i64) -> Result<Leadership, Error> {
        let path = paths::leader(component);
        let lease = config.lease(ttl).await?;
        let mut watcher = config.watcher();
        let mut announced = false;
        loop {
            let taken = watcher
                .txn(|t| {
                    let (path, lease) = (&path, &lease);
                    async move { t.take_owner_entry(path, lease).await }
                })
                .await?;
            if taken == Taken::Held {
                if !std::mem::replace(&mut announced, true) {
                    tracing::info!(component, "another replica leads; standing by");
                }
                continue;
            }
            match taken.reason() {
                Some(reason) => tracing::warn!(component, reason, "took over the lead: {reason}"),
                None => tracing::info!(component, "leading"),
            }
            return Ok(Leadership { config: config.clone(), path, lease });
        }
    }

    /// Resolves when the lead is lost: the lease expired or was revoked, or the entry was deleted or rewritten.
    pub async fn lost(&self) {
        let entry_gone = async {
            let mut watcher = self.config.watcher();
            loop {
                let path = &self.path;
                match watcher.txn(|t| async move { t.lease_of(path).await }).await {
                    Ok(Some(lease)) if lease == self.lease.id() => {}
                    Ok(_) => return,
                    // The database is unreachable: the lease tells whether the lead survives it.
                    Err(_) => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            _ = self.lease.lost() => {}
            _ = entry_gone => {}
        }
    }

    /// Gives the lead up now, so that a standby takes over without waiting for the lease to expire.
    pub async fn resign(self) -> Result<(), Error> {
        self.lease.revoke().await
    }
}

/// Runs `work` whenever this replica leads `component`: it waits for the lead, runs `work` until the lead
/// is lost (then drops it) or `work` ends, and starts over. Errors are logged and retried under
/// [`Policy::LEADERSHIP`]; it never returns.
pub async fn run_while_leading<F, Fut>(config: &Config, component: &str, ttl: i64, mut work: F) -> !
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut backoff = Backoff::new(Policy::LEADERSHIP);
    loop {
        let mut led = false;
        let outcome = async {
            let lead = Leadership::acquire(config, component, ttl).await?;
            led = true;
            tokio::select! {
                _ = lead.lost() => Err(Error::Invalid(format!("lost the lead of {component}"))),
                done = work() => {
                    // Ending (or failing) while leading: hand over at once.
                    let _ = lead.resign().await;
                    done
                }
            }
        }
        .await;
        // Holding the lead was a success: a lead lost after it was held waits the initial delay again.
        if led {
            backoff.succeeded();
        }
        // Work that ended well ended while leading: the reset above covers it.
        if let Err(e) = outcome {
            backoff.wait_after(&format!("leading {component}"), &e).await;
        }
    }
}
