//! The staging service: makes data on the storage available to users by a read-only copy, a symbolic link, a
//! direct download or an upload into their JupyterHub server, with every request recorded in a metadata
//! database (MySQL/MariaDB, or embedded SQLite).
//!
//! Decisions are pure functions ([`paths`] confinement, [`method::select`], [`jupyter::chunk_plan`],
//! [`rucio::pfns_of`]); [`api`] is the HTTP edge (routes, extractors, auth, metrics, records), [`staging`] the work of a request,
//! [`local`], [`jupyter`], [`rucio`] and [`db`] the I/O. [`start`] serves it alone (`sdp-staging up`),
//! [`start_inside`] inside a platform (`sdp up`).

pub mod api;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod jupyter;
pub mod local;
pub mod method;
pub mod paths;
pub mod rucio;
pub mod staging;

pub use client::http_client;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

pub use config::{Settings, UpArgs};

/// A failure to start the service.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("cannot listen on {addr}: {source}; set STAGING_LISTEN to a free address")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// A failure to start the service inside a platform ([`start_inside`]).
#[derive(Debug, thiserror::Error)]
pub enum StartInsideError {
    #[error("the staging service's environment variables (those of `sdp-staging up`) are not valid")]
    Environment(#[source] clap::Error),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(
        "cannot create {}: check the permissions above it, or set SOURCE_STORAGE_PATH and TARGET_STORAGE_PATH",
        dir.display()
    )]
    Folder { dir: PathBuf, source: std::io::Error },
    #[error("cannot start the staging service on {listen}: choose another with --staging-listen")]
    Start { listen: SocketAddr, source: StartError },
}

/// A running service.
pub struct Running {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish, and returns.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Runs until `signal` completes, then stops.
    pub async fn until(self, signal: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
        signal.await;
        self.stop().await
    }
}

/// Opens the metadata database (migrating it), binds `settings.listen` and serves.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let db = db::Db::connect(&settings.database_url.0).await?;
    let addr = settings.listen;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Listen { addr, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen { addr, source })?;
    tracing::info!(%addr, database = ?db.backend(), source = %settings.source_root.display(),
        target = %settings.target_root.display(), methods = ?settings.allowed_methods, "staging service listening");
    let app = api::router(settings, db);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Running { addr, stop, task })
}

/// The service inside a platform (`sdp up`): on `listen`, with its storage, user areas and SQLite database
/// under `root` unless `sdp-staging up`'s environment variables name others. The storage and user areas are
/// made if missing.
pub fn start_inside(root: &Path, listen: SocketAddr) -> BoxFuture<'_, Result<Running, StartInsideError>> {
    // Boxed: a future's body is compiled in every crate that polls it; boxed here, once, in this crate.
    Box::pin(start_inside_unboxed(root, listen))
}

async fn start_inside_unboxed(root: &Path, listen: SocketAddr) -> Result<Running, StartInsideError> {
    let settings = UpArgs::from_env().map_err(StartInsideError::Environment)?.inside(root, listen).settings()?;
    for dir in [&settings.source_root, &settings.target_root] {
        std::fs::create_dir_all(dir).map_err(|source| StartInsideError::Folder { dir: dir.clone(), source })?;
    }
    let (storage, user_areas) = (settings.source_root.clone(), settings.target_root.clone());
    let running = start(settings).await.map_err(|source| StartInsideError::Start { listen, source })?;
    tracing::info!(listen = %running.addr, storage = %storage.display(), user_areas = %user_areas.display(), "staging service (API and web page) up");
    Ok(running)
}
