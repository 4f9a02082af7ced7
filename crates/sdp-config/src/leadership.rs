//! Leadership: of several replicas of a daemon on one database, one works at a time. The leader holds the
//! owner entry at the component's key ([`keys::paths::leader`]), attached to its lease: when the leader dies
//! or loses the database, the lease expires, the entry goes, and a standby takes over.

use std::future::Future;

use sdp_ops::{Backoff, Policy};

use crate::keys::paths;
use crate::{Config, Error, Lease, Owner};

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
            let took = watcher
                .txn(|t| {
                    let (path, lease) = (&path, &lease);
                    async move {
                        match t.create_json(path, &Owner::this_process(), Some(lease)).await {
                            Ok(()) => Ok(true),
                            Err(Error::Collision(_)) => Ok(false),
                            Err(e) => Err(e),
                        }
                    }
                })
                .await?;
            if took {
                tracing::info!(component, "leading");
                return Ok(Leadership { config: config.clone(), path, lease });
            }
            if !std::mem::replace(&mut announced, true) {
                tracing::info!(component, "another replica leads; standing by");
            }
        }
    }

    /// Resolves when the lead is lost: the lease expired or was revoked, or the entry was deleted.
    pub async fn lost(&self) {
        let entry_gone = async {
            let mut watcher = self.config.watcher();
            loop {
                let path = &self.path;
                match watcher.txn(|t| async move { t.get(path).await }).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return,
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
        let outcome = async {
            let lead = Leadership::acquire(config, component, ttl).await?;
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
        match outcome {
            Ok(()) => backoff.succeeded(),
            Err(e) => backoff.wait_after(&format!("leading {component}"), &e).await,
        }
    }
}
