//! A multi-version key-value store with etcd v3 semantics (one revision per write transaction, per-key
//! create/mod revision and version, watches replayed from the revision log, leases whose expiry deletes the
//! keys attached to them). It backs the in-memory configuration database and the embedded etcd-API server.

mod store;
mod types;

pub use store::{EventBatch, Journal, Store, Watch};
pub use types::*;

/// Errors carry etcd's meaning so that a server can map them onto etcd's gRPC status codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("required revision has been compacted (compact revision {compact_revision})")]
    Compacted { compact_revision: Revision },
    #[error("required revision {requested} is a future revision (current {current})")]
    FutureRevision { requested: Revision, current: Revision },
    #[error("requested lease not found ({0:x})")]
    LeaseNotFound(LeaseId),
    #[error("lease already exists ({0:x})")]
    LeaseExists(LeaseId),
    #[error("key not found")]
    KeyNotFound,
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("storage failure: {0}")]
    Storage(String),
}
