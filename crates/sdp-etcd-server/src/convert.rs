//! Translation between etcd's protobuf messages and the store's types, and etcd's error statuses.

use etcd_client::proto::*;
use sdp_kvstore as kv;
use tonic::Status;

pub fn status(e: kv::Error) -> Status {
    match e {
        kv::Error::Compacted { .. } => Status::out_of_range("etcdserver: mvcc: required revision has been compacted"),
        kv::Error::FutureRevision { .. } => {
            Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
        }
        kv::Error::LeaseNotFound(_) => Status::not_found("etcdserver: requested lease not found"),
        kv::Error::LeaseExists(_) => Status::failed_precondition("etcdserver: lease already exists"),
        kv::Error::KeyNotFound => Status::invalid_argument("etcdserver: key not found"),
        kv::Error::DuplicateKey => Status::invalid_argument("etcdserver: duplicate key given in txn request"),
        kv::Error::InvalidArgument(m) => Status::invalid_argument(format!("etcdserver: {m}")),
        kv::Error::Storage(m) => Status::unavailable(format!("etcdserver: storage failure: {m}")),
        kv::Error::LeaseTtlTooLarge { .. } => Status::out_of_range("etcdserver: too large lease TTL"),
        e @ kv::Error::TooManyOps { .. } => {
            Status::invalid_argument(format!("etcdserver: too many operations in txn request: {e}"))
        }
        e @ kv::Error::ResponseTooLarge { .. } => {
            Status::resource_exhausted(format!("grpc: trying to send message larger than max: {e}"))
        }
        e @ kv::Error::NoSpace { .. } => {
            Status::resource_exhausted(format!("etcdserver: mvcc: database space exceeded: {e}"))
        }
    }
}

fn key_not_provided() -> Status {
    Status::invalid_argument("etcdserver: key is not provided")
}

pub fn kv_to_pb(kv: kv::KeyValue) -> PbKeyValue {
    PbKeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub fn event_to_pb(ev: kv::Event, with_prev: bool) -> PbEvent {
    PbEvent {
        r#type: match ev.kind {
            kv::EventKind::Put => 0,
            kv::EventKind::Delete => 1,
        },
        kv: Some(kv_to_pb(ev.kv)),
        prev_kv: if with_prev { ev.prev_kv.map(kv_to_pb) } else { None },
    }
}

pub fn key_range(key: Vec<u8>, range_end: Vec<u8>) -> kv::KeyRange {
    kv::KeyRange { key, range_end }
}

pub fn range_request(r: PbRangeRequest) -> Result<kv::RangeRequest, Status> {
    if r.key.is_empty() {
        return Err(key_not_provided());
    }
    Ok(kv::RangeRequest {
        range: key_range(r.key, r.range_end),
        revision: r.revision,
        limit: r.limit,
        keys_only: r.keys_only,
        count_only: r.count_only,
        sort_order: match r.sort_order {
            1 => kv::SortOrder::Ascend,
            2 => kv::SortOrder::Descend,
            _ => kv::SortOrder::None,
        },
        sort_target: match r.sort_target {
            1 => kv::SortTarget::Version,
            2 => kv::SortTarget::Create,
            3 => kv::SortTarget::Mod,
            4 => kv::SortTarget::Value,
            _ => kv::SortTarget::Key,
        },
    })
}

pub fn range_response(r: kv::RangeResponse, header: PbResponseHeader) -> PbRangeResponse {
    PbRangeResponse {
        header: Some(header),
        kvs: r.kvs.into_iter().map(kv_to_pb).collect(),
        more: r.more,
        count: r.count,
    }
}

pub fn put_request(p: PbPutRequest) -> Result<kv::PutRequest, Status> {
    if p.key.is_empty() {
        return Err(key_not_provided());
    }
    Ok(kv::PutRequest {
        key: p.key,
        value: p.value,
        lease: p.lease,
        prev_kv: p.prev_kv,
        ignore_value: p.ignore_value,
        ignore_lease: p.ignore_lease,
    })
}

pub fn put_response(p: kv::PutResponse, header: PbResponseHeader) -> PbPutResponse {
    PbPutResponse { header: Some(header), prev_kv: p.prev_kv.map(kv_to_pb) }
}

pub fn delete_request(d: PbDeleteRequest) -> Result<kv::DeleteRangeRequest, Status> {
    if d.key.is_empty() {
        return Err(key_not_provided());
    }
    Ok(kv::DeleteRangeRequest { range: key_range(d.key, d.range_end), prev_kv: d.prev_kv })
}

pub fn delete_response(d: kv::DeleteRangeResponse, header: PbResponseHeader) -> PbDeleteResponse {
    PbDeleteResponse {
        header: Some(header),
        deleted: d.deleted,
        prev_kvs: d.prev_kvs.into_iter().map(kv_to_pb).collect(),
    }
}

fn compare(c: PbCompare) -> Result<kv::Compare, Status> {
    let result = match c.result {
        0 => kv::CompareResult::Equal,
        1 => kv::CompareResult::Greater,
        2 => kv::CompareResult::Less,
        3 => kv::CompareResult::NotEqual,
        other => return Err(Status::invalid_argument(format!("etcdserver: unknown compare result {other}"))),
    };
    let target = match c.target_union {
        Some(PbTargetUnion::Version(v)) => kv::CompareTarget::Version(v),
        Some(PbTargetUnion::CreateRevision(r)) => kv::CompareTarget::CreateRevision(r),
        Some(PbTargetUnion::ModRevision(r)) => kv::CompareTarget::ModRevision(r),
        Some(PbTargetUnion::Value(v)) => kv::CompareTarget::Value(v),
        Some(PbTargetUnion::Lease(l)) => kv::CompareTarget::Lease(l),
        // A compare with no value set compares against the target's zero value, as etcd's proto3 decoding does.
        None => match c.target {
            0 => kv::CompareTarget::Version(0),
            1 => kv::CompareTarget::CreateRevision(0),
            2 => kv::CompareTarget::ModRevision(0),
            3 => kv::CompareTarget::Value(Vec::new()),
            _ => kv::CompareTarget::Lease(0),
        },
    };
    Ok(kv::Compare { range: key_range(c.key, c.range_end), result, target })
}

fn request_op(op: PbTxnRequestOp) -> Result<kv::RequestOp, Status> {
    match op.request {
        Some(PbTxnOpRequest::RequestRange(r)) => Ok(kv::RequestOp::Range(range_request(r)?)),
        Some(PbTxnOpRequest::RequestPut(p)) => Ok(kv::RequestOp::Put(put_request(p)?)),
        Some(PbTxnOpRequest::RequestDeleteRange(d)) => Ok(kv::RequestOp::DeleteRange(delete_request(d)?)),
        Some(PbTxnOpRequest::RequestTxn(t)) => Ok(kv::RequestOp::Txn(txn_request(t)?)),
        None => Err(Status::invalid_argument("etcdserver: request op is empty")),
    }
}

pub fn txn_request(t: PbTxnRequest) -> Result<kv::TxnRequest, Status> {
    Ok(kv::TxnRequest {
        compare: t.compare.into_iter().map(compare).collect::<Result<_, _>>()?,
        success: t.success.into_iter().map(request_op).collect::<Result<_, _>>()?,
        failure: t.failure.into_iter().map(request_op).collect::<Result<_, _>>()?,
    })
}

pub fn txn_response(t: kv::TxnResponse, header: &PbResponseHeader) -> PbTxnResponse {
    // As etcd answers, the responses inside a transaction carry the revision alone in their header.
    let inner = PbResponseHeader { revision: header.revision, ..Default::default() };
    let responses = t
        .responses
        .into_iter()
        .map(|r| PbResponseOp {
            response: Some(match r {
                kv::ResponseOp::Range(r) => PbTxnOpResponse::ResponseRange(range_response(r, inner)),
                kv::ResponseOp::Put(p) => PbTxnOpResponse::ResponsePut(put_response(p, inner)),
                kv::ResponseOp::DeleteRange(d) => PbTxnOpResponse::ResponseDeleteRange(delete_response(d, inner)),
                kv::ResponseOp::Txn(t) => PbTxnOpResponse::ResponseTxn(txn_response(t, &inner)),
            }),
        })
        .collect();
    PbTxnResponse { header: Some(*header), succeeded: t.succeeded, responses }
}

/// Whether a request (or any nested op) writes: those need the journal flushed before the answer.
pub fn txn_writes(t: &kv::TxnRequest) -> bool {
    t.success.iter().chain(t.failure.iter()).any(|op| match op {
        kv::RequestOp::Range(_) => false,
        kv::RequestOp::Put(_) | kv::RequestOp::DeleteRange(_) => true,
        kv::RequestOp::Txn(t) => txn_writes(t),
    })
}
