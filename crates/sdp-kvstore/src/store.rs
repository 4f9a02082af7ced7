//! The multi-version store: a history of versions per key, a revision-ordered event log for watchers, and leases.
//!
//! Every mutation is first turned into a [`Record`] and then applied by [`State::apply`]; the same function
//! replays a journal after a restart, so live state and recovered state cannot disagree.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use crate::types::*;

/// Persists records before a write is acknowledged. The in-memory store uses none.
pub trait Journal: Send + Sync {
    /// Writes `record` (under the store's lock); [`Journal::sync`] makes it durable.
    fn append(&self, record: &Record) -> std::io::Result<()>;

    /// Waits until every record appended so far is on disk. Apart from [`Journal::append`], so that concurrent
    /// writers share one flush, outside the store's lock.
    fn sync(&self) -> Flush<'_>;

    /// Whether the journal has grown enough to be replaced by a snapshot of the state (checked after each
    /// record, so that rewriting one key does not grow it without end).
    fn rewrite_due(&self) -> bool;

    /// Replaces everything journaled so far with `snapshot`, atomically.
    fn replace_with(&self, snapshot: &Record) -> std::io::Result<()>;
}

/// What [`Journal::sync`] returns.
pub type Flush<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send + 'a>>;

/// What one request may cost, as etcd bounds it (the server's options carry etcd's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Operations in one transaction: compares and requests of both branches, nested transactions included
    /// (`--max-txn-ops`).
    pub max_txn_ops: usize,
    /// Keys and values one response may carry, every read of a transaction together (`--max-response-bytes`).
    pub max_response_bytes: usize,
    /// Size of every kept version of every key past which writes are refused and the NOSPACE alarm is raised
    /// (`--quota-backend-bytes`; 0: no quota).
    pub quota_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_txn_ops: 128, max_response_bytes: 64 << 20, quota_bytes: 512 << 20 }
    }
}

/// A journal record that cannot be applied to the state the records before it built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {index} of the journal cannot be applied: {reason}")]
pub struct ReplayError {
    /// Position of the record in the journal, from 0.
    pub index: usize,
    pub reason: String,
}

/// Bytes a version of a key costs the store beyond its key and value (revisions, version, lease).
const VERSION_OVERHEAD: u64 = 48;

/// A batch of events delivered to one watcher, in revision order.
pub type EventBatch = Vec<Event>;

struct Watcher {
    range: KeyRange,
    tx: mpsc::UnboundedSender<EventBatch>,
}

struct Lease {
    ttl: i64,
    deadline: Instant,
    keys: BTreeSet<Vec<u8>>,
}

/// `now + ttl` seconds; a deadline past what `Instant` holds is as good as never.
fn deadline_after(now: Instant, ttl: i64) -> Instant {
    let ttl = Duration::from_secs(ttl.clamp(0, MAX_LEASE_TTL) as u64);
    now.checked_add(ttl).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Versions of one key, oldest first; `None` marks a deletion (tombstone).
type Versions = Vec<(Revision, Option<KeyValue>)>;

#[derive(Default)]
struct State {
    revision: Revision,
    compact_revision: Revision,
    /// Versions of each key.
    history: BTreeMap<Vec<u8>, Versions>,
    /// Every event since the compaction revision, in order.
    /// Which key changed at each revision, in order. The versions themselves are in `history` only: a
    /// watch replaying the past reads them there, so that a value is held once, not once per event.
    log: VecDeque<(Revision, Vec<u8>)>,
    leases: HashMap<LeaseId, Lease>,
    watchers: HashMap<u64, Watcher>,
    next_watcher: u64,
    next_lease: LeaseId,
    /// What every kept version costs (keys, values, overhead): what the quota bounds.
    bytes: u64,
}

/// A thread-safe store. Operations are synchronous and short; watchers receive events through channels.
pub struct Store {
    state: Mutex<State>,
    journal: Option<Arc<dyn Journal>>,
    lease_changed: Notify,
    limits: Limits,
    /// etcd's NOSPACE alarm: raised when a write would pass the quota, cleared by an operator.
    no_space: std::sync::atomic::AtomicBool,
}

/// A registered watcher; dropping it stops delivery.
pub struct Watch {
    store: Arc<Store>,
    id: u64,
    pub events: mpsc::UnboundedReceiver<EventBatch>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.store.lock().watchers.remove(&self.id);
    }
}

impl Store {
    pub fn new() -> Arc<Store> {
        Self::in_memory(Limits::default())
    }

    pub fn in_memory(limits: Limits) -> Arc<Store> {
        Self::recover(None, std::iter::empty(), limits).expect("an empty journal replays")
    }

    /// A store rebuilt from `records` (in journal order) that appends new records to `journal`. A record that
    /// does not fit the state before it stops the replay: nothing starts on partial data.
    pub fn recover(
        journal: Option<Arc<dyn Journal>>,
        records: impl IntoIterator<Item = Record>,
        limits: Limits,
    ) -> Result<Arc<Store>, ReplayError> {
        // Like etcd, a fresh store is at revision 1, so that revision 0 can mean "the latest" in requests.
        let mut state = State { revision: 1, next_lease: initial_lease_id(), ..State::default() };
        let now = Instant::now();
        for (index, record) in records.into_iter().enumerate() {
            state.check(&record).map_err(|reason| ReplayError { index, reason })?;
            // A record that passed the check applies; should one panic all the same, the start fails with
            // the record named rather than the process dying.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.apply(record, now)))
                .map_err(|_| ReplayError { index, reason: "applying it failed (the process panicked)".into() })?;
        }
        let over_quota = limits.quota_bytes > 0 && state.bytes > limits.quota_bytes;
        Ok(Arc::new(Store {
            state: Mutex::new(state),
            journal,
            lease_changed: Notify::new(),
            limits,
            no_space: over_quota.into(),
        }))
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether the NOSPACE alarm is raised: writes that add data are refused until it is disarmed.
    pub fn no_space(&self) -> bool {
        self.no_space.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Clears the NOSPACE alarm (etcd's `alarm disarm`); a write past the quota raises it again.
    pub fn disarm_no_space(&self) {
        self.no_space.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// What every kept version of every key costs, in bytes (what the quota bounds).
    pub fn size_bytes(&self) -> u64 {
        self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied record (apply does not panic midway on
        // valid records), so recovering the guard is safe.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn commit(&self, state: &mut State, record: Record) -> Result<(), Error> {
        // A record that could not be replayed is never journaled.
        state.check(&record).map_err(Error::InvalidArgument)?;
        if let Some(journal) = &self.journal {
            journal.append(&record).map_err(|e| Error::Storage(e.to_string()))?;
        }
        state.apply(record, Instant::now());
        match &self.journal {
            Some(journal) if journal.rewrite_due() => {
                journal.replace_with(&state.snapshot()).map_err(|e| Error::Storage(e.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Waits until every write made so far is on disk: a write is acknowledged only after this. At once for a
    /// store without a journal.
    pub fn durable(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + 'static>> {
        let journal = self.journal.clone();
        Box::pin(async move {
            match journal {
                Some(journal) => journal.sync().await.map_err(|e| Error::Storage(e.to_string())),
                None => Ok(()),
            }
        })
    }

    /// Replaces the journal with a snapshot of the live state now (etcd's defragment).
    pub fn rewrite_journal(&self) -> Result<(), Error> {
        let state = self.lock();
        match &self.journal {
            Some(journal) => journal.replace_with(&state.snapshot()).map_err(|e| Error::Storage(e.to_string())),
            None => Ok(()),
        }
    }

    pub fn revision(&self) -> Revision {
        self.lock().revision
    }

    pub fn compact_revision(&self) -> Revision {
        self.lock().compact_revision
    }

    /// Number of live keys (for status reports).
    pub fn key_count(&self) -> usize {
        self.lock().history.values().filter(|v| matches!(v.last(), Some((_, Some(_))))).count()
    }

    /// A record that rebuilds the current live state (without history) when applied to an empty store.
    pub fn snapshot(&self) -> Record {
        self.lock().snapshot()
    }

    /// Returns the response and the revision it was read at.
    pub fn range(&self, req: &RangeRequest) -> Result<(RangeResponse, Revision), Error> {
        let state = self.lock();
        let resp = state.range(req, &BTreeMap::new(), &mut Budget::new(self.limits.max_response_bytes))?;
        Ok((resp, state.revision))
    }

    /// Runs a transaction atomically; returns the response and the store revision after it.
    pub fn txn(&self, req: &TxnRequest) -> Result<(TxnResponse, Revision), Error> {
        let ops = req.total_ops();
        if ops > self.limits.max_txn_ops {
            return Err(Error::TooManyOps { ops, limit: self.limits.max_txn_ops });
        }
        let mut state = self.lock();
        let mut pending = Pending::new(state.revision + 1, self.limits.max_response_bytes);
        let resp = state.eval_txn(req, &mut pending)?;
        if !pending.events.is_empty() {
            self.check_quota(&state, &pending.events)?;
            let revision = pending.revision;
            self.commit(&mut state, Record::Changes { revision, events: pending.events })?;
        }
        Ok((resp, state.revision))
    }

    /// Refuses changes that add data while the NOSPACE alarm is raised, and raises it for a change that would
    /// pass the quota. Deletions pass, so that space can be freed.
    fn check_quota(&self, state: &State, events: &[Event]) -> Result<(), Error> {
        let quota = self.limits.quota_bytes;
        if quota == 0 || events.iter().all(|e| e.kind == EventKind::Delete) {
            return Ok(());
        }
        let added: u64 = events.iter().map(|e| version_size(&e.kv.key, Some(&e.kv))).sum();
        if self.no_space() || state.bytes.saturating_add(added) > quota {
            self.no_space.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(Error::NoSpace { quota });
        }
        Ok(())
    }

    pub fn put(&self, req: PutRequest) -> Result<(PutResponse, Revision), Error> {
        let (resp, rev) = self.txn(&TxnRequest { success: vec![RequestOp::Put(req)], ..Default::default() })?;
        match resp.responses.into_iter().next() {
            Some(ResponseOp::Put(p)) => Ok((p, rev)),
            _ => unreachable!("a one-put transaction answers with one put response"),
        }
    }

    pub fn delete_range(&self, req: DeleteRangeRequest) -> Result<(DeleteRangeResponse, Revision), Error> {
        let (resp, rev) = self.txn(&TxnRequest { success: vec![RequestOp::DeleteRange(req)], ..Default::default() })?;
        match resp.responses.into_iter().next() {
            Some(ResponseOp::DeleteRange(d)) => Ok((d, rev)),
            _ => unreachable!("a one-delete transaction answers with one delete response"),
        }
    }

    /// Forgets versions and events older than `revision`.
    pub fn compact(&self, revision: Revision) -> Result<Revision, Error> {
        let mut state = self.lock();
        if revision <= state.compact_revision {
            return Err(Error::Compacted { compact_revision: state.compact_revision });
        }
        if revision > state.revision {
            return Err(Error::FutureRevision { requested: revision, current: state.revision });
        }
        self.commit(&mut state, Record::Compact { revision })?;
        Ok(state.revision)
    }

    /// Watches `range` from `start_revision` (0: from the next write). Past events still in the log are
    /// delivered first.
    pub fn watch(self: &Arc<Self>, range: KeyRange, start_revision: Revision) -> Result<Watch, Error> {
        let mut state = self.lock();
        if start_revision > 0 && start_revision < state.compact_revision {
            return Err(Error::Compacted { compact_revision: state.compact_revision });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        if start_revision > 0 && start_revision <= state.revision {
            let mut batch: EventBatch = Vec::new();
            let mut batch_rev = 0;
            let first = state.log.partition_point(|(rev, _)| *rev < start_revision);
            let changes = state.log.range(first..).filter(|(_, key)| range.contains(key));
            for (rev, ev) in changes.filter_map(|(rev, key)| Some((rev, state.event_at(key, *rev)?))) {
                if *rev != batch_rev && !batch.is_empty() {
                    let _ = tx.send(std::mem::take(&mut batch));
                }
                batch_rev = *rev;
                batch.push(ev);
            }
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
        }
        let id = state.next_watcher;
        state.next_watcher += 1;
        state.watchers.insert(id, Watcher { range, tx });
        Ok(Watch { store: Arc::clone(self), id, events: rx })
    }

    /// Grants a lease; `id` 0 lets the store choose one.
    pub fn lease_grant(&self, id: LeaseId, ttl: i64) -> Result<(LeaseId, i64), Error> {
        if ttl <= 0 {
            return Err(Error::InvalidArgument("lease TTL must be positive".into()));
        }
        if ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge { ttl });
        }
        if id < 0 {
            return Err(Error::InvalidArgument("lease ID must not be negative".into()));
        }
        if self.no_space() {
            return Err(Error::NoSpace { quota: self.limits.quota_bytes });
        }
        let mut state = self.lock();
        let id = if id == 0 {
            state.next_lease = free_lease_id(state.next_lease, |id| state.leases.contains_key(&id));
            state.next_lease
        } else if state.leases.contains_key(&id) {
            return Err(Error::LeaseExists(id));
        } else {
            id
        };
        self.commit(&mut state, Record::LeaseGrant { id, ttl })?;
        drop(state);
        self.lease_changed.notify_one();
        Ok((id, ttl))
    }

    /// Revokes a lease and deletes its keys in one revision.
    pub fn lease_revoke(&self, id: LeaseId) -> Result<Revision, Error> {
        let mut state = self.lock();
        self.revoke_locked(&mut state, id)?;
        Ok(state.revision)
    }

    fn revoke_locked(&self, state: &mut State, id: LeaseId) -> Result<(), Error> {
        let keys: Vec<Vec<u8>> = match state.leases.get(&id) {
            Some(lease) => lease.keys.iter().cloned().collect(),
            None => return Err(Error::LeaseNotFound(id)),
        };
        let mut pending = Pending::new(state.revision + 1, usize::MAX);
        for key in keys {
            // Without prev_kv a deletion spends no response budget, so this cannot fail.
            let _ =
                state.delete_range(&DeleteRangeRequest { range: KeyRange::single(key), prev_kv: false }, &mut pending);
        }
        if !pending.events.is_empty() {
            let revision = pending.revision;
            self.commit(state, Record::Changes { revision, events: pending.events })?;
        }
        self.commit(state, Record::LeaseRevoke { id })
    }

    /// Renews a lease to its full TTL; returns that TTL.
    pub fn lease_keep_alive(&self, id: LeaseId) -> Result<i64, Error> {
        let mut state = self.lock();
        let lease = state.leases.get_mut(&id).ok_or(Error::LeaseNotFound(id))?;
        lease.deadline = deadline_after(Instant::now(), lease.ttl);
        Ok(lease.ttl)
    }

    pub fn lease_time_to_live(&self, id: LeaseId) -> Result<LeaseStatus, Error> {
        let state = self.lock();
        let lease = state.leases.get(&id).ok_or(Error::LeaseNotFound(id))?;
        let left = lease.deadline.saturating_duration_since(Instant::now());
        Ok(LeaseStatus {
            id,
            granted_ttl: lease.ttl,
            ttl: left.as_secs_f64().ceil() as i64,
            keys: lease.keys.iter().cloned().collect(),
        })
    }

    pub fn leases(&self) -> Vec<LeaseId> {
        let mut ids: Vec<LeaseId> = self.lock().leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Revokes every lease whose deadline has passed; returns how long until the next one is due.
    pub fn expire_leases(&self) -> Option<Duration> {
        let mut state = self.lock();
        let now = Instant::now();
        let expired: Vec<LeaseId> = state.leases.iter().filter(|(_, l)| l.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Err(e) = self.revoke_locked(&mut state, id) {
                tracing_free_log(&format!("cannot expire lease {id:x}: {e}"));
            }
        }
        state.leases.values().map(|l| l.deadline.saturating_duration_since(now)).min()
    }

    /// Expires leases for as long as the store lives; spawn it once per store.
    pub async fn run_lease_expiry(self: Arc<Self>) {
        loop {
            let wait = self.expire_leases().unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
                _ = self.lease_changed.notified() => {}
            }
        }
    }
}

// The store crate stays free of a logging dependency; the one failure it cannot report to a caller goes to stderr.
fn tracing_free_log(msg: &str) {
    eprintln!("sdp-kvstore: {msg}");
}

fn initial_lease_id() -> LeaseId {
    // etcd lease IDs look random; a time-derived start keeps them unique across restarts of a fresh store.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(1);
    ((nanos as i64) & 0x3fff_ffff_ffff_ffff) | 0x1000_0000_0000
}

/// Writes of a transaction not yet applied: later ops in the same transaction read through them.
struct Pending {
    revision: Revision,
    writes: BTreeMap<Vec<u8>, Option<KeyValue>>,
    events: Vec<Event>,
    budget: Budget,
}

impl Pending {
    fn new(revision: Revision, max_response_bytes: usize) -> Self {
        Pending { revision, writes: BTreeMap::new(), events: Vec::new(), budget: Budget::new(max_response_bytes) }
    }
}

/// The bytes a response may still carry.
struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget { left: limit, limit }
    }

    /// Takes what `kvs` add to the response, before they are copied into it.
    fn spend<'a>(&mut self, kvs: impl IntoIterator<Item = &'a KeyValue>, with_values: bool) -> Result<(), Error> {
        for kv in kvs {
            let cost = kv.key.len() + if with_values { kv.value.len() } else { 0 } + VERSION_OVERHEAD as usize;
            self.left = self.left.checked_sub(cost).ok_or(Error::ResponseTooLarge { limit: self.limit })?;
        }
        Ok(())
    }
}

/// What one version of `key` costs the store.
fn version_size(key: &[u8], kv: Option<&KeyValue>) -> u64 {
    key.len() as u64 + kv.map_or(0, |kv| kv.value.len() as u64) + VERSION_OVERHEAD
}

impl State {
    fn current(&self, key: &[u8], pending: &BTreeMap<Vec<u8>, Option<KeyValue>>) -> Option<KeyValue> {
        if let Some(w) = pending.get(key) {
            return w.clone();
        }
        self.history.get(key).and_then(|h| h.last()).and_then(|(_, kv)| kv.clone())
    }

    fn at_revision(history: &[(Revision, Option<KeyValue>)], revision: Revision) -> Option<&KeyValue> {
        let idx = history.partition_point(|(rev, _)| *rev <= revision);
        if idx == 0 {
            return None;
        }
        history[idx - 1].1.as_ref()
    }

    /// Live key-values in `range` at `revision` (0: now, including pending writes).
    /// The entries in `range` at `revision` (0: now, with the pending writes of a transaction), sorted by key,
    /// borrowed: compares and counts clone nothing, and listings clone only what they answer.
    fn visible<'a>(
        &'a self,
        range: &KeyRange,
        revision: Revision,
        pending: &'a BTreeMap<Vec<u8>, Option<KeyValue>>,
    ) -> Vec<&'a KeyValue> {
        let history: Box<dyn Iterator<Item = (&Vec<u8>, &Versions)>> = if range.is_single() {
            Box::new(self.history.range(range.key.clone()..=range.key.clone()))
        } else if range.range_end == [0] {
            Box::new(self.history.range(range.key.clone()..))
        } else if range.key < range.range_end {
            Box::new(self.history.range(range.key.clone()..range.range_end.clone()))
        } else {
            Box::new(std::iter::empty())
        };
        let found: Vec<&KeyValue> = history
            .filter_map(|(_, h)| {
                if revision == 0 {
                    h.last().and_then(|(_, kv)| kv.as_ref())
                } else {
                    Self::at_revision(h, revision)
                }
            })
            .collect();
        let mut writes = pending.iter().filter(|(k, _)| revision == 0 && range.contains(k)).peekable();
        if writes.peek().is_none() {
            return found;
        }
        let mut merged: BTreeMap<&[u8], &KeyValue> = found.into_iter().map(|kv| (kv.key.as_slice(), kv)).collect();
        for (key, write) in writes {
            match write {
                Some(kv) => merged.insert(key, kv),
                None => merged.remove(key.as_slice()),
            };
        }
        merged.into_values().collect()
    }

    fn range(
        &self,
        req: &RangeRequest,
        pending: &BTreeMap<Vec<u8>, Option<KeyValue>>,
        budget: &mut Budget,
    ) -> Result<RangeResponse, Error> {
        if req.revision < 0 {
            return Err(Error::InvalidArgument("negative revision: use 0 for the latest".into()));
        }
        if req.limit < 0 {
            return Err(Error::InvalidArgument("negative limit: use 0 for no limit".into()));
        }
        if req.revision > self.revision {
            return Err(Error::FutureRevision { requested: req.revision, current: self.revision });
        }
        if req.revision > 0 && req.revision < self.compact_revision {
            return Err(Error::Compacted { compact_revision: self.compact_revision });
        }
        let revision = if req.revision == self.revision { 0 } else { req.revision };
        let mut kvs = self.visible(&req.range, revision, pending);
        let count = kvs.len() as i64;
        match (req.sort_order, req.sort_target) {
            (SortOrder::None, _) | (SortOrder::Ascend, SortTarget::Key) => {}
            (order, target) => {
                kvs.sort_by(|a, b| {
                    let ord = match target {
                        SortTarget::Key => a.key.cmp(&b.key),
                        SortTarget::Version => a.version.cmp(&b.version),
                        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                        SortTarget::Value => a.value.cmp(&b.value),
                    };
                    if order == SortOrder::Descend {
                        ord.reverse()
                    } else {
                        ord
                    }
                });
            }
        }
        let more = req.limit > 0 && kvs.len() as i64 > req.limit;
        if req.limit > 0 {
            kvs.truncate(req.limit as usize);
        }
        if !req.count_only {
            budget.spend(kvs.iter().copied(), !req.keys_only)?;
        }
        let kvs = if req.count_only {
            Vec::new()
        } else if req.keys_only {
            kvs.into_iter().map(|kv| KeyValue { key: kv.key.clone(), value: Vec::new(), ..*kv }).collect()
        } else {
            kvs.into_iter().cloned().collect()
        };
        Ok(RangeResponse { kvs, count, more })
    }

    fn compare(&self, cmp: &Compare, pending: &BTreeMap<Vec<u8>, Option<KeyValue>>) -> bool {
        let kvs = self.visible(&cmp.range, 0, pending);
        if kvs.is_empty() {
            // etcd: a value compare on a missing key is false; other targets compare against zero.
            if matches!(cmp.target, CompareTarget::Value(_)) {
                return false;
            }
            return compare_one(&KeyValue::default(), cmp);
        }
        kvs.into_iter().all(|kv| compare_one(kv, cmp))
    }

    fn eval_txn(&self, req: &TxnRequest, pending: &mut Pending) -> Result<TxnResponse, Error> {
        // Like etcd, both branches are checked before anything runs, whichever is taken.
        check_no_duplicate_writes(&req.success)?;
        check_no_duplicate_writes(&req.failure)?;
        let succeeded = req.compare.iter().all(|c| self.compare(c, &pending.writes));
        let ops = if succeeded { &req.success } else { &req.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => {
                    let mut r = r.clone();
                    // Reads inside a transaction see the transaction's own earlier writes.
                    if r.revision == self.revision {
                        r.revision = 0;
                    }
                    ResponseOp::Range(self.range(&r, &pending.writes, &mut pending.budget)?)
                }
                RequestOp::Put(p) => ResponseOp::Put(self.put(p, pending)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete_range(d, pending)?),
                RequestOp::Txn(t) => ResponseOp::Txn(self.eval_txn(t, pending)?),
            });
        }
        Ok(TxnResponse { succeeded, responses })
    }

    fn put(&self, req: &PutRequest, pending: &mut Pending) -> Result<PutResponse, Error> {
        let prev = self.current(&req.key, &pending.writes);
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(Error::KeyNotFound);
        }
        let lease = if req.ignore_lease { prev.as_ref().map_or(0, |p| p.lease) } else { req.lease };
        if lease != 0 && !self.leases.contains_key(&lease) {
            return Err(Error::LeaseNotFound(lease));
        }
        let value = if req.ignore_value {
            prev.as_ref().map(|p| p.value.clone()).unwrap_or_default()
        } else {
            req.value.clone()
        };
        let kv = KeyValue {
            key: req.key.clone(),
            value,
            create_revision: prev.as_ref().map_or(pending.revision, |p| p.create_revision),
            mod_revision: pending.revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease,
        };
        if req.prev_kv {
            pending.budget.spend(prev.as_ref(), true)?;
        }
        pending.writes.insert(req.key.clone(), Some(kv.clone()));
        pending.events.push(Event { kind: EventKind::Put, kv, prev_kv: prev.clone() });
        Ok(PutResponse { prev_kv: if req.prev_kv { prev } else { None } })
    }

    fn delete_range(&self, req: &DeleteRangeRequest, pending: &mut Pending) -> Result<DeleteRangeResponse, Error> {
        let victims = self.visible(&req.range, 0, &pending.writes);
        if req.prev_kv {
            pending.budget.spend(victims.iter().copied(), true)?;
        }
        let victims: Vec<KeyValue> = victims.into_iter().cloned().collect();
        for prev in &victims {
            pending.writes.insert(prev.key.clone(), None);
            let kv = KeyValue { key: prev.key.clone(), mod_revision: pending.revision, ..KeyValue::default() };
            pending.events.push(Event { kind: EventKind::Delete, kv, prev_kv: Some(prev.clone()) });
        }
        Ok(DeleteRangeResponse {
            deleted: victims.len() as i64,
            prev_kvs: if req.prev_kv { victims } else { Vec::new() },
        })
    }

    /// The change of `key` at `revision`, with the version before it, rebuilt from the key's history.
    fn event_at(&self, key: &[u8], revision: Revision) -> Option<Event> {
        let versions = self.history.get(key)?;
        let at = versions.partition_point(|(rev, _)| *rev <= revision).checked_sub(1)?;
        let (rev, version) = &versions[at];
        if *rev != revision {
            return None;
        }
        let prev_kv = at.checked_sub(1).and_then(|before| versions[before].1.clone());
        Some(match version {
            Some(kv) => Event { kind: EventKind::Put, kv: kv.clone(), prev_kv },
            None => {
                let kv = KeyValue { key: key.to_vec(), mod_revision: revision, ..KeyValue::default() };
                Event { kind: EventKind::Delete, kv, prev_kv }
            }
        })
    }

    /// A record that rebuilds the live state (without history) when applied to an empty store.
    fn snapshot(&self) -> Record {
        let none = BTreeMap::new();
        let kvs =
            self.visible(&KeyRange { key: Vec::new(), range_end: vec![0] }, 0, &none).into_iter().cloned().collect();
        let mut leases: Vec<(LeaseId, i64)> = self.leases.iter().map(|(id, l)| (*id, l.ttl)).collect();
        leases.sort_unstable();
        Record::Snapshot { revision: self.revision, kvs, leases }
    }

    /// Why `record` cannot follow this state, if it cannot: what a journal replay refuses to apply.
    fn check(&self, record: &Record) -> Result<(), String> {
        match record {
            Record::Changes { revision, .. } if *revision <= self.revision => {
                Err(format!("changes at revision {revision}, not after the current revision {}", self.revision))
            }
            Record::LeaseGrant { id, ttl } if !(1..=MAX_LEASE_TTL).contains(ttl) || *id < 0 => {
                Err(format!("lease {id:x} granted with TTL {ttl} s (between 1 and {MAX_LEASE_TTL} s expected)"))
            }
            Record::Compact { revision } if *revision > self.revision => {
                Err(format!("compaction at revision {revision}, past the current revision {}", self.revision))
            }
            Record::Snapshot { leases, .. } => {
                match leases.iter().find(|(_, ttl)| !(1..=MAX_LEASE_TTL).contains(ttl)) {
                    Some((id, ttl)) => Err(format!("snapshot with lease {id:x} of TTL {ttl} s")),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Applies one record that [`State::check`] accepted. Live writes and journal replay both come through here.
    fn apply(&mut self, record: Record, now: Instant) {
        match record {
            Record::Changes { revision, events } => {
                for ev in &events {
                    // A journal keeps no previous values (they would double its size): they are read here.
                    let prev = match &ev.prev_kv {
                        Some(prev) => Some(prev.lease),
                        None => self
                            .history
                            .get(&ev.kv.key)
                            .and_then(|h| h.last())
                            .and_then(|(_, kv)| kv.as_ref())
                            .map(|kv| kv.lease),
                    };
                    if let Some(lease) = prev.filter(|lease| *lease != 0) {
                        if let Some(l) = self.leases.get_mut(&lease) {
                            l.keys.remove(&ev.kv.key);
                        }
                    }
                    let entry = match ev.kind {
                        EventKind::Put => {
                            if ev.kv.lease != 0 {
                                if let Some(l) = self.leases.get_mut(&ev.kv.lease) {
                                    l.keys.insert(ev.kv.key.clone());
                                }
                            }
                            Some(ev.kv.clone())
                        }
                        EventKind::Delete => None,
                    };
                    self.bytes += version_size(&ev.kv.key, entry.as_ref());
                    self.history.entry(ev.kv.key.clone()).or_default().push((revision, entry));
                    self.log.push_back((revision, ev.kv.key.clone()));
                }
                self.revision = revision;
                self.notify(&events);
            }
            Record::LeaseGrant { id, ttl } => {
                self.leases.insert(id, Lease { ttl, deadline: deadline_after(now, ttl), keys: BTreeSet::new() });
                self.next_lease = self.next_lease.max(id.saturating_add(1));
            }
            Record::LeaseRevoke { id } => {
                self.leases.remove(&id);
            }
            Record::Snapshot { revision, kvs, leases } => {
                *self = State { next_lease: self.next_lease, next_watcher: self.next_watcher, ..State::default() };
                self.revision = revision;
                self.compact_revision = revision;
                for (id, ttl) in leases {
                    self.apply(Record::LeaseGrant { id, ttl }, now);
                }
                for kv in kvs {
                    if let Some(l) = self.leases.get_mut(&kv.lease) {
                        l.keys.insert(kv.key.clone());
                    }
                    self.bytes += version_size(&kv.key, Some(&kv));
                    self.history.insert(kv.key.clone(), vec![(kv.mod_revision, Some(kv))]);
                }
            }
            Record::Compact { revision } => {
                self.compact_revision = revision;
                while self.log.front().is_some_and(|(rev, _)| *rev < revision) {
                    self.log.pop_front();
                }
                let mut freed = 0;
                self.history.retain(|key, versions| {
                    // Keep the newest version at or before the compaction revision, unless it is a deletion before
                    // it (one at the compaction revision is still an event a watch from there replays).
                    let keep_from = versions.partition_point(|(rev, _)| *rev <= revision).saturating_sub(1);
                    freed += versions.drain(..keep_from).map(|(_, kv)| version_size(key, kv.as_ref())).sum::<u64>();
                    if versions.len() == 1 && versions[0].1.is_none() && versions[0].0 < revision {
                        freed += version_size(key, None);
                        versions.clear();
                    }
                    !versions.is_empty()
                });
                self.bytes -= freed;
            }
        }
    }

    fn notify(&mut self, events: &[Event]) {
        self.watchers.retain(|_, w| {
            let batch: EventBatch = events.iter().filter(|e| w.range.contains(&e.kv.key)).cloned().collect();
            batch.is_empty() || w.tx.send(batch).is_ok()
        });
    }
}

fn compare_one(kv: &KeyValue, cmp: &Compare) -> bool {
    use std::cmp::Ordering;
    let ord: Ordering = match &cmp.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::CreateRevision(r) => kv.create_revision.cmp(r),
        CompareTarget::ModRevision(r) => kv.mod_revision.cmp(r),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
        CompareTarget::Lease(l) => kv.lease.cmp(l),
    };
    match cmp.result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

/// etcd refuses a transaction branch that writes the same key twice (including through nested transactions).
fn check_no_duplicate_writes(ops: &[RequestOp]) -> Result<(), Error> {
    let mut puts: BTreeSet<&[u8]> = BTreeSet::new();
    let mut deletes: Vec<&KeyRange> = Vec::new();
    for op in ops {
        match op {
            RequestOp::Put(p) if !puts.insert(&p.key) => {
                return Err(Error::DuplicateKey);
            }
            RequestOp::DeleteRange(d) => deletes.push(&d.range),
            _ => {}
        }
    }
    if puts.iter().any(|k| deletes.iter().any(|r| r.contains(k))) {
        return Err(Error::DuplicateKey);
    }
    Ok(())
}

/// The first lease ID from `from` on that is not `taken`, going round from i64::MAX to 1 (a client may have
/// granted any ID itself, the largest too).
fn free_lease_id(from: LeaseId, taken: impl Fn(LeaseId) -> bool) -> LeaseId {
    let mut id = from.max(1);
    while taken(id) {
        id = if id == LeaseId::MAX { 1 } else { id + 1 };
    }
    id
}
