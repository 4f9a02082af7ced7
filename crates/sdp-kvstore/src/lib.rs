//! A multi-version key-value store with etcd v3 semantics (one revision per write transaction, per-key
//! create/mod revision and version, watches replayed from the revision log, leases whose expiry deletes the
//! keys attached to them). It backs the in-memory configuration database and the embedded etcd-API server.

mod store;
mod types;

pub use store::{EventBatch, Flush, Journal, Limits, ReplayError, Store, Watch};
pub use types::*;
