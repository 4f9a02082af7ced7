//! The client's store: one of the two drivers ([`crate::etcd`], [`crate::memory`]) behind the [`Driver`]
//! interface, with the listings this client keeps current ([`crate::choices`]).

use std::sync::Arc;
use std::time::Duration;

use crate::choices::Choices;
use crate::driver::{Driver, Precondition, Stored, Write};
use crate::error::Error;
use crate::etcd::EtcdDriver;
use crate::follow::Follower;
use crate::memory::MemoryDriver;
use crate::settings::Settings;

#[derive(Clone)]
pub(crate) struct Backend {
    driver: Arc<dyn Driver>,
    /// Listings kept current for choosing new keys under the same prefix again without reading it
    /// (processing-block IDs).
    pub choices: Arc<Choices>,
}

impl Backend {
    pub async fn connect_etcd(settings: &Settings) -> Result<Backend, Error> {
        Ok(Backend::new(Arc::new(EtcdDriver::connect(settings).await?)))
    }

    pub fn memory() -> Backend {
        Backend::new(Arc::new(MemoryDriver::new()))
    }

    pub fn in_process(store: Arc<sdp_kvstore::Store>) -> Backend {
        Backend::new(Arc::new(MemoryDriver::on(store)))
    }

    fn new(driver: Arc<dyn Driver>) -> Backend {
        let choices = Arc::new(Choices::new(Follower(Arc::clone(&driver))));
        Backend { driver, choices }
    }

    /// Reads one key at `revision` (None: latest). Returns the entry and the revision read at.
    pub async fn get(&self, key: &str, revision: Option<i64>) -> Result<(Option<Stored>, i64), Error> {
        let (mut found, rev) = self.driver.range(key, false, false, revision).await?;
        Ok((found.pop(), rev))
    }

    /// Reads every key under each prefix (keys only) at one consistent revision.
    pub async fn list_keys(&self, prefixes: &[String], revision: Option<i64>) -> Result<(Vec<Stored>, i64), Error> {
        self.list(prefixes, true, revision).await
    }

    /// Reads every key under each prefix (with its value unless `keys_only`), one range read per prefix, at one
    /// consistent revision.
    pub async fn list(
        &self,
        prefixes: &[String],
        keys_only: bool,
        revision: Option<i64>,
    ) -> Result<(Vec<Stored>, i64), Error> {
        let mut revision = revision;
        let mut all = Vec::new();
        for prefix in prefixes {
            let (found, rev) = self.driver.range(prefix, true, keys_only, revision).await?;
            // Pin the remaining reads to the revision of the first, so the listing is one snapshot.
            revision.get_or_insert(rev);
            all.extend(found);
        }
        let rev = match revision {
            Some(rev) => rev,
            None => self.driver.range("\0", false, true, None).await?.1,
        };
        Ok((all, rev))
    }

    /// Applies `writes` atomically if every precondition holds. Returns the new revision, or None when a
    /// precondition failed (somebody else changed what was read).
    pub async fn commit(&self, preconditions: &[Precondition], writes: &[Write]) -> Result<Option<i64>, Error> {
        self.driver.commit(preconditions, writes).await
    }

    /// Waits until every write committed so far is on disk; None when a commit is answered once on disk.
    pub fn durable(&self) -> Option<futures::future::BoxFuture<'static, Result<(), Error>>> {
        self.driver.durable()
    }

    pub fn follower(&self) -> Follower {
        Follower(Arc::clone(&self.driver))
    }

    pub async fn lease_grant(&self, ttl: i64) -> Result<i64, Error> {
        self.driver.lease_grant(ttl).await
    }

    /// Keeps a lease of `ttl` seconds alive, renewing it three times per TTL, until the returned future is
    /// dropped; returns only when the lease is lost.
    pub async fn lease_keep_alive(&self, id: i64, ttl: i64) -> Error {
        let period = Duration::from_millis((ttl.max(1) as u64 * 1000) / 3);
        self.driver.lease_keep_alive(id, period).await
    }

    /// Whether lease `id` exists.
    pub async fn lease_alive(&self, id: i64) -> Result<bool, Error> {
        self.driver.lease_alive(id).await
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<(), Error> {
        self.driver.lease_revoke(id).await
    }
}
