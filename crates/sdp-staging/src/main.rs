//! `sdp-staging up`: the staging service.

use clap::{Parser, Subcommand};

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
    sdp_daemon::init_tracing(&settings.log_filter);
    let stop = sdp_daemon::shutdown_signal();
    let running = sdp_staging::start(settings).await?;
    running.until(stop).await?;
    tracing::info!("staging service stopped");
    Ok(())
}
