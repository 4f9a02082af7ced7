//! The processing controller.
//!
//! For every processing block it deploys the block's processing script: `/deploy/<pb_id>-workflow`, a Helm
//! deployment of the `workflow` chart with the values the original passes (`env.SDP_CONFIG_HOST`,
//! `env.SDP_HELM_NAMESPACE`, `pb_id`, `wf_image`), and records progress in `/pb/<pb_id>/state`. When a
//! processing block is deleted, every deployment whose ID starts with `<pb_id>-` goes too, and so does
//! `/pb/<pb_id>/state` once no script owns the block (`/pb/<pb_id>/owner` lives on the script's lease: it goes
//! when the script lets go or its lease expires).
//!
//! The decision is [`plan`], a pure function of what the database holds; [`run`] applies it in the same
//! transaction that read it, so two controllers (or one restarted midway) can never create a deployment twice.
//! Only one controller acts at a time: the holder of the lease-backed entry `/controller/processing`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use sdp_config::{Deployment, ProcessingBlock, Workflow};

/// Suffix of the script deployment the controller makes for a processing block.
pub const SCRIPT_DEPLOYMENT_SUFFIX: &str = "-workflow";
/// The chart deploying a processing script.
pub const SCRIPT_CHART: &str = "workflow";
/// The component name of the leadership entry (`/controller/processing`).
pub const LEADER: &str = "processing";

/// A processing script definition: which image runs `kind:name:version`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ScriptDefinition {
    pub kind: String,
    pub name: String,
    pub version: String,
    pub image: String,
}

/// The script definitions shipped with the platform (the seeds' scripts).
pub fn builtin_scripts() -> Vec<ScriptDefinition> {
    serde_json::from_str(include_str!("scripts.json")).expect("the built-in script list is valid JSON")
}

/// Settings passed to every script deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerSettings {
    /// How processing scripts reach the configuration database (`env.SDP_CONFIG_HOST`).
    pub config_host: String,
    /// Namespace the scripts deploy into (`env.SDP_HELM_NAMESPACE`).
    pub helm_namespace: String,
}

/// What the controller reads from the database.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Processing blocks by ID; malformed entries as the parse error.
    pub processing_blocks: BTreeMap<String, Result<ProcessingBlock, String>>,
    /// Processing block states by ID.
    pub states: BTreeMap<String, Value>,
    pub deployments: BTreeSet<String>,
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

fn find_script<'a>(scripts: &'a [ScriptDefinition], w: &Workflow) -> Option<&'a ScriptDefinition> {
    scripts.iter().find(|s| s.kind == w.kind && s.name == w.id && s.version == w.version)
}

fn state_update(snapshot: &Snapshot, pb_id: &str, fields: Value) -> Option<Action> {
    let fields = fields.as_object().cloned().unwrap_or_default();
    let current = snapshot.states.get(pb_id);
    let unchanged = fields.iter().all(|(k, v)| current.and_then(|c| c.get(k)) == Some(v));
    (!unchanged).then(|| Action::UpdateState { pb_id: pb_id.to_string(), fields })
}

/// What to do, given what the database holds.
pub fn plan(snapshot: &Snapshot, scripts: &[ScriptDefinition], settings: &ControllerSettings) -> Vec<Action> {
    let mut actions = Vec::new();
    for (pb_id, pb) in &snapshot.processing_blocks {
        let deploy_id = format!("{pb_id}{SCRIPT_DEPLOYMENT_SUFFIX}");
        let update = match pb {
            Err(error) => state_update(
                snapshot,
                pb_id,
                json!({"state": "failed", "error": format!("processing block is not valid: {error}")}),
            ),
            Ok(pb) => match find_script(scripts, &pb.workflow) {
                None => state_update(
                    snapshot,
                    pb_id,
                    json!({"state": "failed", "error": format!(
                        "no processing script {}:{}:{} is defined", pb.workflow.kind, pb.workflow.id, pb.workflow.version
                    )}),
                ),
                Some(script) => {
                    if !snapshot.deployments.contains(&deploy_id) {
                        actions.push(Action::CreateDeployment(script_deployment(&deploy_id, pb_id, script, settings)));
                    }
                    state_update(snapshot, pb_id, json!({"state": "executing", "deployments": [deploy_id]}))
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
        .filter_map(|d| d.strip_suffix(SCRIPT_DEPLOYMENT_SUFFIX))
        .filter(|pb_id| !snapshot.processing_blocks.contains_key(*pb_id))
        .collect();
    for deployment in &snapshot.deployments {
        if gone.iter().any(|pb_id| deployment.starts_with(&format!("{pb_id}-"))) {
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

fn script_deployment(
    deploy_id: &str,
    pb_id: &str,
    script: &ScriptDefinition,
    settings: &ControllerSettings,
) -> Deployment {
    Deployment {
        deploy_id: deploy_id.to_string(),
        kind: "helm".into(),
        args: json!({
            "chart": SCRIPT_CHART,
            "values": {
                "env.SDP_CONFIG_HOST": settings.config_host,
                "env.SDP_HELM_NAMESPACE": settings.helm_namespace,
                "pb_id": pb_id,
                "wf_image": script.image,
            }
        }),
    }
}

mod daemon;
pub use daemon::{run, Controller, Metrics};
