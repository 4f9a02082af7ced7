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
            let what = format!("the lead of {component}");
            let lead = Ownership::take(config, &paths::leader(component), ttl, None, &what).await?;
            let lead = lead.expect("taking without a required key always ends in ownership");
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
