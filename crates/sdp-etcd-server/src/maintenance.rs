//! The Maintenance service: Status (what clients use for health checks); the rest is not served.

use etcd_client::proto::*;
use tonic::{Request, Response, Status};

use crate::Shared;

/// The etcd API version this server implements (reported by Status; clients gate features on it).
pub const API_VERSION: &str = "3.4.0";

pub struct MaintenanceService(pub Shared);

fn not_served(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not served by the embedded configuration database"))
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(&self, _: Request<PbAlarmRequest>) -> Result<Response<PbAlarmResponse>, Status> {
        Ok(Response::new(PbAlarmResponse { header: Some(self.0.header(self.0.store.revision())), alarms: Vec::new() }))
    }

    async fn status(&self, _: Request<PbStatusRequest>) -> Result<Response<PbStatusResponse>, Status> {
        let revision = self.0.store.revision();
        let size = self.0.journal.as_ref().map_or(0, |j| j.size_bytes() as i64);
        Ok(Response::new(PbStatusResponse {
            header: Some(self.0.header(revision)),
            version: API_VERSION.into(),
            db_size: size,
            leader: crate::MEMBER_ID,
            raft_index: revision as u64,
            raft_term: crate::RAFT_TERM,
            raft_applied_index: revision as u64,
            errors: Vec::new(),
            db_size_in_use: size,
            is_learner: false,
            storage_version: String::new(),
            db_size_quota: 0,
            downgrade_info: None,
        }))
    }

    async fn defragment(&self, _: Request<PbDefragmentRequest>) -> Result<Response<PbDefragmentResponse>, Status> {
        Ok(Response::new(PbDefragmentResponse { header: Some(self.0.header(self.0.store.revision())) }))
    }

    async fn hash(&self, _: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        Err(not_served("Hash"))
    }

    async fn hash_kv(&self, _: Request<PbHashKvRequest>) -> Result<Response<PbHashKvResponse>, Status> {
        Err(not_served("HashKV"))
    }

    type SnapshotStream = futures::stream::Empty<Result<PbSnapshotResponse, Status>>;

    async fn snapshot(&self, _: Request<PbSnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(not_served("Snapshot"))
    }

    async fn move_leader(&self, _: Request<PbMoveLeaderRequest>) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(not_served("MoveLeader (single member)"))
    }

    async fn downgrade(&self, _: Request<PbDowngradeRequest>) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(not_served("Downgrade"))
    }
}
