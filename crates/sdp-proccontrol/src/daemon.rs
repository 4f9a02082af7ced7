//! The controller's loop: lead, read a snapshot, apply the plan in the same transaction, wait for a change.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use sdp_config::deployment::script_deployment_of;
use sdp_config::keys::paths;
use sdp_config::keys::validate_id;
use sdp_config::{Config, Error, ProcessingBlock, Txn};
use sdp_daemon::{Refusals, Stoppable};

use crate::plan::{
    block_counts, builtin_scripts, plan, Action, ControllerSettings, ScriptDefinition, Snapshot, LEADER,
};

/// etcd refuses transactions of more than 128 operations or compares (`--max-txn-ops`); an action writes and
/// reads (a compare at commit) at most two keys.
const MAX_ACTIONS_PER_TRANSACTION: usize = 40;
/// Passes woken by changes start at least this far apart: a burst of changes (a subarray's scans, the state a
/// script writes as it runs) is planned once, not once per change, and a block waits at most this long more.
const MIN_PASS_INTERVAL: Duration = Duration::from_millis(50);

pub struct Controller {
    pub config: Config,
    /// Written into `/script/<id>` where missing when this replica starts leading.
    pub builtin_scripts: Vec<ScriptDefinition>,
    pub settings: ControllerSettings,
    /// Lease TTL of the leadership entry, seconds.
    pub lease_ttl: i64,
    pub metrics: Metrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BlockState {
    /// The `state` of `/pb/<id>/state`: executing, finished, failed, ... (`none`: not written yet).
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionKind {
    /// create_deployment, delete_deployment, update_state or delete_state
    pub action: String,
}

/// The controller's Prometheus metrics.
#[derive(Clone, Default)]
pub struct Metrics {
    pub reconciles: Counter,
    pub actions: Family<ActionKind, Counter>,
    pub errors: Counter,
    /// Processing blocks by state, as of the last pass.
    pub blocks: Family<BlockState, Gauge>,
    /// Processing blocks a script has claimed, as of the last pass.
    pub claimed: Gauge,
}

impl Metrics {
    /// Metrics registered under `sdp_processing_` in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("sdp_processing");
        r.register("reconciles", "passes over the processing blocks", m.reconciles.clone());
        r.register("actions", "changes made, by kind", m.actions.clone());
        r.register("errors", "passes that failed and were retried", m.errors.clone());
        r.register("blocks", "processing blocks by state", m.blocks.clone());
        r.register("blocks_claimed", "processing blocks a script has claimed", m.claimed.clone());
        m
    }
}

/// The processing blocks refused, by ID, with the reason.
type Refused = BTreeMap<String, String>;

/// Blocks, their states and owners in one read per level (`/pb/<id>`, `/pb/<id>/<entry>`), then the
/// deployments and their states the same way. Entries whose ID cannot name a key (`..`, unicode; written by
/// some other client) are left out, since no state or deletion can be written for them: the blocks among them
/// are returned as refused, with the blocks that are not valid.
async fn read_snapshot(t: &Txn) -> Result<(Snapshot, Refused), Error> {
    let mut snapshot = Snapshot::default();
    let mut refused = Refused::new();
    let mut entries = Vec::new();
    for (path, value) in t.list_values(&format!("{}/", paths::PB), 1).await? {
        let Some((id, sub)) = paths::entry_of(paths::PB, &path) else { continue };
        if let Err(e) = validate_id("processing block", id) {
            refused.insert(id.to_string(), e.to_string());
            continue;
        }
        match sub {
            None => {
                let pb = ProcessingBlock::read(id, &value).map_err(|e| e.to_string());
                if let Err(e) = &pb {
                    refused.insert(id.to_string(), e.clone());
                }
                snapshot.processing_blocks.insert(id.to_string(), pb);
            }
            Some(entry) => entries.push((id.to_string(), entry.to_string(), value)),
        }
    }
    for (pb_id, entry, value) in entries {
        if snapshot.processing_blocks.contains_key(&pb_id) {
            match entry.as_str() {
                // A state that is not JSON is left out, as if absent: the controller writes a fresh one.
                "state" => {
                    if let Ok(state) = serde_json::from_str(&value) {
                        snapshot.states.insert(pb_id, state);
                    }
                }
                "owner" => {
                    snapshot.owned.insert(pb_id);
                }
                _ => {}
            }
            continue;
        }
        // Entries of a block that is gone.
        let leftover = snapshot.leftovers.entry(pb_id).or_default();
        match entry.as_str() {
            "state" => leftover.state = true,
            "owner" => leftover.owner = true,
            _ => {}
        }
    }
    snapshot.scripts = t.list_scripts().await?.into_iter().collect();
    // The Helm deployer reports entries that are not valid.
    for (deploy_id, listed) in t.list_deployment_entries(true).await? {
        if validate_id("deployment", &deploy_id).is_err() {
            continue;
        }
        if listed.entry.is_some() {
            snapshot.deployments.insert(deploy_id.clone());
        }
        if let (Some(pb_id), Some(state)) = (script_deployment_of(&deploy_id), listed.state) {
            snapshot.script_states.insert(pb_id.to_string(), state);
        }
    }
    Ok((snapshot, refused))
}

async fn apply(t: &Txn, actions: &[Action]) -> Result<(), Error> {
    for action in actions {
        match action {
            Action::CreateDeployment(d) => t.create_deployment(d).await?,
            // The entry and its state, each by name: a recursive delete would list (and compare) every level
            // below.
            Action::DeleteDeployment(id) => {
                t.delete(&paths::deploy(id), false, false).await?;
                t.delete(&paths::deploy_state(id), false, false).await?;
            }
            Action::UpdateState { pb_id, fields } => t.merge_state(&paths::pb_state(pb_id), fields).await?,
            Action::DeleteState(pb_id) => t.delete(&paths::pb_state(pb_id), false, false).await.map(|_| ())?,
        }
    }
    Ok(())
}

/// A running controller; [`Running::stop`] ends it.
pub struct Running(Stoppable);

impl Running {
    /// Ends the controller, resigning its lead (a standby takes over at once).
    pub async fn stop(self) {
        self.0.stop(STOP_LIMIT, "the processing controller").await;
    }
}

/// How long a stopping controller may take to resign its lead before it is dropped.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// Starts the platform's controller: the built-in scripts, the platform's lease, metrics in `registry`.
pub fn start(settings: ControllerSettings, config: Config, registry: &mut Registry) -> Running {
    tracing::info!(runner = ?settings.runner, "processing scripts");
    let controller = Controller {
        config,
        builtin_scripts: builtin_scripts(),
        settings,
        lease_ttl: sdp_config::LEASE_TTL,
        metrics: Metrics::register(registry),
    };
    let running = Running(Stoppable::spawn(|stop| run_until(controller, stop)));
    tracing::info!("processing controller started");
    running
}

/// Runs the controller until the future is dropped: whenever this replica leads, it works. Errors are logged
/// and retried; it never gives up.
pub async fn run(controller: Controller) {
    run_until(controller, std::future::pending()).await
}

/// [`run`] until `stop` resolves; then resigns the lead if it holds it, and returns.
pub async fn run_until(controller: Controller, stop: impl Future<Output = ()>) {
    sdp_config::run_while_leading(&controller.config, LEADER, controller.lease_ttl, stop, || async {
        let worked = work(&controller).await;
        if worked.is_err() {
            controller.metrics.errors.inc();
        }
        worked
    })
    .await
}

/// Reconciles on every change while leading. Each pass checks the leadership entry in its own transaction, so
/// a replica that has just lost the lead writes nothing.
async fn work(c: &Controller) -> Result<(), Error> {
    let leader = paths::leader(LEADER);
    let seeded = c
        .config
        .txn(|t| async move {
            let mut written = Vec::new();
            for definition in &c.builtin_scripts {
                if t.create_script_if_absent(definition).await? {
                    written.push(definition.id());
                }
            }
            Ok(written)
        })
        .await?;
    if !seeded.is_empty() {
        tracing::info!(scripts = ?seeded, "built-in processing script definitions written");
    }
    let mut watcher = c.config.watcher().with_timeout(Duration::from_secs(30)).with_min_interval(MIN_PASS_INTERVAL);
    let mut reported = Refusals::default();
    loop {
        let pass = watcher
            .txn(|t| {
                let leader = &leader;
                async move {
                    if !t.is_owner_of(leader).await? {
                        return Ok(None);
                    }
                    let (snapshot, refused) = read_snapshot(&t).await?;
                    let mut actions = plan(&snapshot, &c.settings);
                    actions.truncate(MAX_ACTIONS_PER_TRANSACTION);
                    apply(&t, &actions).await?;
                    Ok(Some((actions, refused, block_counts(&snapshot))))
                }
            })
            .await?;
        match pass {
            None => return Err(Error::Invalid(format!("{leader} no longer names this process"))),
            Some((actions, refused, (by_state, claimed))) => {
                // A state no block is in any more goes from the output.
                c.metrics.blocks.clear();
                for (state, count) in by_state {
                    c.metrics.blocks.get_or_create(&BlockState { state }).set(count);
                }
                c.metrics.claimed.set(claimed);
                for (pb_id, error) in reported.update(refused) {
                    tracing::warn!(pb_id, error, "processing block refused");
                }
                // What this pass wrote does not wake the watcher (it follows changes after the commit), and some
                // plans take two passes (a stale deployment goes, then the new one comes) or more (more actions
                // than one transaction takes): after any change, the next pass runs at once.
                if !actions.is_empty() {
                    watcher.run_next_at_once();
                }
                c.metrics.reconciles.inc();
                for action in actions {
                    let kind = match &action {
                        Action::CreateDeployment(d) => {
                            tracing::info!(deploy_id = d.deploy_id, "deployment created");
                            "create_deployment"
                        }
                        Action::DeleteDeployment(id) => {
                            tracing::info!(deploy_id = id, "deployment deleted");
                            "delete_deployment"
                        }
                        Action::UpdateState { pb_id, fields } => {
                            tracing::info!(pb_id, ?fields, "processing block state");
                            "update_state"
                        }
                        Action::DeleteState(pb_id) => {
                            tracing::info!(pb_id, "deleted processing block's state removed");
                            "delete_state"
                        }
                    };
                    c.metrics.actions.get_or_create(&ActionKind { action: kind.into() }).inc();
                }
            }
        }
    }
}
