//! The Maintenance service: Status (what clients use for health checks), Alarm (the NOSPACE alarm of the space
//! quota), Defragment (rewrites the journal as a snapshot of the live state); the rest is not served.

use etcd_client::proto::*;
use tonic::{Request, Response, Status};

use crate::shared::Shared;

/// The etcd API version this server implements (reported by Status; clients gate features on it).
pub const API_VERSION: &str = "3.4.0";

pub struct MaintenanceService(pub Shared);

// etcd's AlarmRequest.AlarmAction and AlarmType values.
const ALARM_GET: i32 = 0;
const ALARM_ACTIVATE: i32 = 1;
const ALARM_DEACTIVATE: i32 = 2;
const ALARM_NONE: i32 = 0;
const ALARM_NOSPACE: i32 = 1;

fn not_served(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not served by the embedded configuration database"))
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(&self, request: Request<PbAlarmRequest>) -> Result<Response<PbAlarmResponse>, Status> {
        let req = request.into_inner();
        let store = &self.0.store;
        match (req.action, req.alarm) {
            (ALARM_GET, _) => {}
            // Disarming NONE disarms every alarm, as etcdctl's `alarm disarm` asks.
            (ALARM_DEACTIVATE, ALARM_NONE | ALARM_NOSPACE) => {
                if store.no_space() {
                    store.disarm_no_space();
                    tracing::info!("NOSPACE alarm disarmed");
                }
            }
            (ALARM_DEACTIVATE, _) => {}
            (ALARM_ACTIVATE, _) => {
                return Err(Status::invalid_argument("etcdserver: alarms are raised by the server only"))
            }
            (action, _) => return Err(Status::invalid_argument(format!("etcdserver: unknown alarm action {action}"))),
        }
        let alarms = if store.no_space() && matches!(req.action, ALARM_GET) {
            vec![PbAlarmMember { member_id: crate::shared::MEMBER_ID, alarm: ALARM_NOSPACE }]
        } else {
            Vec::new()
        };
        Ok(Response::new(PbAlarmResponse { header: Some(self.0.header(store.revision())), alarms }))
    }

    async fn status(&self, _: Request<PbStatusRequest>) -> Result<Response<PbStatusResponse>, Status> {
        let store = &self.0.store;
        let revision = store.revision();
        let in_use = store.size_bytes() as i64;
        let size = self.0.journal.as_ref().map_or(in_use, |j| j.size_bytes() as i64);
        let errors = if store.no_space() {
            vec![format!("memberID:{} alarm:NOSPACE ", crate::shared::MEMBER_ID)]
        } else {
            Vec::new()
        };
        Ok(Response::new(PbStatusResponse {
            header: Some(self.0.header(revision)),
            version: API_VERSION.into(),
            db_size: size,
            leader: crate::shared::MEMBER_ID,
            raft_index: revision as u64,
            raft_term: crate::shared::RAFT_TERM,
            raft_applied_index: revision as u64,
            errors,
            db_size_in_use: in_use,
            is_learner: false,
            storage_version: String::new(),
            db_size_quota: store.limits().quota_bytes as i64,
            downgrade_info: None,
        }))
    }

    async fn defragment(&self, _: Request<PbDefragmentRequest>) -> Result<Response<PbDefragmentResponse>, Status> {
        if let Some(journal) = &self.0.journal {
            let before = journal.size_bytes();
            let store = self.0.store.clone();
            tokio::task::spawn_blocking(move || store.rewrite_journal())
                .await
                .map_err(|e| Status::internal(format!("etcdserver: defragment stopped: {e}")))?
                .map_err(crate::convert::status)?;
            let after = journal.size_bytes();
            tracing::info!(before, after, "defragmented: journal rewritten as a snapshot of the live state");
        }
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
