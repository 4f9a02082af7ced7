//! The KV service: Range, Put, DeleteRange, Txn, Compact.

use etcd_client::proto::*;
use tonic::{Request, Response, Status};

use crate::convert::{self, status};
use crate::shared::Shared;

pub struct KvService(pub Shared);

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(&self, request: Request<PbRangeRequest>) -> Result<Response<PbRangeResponse>, Status> {
        let req = convert::range_request(request.into_inner())?;
        let (resp, rev) = self.0.store.range(&req).map_err(status)?;
        Ok(Response::new(convert::range_response(resp, self.0.header(rev))))
    }

    type RangeStreamStream = futures::stream::Empty<Result<PbRangeStreamResponse, Status>>;

    async fn range_stream(&self, _: Request<PbRangeRequest>) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented("RangeStream is not served; use Range"))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let req = convert::put_request(request.into_inner())?;
        let (resp, rev) = self.0.store.put(req).map_err(status)?;
        self.0.durable().await?;
        Ok(Response::new(convert::put_response(resp, self.0.header(rev))))
    }

    async fn delete_range(&self, request: Request<PbDeleteRequest>) -> Result<Response<PbDeleteResponse>, Status> {
        let req = convert::delete_request(request.into_inner())?;
        let (resp, rev) = self.0.store.delete_range(req).map_err(status)?;
        self.0.durable().await?;
        Ok(Response::new(convert::delete_response(resp, self.0.header(rev))))
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let req = convert::txn_request(request.into_inner())?;
        let (resp, rev) = self.0.store.txn(&req).map_err(status)?;
        if convert::txn_writes(&req) {
            self.0.durable().await?;
        }
        Ok(Response::new(convert::txn_response(resp, &self.0.header(rev))))
    }

    async fn compact(&self, request: Request<PbCompactionRequest>) -> Result<Response<PbCompactionResponse>, Status> {
        let rev = self.0.store.compact(request.into_inner().revision).map_err(status)?;
        self.0.durable().await?;
        Ok(Response::new(PbCompactionResponse { header: Some(self.0.header(rev)) }))
    }
}
