//! `sdp`: the platform's main command.
//!
//! `sdp up` starts the embedded configuration database (etcd v3 API) with its data directory, or uses the
//! etcd named by `SDP_CONFIG_HOST`, the processing controller, the Helm deployer, the process deployer (which
//! runs the processing scripts), the LMC devices' HTTP surface and the staging service, and runs until Ctrl-C.
//! `sdp lmc …` talks to those devices. `sdp processing-controller`, `sdp helm-deployer` and `sdp lmc serve`
//! run one component each (as the charts deploy them); `sdp script <name> <pb_id>` runs a processing script.
//!
//! [`cli`] reads the command line; each part is started by its own crate's `start` (its settings, the
//! configuration database, the metrics registry → the running part, which `stop` ends), and this file only
//! wires them together.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use prometheus_client::registry::Registry;
use sdp_config::{Config, Settings};
use sdp_daemon::http::Surface;

mod cli;
mod database;
mod lmc_cli;

use cli::{Cli, Command, HelmDeployerArgs, OpsArgs, ProcessingControllerArgs, Runner, UpArgs};

fn main() -> anyhow::Result<()> {
    sdp_daemon::init_tracing("info");
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
        Command::ConfigDb(args) => runtime.block_on(database::serve(&args.database, args.data_dir)),
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

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let stop = sdp_daemon::shutdown_signal();
    // Refused before anything starts.
    let surface = args.lmc.settings()?;
    let db = database::Database::open(&args.database, &args.data_dir).await?;
    let mut registry = Registry::default();
    let controller_settings = args.scripts.controller_settings(&db.settings, &args.namespace, Runner::Process);
    let controller = sdp_proccontrol::start(controller_settings, db.config.clone(), &mut registry);
    let helm_settings = args.helm.settings(&args.namespace, &args.data_dir);
    let deployer = sdp_helmdeploy::start(helm_settings, db.config.clone(), &mut registry).await?;
    let processes =
        sdp_procdeploy::start(args.process_deployer_settings(&db.settings)?, db.config.clone(), &mut registry);
    let lmc_metrics = sdp_lmc::Metrics::register(&mut registry);
    let lmc = sdp_lmc::start(surface, db.config.clone(), lmc_metrics, ops_router(registry, db.config.clone())).await?;
    let tango = sdp_tango::start_if_configured(lmc.devices()).await?;
    let staging = sdp_staging::start_inside(&args.data_dir.join("staging"), args.staging_listen).await?;
    tracing::info!("platform up; press Ctrl-C to stop");
    stop.await;
    tracing::info!("stopping");
    // Scripts first, while the database and deployers they clean up through still run.
    processes.stop().await;
    // Each resigns its lead: another `sdp up` on this database leads at once, not after the lease's TTL.
    tokio::join!(controller.stop(), deployer.stop());
    lmc.stop();
    if let Some(tango) = tango {
        tango.stop().await;
    }
    if let Err(e) = staging.stop().await {
        tracing::warn!(error = %e, "the staging service did not stop cleanly");
    }
    db.stop().await;
    tracing::info!("stopped");
    Ok(())
}

async fn processing_controller(args: ProcessingControllerArgs) -> anyhow::Result<()> {
    let start = async |database: &Settings, config, registry: &mut Registry| {
        let settings = args.scripts.controller_settings(database, &args.namespace, Runner::Helm);
        Ok(sdp_proccontrol::start(settings, config, registry))
    };
    run_alone(&args.ops, start, sdp_proccontrol::Running::stop).await
}

async fn helm_deployer(args: HelmDeployerArgs) -> anyhow::Result<()> {
    let start = async |_: &Settings, config, registry: &mut Registry| {
        let settings = args.helm.settings(&args.namespace, &args.data_dir);
        Ok(sdp_helmdeploy::start(settings, config, registry).await?)
    };
    run_alone(&args.ops, start, sdp_helmdeploy::Running::stop).await
}

/// One daemon alone, as the charts run them: waits for the database at SDP_CONFIG_HOST, starts the part, serves
/// its `/healthz`, `/readyz` and `/metrics` on --http-listen, and stops both on Ctrl-C or SIGTERM.
async fn run_alone<Part>(
    ops: &OpsArgs,
    start: impl AsyncFnOnce(&Settings, Config, &mut Registry) -> anyhow::Result<Part>,
    stop_part: impl AsyncFnOnce(Part),
) -> anyhow::Result<()> {
    let mut stop = Box::pin(sdp_daemon::shutdown_signal());
    let settings = Settings::from_env()?;
    let what = "/healthz, /readyz and /metrics (SDP_HTTP_LISTEN)";
    let surface = Surface::listen(ops.http_listen, what, waiting_for(&settings)).await?;
    let Some(config) = Config::connect_when_reachable(&settings, &mut stop).await? else {
        surface.stop();
        return Ok(());
    };
    let mut registry = Registry::default();
    let part = start(&settings, config.clone(), &mut registry).await?;
    let http = surface.ready(ops_router(registry, config));
    stop.await;
    tracing::info!("stopping");
    stop_part(part).await;
    http.stop();
    Ok(())
}

async fn lmc_serve(args: &lmc_cli::ServeArgs) -> anyhow::Result<()> {
    let mut stop = Box::pin(sdp_daemon::shutdown_signal());
    let surface_settings = args.settings()?;
    let settings = Settings::from_env()?;
    let surface = surface_settings.bind(waiting_for(&settings)).await?;
    let Some(config) = Config::connect_when_reachable(&settings, &mut stop).await? else {
        surface.stop();
        return Ok(());
    };
    let mut registry = Registry::default();
    let metrics = sdp_lmc::Metrics::register(&mut registry);
    let lmc = sdp_lmc::start_on(surface, surface_settings, config.clone(), metrics, ops_router(registry, config));
    let tango = sdp_tango::start_if_configured(lmc.devices()).await?;
    stop.await;
    tracing::info!("stopping");
    lmc.stop();
    if let Some(tango) = tango {
        tango.stop().await;
    }
    Ok(())
}

/// What a daemon's surface answers until it has connected.
fn waiting_for(database: &Settings) -> String {
    let at = database.endpoints().map_or_else(|_| database.host.clone(), |endpoints| endpoints.join(","));
    format!("starting: waiting for the configuration database at {at}")
}

/// `/healthz` (alive), `/readyz` (the configuration database answers; `/health` too) and `/metrics`.
fn ops_router(registry: Registry, config: Config) -> axum::Router {
    sdp_daemon::http::router(registry, database_ready(config))
}

/// Ready while the configuration database answers within two seconds; else the reason.
fn database_ready(config: Config) -> sdp_daemon::http::ReadyCheck {
    Arc::new(move || {
        let config = config.clone();
        Box::pin(async move {
            match tokio::time::timeout(Duration::from_secs(2), config.answers()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the configuration database did not answer within 2 s".into()),
            }
        })
    })
}
