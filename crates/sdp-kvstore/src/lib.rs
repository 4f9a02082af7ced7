//! A multi-version key-value store with etcd v3 semantics (one revision per write transaction, per-key
//! create/mod revision and version, watches replayed from the revision log, leases whose expiry deletes the
//! keys attached to them). It backs the in-memory configuration database and the embedded etcd-API server.

mod store;
mod types;

pub use store::{EventBatch, Journal, Limits, ReplayError, Store, Watch, MAX_LEASE_TTL};
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
    #[error("too large lease TTL ({ttl} s; at most {MAX_LEASE_TTL} s)")]
    LeaseTtlTooLarge { ttl: i64 },
    #[error("too many operations in txn request ({ops}, nested ones included; at most {limit})")]
    TooManyOps { ops: usize, limit: usize },
    #[error("the response would be larger than {limit} bytes: ask for fewer keys (limit, keys_only) or raise --max-response-bytes")]
    ResponseTooLarge { limit: usize },
    #[error("database space exceeded (quota {quota} bytes): compact, defragment, then disarm the NOSPACE alarm")]
    NoSpace { quota: u64 },
}
