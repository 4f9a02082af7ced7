//! The deployer as the platform runs it (`sdp up`, `sdp helm-deployer`): from what the operator chose to the
//! deployer and, with a cluster, its pod and network-resource monitors. The deployer the settings describe is
//! decided in [`deployer`], a pure function; around it, the bundled charts are unpacked and Kubernetes reached.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;

use prometheus_client::registry::Registry;
use sdp_config::Config;
use tokio::task::JoinHandle;

use crate::bundled;
use crate::daemon::Deployer;
use crate::daemon::Mode;
use crate::helm::Helm;
use crate::metrics::Metrics;
use crate::namespace::{self, Ensured};
use crate::pods;
use crate::repositories::Repositories;
use crate::resources;

/// The longest pause between two tries of a failing release.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Helm commands running at once, at most: each is a process of its own.
const MAX_PARALLEL: usize = 8;
/// How often the chart repositories' indexes are fetched again, by default.
pub const REPOSITORY_REFRESH: Duration = Duration::from_secs(600);

/// What the operator chose (the options of `sdp up` and `sdp helm-deployer`).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The processing namespace: releases go there.
    pub namespace: String,
    /// The helm program.
    pub helm: PathBuf,
    /// Local charts that deployments name; None: the charts carried in this binary ([`bundled`]), unpacked into
    /// `<data_dir>/charts`.
    pub charts_dir: Option<PathBuf>,
    /// Chart repository for charts not found locally (added as `helmdeploy`).
    pub chart_repo_url: Option<String>,
    /// Repository names and their chart sources, over the defaults (`stable` is the local charts).
    pub chart_repositories: Repositories,
    /// How often the chart repositories' indexes are fetched again.
    pub repository_refresh: Duration,
    /// OCI registries that `oci://` charts may come from (`host` or `host:port`); blank entries count for none.
    pub oci_registries: Vec<String>,
    /// Values under every deployment's own, by chart as the entries name it.
    pub chart_values: BTreeMap<String, serde_json::Value>,
    /// Below it: values files (`helm-values`), manifests rendered without a cluster (`rendered`), the bundled
    /// charts (`charts`).
    pub data_dir: PathBuf,
}

/// Why the deployer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot unpack the bundled charts into {}: check its permissions or set --charts-dir", dir.display())]
    Charts { dir: PathBuf, source: std::io::Error },
}

/// A running deployer with its monitors; [`Running::stop`] ends them.
pub struct Running {
    deployer: sdp_daemon::Stoppable,
    monitors: Vec<JoinHandle<()>>,
}

impl Running {
    /// Ends the deployer, resigning its lead (a standby takes over at once), and the monitors.
    pub async fn stop(self) {
        self.monitors.iter().for_each(JoinHandle::abort);
        self.deployer.stop(STOP_LIMIT, "the Helm deployer").await;
    }
}

/// How long a stopping deployer may take to resign its lead (after a helm command under way) before it is
/// dropped.
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts the deployer: finds whether there is a cluster, unpacks the bundled charts unless a charts folder is
/// named, and with a cluster makes sure the processing namespace exists and follows its pods and the network
/// resources. Its metrics go to `registry`.
pub fn start(
    settings: Settings,
    config: Config,
    registry: &mut Registry,
) -> BoxFuture<'static, Result<Running, StartError>> {
    let metrics = Metrics::register(registry);
    // Boxed: a future's body is compiled in every crate that polls it; boxed here, once, in this crate.
    Box::pin(start_with(settings, config, metrics))
}

async fn start_with(settings: Settings, config: Config, metrics: Metrics) -> Result<Running, StartError> {
    let mode = Mode::detect(settings.data_dir.join("rendered"));
    let charts_dir = local_charts(&settings)?;
    tracing::info!(dir = %charts_dir.display(), "local charts");
    let namespace = settings.namespace.clone();
    let deployer = deployer(settings, charts_dir, mode.clone(), config.clone(), metrics.clone());
    let deployer = sdp_daemon::Stoppable::spawn(|stop| crate::daemon::run_until(deployer, stop));
    let monitors = match mode {
        Mode::Cluster => start_monitors(&namespace, config, metrics).await,
        Mode::RenderOnly(dir) => {
            tracing::info!(dir = %dir.display(), "helm deployer started in render-only mode (no cluster)");
            Vec::new()
        }
    };
    Ok(Running { deployer, monitors })
}

/// The folder of local charts: the one named, else the bundled charts, unpacked into `<data_dir>/charts`.
fn local_charts(settings: &Settings) -> Result<PathBuf, StartError> {
    if let Some(dir) = &settings.charts_dir {
        return Ok(dir.clone());
    }
    let dir = settings.data_dir.join("charts");
    bundled::unpack(&dir).map_err(|source| StartError::Charts { dir: dir.clone(), source })?;
    Ok(dir)
}

/// The deployer `settings` describe, with its charts in `charts_dir`, leading with the platform's lease.
fn deployer(settings: Settings, charts_dir: PathBuf, mode: Mode, config: Config, metrics: Metrics) -> Deployer {
    let oci_registries =
        settings.oci_registries.iter().map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect();
    Deployer {
        config,
        metrics,
        helm: Helm {
            bin: settings.helm,
            namespace: settings.namespace,
            charts_dir: Some(charts_dir),
            repositories: Repositories::new(settings.chart_repo_url, &settings.chart_repositories),
            repository_dir: Some(settings.data_dir.join("helm-repositories")),
            oci_registries,
        },
        repository_refresh: settings.repository_refresh,
        mode,
        work_dir: settings.data_dir.join("helm-values"),
        max_backoff: MAX_BACKOFF,
        max_parallel: MAX_PARALLEL,
        lease_ttl: sdp_config::LEASE_TTL,
        chart_values: settings.chart_values,
    }
}

/// With a cluster: the processing namespace made sure of, its pods and the network resources followed. A
/// Kubernetes API out of reach is logged and leaves the deployer running without them.
async fn start_monitors(namespace: &str, config: Config, metrics: Metrics) -> Vec<JoinHandle<()>> {
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach Kubernetes: pods and network resources are not monitored");
            return Vec::new();
        }
    };
    match namespace::ensure(client.clone(), namespace).await {
        Ok(Ensured::Created) => tracing::info!(namespace, "processing namespace created"),
        Ok(Ensured::Existed | Ensured::NotVisible) => {}
        Err(e) => tracing::error!(error = %e, "deployments will fail until the processing namespace exists"),
    }
    let monitors = vec![
        tokio::spawn(pods::monitor(client.clone(), namespace.to_string(), config.clone(), metrics.clone())),
        tokio::spawn(resources::monitor(client, config, metrics)),
    ];
    tracing::info!(namespace, "helm deployer started");
    monitors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deployer_is_the_settings_with_the_platforms_lease_and_limits() {
        let settings = Settings {
            namespace: "processing".into(),
            helm: "/opt/helm".into(),
            charts_dir: None,
            chart_repo_url: Some("https://charts.example.org".into()),
            chart_repositories: Repositories::parse("ska=https://ska.example.org").unwrap(),
            repository_refresh: Duration::from_secs(60),
            oci_registries: vec![" registry.example.org ".into(), "".into(), "localhost:5000".into()],
            chart_values: [("dask".to_string(), serde_json::json!({"image": "dask:1"}))].into(),
            data_dir: "/var/lib/sdp".into(),
        };
        let mode = Mode::RenderOnly("/var/lib/sdp/rendered".into());
        let d = deployer(settings.clone(), "/charts".into(), mode.clone(), Config::memory(), Metrics::default());
        assert_eq!(d.helm.bin, PathBuf::from("/opt/helm"));
        assert_eq!(d.helm.namespace, "processing");
        assert_eq!(d.helm.charts_dir, Some(PathBuf::from("/charts")));
        assert_eq!(
            d.helm.repositories.urls().collect::<Vec<_>>(),
            [("helmdeploy", "https://charts.example.org"), ("ska", "https://ska.example.org")]
        );
        assert_eq!(d.helm.repository_dir, Some(PathBuf::from("/var/lib/sdp/helm-repositories")));
        assert_eq!(d.repository_refresh, Duration::from_secs(60));
        assert_eq!(d.helm.oci_registries, ["registry.example.org", "localhost:5000"]);
        assert_eq!(d.mode, mode);
        assert_eq!(d.work_dir, PathBuf::from("/var/lib/sdp/helm-values"));
        assert_eq!((d.max_backoff, d.max_parallel, d.lease_ttl), (MAX_BACKOFF, MAX_PARALLEL, sdp_config::LEASE_TTL));
        assert_eq!(d.chart_values, settings.chart_values);
        let no_repo = deployer(
            Settings { chart_repo_url: None, ..settings.clone() },
            "/c".into(),
            mode,
            Config::memory(),
            Metrics::default(),
        );
        assert_eq!(no_repo.helm.repositories.urls().collect::<Vec<_>>(), [("ska", "https://ska.example.org")]);
    }

    #[test]
    fn local_charts_are_the_folder_named_or_the_bundled_ones_unpacked_into_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let named =
            Settings { charts_dir: Some("/srv/charts".into()), data_dir: dir.path().into(), ..Default::default() };
        assert_eq!(local_charts(&named).unwrap(), PathBuf::from("/srv/charts"));
        assert!(!dir.path().join("charts").exists(), "nothing is unpacked when a folder is named");
        let unnamed = Settings { data_dir: dir.path().into(), ..Default::default() };
        assert_eq!(local_charts(&unnamed).unwrap(), dir.path().join("charts"));
        for chart in bundled::names() {
            assert!(dir.path().join("charts").join(chart).join("Chart.yaml").is_file(), "{chart}");
        }
        let file = dir.path().join("a-file");
        std::fs::write(&file, "not a folder").unwrap();
        let error = local_charts(&Settings { data_dir: file, ..Default::default() }).unwrap_err().to_string();
        assert!(error.contains("cannot unpack the bundled charts") && error.contains("set --charts-dir"), "{error}");
    }
}
