//! The command line: subcommands, options and their environment variables, and the settings of each part that
//! they make.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::{database, lmc_cli};

#[derive(Parser)]
#[command(name = "sdp", version, about = "SKA SDP control and deployment platform")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the platform on this machine until Ctrl-C.
    Up(Box<UpArgs>),
    /// Read and write the SDP devices' attributes and run their commands (through `sdp up`'s LMC surface);
    /// `sdp lmc serve` runs the LMC devices alone.
    Lmc(lmc_cli::LmcArgs),
    /// Run the processing controller alone, on the configuration database at SDP_CONFIG_HOST.
    ProcessingController(ProcessingControllerArgs),
    /// Run the Helm deployer alone, on the configuration database at SDP_CONFIG_HOST.
    HelmDeployer(HelmDeployerArgs),
    /// Run a processing script on a processing block (the processing controller deploys this command).
    Script(RunScriptArgs),
    /// Run the embedded configuration database alone (etcd v3 API), until Ctrl-C or SIGTERM.
    ConfigDb(ConfigDbArgs),
    /// Drop a record that the embedded configuration database cannot replay from its journal (`sdp up` names
    /// it when it refuses to start); the journal is copied aside first.
    RepairJournal(database::RepairArgs),
}

#[derive(clap::Args)]
pub struct RunScriptArgs {
    /// testdask, vis_receive, testdeploy, teststate or test_batch.
    pub name: String,
    /// The processing block to claim and work on.
    pub pb_id: String,
}

#[derive(clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub database: database::DatabaseArgs,
    /// Data directory of the embedded configuration database (and of the Helm deployer's files).
    #[arg(long, env = "SDP_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub lmc: lmc_cli::ServeArgs,
    #[command(flatten)]
    pub namespace: NamespaceArgs,
    #[command(flatten)]
    pub scripts: ScriptArgs,
    #[command(flatten)]
    pub helm: HelmArgs,
    /// Where the staging service (API and web page) listens; its other settings come from the environment
    /// variables of `sdp-staging up`, its storage and user areas default to `<data dir>/staging`.
    #[arg(long, env = "SDP_STAGING_LISTEN", default_value = "127.0.0.1:8000")]
    pub staging_listen: SocketAddr,
    /// Seconds a processing script has to end after SIGTERM before SIGKILL.
    #[arg(long, env = "SDP_SCRIPT_GRACE", default_value_t = 10)]
    pub script_grace: u64,
    /// Process engines the process deployer may run besides the processing scripts, a JSON file
    /// `{"<name>": {"command": ["program", "arg", ...], "env": {...}}}`; entries ask for one by name
    /// (`{"engine": "<name>"}`). Nothing else runs.
    #[arg(long, env = "SDP_PROCESS_ENGINES")]
    pub process_engines: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ConfigDbArgs {
    #[command(flatten)]
    pub database: database::DatabaseArgs,
    /// Data directory of the configuration database.
    #[arg(long, env = "SDP_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct NamespaceArgs {
    /// Namespace processing scripts deploy into (passed to them as env.SDP_HELM_NAMESPACE).
    #[arg(long, env = "SDP_HELM_NAMESPACE", default_value = "sdp")]
    pub helm_namespace: String,
}

#[derive(clap::Args)]
pub struct ScriptArgs {
    /// Configuration-database host given to processing scripts (default: the one this process uses).
    #[arg(long, env = "SDP_SCRIPT_CONFIG_HOST")]
    pub script_config_host: Option<String>,
    /// How processing scripts run: `process` (`sdp script` on this machine, the default of `sdp up`) or
    /// `helm` (the workflow chart, the default of `sdp processing-controller`).
    #[arg(long, env = "SDP_SCRIPT_RUNNER", value_enum)]
    pub script_runner: Option<Runner>,
    /// With the `helm` runner and a database on TLS: the Secret in the scripts' namespace with their client
    /// certificate (ca.crt, tls.crt, tls.key), mounted for SDP_CONFIG_CACERT, SDP_CONFIG_CERT, SDP_CONFIG_KEY.
    #[arg(long, env = "SDP_SCRIPT_TLS_SECRET")]
    pub script_tls_secret: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Runner {
    Process,
    Helm,
}

#[derive(clap::Args)]
pub struct HelmArgs {
    /// Local charts that deployments name (`workflow` → `<dir>/workflow`). Default: the charts carried in
    /// this binary, unpacked into `<data dir>/charts`.
    #[arg(long, env = "SDP_CHARTS_DIR")]
    pub charts_dir: Option<PathBuf>,
    /// Chart repository for charts not found locally (added as `helmdeploy`).
    #[arg(long, env = "SDP_CHART_REPO_URL")]
    pub chart_repo_url: Option<String>,
    /// Chart repositories that entries name as `<repository>/<chart>`, comma-separated `name=url` or
    /// `name=local` (the local charts). `stable=local` is there by default: the seed era's `stable/dask` is the
    /// bundled `dask`.
    #[arg(long, env = "SDP_CHART_REPOS", value_parser = sdp_helmdeploy::repositories::Repositories::parse)]
    pub chart_repos: Option<sdp_helmdeploy::repositories::Repositories>,
    /// Seconds between two fetches of the chart repositories' indexes (never on an install).
    #[arg(long, env = "SDP_CHART_REPO_REFRESH", default_value_t = sdp_helmdeploy::REPOSITORY_REFRESH.as_secs())]
    pub chart_repo_refresh: u64,
    /// OCI registries that `oci://` charts may come from, comma-separated `host` or `host:port` (none by
    /// default: every `oci://` chart is refused).
    #[arg(long, env = "SDP_HELM_OCI_REGISTRIES", value_delimiter = ',')]
    pub helm_oci_registries: Vec<String>,
    /// The helm program.
    #[arg(long, env = "SDP_HELM", default_value = "helm")]
    pub helm: PathBuf,
    /// Values under every deployment's own, by chart as deployments name it, as a JSON object
    /// (`{"dask": {"image": {"repository": "...", "tag": "..."}}}`): a site's images, pull policies or resources
    /// for the charts processing scripts deploy. A deployment's own values win.
    #[arg(long, env = "SDP_HELM_CHART_VALUES", value_parser = sdp_helmdeploy::values::chart_values)]
    pub helm_chart_values: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(clap::Args)]
pub struct OpsArgs {
    /// Where /health (the configuration database answers) and /metrics are served.
    #[arg(long, env = "SDP_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
}

#[derive(clap::Args)]
pub struct ProcessingControllerArgs {
    #[command(flatten)]
    pub namespace: NamespaceArgs,
    #[command(flatten)]
    pub scripts: ScriptArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(clap::Args)]
pub struct HelmDeployerArgs {
    #[command(flatten)]
    pub namespace: NamespaceArgs,
    #[command(flatten)]
    pub helm: HelmArgs,
    /// Where values files (and, without a cluster, rendered manifests) are written.
    #[arg(long, env = "SDP_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub ops: OpsArgs,
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("sdp")
        .join("config-db")
}

impl UpArgs {
    /// The process deployer's settings: the processing scripts, run by this `sdp`, and the engines registered in
    /// --process-engines.
    pub fn process_deployer_settings(
        &self,
        database: &sdp_config::Settings,
    ) -> anyhow::Result<sdp_procdeploy::Settings> {
        let scripts = self.scripts.runner(database, &self.namespace);
        let engines = match &self.process_engines {
            Some(file) => sdp_procdeploy::load_engines(file).map_err(anyhow::Error::msg)?,
            None => Default::default(),
        };
        Ok(sdp_procdeploy::Settings {
            runnable: sdp_procdeploy::Runnable { scripts: Some(scripts), engines },
            log_dir: self.data_dir.join("processes"),
            grace: std::time::Duration::from_secs(self.script_grace),
        })
    }
}

impl ScriptArgs {
    /// How the process deployer runs processing scripts: this `sdp`, told where the configuration database is.
    fn runner(&self, database: &sdp_config::Settings, namespace: &NamespaceArgs) -> sdp_procdeploy::ScriptRunner {
        // Without /proc (a minimal container), the sdp on PATH.
        let program = std::env::current_exe().map_or_else(
            |e| {
                tracing::warn!(error = %e, "cannot tell where this sdp command is; scripts run the sdp on PATH");
                "sdp".to_string()
            },
            |path| path.display().to_string(),
        );
        let env = [
            ("SDP_CONFIG_HOST", self.config_host(database)),
            ("SDP_CONFIG_PORT", database.port.to_string()),
            ("SDP_HELM_NAMESPACE", namespace.helm_namespace.clone()),
        ];
        sdp_procdeploy::ScriptRunner { program, env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
    }

    /// How processing scripts reach the configuration database: as told, else as this process does.
    pub fn config_host(&self, database: &sdp_config::Settings) -> String {
        self.script_config_host.clone().unwrap_or_else(|| database.host.clone())
    }

    /// The processing controller's settings; `default_runner` unless --script-runner says otherwise.
    pub fn controller_settings(
        &self,
        database: &sdp_config::Settings,
        namespace: &NamespaceArgs,
        default_runner: Runner,
    ) -> sdp_proccontrol::ControllerSettings {
        let runner = match self.script_runner.unwrap_or(default_runner) {
            Runner::Helm => sdp_proccontrol::ScriptRunner::Helm { tls_secret: self.script_tls_secret.clone() },
            Runner::Process => sdp_proccontrol::ScriptRunner::Process,
        };
        sdp_proccontrol::ControllerSettings {
            config_host: self.config_host(database),
            config_port: database.port,
            helm_namespace: namespace.helm_namespace.clone(),
            runner,
        }
    }
}

impl HelmArgs {
    /// The Helm deployer's settings, its files under `data_dir`.
    pub fn settings(&self, namespace: &NamespaceArgs, data_dir: &Path) -> sdp_helmdeploy::Settings {
        sdp_helmdeploy::Settings {
            namespace: namespace.helm_namespace.clone(),
            helm: self.helm.clone(),
            charts_dir: self.charts_dir.clone(),
            chart_repo_url: self.chart_repo_url.clone(),
            chart_repositories: self.chart_repos.clone().unwrap_or_default(),
            repository_refresh: std::time::Duration::from_secs(self.chart_repo_refresh.max(1)),
            oci_registries: self.helm_oci_registries.clone(),
            chart_values: self.helm_chart_values.clone().unwrap_or_default(),
            data_dir: data_dir.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scripts(runner: Option<Runner>, config_host: Option<&str>) -> ScriptArgs {
        ScriptArgs {
            script_config_host: config_host.map(str::to_string),
            script_runner: runner,
            script_tls_secret: Some("scripts-tls".into()),
        }
    }

    #[test]
    fn the_controller_runs_scripts_as_told_else_as_the_command_does_by_default() {
        let database = sdp_config::Settings { host: "10.0.0.5".into(), port: 2380, ..Default::default() };
        let namespace = NamespaceArgs { helm_namespace: "processing".into() };
        let helm = sdp_proccontrol::ScriptRunner::Helm { tls_secret: Some("scripts-tls".into()) };
        let process = sdp_proccontrol::ScriptRunner::Process;
        for (runner, default, expected) in [
            (None, Runner::Process, &process),
            (None, Runner::Helm, &helm),
            (Some(Runner::Helm), Runner::Process, &helm),
            (Some(Runner::Process), Runner::Helm, &process),
        ] {
            let settings = scripts(runner, None).controller_settings(&database, &namespace, default);
            assert_eq!(&settings.runner, expected, "{runner:?} over {default:?}");
            assert_eq!((settings.config_host.as_str(), settings.config_port), ("10.0.0.5", 2380));
            assert_eq!(settings.helm_namespace, "processing");
        }
        let told = scripts(None, Some("etcd.sdp")).controller_settings(&database, &namespace, Runner::Helm);
        assert_eq!(told.config_host, "etcd.sdp", "--script-config-host wins over the host this process uses");
    }
}
