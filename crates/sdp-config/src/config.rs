//! The handle on the configuration database: connecting, transactions, watchers and leases.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use sdp_daemon::{Backoff, Policy};

use crate::backend::Backend;
use crate::error::Error;
use crate::keys;
use crate::lease::Lease;
use crate::settings::Settings;
use crate::txn::{self, Durable, Txn, Watcher};

/// How many times a conflicting transaction is re-run before giving up (as the original).
pub const MAX_RETRIES: usize = 64;

/// A handle on the configuration database. Cheap to clone.
#[derive(Clone)]
pub struct Config {
    backend: Backend,
    prefix: Arc<str>,
}

impl Config {
    pub fn connect(settings: &Settings) -> BoxFuture<'_, Result<Config, Error>> {
        // Boxed: a future's body is compiled in every crate that polls it; boxed here, once, in this crate.
        Box::pin(async move {
            let backend = match settings.backend.as_str() {
                "etcd3" | "etcd" => Backend::connect_etcd(settings).await?,
                "memory" => Backend::memory(),
                other => {
                    return Err(Error::Invalid(format!("unknown SDP_CONFIG_BACKEND {other:?}: use etcd3 or memory")));
                }
            };
            let config = Config { backend, prefix: Arc::from("") };
            config.with_prefix(&settings.prefix)
        })
    }

    pub async fn from_env() -> Result<Config, Error> {
        Config::connect(&Settings::from_env()?).await
    }

    /// Connects and reads once: a database that cannot be used fails the start, with a clear message, rather
    /// than the first request of some daemon later.
    pub fn connect_checked(settings: &Settings) -> BoxFuture<'_, Result<Config, Error>> {
        Box::pin(async move {
            let config = Config::connect(settings).await?;
            config.answers().await?;
            Ok(config)
        })
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
    pub fn answers(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move { self.txn(|t| async move { t.list_keys("/", 0).await }).await.map(drop) })
    }

    /// A fresh in-process database with etcd's semantics. Needs a Tokio runtime (for lease expiry).
    pub fn memory() -> Config {
        Config { backend: Backend::memory(), prefix: Arc::from("") }
    }

    /// The database of `store`, a store in this process that expires its own leases: the embedded server's,
    /// for the components that run beside it, which then reach it without a network round trip.
    pub fn in_process(store: Arc<sdp_kvstore::Store>) -> Config {
        Config { backend: Backend::in_process(store), prefix: Arc::from("") }
    }

    /// The same database, with every path under `prefix` (e.g. `/test-42`).
    pub fn with_prefix(&self, prefix: &str) -> Result<Config, Error> {
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            keys::check_path(prefix)?;
        }
        Ok(Config { backend: self.backend.clone(), prefix: Arc::from(prefix) })
    }

    /// Runs `body` as one optimistic transaction, re-running it while other clients change what it read, and
    /// returns once its writes are on disk. The body must be free of side effects outside the transaction: it
    /// may run several times.
    pub async fn txn<T, F, Fut>(&self, body: F) -> Result<T, Error>
    where
        F: FnMut(Txn) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let (out, durable) = self.txn_committed(body).await?;
        durable.wait().await?;
        Ok(out)
    }

    /// [`Config::txn`], returning as soon as the transaction commits (its writes visible to every reader), with
    /// what to await before acknowledging it: its writes on disk. For whoever tells of a change and may do so
    /// while the disk flushes it, as a device pushing its event; an etcd commits on disk, and so is durable at
    /// once.
    pub async fn txn_committed<T, F, Fut>(&self, mut body: F) -> Result<(T, Durable), Error>
    where
        F: FnMut(Txn) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        txn::run(&self.backend, &self.prefix, MAX_RETRIES, &mut body).await.map(|(out, _, durable)| (out, durable))
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
