//! Leadership: of several replicas of a daemon on one database, one works at a time. The leader owns the
//! component's key ([`keys::paths::leader`]) as an [`Ownership`]: when the leader dies or loses the database,
//! its lease expires, the entry goes, and a standby takes over.

use std::future::Future;

use sdp_daemon::{Backoff, Policy};

use crate::config::Config;
use crate::error::Error;
use crate::keys::paths;
use crate::ownership::Ownership;

/// Lease TTL of owner entries, seconds: how long a standby waits to take over after the leader died, or a
/// restarted script to claim its block again. Every daemon of the platform leads, and every script claims, with
/// it; tests pass shorter ones.
pub const LEASE_TTL: i64 = 10;

/// Runs `work` whenever this replica leads `component`: it waits for the lead, runs `work` until the lead
/// is lost (then drops it) or `work` ends, and starts over. Errors are logged and retried under
/// [`Policy::LEADERSHIP`]. Returns once `stop` resolves, having resigned a lead it held (`work` dropped), so
/// that a standby takes over at once rather than after the lease's TTL.
pub async fn run_while_leading<F, Fut>(
    config: &Config,
    component: &str,
    ttl: i64,
    stop: impl Future<Output = ()>,
    mut work: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut stop = std::pin::pin!(stop);
    let mut backoff = Backoff::new(Policy::LEADERSHIP);
    loop {
        let mut led = false;
        let outcome = async {
            let (what, path) = (format!("the lead of {component}"), paths::leader(component));
            let lead = tokio::select! {
                taken = Ownership::take(config, &path, ttl, None, &what) => taken?,
                () = &mut stop => return Ok(Led::Stopped),
            };
            let lead = lead.expect("taking without a required key always ends in ownership");
            led = true;
            tokio::select! {
                _ = lead.lost() => Err(Error::Invalid(format!("lost the lead of {component}"))),
                done = work() => {
                    // Ending (or failing) while leading: hand over at once.
                    let _ = lead.resign().await;
                    done.map(|()| Led::Done)
                }
                () = &mut stop => {
                    if let Err(e) = lead.resign().await {
                        tracing::warn!(component, error = %e, "stopping without resigning the lead: a standby takes over once its lease ends");
                    }
                    Ok(Led::Stopped)
                }
            }
        }
        .await;
        // Holding the lead was a success: a lead lost after it was held waits the initial delay again.
        if led {
            backoff.succeeded();
        }
        // Work that ended well ended while leading: the reset above covers it.
        match outcome {
            Ok(Led::Stopped) => return,
            Ok(Led::Done) => {}
            Err(e) => tokio::select! {
                () = backoff.wait_after(&format!("leading {component}"), &e) => {}
                () = &mut stop => return,
            },
        }
    }
}

/// How one turn of [`run_while_leading`] ended.
enum Led {
    Done,
    Stopped,
}
