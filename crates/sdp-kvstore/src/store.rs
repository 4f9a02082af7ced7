//! The multi-version store: a history of versions per key, a revision-ordered event log for watchers, and leases.
//!
//! Every mutation is first turned into a [`Record`] and then applied by [`State::apply`]; the same function
//! replays a journal after a restart, so live state and recovered state cannot disagree.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use crate::types::*;
use crate::Error;

/// Persists records before a write is acknowledged. The in-memory store uses none.
pub trait Journal: Send + Sync {
    fn append(&self, record: &Record) -> std::io::Result<()>;
}

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

/// Versions of one key, oldest first; `None` marks a deletion (tombstone).
type Versions = Vec<(Revision, Option<KeyValue>)>;

#[derive(Default)]
struct State {
    revision: Revision,
    compact_revision: Revision,
    /// Versions of each key.
    history: BTreeMap<Vec<u8>, Versions>,
    /// Every event since the compaction revision, in order.
    log: VecDeque<(Revision, Event)>,
    leases: HashMap<LeaseId, Lease>,
    watchers: HashMap<u64, Watcher>,
    next_watcher: u64,
    next_lease: LeaseId,
}

/// A thread-safe store. Operations are synchronous and short; watchers receive events through channels.
pub struct Store {
    state: Mutex<State>,
    journal: Option<Arc<dyn Journal>>,
    lease_changed: Notify,
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
        Self::with_journal(None, std::iter::empty())
    }

    /// A store rebuilt from `records` (in journal order) that appends new records to `journal`.
    pub fn with_journal(journal: Option<Arc<dyn Journal>>, records: impl IntoIterator<Item = Record>) -> Arc<Store> {
        // Like etcd, a fresh store is at revision 1, so that revision 0 can mean "the latest" in requests.
        let mut state = State { revision: 1, next_lease: initial_lease_id(), ..State::default() };
        let now = Instant::now();
        for record in records {
            state.apply(record, now);
        }
        Arc::new(Store { state: Mutex::new(state), journal, lease_changed: Notify::new() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied record (apply does not panic midway on
        // valid records), so recovering the guard is safe.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn commit(&self, state: &mut State, record: Record) -> Result<(), Error> {
        if let Some(journal) = &self.journal {
            journal.append(&record).map_err(|e| Error::Storage(e.to_string()))?;
        }
        state.apply(record, Instant::now());
        Ok(())
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
        let state = self.lock();
        let none = BTreeMap::new();
        let kvs =
            state.visible(&KeyRange { key: Vec::new(), range_end: vec![0] }, 0, &none).into_iter().cloned().collect();
        let mut leases: Vec<(LeaseId, i64)> = state.leases.iter().map(|(id, l)| (*id, l.ttl)).collect();
        leases.sort_unstable();
        Record::Snapshot { revision: state.revision, kvs, leases }
    }

    /// Returns the response and the revision it was read at.
    pub fn range(&self, req: &RangeRequest) -> Result<(RangeResponse, Revision), Error> {
        let state = self.lock();
        let resp = state.range(req, &BTreeMap::new())?;
        Ok((resp, state.revision))
    }

    /// Runs a transaction atomically; returns the response and the store revision after it.
    pub fn txn(&self, req: &TxnRequest) -> Result<(TxnResponse, Revision), Error> {
        let mut state = self.lock();
        let mut pending = Pending::new(state.revision + 1);
        let resp = state.eval_txn(req, &mut pending)?;
        if !pending.events.is_empty() {
            let revision = pending.revision;
            self.commit(&mut state, Record::Changes { revision, events: pending.events })?;
        }
        Ok((resp, state.revision))
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
            for (rev, ev) in state.log.range(first..).filter(|(_, ev)| range.contains(&ev.kv.key)) {
                if *rev != batch_rev && !batch.is_empty() {
                    let _ = tx.send(std::mem::take(&mut batch));
                }
                batch_rev = *rev;
                batch.push(ev.clone());
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
        let mut state = self.lock();
        let id = if id == 0 {
            while state.leases.contains_key(&state.next_lease) {
                state.next_lease += 1;
            }
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
        let mut pending = Pending::new(state.revision + 1);
        for key in keys {
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
        lease.deadline = Instant::now() + Duration::from_secs(lease.ttl as u64);
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
}

impl Pending {
    fn new(revision: Revision) -> Self {
        Pending { revision, writes: BTreeMap::new(), events: Vec::new() }
    }
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

    fn range(&self, req: &RangeRequest, pending: &BTreeMap<Vec<u8>, Option<KeyValue>>) -> Result<RangeResponse, Error> {
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
                    ResponseOp::Range(self.range(&r, &pending.writes)?)
                }
                RequestOp::Put(p) => ResponseOp::Put(self.put(p, pending)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete_range(d, pending)),
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
        pending.writes.insert(req.key.clone(), Some(kv.clone()));
        pending.events.push(Event { kind: EventKind::Put, kv, prev_kv: prev.clone() });
        Ok(PutResponse { prev_kv: if req.prev_kv { prev } else { None } })
    }

    fn delete_range(&self, req: &DeleteRangeRequest, pending: &mut Pending) -> DeleteRangeResponse {
        let victims: Vec<KeyValue> = self.visible(&req.range, 0, &pending.writes).into_iter().cloned().collect();
        for prev in &victims {
            pending.writes.insert(prev.key.clone(), None);
            let kv = KeyValue { key: prev.key.clone(), mod_revision: pending.revision, ..KeyValue::default() };
            pending.events.push(Event { kind: EventKind::Delete, kv, prev_kv: Some(prev.clone()) });
        }
        DeleteRangeResponse { deleted: victims.len() as i64, prev_kvs: if req.prev_kv { victims } else { Vec::new() } }
    }

    /// Applies one record. Live writes and journal replay both come through here.
    fn apply(&mut self, record: Record, now: Instant) {
        match record {
            Record::Changes { revision, events } => {
                for ev in &events {
                    if let Some(prev) = &ev.prev_kv {
                        if prev.lease != 0 {
                            if let Some(l) = self.leases.get_mut(&prev.lease) {
                                l.keys.remove(&prev.key);
                            }
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
                    self.history.entry(ev.kv.key.clone()).or_default().push((revision, entry));
                    self.log.push_back((revision, ev.clone()));
                }
                self.revision = revision;
                self.notify(&events);
            }
            Record::LeaseGrant { id, ttl } => {
                let deadline = now + Duration::from_secs(ttl as u64);
                self.leases.insert(id, Lease { ttl, deadline, keys: BTreeSet::new() });
                self.next_lease = self.next_lease.max(id + 1);
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
                    self.history.insert(kv.key.clone(), vec![(kv.mod_revision, Some(kv))]);
                }
            }
            Record::Compact { revision } => {
                self.compact_revision = revision;
                while self.log.front().is_some_and(|(rev, _)| *rev < revision) {
                    self.log.pop_front();
                }
                self.history.retain(|_, versions| {
                    // Keep the newest version at or before the compaction revision, unless it is a deletion.
                    let keep_from = versions.partition_point(|(rev, _)| *rev <= revision).saturating_sub(1);
                    versions.drain(..keep_from);
                    if versions.len() == 1 && versions[0].1.is_none() && versions[0].0 <= revision {
                        versions.clear();
                    }
                    !versions.is_empty()
                });
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
