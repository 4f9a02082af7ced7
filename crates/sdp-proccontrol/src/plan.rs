//! What the controller decides, a pure function of what the database holds: [`plan`].

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use sdp_config::deployment::{belongs_to, script_deployment_id, script_deployment_of, status_of};
use sdp_config::{BlockState, Deployment, DeploymentArgs, ProcessRequest, ProcessingBlock, Status, Workflow};

/// The chart deploying a processing script.
pub const SCRIPT_CHART: &str = "workflow";
/// The component name of the leadership entry (`/controller/processing`).
pub const LEADER: &str = "processing";
/// etcd's client port, which scripts assume when not told otherwise.
const DEFAULT_CONFIG_PORT: u16 = 2379;

/// The repository of the platform's image, which runs every shipped script (`sdp script <name> <pb_id>`).
pub const SCRIPT_IMAGE: &str = "ska-sdp";

/// The umbrella chart's `appVersion`, the tag of the platform's images (one place for it: the chart).
pub fn app_version() -> &'static str {
    const CHART: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/ska-sdp/Chart.yaml"));
    CHART
        .lines()
        .find_map(|line| line.strip_prefix("appVersion:"))
        .map(|v| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
        .expect("charts/ska-sdp/Chart.yaml has an appVersion")
}

/// The platform's image with the umbrella chart's appVersion: `ska-sdp:<appVersion>`.
pub fn default_script_image() -> String {
    format!("{SCRIPT_IMAGE}:{}", app_version())
}

pub use sdp_config::ScriptDefinition;

/// The script definitions the platform ships (the seeds' scripts), which the controller writes into
/// `/script/<id>` where they are missing: the platform's image runs them on Kubernetes (`sdp script <name>
/// <pb_id>`, its entrypoint being `sdp`), and this `sdp` does on one machine.
pub fn builtin_scripts() -> Vec<ScriptDefinition> {
    #[derive(Deserialize)]
    struct Builtin {
        kind: String,
        name: String,
        version: String,
    }
    let builtins: Vec<Builtin> =
        serde_json::from_str(include_str!("scripts.json")).expect("the built-in script list is valid JSON");
    builtins
        .into_iter()
        .map(|b| ScriptDefinition {
            image: Some(default_script_image()),
            args: vec!["script".into(), b.name.clone()],
            command: vec![sdp_config::script::PLATFORM_PROGRAM.into(), "script".into(), b.name.clone()],
            kind: b.kind,
            name: b.name,
            version: b.version,
        })
        .collect()
}

/// The definitions `/script/<id>` holds, by ID: each parsed, or what is wrong with it.
pub type Scripts = BTreeMap<String, Result<ScriptDefinition, String>>;

/// `definitions` as if written under their own IDs.
pub fn scripts_of(definitions: impl IntoIterator<Item = ScriptDefinition>) -> Scripts {
    definitions.into_iter().map(|d| (d.id(), Ok(d))).collect()
}

/// How processing scripts are deployed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptRunner {
    /// The `workflow` chart with the script definition's image (on a cluster). `tls_secret` names the Secret,
    /// in the scripts' namespace, that holds their client certificate for a database on TLS
    /// (`configDb.tlsSecret`).
    Helm { tls_secret: Option<String> },
    /// A local process `sdp script <name> <pb_id>` (`sdp up`): the process deployer knows the program and
    /// passes the database settings.
    Process,
}

/// Settings passed to every script deployment of the `workflow` chart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerSettings {
    /// How processing scripts reach the configuration database (`env.SDP_CONFIG_HOST`).
    pub config_host: String,
    /// Its port (`env.SDP_CONFIG_PORT`, passed when it is not etcd's default, 2379).
    pub config_port: u16,
    /// Namespace the scripts deploy into (`env.SDP_HELM_NAMESPACE`).
    pub helm_namespace: String,
    pub runner: ScriptRunner,
}

/// What the controller reads from the database.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Processing blocks by ID; malformed entries as the parse error.
    pub processing_blocks: BTreeMap<String, Result<ProcessingBlock, String>>,
    /// Processing block states by ID.
    pub states: BTreeMap<String, Value>,
    pub deployments: BTreeSet<String>,
    /// The script deployments' states, by processing block ID.
    pub script_states: BTreeMap<String, Value>,
    /// The processing script definitions (`/script/<id>`).
    pub scripts: Scripts,
    /// Blocks that have an owner entry (a script holds them).
    pub owned: BTreeSet<String>,
    /// Blocks that are gone but left entries below `/pb/<pb_id>/`: whether an owner entry is among them.
    pub leftovers: BTreeMap<String, Leftover>,
}

/// What a deleted processing block left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leftover {
    pub state: bool,
    pub owner: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    CreateDeployment(Deployment),
    DeleteDeployment(String),
    /// Merge these fields into `/pb/<pb_id>/state`.
    UpdateState {
        pb_id: String,
        fields: Map<String, Value>,
    },
    /// Remove `/pb/<pb_id>/state` of a deleted block.
    DeleteState(String),
}

/// The one definition of the script a block names (with its ID), or why there is none to run.
fn find_script<'a>(scripts: &'a Scripts, w: &Workflow) -> Result<(&'a str, &'a ScriptDefinition), String> {
    let reference = sdp_config::script::reference_of(&w.kind, &w.id, &w.version);
    let found: Vec<(&str, &ScriptDefinition)> =
        scripts.iter().filter_map(|(id, d)| d.as_ref().ok().filter(|d| d.runs(w)).map(|d| (id.as_str(), d))).collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => {
            // A definition that cannot be read may be the one meant.
            let unreadable: Vec<&str> = scripts.values().filter_map(|d| d.as_ref().err().map(String::as_str)).collect();
            let id = sdp_config::script::id_of(&w.kind, &w.id, &w.version);
            let mut error = format!(
                "no processing script {reference} is defined: add its definition as /script/{id} (sdpcfg create)"
            );
            if !unreadable.is_empty() {
                error.push_str(&format!("; definitions that cannot be read: {}", unreadable.join("; ")));
            }
            Err(error)
        }
        many => Err(format!(
            "processing script {reference} is defined more than once: {}; delete all but one",
            many.iter().map(|(id, _)| format!("/script/{id}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

fn state_update(snapshot: &Snapshot, pb_id: &str, fields: Value) -> Option<Action> {
    let fields = fields.as_object().cloned().unwrap_or_default();
    let current = snapshot.states.get(pb_id);
    let unchanged = fields.iter().all(|(k, v)| current.and_then(|c| c.get(k)) == Some(v));
    (!unchanged).then(|| Action::UpdateState { pb_id: pb_id.to_string(), fields })
}

/// The `state` of a block whose script is deployed, from the block's state and its script deployment's: the
/// script reports how it ends itself; when its deployment ended while the block still says `executing`, the
/// script could not say so, and the controller does. A state someone else set to anything else (the original's
/// `error`, say) is theirs to keep.
fn script_progress(pb_id: &str, snapshot: &Snapshot, deploy_id: &str) -> Option<Value> {
    let state = snapshot.states.get(pb_id);
    match BlockState::of(state) {
        None => Some(json!({"state": BlockState::Executing.as_str(), "deployments": [deploy_id]})),
        Some(BlockState::Executing) => {
            let script = snapshot.script_states.get(pb_id);
            match status_of(script)? {
                Status::Finished => Some(BlockState::Finished.fields()),
                Status::Failed => {
                    let error = script.and_then(|s| s.get("error")).and_then(Value::as_str).unwrap_or("unknown error");
                    Some(BlockState::failed(format!("processing script ended: {error}")))
                }
                _ => None,
            }
        }
        Some(_) => None,
    }
}

fn has_controller_state(snapshot: &Snapshot, pb_id: &str) -> bool {
    BlockState::of(snapshot.states.get(pb_id)).is_some()
}

/// Whether a block's script deployment has ended (its process exited), so nothing will clean up after it.
fn script_ended(snapshot: &Snapshot, pb_id: &str) -> bool {
    status_of(snapshot.script_states.get(pb_id)).is_some_and(Status::ended)
}

/// How many processing blocks are in each `state` of `/pb/<id>/state` (`none` before the controller wrote one),
/// and how many a script claims (`/pb/<id>/owner`): what the controller reports as metrics.
pub fn block_counts(snapshot: &Snapshot) -> (BTreeMap<String, i64>, i64) {
    let mut by_state = BTreeMap::new();
    for pb_id in snapshot.processing_blocks.keys() {
        let state = BlockState::of(snapshot.states.get(pb_id));
        *by_state.entry(state.as_ref().map_or("none", BlockState::as_str).to_string()).or_insert(0) += 1;
    }
    let claimed = snapshot.owned.iter().filter(|pb_id| snapshot.processing_blocks.contains_key(*pb_id)).count();
    (by_state, claimed as i64)
}

/// What to do, given what the database holds.
pub fn plan(snapshot: &Snapshot, settings: &ControllerSettings) -> Vec<Action> {
    let mut actions = Vec::new();
    for (pb_id, pb) in &snapshot.processing_blocks {
        let deploy_id = script_deployment_id(pb_id);
        let update = match pb {
            Err(error) => {
                state_update(snapshot, pb_id, BlockState::failed(format!("processing block is not valid: {error}")))
            }
            Ok(pb) => match find_script(&snapshot.scripts, &pb.workflow)
                .and_then(|(id, script)| script_deployment(&deploy_id, pb_id, id, script, settings))
            {
                // A block running already keeps going whatever happens to its definition.
                Err(error) if !snapshot.deployments.contains(&deploy_id) => {
                    state_update(snapshot, pb_id, BlockState::failed(error))
                }
                _ if snapshot.deployments.contains(&deploy_id) && !has_controller_state(snapshot, pb_id) => {
                    // The script deployment and the block's `state` are written together, and deleting a
                    // block deletes its state: this deployment is a previous block's of the same ID, deleted
                    // and created again before this controller saw it go. Its deployments go first.
                    let engines = snapshot.deployments.iter().filter(|d| belongs_to(d, pb_id));
                    actions.extend(engines.map(|d| Action::DeleteDeployment(d.clone())));
                    None
                }
                deployment => {
                    if let (Ok(deployment), false) = (deployment, snapshot.deployments.contains(&deploy_id)) {
                        actions.push(Action::CreateDeployment(deployment));
                    }
                    // A script that ended without letting go of its engines (killed) leaves them to us.
                    if script_ended(snapshot, pb_id) && !snapshot.owned.contains(pb_id) {
                        let engines = snapshot.deployments.iter().filter(|d| **d != deploy_id && belongs_to(d, pb_id));
                        actions.extend(engines.map(|d| Action::DeleteDeployment(d.clone())));
                    }
                    script_progress(pb_id, snapshot, &deploy_id)
                        .and_then(|fields| state_update(snapshot, pb_id, fields))
                }
            },
        };
        actions.extend(update);
    }
    // Processing blocks that are gone: their script deployment names them (`<pb_id>-workflow`), and every
    // deployment starting with `<pb_id>-` belongs to them.
    let gone: BTreeSet<&str> = snapshot
        .deployments
        .iter()
        .filter_map(|d| script_deployment_of(d))
        .filter(|pb_id| !snapshot.processing_blocks.contains_key(*pb_id))
        .collect();
    for deployment in &snapshot.deployments {
        if gone.iter().any(|pb_id| belongs_to(deployment, pb_id)) {
            actions.push(Action::DeleteDeployment(deployment.clone()));
        }
    }
    // A deleted block's state goes once its script has let go: a script still winding down may yet write it.
    for (pb_id, leftover) in &snapshot.leftovers {
        if leftover.state && !leftover.owner && !snapshot.processing_blocks.contains_key(pb_id) {
            actions.push(Action::DeleteState(pb_id.clone()));
        }
    }
    actions
}

/// The deployment that runs `script` (defined as `/script/<script_id>`) on block `pb_id`, or why it cannot run
/// where this controller deploys.
fn script_deployment(
    deploy_id: &str,
    pb_id: &str,
    script_id: &str,
    script: &ScriptDefinition,
    settings: &ControllerSettings,
) -> Result<Deployment, String> {
    let args = match &settings.runner {
        ScriptRunner::Helm { tls_secret } => {
            let image = script.image.as_ref().ok_or_else(|| {
                format!(
                    "processing script {} (/script/{script_id}) names no image, so it cannot run on Kubernetes",
                    script.reference()
                )
            })?;
            let mut values = Map::new();
            values.insert("env.SDP_CONFIG_HOST".into(), json!(settings.config_host));
            if settings.config_port != DEFAULT_CONFIG_PORT {
                values.insert("env.SDP_CONFIG_PORT".into(), json!(settings.config_port.to_string()));
            }
            values.insert("env.SDP_HELM_NAMESPACE".into(), json!(settings.helm_namespace));
            values.insert("pb_id".into(), json!(pb_id));
            values.insert("wf_image".into(), json!(image));
            if !script.args.is_empty() {
                values.insert("args".into(), json!(script.args));
            }
            if let Some(secret) = tls_secret {
                values.insert("configDb.tlsSecret".into(), json!(secret));
            }
            DeploymentArgs::Helm { chart: SCRIPT_CHART.into(), values }
        }
        ScriptRunner::Process => {
            if script.command.is_empty() {
                return Err(format!(
                    "processing script {} (/script/{script_id}) names no command, so it cannot run on this machine",
                    script.reference()
                ));
            }
            DeploymentArgs::Process(ProcessRequest::Script { script: script_id.into(), pb_id: pb_id.into() })
        }
    };
    Ok(args.entry(deploy_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_image_is_the_platforms_with_the_umbrella_charts_app_version() {
        let version = app_version();
        assert!(
            version.split('.').count() == 3 && version.split('.').all(|p| p.parse::<u32>().is_ok()),
            "appVersion {version:?} is not major.minor.patch"
        );
        assert_eq!(default_script_image(), format!("ska-sdp:{version}"));
        assert!(!include_str!("scripts.json").contains("\"image\""), "the shipped scripts name no image of their own");
    }
}
