//! The two storage backends behind one small interface: a real etcd v3 server, or an in-process store with
//! the same semantics (revisions, compare-on-revision commits, watches, leases).

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use etcd_client as etcd;
use sdp_kvstore as kv;

use crate::tls::Tls;
use crate::Error;

/// A stored key with the revision it was last modified at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    pub key: String,
    pub value: String,
    pub mod_revision: i64,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

/// A commit precondition.
#[derive(Clone, Debug)]
pub(crate) enum Precondition {
    /// The key's mod revision is exactly this (0: the key does not exist).
    ModRevision { key: String, revision: i64 },
    /// No key with this prefix was modified after `revision`.
    PrefixUnchangedSince { prefix: String, revision: i64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    Put {
        key: String,
        value: String,
        lease: i64,
    },
    Delete {
        key: String,
    },
    /// Every key starting with `prefix`.
    DeletePrefix {
        prefix: String,
    },
}

#[derive(Clone)]
pub(crate) struct Backend {
    store: Store,
    /// Listings kept current for choosing new keys under the same prefix again without reading it
    /// (processing-block IDs).
    pub choices: Arc<crate::choices::Choices>,
}

#[derive(Clone)]
enum Store {
    Etcd { client: Arc<etcd::Client>, endpoint: String, tls: Tls },
    Memory(Arc<kv::Store>),
}

impl Backend {
    pub async fn connect_etcd(settings: &crate::Settings) -> Result<Backend, Error> {
        let endpoint = format!("{}:{}", settings.host, settings.port);
        let options = etcd::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let (url, options, tls) = match crate::tls::tls_files(settings)? {
            Some(files) => {
                (format!("https://{endpoint}"), options.with_tls(crate::tls::tls_options(&files)?), files.mode())
            }
            None => (format!("http://{endpoint}"), options, Tls::Off),
        };
        let client =
            etcd::Client::connect([url], Some(options)).await.map_err(|e| connection_error(&endpoint, tls, e))?;
        Ok(Backend::new(Store::Etcd { client: Arc::new(client), endpoint, tls }))
    }

    pub fn memory() -> Backend {
        let store = kv::Store::new();
        tokio::spawn(Arc::clone(&store).run_lease_expiry());
        Backend::new(Store::Memory(store))
    }

    fn new(store: Store) -> Backend {
        let choices = Arc::new(crate::choices::Choices::new(Follower(store.clone())));
        Backend { store, choices }
    }

    fn etcd_error(&self, e: etcd::Error) -> Error {
        match &self.store {
            Store::Etcd { endpoint, tls, .. } => connection_error(endpoint, *tls, e),
            Store::Memory(_) => Error::Backend(e.to_string()),
        }
    }

    /// Reads one key at `revision` (None: latest). Returns the entry and the revision read at.
    pub async fn get(&self, key: &str, revision: Option<i64>) -> Result<(Option<Stored>, i64), Error> {
        let (mut found, rev) = self.range(key, false, false, revision).await?;
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
            let (found, rev) = self.range(prefix, true, keys_only, revision).await?;
            // Pin the remaining reads to the revision of the first, so the listing is one snapshot.
            revision.get_or_insert(rev);
            all.extend(found);
        }
        let rev = match revision {
            Some(rev) => rev,
            None => self.current_revision().await?,
        };
        Ok((all, rev))
    }

    async fn current_revision(&self) -> Result<i64, Error> {
        Ok(self.range("\0", false, true, None).await?.1)
    }

    async fn range(
        &self,
        key: &str,
        prefix: bool,
        keys_only: bool,
        revision: Option<i64>,
    ) -> Result<(Vec<Stored>, i64), Error> {
        match &self.store {
            Store::Etcd { client, .. } => {
                let mut opts = etcd::GetOptions::new();
                if prefix {
                    opts = opts.with_prefix();
                }
                if keys_only {
                    opts = opts.with_keys_only();
                }
                if let Some(rev) = revision {
                    opts = opts.with_revision(rev);
                }
                let resp = client.kv_client().get(key, Some(opts)).await.map_err(|e| self.etcd_error(e))?;
                let rev = resp.header().map_or(0, |h| h.revision());
                let found = resp
                    .kvs()
                    .iter()
                    .map(|kv| Stored {
                        key: String::from_utf8_lossy(kv.key()).into_owned(),
                        value: String::from_utf8_lossy(kv.value()).into_owned(),
                        mod_revision: kv.mod_revision(),
                        lease: kv.lease(),
                    })
                    .collect();
                Ok((found, rev))
            }
            Store::Memory(store) => {
                let range = if prefix { kv::KeyRange::prefix(key) } else { kv::KeyRange::single(key) };
                let req = kv::RangeRequest { range, revision: revision.unwrap_or(0), keys_only, ..Default::default() };
                let (resp, rev) = store.range(&req).map_err(|e| Error::Backend(e.to_string()))?;
                let found = resp.kvs.into_iter().map(stored_from_kv).collect();
                Ok((found, revision.unwrap_or(rev)))
            }
        }
    }

    /// Applies `writes` atomically if every precondition holds. Returns the new revision, or None when a
    /// precondition failed (somebody else changed what was read).
    pub async fn commit(&self, preconditions: &[Precondition], writes: &[Write]) -> Result<Option<i64>, Error> {
        match &self.store {
            Store::Etcd { client, .. } => {
                let compares: Vec<etcd::Compare> = preconditions
                    .iter()
                    .map(|p| match p {
                        Precondition::ModRevision { key, revision } => {
                            etcd::Compare::mod_revision(key.as_str(), etcd::CompareOp::Equal, *revision)
                        }
                        Precondition::PrefixUnchangedSince { prefix, revision } => {
                            etcd::Compare::mod_revision(prefix.as_str(), etcd::CompareOp::Less, revision + 1)
                                .with_prefix()
                        }
                    })
                    .collect();
                let ops: Vec<etcd::TxnOp> = writes
                    .iter()
                    .map(|w| match w {
                        Write::Put { key, value, lease } => {
                            let opts = (*lease != 0).then(|| etcd::PutOptions::new().with_lease(*lease));
                            etcd::TxnOp::put(key.as_str(), value.as_str(), opts)
                        }
                        Write::Delete { key } => etcd::TxnOp::delete(key.as_str(), None),
                        Write::DeletePrefix { prefix } => {
                            etcd::TxnOp::delete(prefix.as_str(), Some(etcd::DeleteOptions::new().with_prefix()))
                        }
                    })
                    .collect();
                let txn = etcd::Txn::new().when(compares).and_then(ops);
                let resp = client.kv_client().txn(txn).await.map_err(|e| self.etcd_error(e))?;
                Ok(resp.succeeded().then(|| resp.header().map_or(0, |h| h.revision())))
            }
            Store::Memory(store) => {
                let compare = preconditions
                    .iter()
                    .map(|p| match p {
                        Precondition::ModRevision { key, revision } => kv::Compare {
                            range: kv::KeyRange::single(key.as_str()),
                            result: kv::CompareResult::Equal,
                            target: kv::CompareTarget::ModRevision(*revision),
                        },
                        Precondition::PrefixUnchangedSince { prefix, revision } => kv::Compare {
                            range: kv::KeyRange::prefix(prefix.as_str()),
                            result: kv::CompareResult::Less,
                            target: kv::CompareTarget::ModRevision(revision + 1),
                        },
                    })
                    .collect();
                let success = writes
                    .iter()
                    .map(|w| match w {
                        Write::Put { key, value, lease } => kv::RequestOp::Put(kv::PutRequest {
                            key: key.clone().into_bytes(),
                            value: value.clone().into_bytes(),
                            lease: *lease,
                            ..Default::default()
                        }),
                        Write::Delete { key } => kv::RequestOp::DeleteRange(kv::DeleteRangeRequest {
                            range: kv::KeyRange::single(key.as_str()),
                            prev_kv: false,
                        }),
                        Write::DeletePrefix { prefix } => kv::RequestOp::DeleteRange(kv::DeleteRangeRequest {
                            range: kv::KeyRange::prefix(prefix.as_str()),
                            prev_kv: false,
                        }),
                    })
                    .collect();
                let req = kv::TxnRequest { compare, success, failure: Vec::new() };
                let (resp, rev) = store.txn(&req).map_err(|e| Error::Backend(e.to_string()))?;
                Ok(resp.succeeded.then_some(rev))
            }
        }
    }

    /// Waits until a key in `[start, end)` changes after `revision` and `matches` its key; returns the
    /// revision of that change (or of a compaction: the caller re-reads everything, which is always safe).
    pub async fn wait_for_change(
        &self,
        start: &str,
        end: &str,
        revision: i64,
        matches: impl Fn(&str) -> bool,
    ) -> Result<i64, Error> {
        let first_match = |changes: &[Change]| changes.iter().find(|c| matches(&c.key)).map(|c| c.revision);
        match self.follower().follow(start, end, revision, first_match).await? {
            Followed::Stopped(revision) | Followed::Compacted(revision) => Ok(revision),
        }
    }

    pub fn follower(&self) -> Follower {
        Follower(self.store.clone())
    }

    pub async fn lease_grant(&self, ttl: i64) -> Result<i64, Error> {
        match &self.store {
            Store::Etcd { client, .. } => {
                let resp = client.lease_client().grant(ttl, None).await.map_err(|e| self.etcd_error(e))?;
                Ok(resp.id())
            }
            Store::Memory(store) => {
                store.lease_grant(0, ttl).map(|(id, _)| id).map_err(|e| Error::Backend(e.to_string()))
            }
        }
    }

    /// Keeps a lease alive until the returned future is dropped; returns only when the lease is lost.
    pub async fn lease_keep_alive(&self, id: i64, ttl: i64) -> Error {
        let period = Duration::from_millis((ttl.max(1) as u64 * 1000) / 3);
        match &self.store {
            Store::Etcd { client, .. } => loop {
                let (mut keeper, mut stream) = match client.lease_client().keep_alive(id).await {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(lease = id, error = %e, "lease keep-alive failed; retrying");
                        tokio::time::sleep(period / 2).await;
                        continue;
                    }
                };
                loop {
                    if keeper.keep_alive().await.is_err() {
                        break;
                    }
                    match stream.message().await {
                        Ok(Some(resp)) if resp.ttl() <= 0 => return Error::LeaseLost(id),
                        Ok(Some(_)) => tokio::time::sleep(period).await,
                        Ok(None) | Err(_) => break,
                    }
                }
                tokio::time::sleep(period / 2).await;
            },
            Store::Memory(store) => loop {
                if store.lease_keep_alive(id).is_err() {
                    return Error::LeaseLost(id);
                }
                tokio::time::sleep(period).await;
            },
        }
    }

    /// Whether lease `id` exists (etcd reports an unknown or ended lease with TTL -1).
    pub async fn lease_alive(&self, id: i64) -> Result<bool, Error> {
        match &self.store {
            Store::Etcd { client, .. } => {
                let resp = client.lease_client().time_to_live(id, None).await.map_err(|e| self.etcd_error(e))?;
                Ok(resp.ttl() >= 0)
            }
            Store::Memory(store) => Ok(store.lease_time_to_live(id).is_ok()),
        }
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<(), Error> {
        match &self.store {
            Store::Etcd { client, .. } => {
                client.lease_client().revoke(id).await.map_err(|e| self.etcd_error(e))?;
                Ok(())
            }
            Store::Memory(store) => store.lease_revoke(id).map(|_| ()).map_err(|e| Error::Backend(e.to_string())),
        }
    }
}

/// A change of one key, as a watch reports it.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub key: String,
    /// False for a deletion.
    pub exists: bool,
    pub revision: i64,
}

/// How [`Follower::follow`] ended.
pub(crate) enum Followed {
    /// The caller stopped it at this revision.
    Stopped(i64),
    /// The changes after the starting revision are no longer kept, up to this revision.
    Compacted(i64),
}

/// Follows changes in the store. It holds the store only, not the [`Backend`], so a task the backend's own
/// state keeps (see [`crate::choices`]) does not keep the backend alive.
#[derive(Clone)]
pub(crate) struct Follower(Store);

impl Follower {
    /// Hands every change of a key in `[start, end)` after `revision` to `on_changes`, in revision order, a
    /// revision at a time, until it returns a revision to stop at. Survives connection loss by re-watching from
    /// the last revision seen.
    pub async fn follow(
        &self,
        start: &str,
        end: &str,
        revision: i64,
        mut on_changes: impl FnMut(&[Change]) -> Option<i64>,
    ) -> Result<Followed, Error> {
        match &self.0 {
            Store::Etcd { client, .. } => {
                let mut from = revision + 1;
                loop {
                    let opts = etcd::WatchOptions::new().with_range(end).with_start_revision(from);
                    let mut stream = match client.watch_client().watch(start, Some(opts)).await {
                        Ok(stream) => stream,
                        Err(e) => {
                            tracing::warn!(error = %e, "watch failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    };
                    loop {
                        match stream.message().await {
                            Ok(Some(resp)) => {
                                if resp.compact_revision() > 0 {
                                    return Ok(Followed::Compacted(resp.compact_revision()));
                                }
                                if resp.canceled() {
                                    tracing::warn!(reason = resp.cancel_reason(), "watch cancelled; re-watching");
                                    break;
                                }
                                let changes: Vec<Change> = resp
                                    .events()
                                    .iter()
                                    .filter_map(|ev| {
                                        let kv = ev.kv()?;
                                        Some(Change {
                                            key: String::from_utf8_lossy(kv.key()).into_owned(),
                                            exists: ev.event_type() == etcd::EventType::Put,
                                            revision: kv.mod_revision(),
                                        })
                                    })
                                    .collect();
                                if let Some(last) = changes.last() {
                                    from = from.max(last.revision + 1);
                                }
                                if let Some(stop) = on_changes(&changes) {
                                    return Ok(Followed::Stopped(stop));
                                }
                            }
                            Ok(None) | Err(_) => {
                                tracing::warn!(from, "watch stream ended; re-watching");
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                break;
                            }
                        }
                    }
                }
            }
            Store::Memory(store) => {
                let range = kv::KeyRange { key: start.as_bytes().to_vec(), range_end: end.as_bytes().to_vec() };
                let mut watch = match store.watch(range, revision + 1) {
                    Ok(w) => w,
                    Err(kv::Error::Compacted { compact_revision }) => return Ok(Followed::Compacted(compact_revision)),
                    Err(e) => return Err(Error::Backend(e.to_string())),
                };
                while let Some(batch) = watch.events.recv().await {
                    let changes: Vec<Change> = batch
                        .into_iter()
                        .map(|ev| Change {
                            key: String::from_utf8_lossy(&ev.kv.key).into_owned(),
                            exists: ev.kind == kv::EventKind::Put,
                            revision: ev.kv.mod_revision,
                        })
                        .collect();
                    if let Some(stop) = on_changes(&changes) {
                        return Ok(Followed::Stopped(stop));
                    }
                }
                Err(Error::Backend("in-memory store closed".into()))
            }
        }
    }
}

/// The error a failed request to etcd becomes: what to do about TLS when that is the cause, that the database
/// is unreachable when it cannot be reached, else the server's answer.
fn connection_error(endpoint: &str, tls: Tls, e: etcd::Error) -> Error {
    let detail = match &e {
        etcd::Error::TransportError(t) => sdp_daemon::with_causes(t.to_string(), t.source()),
        etcd::Error::IoError(io) => sdp_daemon::with_causes(io.to_string(), io.source()),
        // A status with a source is the transport's, whatever its code.
        etcd::Error::GRpcStatus(s) if s.code() == tonic::Code::Unavailable || s.source().is_some() => {
            sdp_daemon::with_causes(s.message().to_string(), s.source())
        }
        _ => return Error::Backend(e.to_string()),
    };
    match crate::tls::tls_fix(tls, &detail) {
        Some(fix) => Error::TlsRefused { endpoint: endpoint.to_string(), detail, fix },
        None => Error::Unreachable { endpoint: endpoint.to_string(), detail },
    }
}

fn stored_from_kv(kv: kv::KeyValue) -> Stored {
    Stored {
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        value: String::from_utf8_lossy(&kv.value).into_owned(),
        mod_revision: kv.mod_revision,
        lease: kv.lease,
    }
}
