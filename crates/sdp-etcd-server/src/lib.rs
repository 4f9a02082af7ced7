//! The embedded configuration database: a single-node server speaking the etcd v3 gRPC API (KV, Watch,
//! Lease, Maintenance.Status) over the multi-version store, with a durable journal in one data directory, and
//! etcd's JSON gateway (`/v3/...`) on the same port.
//! The platform's client library, `etcdctl` and other etcd v3 clients work against it unchanged.

mod convert;
mod gateway;
mod journal;
mod kv;
mod lease;
mod listener;
mod maintenance;
mod shared;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use etcd_client::proto::*;
use sdp_kvstore::Store;

use tokio::task::JoinHandle;

pub use journal::{repair, FileJournal, Repair};
pub use listener::{raise_open_files_limit, ConnectionLimits, TlsError, TlsFiles};
pub use sdp_kvstore::Limits;
pub use shared::{CLUSTER_ID, MEMBER_ID, RAFT_TERM};

use shared::Shared;

/// Past this size the journal is rewritten as one snapshot at start-up.
const SNAPSHOT_THRESHOLD: u64 = 64 << 20;
/// etcd's default `--max-request-bytes`.
pub const MAX_REQUEST_BYTES: usize = 3 << 19;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen for clients (etcd's default is 127.0.0.1:2379).
    pub listen: SocketAddr,
    /// Data directory for the journal; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Keep this many revisions of history, compacting older ones every minute (0: never compact).
    pub history_revisions: i64,
    /// How often watchers that asked for progress notifications get one (etcd: 10 minutes).
    pub progress_interval: Duration,
    /// What one request may cost: operations, response bytes, and the space quota.
    pub limits: Limits,
    /// The largest request accepted, in bytes (etcd's `--max-request-bytes`, 1.5 MiB).
    pub max_request_bytes: usize,
    /// How many clients may connect, and when an idle connection is closed.
    pub connections: ConnectionLimits,
    /// TLS for clients (etcd's `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`).
    pub tls: Option<TlsFiles>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2379)),
            data_dir: None,
            history_revisions: 100_000,
            progress_interval: Duration::from_secs(600),
            limits: Limits::default(),
            max_request_bytes: MAX_REQUEST_BYTES,
            connections: ConnectionLimits::default(),
            tls: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}. Is another etcd or `sdp up` running there? Choose another address")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(
        "cannot use data directory {path}: {source}. The server reads and writes its journal there: make it \
         readable and writable, or choose another (--data-dir)"
    )]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(
        "the journal {path} cannot be replayed: {reason}. Nothing was started. To start without that record, run \
         `sdp repair-journal --data-dir {dir} --skip-record {offset}` (or `--truncate-at {offset}` to drop it and \
         every later one); the journal is copied to a backup file first",
        dir = .path.parent().unwrap_or(std::path::Path::new(".")).display(),
        path = .path.display()
    )]
    Journal { path: PathBuf, offset: u64, reason: String },
    #[error("{0}")]
    Tls(#[from] TlsError),
}

/// A server running in the background.
pub struct RunningServer {
    pub addr: SocketAddr,
    store: Arc<Store>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl RunningServer {
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stops accepting requests, lets requests under way finish (for up to two seconds: open watch streams
    /// would otherwise hold it forever, since etcd clients keep them until told otherwise), then stops.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let mut task = self.task;
        if tokio::time::timeout(std::time::Duration::from_secs(3), &mut task).await.is_err() {
            task.abort();
        }
        for task in self.background {
            task.abort();
        }
    }
}

/// Opens the data directory (replaying its journal) and starts serving.
pub fn start(config: ServerConfig) -> BoxFuture<'static, Result<RunningServer, ServerError>> {
    // Boxed: a future's body is compiled in every crate that polls it; boxed here, once, in this crate.
    Box::pin(open_and_serve(config))
}

async fn open_and_serve(config: ServerConfig) -> Result<RunningServer, ServerError> {
    let tls = config.tls.as_ref().map(TlsFiles::server_config).transpose()?;
    let (store, journal) = match &config.data_dir {
        Some(dir) => {
            let data_err = |source| ServerError::DataDir { path: dir.clone(), source };
            let recovered = FileJournal::open(dir).map_err(|e| match e {
                journal::OpenError::Io(source) => data_err(source),
                journal::OpenError::BadRecord { offset, reason } => ServerError::Journal {
                    path: dir.join(journal::JOURNAL_FILE),
                    offset,
                    reason: format!("the record at byte {offset} {reason}"),
                },
            })?;
            if recovered.truncated > 0 {
                tracing::warn!(bytes = recovered.truncated, "cut a torn write off the end of the journal");
            }
            let journal = Arc::new(recovered.journal);
            let records = recovered.records.len();
            let offsets = recovered.offsets;
            let store = Store::recover(Some(journal.clone()), recovered.records, config.limits).map_err(|e| {
                let offset = offsets[e.index];
                ServerError::Journal {
                    path: journal.path().to_path_buf(),
                    offset,
                    reason: format!("the record at byte {offset} does not follow the ones before it: {}", e.reason),
                }
            })?;
            if journal.size_bytes() > SNAPSHOT_THRESHOLD {
                journal.rewrite(&store.snapshot()).map_err(data_err)?;
                tracing::info!(bytes = journal.size_bytes(), "journal rewritten as a snapshot");
            }
            journal.start_syncer().map_err(data_err)?;
            tracing::info!(dir = %dir.display(), records, revision = store.revision(), keys = store.key_count(), "configuration database recovered");
            (store, Some(journal))
        }
        None => (Store::in_memory(config.limits), None),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.listen, source })?;
    let shared = Shared { store: store.clone(), journal, progress_interval: config.progress_interval };

    let mut background = vec![tokio::spawn(Arc::clone(&store).run_lease_expiry())];
    if config.history_revisions > 0 {
        background.push(tokio::spawn(compact_periodically(Arc::clone(&store), config.history_revisions)));
    }

    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    // gRPC (HTTP/2) and etcd's JSON gateway (HTTP/1) on one port, as etcd serves them. etcd accepts gRPC
    // messages up to --max-request-bytes plus 512 KiB of framing; JSON carries values in base64.
    let grpc_limit = config.max_request_bytes + (512 << 10);
    let grpc = tonic::service::Routes::new(
        PbKvServer::new(kv::KvService(shared.clone())).max_decoding_message_size(grpc_limit),
    )
    .add_service(PbWatchServer::new(watch::WatchService(shared.clone())).max_decoding_message_size(grpc_limit))
    .add_service(PbLeaseServer::new(lease::LeaseService(shared.clone())).max_decoding_message_size(grpc_limit))
    .add_service(PbMaintenanceServer::new(maintenance::MaintenanceService(shared.clone())))
    .prepare()
    .into_axum_router();
    let gateway_limit = axum::extract::DefaultBodyLimit::max(config.max_request_bytes / 3 * 4 + (512 << 10));
    let app = grpc.merge(gateway::router(shared).layer(gateway_limit));
    let task = tokio::spawn(listener::serve(listener, app, config.connections.clone(), tls, shutdown_rx));
    tracing::info!(%addr, tls = config.tls.is_some(), client_cert_auth = config.tls.as_ref().is_some_and(|t| t.client_cert_auth), "configuration database (etcd v3 API) listening");
    Ok(RunningServer { addr, store, shutdown, task, background })
}

async fn compact_periodically(store: Arc<Store>, keep: i64) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let target = store.revision() - keep;
        if target > store.compact_revision() {
            match store.compact(target) {
                Ok(_) => tracing::debug!(revision = target, "history compacted"),
                Err(e) => tracing::warn!(error = %e, "history compaction failed"),
            }
        }
    }
}
