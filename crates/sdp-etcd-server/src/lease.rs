//! The Lease service: grant, revoke, keep-alive stream, time-to-live, list.

use std::pin::Pin;

use etcd_client::proto::*;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::convert::status;
use crate::shared::Shared;

/// etcd's smallest TTL with its default heartbeat and election timeout (1.5 s, rounded up).
pub const MIN_TTL: i64 = 2;

pub struct LeaseService(pub Shared);

impl LeaseService {
    /// One reply per keep-alive request of `inbound` (gRPC's stream, or the JSON gateway's one request).
    pub(crate) async fn keep_alive_replies(
        &self,
        inbound: impl Stream<Item = Result<PbLeaseKeepAliveRequest, Status>> + Send + 'static,
    ) -> Result<<Self as PbLeaseService>::LeaseKeepAliveStream, Status> {
        let shared = self.0.clone();
        let responses = inbound.map(move |req| {
            let id = req?.id;
            // An unknown or expired lease answers TTL 0, as etcd does.
            let ttl = shared.store.lease_keep_alive(id).unwrap_or(0);
            Ok(PbLeaseKeepAliveResponse { header: Some(shared.header(shared.store.revision())), id, ttl })
        });
        Ok(Box::pin(responses))
    }
}

#[tonic::async_trait]
impl PbLeaseService for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let req = request.into_inner();
        let (id, ttl) = self.0.store.lease_grant(req.id, req.ttl.max(MIN_TTL)).map_err(status)?;
        self.0.durable().await?;
        let header = Some(self.0.header(self.0.store.revision()));
        Ok(Response::new(PbLeaseGrantResponse { header, id, ttl, error: String::new() }))
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let rev = self.0.store.lease_revoke(request.into_inner().id).map_err(status)?;
        self.0.durable().await?;
        Ok(Response::new(PbLeaseRevokeResponse { header: Some(self.0.header(rev)) }))
    }

    type LeaseKeepAliveStream = Pin<Box<dyn Stream<Item = Result<PbLeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        Ok(Response::new(self.keep_alive_replies(request.into_inner()).await?))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let header = Some(self.0.header(self.0.store.revision()));
        let resp = match self.0.store.lease_time_to_live(req.id) {
            Ok(s) => PbLeaseTimeToLiveResponse {
                header,
                id: s.id,
                ttl: s.ttl,
                granted_ttl: s.granted_ttl,
                keys: if req.keys { s.keys } else { Vec::new() },
            },
            // etcd reports an unknown lease as TTL -1.
            Err(_) => PbLeaseTimeToLiveResponse { header, id: req.id, ttl: -1, granted_ttl: 0, keys: Vec::new() },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(&self, _: Request<PbLeaseLeasesRequest>) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        let leases = self.0.store.leases().into_iter().map(|id| PbLeaseStatus { id }).collect();
        Ok(Response::new(PbLeaseLeasesResponse { header: Some(self.0.header(self.0.store.revision())), leases }))
    }
}
