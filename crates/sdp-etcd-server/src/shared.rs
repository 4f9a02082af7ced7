//! What every service of the server shares: the store, the journal, and the identity its headers report.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::proto::PbResponseHeader;
use sdp_kvstore::Store;
use tonic::Status;

use crate::journal::FileJournal;

/// Identifiers reported in response headers (a single member of its own cluster).
pub const CLUSTER_ID: u64 = 0x5344_505f_4346_4700;
pub const MEMBER_ID: u64 = 0x5344_505f_4346_4701;
/// The term a fresh single-member etcd reports after electing itself.
pub const RAFT_TERM: u64 = 2;

#[derive(Clone)]
pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub journal: Option<Arc<FileJournal>>,
    pub progress_interval: Duration,
}

impl Shared {
    pub fn header(&self, revision: i64) -> PbResponseHeader {
        PbResponseHeader { cluster_id: CLUSTER_ID, member_id: MEMBER_ID, revision, raft_term: RAFT_TERM }
    }

    /// Waits until every journal record written so far is on disk: a write is acknowledged only after this.
    pub async fn durable(&self) -> Result<(), Status> {
        self.store
            .durable()
            .await
            .map_err(|e| Status::unavailable(format!("etcdserver: cannot write the journal to disk: {e}")))
    }
}
