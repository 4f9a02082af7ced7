//! `ska-tango-operator run` reconciles DeviceServer and DatabaseDS resources; `ska-tango-operator crdgen` writes
//! their CustomResourceDefinitions (generated from the Rust types).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use prometheus_client::registry::Registry;
use tango_operator::controller::{self, Context};
use tango_operator::leader::LeaderElection;
use tango_operator::metrics::Metrics;
use tango_operator::objects::Settings;
use tracing::{error, info};

#[derive(Parser)]
#[command(
    name = "ska-tango-operator",
    version,
    about = "Kubernetes operator for Tango DeviceServer and DatabaseDS resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile DeviceServer and DatabaseDS resources until SIGTERM/Ctrl-C.
    Run(RunArgs),
    /// Write the CustomResourceDefinitions: one YAML file per resource into DIR, or all to stdout.
    Crdgen {
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "OPERATOR_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    /// Only this namespace (default: all).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Elect a leader among replicas through a Lease in POD_NAMESPACE.
    #[arg(long, env = "LEADER_ELECT", default_value_t = false)]
    leader_elect: bool,
    /// Namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pod_namespace: String,
    /// Tango DB (MariaDB with the Tango schema) image of DatabaseDS resources.
    #[arg(long, env = "TANGODB_IMAGE", default_value_t = Settings::default().tangodb_image)]
    tangodb_image: String,
    /// DataBaseds image of DatabaseDS resources.
    #[arg(long, env = "DATABASEDS_IMAGE", default_value_t = Settings::default().databaseds_image)]
    databaseds_image: String,
    /// Size of a DatabaseDS's Tango DB volume (with usePV).
    #[arg(long, env = "TANGODB_STORAGE", default_value_t = Settings::default().tangodb_storage)]
    tangodb_storage: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sdp_daemon::init_tracing("info,kube=warn");
    match Cli::parse().command {
        Command::Crdgen { out_dir } => crdgen(out_dir),
        Command::Run(args) => run(args).await,
    }
}

fn crdgen(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    for (file, yaml) in tango_operator::crd::crd_documents() {
        match &out_dir {
            Some(dir) => {
                let path = dir.join(file);
                std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            }
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes API: run in a pod with a service account, or set KUBECONFIG")?;
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    // Ready once this replica reconciles: it leads, or leader election is off.
    let leading = Arc::clone(&ready);
    let ready_check: sdp_daemon::http::ReadyCheck = Arc::new(move || {
        let leading = leading.load(Ordering::Relaxed);
        Box::pin(async move {
            if leading {
                Ok(())
            } else {
                Err("not leading".to_string())
            }
        })
    });
    let listener = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("cannot listen on {} (OPERATOR_HTTP_LISTEN)", args.http_listen))?;
    info!(address = %args.http_listen, "serving /metrics, /healthz, /readyz");
    tokio::spawn(async move { axum::serve(listener, sdp_daemon::http::router(registry, ready_check)).await });

    let election = args.leader_elect.then(|| {
        let identity =
            std::env::var("POD_NAME").unwrap_or_else(|_| format!("ska-tango-operator-{}", std::process::id()));
        LeaderElection::new(
            client.clone(),
            &args.pod_namespace,
            "ska-tango-operator",
            identity,
            Duration::from_secs(15),
        )
    });
    if let Some(election) = &election {
        election.acquire().await;
    }
    ready.store(true, Ordering::Relaxed);
    let settings = Settings {
        tangodb_image: args.tangodb_image,
        databaseds_image: args.databaseds_image,
        tangodb_storage: args.tangodb_storage,
    };
    let ctx = Arc::new(Context::new(client, settings, metrics));
    let lost = async {
        match &election {
            Some(election) => election.hold().await,
            None => std::future::pending().await,
        }
    };
    info!(namespace = args.namespace.as_deref().unwrap_or("(all)"), "reconciling DeviceServer and DatabaseDS");
    tokio::select! {
        () = controller::run(ctx, args.namespace, sdp_daemon::shutdown_signal()) => Ok(()),
        () = lost => {
            error!("leadership lost: stopping so that another replica takes over");
            anyhow::bail!("leader lease lost")
        }
    }
}
