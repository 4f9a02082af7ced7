//! The deployer's loop: lead, follow the `process-direct` entries, start and stop their processes, record
//! each one's life in `/deploy/<id>/state`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use sdp_config::{Config, DeploymentState, Error, ProcessRequest, StateUpdate, Status, Txn};

use crate::plan::{plan, Action, Entry};
use crate::process;
use crate::spec::{Runnable, ScriptDefinitions};

/// The component name of the leadership entry (`/controller/procdeploy`): one replica runs processes.
pub const LEADER: &str = "procdeploy";

/// What the operator chose (the options of `sdp up`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// What it may run: the script runner and the registered engines. Nothing else runs.
    pub runnable: Runnable,
    /// Each process's output is appended to `<log_dir>/<deploy_id>.log`.
    pub log_dir: PathBuf,
    /// How long a process has between SIGTERM and SIGKILL.
    pub grace: Duration,
}

pub struct ProcessDeployer {
    pub config: Config,
    pub settings: Settings,
    /// Lease TTL of the leadership entry, seconds.
    pub lease_ttl: i64,
    pub metrics: Metrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Event {
    /// started, finished, failed or stopped
    pub event: String,
}

/// The deployer's Prometheus metrics.
#[derive(Clone, Default)]
pub struct Metrics {
    pub processes: Family<Event, Counter>,
    pub running: Gauge,
}

impl Metrics {
    /// Metrics registered under `sdp_procdeploy_` in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("sdp_procdeploy");
        r.register("processes", "processes started and ended, by event", m.processes.clone());
        r.register("running", "processes running now", m.running.clone());
        m
    }

    fn count(&self, event: &str) {
        self.processes.get_or_create(&Event { event: event.into() }).inc();
    }
}

/// A running deployer; [`Running::stop`] ends its processes before it goes.
pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    grace: Duration,
}

/// Starts the platform's deployer: it leads with the platform's lease, its metrics go to `registry`.
pub fn start(settings: Settings, config: Config, registry: &mut Registry) -> Running {
    tracing::info!(engines = ?settings.runnable.engines.keys().collect::<Vec<_>>(), "process engines registered");
    let logs = settings.log_dir.clone();
    let metrics = Metrics::register(registry);
    let running = spawn(ProcessDeployer { config, settings, lease_ttl: sdp_config::LEASE_TTL, metrics });
    tracing::info!(logs = %logs.display(), "process deployer started");
    running
}

/// Starts `d`: whenever this replica leads, it runs the processes.
pub fn spawn(d: ProcessDeployer) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    let (stopped_tx, stopped) = watch::channel(false);
    let grace = d.settings.grace;
    let leading = Arc::new(AtomicBool::new(false));
    let (mut stopping, mut processes_stopped) = (stop_rx.clone(), stopped.clone());
    let led = Arc::clone(&leading);
    // Leading, the processes stop first (run_processes ends on the same signal), then the lead is resigned;
    // standing by, it ends at once.
    let stopped_leading = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        if led.load(Ordering::SeqCst) {
            let _ = processes_stopped.wait_for(|s| *s).await;
        }
    };
    let task = tokio::spawn(async move {
        sdp_config::run_while_leading(&d.config.clone(), LEADER, d.lease_ttl, stopped_leading, || {
            let (leading, stop_rx, stopped_tx) = (Arc::clone(&leading), stop_rx.clone(), stopped_tx.clone());
            let d = &d;
            async move {
                leading.store(true, Ordering::SeqCst);
                let ran = run_processes(d, stop_rx, stopped_tx).await;
                leading.store(false, Ordering::SeqCst);
                ran
            }
        })
        .await
    });
    Running { stop, task, grace }
}

impl Running {
    /// Stops every process (SIGTERM, then SIGKILL after the grace period) and the deployer. The states stay
    /// RUNNING: a deployer started later starts them again.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        sdp_daemon::stop_within(self.task, self.grace + Duration::from_secs(5), "the process deployer").await;
    }
}

/// A process this deployer runs.
struct Child {
    request: ProcessRequest,
    pgid: u32,
    stop: Option<oneshot::Sender<()>>,
}

/// The running processes. Dropped without [`Children::stop_all`] (the lead lost, the task aborted), it still
/// ends them: another replica is about to start them.
struct Children {
    running: HashMap<String, Child>,
    grace: Duration,
}

impl Drop for Children {
    fn drop(&mut self) {
        let groups: Vec<u32> = self.running.values().map(|c| c.pgid).collect();
        if groups.is_empty() {
            return;
        }
        for &pgid in &groups {
            process::signal_group(pgid, libc::SIGTERM);
        }
        let grace = self.grace;
        std::thread::spawn(move || {
            std::thread::sleep(grace);
            for pgid in groups {
                process::signal_group(pgid, libc::SIGKILL);
            }
        });
    }
}

type Exit = (String, std::io::Result<ExitStatus>, bool);

/// Waits for a process to end; on a stop request, SIGTERM, then SIGKILL after `grace`. Whatever the process
/// left in its group goes with it. Returns whether it was stopped.
async fn supervise(
    id: String,
    mut child: tokio::process::Child,
    pgid: u32,
    grace: Duration,
    stop: oneshot::Receiver<()>,
) -> Exit {
    let (status, stopped) = tokio::select! {
        status = child.wait() => (status, false),
        _ = stop => {
            process::signal_group(pgid, libc::SIGTERM);
            let status = match tokio::time::timeout(grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    process::signal_group(pgid, libc::SIGKILL);
                    child.wait().await
                }
            };
            (status, true)
        }
    };
    process::signal_group(pgid, libc::SIGKILL);
    (id, status, stopped)
}

async fn read_entries(t: Txn, runnable: &Runnable) -> Result<BTreeMap<String, Entry>, Error> {
    let scripts: ScriptDefinitions = t.list_scripts().await?.into_iter().collect();
    let mut entries = BTreeMap::new();
    for (id, listed) in t.list_deployment_entries(true).await? {
        // Entries that are not valid belong to no deployer; the Helm deployer reports them.
        let Some(request) = listed.entry.and_then(Result::ok).and_then(|d| d.process_request()) else { continue };
        let spec = request.as_ref().map_err(String::clone).and_then(|r| runnable.resolve(r, &scripts));
        let state = listed.state.as_ref().map(DeploymentState::read);
        entries.insert(id, Entry { request, spec, state });
    }
    Ok(entries)
}

/// Ends processes an earlier deployer recorded as running and that still run (it was killed before it could
/// stop them): nothing runs twice.
async fn end_leftovers(entries: &BTreeMap<String, Entry>, grace: Duration) {
    for (id, entry) in entries {
        let Some(state) = &entry.state else { continue };
        let (Some(Status::Running), Some(pid), Some(ticks)) = (state.status, state.pid, state.pid_start) else {
            continue;
        };
        if !process::still_running(pid, ticks) {
            continue;
        }
        tracing::warn!(deploy_id = id, pid, "a process an earlier deployer started still runs: stopping it");
        process::signal_group(pid, libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while process::still_running(pid, ticks) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process::signal_group(pid, libc::SIGKILL);
    }
}

fn log_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.log"))
}

fn note_in_log(log: &Path, line: &str) {
    use std::io::Write as _;
    let written = std::fs::create_dir_all(log.parent().unwrap_or(Path::new(".")))
        .and_then(|_| std::fs::File::options().create(true).append(true).open(log))
        .and_then(|mut f| writeln!(f, "--- {} {line}", chrono::Utc::now().to_rfc3339()));
    if let Err(e) = written {
        tracing::warn!(log = %log.display(), error = %e, "cannot write the process log");
    }
}

/// Runs the processes while leading, until a stop is asked for.
async fn run_processes(
    d: &ProcessDeployer,
    mut stop: watch::Receiver<bool>,
    stopped: watch::Sender<bool>,
) -> Result<(), Error> {
    if *stop.borrow() {
        return std::future::pending().await;
    }
    let mut watcher = d.config.watcher().with_timeout(Duration::from_secs(30));
    let mut children = Children { running: HashMap::new(), grace: d.settings.grace };
    let mut exits: JoinSet<Exit> = JoinSet::new();
    let mut ended: BTreeMap<String, ProcessRequest> = BTreeMap::new();
    let mut entries: Option<BTreeMap<String, Entry>> = None;
    let mut reported = sdp_daemon::Refusals::default();
    loop {
        if let Some(entries) = &entries {
            let refused = entries.iter().filter_map(|(id, e)| Some((id, e.spec.as_ref().err()?)));
            for (id, error) in reported.update(refused) {
                tracing::warn!(deploy_id = id, error, "process-direct entry cannot run");
            }
            let running = children.running.iter().map(|(id, c)| (id.clone(), c.request.clone())).collect();
            for action in plan(entries, &running, &ended) {
                apply(d, action, &mut children, &mut exits, &mut ended).await;
            }
        }
        tokio::select! {
            () = async { let _ = stop.wait_for(|s| *s).await; } => {
                for child in children.running.values_mut() {
                    if let Some(stop) = child.stop.take() {
                        let _ = stop.send(());
                    }
                }
                while let Some(exit) = exits.join_next().await {
                    if let Ok((id, _, _)) = exit {
                        children.running.remove(&id);
                        d.metrics.count("stopped");
                    }
                }
                d.metrics.running.set(0);
                let _ = stopped.send(true);
                tracing::info!("process deployer stopped its processes");
                return std::future::pending().await;
            }
            read = watcher.txn(|t| read_entries(t, &d.settings.runnable)) => {
                let read = read?;
                if entries.is_none() {
                    end_leftovers(&read, d.settings.grace).await;
                }
                ended.retain(|id, _| read.contains_key(id));
                entries = Some(read);
            }
            Some(exit) = exits.join_next(), if !exits.is_empty() => {
                let Ok((id, status, was_stopped)) = exit else { continue };
                let Some(child) = children.running.remove(&id) else { continue };
                d.metrics.running.set(children.running.len() as i64);
                let log = log_path(&d.settings.log_dir, &id);
                if was_stopped {
                    d.metrics.count("stopped");
                    note_in_log(&log, "stopped");
                    tracing::info!(deploy_id = id, "process stopped");
                    continue;
                }
                let update = match status {
                    Ok(status) => process::outcome(status),
                    Err(e) => StateUpdate::failed(format!("cannot wait for the process: {e}")),
                };
                let status = update.new_status().unwrap_or(Status::Failed);
                let error = update.get("error").and_then(Value::as_str);
                d.metrics.count(&status.as_str().to_lowercase());
                note_in_log(&log, &format!("ended: {}", error.unwrap_or("exit code 0")));
                tracing::info!(deploy_id = id, %status, error, "process ended");
                d.config.record_deployment_state(&id, update).await;
                ended.insert(id, child.request);
            }
        }
    }
}

async fn apply(
    d: &ProcessDeployer,
    action: Action,
    children: &mut Children,
    exits: &mut JoinSet<Exit>,
    ended: &mut BTreeMap<String, ProcessRequest>,
) {
    match action {
        Action::Reject(id, error) => {
            d.config.record_deployment_state(&id, StateUpdate::failed(error)).await;
        }
        Action::Stop(id) => {
            if let Some(stop) = children.running.get_mut(&id).and_then(|c| c.stop.take()) {
                tracing::info!(deploy_id = id, "stopping the process");
                let _ = stop.send(());
            }
        }
        Action::Start(id, request, spec) => {
            let log = log_path(&d.settings.log_dir, &id);
            note_in_log(&log, &format!("starting: {}", spec.command_line().join(" ")));
            match process::start(&spec, &log).await {
                Ok(child) => {
                    let pid = child.id().unwrap_or_default();
                    let update = StateUpdate::status(Status::Running)
                        .with("pid", pid)
                        .with("pid_start", process::start_ticks(pid))
                        .with("command", spec.command_line())
                        .with("log", log.display().to_string())
                        .with("started", chrono::Utc::now().to_rfc3339())
                        .with("exit_code", Value::Null)
                        .with("signal", Value::Null);
                    d.config.record_deployment_state(&id, update).await;
                    tracing::info!(deploy_id = id, pid, log = %log.display(), "process started");
                    d.metrics.count("started");
                    let (stop, stop_rx) = oneshot::channel();
                    exits.spawn(supervise(id.clone(), child, pid, d.settings.grace, stop_rx));
                    children.running.insert(id, Child { request, pgid: pid, stop: Some(stop) });
                    d.metrics.running.set(children.running.len() as i64);
                }
                Err(e) => {
                    let error = format!("cannot start {}: {e}", spec.program);
                    tracing::warn!(deploy_id = id, error, "process did not start");
                    note_in_log(&log, &error);
                    d.metrics.count("failed");
                    d.config.record_deployment_state(&id, StateUpdate::failed(error)).await;
                    ended.insert(id, request);
                }
            }
        }
    }
}
