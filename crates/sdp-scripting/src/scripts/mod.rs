//! The processing scripts shipped with the platform, the seed's scripts on this API. Each runs as
//! `sdp script <name> <pb_id>` with the configuration database from `SDP_CONFIG_HOST`/`SDP_CONFIG_PORT`.

use std::time::Duration;

use futures::future::BoxFuture;

use serde_json::json;

use crate::claim::{Claim, Outcome, ScriptError};

use params::count_parameter;

mod params;
mod testdask;
mod testdeploy;
mod vis_receive;

pub use vis_receive::{receive_addresses, receive_hosts};

/// The scripts `sdp script` runs, as the script definitions name them.
pub const NAMES: &[&str] = &["testdask", "vis_receive", "testdeploy", "teststate", "test_batch"];

/// Runs script `name` on `pb_id` as [`crate::run`] does.
pub fn run<'a>(name: &'a str, pb_id: &'a str) -> BoxFuture<'a, Result<Outcome, ScriptError>> {
    // Boxed: a future's body is compiled in every crate that polls it; boxed here, once, in this crate.
    Box::pin(claim_and_run(name, pb_id))
}

async fn claim_and_run(name: &str, pb_id: &str) -> Result<Outcome, ScriptError> {
    if !NAMES.contains(&name) {
        return Err(ScriptError::UnknownScript { name: name.to_string(), known: NAMES.join(", ") });
    }
    crate::claim::run(pb_id, async |claim| match name {
        "testdask" => testdask::run(claim).await,
        "vis_receive" => vis_receive::run(claim).await,
        "testdeploy" => testdeploy::run(claim).await,
        "teststate" => teststate(claim).await,
        _ => test_batch(claim).await,
    })
    .await
}

/// Sleeps `duration`, or returns early with the release.
async fn sleep_unless_released(claim: &Claim, duration: Duration) -> Result<(), ScriptError> {
    tokio::select! {
        _ = tokio::time::sleep(duration) => Ok(()),
        release = claim.until_released() => Err(ScriptError::Released(release?)),
    }
}

/// The original's error-propagation test: publishes the state a subarray would, then, after `duration`
/// seconds (default 180), reports `"state": "error"`.
async fn teststate(claim: &Claim) -> Result<Outcome, ScriptError> {
    let state = |state: &str| {
        json!({"state": state, "subarray": "ON-test", "obsState": "SCANNING-test",
               "receiveAddresses": {"1": {"1": ["0.0.0.0", 1024]}}})
    };
    claim.update_state(state(sdp_config::BlockState::Executing.as_str())).await?;
    let seconds = count_parameter(claim, "duration", 180, 86_400)?;
    sleep_unless_released(claim, Duration::from_secs(seconds)).await?;
    claim.update_state(state("error")).await?;
    tracing::info!("state set to error");
    Ok(Outcome::Finished)
}

/// A batch script that finishes by itself: `duration` seconds (default 5) of work, its progress recorded
/// each second.
async fn test_batch(claim: &Claim) -> Result<Outcome, ScriptError> {
    let seconds = count_parameter(claim, "duration", 5, 86_400)?;
    for done in 0..seconds {
        claim.update_state(json!({"progress": format!("{done}/{seconds}")})).await?;
        sleep_unless_released(claim, Duration::from_secs(1)).await?;
    }
    claim.update_state(json!({"progress": format!("{seconds}/{seconds}")})).await?;
    Ok(Outcome::Finished)
}
