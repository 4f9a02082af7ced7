//! `testdask`: deploys Dask (a scheduler and two workers, the seed's values, or `n_workers`), waits until it is
//! ready, then asks the scheduler over Dask's own protocol ([`crate::dask`]) who it is, until it has as many
//! workers as were asked for (up to two minutes), and publishes where it is and what it said. The original
//! then summed a few numbers on it through Dask's Python client; this script computes nothing (a Dask client
//! in Python does, in the tests that need it). Realtime blocks then idle until released; batch blocks finish.
//!
//! Without a cluster the Helm deployer only renders the chart: no scheduler runs, so there is nobody to ask,
//! and the state says so (`check`). With a cluster the scheduler must answer: otherwise the block fails, with
//! the reason.

use std::time::Duration;

use serde_json::json;

use sdp_config::{DeploymentArgs, Status};

use crate::claim::idle_or_finish;
use crate::claim::{Claim, Outcome, ScriptError};
use crate::dask;
use crate::scripts::params::{count_parameter, namespace, object};

/// How long the scheduler has, once its pods run, to answer with every worker registered.
const WORKERS_LIMIT: Duration = Duration::from_secs(120);

pub async fn run(claim: &Claim) -> Result<Outcome, ScriptError> {
    let workers = count_parameter(claim, "n_workers", 2, 256)?;
    // The seed's entry as it wrote it: `stable/dask` is the bundled dask (the Helm deployer's repositories).
    let values = json!({"jupyter.enabled": "false", "worker.replicas": workers, "scheduler.serviceType": "ClusterIP"});
    let engine = DeploymentArgs::Helm { chart: "stable/dask".into(), values: object(values) };
    let deploy_id = claim.deploy("dask", &engine).await?;
    let state = claim.wait_ready(&deploy_id).await?;
    let host = format!("{deploy_id}-scheduler.{}", namespace());
    let scheduler = format!("tcp://{host}:8786");
    let deployment = sdp_config::deployment::status_of(Some(&state));
    let published = |check: String| {
        json!({
            "scheduler": scheduler,
            "dashboard": format!("http://{host}:8787"),
            "deployment": deployment.map(Status::as_str),
            "workers_requested": workers,
            "check": check,
        })
    };
    if deployment == Some(Status::Rendered) {
        let check = "none: the chart was only rendered (no cluster), so no scheduler runs to ask";
        claim.update_state(json!({"dask": published(check.into())})).await?;
        tracing::info!(%scheduler, "Dask rendered, not running: nothing to ask");
        return idle_or_finish(claim).await;
    }
    claim
        .update_state(json!({"dask": published(format!("asking the scheduler until it has {workers} workers"))}))
        .await?;
    let identity = tokio::select! {
        identity = dask::wait_for_workers(&scheduler, workers as usize, WORKERS_LIMIT) => identity,
        release = claim.until_released() => return Err(ScriptError::Released(release?)),
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(e) => {
            claim.update_state(json!({"dask": published(format!("failed: {e}"))})).await?;
            return Err(e.into());
        }
    };
    let mut dask = published(format!("the scheduler answered with {} workers", identity.workers.len()));
    dask["scheduler_id"] = json!(identity.id);
    dask["workers"] = json!(identity.workers.len());
    dask["worker_addresses"] = json!(identity.workers.keys().collect::<Vec<_>>());
    dask["worker_threads"] =
        identity.workers.iter().filter_map(|(address, w)| Some((address.clone(), json!(w.nthreads?)))).collect();
    claim.update_state(json!({"dask": dask})).await?;
    tracing::info!(%scheduler, id = identity.id, workers = identity.workers.len(),
        "the Dask scheduler answered; this script computes nothing on it");
    idle_or_finish(claim).await
}
