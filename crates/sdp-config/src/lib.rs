//! Client library for the SDP configuration database.
//!
//! All SDP state lives in etcd v3 under depth-tagged keys, in the key layout and JSON encoding of the
//! original Python `ska-sdp-config`, so both can share one database. The same API runs on an in-process
//! store with etcd's semantics (`SDP_CONFIG_BACKEND=memory`), used by tests and single-process tools.
//!
//! The daemons connect with [`Config::connect_when_reachable`] (a database not up yet is waited for) and work
//! while they lead their component ([`run_while_leading`], on leases of [`LEASE_TTL`] seconds).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sdp_config::Error> {
//! use sdp_config::{Config, ProcessingBlock};
//! let config = Config::from_env().await?;
//! let pb_id = config
//!     .txn(|txn| async move {
//!         let id = txn.new_processing_block_id("realtime").await?;
//!         txn.create_processing_block(&ProcessingBlock::new(&id, "realtime:testdask:0.1.0".parse()?)).await?;
//!         Ok(id)
//!     })
//!     .await?;
//! # Ok(()) }
//! ```

mod backend;
mod choices;
pub mod deployment;
pub mod entity;
pub mod json;
pub mod keys;
pub mod leadership;
mod lease;
pub mod ownership;
pub mod script;
mod tls;
mod txn;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

pub use deployment::{DeploymentArgs, DeploymentState, ProcessRequest, StateUpdate, Status};
pub use entity::{BlockState, Deployment, Owner, ProcessingBlock, Workflow};
pub use leadership::{run_while_leading, LEASE_TTL};
pub use lease::Lease;
pub use ownership::Ownership;
pub use script::ScriptDefinition;
pub use txn::{Txn, Watcher, MAX_RECURSION};

use backend::Backend;
use sdp_daemon::{Backoff, Policy};

/// How many times a conflicting transaction is re-run before giving up (as the original).
pub const MAX_RETRIES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("Cannot create {0}, as it already exists!")]
    Collision(String),
    #[error("Cannot update {0}, as it does not exist!")]
    Vanished(String),
    #[error(
        "cannot reach the configuration database at {endpoint}: {detail}. Is it running? \
         Set SDP_CONFIG_HOST and SDP_CONFIG_PORT to where it listens"
    )]
    Unreachable { endpoint: String, detail: String },
    #[error("{variable}={}: {problem}", path.display())]
    TlsFile { variable: &'static str, path: PathBuf, problem: String },
    #[error("{0}")]
    TlsSettings(&'static str),
    #[error("TLS with the configuration database at {endpoint} failed: {detail}. {fix}")]
    TlsRefused { endpoint: String, detail: String, fix: &'static str },
    #[error("configuration database error: {0}")]
    Backend(String),
    #[error("transaction gave up after {0} attempts: other clients kept changing what it read")]
    TooManyRetries(usize),
    #[error("value of {path} is not valid JSON for this entry: {detail}")]
    BadJson { path: String, detail: String },
    #[error("lease {0:x} expired or was revoked")]
    LeaseLost(i64),
    #[error("{0}")]
    Invalid(String),
}

/// Where the configuration database is, from the environment the original tool reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `etcd3` (default) or `memory`.
    pub backend: String,
    pub host: String,
    pub port: u16,
    /// Prepended to every logical path (for sharing one database between independent users or tests).
    pub prefix: String,
    /// CA bundle (PEM) to trust for the database's certificate; set, the client speaks TLS (etcdctl's
    /// `--cacert`).
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) for servers that ask for one (etcdctl's `--cert`); needs `key`.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM) (etcdctl's `--key`).
    pub key: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backend: "etcd3".into(),
            host: "127.0.0.1".into(),
            port: 2379,
            prefix: String::new(),
            cacert: None,
            cert: None,
            key: None,
        }
    }
}

impl Settings {
    /// Reads `SDP_CONFIG_BACKEND`, `SDP_CONFIG_HOST`, `SDP_CONFIG_PORT` and, for TLS, `SDP_CONFIG_CACERT`,
    /// `SDP_CONFIG_CERT` and `SDP_CONFIG_KEY` (an empty value counts as unset).
    pub fn from_env() -> Result<Settings, Error> {
        let mut s = Settings::default();
        if let Ok(b) = std::env::var("SDP_CONFIG_BACKEND") {
            s.backend = b;
        }
        if let Ok(h) = std::env::var("SDP_CONFIG_HOST") {
            s.host = h;
        }
        if let Ok(p) = std::env::var("SDP_CONFIG_PORT") {
            s.port = p
                .parse()
                .map_err(|_| Error::Invalid(format!("SDP_CONFIG_PORT={p:?} is not a port number (1-65535)")))?;
        }
        let path = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        s.cacert = path("SDP_CONFIG_CACERT");
        s.cert = path("SDP_CONFIG_CERT");
        s.key = path("SDP_CONFIG_KEY");
        Ok(s)
    }
}

/// A handle on the configuration database. Cheap to clone.
#[derive(Clone)]
pub struct Config {
    backend: Backend,
    prefix: Arc<str>,
}

impl Config {
    pub async fn connect(settings: &Settings) -> Result<Config, Error> {
        let backend = match settings.backend.as_str() {
            "etcd3" | "etcd" => Backend::connect_etcd(settings).await?,
            "memory" => Backend::memory(),
            other => return Err(Error::Invalid(format!("unknown SDP_CONFIG_BACKEND {other:?}: use etcd3 or memory"))),
        };
        let config = Config { backend, prefix: Arc::from("") };
        config.with_prefix(&settings.prefix)
    }

    pub async fn from_env() -> Result<Config, Error> {
        Config::connect(&Settings::from_env()?).await
    }

    /// Connects and reads once: a database that cannot be used fails the start, with a clear message, rather
    /// than the first request of some daemon later.
    pub async fn connect_checked(settings: &Settings) -> Result<Config, Error> {
        let config = Config::connect(settings).await?;
        config.answers().await?;
        Ok(config)
    }

    /// The daemons' connection: a database that cannot be reached yet (in a cluster it starts beside them) is
    /// waited for under [`Policy::DATABASE`], each failure logged, rather than ending the process for its
    /// supervisor to restart it with ever longer pauses; any other error (TLS, a refused request) ends the start
    /// at once. None when `stop` resolves first.
    pub async fn connect_when_reachable(
        settings: &Settings,
        stop: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<Option<Config>, Error> {
        let mut backoff = Backoff::new(Policy::DATABASE);
        loop {
            let error = match Config::connect_checked(settings).await {
                Ok(config) => return Ok(Some(config)),
                Err(e @ Error::Unreachable { .. }) => e,
                Err(e) => return Err(e),
            };
            tokio::select! {
                () = backoff.wait_after("connecting to the configuration database", &error) => {}
                () = &mut *stop => return Ok(None),
            }
        }
    }

    /// Whether the database answers a read now: the check after connecting, and the daemons' readiness.
    pub async fn answers(&self) -> Result<(), Error> {
        self.txn(|t| async move { t.list_keys("/", 0).await }).await.map(drop)
    }

    /// A fresh in-process database with etcd's semantics. Needs a Tokio runtime (for lease expiry).
    pub fn memory() -> Config {
        Config { backend: Backend::memory(), prefix: Arc::from("") }
    }

    /// The same database, with every path under `prefix` (e.g. `/test-42`).
    pub fn with_prefix(&self, prefix: &str) -> Result<Config, Error> {
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            keys::check_path(prefix)?;
        }
        Ok(Config { backend: self.backend.clone(), prefix: Arc::from(prefix) })
    }

    /// Runs `body` as one optimistic transaction, re-running it while other clients change what it read.
    /// The body must be free of side effects outside the transaction: it may run several times.
    pub async fn txn<T, F, Fut>(&self, mut body: F) -> Result<T, Error>
    where
        F: FnMut(Txn) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        txn::run(&self.backend, &self.prefix, MAX_RETRIES, &mut body).await.map(|(out, _)| out)
    }

    /// A loop of transactions, each run after something the previous one read changed.
    pub fn watcher(&self) -> Watcher {
        Watcher::new(self.backend.clone(), Arc::clone(&self.prefix), MAX_RETRIES)
    }

    /// A lease of `ttl` seconds, kept alive while the returned value lives.
    pub async fn lease(&self, ttl: i64) -> Result<Lease, Error> {
        Lease::grant(self.backend.clone(), ttl).await
    }
}
