//! `sdp-staging up`: the staging service.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "sdp-staging", about = "Stages data for users by copy, symlink, download or JupyterHub upload")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the staging API and its web page (configuration: flags, environment, --config FILE).
    Up(sdp_staging::UpArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Up(args) = Cli::parse().command;
    let settings = args.settings()?;
    tracing_subscriber::fmt().with_env_filter(EnvFilter::new(&settings.log_filter)).init();
    let running = sdp_staging::start(settings).await?;
    running.until(shutdown_signal()).await?;
    tracing::info!("staging service stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM (what Kubernetes sends).
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
