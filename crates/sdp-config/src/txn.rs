//! Optimistic transactions: reads are recorded with their revisions, writes are buffered, and the commit is
//! one backend transaction guarded by compare-on-revision of everything read. A conflicting commit re-runs
//! the whole body. A [`Watcher`] re-runs it whenever something it read changes.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::Backend;
use crate::driver::{Precondition, Stored, Write};
use crate::error::Error;
use crate::json;
use crate::keys;

/// Listings look this many levels below the listed path at most (as the original's CLI does with `-R`).
pub const MAX_RECURSION: usize = 8;

#[derive(Default)]
struct TxnState {
    /// Revision all reads are pinned to, set by the first read.
    revision: Option<i64>,
    /// Stored key → what was read (None: absent).
    reads: BTreeMap<String, Option<Stored>>,
    /// Stored key prefixes that were listed: a change under them fails the commit and wakes a watcher.
    lists: BTreeSet<String>,
    /// Stored key prefixes a new key was chosen under ([`Txn::choose_new_path`]): with the listing to keep
    /// for the next choice, or `None` when the keys came from the kept ones. They wake a watcher.
    chosen_under: BTreeMap<String, Option<(i64, BTreeSet<String>)>>,
    /// Stored key → new value and lease (None: delete).
    writes: BTreeMap<String, Option<(String, i64)>>,
    /// Stored key prefixes a recursive delete listed and emptied: one range delete each at commit, unless the
    /// transaction writes under it again (etcd refuses a put and a range delete of the same key in one).
    emptied: BTreeSet<String>,
}

/// One attempt of a transaction. Cheap to clone: clones share the same buffered state, so a body can move
/// a handle into async blocks freely.
#[derive(Clone)]
pub struct Txn {
    backend: Backend,
    prefix: Arc<str>,
    state: Arc<Mutex<TxnState>>,
}

/// What a finished transaction read, so a watcher can wait for it to change.
#[derive(Clone, Debug)]
pub(crate) struct ReadSet {
    revision: i64,
    keys: BTreeSet<String>,
    prefixes: BTreeSet<String>,
}

impl Txn {
    pub(crate) fn new(backend: Backend, prefix: Arc<str>) -> Txn {
        Txn { backend, prefix, state: Arc::default() }
    }

    fn lock(&self) -> MutexGuard<'_, TxnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stored_key(&self, path: &str) -> Result<String, Error> {
        keys::check_path(path)?;
        Ok(keys::tag(&format!("{}{}", self.prefix, path)))
    }

    fn logical_path(&self, stored: &str) -> Option<String> {
        keys::untag(stored).and_then(|p| p.strip_prefix(&*self.prefix)).map(str::to_string)
    }

    /// The revision this transaction reads at (after its first read).
    pub fn revision(&self) -> Option<i64> {
        self.lock().revision
    }

    /// Raw value of a key, `None` if it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<String>, Error> {
        let key = self.stored_key(path)?;
        let revision = {
            let state = self.lock();
            if let Some(w) = state.writes.get(&key) {
                return Ok(w.as_ref().map(|(v, _)| v.clone()));
            }
            if let Some(r) = state.reads.get(&key) {
                return Ok(r.as_ref().map(|s| s.value.clone()));
            }
            state.revision
        };
        let (found, rev) = self.backend.get(&key, revision).await?;
        let mut state = self.lock();
        state.revision.get_or_insert(rev);
        let value = found.as_ref().map(|s| s.value.clone());
        state.reads.insert(key, found);
        Ok(value)
    }

    /// A key's value parsed as JSON into `T`; `None` if it does not exist.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, Error> {
        self.get(path).await?.map(|text| parse(path, &text)).transpose()
    }

    /// Paths starting with `path` at its own depth and up to `recurse` levels deeper, sorted.
    /// `list_keys("/pb/", 0)` lists the processing blocks; `list_keys("/", 8)` lists everything.
    pub async fn list_keys(&self, path: &str, recurse: usize) -> Result<Vec<String>, Error> {
        Ok(self.list(path, recurse, true).await?.into_iter().map(|(path, _)| path).collect())
    }

    /// Like [`Txn::list_keys`], with each path's raw value: one range read per depth level, at the
    /// transaction's revision, instead of a read per key. A change under the listed prefixes conflicts with
    /// the transaction and wakes a watcher, and this transaction's own writes show.
    pub async fn list_values(&self, path: &str, recurse: usize) -> Result<Vec<(String, String)>, Error> {
        self.list(path, recurse, false).await
    }

    /// The sorted paths (with their values unless `keys_only`) of one range read per depth level, this
    /// transaction's writes applied. The listed prefixes guard the commit and wake watchers; one compare per key
    /// would exceed etcd's limit of operations per transaction.
    async fn list(&self, path: &str, recurse: usize, keys_only: bool) -> Result<Vec<(String, String)>, Error> {
        keys::check_path_chars(path)?;
        let full = format!("{}{}", self.prefix, path);
        let depth = keys::depth(&full);
        let prefixes: Vec<String> = (depth..=depth + recurse).map(|d| keys::tag_at(&full, d)).collect();
        let revision = self.lock().revision;
        let (found, rev) = self.backend.list(&prefixes, keys_only, revision).await?;
        let mut state = self.lock();
        state.revision.get_or_insert(rev);
        let mut listed: BTreeMap<String, String> = found.into_iter().map(|stored| (stored.key, stored.value)).collect();
        for (key, write) in state.writes.iter().filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p))) {
            match write {
                Some((value, _)) => listed.insert(key.clone(), if keys_only { String::new() } else { value.clone() }),
                None => listed.remove(key),
            };
        }
        state.lists.extend(prefixes);
        drop(state);
        let mut paths: Vec<(String, String)> =
            listed.into_iter().filter_map(|(k, v)| self.logical_path(&k).map(|p| (p, v))).collect();
        paths.sort();
        Ok(paths)
    }

    /// Chooses a new path `path` + `<name>` with `choose`, which gets the names taken (the rest of each path
    /// at `path`'s depth that starts with `path`, in sorted order) and returns a free one, or `None`; returns
    /// that name. The chosen path counts as read absent: creating it then reads nothing, and the commit
    /// requires it still absent.
    ///
    /// The first choice under `path` lists it; the client then keeps its keys current with a watch, and later
    /// choices read nothing ([`crate::choices`]): a processing block's lowest free ID costs the same however many
    /// blocks the day has.
    pub(crate) async fn choose_new_path(
        &self,
        path: &str,
        choose: impl FnOnce(&mut dyn Iterator<Item = &str>) -> Option<String>,
    ) -> Result<Option<String>, Error> {
        keys::check_path_chars(path)?;
        let full = format!("{}{}", self.prefix, path);
        let prefix = keys::tag_at(&full, keys::depth(&full));
        // Kept keys are the stored ones: with this transaction's own writes under the prefix, list.
        let writes_under = self.lock().writes.keys().any(|key| key.starts_with(&prefix));
        let kept = if writes_under { None } else { self.backend.choices.snapshot(&prefix).await };
        let chosen = match kept {
            Some(kept) => {
                self.lock().chosen_under.insert(prefix.clone(), None);
                choose(&mut kept.keys.iter().filter_map(|key| key.strip_prefix(prefix.as_str())))
            }
            None => {
                let listed = self.list_keys(path, 0).await?;
                let mut state = self.lock();
                let to_keep = match (writes_under, state.revision) {
                    (false, Some(revision)) => Some((
                        revision,
                        listed.iter().map(|listed| keys::tag(&format!("{}{}", self.prefix, listed))).collect(),
                    )),
                    _ => None,
                };
                state.chosen_under.entry(prefix).or_insert(to_keep);
                drop(state);
                choose(&mut listed.iter().filter_map(|listed| listed.strip_prefix(path)))
            }
        };
        let Some(name) = chosen else { return Ok(None) };
        let key = self.stored_key(&format!("{path}{name}"))?;
        let mut state = self.lock();
        if !state.writes.contains_key(&key) {
            state.reads.entry(key).or_insert(None);
        }
        Ok(Some(name))
    }

    /// Creates a key; fails with [`Error::Collision`] if it exists. With a lease, the key is deleted when the
    /// lease ends.
    pub async fn create(&self, path: &str, value: &str, lease: Option<&crate::lease::Lease>) -> Result<(), Error> {
        if self.get(path).await?.is_some() {
            return Err(Error::Collision(path.to_string()));
        }
        let key = self.stored_key(path)?;
        self.lock().writes.insert(key, Some((value.to_string(), lease.map_or(0, |l| l.id()))));
        Ok(())
    }

    /// Replaces an existing key's value; fails with [`Error::Vanished`] if it does not exist.
    pub async fn update(&self, path: &str, value: &str) -> Result<(), Error> {
        let key = self.stored_key(path)?;
        if self.get(path).await?.is_none() {
            return Err(Error::Vanished(path.to_string()));
        }
        let mut state = self.lock();
        // An update keeps the key's lease as long as it was created in this transaction.
        let lease = match state.writes.get(&key) {
            Some(Some((_, lease))) => *lease,
            _ => 0,
        };
        state.writes.insert(key, Some((value.to_string(), lease)));
        Ok(())
    }

    pub async fn create_json<T: Serialize>(
        &self,
        path: &str,
        value: &T,
        lease: Option<&crate::lease::Lease>,
    ) -> Result<(), Error> {
        self.create(path, &canonical(path, value)?, lease).await
    }

    pub async fn update_json<T: Serialize>(&self, path: &str, value: &T) -> Result<(), Error> {
        self.update(path, &canonical(path, value)?).await
    }

    /// The lease the key at `path` is attached to (0: none), `None` if it does not exist. A read like
    /// [`Txn::get`]: the commit requires the key unchanged.
    pub async fn lease_of(&self, path: &str) -> Result<Option<i64>, Error> {
        self.get(path).await?;
        let key = self.stored_key(path)?;
        let state = self.lock();
        Ok(match state.writes.get(&key) {
            Some(write) => write.as_ref().map(|(_, lease)| *lease),
            None => state.reads.get(&key).cloned().flatten().map(|stored| stored.lease),
        })
    }

    /// Whether lease `id` exists now: asked of the database at once, not a read the commit checks.
    pub async fn lease_alive(&self, id: i64) -> Result<bool, Error> {
        self.backend.lease_alive(id).await
    }

    /// Writes `value` at `path` attached to `lease`, whatever is there: the commit requires the key as read.
    pub async fn replace_json_on_lease<T: Serialize>(
        &self,
        path: &str,
        value: &T,
        lease: &crate::lease::Lease,
    ) -> Result<(), Error> {
        let text = canonical(path, value)?;
        self.get(path).await?;
        let key = self.stored_key(path)?;
        self.lock().writes.insert(key, Some((text, lease.id())));
        Ok(())
    }

    /// Creates the key or replaces its value.
    pub async fn put_json<T: Serialize>(&self, path: &str, value: &T) -> Result<(), Error> {
        let text = canonical(path, value)?;
        match self.get(path).await? {
            Some(old) if old == text => Ok(()),
            Some(_) => self.update(path, &text).await,
            None => self.create(path, &text, None).await,
        }
    }

    /// Merges `fields` into the JSON object at `path` (the state entries of blocks and deployments): each
    /// field replaces the stored one, a null removes it ([`json::merge_fields`]). A missing value, or one that
    /// is not a JSON object, starts afresh. Writes only when something changes.
    pub async fn merge_state(
        &self,
        path: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), Error> {
        let stored = self.get(path).await?;
        let mut state =
            stored.as_deref().and_then(|text| serde_json::from_str(text).ok()).unwrap_or(serde_json::Value::Null);
        if json::merge_fields(&mut state, fields) || stored.is_none() {
            self.put_json(path, &state).await?;
        }
        Ok(())
    }

    /// Deletes a key (and with `recursive`, every key below it). Returns the deleted paths. A missing key is
    /// [`Error::Vanished`] when `must_exist`.
    pub async fn delete(&self, path: &str, must_exist: bool, recursive: bool) -> Result<Vec<String>, Error> {
        let key = self.stored_key(path)?;
        let mut deleted = Vec::new();
        if self.get(path).await?.is_some() {
            deleted.push(path.to_string());
        } else if must_exist {
            return Err(Error::Vanished(path.to_string()));
        }
        let mut emptied = Vec::new();
        if recursive {
            let below = format!("{}/", path.trim_end_matches('/'));
            for child in self.list_keys(&below, MAX_RECURSION).await? {
                deleted.push(child);
            }
            let full = format!("{}{below}", self.prefix);
            let depth = keys::depth(&full);
            emptied.extend((depth..=depth + MAX_RECURSION).map(|d| keys::tag_at(&full, d)));
        }
        let mut state = self.lock();
        state.writes.insert(key, None);
        for child in &deleted {
            state.writes.insert(keys::tag(&format!("{}{}", self.prefix, child)), None);
        }
        state.emptied.extend(emptied);
        drop(state);
        Ok(deleted)
    }

    /// Sends the buffered writes. `Ok(None)`: a read value changed meanwhile, run the body again. With what
    /// the writes, if any, still wait for to be durable.
    pub(crate) async fn commit(&self) -> Result<Option<(ReadSet, Durable)>, Error> {
        let (preconditions, writes, revision, keys, prefixes) = {
            let state = self.lock();
            let revision = state.revision;
            let mut pre: Vec<Precondition> = state
                .reads
                .iter()
                .map(|(key, r)| Precondition::ModRevision {
                    key: key.clone(),
                    revision: r.as_ref().map_or(0, |s| s.mod_revision),
                })
                .collect();
            if let Some(rev) = revision {
                pre.extend(
                    state.lists.iter().map(|p| Precondition::PrefixUnchangedSince { prefix: p.clone(), revision: rev }),
                );
            }
            let writes = state.writes_to_send();
            let prefixes = state.lists.iter().chain(state.chosen_under.keys()).cloned().collect();
            (pre, writes, revision, state.reads.keys().cloned().collect(), prefixes)
        };
        let kept_keys_used = self.lock().chosen_under.values().any(Option::is_none);
        let revision = if writes.is_empty() && !kept_keys_used {
            // A read-only body saw one consistent snapshot: nothing to check.
            match revision {
                Some(rev) => rev,
                None => self.backend.list_keys(&[], None).await?.1,
            }
        } else {
            // A key chosen among kept keys (not read at this transaction's revision) must still be free, even
            // for a read-only body.
            match self.backend.commit(&preconditions, &writes).await? {
                Some(rev) => {
                    self.keep_choices(rev);
                    rev
                }
                None => {
                    // Perhaps another client took the chosen key and the watch has not shown it yet: list again.
                    for prefix in self.lock().chosen_under.keys() {
                        self.backend.choices.forget(prefix);
                    }
                    return Ok(None);
                }
            }
        };
        // Only writes wait for the disk.
        let durable = Durable(if writes.is_empty() { None } else { self.backend.durable() });
        Ok(Some((ReadSet { revision, keys, prefixes }, durable)))
    }
}

/// What a committed transaction's writes still wait for: to be on disk. A commit is visible to every reader of
/// the store at once; it is acknowledged once durable ([`crate::Config::txn_committed`]).
#[must_use = "a write is acknowledged only once it is durable"]
#[derive(Default)]
pub struct Durable(Option<BoxFuture<'static, Result<(), Error>>>);

impl Durable {
    /// Waits until the writes are on disk; at once for a transaction that wrote nothing, or on a store that
    /// answers a commit once on disk.
    pub async fn wait(self) -> Result<(), Error> {
        match self.0 {
            Some(flushed) => flushed.await,
            None => Ok(()),
        }
    }
}

impl TxnState {
    /// The buffered writes, with the deletes under each emptied prefix as one range delete. The listing of that
    /// prefix guards the commit, so the range holds exactly the keys deleted one by one (fewer, if others
    /// deleted some meanwhile).
    fn writes_to_send(&self) -> Vec<Write> {
        let ranges: Vec<&String> = self
            .emptied
            .iter()
            .filter(|prefix| {
                let mut under =
                    self.writes.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix.as_str()));
                under.next().is_some_and(|(_, w)| w.is_none()) && under.all(|(_, w)| w.is_none())
            })
            .collect();
        let mut writes: Vec<Write> =
            ranges.iter().map(|prefix| Write::DeletePrefix { prefix: (*prefix).clone() }).collect();
        writes.extend(
            self.writes
                .iter()
                .filter(|(key, w)| self.changes_store(key, w) && !ranges.iter().any(|p| key.starts_with(p.as_str())))
                .map(|(key, w)| match w {
                    Some((value, lease)) => Write::Put { key: key.clone(), value: value.clone(), lease: *lease },
                    None => Write::Delete { key: key.clone() },
                }),
        );
        writes
    }

    /// Whether a buffered write changes the store: a delete of a key read as absent (the commit requires it
    /// still absent) changes nothing, also when this transaction created it first. It is not sent, and a watch
    /// sees no event for it.
    fn changes_store(&self, key: &str, write: &Option<(String, i64)>) -> bool {
        write.is_some() || !matches!(self.reads.get(key), Some(None))
    }

    /// Whether the commit changes a key under `prefix`.
    fn changes_under(&self, prefix: &str) -> bool {
        self.writes
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .any(|(key, w)| self.changes_store(key, w))
    }
}

impl Txn {
    /// After a commit at `revision`: the listings chosen from are kept current from now on, and the next choice
    /// under a kept prefix this transaction wrote under waits until its watch has seen this commit.
    fn keep_choices(&self, revision: i64) {
        let mut state = self.lock();
        for (prefix, listing) in std::mem::take(&mut state.chosen_under) {
            if let Some((listed_at, keys)) = listing {
                self.backend.choices.keep(prefix, listed_at, keys);
            }
        }
        self.backend.choices.wrote(revision, |prefix| state.changes_under(prefix));
    }
}

/// The value of `path` read as JSON into `T`.
pub(crate) fn parse<T: DeserializeOwned>(path: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::BadJson { path: path.to_string(), detail: e.to_string() })
}

fn canonical<T: Serialize>(path: &str, value: &T) -> Result<String, Error> {
    json::to_canonical_string(value).map_err(|e| Error::BadJson { path: path.to_string(), detail: e.to_string() })
}

/// Runs `body` in transactions until one commits.
pub(crate) async fn run<T, F, Fut>(
    backend: &Backend,
    prefix: &Arc<str>,
    max_retries: usize,
    body: &mut F,
) -> Result<(T, ReadSet, Durable), Error>
where
    F: FnMut(Txn) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    for attempt in 0..max_retries {
        let txn = Txn::new(backend.clone(), Arc::clone(prefix));
        let out = body(txn.clone()).await?;
        if let Some((reads, durable)) = txn.commit().await? {
            return Ok((out, reads, durable));
        }
        tracing::debug!(attempt, "transaction conflicted; retrying");
        // Clients that conflicted together would conflict again if they retried in step: a random pause,
        // growing with the attempts, spreads them out so that none starves.
        let ceiling_us = 200u64 << attempt.min(8);
        tokio::time::sleep(Duration::from_micros(jitter(ceiling_us))).await;
    }
    Err(Error::TooManyRetries(max_retries))
}

/// A pseudo-random number in `0..ceiling` (xorshift seeded per thread from the clock; not for secrets).
fn jitter(ceiling: u64) -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x % ceiling.max(1)
    })
}

/// Read sets of up to this many separate ranges are waited on with a watch per range; larger ones with one watch
/// over their whole span, filtered.
const MAX_WATCHED_RANGES: usize = 8;

impl ReadSet {
    /// Blocks until a key this transaction read (or a key under a prefix it listed) changes.
    ///
    /// Each separate range read is watched apart, so that a change between them (a block's `state` beside its
    /// entry and `owner`, which a script's wait reads) neither wakes this nor is sent here to be filtered out.
    pub(crate) async fn wait_for_change(&self, backend: &Backend) -> Result<(), Error> {
        let ranges = watched_ranges(&self.keys, &self.prefixes);
        if ranges.is_empty() {
            // Nothing read: nothing can wake us.
            return std::future::pending().await;
        }
        let follower = backend.follower();
        if ranges.len() <= MAX_WATCHED_RANGES {
            let waits = ranges
                .iter()
                .map(|(start, end)| Box::pin(follower.wait_for_change(start, end, self.revision, |_| true)));
            return futures::future::select_all(waits).await.0.map(|_| ());
        }
        let (start, end) = (&ranges[0].0, &ranges[ranges.len() - 1].1);
        let matches = |key: &str| self.keys.contains(key) || self.prefixes.iter().any(|p| key.starts_with(p.as_str()));
        follower.wait_for_change(start, end, self.revision, matches).await.map(|_| ())
    }
}

/// The key ranges `[start, end)` that hold exactly the keys read and the keys under the prefixes listed, merged
/// where they overlap or touch, in order. A prefix of every key gives one range to the end (etcd's `"\0"`).
fn watched_ranges(keys: &BTreeSet<String>, prefixes: &BTreeSet<String>) -> Vec<(String, String)> {
    const TO_THE_END: &str = "\0";
    let mut ranges: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.clone(), format!("{k}\0")))
        .chain(
            prefixes
                .iter()
                .map(|p| (p.clone(), String::from_utf8_lossy(&sdp_kvstore::prefix_end(p.as_bytes())).into_owned())),
        )
        .collect();
    ranges.sort();
    let mut merged: Vec<(String, String)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if last.1 == TO_THE_END => {}
            Some(last) if start <= last.1 => {
                if end == TO_THE_END || end > last.1 {
                    last.1 = end;
                }
            }
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Re-runs a transaction body each time something it read changes: the basis of every daemon's loop.
///
/// ```no_run
/// # async fn demo(config: sdp_config::Config) -> Result<(), sdp_config::Error> {
/// let mut watcher = config.watcher();
/// loop {
///     let pbs = watcher.txn(|txn| async move { txn.list_keys("/pb/", 0).await }).await?;
///     println!("{pbs:?}");
/// }
/// # }
/// ```
pub struct Watcher {
    backend: Backend,
    prefix: Arc<str>,
    max_retries: usize,
    timeout: Option<Duration>,
    min_interval: Option<Duration>,
    last: Option<ReadSet>,
    last_started: Option<tokio::time::Instant>,
}

impl Watcher {
    pub(crate) fn new(backend: Backend, prefix: Arc<str>, max_retries: usize) -> Watcher {
        Watcher { backend, prefix, max_retries, timeout: None, min_interval: None, last: None, last_started: None }
    }

    /// Also wake up after `timeout` without a change (for periodic work such as retries).
    pub fn with_timeout(mut self, timeout: Duration) -> Watcher {
        self.timeout = Some(timeout);
        self
    }

    /// A run woken by a change starts at least `interval` after the previous one started, so that a burst of
    /// changes (a subarray scanning back and forth, many blocks at once) is taken by one run rather than one run
    /// each: the body's work is bounded by `1 / interval` runs per second, at the cost of reacting up to
    /// `interval` later. [`Watcher::run_next_at_once`] still runs at once.
    pub fn with_min_interval(mut self, interval: Duration) -> Watcher {
        self.min_interval = Some(interval);
        self
    }

    /// Makes the next [`Watcher::txn`] run at once, as the first does: for a body that left work for later.
    pub fn run_next_at_once(&mut self) {
        self.last = None;
    }

    /// Runs `body` now on the first call; later calls first wait until something the previous run read has
    /// changed (or the timeout passes).
    pub async fn txn<T, F, Fut>(&mut self, mut body: F) -> Result<T, Error>
    where
        F: FnMut(Txn) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        if let Some(reads) = self.last.take() {
            let wait = reads.wait_for_change(&self.backend);
            match self.timeout {
                Some(t) => {
                    let _ = tokio::time::timeout(t, wait).await;
                }
                None => wait.await?,
            }
            if let (Some(interval), Some(started)) = (self.min_interval, self.last_started) {
                tokio::time::sleep_until(started + interval).await;
            }
        }
        self.last_started = Some(tokio::time::Instant::now());
        let (out, reads, durable) = run(&self.backend, &self.prefix, self.max_retries, &mut body).await?;
        durable.wait().await?;
        self.last = Some(reads);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(value: &str) -> Option<(String, i64)> {
        Some((value.to_string(), 0))
    }

    /// A watch covers what was read and nothing between: a block's entry and owner are two ranges, not its state
    /// between them; keys under a listed prefix go into its range; a prefix of every key reaches the end.
    #[test]
    fn watched_ranges_hold_what_was_read_and_nothing_between() {
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let range = |start: &str, end: &str| (start.to_string(), end.to_string());
        assert_eq!(
            watched_ranges(&set(&["/pb/a", "/pb/a/owner"]), &set(&[])),
            [range("/pb/a", "/pb/a\0"), range("/pb/a/owner", "/pb/a/owner\0")]
        );
        assert_eq!(
            watched_ranges(&set(&["/controller/x", "/pb/a/state"]), &set(&["/pb/", "/deploy/"])),
            [range("/controller/x", "/controller/x\0"), range("/deploy/", "/deploy0"), range("/pb/", "/pb0")]
        );
        assert_eq!(watched_ranges(&set(&["/a", "/b"]), &set(&[""])), [range("", "\0")]);
        assert_eq!(watched_ranges(&set(&["/a", "/a\0"]), &set(&[])), [range("/a", "/a\0\0")]);
        assert!(watched_ranges(&set(&[]), &set(&[])).is_empty());
    }

    /// A run woken by a change waits until `interval` after the previous one started, and no longer: one woken
    /// after that runs at once.
    #[tokio::test]
    async fn a_woken_run_starts_no_sooner_than_the_interval_after_the_last() {
        const INTERVAL: Duration = Duration::from_millis(800);
        let config = crate::Config::memory();
        let write = |value: &'static str| {
            let config = config.clone();
            async move { config.txn(|t| async move { t.put_json("/x", &value).await }).await.unwrap() }
        };
        write("0").await;
        let mut watcher = config.watcher().with_min_interval(INTERVAL);
        let read = |t: Txn| async move { t.get("/x").await.map(|_| tokio::time::Instant::now()) };
        let first = watcher.txn(read).await.unwrap();
        write("1").await;
        let second = watcher.txn(read).await.unwrap();
        assert!(second - first >= INTERVAL, "woken {:?} after the first run", second - first);
        tokio::time::sleep(INTERVAL).await;
        let changed = tokio::time::Instant::now();
        write("2").await;
        let third = watcher.txn(read).await.unwrap();
        assert!(third - changed < INTERVAL, "waited {:?} although the interval had passed", third - changed);
    }

    #[test]
    fn deletes_of_keys_read_as_absent_are_not_sent_and_change_nothing() {
        let mut state = TxnState::default();
        // Created then deleted within the transaction: read as absent, so nothing to send.
        state.reads.insert("1/a/x".into(), None);
        state.writes.insert("1/a/x".into(), None);
        // Deleted without being read: sent, it may exist.
        state.writes.insert("1/b/y".into(), None);
        assert_eq!(state.writes_to_send(), [Write::Delete { key: "1/b/y".into() }]);
        assert!(!state.changes_under("1/a/"));
        assert!(state.changes_under("1/b/"));
        state.writes.insert("1/a/z".into(), put("v"));
        assert!(state.changes_under("1/a/"));
        assert!(!state.changes_under("1/c/"));
    }
}
