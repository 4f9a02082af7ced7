//! The deployer's loop: read the `/deploy` entries, plan, run each deployment's Helm action in its own task
//! (one at a time per deployment, independent ones in parallel), record the outcome in `/deploy/<id>/state`,
//! retry failures with capped exponential backoff.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use sdp_config::keys::paths;
use sdp_config::{Config, Error, StateUpdate, Status};
use sdp_daemon::retry::retry;
use sdp_daemon::{AbortOnDrop, Backoff, Policy, Refusals};

use crate::helm::Helm;
use crate::manifest;
use crate::plan::{plan, release_state, Desired, HelmAction, Observed, ReleaseState, ReleaseStatus};

/// The component name of the leadership entry (`/controller/helmdeploy`): one replica deploys at a time.
pub const LEADER: &str = "helmdeploy";

/// Whether there is a cluster to install into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Cluster,
    /// No cluster: `helm template` into this directory instead of installing.
    RenderOnly(PathBuf),
}

impl Mode {
    /// A cluster is there when a kubeconfig is named or present, or when running inside Kubernetes.
    pub fn detect(render_dir: PathBuf) -> Mode {
        let home_config = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"));
        if std::env::var_os("KUBECONFIG").is_some()
            || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
            || home_config.is_some_and(|p| p.is_file())
        {
            Mode::Cluster
        } else {
            Mode::RenderOnly(render_dir)
        }
    }
}

pub struct Deployer {
    pub config: Config,
    pub metrics: crate::metrics::Metrics,
    pub helm: Helm,
    pub mode: Mode,
    /// Where values files are written for helm.
    pub work_dir: PathBuf,
    pub max_backoff: Duration,
    /// Helm commands running at once, at most (each is a process of its own).
    pub max_parallel: usize,
    /// Lease TTL of the leadership entry, seconds: how long a standby waits after the leader died.
    pub lease_ttl: i64,
    /// Values under every deployment's own, by chart as the entries name it (a site's images, pull policies,
    /// resources for the charts scripts deploy); a deployment's own values win. Part of what a release is
    /// compared with, so a change upgrades the releases of that chart.
    pub chart_values: BTreeMap<String, serde_json::Value>,
    /// How often the chart repositories' indexes are fetched again while this replica leads.
    pub repository_refresh: Duration,
}

/// Runs until dropped, deploying whenever this replica leads; one bad entry or failing release never stops it.
pub async fn run(d: Deployer) {
    run_until(d, std::future::pending()).await
}

/// [`run`] until `stop` resolves; then resigns the lead if it holds it, and returns.
pub async fn run_until(d: Deployer, stop: impl std::future::Future<Output = ()>) {
    sdp_config::run_while_leading(&d.config, LEADER, d.lease_ttl, stop, || deploy(&d)).await
}

/// Reconciles while leading; it starts from the releases as they are, since another replica may have led.
async fn deploy(d: &Deployer) -> Result<(), Error> {
    if let Err(e) = tokio::fs::create_dir_all(&d.work_dir).await {
        tracing::error!(dir = %d.work_dir.display(), error = %e, "cannot create the deployer's work directory");
    }
    if let Mode::RenderOnly(dir) = &d.mode {
        tracing::warn!(dir = %dir.display(), "no Kubernetes cluster found (no KUBECONFIG, ~/.kube/config or in-cluster environment): rendering charts only");
        let _ = tokio::fs::create_dir_all(dir).await;
    }
    // Rendering takes the repositories' charts too. Added once per leadership, then refreshed on a schedule.
    if let Err(e) = d.helm.add_repositories().await {
        tracing::warn!(error = %e, "cannot add the chart repositories; charts from them fail until the next refresh reaches them");
    }
    let _refresh: AbortOnDrop =
        tokio::spawn(refresh_repositories(d.helm.clone(), d.repository_refresh, d.metrics.clone())).into();
    let mut observed = retry(Policy::KUBERNETES_WATCH, "listing the existing releases", || initial_observed(d)).await;
    let mut watcher = d.config.watcher();
    let mut workers: JoinSet<(String, Result<Option<String>, String>)> = JoinSet::new();
    let mut in_flight: HashSet<String> = HashSet::new();
    // Per release: its failures and when to try again.
    let mut backoff: HashMap<String, (Backoff, Instant)> = HashMap::new();
    let release_policy = Policy::HELM_RELEASE.with_max(d.max_backoff);
    let mut read_backoff = Backoff::new(Policy::DATABASE);
    let mut entries: Option<Entries> = None;
    let mut reported = Refusals::default();
    let helm_slots = Arc::new(Semaphore::new(d.max_parallel.max(1)));
    loop {
        if let Some(Entries { desired, invalid }) = &entries {
            // Charts are looked for on every pass: one added to the local charts is taken without an entry change.
            let refused = refusals(invalid, desired, &d.helm);
            for (id, error) in reported.update(&refused) {
                tracing::warn!(deploy_id = id, error, "deployment entry refused");
                // An ID that is not one has no state key to hold the reason.
                if sdp_config::keys::validate_id("deployment", &id).is_ok() {
                    d.config.record_deployment_state(&id, StateUpdate::failed(error)).await;
                }
            }
            for (id, entry) in desired {
                if let ReleaseState::Locked(reason) = release_state(entry, observed.get(id)) {
                    d.config.record_deployment_state(id, StateUpdate::status_because(Status::Locked, reason)).await;
                }
            }
            let now = Instant::now();
            // An invalid entry keeps whatever was released for it (its actions are skipped): removing a release
            // takes deleting the entry, not breaking it.
            for action in plan(desired, &observed) {
                let id = action.deploy_id().to_string();
                if refused.contains_key(&id)
                    || in_flight.contains(&id)
                    || backoff.get(&id).is_some_and(|(_, retry_at)| *retry_at > now)
                {
                    continue;
                }
                in_flight.insert(id.clone());
                let ctx = Context {
                    config: d.config.clone(),
                    helm: d.helm.clone(),
                    mode: d.mode.clone(),
                    work_dir: d.work_dir.clone(),
                    metrics: d.metrics.clone(),
                    helm_slots: Arc::clone(&helm_slots),
                };
                workers.spawn(async move { (id, execute(ctx, action).await) });
            }
        }
        let next_retry = backoff.values().map(|(_, retry_at)| *retry_at).min();
        let wait = next_retry.map_or(Duration::from_secs(30), |t| t.saturating_duration_since(Instant::now()));
        tokio::select! {
            read = tokio::time::timeout(wait.max(Duration::from_millis(10)), watcher.txn(read_entries)) => match read {
                Ok(Ok(mut read)) => {
                    d.metrics.reconciles.inc();
                    read_backoff.succeeded();
                    read.desired = std::mem::take(&mut read.desired)
                        .into_iter()
                        .map(|(id, desired)| {
                            // By the name the entry gives, else by the local chart it stands for.
                            let defaults = d.chart_values.get(&desired.chart).or_else(|| {
                                d.helm.local_name(&desired.chart).and_then(|name| d.chart_values.get(name))
                            });
                            (id, desired.over(defaults))
                        })
                        .collect();
                    entries = Some(read);
                    // States orphan when entries go: the read that saw them go looks for them.
                    remove_orphaned_states(&d.config).await;
                }
                Ok(Err(e)) => {
                    d.metrics.watch_restart("deploy");
                    read_backoff.wait_after("reading /deploy", &e).await;
                }
                // Time to retry a failed deployment: plan again with what was last read.
                Err(_) => {}
            },
            Some(done) = workers.join_next(), if !workers.is_empty() => {
                let Ok((id, result)) = done else { continue };
                in_flight.remove(&id);
                match result {
                    Ok(Some(fingerprint)) => {
                        observed.insert(id.clone(), Observed { fingerprint, status: ReleaseStatus::Deployed });
                        backoff.remove(&id);
                    }
                    Ok(None) => {
                        observed.remove(&id);
                        backoff.remove(&id);
                    }
                    Err(error) => {
                        let (failures, retry_at) = backoff.entry(id.clone()).or_insert((Backoff::new(release_policy), Instant::now()));
                        let delay = failures.failed();
                        *retry_at = Instant::now() + delay;
                        tracing::warn!(deploy_id = id, error, retry_in = ?delay, "deployment failed");
                    }
                }
            }
        }
    }
}

/// Removes the states whose entry is gone: deleted without its state (`sdpcfg delete /deploy/<id>`), or
/// while a deployer was down. Whoever ran the deployment has stopped it or is stopping it.
async fn remove_orphaned_states(config: &sdp_config::Config) {
    let ids = match config.txn(|t| async move { t.orphaned_deployment_states().await }).await {
        Ok(ids) => ids,
        Err(e) => return tracing::warn!(error = %e, "cannot look for the states of deleted deployments"),
    };
    for id in &ids {
        match config.txn(|t| async move { t.remove_orphaned_deployment_state(id).await }).await {
            Ok(true) => tracing::info!(deploy_id = id, "state of a deleted deployment removed"),
            Ok(false) => {}
            Err(e) => tracing::warn!(deploy_id = id, error = %e, "cannot remove the state of a deleted deployment"),
        }
    }
}

/// The `/deploy` entries as this deployer sees them.
#[derive(Default)]
struct Entries {
    /// Valid helm entries, as the releases they ask for.
    desired: BTreeMap<String, Desired>,
    /// Entries of any type that are not valid, with the reason.
    invalid: BTreeMap<String, String>,
}

/// Reads the entries in one read: the helm ones as desired releases, invalid ones (of any type) with the
/// reason.
async fn read_entries(t: sdp_config::Txn) -> Result<Entries, Error> {
    let mut entries = Entries::default();
    for (id, listed) in t.list_deployment_entries(false).await? {
        match listed.entry.map(|entry| entry.map(|entry| Desired::from_deployment(&entry))) {
            Some(Ok(Some(Ok(d)))) => {
                entries.desired.insert(id, d);
            }
            Some(Ok(Some(Err(reason))) | Err(reason)) => {
                entries.invalid.insert(id, reason);
            }
            Some(Ok(None)) | None => {}
        }
    }
    Ok(entries)
}

/// Fetches the chart repositories' indexes every `period` (added again when that fails, which also covers a
/// repository that was out of reach at start), until dropped.
async fn refresh_repositories(helm: Helm, period: Duration, metrics: crate::metrics::Metrics) {
    if helm.repositories.urls().next().is_none() {
        return;
    }
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let result = match helm.update_repositories().await {
            Ok(()) => Ok(()),
            Err(_) => helm.add_repositories().await,
        };
        metrics.helm_call("repo", result.is_ok());
        match result {
            Ok(()) => tracing::debug!("chart repositories refreshed"),
            Err(e) => tracing::warn!(error = %e, "cannot refresh the chart repositories; trying again in {period:?}"),
        }
    }
}

/// The entries refused, with the reason: those not valid, and those naming a chart from nowhere helm may take
/// one.
fn refusals(
    invalid: &BTreeMap<String, String>,
    desired: &BTreeMap<String, Desired>,
    helm: &Helm,
) -> BTreeMap<String, String> {
    let unreachable =
        desired.iter().filter_map(|(id, d)| Some((id.clone(), helm.chart_ref(&d.chart).err()?.to_string())));
    invalid.clone().into_iter().chain(unreachable).collect()
}

/// The releases as they are: in the namespace with their values and status (cluster), or rendered manifests.
async fn initial_observed(d: &Deployer) -> Result<BTreeMap<String, Observed>, String> {
    let mut observed = BTreeMap::new();
    match &d.mode {
        Mode::Cluster => {
            for release in d.helm.list().await.map_err(|e| e.to_string())? {
                let values = d.helm.get_values(&release.name).await.map_err(|e| e.to_string())?;
                // `chart` is `<name>-<version>`: compare by name, as entries name charts.
                let name = release.chart.rsplit_once('-').map_or(release.chart.as_str(), |(n, _)| n).to_string();
                let fingerprint = Desired { deploy_id: release.name.clone(), chart: name, values }.fingerprint();
                observed
                    .insert(release.name, Observed { fingerprint, status: ReleaseStatus::from_helm(&release.status) });
            }
        }
        Mode::RenderOnly(dir) => {
            if let Ok(mut files) = tokio::fs::read_dir(dir).await {
                while let Ok(Some(f)) = files.next_entry().await {
                    if let Some(id) = f.file_name().to_str().and_then(|n| n.strip_suffix(".yaml")) {
                        // Unknown content: re-rendered if its entry exists, removed if not.
                        observed.insert(
                            id.to_string(),
                            Observed { fingerprint: String::new(), status: ReleaseStatus::Deployed },
                        );
                    }
                }
            }
        }
    }
    Ok(observed)
}

struct Context {
    config: Config,
    helm: Helm,
    mode: Mode,
    work_dir: PathBuf,
    metrics: crate::metrics::Metrics,
    helm_slots: Arc<Semaphore>,
}

impl Context {
    /// Runs helm when a slot is free, counting the call by verb and result.
    async fn helm(&self, args: &[String]) -> Result<String, crate::helm::HelmError> {
        let _slot = self.helm_slots.acquire().await.expect("the helm semaphore is never closed");
        let result = self.helm.run(args).await;
        self.metrics.helm_call(args.first().map_or("", String::as_str), result.is_ok());
        result
    }
}

/// Runs one action. Ok(Some(fingerprint)): applied; Ok(None): removed; Err: failed (already recorded).
async fn execute(ctx: Context, action: HelmAction) -> Result<Option<String>, String> {
    let Context { config, helm, mode, work_dir, .. } = &ctx;
    let id = action.deploy_id().to_string();
    let result = match (&action, &mode) {
        (HelmAction::Install(d) | HelmAction::Upgrade(d), _) => {
            let values_file = work_dir.join(format!("{id}.values.json"));
            let outcome = async {
                tokio::fs::write(&values_file, d.values.to_string())
                    .await
                    .map_err(|e| format!("cannot write {}: {e}", values_file.display()))?;
                match &mode {
                    Mode::Cluster => {
                        let upgrade = helm.upgrade_args(d, &values_file).map_err(|e| e.to_string())?;
                        let installed = match &action {
                            HelmAction::Install(_) => {
                                ctx.helm(&helm.install_args(d, &values_file).map_err(|e| e.to_string())?).await
                            }
                            _ => ctx.helm(&upgrade).await,
                        };
                        let release = match installed {
                            // A release of that name exists after all (made while the deployer was down): upgrade it.
                            Err(crate::helm::HelmError::NameInUse { .. }) => {
                                ctx.helm(&upgrade).await.map_err(|e| e.to_string())?
                            }
                            other => other.map_err(|e| e.to_string())?,
                        };
                        // Without the count, readiness falls back to "every pod seen runs".
                        let pods_expected = manifest::release_manifest(&release)
                            .and_then(|m| manifest::expected_pods(&m))
                            .inspect_err(|e| {
                                tracing::warn!(deploy_id = id, error = e, "cannot count the release's pods")
                            })
                            .ok();
                        Ok(StateUpdate::status(Status::Deployed).with("pods_expected", pods_expected))
                    }
                    Mode::RenderOnly(dir) => {
                        let template = helm.template_args(d, &values_file).map_err(|e| e.to_string())?;
                        let manifest = ctx.helm(&template).await.map_err(|e| e.to_string())?;
                        let path = dir.join(format!("{id}.yaml"));
                        tokio::fs::write(&path, manifest)
                            .await
                            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                        Ok(StateUpdate::status(Status::Rendered)
                            .with("manifest", path.display().to_string())
                            .with("message", "no Kubernetes cluster: the chart was rendered, not installed"))
                    }
                }
            }
            .await;
            match outcome {
                Ok(state) => {
                    config.record_deployment_state(&id, state).await;
                    tracing::info!(deploy_id = id, chart = d.chart, "deployment applied");
                    Ok(Some(d.fingerprint()))
                }
                Err(e) => Err(e),
            }
        }
        (HelmAction::Uninstall(_), Mode::Cluster) => match ctx.helm(&helm.uninstall_args(&id)).await {
            Ok(_) => Ok(None),
            Err(crate::helm::HelmError::ReleaseNotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        },
        (HelmAction::Uninstall(_), Mode::RenderOnly(dir)) => {
            match tokio::fs::remove_file(dir.join(format!("{id}.yaml"))).await {
                Ok(()) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    match &result {
        Ok(None) => {
            let _ = tokio::fs::remove_file(work_dir.join(format!("{id}.values.json"))).await;
            // The entry is gone; its state goes with the release.
            let path = paths::deploy_state(&id);
            if let Err(e) = config
                .txn(|t| {
                    let path = path.clone();
                    async move { t.delete(&path, false, false).await }
                })
                .await
            {
                tracing::warn!(deploy_id = id, error = %e, "cannot remove the deployment state");
            }
            tracing::info!(deploy_id = id, "deployment removed");
        }
        Err(error) => config.record_deployment_state(&id, StateUpdate::failed(error)).await,
        Ok(Some(_)) => {}
    }
    result
}
