//! The embedded configuration database: a single-node server speaking the etcd v3 gRPC API (KV, Watch,
//! Lease, Maintenance.Status) over the multi-version store, with a durable journal in one data directory, and
//! etcd's JSON gateway (`/v3/...`) on the same port.
//! The platform's client library, `etcdctl` and other etcd v3 clients work against it unchanged.

mod convert;
mod gateway;
mod journal;
mod kv;
mod lease;
mod maintenance;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::proto::*;
use sdp_kvstore::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Status;

pub use journal::FileJournal;

/// Identifiers reported in response headers (a single member of its own cluster).
pub const CLUSTER_ID: u64 = 0x5344_505f_4346_4700;
pub const MEMBER_ID: u64 = 0x5344_505f_4346_4701;
/// The term a fresh single-member etcd reports after electing itself.
pub const RAFT_TERM: u64 = 2;

/// Past this size the journal is rewritten as one snapshot at start-up.
const SNAPSHOT_THRESHOLD: u64 = 64 << 20;

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2379)),
            data_dir: None,
            history_revisions: 100_000,
            progress_interval: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}. Is another etcd or `sdp up` running there? Choose another address")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot use data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
}

#[derive(Clone)]
pub(crate) struct Shared {
    store: Arc<Store>,
    journal: Option<Arc<FileJournal>>,
    progress_interval: Duration,
}

impl Shared {
    fn header(&self, revision: i64) -> PbResponseHeader {
        PbResponseHeader { cluster_id: CLUSTER_ID, member_id: MEMBER_ID, revision, raft_term: RAFT_TERM }
    }

    /// Waits until every journal record written so far is on disk: a write is acknowledged only after this.
    async fn durable(&self) -> Result<(), Status> {
        let Some(journal) = &self.journal else { return Ok(()) };
        journal
            .sync()
            .await
            .map_err(|e| Status::unavailable(format!("etcdserver: cannot write the journal to disk: {e}")))
    }
}

/// A server running in the background.
pub struct RunningServer {
    pub addr: SocketAddr,
    store: Arc<Store>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
}

impl RunningServer {
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stops accepting requests, lets requests under way finish (for up to two seconds: open watch streams
    /// would otherwise hold it forever, since etcd clients keep them until told otherwise), then stops.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let mut task = self.task;
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut task).await.is_err() {
            task.abort();
        }
        for task in self.background {
            task.abort();
        }
    }
}

/// Opens the data directory (replaying its journal) and starts serving.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    let (store, journal) = match &config.data_dir {
        Some(dir) => {
            let data_err = |source| ServerError::DataDir { path: dir.clone(), source };
            let recovered = FileJournal::open(dir).map_err(data_err)?;
            if recovered.truncated > 0 {
                tracing::warn!(bytes = recovered.truncated, "cut a torn write off the end of the journal");
            }
            let journal = Arc::new(recovered.journal);
            let records = recovered.records.len();
            let store = Store::with_journal(Some(journal.clone()), recovered.records);
            if journal.size_bytes() > SNAPSHOT_THRESHOLD {
                journal.rewrite(&store.snapshot()).map_err(data_err)?;
                tracing::info!(bytes = journal.size_bytes(), "journal rewritten as a snapshot");
            }
            journal.start_syncer().map_err(data_err)?;
            tracing::info!(dir = %dir.display(), records, revision = store.revision(), keys = store.key_count(), "configuration database recovered");
            (store, Some(journal))
        }
        None => (Store::new(), None),
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

    let (shutdown, shutdown_rx) = oneshot::channel::<()>();
    // gRPC (HTTP/2) and etcd's JSON gateway (HTTP/1) on one port, as etcd serves them.
    let grpc = tonic::service::Routes::new(PbKvServer::new(kv::KvService(shared.clone())))
        .add_service(PbWatchServer::new(watch::WatchService(shared.clone())))
        .add_service(PbLeaseServer::new(lease::LeaseService(shared.clone())))
        .add_service(PbMaintenanceServer::new(maintenance::MaintenanceService(shared.clone())))
        .prepare()
        .into_axum_router();
    let app = grpc.merge(gateway::router(shared));
    // Small request/response messages: without TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        let _ = stream.set_nodelay(true);
    });
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            })
            .await
    });
    tracing::info!(%addr, "configuration database (etcd v3 API) listening");
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
