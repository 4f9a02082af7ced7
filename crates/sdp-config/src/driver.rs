//! The interface between the client and a store, as kine's `pkg/server` sits on its backend: ranges at a
//! revision, commits guarded by revisions, watches and leases. Two drivers implement it, a real etcd v3 server
//! ([`crate::etcd`]) and an in-process store with the same semantics ([`crate::memory`]).

use futures::future::BoxFuture;

use crate::error::Error;

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

/// A change of one key, as a watch reports it.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub key: String,
    /// False for a deletion.
    pub exists: bool,
    pub revision: i64,
}

/// How a watch handed to [`Driver::follow`] ended.
pub(crate) enum Followed {
    /// The caller stopped it at this revision.
    Stopped(i64),
    /// The changes after the starting revision are no longer kept, up to this revision.
    Compacted(i64),
}

/// What the caller of [`Driver::follow`] does with each revision's changes: a revision to stop at, or `None`
/// to go on.
pub(crate) type OnChanges<'a> = &'a mut (dyn FnMut(&[Change]) -> Option<i64> + Send);

/// A store the client works on.
pub(crate) trait Driver: Send + Sync {
    /// The key `key` (or every key starting with it, with `prefix`), with values unless `keys_only`, at
    /// `revision` (None: latest); and the revision read at.
    fn range<'a>(
        &'a self,
        key: &'a str,
        prefix: bool,
        keys_only: bool,
        revision: Option<i64>,
    ) -> BoxFuture<'a, Result<(Vec<Stored>, i64), Error>>;

    /// Applies `writes` atomically if every precondition holds: the new revision, or None when one failed.
    fn commit<'a>(
        &'a self,
        preconditions: &'a [Precondition],
        writes: &'a [Write],
    ) -> BoxFuture<'a, Result<Option<i64>, Error>>;

    /// Waits until every write committed so far is on disk: what a commit is acknowledged after. None for a
    /// store whose commit is answered once on disk.
    fn durable(&self) -> Option<BoxFuture<'static, Result<(), Error>>>;

    /// Hands every change of a key in `[start, end)` after `revision` to `on_changes`, in revision order, a
    /// revision at a time, until it returns a revision to stop at. Survives connection loss by watching again
    /// from the last revision seen.
    fn follow<'a>(
        &'a self,
        start: &'a str,
        end: &'a str,
        revision: i64,
        on_changes: OnChanges<'a>,
    ) -> BoxFuture<'a, Result<Followed, Error>>;

    fn lease_grant(&self, ttl: i64) -> BoxFuture<'_, Result<i64, Error>>;

    /// Keeps lease `id` alive, renewing it every `period`, until the returned future is dropped; returns only
    /// when the lease is lost.
    fn lease_keep_alive(&self, id: i64, period: std::time::Duration) -> BoxFuture<'_, Error>;

    /// Whether lease `id` exists.
    fn lease_alive(&self, id: i64) -> BoxFuture<'_, Result<bool, Error>>;

    fn lease_revoke(&self, id: i64) -> BoxFuture<'_, Result<(), Error>>;
}
