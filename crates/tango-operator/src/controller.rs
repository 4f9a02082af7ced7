//! The reconcilers: apply the desired objects (server-side apply), observe them, report the state. Everything
//! made carries an owner reference to its resource, so Kubernetes' garbage collector removes it with the resource
//! and no finalizer is needed.

use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use crate::crd::{DatabaseDS, DatabaseDSStatus, DeviceServer, DeviceServerStatus, DeviceStatus};
use crate::metrics::{Metrics, StateLabels};
use crate::objects::{self, Settings, DATABASEDS_MANAGER, DEVICESERVER_MANAGER};
use crate::probe;
use crate::spec::{self, Dependency, DEVICESERVER_PREFIX};
use crate::state::{self, Neighbourhood, State};

/// Field manager of the operator's server-side applies.
pub const FIELD_MANAGER: &str = "ska-tango-operator";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0} (retried with backoff; check the operator's RBAC if it persists)")]
    Kube(#[from] kube::Error),
    #[error("{0} has no namespace: DeviceServer and DatabaseDS are namespaced resources")]
    NoNamespace(String),
}

/// What the reconcilers share.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// How soon a resource that is not Running is looked at again.
    pub retry: Duration,
    /// How long a dependency's endpoint may take to accept a connection, and a Tango call to answer.
    pub connect_timeout: Duration,
}

impl Context {
    pub fn new(client: Client, settings: Settings, metrics: Metrics) -> Context {
        let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            retry: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
        }
    }

    async fn apply<K>(&self, namespace: &str, object: &K) -> Result<K, kube::Error>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force().validation_strict();
        api.patch(&object.name_any(), &params, &Patch::Apply(object)).await
    }

    async fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<Pod>, kube::Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.list(&ListParams::default().labels(selector)).await?.items)
    }

    /// Records the transition (event, metric, log) when the state's kind changes.
    async fn transition<K>(&self, resource: &K, controller: &'static str, before: Option<&str>, state: &State)
    where
        K: Resource<DynamicType = ()>,
    {
        let before_label = before.map(|s| s.split('(').next().unwrap_or(s));
        if before_label == Some(state.label()) {
            return;
        }
        let name = resource.meta().name.clone().unwrap_or_default();
        info!(controller, resource = %name, state = %state, "state changed");
        self.metrics.transitions.get_or_create(&StateLabels { controller, state: state.label() }).inc();
        let event = Event {
            type_: if matches!(state, State::Error(_)) { EventType::Warning } else { EventType::Normal },
            reason: state.label().to_owned(),
            note: Some(state.to_string().chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &resource.object_ref(&())).await {
            warn!(%error, resource = %name, "could not publish an event");
        }
    }
}

async fn patch_status<K>(ctx: &Context, resource: &K, status: serde_json::Value) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &resource.namespace().unwrap_or_default());
    api.patch_status(&resource.name_any(), &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
        .await
        .map(drop)
}

/// The next look at a resource in `state`.
fn next_action(state: &State, retry: Duration) -> Action {
    match state {
        // Changes of the resource or of its StatefulSet trigger a reconcile; this is a slow resync.
        State::Running => Action::requeue(Duration::from_secs(300)),
        _ => Action::requeue(retry),
    }
}

fn result_label(result: &Result<Action, Error>) -> &'static str {
    match result {
        Ok(action) if *action == Action::await_change() => "success",
        Ok(_) => "requeue_after",
        Err(_) => "error",
    }
}

pub async fn reconcile_deviceserver(ds: Arc<DeviceServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = deviceserver(&ds, &ctx).await;
    ctx.metrics.observe("deviceserver", started.elapsed(), result_label(&result));
    result
}

pub async fn reconcile_databaseds(db: Arc<DatabaseDS>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = databaseds(&db, &ctx).await;
    ctx.metrics.observe("databaseds", started.elapsed(), result_label(&result));
    result
}

pub fn error_policy<K>(resource: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action
where
    K: Resource,
{
    warn!(resource = %resource.meta().name.as_deref().unwrap_or("?"), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(10))
}

async fn deviceserver(ds: &DeviceServer, ctx: &Context) -> Result<Action, Error> {
    let name = ds.name_any();
    let ns = ds.namespace().ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let before = ds.status.as_ref().map(|s| s.state.as_str());
    let valid = match spec::validate(&name, &ds.spec) {
        Ok(valid) => valid,
        Err(error) => {
            // Nothing runs until the spec changes; what was made before stays as it was.
            let state = State::Error(error.to_string());
            let status = DeviceServerStatus { state: state.to_string(), ..Default::default() };
            if ds.status.as_ref() != Some(&status) {
                patch_status(ctx, ds, json!(status)).await?;
            }
            ctx.transition(ds, "deviceserver", before, &state).await;
            return Ok(Action::await_change());
        }
    };
    let desired = objects::deviceserver_objects(ds);
    ctx.apply(&ns, &desired.config_map).await?;
    ctx.apply(&ns, &desired.service).await?;
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let exists = statefulsets.get_metadata_opt(&format!("{DEVICESERVER_PREFIX}{name}")).await?.is_some();
    let own_database = objects::deviceserver_tango_host(ds);
    let unmet = if exists {
        // A started server keeps running; its own dependency handling takes over from here.
        Vec::new()
    } else {
        let around = neighbourhood(ctx, &ns, &name, &own_database, &valid.dependencies).await?;
        state::unmet_dependencies(&name, ds.spec.databaseds.as_deref(), &own_database, &valid.dependencies, &around)
    };
    let (state, replicas, ready) = if unmet.is_empty() {
        let statefulset = ctx.apply(&ns, &desired.statefulset).await?;
        let pods = ctx.pods(&ns, &objects::pod_selector("deviceserver", &name)).await?;
        let replicas = statefulset.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        (state::workload_state(&statefulset, &pods), replicas, state::ready_replicas(&statefulset))
    } else {
        (State::Waiting(unmet.join("; ")), 0, 0)
    };
    // A running server's devices, as Tango reports them.
    let answers = if state == State::Running {
        let asked = valid.devices.iter().map(|d| probe::ask(&own_database, &d.name, ctx.connect_timeout));
        futures::future::join_all(asked).await
    } else {
        Vec::new()
    };
    let device_count = i32::try_from(valid.devices.len()).unwrap_or(i32::MAX);
    let ready_count = i32::try_from(answers.iter().filter(|a| a.is_ok()).count()).unwrap_or(i32::MAX);
    let status = DeviceServerStatus {
        state: state.to_string(),
        replicas,
        succeeded: ready,
        devicecount: device_count,
        devicereadycount: ready_count,
        devices: valid
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (state, status) = match answers.get(i) {
                    None => (None, None),
                    Some(Ok(state)) => (Some(state.clone()), None),
                    Some(Err(why)) => (Some("UNKNOWN".to_owned()), Some(why.clone())),
                };
                DeviceStatus { name: d.name.clone(), class: d.class.clone(), state, status, ..Default::default() }
            })
            .collect(),
    };
    if ds.status.as_ref() != Some(&status) {
        patch_status(ctx, ds, json!(status)).await?;
    }
    ctx.transition(ds, "deviceserver", before, &state).await;
    Ok(next_action(&state, ctx.retry))
}

/// The DatabaseDS and DeviceServers of the namespace (only when a dependency needs them), the endpoints that
/// accept connections, and what Tango says of the devices no DeviceServer of the namespace declares.
async fn neighbourhood(
    ctx: &Context,
    ns: &str,
    name: &str,
    own_database: &str,
    dependencies: &[Dependency],
) -> Result<Neighbourhood, Error> {
    let running = |state: Option<&str>| state == Some("Running");
    let databaseds: Api<DatabaseDS> = Api::namespaced(ctx.client.clone(), ns);
    let databaseds = databaseds.list(&ListParams::default()).await?.items;
    let mut around = Neighbourhood {
        databaseds: databaseds
            .iter()
            .map(|d| (d.name_any(), running(d.status.as_ref().map(|s| s.state.as_str()))))
            .collect(),
        ..Default::default()
    };
    if dependencies.iter().any(|d| matches!(d, Dependency::Device { name, .. } if !name.starts_with("sys/database/"))) {
        let servers: Api<DeviceServer> = Api::namespaced(ctx.client.clone(), ns);
        around.deviceservers = servers
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|s| {
                let devices = s.spec.config.as_deref().and_then(|c| spec::config_devices(c).ok()).unwrap_or_default();
                let state = s.status.as_ref().map(|st| st.state.as_str());
                (s.name_any(), devices.into_iter().map(|d| d.name).collect(), running(state))
            })
            .collect();
    }
    let mut open = HashSet::new();
    for dependency in dependencies {
        if let Dependency::Endpoint { host, port } = dependency {
            let connect = tokio::net::TcpStream::connect((host.as_str(), *port));
            if matches!(tokio::time::timeout(ctx.connect_timeout, connect).await, Ok(Ok(_))) {
                open.insert((host.clone(), *port));
            }
        }
    }
    around.open_endpoints = open;
    let checks = state::tango_checks(name, own_database, dependencies, &around);
    let answers = checks.iter().map(|(database, device)| probe::ask(database, device, ctx.connect_timeout));
    let answers = futures::future::join_all(answers).await;
    around.tango = checks.into_iter().zip(answers).map(|(check, answer)| (check, answer.map(drop))).collect();
    Ok(around)
}

async fn databaseds(db: &DatabaseDS, ctx: &Context) -> Result<Action, Error> {
    let name = db.name_any();
    let ns = db.namespace().ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let before = db.status.as_ref().map(|s| s.state.as_str());
    let desired = objects::databaseds_objects(db, &ctx.settings);
    ctx.apply(&ns, &desired.config_map).await?;
    if let Some(claim) = &desired.tangodb_claim {
        ctx.apply(&ns, claim).await?;
    }
    ctx.apply(&ns, &desired.tangodb_service).await?;
    ctx.apply(&ns, &desired.databaseds_service).await?;
    let tangodb = ctx.apply(&ns, &desired.tangodb).await?;
    let tangodb_pods = ctx.pods(&ns, &objects::pod_selector("databaseds-tangodb", &name)).await?;
    let tangodb_state = state::workload_state(&tangodb, &tangodb_pods);
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let ds_exists = statefulsets.get_metadata_opt(&format!("databaseds-ds-{name}")).await?.is_some();
    // DataBaseds needs its database: it is started once the Tango DB is ready instead of retrying in a loop.
    let ds_state = if tangodb_state == State::Running || ds_exists {
        let databaseds = ctx.apply(&ns, &desired.databaseds).await?;
        let pods = ctx.pods(&ns, &objects::pod_selector("databaseds-ds", &name)).await?;
        Some(state::workload_state(&databaseds, &pods))
    } else {
        None
    };
    let ready = [Some(&tangodb_state), ds_state.as_ref()].iter().filter(|s| **s == Some(&State::Running)).count();
    let state = match (&tangodb_state, &ds_state) {
        (State::Error(why), _) => State::Error(format!("tango db: {why}")),
        (State::Pending(why), _) => State::Pending(format!("tango db: {why}")),
        (_, Some(State::Error(why))) => State::Error(format!("databaseds: {why}")),
        (_, Some(State::Pending(why))) => State::Pending(format!("databaseds: {why}")),
        (State::Running, Some(State::Running)) => State::Running,
        _ => State::Building,
    };
    let status = DatabaseDSStatus { state: state.to_string(), replicas: 2, succeeded: ready as i32 };
    if db.status.as_ref() != Some(&status) {
        patch_status(ctx, db, json!(status)).await?;
    }
    ctx.transition(db, "databaseds", before, &state).await;
    Ok(next_action(&state, ctx.retry))
}

/// Runs both controllers until `shutdown` completes. `namespace` limits them to one namespace.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let managed_by =
        |manager: &str| watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={manager}"));
    let (stop_ds, stop_db) = {
        let shared = futures::future::FutureExt::shared(Box::pin(shutdown));
        (shared.clone(), shared)
    };
    let deviceservers = Controller::new(api::<DeviceServer>(&client, &namespace), watcher::Config::default())
        .owns(api::<StatefulSet>(&client, &namespace), managed_by(DEVICESERVER_MANAGER))
        .owns(api::<ConfigMap>(&client, &namespace), managed_by(DEVICESERVER_MANAGER))
        .graceful_shutdown_on(stop_ds)
        .run(reconcile_deviceserver, error_policy, ctx.clone())
        .for_each(|_| async {});
    let databaseds = Controller::new(api::<DatabaseDS>(&client, &namespace), watcher::Config::default())
        .owns(api::<StatefulSet>(&client, &namespace), managed_by(DATABASEDS_MANAGER))
        .owns(api::<Service>(&client, &namespace), managed_by(DATABASEDS_MANAGER))
        .graceful_shutdown_on(stop_db)
        .run(reconcile_databaseds, error_policy, ctx)
        .for_each(|_| async {});
    futures::join!(deviceservers, databaseds);
}
