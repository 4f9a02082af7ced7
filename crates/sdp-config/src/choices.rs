//! The keys under the prefixes this client chose new keys under (one per processing-block type and day), kept
//! current by a watch, so that the next choice reads nothing: creating a processing block is one round trip,
//! however many blocks the day already has.
//!
//! A prefix is listed once, at the first choice; a watch from that listing's revision then applies every
//! creation and deletion under it, in revision order. A choice uses the kept keys once they have caught up with
//! this client's own last write under the prefix (so a client always sees its own creations and deletions, and
//! every change committed before them); its commit requires the chosen key still absent. Another client's
//! deletion counts once its watch event has arrived (on the same host, well under a millisecond): a deletion
//! committed while a creation is under way may leave its ID for the next creation, as it could when every
//! creation listed first. A refused commit forgets the prefix, so its retry lists again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::driver::{Change, Followed};
use crate::follow::Follower;

/// The stored keys under a prefix as they stood at a revision.
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub revision: i64,
    pub keys: Arc<BTreeSet<String>>,
    /// False once the watch has stopped (history compacted, store closed): the keys are no longer kept.
    current: bool,
}

struct Kept {
    snapshot: watch::Receiver<Snapshot>,
    /// This client's last commit that wrote under the prefix: the snapshot is used once it has reached it.
    wanted: i64,
    follow: AbortHandle,
}

pub(crate) struct Choices {
    follower: Follower,
    kept: Mutex<BTreeMap<String, Kept>>,
}

impl Choices {
    /// Prefixes kept at most: processing-block IDs use one per type and day.
    const LIMIT: usize = 16;
    /// How long a choice waits for the watch to catch up with this client's own last write before it lists.
    const CATCH_UP: Duration = Duration::from_millis(500);

    pub fn new(follower: Follower) -> Choices {
        Choices { follower, kept: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Kept>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept keys under `prefix`, once they include this client's own last write under it; `None` if the
    /// prefix is not kept (or its watch fell behind or stopped): list it.
    pub async fn snapshot(&self, prefix: &str) -> Option<Snapshot> {
        let (mut snapshot, wanted) = {
            let kept = self.lock();
            let kept = kept.get(prefix)?;
            (kept.snapshot.clone(), kept.wanted)
        };
        let caught_up = tokio::time::timeout(Self::CATCH_UP, snapshot.wait_for(|s| !s.current || s.revision >= wanted))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|s| s.clone());
        match caught_up {
            Some(s) if s.current => Some(s),
            _ => {
                tracing::debug!(prefix, wanted, "kept keys fell behind; listing");
                self.forget(prefix);
                None
            }
        }
    }

    /// Keeps the stored keys under `prefix`, `keys` as listed at `revision`, current from now on.
    pub fn keep(&self, prefix: String, revision: i64, keys: BTreeSet<String>) {
        let (tx, snapshot) = watch::channel(Snapshot { revision, keys: Arc::new(keys), current: true });
        let follow = tokio::spawn(keep_current(self.follower.clone(), prefix.clone(), tx)).abort_handle();
        let mut kept = self.lock();
        let wanted = kept.get(&prefix).map_or(revision, |old| old.wanted.max(revision));
        if let Some(old) = kept.insert(prefix, Kept { snapshot, wanted, follow }) {
            old.follow.abort();
        }
        if kept.len() > Self::LIMIT {
            if let Some((_, oldest)) = kept.pop_first() {
                oldest.follow.abort();
            }
        }
    }

    /// After this client committed at `revision`: the next choice under each kept prefix it wrote under waits
    /// until the watch has seen that commit.
    pub fn wrote(&self, revision: i64, wrote_under: impl Fn(&str) -> bool) {
        for (prefix, kept) in self.lock().iter_mut() {
            if wrote_under(prefix) {
                kept.wanted = kept.wanted.max(revision);
            }
        }
    }

    pub fn forget(&self, prefix: &str) {
        if let Some(kept) = self.lock().remove(prefix) {
            kept.follow.abort();
        }
    }
}

impl Drop for Choices {
    fn drop(&mut self) {
        for kept in self.lock().values() {
            kept.follow.abort();
        }
    }
}

/// Applies every change under `prefix` to the snapshot until nobody looks at it any more.
async fn keep_current(follower: Follower, prefix: String, tx: watch::Sender<Snapshot>) {
    let end = String::from_utf8_lossy(&sdp_kvstore::prefix_end(prefix.as_bytes())).into_owned();
    let from = tx.borrow().revision;
    let apply = |changes: &[Change]| {
        tx.send_modify(|snapshot| apply_changes(snapshot, changes));
        tx.is_closed().then_some(0)
    };
    match follower.follow(&prefix, &end, from, apply).await {
        Ok(Followed::Stopped(_)) => {}
        Ok(Followed::Compacted(revision)) => tracing::debug!(prefix, revision, "kept keys compacted away"),
        Err(e) => tracing::debug!(prefix, error = %e, "kept keys no longer followed"),
    }
    tx.send_modify(|snapshot| snapshot.current = false);
}

fn apply_changes(snapshot: &mut Snapshot, changes: &[Change]) {
    let keys = Arc::make_mut(&mut snapshot.keys);
    for change in changes {
        if change.exists {
            keys.insert(change.key.clone());
        } else {
            keys.remove(&change.key);
        }
        snapshot.revision = snapshot.revision.max(change.revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, exists: bool, revision: i64) -> Change {
        Change { key: key.to_string(), exists, revision }
    }

    #[test]
    fn changes_apply_in_order_and_advance_the_revision() {
        let keys = ["a", "b"].map(String::from).into_iter().collect();
        let mut snapshot = Snapshot { revision: 10, keys: Arc::new(keys), current: true };
        let held = Arc::clone(&snapshot.keys);
        apply_changes(&mut snapshot, &[change("c", true, 11), change("a", false, 12), change("c", true, 13)]);
        assert_eq!(snapshot.revision, 13);
        assert_eq!(snapshot.keys.iter().map(String::as_str).collect::<Vec<_>>(), ["b", "c"]);
        // A chooser still holding the old keys keeps them as they were.
        assert_eq!(held.len(), 2);
        assert!(held.contains("a"));
    }
}
