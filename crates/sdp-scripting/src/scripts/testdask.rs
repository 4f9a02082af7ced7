//! `testdask`: deploys Dask (a scheduler and two workers, the seed's values), waits until it is ready and
//! publishes where it is. The original then summed a few numbers on it through Dask's Python client; this
//! platform has no Dask client, so the script computes nothing and says so. Realtime blocks then idle until
//! released; batch blocks finish.

use serde_json::json;

use crate::scripts::{count_parameter, idle_or_finish, namespace};
use crate::{Claim, Engine, Outcome, ScriptError};

pub async fn run(claim: &Claim) -> Result<Outcome, ScriptError> {
    let workers = count_parameter(claim, "n_workers", 2, 256)?;
    let engine = Engine::Helm {
        chart: "dask".into(),
        values: json!({"jupyter.enabled": "false", "worker.replicas": workers, "scheduler.serviceType": "ClusterIP"}),
    };
    let deploy_id = claim.deploy("dask", &engine).await?;
    let state = claim.wait_ready(&deploy_id).await?;
    let host = format!("{deploy_id}-scheduler.{}", namespace());
    claim
        .update_state(json!({"dask": {
            "scheduler": format!("tcp://{host}:8786"),
            "dashboard": format!("http://{host}:8787"),
            "workers": workers,
            "deployment": state.get("status"),
        }}))
        .await?;
    tracing::info!(scheduler = %host, "Dask is ready; this script computes nothing on it (the platform has no Dask client)");
    idle_or_finish(claim).await
}
