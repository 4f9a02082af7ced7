//! Request, response and record types, shaped like etcd's v3 API so that a gRPC front end maps onto them 1:1.

use serde::{Deserialize, Serialize};

/// A global store revision: every write transaction increments it by one.
pub type Revision = i64;
/// Lease identifier; 0 means "no lease".
pub type LeaseId = i64;

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyValue {
    // As bytes, not a sequence of numbers: the same encoding in the journal, written at once, not byte by byte.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
    pub lease: LeaseId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change of one key. For deletions `kv` carries the key and the deleting revision only, as etcd does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

/// A key range in etcd's encoding: empty `range_end` is the single key, `[0]` is every key `>= key`,
/// anything else is the half-open interval `[key, range_end)`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyRange {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
}

impl KeyRange {
    pub fn single(key: impl Into<Vec<u8>>) -> Self {
        KeyRange { key: key.into(), range_end: Vec::new() }
    }

    /// Every key that starts with `prefix` (an empty prefix is the whole key space).
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        KeyRange { key, range_end }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        if self.range_end.is_empty() {
            return k == self.key.as_slice();
        }
        k >= self.key.as_slice() && (self.range_end == [0] || k < self.range_end.as_slice())
    }

    pub fn is_single(&self) -> bool {
        self.range_end.is_empty()
    }
}

/// The smallest key greater than every key that starts with `prefix` (`[0]` when there is none).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    None,
    Ascend,
    Descend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortTarget {
    #[default]
    Key,
    Version,
    Create,
    Mod,
    Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeRequest {
    pub range: KeyRange,
    /// 0 reads the current revision.
    pub revision: Revision,
    /// 0 means no limit.
    pub limit: i64,
    pub keys_only: bool,
    pub count_only: bool,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    pub count: i64,
    pub more: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PutRequest {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub lease: LeaseId,
    pub prev_kv: bool,
    pub ignore_value: bool,
    pub ignore_lease: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PutResponse {
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeleteRangeRequest {
    pub range: KeyRange,
    pub prev_kv: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeleteRangeResponse {
    pub deleted: i64,
    pub prev_kvs: Vec<KeyValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(Revision),
    ModRevision(Revision),
    Value(Vec<u8>),
    Lease(LeaseId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub range: KeyRange,
    pub result: CompareResult,
    pub target: CompareTarget,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

impl TxnRequest {
    /// What the transaction may cost, as the operation limit counts it: the larger of its compares (those of
    /// nested transactions included) and the requests of the costlier branch at each level, a nested
    /// transaction counting its own requests. A flat transaction costs what etcd counts (its longest list);
    /// nesting cannot multiply the work past the limit.
    pub fn total_ops(&self) -> usize {
        self.compares().max(self.requests())
    }

    fn compares(&self) -> usize {
        let nested = |ops: &[RequestOp]| -> usize {
            ops.iter().map(|op| if let RequestOp::Txn(t) = op { t.compares() } else { 0 }).sum()
        };
        self.compare.len() + nested(&self.success) + nested(&self.failure)
    }

    fn requests(&self) -> usize {
        let branch = |ops: &[RequestOp]| -> usize {
            ops.iter().map(|op| if let RequestOp::Txn(t) = op { 1 + t.requests() } else { 1 }).sum()
        };
        branch(&self.success).max(branch(&self.failure))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TxnResponse {
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
}

/// What a durable journal must keep to rebuild the store: replaying the records in order gives the same state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The changes of one write transaction, all at `revision`.
    Changes {
        revision: Revision,
        events: Vec<Event>,
    },
    LeaseGrant {
        id: LeaseId,
        ttl: i64,
    },
    /// Revocation or expiry; the deletions of attached keys are a separate `Changes` record.
    LeaseRevoke {
        id: LeaseId,
    },
    Compact {
        revision: Revision,
    },
    /// The whole live state at `revision` (history before it forgotten): lets a journal start over small.
    Snapshot {
        revision: Revision,
        kvs: Vec<KeyValue>,
        leases: Vec<(LeaseId, i64)>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseStatus {
    pub id: LeaseId,
    pub granted_ttl: i64,
    /// Seconds left, rounded up as etcd reports them.
    pub ttl: i64,
    pub keys: Vec<Vec<u8>>,
}

/// etcd's largest lease TTL (`MaxLeaseTTL`, in seconds).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

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
