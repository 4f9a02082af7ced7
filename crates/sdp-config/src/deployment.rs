//! The deployment contract: what a `/deploy/<id>` entry asks for, by its type, and what its deployer records in
//! `/deploy/<id>/state`.
//!
//! Every writer and reader of those entries goes through these types: an entry's `args` are built by
//! [`DeploymentArgs::entry`] and read by [`DeploymentArgs::of`]; a state is written as a [`StateUpdate`] and read
//! as a [`DeploymentState`], its `status` (and each pod's) one [`Status`], written in capitals. The entries keep
//! the original tool's layout (`{"deploy_id", "type", "args"}`).
//!
//! Deployment IDs tell which processing block a deployment belongs to: `<pb_id>-workflow` runs the block's
//! script ([`script_deployment_id`]), and `<pb_id>-<name>` are the deployments the script makes
//! ([`engine_deployment_id`]).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::entity::read_entry;
use crate::error::Error;
use crate::keys::paths;
use crate::keys::validate_id;
use crate::txn::Txn;
use serde::{Deserialize, Serialize};

/// A chart the Helm deployer installs.
pub const HELM: &str = "helm";
/// A process the process deployer runs (`sdp up`).
pub const PROCESS: &str = "process-direct";
/// Kubernetes objects as given: no deployer of this platform takes these.
pub const KUBERNETES: &str = "kubernetes-direct";
/// Every deployment type an entry may have.
pub const TYPES: [&str; 3] = [HELM, PROCESS, KUBERNETES];

const SCRIPT_SUFFIX: &str = "-workflow";

/// The deployment that runs processing block `pb_id`'s script.
pub fn script_deployment_id(pb_id: &str) -> String {
    format!("{pb_id}{SCRIPT_SUFFIX}")
}

/// A deployment that processing block `pb_id`'s script makes, named `name` by the script.
pub fn engine_deployment_id(pb_id: &str, name: &str) -> String {
    format!("{pb_id}-{name}")
}

/// The processing block whose script `deploy_id` runs, if it is a script deployment.
pub fn script_deployment_of(deploy_id: &str) -> Option<&str> {
    deploy_id.strip_suffix(SCRIPT_SUFFIX)
}

/// Whether `deploy_id` belongs to processing block `pb_id`: its script's, or one its script made.
pub fn belongs_to(deploy_id: &str, pb_id: &str) -> bool {
    deploy_id.strip_prefix(pb_id).is_some_and(|rest| rest.starts_with('-'))
}

/// `/deploy/<deploy_id>`: a request to deploy something, e.g. a Helm chart with values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub deploy_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub args: Value,
}

impl Deployment {
    pub fn validate(&self) -> Result<(), Error> {
        validate_id("deployment", &self.deploy_id)?;
        if !TYPES.contains(&self.kind.as_str()) {
            return Err(Error::Invalid(unknown_type(&self.kind)));
        }
        if !self.args.is_object() {
            return Err(Error::Invalid(format!(
                "args of deployment {} must be a JSON object of named values ({{\"chart\": \"dask\"}}), not {}",
                self.deploy_id, self.args
            )));
        }
        Ok(())
    }

    /// Reads the entry stored at `/deploy/<deploy_id>`: a deployment of a known type whose `deploy_id` is its
    /// key's.
    pub fn read(deploy_id: &str, text: &str) -> Result<Deployment, Error> {
        let deployment =
            read_entry(&paths::deploy(deploy_id), deploy_id, text, "deploy_id", |d: &Deployment| &d.deploy_id)?;
        deployment.validate()?;
        Ok(deployment)
    }
}

impl Config {
    /// [`Txn::merge_deployment_state`] in a transaction of its own, for deployers reporting outcomes: a failure
    /// is logged, not returned, since the next report supersedes it.
    pub async fn record_deployment_state(&self, deploy_id: &str, update: StateUpdate) {
        let recorded = self.txn(|t| {
            let fields = update.fields();
            async move { t.merge_deployment_state(deploy_id, fields).await }
        });
        if let Err(e) = recorded.await {
            tracing::warn!(deploy_id, error = %e, "cannot record the deployment state");
        }
    }
}

impl Txn {
    pub async fn create_deployment(&self, deployment: &Deployment) -> Result<(), Error> {
        deployment.validate()?;
        self.create_json(&paths::deploy(&deployment.deploy_id), deployment, None).await
    }

    pub async fn get_deployment(&self, deploy_id: &str) -> Result<Option<Deployment>, Error> {
        self.get(&paths::deploy(deploy_id)).await?.map(|text| Deployment::read(deploy_id, &text)).transpose()
    }

    pub async fn list_deployments(&self) -> Result<Vec<String>, Error> {
        self.list_ids(paths::DEPLOY).await
    }

    /// Deletes a deployment with its state entry.
    pub async fn delete_deployment(&self, deploy_id: &str) -> Result<(), Error> {
        self.delete(&paths::deploy(deploy_id), true, true).await.map(|_| ())
    }

    pub async fn get_deployment_state(&self, deploy_id: &str) -> Result<Option<Value>, Error> {
        self.get_json(&paths::deploy_state(deploy_id)).await
    }

    pub async fn put_deployment_state(&self, deploy_id: &str, state: &Value) -> Result<(), Error> {
        self.put_json(&paths::deploy_state(deploy_id), state).await
    }

    /// The IDs whose `/deploy/<id>/state` exists without `/deploy/<id>`.
    pub async fn orphaned_deployment_states(&self) -> Result<Vec<String>, Error> {
        let keys = self.list_keys(&format!("{}/", paths::DEPLOY), 1).await?;
        let listed: Vec<(&str, Option<&str>)> = keys.iter().filter_map(|k| paths::entry_of(paths::DEPLOY, k)).collect();
        let entries: std::collections::BTreeSet<&str> =
            listed.iter().filter(|(_, sub)| sub.is_none()).map(|(id, _)| *id).collect();
        Ok(listed
            .iter()
            .filter(|(id, sub)| *sub == Some("state") && !entries.contains(id))
            .map(|(id, _)| id.to_string())
            .collect())
    }

    /// Removes `/deploy/<id>/state` once `/deploy/<id>` is gone (deleted without its state, or while its
    /// deployer was down), so that no state describes a deployment that is not there. Returns whether it did.
    pub async fn remove_orphaned_deployment_state(&self, deploy_id: &str) -> Result<bool, Error> {
        if self.get(&paths::deploy(deploy_id)).await?.is_some() {
            return Ok(false);
        }
        Ok(!self.delete(&paths::deploy_state(deploy_id), false, false).await?.is_empty())
    }

    /// Merges `fields` into `/deploy/<id>/state` while the entry exists: a deployer reporting on a deployment
    /// that was just deleted never resurrects its state. Returns whether the entry exists.
    pub async fn merge_deployment_state(&self, deploy_id: &str, fields: &Map<String, Value>) -> Result<bool, Error> {
        if self.get(&paths::deploy(deploy_id)).await?.is_none() {
            return Ok(false);
        }
        self.merge_state(&paths::deploy_state(deploy_id), fields).await?;
        Ok(true)
    }
}

/// A `/deploy/<id>` entry as listed, with its state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listed {
    /// The entry as read, or why it is not one; `None`: a state whose entry is gone.
    pub entry: Option<Result<Deployment, String>>,
    /// `/deploy/<id>/state` when it exists and is JSON.
    pub state: Option<Value>,
}

impl Txn {
    /// Every `/deploy` entry by ID, each read as a [`Deployment`] (or why it is not one), with its state when
    /// `with_states` (reading the states also wakes a watcher on every state change).
    pub async fn list_deployment_entries(&self, with_states: bool) -> Result<BTreeMap<String, Listed>, Error> {
        let mut listed: BTreeMap<String, Listed> = BTreeMap::new();
        let below = format!("{}/", paths::DEPLOY);
        for (path, text) in self.list_values(&below, usize::from(with_states)).await? {
            match paths::entry_of(paths::DEPLOY, &path) {
                Some((id, None)) => {
                    let entry = Deployment::read(id, &text).map_err(|e| e.to_string());
                    listed.entry(id.to_string()).or_default().entry = Some(entry);
                }
                Some((id, Some("state"))) => {
                    listed.entry(id.to_string()).or_default().state = serde_json::from_str(&text).ok();
                }
                _ => {}
            }
        }
        Ok(listed)
    }
}

/// What an entry's `args` ask for, by the entry's type.
#[derive(Clone, Debug, PartialEq)]
pub enum DeploymentArgs {
    /// `helm`: a chart by name (`workflow`), `repository/name` (`stable/dask`) or `oci://` reference, and its
    /// values, nested or flat (`"env.SDP_CONFIG_HOST"`, as `--set` takes them).
    Helm { chart: String, values: Map<String, Value> },
    /// `process-direct`: something defined elsewhere, never a command.
    Process(ProcessRequest),
    /// `kubernetes-direct`: kept as written.
    Kubernetes(Map<String, Value>),
}

/// What a `process-direct` entry may ask the process deployer to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessRequest {
    /// The processing script defined as `/script/<script>`, on processing block `pb_id`.
    Script { script: String, pb_id: String },
    /// The process engine an operator registered under this name.
    Engine(String),
}

/// What an entry that carries a command, or anything else than a script or an engine, is told.
const NO_COMMANDS: &str = "process-direct entries name what to run, never a command: \
    {\"script\": <id of its /script/<id> definition>, \"pb_id\": <pb_id>} for a processing script, or \
    {\"engine\": <name>} for a process engine registered in the definitions file given to `sdp up \
    --process-engines` (SDP_PROCESS_ENGINES)";

impl DeploymentArgs {
    /// The entry's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeploymentArgs::Helm { .. } => HELM,
            DeploymentArgs::Process(_) => PROCESS,
            DeploymentArgs::Kubernetes(_) => KUBERNETES,
        }
    }

    /// The `/deploy/<deploy_id>` entry that asks for this.
    pub fn entry(&self, deploy_id: &str) -> Deployment {
        let args = match self {
            DeploymentArgs::Helm { chart, values } => json!({"chart": chart, "values": values}),
            DeploymentArgs::Process(ProcessRequest::Script { script, pb_id }) => {
                json!({"script": script, "pb_id": pb_id})
            }
            DeploymentArgs::Process(ProcessRequest::Engine(name)) => json!({"engine": name}),
            DeploymentArgs::Kubernetes(args) => Value::Object(args.clone()),
        };
        Deployment { deploy_id: deploy_id.to_string(), kind: self.kind().to_string(), args }
    }

    /// What an entry asks for, or why it asks for nothing that can be deployed. Shape only: whether the chart,
    /// script or engine exists is for its deployer to say.
    pub fn of(deployment: &Deployment) -> Result<DeploymentArgs, String> {
        DeploymentArgs::from_parts(&deployment.kind, &deployment.args)
    }

    /// As [`DeploymentArgs::of`], from an entry's type and `args`.
    pub fn from_parts(kind: &str, args: &Value) -> Result<DeploymentArgs, String> {
        let fields = fields_of(kind, args)?;
        match kind {
            HELM => helm_args(fields).map(|HelmArgs { chart, values }| DeploymentArgs::Helm { chart, values }),
            PROCESS => process_request(fields).map(DeploymentArgs::Process),
            KUBERNETES => Ok(DeploymentArgs::Kubernetes(fields.clone())),
            other => Err(unknown_type(other)),
        }
    }
}

impl Deployment {
    /// The chart and values a `helm` entry asks for, or why it asks for nothing; None for other types.
    pub fn helm_args(&self) -> Option<Result<HelmArgs, String>> {
        (self.kind == HELM).then(|| fields_of(HELM, &self.args).and_then(helm_args))
    }

    /// What a `process-direct` entry asks to run, or why it asks for nothing; None for other types.
    pub fn process_request(&self) -> Option<Result<ProcessRequest, String>> {
        (self.kind == PROCESS).then(|| fields_of(PROCESS, &self.args).and_then(process_request))
    }
}

/// What a `helm` entry asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct HelmArgs {
    pub chart: String,
    pub values: Map<String, Value>,
}

/// The named values of an entry's `args`, or why they are not.
fn fields_of<'a>(kind: &str, args: &'a Value) -> Result<&'a Map<String, Value>, String> {
    args.as_object().ok_or_else(|| match kind {
        PROCESS => format!("args is {args}: {NO_COMMANDS}"),
        _ => format!("args must be a JSON object of named values ({{\"chart\": \"dask\"}}), not {args}"),
    })
}

fn unknown_type(kind: &str) -> String {
    format!("unknown deployment type {kind:?}: expected {}", TYPES.join(", "))
}

fn helm_args(fields: &Map<String, Value>) -> Result<HelmArgs, String> {
    let chart = fields.get("chart").and_then(Value::as_str).filter(|c| chart_reference(c)).ok_or_else(|| {
        format!(
            "args.chart must be a chart name (\"workflow\"), repo/chart (\"stable/dask\") or an oci:// reference, \
             not a path: {}",
            fields.get("chart").unwrap_or(&Value::Null)
        )
    })?;
    let values = match fields.get("values") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(values)) => values.clone(),
        Some(other) => return Err(format!("args.values must be an object, not {other}")),
    };
    Ok(HelmArgs { chart: chart.to_string(), values })
}

/// Whether `chart` names a chart rather than a place on the deployer's disk: `name`, `repo/name` or
/// `oci://...`. A path (`/etc`, `../x`, `./x`) would make helm read whatever is there.
fn chart_reference(chart: &str) -> bool {
    let name = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if let Some(reference) = chart.strip_prefix("oci://") {
        return reference.split('/').all(|part| !part.is_empty() && part != ".." && part != ".");
    }
    match chart.split_once('/') {
        None => name(chart),
        Some((repo, chart)) => name(repo) && name(chart),
    }
}

fn process_request(fields: &Map<String, Value>) -> Result<ProcessRequest, String> {
    if let Some(field) = fields.keys().find(|f| !matches!(f.as_str(), "script" | "pb_id" | "engine")) {
        return Err(format!("args.{field} is not allowed: {NO_COMMANDS}"));
    }
    let text = |field: &str| match fields.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("args.{field} is {other}: expected a string")),
    };
    match (text("script")?, text("pb_id")?, text("engine")?) {
        (Some(script), Some(pb_id), None) => {
            check_name("script definition", &script).map_err(|e| format!("args.script: {e}"))?;
            validate_id("processing block", &pb_id).map_err(|e| format!("args.pb_id: {e}"))?;
            Ok(ProcessRequest::Script { script, pb_id })
        }
        (None, None, Some(name)) => {
            check_name("engine", &name)?;
            Ok(ProcessRequest::Engine(name))
        }
        _ => Err(format!("args name neither a script with its pb_id nor an engine: {NO_COMMANDS}")),
    }
}

/// Script and engine names: 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if name.is_empty() || name.len() > 64 || !name.bytes().all(valid) {
        return Err(format!("{what} name {name:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"));
    }
    Ok(())
}

/// How a deployment, one of its pods or a processing script stands: one vocabulary for every deployer, written
/// in capitals (read in any case: earlier Helm deployers wrote theirs in lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Not running yet (a pod being scheduled or pulling its image).
    Pending,
    /// Rendered to a manifest, without a cluster to install it on: as far as it goes.
    Rendered,
    /// Installed by helm; its pods say how far it got.
    Deployed,
    /// Helm holds the release in a pending operation that the deployer will not break.
    Locked,
    Running,
    /// Ended well (exit code 0, a pod Succeeded).
    Finished,
    /// A pod being deleted before it ended.
    Cancelled,
    Failed,
    /// Its monitor cannot tell (a pod whose phase is unknown or not reported).
    Unset,
}

impl Status {
    const ALL: [Status; 9] = [
        Status::Pending,
        Status::Rendered,
        Status::Deployed,
        Status::Locked,
        Status::Running,
        Status::Finished,
        Status::Cancelled,
        Status::Failed,
        Status::Unset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Rendered => "RENDERED",
            Status::Deployed => "DEPLOYED",
            Status::Locked => "LOCKED",
            Status::Running => "RUNNING",
            Status::Finished => "FINISHED",
            Status::Cancelled => "CANCELLED",
            Status::Failed => "FAILED",
            Status::Unset => "UNSET",
        }
    }

    /// The status a text names, in any case.
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(text))
    }

    /// Whether nothing more will happen: it finished or failed.
    pub fn ended(self) -> bool {
        matches!(self, Status::Finished | Status::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl From<Status> for Value {
    fn from(status: Status) -> Value {
        Value::String(status.as_str().to_string())
    }
}

/// The `status` field of a state (`/deploy/<id>/state`, `/pb/<id>/state`), if it names a [`Status`].
pub fn status_of(state: Option<&Value>) -> Option<Status> {
    state?.get("status")?.as_str().and_then(Status::parse)
}

/// `/deploy/<id>/state` as read: what its deployer recorded. Fields that are missing or not what they should be
/// read as absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeploymentState {
    pub status: Option<Status>,
    pub error: Option<String>,
    /// A Helm release's pods by name, as the deployer's pod monitor sees them.
    pub pods: BTreeMap<String, Option<Status>>,
    /// How many pods the release's workloads ask for.
    pub pods_expected: Option<u64>,
    /// A process's ID, and its start time in clock ticks since boot (which tells it from a reused PID).
    pub pid: Option<u32>,
    pub pid_start: Option<u64>,
}

impl DeploymentState {
    pub fn read(state: &Value) -> DeploymentState {
        let number = |field: &str| state.get(field).and_then(Value::as_u64);
        let pods = state.get("pods").and_then(Value::as_object).map_or_else(BTreeMap::new, |pods| {
            pods.iter().map(|(name, pod)| (name.clone(), status_of(Some(pod)))).collect()
        });
        DeploymentState {
            status: status_of(Some(state)),
            error: state.get("error").and_then(Value::as_str).map(str::to_string),
            pods,
            pods_expected: number("pods_expected"),
            pid: number("pid").and_then(|pid| u32::try_from(pid).ok()),
            pid_start: number("pid_start"),
        }
    }

    /// Whether the deployment ended (a process that exited): nothing more will happen to it.
    pub fn ended(&self) -> bool {
        self.status.is_some_and(Status::ended)
    }
}

/// Fields a deployer merges into `/deploy/<id>/state`: a [`Status`] and what goes with it. A field set to null
/// is removed (an error cleared by a later success).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateUpdate(Map<String, Value>);

impl StateUpdate {
    /// The deployment is `status`, without an error.
    pub fn status(status: Status) -> StateUpdate {
        StateUpdate::default().with("status", status).with("error", Value::Null)
    }

    /// The deployment is `status`, for the reason given (FAILED, LOCKED).
    pub fn status_because(status: Status, error: impl fmt::Display) -> StateUpdate {
        StateUpdate::default().with("status", status).with("error", error.to_string())
    }

    /// It failed, and why.
    pub fn failed(error: impl fmt::Display) -> StateUpdate {
        StateUpdate::status_because(Status::Failed, error)
    }

    /// Its pods, by name (a pod monitor's report; the rest of the state is left as it is).
    pub fn pods(pods: &BTreeMap<String, Status>) -> StateUpdate {
        let pods: Map<String, Value> =
            pods.iter().map(|(name, status)| (name.clone(), json!({"status": status.as_str()}))).collect();
        StateUpdate::default().with("pods", pods)
    }

    /// A further field (a process's `pid`, a release's `pods_expected`...).
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> StateUpdate {
        self.0.insert(field.to_string(), value.into());
        self
    }

    pub fn fields(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }

    /// The status this update sets.
    pub fn new_status(&self) -> Option<Status> {
        self.0.get("status").and_then(Value::as_str).and_then(Status::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_tell_the_block() {
        assert_eq!(script_deployment_id("pb-1"), "pb-1-workflow");
        assert_eq!(engine_deployment_id("pb-1", "dask"), "pb-1-dask");
        assert_eq!(script_deployment_of("pb-1-workflow"), Some("pb-1"));
        assert_eq!(script_deployment_of("pb-1-dask"), None);
        assert!(belongs_to("pb-1-dask", "pb-1"));
        assert!(!belongs_to("pb-10-dask", "pb-1"));
        assert!(!belongs_to("pb-1", "pb-1"));
    }

    #[test]
    fn entries_are_built_and_read_back() {
        let asked = [
            DeploymentArgs::Helm {
                chart: "stable/dask".into(),
                values: json!({"worker.replicas": 2}).as_object().unwrap().clone(),
            },
            DeploymentArgs::Process(ProcessRequest::Script { script: "realtime-x-0".into(), pb_id: "pb-1".into() }),
            DeploymentArgs::Process(ProcessRequest::Engine("vis".into())),
            DeploymentArgs::Kubernetes(json!({"anything": [1]}).as_object().unwrap().clone()),
        ];
        for args in asked {
            let entry = args.entry("pb-1-x");
            entry.validate().unwrap();
            assert_eq!(DeploymentArgs::of(&entry), Ok(args));
        }
    }

    #[test]
    fn the_original_layout() {
        let entry = DeploymentArgs::Helm { chart: "dask".into(), values: Map::new() }.entry("pb-1-dask");
        assert_eq!(
            serde_json::to_value(&entry).unwrap(),
            json!({"deploy_id": "pb-1-dask", "type": "helm", "args": {"chart": "dask", "values": {}}})
        );
    }

    #[test]
    fn refuses_what_cannot_be_deployed() {
        let refused = |kind: &str, args: Value| DeploymentArgs::from_parts(kind, &args).unwrap_err();
        assert!(refused("helm", json!([1])).contains("must be a JSON object"));
        for chart in ["/etc", "../x", "./x", "a/../b", "a/b/c"] {
            assert!(refused("helm", json!({"chart": chart})).contains("not a path"), "{chart}");
        }
        assert!(refused("helm", json!({"chart": "dask", "values": 3})).contains("args.values"));
        assert!(refused("process-direct", json!({"command": ["sh"]})).contains("never a command"));
        assert!(refused("process-direct", json!({"script": "x"})).contains("neither"));
        assert!(refused("process-direct", json!({"engine": "a b"})).contains("engine name"));
        assert!(refused("process-direct", json!({"script": "x", "pb_id": "no/pb"})).contains("args.pb_id"));
        assert!(refused("docker", json!({})).contains("unknown deployment type"));
        assert_eq!(
            DeploymentArgs::from_parts("helm", &json!({"chart": "oci://registry/charts/dask"})).unwrap().kind(),
            HELM
        );
    }

    #[test]
    fn one_status_vocabulary_in_capitals() {
        for status in Status::ALL {
            assert_eq!(status.as_str(), status.as_str().to_ascii_uppercase());
            assert_eq!(Status::parse(&status.as_str().to_ascii_lowercase()), Some(status));
        }
        assert_eq!(Status::parse("deployed"), Some(Status::Deployed));
        assert_eq!(Status::parse("exploded"), None);
        assert!(Status::Failed.ended() && Status::Finished.ended() && !Status::Running.ended());
    }

    #[test]
    fn states_are_read_leniently() {
        let state = DeploymentState::read(&json!({
            "status": "deployed", "pods": {"a": {"status": "RUNNING"}, "b": {"status": 3}},
            "pods_expected": 2, "pid": -1, "error": "x"
        }));
        assert_eq!(state.status, Some(Status::Deployed));
        assert_eq!(state.pods, BTreeMap::from([("a".into(), Some(Status::Running)), ("b".into(), None)]));
        assert_eq!((state.pods_expected, state.pid, state.error.as_deref()), (Some(2), None, Some("x")));
        assert_eq!(DeploymentState::read(&json!("not an object")), DeploymentState::default());
    }

    #[test]
    fn updates_write_capitals_and_clear_errors() {
        assert_eq!(
            Value::Object(StateUpdate::status(Status::Running).fields().clone()),
            json!({"status": "RUNNING", "error": null})
        );
        let failed = StateUpdate::failed("boom").with("exit_code", 3);
        assert_eq!(
            Value::Object(failed.fields().clone()),
            json!({"status": "FAILED", "error": "boom", "exit_code": 3})
        );
        assert_eq!(failed.new_status(), Some(Status::Failed));
        let pods = StateUpdate::pods(&BTreeMap::from([("p".to_string(), Status::Pending)]));
        assert_eq!(Value::Object(pods.fields().clone()), json!({"pods": {"p": {"status": "PENDING"}}}));
    }
}
