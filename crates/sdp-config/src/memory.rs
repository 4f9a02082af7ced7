//! The driver for a store with etcd's semantics in this process: a fresh one (`SDP_CONFIG_BACKEND=memory`) for
//! tests and single-process tools, or the embedded server's own, for the components `sdp up` runs beside it (no
//! network and no encoding between them; writes are as durable as the server's, its journal being the store's).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use sdp_kvstore as kv;

use crate::driver::{Change, Driver, Followed, OnChanges, Precondition, Stored, Write};
use crate::error::Error;

pub(crate) struct MemoryDriver(Arc<kv::Store>);

impl MemoryDriver {
    /// A fresh store. Needs a Tokio runtime (for lease expiry).
    pub fn new() -> MemoryDriver {
        let store = kv::Store::new();
        tokio::spawn(Arc::clone(&store).run_lease_expiry());
        MemoryDriver(store)
    }

    /// A store that lives on without this driver, and expires its leases itself (the embedded server's).
    pub fn on(store: Arc<kv::Store>) -> MemoryDriver {
        MemoryDriver(store)
    }
}

fn store_error(e: kv::Error) -> Error {
    Error::Backend(e.to_string())
}

impl Driver for MemoryDriver {
    fn range<'a>(
        &'a self,
        key: &'a str,
        prefix: bool,
        keys_only: bool,
        revision: Option<i64>,
    ) -> BoxFuture<'a, Result<(Vec<Stored>, i64), Error>> {
        let range = if prefix { kv::KeyRange::prefix(key) } else { kv::KeyRange::single(key) };
        let req = kv::RangeRequest { range, revision: revision.unwrap_or(0), keys_only, ..Default::default() };
        let read = self.0.range(&req).map_err(store_error).map(|(resp, rev)| {
            let found = resp
                .kvs
                .into_iter()
                .map(|kv| Stored {
                    key: String::from_utf8_lossy(&kv.key).into_owned(),
                    value: String::from_utf8_lossy(&kv.value).into_owned(),
                    mod_revision: kv.mod_revision,
                    lease: kv.lease,
                })
                .collect();
            (found, revision.unwrap_or(rev))
        });
        futures::future::ready(read).boxed()
    }

    /// The embedded server's store commits into its journal, and flushes it apart, once for every write
    /// committed meanwhile.
    fn durable(&self) -> Option<BoxFuture<'static, Result<(), Error>>> {
        Some(self.0.durable().map(|flushed| flushed.map_err(store_error)).boxed())
    }

    fn commit<'a>(
        &'a self,
        preconditions: &'a [Precondition],
        writes: &'a [Write],
    ) -> BoxFuture<'a, Result<Option<i64>, Error>> {
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
        let committed = self.0.txn(&req).map_err(store_error).map(|(resp, rev)| resp.succeeded.then_some(rev));
        futures::future::ready(committed).boxed()
    }

    fn follow<'a>(
        &'a self,
        start: &'a str,
        end: &'a str,
        revision: i64,
        on_changes: OnChanges<'a>,
    ) -> BoxFuture<'a, Result<Followed, Error>> {
        async move {
            let range = kv::KeyRange { key: start.as_bytes().to_vec(), range_end: end.as_bytes().to_vec() };
            let mut watch = match self.0.watch(range, revision + 1) {
                Ok(w) => w,
                Err(kv::Error::Compacted { compact_revision }) => return Ok(Followed::Compacted(compact_revision)),
                Err(e) => return Err(store_error(e)),
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
        .boxed()
    }

    fn lease_grant(&self, ttl: i64) -> BoxFuture<'_, Result<i64, Error>> {
        futures::future::ready(self.0.lease_grant(0, ttl).map(|(id, _)| id).map_err(store_error)).boxed()
    }

    fn lease_keep_alive(&self, id: i64, period: Duration) -> BoxFuture<'_, Error> {
        async move {
            loop {
                if self.0.lease_keep_alive(id).is_err() {
                    return Error::LeaseLost(id);
                }
                tokio::time::sleep(period).await;
            }
        }
        .boxed()
    }

    fn lease_alive(&self, id: i64) -> BoxFuture<'_, Result<bool, Error>> {
        futures::future::ready(Ok(self.0.lease_time_to_live(id).is_ok())).boxed()
    }

    fn lease_revoke(&self, id: i64) -> BoxFuture<'_, Result<(), Error>> {
        futures::future::ready(self.0.lease_revoke(id).map(|_| ()).map_err(store_error)).boxed()
    }
}
