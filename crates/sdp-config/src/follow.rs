//! Following changes in the store: the watch-following shared by the watchers' wake-ups and the kept
//! listings of [`crate::choices`].

use std::sync::Arc;

use crate::driver::{Change, Driver, Followed};
use crate::error::Error;

/// Follows changes in the store. It holds the driver only, not the client's backend, so a task that the
/// backend's own state keeps does not keep the backend alive.
#[derive(Clone)]
pub(crate) struct Follower(pub Arc<dyn Driver>);

impl Follower {
    /// Hands every change of a key in `[start, end)` after `revision` to `on_changes`, in revision order, a
    /// revision at a time, until it returns a revision to stop at.
    pub async fn follow(
        &self,
        start: &str,
        end: &str,
        revision: i64,
        mut on_changes: impl FnMut(&[Change]) -> Option<i64> + Send,
    ) -> Result<Followed, Error> {
        self.0.follow(start, end, revision, &mut on_changes).await
    }

    /// Waits until a key in `[start, end)` changes after `revision` and `matches` its key; returns the
    /// revision of that change (or of a compaction: the caller re-reads everything, which is always safe).
    pub async fn wait_for_change(
        &self,
        start: &str,
        end: &str,
        revision: i64,
        matches: impl Fn(&str) -> bool + Send + Sync,
    ) -> Result<i64, Error> {
        let first_match = |changes: &[Change]| changes.iter().find(|c| matches(&c.key)).map(|c| c.revision);
        match self.follow(start, end, revision, first_match).await? {
            Followed::Stopped(revision) | Followed::Compacted(revision) => Ok(revision),
        }
    }
}
