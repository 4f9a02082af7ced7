//! `sdp`: the platform's main command.
//!
//! `sdp up` starts the embedded configuration database (etcd v3 API) with its data directory, or uses the
//! etcd named by `SDP_CONFIG_HOST`, the processing controller, the Helm deployer, the process deployer (which
//! runs the processing scripts) and the LMC devices' HTTP surface, and runs until Ctrl-C. `sdp lmc …` talks
//! to those devices. `sdp processing-controller`, `sdp helm-deployer` and `sdp lmc serve` run one component
//! each (as the charts deploy them); `sdp script <name> <pb_id>` runs a processing script.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use prometheus_client::registry::Registry;
use sdp_config::{Config, Settings};
use tokio::task::JoinHandle;

mod database;
mod lmc_cli;

#[derive(Parser)]
#[command(name = "sdp", version, about = "SKA SDP control and deployment platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Drop a record that the embedded configuration database cannot replay from its journal (`sdp up` names
    /// it when it refuses to start); the journal is copied aside first.
    RepairJournal(database::RepairArgs),
}

#[derive(clap::Args)]
struct RunScriptArgs {
    /// testdask, vis_receive, testdeploy, teststate or test_batch.
    name: String,
    /// The processing block to claim and work on.
    pb_id: String,
}

#[derive(clap::Args)]
struct UpArgs {
    #[command(flatten)]
    database: database::DatabaseArgs,
    /// Data directory of the embedded configuration database (and of the Helm deployer's files).
    #[arg(long, env = "SDP_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    #[command(flatten)]
    lmc: lmc_cli::ServeArgs,
    #[command(flatten)]
    namespace: NamespaceArgs,
    #[command(flatten)]
    scripts: ScriptArgs,
    #[command(flatten)]
    helm: HelmArgs,
    /// Where the staging service (API and web page) listens; its other settings come from the environment
    /// variables of `sdp-staging up`, its storage and user areas default to `<data dir>/staging`.
    #[arg(long, env = "SDP_STAGING_LISTEN", default_value = "127.0.0.1:8000")]
    staging_listen: SocketAddr,
    /// Seconds a processing script has to end after SIGTERM before SIGKILL.
    #[arg(long, env = "SDP_SCRIPT_GRACE", default_value_t = 10)]
    script_grace: u64,
    /// Process engines the process deployer may run besides the processing scripts, a JSON file
    /// `{"<name>": {"command": ["program", "arg", ...], "env": {...}}}`; entries ask for one by name
    /// (`{"engine": "<name>"}`). Nothing else runs.
    #[arg(long, env = "SDP_PROCESS_ENGINES")]
    process_engines: Option<PathBuf>,
}

/// The staging service's settings from its own environment variables (`sdp-staging up`'s).
#[derive(Parser)]
struct StagingEnv {
    #[command(flatten)]
    args: sdp_staging::UpArgs,
}

#[derive(clap::Args)]
struct NamespaceArgs {
    /// Namespace processing scripts deploy into (passed to them as env.SDP_HELM_NAMESPACE).
    #[arg(long, env = "SDP_HELM_NAMESPACE", default_value = "sdp")]
    helm_namespace: String,
}

#[derive(clap::Args)]
struct ScriptArgs {
    /// Configuration-database host given to processing scripts (default: the one this process uses).
    #[arg(long, env = "SDP_SCRIPT_CONFIG_HOST")]
    script_config_host: Option<String>,
    /// How processing scripts run: `process` (`sdp script` on this machine, the default of `sdp up`) or
    /// `helm` (the workflow chart, the default of `sdp processing-controller`).
    #[arg(long, env = "SDP_SCRIPT_RUNNER", value_enum)]
    script_runner: Option<Runner>,
    /// With the `helm` runner and a database on TLS: the Secret in the scripts' namespace with their client
    /// certificate (ca.crt, tls.crt, tls.key), mounted for SDP_CONFIG_CACERT, SDP_CONFIG_CERT, SDP_CONFIG_KEY.
    #[arg(long, env = "SDP_SCRIPT_TLS_SECRET")]
    script_tls_secret: Option<String>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Runner {
    Process,
    Helm,
}

#[derive(clap::Args)]
struct HelmArgs {
    /// Local charts that deployments name (`workflow` → `<dir>/workflow`). Default: the charts carried in
    /// this binary, unpacked into `<data dir>/charts`.
    #[arg(long, env = "SDP_CHARTS_DIR")]
    charts_dir: Option<PathBuf>,
    /// Chart repository for charts not found locally (added as `helmdeploy`).
    #[arg(long, env = "SDP_CHART_REPO_URL")]
    chart_repo_url: Option<String>,
    /// OCI registries that `oci://` charts may come from, comma-separated `host` or `host:port` (none by
    /// default: every `oci://` chart is refused).
    #[arg(long, env = "SDP_HELM_OCI_REGISTRIES", value_delimiter = ',')]
    helm_oci_registries: Vec<String>,
    /// The helm program.
    #[arg(long, env = "SDP_HELM", default_value = "helm")]
    helm: PathBuf,
    /// Values under every deployment's own, by chart as deployments name it, as a JSON object
    /// (`{"dask": {"image": {"repository": "...", "tag": "..."}}}`): a site's images, pull policies or resources
    /// for the charts processing scripts deploy. A deployment's own values win.
    #[arg(long, env = "SDP_HELM_CHART_VALUES", value_parser = sdp_helmdeploy::values::chart_values)]
    helm_chart_values: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

#[derive(clap::Args)]
struct OpsArgs {
    /// Where /health (the configuration database answers) and /metrics are served.
    #[arg(long, env = "SDP_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
}

#[derive(clap::Args)]
struct ProcessingControllerArgs {
    #[command(flatten)]
    namespace: NamespaceArgs,
    #[command(flatten)]
    scripts: ScriptArgs,
    #[command(flatten)]
    ops: OpsArgs,
}

#[derive(clap::Args)]
struct HelmDeployerArgs {
    #[command(flatten)]
    namespace: NamespaceArgs,
    #[command(flatten)]
    helm: HelmArgs,
    /// Where values files (and, without a cluster, rendered manifests) are written.
    #[arg(long, env = "SDP_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    #[command(flatten)]
    ops: OpsArgs,
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("sdp")
        .join("config-db")
}

fn main() -> anyhow::Result<()> {
    sdp_ops::init_tracing("info");
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Up(args) => runtime.block_on(up(*args)),
        Command::Lmc(args) => match args.serve_args() {
            Some(serve) => runtime.block_on(lmc_serve(serve)),
            None => runtime.block_on(lmc_cli::run(args)),
        },
        Command::ProcessingController(args) => runtime.block_on(processing_controller(args)),
        Command::HelmDeployer(args) => runtime.block_on(helm_deployer(args)),
        Command::RepairJournal(args) => database::repair_journal(&args),
        Command::Script(args) => {
            drop(runtime);
            // One thread: a script mostly waits, and a hundred of them run at once.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(sdp_scripting::scripts::run(&args.name, &args.pb_id))?;
            Ok(())
        }
    }
}

/// Connects to the configuration database SDP_CONFIG_HOST/SDP_CONFIG_PORT name and checks that it answers.
async fn connect(settings: &Settings) -> anyhow::Result<Config> {
    Ok(try_connect(settings).await?)
}

async fn try_connect(settings: &Settings) -> Result<Config, sdp_config::Error> {
    let config = Config::connect(settings).await?;
    // Fail early, with a clear message, if the database cannot be used.
    config.txn(|t| async move { t.list_keys("/", 0).await }).await?;
    Ok(config)
}

/// The daemons' connection: a database that cannot be reached yet (in a cluster it starts beside them) is
/// waited for, each failure logged, rather than ending the process for its supervisor to restart it with ever
/// longer pauses; any other error (TLS, a refused request) ends the start at once. None when stopped first.
async fn connect_when_reachable(
    settings: &Settings,
    stop: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> anyhow::Result<Option<Config>> {
    let mut backoff = sdp_ops::retry::Backoff::new(sdp_ops::retry::Policy::DATABASE);
    loop {
        let error = match try_connect(settings).await {
            Ok(config) => return Ok(Some(config)),
            Err(e @ sdp_config::Error::Unreachable { .. }) => e,
            Err(e) => return Err(e.into()),
        };
        tokio::select! {
            () = backoff.wait_after("connecting to the configuration database", &error) => {}
            () = &mut *stop => return Ok(None),
        }
    }
}

fn start_processing_controller(
    config: &Config,
    settings: &Settings,
    namespace: &NamespaceArgs,
    scripts: &ScriptArgs,
    default_runner: Runner,
    registry: &mut Registry,
) -> JoinHandle<()> {
    let metrics = sdp_processing::Metrics::register(registry);
    let runner = match scripts.script_runner.unwrap_or(default_runner) {
        Runner::Helm => sdp_processing::ScriptRunner::Helm { tls_secret: scripts.script_tls_secret.clone() },
        Runner::Process => sdp_processing::ScriptRunner::Process,
    };
    tracing::info!(?runner, "processing scripts");
    let handle = tokio::spawn(sdp_processing::run(sdp_processing::Controller {
        config: config.clone(),
        scripts: sdp_processing::builtin_scripts(),
        settings: sdp_processing::ControllerSettings {
            config_host: scripts.script_config_host.clone().unwrap_or_else(|| settings.host.clone()),
            config_port: settings.port,
            helm_namespace: namespace.helm_namespace.clone(),
            runner,
        },
        lease_ttl: 10,
        metrics,
    }));
    tracing::info!("processing controller started");
    handle
}

/// How the process deployer runs processing scripts: this `sdp`, told where the configuration database is.
fn script_runner(settings: &Settings, scripts: &ScriptArgs, namespace: &NamespaceArgs) -> sdp_procdeploy::ScriptRunner {
    // Without /proc (a minimal container), the sdp on PATH.
    let program = std::env::current_exe().map_or_else(
        |e| {
            tracing::warn!(error = %e, "cannot tell where this sdp command is; scripts run the sdp on PATH");
            "sdp".to_string()
        },
        |path| path.display().to_string(),
    );
    let host = scripts.script_config_host.clone().unwrap_or_else(|| settings.host.clone());
    let env = [
        ("SDP_CONFIG_HOST", host),
        ("SDP_CONFIG_PORT", settings.port.to_string()),
        ("SDP_HELM_NAMESPACE", namespace.helm_namespace.clone()),
    ];
    sdp_procdeploy::ScriptRunner {
        program,
        names: sdp_scripting::scripts::NAMES.iter().map(|n| n.to_string()).collect(),
        env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

/// The Helm deployer and, with a cluster, its pod and network-resource monitors.
async fn start_helm_deployer(
    config: &Config,
    namespace: &NamespaceArgs,
    helm: &HelmArgs,
    data_dir: &std::path::Path,
    registry: &mut Registry,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let metrics = sdp_helmdeploy::metrics::Metrics::register(registry);
    let namespace = namespace.helm_namespace.clone();
    let mode = sdp_helmdeploy::Mode::detect(data_dir.join("rendered"));
    let charts_dir = match &helm.charts_dir {
        Some(dir) => dir.clone(),
        None => {
            let dir = data_dir.join("charts");
            sdp_helmdeploy::bundled::unpack(&dir).with_context(|| {
                format!(
                    "cannot unpack the bundled charts into {}: check its permissions or set --charts-dir",
                    dir.display()
                )
            })?;
            dir
        }
    };
    tracing::info!(dir = %charts_dir.display(), "local charts");
    let mut tasks = vec![tokio::spawn(sdp_helmdeploy::run(sdp_helmdeploy::Deployer {
        config: config.clone(),
        metrics: metrics.clone(),
        helm: sdp_helmdeploy::helm::Helm {
            bin: helm.helm.clone(),
            namespace: namespace.clone(),
            charts_dir: Some(charts_dir),
            repo: helm.chart_repo_url.clone().map(|url| (sdp_helmdeploy::helm::REPOSITORY.to_string(), url)),
            oci_registries: helm
                .helm_oci_registries
                .iter()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect(),
        },
        mode: mode.clone(),
        work_dir: data_dir.join("helm-values"),
        max_backoff: std::time::Duration::from_secs(300),
        max_parallel: 8,
        lease_ttl: 10,
        chart_values: helm.helm_chart_values.clone().unwrap_or_default(),
    }))];
    match &mode {
        sdp_helmdeploy::Mode::Cluster => match kube::Client::try_default().await {
            Ok(client) => {
                match sdp_helmdeploy::namespace::ensure(client.clone(), &namespace).await {
                    Ok(sdp_helmdeploy::namespace::Ensured::Created) => {
                        tracing::info!(namespace, "processing namespace created")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "deployments will fail until the processing namespace exists")
                    }
                }
                tasks.push(tokio::spawn(sdp_helmdeploy::pods::monitor(
                    client.clone(),
                    namespace.clone(),
                    config.clone(),
                    metrics.clone(),
                )));
                tasks.push(tokio::spawn(sdp_helmdeploy::resources::monitor(client, config.clone(), metrics)));
                tracing::info!(namespace, "helm deployer started");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach Kubernetes: pods and network resources are not monitored")
            }
        },
        sdp_helmdeploy::Mode::RenderOnly(dir) => {
            tracing::info!(dir = %dir.display(), "helm deployer started in render-only mode (no cluster)")
        }
    }
    Ok(tasks)
}

/// `/healthz` (alive), `/readyz` (the configuration database answers; `/health` too) and `/metrics`.
fn ops_router(registry: Registry, config: Config) -> axum::Router {
    sdp_ops::http::router(registry, database_ready(config))
}

async fn serve_http(listen: SocketAddr, app: axum::Router, what: &str) -> anyhow::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} for {what}: choose another address"))?;
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }))
}

/// Runs until `stop` (Ctrl-C/SIGTERM) resolves, then stops the tasks.
async fn until_stopped(stop: impl std::future::Future<Output = ()>, tasks: Vec<JoinHandle<()>>) {
    stop.await;
    tracing::info!("stopping");
    tasks.iter().for_each(|t| t.abort());
}

async fn processing_controller(args: ProcessingControllerArgs) -> anyhow::Result<()> {
    let mut stop = Box::pin(sdp_ops::shutdown_signal());
    let settings = Settings::from_env()?;
    let Some(config) = connect_when_reachable(&settings, &mut stop).await? else { return Ok(()) };
    let mut registry = Registry::default();
    let controller =
        start_processing_controller(&config, &settings, &args.namespace, &args.scripts, Runner::Helm, &mut registry);
    let http = serve_http(
        args.ops.http_listen,
        ops_router(registry, config),
        "/healthz, /readyz and /metrics (SDP_HTTP_LISTEN)",
    )
    .await?;
    until_stopped(stop, vec![controller, http]).await;
    Ok(())
}

async fn helm_deployer(args: HelmDeployerArgs) -> anyhow::Result<()> {
    let mut stop = Box::pin(sdp_ops::shutdown_signal());
    let settings = Settings::from_env()?;
    let Some(config) = connect_when_reachable(&settings, &mut stop).await? else { return Ok(()) };
    let mut registry = Registry::default();
    let mut tasks = start_helm_deployer(&config, &args.namespace, &args.helm, &args.data_dir, &mut registry).await?;
    tasks.push(
        serve_http(
            args.ops.http_listen,
            ops_router(registry, config),
            "/healthz, /readyz and /metrics (SDP_HTTP_LISTEN)",
        )
        .await?,
    );
    until_stopped(stop, tasks).await;
    Ok(())
}

async fn lmc_serve(args: &lmc_cli::ServeArgs) -> anyhow::Result<()> {
    let mut stop = Box::pin(sdp_ops::shutdown_signal());
    args.token()?;
    let settings = Settings::from_env()?;
    let Some(config) = connect_when_reachable(&settings, &mut stop).await? else { return Ok(()) };
    let (lmc, http) = start_lmc(&config, args, Registry::default()).await?;
    let tango = start_tango_if_configured(&lmc).await?;
    until_stopped(stop, vec![http]).await;
    stop_tango(tango).await;
    Ok(())
}

async fn start_lmc(
    config: &Config,
    args: &lmc_cli::ServeArgs,
    registry: Registry,
) -> anyhow::Result<(Arc<sdp_lmc::Lmc>, JoinHandle<()>)> {
    let token = args.token()?;
    let lmc = sdp_lmc::Lmc::start(config.clone(), args.subarrays);
    let mut devices = sdp_lmc::http::router(Arc::clone(&lmc));
    if let Some(token) = token {
        devices = sdp_ops::http::require_bearer(devices, token, lmc_unauthorized);
    }
    // The probes and metrics stay open.
    let app = devices.merge(ops_router(registry, config.clone()));
    let http = serve_http(args.lmc_listen, app, "the LMC surface (--lmc-listen)").await?;
    tracing::info!(listen = %args.lmc_listen, "LMC devices (mid_sdp/elt/master, mid_sdp/elt/subarray_N) over HTTP: try `sdp lmc devices`");
    Ok((lmc, http))
}

/// The LMC surface's answer to a request without its bearer token, in its error format.
fn lmc_unauthorized() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let body = serde_json::json!({
        "kind": "Unauthorized", "reason": "API_Unauthorized",
        "desc": "missing or wrong token: send `Authorization: Bearer <token>` with the platform's SDP_LMC_TOKEN",
    });
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    (axum::http::StatusCode::UNAUTHORIZED, json, body.to_string()).into_response()
}

async fn start_tango_if_configured(lmc: &Arc<sdp_lmc::Lmc>) -> anyhow::Result<Option<sdp_tango::TangoServers>> {
    match std::env::var("TANGO_HOST") {
        Ok(tango_host) => Ok(Some(start_tango(&tango_host, Arc::clone(lmc)).await?)),
        Err(_) => {
            tracing::info!("TANGO_HOST not set: the SDP devices are served over HTTP only");
            Ok(None)
        }
    }
}

async fn stop_tango(tango: Option<sdp_tango::TangoServers>) {
    if let Some(tango) = tango {
        let _ = tokio::task::spawn_blocking(move || tango.stop()).await;
    }
}

/// The staging service on `--staging-listen`, storage and user areas under the data directory unless
/// SOURCE_STORAGE_PATH/TARGET_STORAGE_PATH (or the other `sdp-staging up` variables) say otherwise.
async fn start_staging(args: &UpArgs) -> anyhow::Result<sdp_staging::Running> {
    let mut staging = StagingEnv::try_parse_from(["sdp up"]).context("staging service environment")?.args;
    let root = args.data_dir.join("staging");
    staging.listen = Some(args.staging_listen.to_string());
    let source = staging.source_storage_path.get_or_insert_with(|| root.join("storage")).clone();
    let target = staging.target_storage_path.get_or_insert_with(|| root.join("user_areas")).clone();
    staging.data_dir.get_or_insert(root);
    for dir in [&source, &target] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let running = sdp_staging::start(staging.settings()?).await.with_context(|| {
        format!("cannot start the staging service on {}: choose another with --staging-listen", args.staging_listen)
    })?;
    tracing::info!(listen = %running.addr, storage = %source.display(), user_areas = %target.display(), "staging service (API and web page) up");
    Ok(running)
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let stop = sdp_ops::shutdown_signal();
    // Refused before anything starts.
    args.lmc.token()?;
    let external = std::env::var("SDP_CONFIG_HOST").is_ok();
    let embedded = if external {
        None
    } else {
        sdp_etcd_server::raise_open_files_limit();
        Some(sdp_etcd_server::start(args.database.server_config(args.data_dir.clone())?).await?)
    };
    let settings = match &embedded {
        Some(server) => {
            Settings { host: server.addr.ip().to_string(), port: server.addr.port(), ..Settings::from_env()? }
        }
        None => Settings::from_env()?,
    };
    let config = connect(&settings).await?;
    match &embedded {
        Some(server) => tracing::info!(
            listen = %server.addr,
            data_dir = %args.data_dir.display(),
            "embedded configuration database ready: export SDP_CONFIG_HOST={} SDP_CONFIG_PORT={}",
            server.addr.ip(),
            server.addr.port()
        ),
        None => {
            tracing::info!(host = %settings.host, port = settings.port, "using the configuration database at SDP_CONFIG_HOST")
        }
    }
    let mut registry = Registry::default();
    let mut tasks = vec![start_processing_controller(
        &config,
        &settings,
        &args.namespace,
        &args.scripts,
        Runner::Process,
        &mut registry,
    )];
    tasks.extend(start_helm_deployer(&config, &args.namespace, &args.helm, &args.data_dir, &mut registry).await?);
    let runnable = sdp_procdeploy::Runnable {
        scripts: Some(script_runner(&settings, &args.scripts, &args.namespace)),
        engines: match &args.process_engines {
            Some(file) => sdp_procdeploy::load_engines(file).map_err(anyhow::Error::msg)?,
            None => Default::default(),
        },
    };
    tracing::info!(engines = ?runnable.engines.keys().collect::<Vec<_>>(), "process engines registered");
    let processes = sdp_procdeploy::start(sdp_procdeploy::ProcessDeployer {
        config: config.clone(),
        runnable,
        log_dir: args.data_dir.join("processes"),
        grace: std::time::Duration::from_secs(args.script_grace),
        lease_ttl: 10,
        metrics: sdp_procdeploy::Metrics::register(&mut registry),
    });
    tracing::info!(logs = %args.data_dir.join("processes").display(), "process deployer started");
    let (lmc, http) = start_lmc(&config, &args.lmc, registry).await?;
    tasks.push(http);
    let tango = start_tango_if_configured(&lmc).await?;
    let staging = start_staging(&args).await?;
    tracing::info!("platform up; press Ctrl-C to stop");
    stop.await;
    tracing::info!("stopping");
    // Scripts first, while the database and deployers they clean up through still run.
    processes.stop().await;
    tasks.iter().for_each(|t| t.abort());
    stop_tango(tango).await;
    if let Err(e) = staging.stop().await {
        tracing::warn!(error = %e, "the staging service did not stop cleanly");
    }
    if let Some(server) = embedded {
        server.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Ready while the configuration database answers within two seconds; else the reason.
fn database_ready(config: Config) -> sdp_ops::http::ReadyCheck {
    Arc::new(move || {
        let config = config.clone();
        Box::pin(async move {
            let check = config.txn(|t| async move { t.list_keys("/", 0).await });
            match tokio::time::timeout(std::time::Duration::from_secs(2), check).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the configuration database did not answer within 2 s".into()),
            }
        })
    })
}

/// Registers the SDP devices in the Tango database at `tango_host` (host:port) and serves them.
async fn start_tango(tango_host: &str, lmc: Arc<sdp_lmc::Lmc>) -> anyhow::Result<sdp_tango::TangoServers> {
    let (host, port) = tango_host
        .split(',')
        .next()
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .with_context(|| format!("TANGO_HOST={tango_host:?} is not host:port"))?;
    let runtime = tokio::runtime::Handle::current();
    // The address clients are told to use: this host as the Tango database sees it, loopback for a local one.
    let advertised =
        if host == "localhost" || host.starts_with("127.") { "127.0.0.1".to_string() } else { String::new() };
    let servers = tokio::task::spawn_blocking(move || {
        let db = sdp_tango::DatabaseProxy::new(&host, port);
        sdp_tango::serve(db, &advertised, lmc, runtime)
    })
    .await?
    .map_err(|e| anyhow::anyhow!("cannot serve the SDP devices in the Tango database at {tango_host}: {e}"))?;
    tracing::info!(tango_host, "SDP devices exported to Tango (SDPMaster/1, SDPSubarray/N)");
    Ok(servers)
}
