//! etcd's gRPC-JSON gateway, served on the gRPC port as etcd 3.4 serves it, for the clients that speak JSON
//! over HTTP/1 (the original Python client, etcd3-py): `GET /version`, then `POST /v3/<service>/<call>` (and
//! `/v3beta/...`) with the request as JSON, answered as etcd 3.4's gateway writes it: proto field names, bytes
//! in base64, 64-bit integers as strings, zero values left out, enums by name. Streamed calls (`watch`,
//! `lease/keepalive`) answer one `{"result": ...}` line per message. Errors answer `{"error", "message",
//! "code"}` with the gateway's HTTP status for the gRPC code.
//!
//! The calls go to the same services as gRPC, so both surfaces behave alike.

use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use etcd_client::proto::*;
use futures::{Stream, StreamExt};
use serde_json::{json, Map, Value};
use tonic::{Code, Request, Status};

use crate::maintenance::{MaintenanceService, API_VERSION};
use crate::shared::Shared;
use crate::{kv::KvService, lease::LeaseService, watch};

pub(crate) fn router(shared: Shared) -> Router {
    Router::new().route("/version", get(version)).route("/{api}/{*call}", post(call)).with_state(shared)
}

async fn version() -> Response {
    json_response(StatusCode::OK, &json!({"etcdserver": API_VERSION, "etcdcluster": API_VERSION}))
}

/// A gateway error: a gRPC code and its message.
struct Failure(Code, String);

impl From<Status> for Failure {
    fn from(s: Status) -> Failure {
        Failure(s.code(), s.message().to_string())
    }
}

fn bad_request(message: impl Into<String>) -> Failure {
    Failure(Code::InvalidArgument, message.into())
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        // grpc-gateway v1's mapping, which etcd 3.4 serves.
        let status = match self.0 {
            Code::Ok => StatusCode::OK,
            Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        };
        json_response(status, &error_body(&self))
    }
}

fn error_body(f: &Failure) -> Value {
    json!({"error": f.1, "message": f.1, "code": f.0 as i32})
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

type Lines = Pin<Box<dyn Stream<Item = Result<Value, Failure>> + Send>>;

enum Answer {
    One(Value),
    Stream(Lines),
}

async fn call(State(shared): State<Shared>, Path((api, call)): Path<(String, String)>, body: Bytes) -> Response {
    if api != "v3" && api != "v3beta" {
        return (StatusCode::NOT_FOUND, "Not Found\n").into_response();
    }
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return bad_request("json: cannot unmarshal a non-object into a request").into_response(),
        Err(e) => return bad_request(e.to_string()).into_response(),
    };
    match answer(&shared, &call, &request).await {
        Ok(Some(Answer::One(v))) => json_response(StatusCode::OK, &v),
        Ok(Some(Answer::Stream(lines))) => {
            let lines = lines.map(|line| {
                let line = match line {
                    Ok(result) => json!({ "result": result }),
                    Err(f) => json!({ "error": error_body(&f) }),
                };
                Ok::<_, std::convert::Infallible>(format!("{line}\n"))
            });
            ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(lines)).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, "Not Found\n").into_response(),
        Err(f) => {
            tracing::debug!(call, code = ?f.0, message = f.1, "gateway request failed");
            f.into_response()
        }
    }
}

async fn answer(shared: &Shared, call: &str, r: &Map<String, Value>) -> Result<Option<Answer>, Failure> {
    use PbKvService as _;
    use PbLeaseService as _;
    use PbMaintenanceService as _;
    let kv = KvService(shared.clone());
    let lease = LeaseService(shared.clone());
    let one = |v| Ok(Some(Answer::One(v)));
    match call {
        "kv/range" => one(range_response(kv.range(Request::new(range_request(r)?)).await?.into_inner())),
        "kv/put" => one(put_response(kv.put(Request::new(put_request(r)?)).await?.into_inner())),
        "kv/deleterange" => one(delete_response(kv.delete_range(Request::new(delete_request(r)?)).await?.into_inner())),
        "kv/txn" => one(txn_response(kv.txn(Request::new(txn_request(r)?)).await?.into_inner())),
        "kv/compaction" => {
            let req = PbCompactionRequest { revision: int(r, "revision")?, physical: flag(r, "physical")? };
            let resp = kv.compact(Request::new(req)).await?.into_inner();
            one(with_header(resp.header, Map::new()))
        }
        "lease/grant" => {
            let req = PbLeaseGrantRequest { ttl: int(r, "TTL")?, id: int(r, "ID")? };
            let resp = lease.lease_grant(Request::new(req)).await?.into_inner();
            let mut m = Map::new();
            put_int(&mut m, "ID", resp.id);
            put_int(&mut m, "TTL", resp.ttl);
            put_str(&mut m, "error", &resp.error);
            one(with_header(resp.header, m))
        }
        "lease/revoke" | "kv/lease/revoke" => {
            let req = PbLeaseRevokeRequest { id: int(r, "ID")? };
            let resp = lease.lease_revoke(Request::new(req)).await?.into_inner();
            one(with_header(resp.header, Map::new()))
        }
        "lease/timetolive" | "kv/lease/timetolive" => {
            let req = PbLeaseTimeToLiveRequest { id: int(r, "ID")?, keys: flag(r, "keys")? };
            let resp = lease.lease_time_to_live(Request::new(req)).await?.into_inner();
            let mut m = Map::new();
            put_int(&mut m, "ID", resp.id);
            put_int(&mut m, "TTL", resp.ttl);
            put_int(&mut m, "grantedTTL", resp.granted_ttl);
            if !resp.keys.is_empty() {
                m.insert("keys".into(), resp.keys.iter().map(|k| Value::String(BASE64.encode(k))).collect());
            }
            one(with_header(resp.header, m))
        }
        "lease/leases" | "kv/lease/leases" => {
            let resp = lease.lease_leases(Request::new(PbLeaseLeasesRequest {})).await?.into_inner();
            let mut m = Map::new();
            if !resp.leases.is_empty() {
                let leases = resp.leases.iter().map(|l| {
                    let mut m = Map::new();
                    put_int(&mut m, "ID", l.id);
                    Value::Object(m)
                });
                m.insert("leases".into(), leases.collect());
            }
            one(with_header(resp.header, m))
        }
        "lease/keepalive" => {
            let req = PbLeaseKeepAliveRequest { id: int(r, "ID")? };
            let inbound = futures::stream::iter([Ok(req)]);
            let replies = lease.keep_alive_replies(inbound).await?;
            let lines = replies.map(|reply| {
                let resp = reply?;
                let mut m = Map::new();
                put_int(&mut m, "ID", resp.id);
                put_int(&mut m, "TTL", resp.ttl);
                Ok(with_header(resp.header, m))
            });
            Ok(Some(Answer::Stream(Box::pin(lines))))
        }
        "maintenance/alarm" => {
            let req = PbAlarmRequest {
                action: enumeration(r, "action", &["GET", "ACTIVATE", "DEACTIVATE"])?,
                member_id: int(r, "memberID")? as u64,
                alarm: enumeration(r, "alarm", &["NONE", "NOSPACE", "CORRUPT"])?,
            };
            let resp = MaintenanceService(shared.clone()).alarm(Request::new(req)).await?.into_inner();
            let mut m = Map::new();
            if !resp.alarms.is_empty() {
                let alarms = resp.alarms.iter().map(|a| {
                    let mut m = Map::new();
                    put_int(&mut m, "memberID", a.member_id);
                    m.insert("alarm".into(), Value::String(if a.alarm == 1 { "NOSPACE" } else { "CORRUPT" }.into()));
                    Value::Object(m)
                });
                m.insert("alarms".into(), alarms.collect());
            }
            one(with_header(resp.header, m))
        }
        "maintenance/defragment" => {
            let resp =
                MaintenanceService(shared.clone()).defragment(Request::new(PbDefragmentRequest {})).await?.into_inner();
            one(with_header(resp.header, Map::new()))
        }
        "maintenance/status" => {
            let resp = MaintenanceService(shared.clone()).status(Request::new(PbStatusRequest {})).await?.into_inner();
            one(status_response(resp))
        }
        "watch" => {
            let req = watch_request(r)?;
            // The request body is the only message: the stream stays open until the client goes.
            let inbound = futures::stream::iter([Ok(req)]).chain(futures::stream::pending());
            let lines = watch::responses(shared.clone(), inbound).map(|resp| Ok(watch_response(resp?)));
            Ok(Some(Answer::Stream(Box::pin(lines))))
        }
        _ => Ok(None),
    }
}

// ---- requests: JSON as the gateway reads it (names or numbers for enums, numbers or strings for integers) ----

fn bytes(r: &Map<String, Value>, name: &str) -> Result<Vec<u8>, Failure> {
    match r.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => BASE64
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
            .map_err(|e| bad_request(format!("illegal base64 data in {name}: {e}"))),
        Some(_) => Err(bad_request(format!("json: cannot unmarshal non-string {name} into Go value of type []uint8"))),
    }
}

fn int(r: &Map<String, Value>, name: &str) -> Result<i64, Failure> {
    match r.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| bad_request(format!("{name}: {n} is not a 64-bit integer"))),
        Some(Value::String(s)) => s.parse().map_err(|_| bad_request(format!("{name}: {s:?} is not a 64-bit integer"))),
        Some(other) => Err(bad_request(format!("{name}: {other} is not a 64-bit integer"))),
    }
}

fn flag(r: &Map<String, Value>, name: &str) -> Result<bool, Failure> {
    match r.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(bad_request(format!("{name}: {other} is not a boolean"))),
    }
}

fn enumeration(r: &Map<String, Value>, name: &str, names: &[&str]) -> Result<i32, Failure> {
    match r.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => names
            .iter()
            .position(|n| n == s)
            .map(|i| i as i32)
            .ok_or_else(|| bad_request(format!("unknown value {s:?} for {name}: one of {names:?}"))),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|i| (0..names.len() as i64).contains(i))
            .map(|i| i as i32)
            .ok_or_else(|| bad_request(format!("unknown value {n} for {name}"))),
        Some(other) => Err(bad_request(format!("{name}: {other} is not an enum value"))),
    }
}

fn object<'a>(r: &'a Map<String, Value>, name: &str) -> Result<Option<&'a Map<String, Value>>, Failure> {
    match r.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(bad_request(format!("{name}: {other} is not an object"))),
    }
}

fn list<'a>(r: &'a Map<String, Value>, name: &str) -> Result<Vec<&'a Map<String, Value>>, Failure> {
    match r.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_object().ok_or_else(|| bad_request(format!("{name}: {i} is not an object"))))
            .collect(),
        Some(other) => Err(bad_request(format!("{name}: {other} is not a list"))),
    }
}

fn range_request(r: &Map<String, Value>) -> Result<PbRangeRequest, Failure> {
    Ok(PbRangeRequest {
        key: bytes(r, "key")?,
        range_end: bytes(r, "range_end")?,
        limit: int(r, "limit")?,
        revision: int(r, "revision")?,
        sort_order: enumeration(r, "sort_order", &["NONE", "ASCEND", "DESCEND"])?,
        sort_target: enumeration(r, "sort_target", &["KEY", "VERSION", "CREATE", "MOD", "VALUE"])?,
        serializable: flag(r, "serializable")?,
        keys_only: flag(r, "keys_only")?,
        count_only: flag(r, "count_only")?,
        min_mod_revision: int(r, "min_mod_revision")?,
        max_mod_revision: int(r, "max_mod_revision")?,
        min_create_revision: int(r, "min_create_revision")?,
        max_create_revision: int(r, "max_create_revision")?,
    })
}

fn put_request(r: &Map<String, Value>) -> Result<PbPutRequest, Failure> {
    Ok(PbPutRequest {
        key: bytes(r, "key")?,
        value: bytes(r, "value")?,
        lease: int(r, "lease")?,
        prev_kv: flag(r, "prev_kv")?,
        ignore_value: flag(r, "ignore_value")?,
        ignore_lease: flag(r, "ignore_lease")?,
    })
}

fn delete_request(r: &Map<String, Value>) -> Result<PbDeleteRequest, Failure> {
    Ok(PbDeleteRequest { key: bytes(r, "key")?, range_end: bytes(r, "range_end")?, prev_kv: flag(r, "prev_kv")? })
}

fn txn_request(r: &Map<String, Value>) -> Result<PbTxnRequest, Failure> {
    let compare = list(r, "compare")?
        .into_iter()
        .map(|c| {
            let target = enumeration(c, "target", &["VERSION", "CREATE", "MOD", "VALUE", "LEASE"])?;
            let target_union = match target {
                0 => PbTargetUnion::Version(int(c, "version")?),
                1 => PbTargetUnion::CreateRevision(int(c, "create_revision")?),
                2 => PbTargetUnion::ModRevision(int(c, "mod_revision")?),
                3 => PbTargetUnion::Value(bytes(c, "value")?),
                _ => PbTargetUnion::Lease(int(c, "lease")?),
            };
            Ok(PbCompare {
                result: enumeration(c, "result", &["EQUAL", "GREATER", "LESS", "NOT_EQUAL"])?,
                target,
                key: bytes(c, "key")?,
                range_end: bytes(c, "range_end")?,
                target_union: Some(target_union),
            })
        })
        .collect::<Result<_, Failure>>()?;
    let ops = |name| -> Result<Vec<PbTxnRequestOp>, Failure> {
        list(r, name)?
            .into_iter()
            .map(|op| {
                let given = ["request_range", "request_put", "request_delete_range", "request_txn"]
                    .into_iter()
                    .filter(|name| op.get(*name).is_some_and(|v| !v.is_null()))
                    .collect::<Vec<_>>();
                if given.len() > 1 {
                    return Err(bad_request(format!(
                        "one operation holds {}: give one request per operation",
                        given.join(" and ")
                    )));
                }
                let request = if let Some(o) = object(op, "request_range")? {
                    PbTxnOpRequest::RequestRange(range_request(o)?)
                } else if let Some(o) = object(op, "request_put")? {
                    PbTxnOpRequest::RequestPut(put_request(o)?)
                } else if let Some(o) = object(op, "request_delete_range")? {
                    PbTxnOpRequest::RequestDeleteRange(delete_request(o)?)
                } else if let Some(o) = object(op, "request_txn")? {
                    PbTxnOpRequest::RequestTxn(txn_request(o)?)
                } else {
                    return Ok(PbTxnRequestOp { request: None });
                };
                Ok(PbTxnRequestOp { request: Some(request) })
            })
            .collect()
    };
    Ok(PbTxnRequest { compare, success: ops("success")?, failure: ops("failure")? })
}

fn watch_request(r: &Map<String, Value>) -> Result<PbWatchRequest, Failure> {
    let request_union = if let Some(c) = object(r, "create_request")? {
        let mut union = PbWatchRequestUnion::CreateRequest(Default::default());
        if let PbWatchRequestUnion::CreateRequest(create) = &mut union {
            create.key = bytes(c, "key")?;
            create.range_end = bytes(c, "range_end")?;
            create.start_revision = int(c, "start_revision")?;
            create.progress_notify = flag(c, "progress_notify")?;
            create.prev_kv = flag(c, "prev_kv")?;
            create.watch_id = int(c, "watch_id")?;
            create.fragment = flag(c, "fragment")?;
            if let Some(Value::Array(filters)) = c.get("filters") {
                let names = ["NOPUT", "NODELETE"];
                create.filters = filters
                    .iter()
                    .map(|f| enumeration(&Map::from_iter([("filter".to_string(), f.clone())]), "filter", &names))
                    .collect::<Result<_, _>>()?;
            }
        }
        Some(union)
    } else if let Some(c) = object(r, "cancel_request")? {
        let mut union = PbWatchRequestUnion::CancelRequest(Default::default());
        if let PbWatchRequestUnion::CancelRequest(cancel) = &mut union {
            cancel.watch_id = int(c, "watch_id")?;
        }
        Some(union)
    } else if object(r, "progress_request")?.is_some() {
        Some(PbWatchRequestUnion::ProgressRequest(Default::default()))
    } else {
        None
    };
    Ok(PbWatchRequest { request_union })
}

// ---- responses: JSON as the gateway writes it --------------------------------------------------------------

/// A 64-bit integer, as a string; zero left out.
fn put_int<T: Default + PartialEq + ToString>(m: &mut Map<String, Value>, name: &str, v: T) {
    if v != T::default() {
        m.insert(name.into(), Value::String(v.to_string()));
    }
}

fn put_bytes(m: &mut Map<String, Value>, name: &str, v: &[u8]) {
    if !v.is_empty() {
        m.insert(name.into(), Value::String(BASE64.encode(v)));
    }
}

fn put_str(m: &mut Map<String, Value>, name: &str, v: &str) {
    if !v.is_empty() {
        m.insert(name.into(), Value::String(v.into()));
    }
}

fn put_flag(m: &mut Map<String, Value>, name: &str, v: bool) {
    if v {
        m.insert(name.into(), Value::Bool(true));
    }
}

fn header_json(h: &PbResponseHeader) -> Value {
    let mut m = Map::new();
    put_int(&mut m, "cluster_id", h.cluster_id);
    put_int(&mut m, "member_id", h.member_id);
    put_int(&mut m, "revision", h.revision);
    put_int(&mut m, "raft_term", h.raft_term);
    Value::Object(m)
}

/// `fields` after the header, as the gateway orders them.
fn with_header(header: Option<PbResponseHeader>, fields: Map<String, Value>) -> Value {
    let mut m = Map::new();
    if let Some(h) = header {
        m.insert("header".into(), header_json(&h));
    }
    m.extend(fields);
    Value::Object(m)
}

fn kv_json(kv: &PbKeyValue) -> Value {
    let mut m = Map::new();
    put_bytes(&mut m, "key", &kv.key);
    put_int(&mut m, "create_revision", kv.create_revision);
    put_int(&mut m, "mod_revision", kv.mod_revision);
    put_int(&mut m, "version", kv.version);
    put_bytes(&mut m, "value", &kv.value);
    put_int(&mut m, "lease", kv.lease);
    Value::Object(m)
}

fn put_kvs(m: &mut Map<String, Value>, name: &str, kvs: &[PbKeyValue]) {
    if !kvs.is_empty() {
        m.insert(name.into(), kvs.iter().map(kv_json).collect());
    }
}

fn range_response(r: PbRangeResponse) -> Value {
    let mut m = Map::new();
    put_kvs(&mut m, "kvs", &r.kvs);
    put_flag(&mut m, "more", r.more);
    put_int(&mut m, "count", r.count);
    with_header(r.header, m)
}

fn put_response(r: PbPutResponse) -> Value {
    let mut m = Map::new();
    if let Some(prev) = &r.prev_kv {
        m.insert("prev_kv".into(), kv_json(prev));
    }
    with_header(r.header, m)
}

fn delete_response(r: PbDeleteResponse) -> Value {
    let mut m = Map::new();
    put_int(&mut m, "deleted", r.deleted);
    put_kvs(&mut m, "prev_kvs", &r.prev_kvs);
    with_header(r.header, m)
}

fn txn_response(r: PbTxnResponse) -> Value {
    let mut m = Map::new();
    put_flag(&mut m, "succeeded", r.succeeded);
    if !r.responses.is_empty() {
        let responses = r.responses.into_iter().map(|op| match op.response {
            Some(PbTxnOpResponse::ResponseRange(r)) => json!({ "response_range": range_response(r) }),
            Some(PbTxnOpResponse::ResponsePut(r)) => json!({ "response_put": put_response(r) }),
            Some(PbTxnOpResponse::ResponseDeleteRange(r)) => json!({ "response_delete_range": delete_response(r) }),
            Some(PbTxnOpResponse::ResponseTxn(r)) => json!({ "response_txn": txn_response(r) }),
            None => json!({}),
        });
        m.insert("responses".into(), responses.collect());
    }
    with_header(r.header, m)
}

fn status_response(r: PbStatusResponse) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "version", &r.version);
    put_int(&mut m, "dbSize", r.db_size);
    put_int(&mut m, "leader", r.leader);
    put_int(&mut m, "raftIndex", r.raft_index);
    put_int(&mut m, "raftTerm", r.raft_term);
    put_int(&mut m, "raftAppliedIndex", r.raft_applied_index);
    if !r.errors.is_empty() {
        m.insert("errors".into(), r.errors.iter().cloned().map(Value::String).collect());
    }
    put_int(&mut m, "dbSizeInUse", r.db_size_in_use);
    put_flag(&mut m, "isLearner", r.is_learner);
    with_header(r.header, m)
}

fn watch_response(r: PbWatchResponse) -> Value {
    let mut m = Map::new();
    put_int(&mut m, "watch_id", r.watch_id);
    put_flag(&mut m, "created", r.created);
    put_flag(&mut m, "canceled", r.canceled);
    put_int(&mut m, "compact_revision", r.compact_revision);
    put_str(&mut m, "cancel_reason", &r.cancel_reason);
    put_flag(&mut m, "fragment", r.fragment);
    if !r.events.is_empty() {
        let events = r.events.iter().map(|e| {
            let mut m = Map::new();
            if e.r#type == 1 {
                m.insert("type".into(), Value::String("DELETE".into()));
            }
            if let Some(kv) = &e.kv {
                m.insert("kv".into(), kv_json(kv));
            }
            if let Some(prev) = &e.prev_kv {
                m.insert("prev_kv".into(), kv_json(prev));
            }
            Value::Object(m)
        });
        m.insert("events".into(), events.collect());
    }
    with_header(r.header, m)
}
