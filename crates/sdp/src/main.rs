//! `sdp`: the platform's main command.
//!
//! `sdp up` starts the embedded configuration database (etcd v3 API) with its data directory, or uses the
//! etcd named by `SDP_CONFIG_HOST`, and the LMC devices' HTTP surface, and runs until Ctrl-C.
//! `sdp lmc …` talks to those devices.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::response::IntoResponse;
use clap::{Parser, Subcommand};
use sdp_config::{Config, Settings};

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
    Up(UpArgs),
    /// Read and write the SDP devices' attributes and run their commands (through `sdp up`'s LMC surface).
    Lmc(lmc_cli::LmcArgs),
}

#[derive(clap::Args)]
struct UpArgs {
    /// Where the embedded configuration database listens (ignored when SDP_CONFIG_HOST is set).
    #[arg(long, env = "SDP_CONFIG_LISTEN", default_value = "127.0.0.1:2379")]
    config_listen: SocketAddr,
    /// Data directory of the embedded configuration database.
    #[arg(long, env = "SDP_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// Where the LMC devices' HTTP/JSON surface listens.
    #[arg(long, env = "SDP_LMC_LISTEN", default_value = "127.0.0.1:8080")]
    lmc_listen: SocketAddr,
    /// Number of subarray devices.
    #[arg(long, default_value_t = 1)]
    subarrays: usize,
    /// Namespace processing scripts deploy into (passed to them as env.SDP_HELM_NAMESPACE).
    #[arg(long, env = "SDP_HELM_NAMESPACE", default_value = "sdp")]
    helm_namespace: String,
    /// Configuration-database host given to processing scripts (default: the one this process uses).
    #[arg(long, env = "SDP_SCRIPT_CONFIG_HOST")]
    script_config_host: Option<String>,
    /// Local charts that deployments name (`workflow` → `<dir>/workflow`).
    #[arg(long, env = "SDP_CHARTS_DIR", default_value = "charts")]
    charts_dir: PathBuf,
    /// Chart repository for charts not found locally (added as `helmdeploy`).
    #[arg(long, env = "SDP_CHART_REPO_URL")]
    chart_repo_url: Option<String>,
    /// The helm program.
    #[arg(long, env = "SDP_HELM", default_value = "helm")]
    helm: PathBuf,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Up(args) => runtime.block_on(up(args)),
        Command::Lmc(args) => runtime.block_on(lmc_cli::run(args)),
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let external = std::env::var("SDP_CONFIG_HOST").is_ok();
    let embedded = if external {
        None
    } else {
        let config = sdp_etcd_server::ServerConfig {
            listen: args.config_listen,
            data_dir: Some(args.data_dir.clone()),
            ..Default::default()
        };
        Some(sdp_etcd_server::start(config).await?)
    };
    let settings = match &embedded {
        Some(server) => Settings { host: server.addr.ip().to_string(), port: server.addr.port(), ..Settings::from_env()? },
        None => Settings::from_env()?,
    };
    // Fail early, with a clear message, if the database cannot be used.
    let config = Config::connect(&settings).await?;
    config.txn(|t| async move { t.list_keys("/", 0).await }).await?;
    match &embedded {
        Some(server) => tracing::info!(
            listen = %server.addr,
            data_dir = %args.data_dir.display(),
            "embedded configuration database ready: export SDP_CONFIG_HOST={} SDP_CONFIG_PORT={}",
            server.addr.ip(),
            server.addr.port()
        ),
        None => tracing::info!(host = %settings.host, port = settings.port, "using the configuration database at SDP_CONFIG_HOST"),
    }
    let mut registry = prometheus_client::registry::Registry::default();
    let controller_metrics = sdp_processing::Metrics::register(&mut registry);
    let controller = tokio::spawn(sdp_processing::run(sdp_processing::Controller {
        config: config.clone(),
        scripts: sdp_processing::builtin_scripts(),
        settings: sdp_processing::ControllerSettings {
            config_host: args.script_config_host.clone().unwrap_or_else(|| settings.host.clone()),
            helm_namespace: args.helm_namespace.clone(),
        },
        lease_ttl: 10,
        metrics: controller_metrics,
    }));
    tracing::info!("processing controller started");
    let deployer_metrics = sdp_helmdeploy::metrics::Metrics::register(&mut registry);
    let mode = sdp_helmdeploy::Mode::detect(args.data_dir.join("rendered"));
    let deployer = tokio::spawn(sdp_helmdeploy::run(sdp_helmdeploy::Deployer {
        config: config.clone(),
        metrics: deployer_metrics.clone(),
        helm: sdp_helmdeploy::helm::Helm {
            bin: args.helm.clone(),
            namespace: args.helm_namespace.clone(),
            charts_dir: Some(args.charts_dir.clone()),
            repo: args.chart_repo_url.clone().map(|url| ("helmdeploy".to_string(), url)),
        },
        mode: mode.clone(),
        work_dir: args.data_dir.join("helm-values"),
        max_backoff: std::time::Duration::from_secs(300),
        max_parallel: 8,
    }));
    let mut monitors = Vec::new();
    if mode == sdp_helmdeploy::Mode::Cluster {
        match kube::Client::try_default().await {
            Ok(client) => {
                monitors.push(tokio::spawn(sdp_helmdeploy::pods::monitor(client.clone(), args.helm_namespace.clone(), config.clone(), deployer_metrics.clone())));
                monitors.push(tokio::spawn(sdp_helmdeploy::resources::monitor(client, config.clone(), deployer_metrics.clone())));
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach Kubernetes: pods and network resources are not monitored"),
        }
    }
    match &mode {
        sdp_helmdeploy::Mode::Cluster => tracing::info!(namespace = args.helm_namespace, "helm deployer started"),
        sdp_helmdeploy::Mode::RenderOnly(dir) => {
            tracing::info!(dir = %dir.display(), "helm deployer started in render-only mode (no cluster)")
        }
    }
    let lmc = sdp_lmc::Lmc::start(config.clone(), args.subarrays);
    let listener = tokio::net::TcpListener::bind(args.lmc_listen)
        .await
        .with_context(|| format!("cannot listen on {} for the LMC surface: choose another with --lmc-listen", args.lmc_listen))?;
    let lmc_server = {
        let lmc = Arc::clone(&lmc);
        let registry = Arc::new(registry);
        let metrics = axum::routing::get(move || {
            let registry = Arc::clone(&registry);
            async move {
                let mut text = String::new();
                match prometheus_client::encoding::text::encode(&mut text, &registry) {
                    Ok(()) => ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response(),
                    Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                }
            }
        });
        let health_config = config.clone();
        let health = axum::routing::get(move || {
            let config = health_config.clone();
            async move { health(&config).await }
        });
        let app = sdp_lmc::http::router(lmc).route("/metrics", metrics).route("/health", health);
        tokio::spawn(async move { axum::serve(listener, app).await })
    };
    tracing::info!(listen = %args.lmc_listen, "LMC devices (mid_sdp/elt/master, mid_sdp/elt/subarray_N) over HTTP: try `sdp lmc devices`");
    let tango = match std::env::var("TANGO_HOST") {
        Ok(tango_host) => Some(start_tango(&tango_host, Arc::clone(&lmc)).await?),
        Err(_) => {
            tracing::info!("TANGO_HOST not set: the SDP devices are served over HTTP only");
            None
        }
    };
    tracing::info!("platform up; press Ctrl-C to stop");
    shutdown_signal().await;
    tracing::info!("stopping");
    if let Some(tango) = tango {
        let _ = tokio::task::spawn_blocking(move || tango.stop()).await;
    }
    lmc_server.abort();
    controller.abort();
    deployer.abort();
    monitors.iter().for_each(|m| m.abort());
    if let Some(server) = embedded {
        server.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// `ok` while the configuration database answers (within two seconds), else 503 with the reason.
async fn health(config: &Config) -> axum::response::Response {
    let check = config.txn(|t| async move { t.list_keys("/", 0).await });
    match tokio::time::timeout(std::time::Duration::from_secs(2), check).await {
        Ok(Ok(_)) => "ok".into_response(),
        Ok(Err(e)) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        Err(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "the configuration database did not answer within 2 s")
            .into_response(),
    }
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
    let advertised = if host == "localhost" || host.starts_with("127.") { "127.0.0.1".to_string() } else { String::new() };
    let servers = tokio::task::spawn_blocking(move || {
        let db = sdp_tango::DatabaseProxy::new(&host, port);
        sdp_tango::serve(db, &advertised, lmc, runtime)
    })
    .await?
    .map_err(|e| anyhow::anyhow!("cannot serve the SDP devices in the Tango database at {tango_host}: {e}"))?;
    tracing::info!(tango_host, "SDP devices exported to Tango (SDPMaster/1, SDPSubarray/N)");
    Ok(servers)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
