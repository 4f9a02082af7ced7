//! A processing script's claim on its block, and its life around its work ([`run`]).

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::readiness::{readiness, Readiness};
use sdp_config::deployment;
use sdp_config::keys::paths;
use sdp_config::{BlockState, Config, DeploymentArgs, DeploymentState, Ownership, ProcessingBlock, LEASE_TTL};

/// How a processing block stopped being this script's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// `/pb/<id>` was deleted.
    Deleted,
    /// The owner entry no longer names this process (its lease expired or was revoked).
    OwnershipLost,
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Release::Deleted => "the processing block was deleted",
            Release::OwnershipLost => "this process no longer owns the processing block",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error(transparent)]
    Config(#[from] sdp_config::Error),
    #[error("processing block {0} does not exist: create it first (sdpcfg process <type>:<script>:<version>)")]
    NoSuchBlock(String),
    #[error("{0}")]
    Released(Release),
    #[error("deployment {id} failed: {error}")]
    DeploymentFailed { id: String, error: String },
    #[error(transparent)]
    Dask(#[from] crate::dask::DaskError),
    #[error("invalid parameters: {0}")]
    Parameters(String),
    #[error("no processing script {name:?}: the platform has {known}")]
    UnknownScript { name: String, known: String },
}

/// A processing block this process owns: the owner entry lives on a lease renewed in the background.
pub struct Claim {
    config: Config,
    pb: ProcessingBlock,
    ownership: Ownership,
    /// What this script deployed and has not removed.
    deployed: Mutex<Vec<String>>,
}

impl Claim {
    /// Takes `pb_id`: writes `/pb/<pb_id>/owner` (this process's command, host name and PID) on a lease. While
    /// another process owns it (an earlier run whose lease has not expired yet), waits.
    pub async fn take(config: &Config, pb_id: &str) -> Result<Claim, ScriptError> {
        let what = format!("processing block {pb_id}");
        let owner = paths::pb_owner(pb_id);
        let Some(ownership) = Ownership::take(config, &owner, LEASE_TTL, Some(&paths::pb(pb_id)), &what).await? else {
            return Err(ScriptError::NoSuchBlock(pb_id.to_string()));
        };
        // Deleted since it was taken: nothing to work on.
        let Some(pb) = config.txn(|t| async move { t.get_processing_block(pb_id).await }).await? else {
            let _ = ownership.resign().await;
            return Err(ScriptError::NoSuchBlock(pb_id.to_string()));
        };
        Ok(Claim { config: config.clone(), pb, ownership, deployed: Mutex::new(Vec::new()) })
    }

    pub fn pb(&self) -> &ProcessingBlock {
        &self.pb
    }

    pub fn pb_id(&self) -> &str {
        &self.pb.pb_id
    }

    pub fn parameters(&self) -> &Value {
        &self.pb.parameters
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Merges `fields` into `/pb/<pb_id>/state` (a null removes a field), while the block exists.
    pub async fn update_state(&self, fields: Value) -> Result<(), ScriptError> {
        self.merge_state(fields, false).await
    }

    /// Merges the fields of how the script ended into the block's state, unless the script set a state other
    /// than `executing` itself.
    async fn end_state(&self, fields: Value) -> Result<(), ScriptError> {
        self.merge_state(fields, true).await
    }

    async fn merge_state(&self, fields: Value, keep_own_word: bool) -> Result<(), ScriptError> {
        let fields = fields.as_object().cloned().unwrap_or_default();
        let pb_id = self.pb_id();
        self.config
            .txn(|t| {
                let fields = &fields;
                async move {
                    if t.get(&paths::pb(pb_id)).await?.is_none() {
                        return Ok(());
                    }
                    if keep_own_word {
                        let state = t.get_json::<Value>(&paths::pb_state(pb_id)).await?;
                        if matches!(BlockState::of(state.as_ref()), Some(BlockState::Other(_))) {
                            return Ok(());
                        }
                    }
                    t.merge_state(&paths::pb_state(pb_id), fields).await
                }
            })
            .await?;
        Ok(())
    }

    /// Publishes receive addresses (per scan type) where the subarray device reads them.
    pub async fn set_receive_addresses(&self, addresses: Value) -> Result<(), ScriptError> {
        self.update_state(json!({"receiveAddresses": addresses})).await
    }

    /// Deploys an execution engine as `<pb_id>-<name>` and lists it in the block's state; returns the
    /// deployment ID. Deploying the same again changes nothing (a restarted script finds its engine as it left
    /// it).
    pub async fn deploy(&self, name: &str, engine: &DeploymentArgs) -> Result<String, ScriptError> {
        let deploy_id = deployment::engine_deployment_id(self.pb_id(), name);
        let deployment = engine.entry(&deploy_id);
        deployment.validate()?;
        let pb_id = self.pb_id();
        self.config
            .txn(|t| {
                let deployment = &deployment;
                async move {
                    if t.get_deployment(&deployment.deploy_id).await?.as_ref() != Some(deployment) {
                        t.put_json(&paths::deploy(&deployment.deploy_id), deployment).await?;
                    }
                    list_in_state(&t, pb_id, &deployment.deploy_id, true).await
                }
            })
            .await?;
        let mut deployed = self.deployed.lock().expect("not poisoned");
        if !deployed.contains(&deploy_id) {
            deployed.push(deploy_id.clone());
        }
        tracing::info!(deploy_id, "deployment requested");
        Ok(deploy_id)
    }

    /// Removes a deployment this script made (its deployer uninstalls or stops it).
    pub async fn remove(&self, deploy_id: &str) -> Result<(), ScriptError> {
        let pb_id = self.pb_id();
        self.config
            .txn(|t| async move {
                t.delete(&paths::deploy(deploy_id), false, true).await?;
                list_in_state(&t, pb_id, deploy_id, false).await
            })
            .await?;
        self.deployed.lock().expect("not poisoned").retain(|d| d != deploy_id);
        tracing::info!(deploy_id, "deployment removed");
        Ok(())
    }

    /// Waits until `deploy_id` is ready ([`readiness`]); returns its state. Fails if it cannot become ready or
    /// the block is released meanwhile.
    pub async fn wait_ready(&self, deploy_id: &str) -> Result<Value, ScriptError> {
        let pb_id = self.pb_id();
        let mut watcher = self.config.watcher().with_timeout(Duration::from_secs(30));
        let mut last_reason = String::new();
        let waiting = async {
            loop {
                let (released, state) = watcher
                    .txn(|t| async move {
                        let released = released_by(&t, pb_id).await?;
                        Ok((released, t.get_deployment_state(deploy_id).await?))
                    })
                    .await?;
                if let Some(release) = released {
                    return Err(ScriptError::Released(release));
                }
                match readiness(state.as_ref().map(DeploymentState::read).as_ref()) {
                    Readiness::Ready => {
                        tracing::info!(deploy_id, "deployment ready");
                        return Ok(state.unwrap_or_default());
                    }
                    Readiness::Failed(error) => {
                        return Err(ScriptError::DeploymentFailed { id: deploy_id.to_string(), error })
                    }
                    Readiness::Waiting(reason) => {
                        if reason != last_reason {
                            tracing::info!(deploy_id, reason, "waiting for the deployment");
                            last_reason = reason;
                        }
                    }
                }
            }
        };
        tokio::select! {
            ready = waiting => ready,
            _ = self.ownership.lost() => Err(ScriptError::Released(self.why_lost().await)),
        }
    }

    /// Waits until the block is deleted or this process no longer owns it.
    pub async fn until_released(&self) -> Result<Release, ScriptError> {
        let pb_id = self.pb_id();
        let mut watcher = self.config.watcher().with_timeout(Duration::from_secs(30));
        let released = async {
            loop {
                if let Some(release) = watcher.txn(|t| async move { released_by(&t, pb_id).await }).await? {
                    return Ok::<_, ScriptError>(release);
                }
            }
        };
        tokio::select! {
            release = released => release,
            _ = self.ownership.lost() => Ok(self.why_lost().await),
        }
    }

    /// Why the ownership was lost: deleting a block deletes its owner entry too, which says so first.
    async fn why_lost(&self) -> Release {
        let pb_id = self.pb_id();
        match self.config.txn(|t| async move { released_by(&t, pb_id).await }).await {
            Ok(Some(release)) => release,
            _ => Release::OwnershipLost,
        }
    }

    /// Ends the claim: removes every deployment this script made, records how it ended (`state` finished, or
    /// failed with the error; nothing when it was released or stopped, or when the script set a state of its own
    /// such as the original teststate's `error`) and lets go of the owner entry.
    pub async fn finish(self, outcome: &Result<Outcome, ScriptError>) {
        let deployed = self.deployed.lock().expect("not poisoned").clone();
        for deploy_id in deployed.iter().rev() {
            if let Err(e) = self.remove(deploy_id).await {
                tracing::error!(deploy_id, error = %e, "cannot remove a deployment");
            }
        }
        let fields = match outcome {
            Ok(Outcome::Finished) => Some(BlockState::Finished.fields()),
            Ok(Outcome::Released(_) | Outcome::Stopped) | Err(ScriptError::Released(_)) => None,
            Err(e) => Some(BlockState::failed(e)),
        };
        if let Some(fields) = fields {
            if let Err(e) = self.end_state(fields).await {
                tracing::error!(error = %e, "cannot record how the script ended");
            }
        }
        if let Err(e) = self.ownership.resign().await {
            tracing::warn!(error = %e, "cannot revoke the owner lease; the owner entry goes when it expires");
        }
    }
}

/// Claims `pb_id` on the configuration database the environment names (`SDP_CONFIG_HOST`, `SDP_CONFIG_PORT`,
/// as the processing controller sets them), marks it RUNNING, runs `work` on it until it finishes, fails, is
/// released or the process gets SIGTERM or Ctrl-C, then removes what it deployed, records how it ended
/// (FINISHED, or FAILED with the error) and lets go of the block.
pub async fn run<F>(pb_id: &str, work: F) -> Result<Outcome, ScriptError>
where
    F: AsyncFnOnce(&Claim) -> Result<Outcome, ScriptError>,
{
    let mut stop = std::pin::pin!(sdp_daemon::shutdown_signal());
    let config = sdp_config::Config::from_env().await?;
    let claim = tokio::select! {
        claim = Claim::take(&config, pb_id) => claim?,
        _ = &mut stop => return Ok(Outcome::Stopped),
    };
    claim.update_state(BlockState::Executing.fields()).await?;
    let outcome = tokio::select! {
        outcome = work(&claim) => match outcome {
            Err(ScriptError::Released(release)) => Ok(Outcome::Released(release)),
            outcome => outcome,
        },
        _ = &mut stop => Ok(Outcome::Stopped),
    };
    match &outcome {
        Ok(outcome) => tracing::info!(?outcome, "script done"),
        Err(e) => tracing::error!(error = %e, "script failed"),
    }
    claim.finish(&outcome).await;
    outcome
}

/// What a script does once its work is done: a realtime block idles until released; a batch block is
/// finished.
pub async fn idle_or_finish(claim: &Claim) -> Result<Outcome, ScriptError> {
    if claim.pb().workflow.kind == "batch" {
        return Ok(Outcome::Finished);
    }
    tracing::info!("done; idling until the processing block is released");
    Ok(Outcome::Released(claim.until_released().await?))
}

/// How a script's work ended, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its work is done (batch): FINISHED.
    Finished,
    /// The block was deleted or taken away.
    Released(Release),
    /// SIGTERM or Ctrl-C: its deployer stops it.
    Stopped,
}

/// Adds `deploy_id` to the block state's `deployments` list, or takes it out; writes only on a change, and
/// never creates the state to take something out.
async fn list_in_state(
    t: &sdp_config::Txn,
    pb_id: &str,
    deploy_id: &str,
    listed: bool,
) -> Result<(), sdp_config::Error> {
    let state = t.get_processing_block_state(pb_id).await?;
    if state.is_none() && !listed {
        return Ok(());
    }
    let before: Vec<Value> =
        state.as_ref().and_then(|s| s.get("deployments")).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut after = before.clone();
    if !listed {
        after.retain(|d| d != deploy_id);
    } else if !after.iter().any(|d| d == deploy_id) {
        after.push(json!(deploy_id));
    }
    if after != before {
        let fields = Map::from_iter([("deployments".to_string(), Value::Array(after))]);
        t.merge_state(&paths::pb_state(pb_id), &fields).await?;
    }
    Ok(())
}

pub(crate) async fn released_by(t: &sdp_config::Txn, pb_id: &str) -> Result<Option<Release>, sdp_config::Error> {
    if t.get(&paths::pb(pb_id)).await?.is_none() {
        return Ok(Some(Release::Deleted));
    }
    Ok((!t.is_processing_block_owner(pb_id).await?).then_some(Release::OwnershipLost))
}
