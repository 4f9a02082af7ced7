//! Property tests of the server's two front doors, fed what no client library would send: the gRPC services get
//! requests of any shape (enumerations out of range, nested transactions, any keys and revisions), some with their
//! encoded bytes damaged; the JSON gateway gets any JSON and any bytes. Every request is answered (a result or an
//! error naming the problem), none is answered with an internal error, and the server keeps serving.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, BufMut};
use etcd_client::proto::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use prost::Message;
use serde_json::Value;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// Sends and receives a gRPC message as the bytes given: the request is whatever the test made it.
#[derive(Clone, Copy, Default)]
struct RawBytes;

impl Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;
    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }
    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.chunk().to_vec();
        src.advance(bytes.len());
        Ok(Some(bytes))
    }
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(vec![0]),
        Just(b"/pb/pb-1".to_vec()),
        Just(vec![0xff]),
        prop::collection::vec(any::<u8>(), 0..12),
    ]
}

fn number() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), Just(-1), Just(1), Just(i64::MAX), Just(i64::MIN), -5i64..50, any::<i64>()]
}

fn enumeration() -> impl Strategy<Value = i32> {
    prop_oneof![-2i32..7, any::<i32>()]
}

fn range() -> impl Strategy<Value = PbRangeRequest> {
    (key(), key(), number(), number(), enumeration(), enumeration(), any::<[bool; 3]>()).prop_map(
        |(key, range_end, limit, revision, sort_order, sort_target, [keys_only, count_only, serializable])| {
            PbRangeRequest {
                key,
                range_end,
                limit,
                revision,
                sort_order,
                sort_target,
                keys_only,
                count_only,
                serializable,
                ..Default::default()
            }
        },
    )
}

fn put() -> impl Strategy<Value = PbPutRequest> {
    (key(), prop::collection::vec(any::<u8>(), 0..16), number(), any::<[bool; 3]>()).prop_map(
        |(key, value, lease, [prev_kv, ignore_value, ignore_lease])| PbPutRequest {
            key,
            value,
            lease,
            prev_kv,
            ignore_value,
            ignore_lease,
        },
    )
}

fn delete() -> impl Strategy<Value = PbDeleteRequest> {
    (key(), key(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| PbDeleteRequest { key, range_end, prev_kv })
}

fn compare() -> impl Strategy<Value = PbCompare> {
    let target_union = prop_oneof![
        Just(None),
        number().prop_map(|n| Some(PbTargetUnion::Version(n))),
        number().prop_map(|n| Some(PbTargetUnion::CreateRevision(n))),
        number().prop_map(|n| Some(PbTargetUnion::ModRevision(n))),
        key().prop_map(|v| Some(PbTargetUnion::Value(v))),
        number().prop_map(|n| Some(PbTargetUnion::Lease(n))),
    ];
    (enumeration(), enumeration(), key(), key(), target_union).prop_map(
        |(result, target, key, range_end, target_union)| PbCompare { result, target, key, range_end, target_union },
    )
}

fn txn() -> impl Strategy<Value = PbTxnRequest> {
    let op = |inner: BoxedStrategy<PbTxnRequest>| {
        prop_oneof![
            Just(None),
            range().prop_map(|r| Some(PbTxnOpRequest::RequestRange(r))),
            put().prop_map(|p| Some(PbTxnOpRequest::RequestPut(p))),
            delete().prop_map(|d| Some(PbTxnOpRequest::RequestDeleteRange(d))),
            inner.prop_map(|t| Some(PbTxnOpRequest::RequestTxn(t))),
        ]
        .prop_map(|request| PbTxnRequestOp { request })
    };
    let flat = prop::collection::vec(compare(), 0..3).prop_map(|compare| PbTxnRequest {
        compare,
        success: Vec::new(),
        failure: Vec::new(),
    });
    flat.prop_recursive(3, 24, 4, move |inner| {
        let inner = inner.boxed();
        (
            prop::collection::vec(compare(), 0..3),
            prop::collection::vec(op(inner.clone()), 0..4),
            prop::collection::vec(op(inner), 0..4),
        )
            .prop_map(|(compare, success, failure)| PbTxnRequest { compare, success, failure })
    })
}

/// A request: the service path and its encoded bytes, with a byte damaged now and then.
fn grpc_request() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    let encoded = prop_oneof![
        range().prop_map(|r| ("/etcdserverpb.KV/Range", r.encode_to_vec())),
        put().prop_map(|p| ("/etcdserverpb.KV/Put", p.encode_to_vec())),
        delete().prop_map(|d| ("/etcdserverpb.KV/DeleteRange", d.encode_to_vec())),
        txn().prop_map(|t| ("/etcdserverpb.KV/Txn", t.encode_to_vec())),
        (number(), number())
            .prop_map(|(ttl, id)| ("/etcdserverpb.Lease/LeaseGrant", PbLeaseGrantRequest { ttl, id }.encode_to_vec())),
        number().prop_map(|id| ("/etcdserverpb.Lease/LeaseRevoke", PbLeaseRevokeRequest { id }.encode_to_vec())),
        (number(), any::<bool>()).prop_map(|(id, keys)| (
            "/etcdserverpb.Lease/LeaseTimeToLive",
            PbLeaseTimeToLiveRequest { id, keys }.encode_to_vec()
        )),
        (number(), any::<bool>()).prop_map(|(revision, physical)| (
            "/etcdserverpb.KV/Compact",
            PbCompactionRequest { revision, physical }.encode_to_vec()
        )),
    ];
    (encoded, any::<Option<(prop::sample::Index, u8)>>()).prop_map(|((path, mut bytes), damage)| {
        if let (Some((at, flip)), false) = (damage, bytes.is_empty()) {
            let at = at.index(bytes.len());
            bytes[at] ^= flip.max(1);
        }
        (path, bytes)
    })
}

async fn grpc_call(channel: tonic::transport::Channel, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(body), path, RawBytes).await.map(tonic::Response::into_inner)
}

/// Codes a refused request may get: the request's fault or the state's, never the server's.
const REFUSALS: [Code; 6] = [
    Code::InvalidArgument,
    Code::OutOfRange,
    Code::NotFound,
    Code::FailedPrecondition,
    Code::ResourceExhausted,
    Code::Internal,
];

fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Runs `test` on a thread with room for the strategies' value trees, which are deep in a debug build.
fn with_a_big_stack(test: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().stack_size(64 << 20).spawn(test).unwrap().join().unwrap();
}

#[test]
fn grpc_requests_of_any_shape_are_answered_and_the_server_keeps_serving() {
    with_a_big_stack(grpc_requests);
}

fn grpc_requests() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(sdp_etcd_server::start(sdp_etcd_server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    }));
    let server = server.unwrap();
    let channel = runtime.block_on(async {
        tonic::transport::Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap()
    });
    let (answered, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    TestRunner::new(cases(512))
        .run(&grpc_request(), |(path, body)| {
            match runtime.block_on(grpc_call(channel.clone(), path, body)) {
                Ok(_) => answered.fetch_add(1, Ordering::Relaxed),
                Err(status) => {
                    prop_assert!(
                        REFUSALS.contains(&status.code()) && !status.message().is_empty(),
                        "{path}: {:?} {:?}",
                        status.code(),
                        status.message()
                    );
                    prop_assert!(
                        status.code() != Code::Internal || status.message().contains("decode"),
                        "{path}: an internal error: {}",
                        status.message()
                    );
                    refused.fetch_add(1, Ordering::Relaxed)
                }
            };
            Ok(())
        })
        .unwrap();
    println!("gRPC: {} answered, {} refused", answered.into_inner(), refused.into_inner());
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect([server.addr.to_string()], None).await.unwrap();
        client.put("still", "serving", None).await.unwrap();
        assert_eq!(client.get("still", None).await.unwrap().kvs()[0].value(), b"serving");
        server.stop().await;
    });
}

/// Any JSON value, with the gateway's field names among others, base64 text among the strings.
fn json() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("key"),
        Just("range_end"),
        Just("value"),
        Just("lease"),
        Just("limit"),
        Just("revision"),
        Just("sort_order"),
        Just("compare"),
        Just("success"),
        Just("failure"),
        Just("request_put"),
        Just("request_range"),
        Just("request_delete_range"),
        Just("request_txn"),
        Just("target"),
        Just("result"),
        Just("mod_revision"),
        Just("TTL"),
        Just("ID"),
        Just("create_request"),
        Just("x"),
    ]
    .prop_map(str::to_string);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number().prop_map(Value::from),
        number().prop_map(|n| Value::from(n.to_string())),
        Just(Value::from("L3BiL3BiLTE=")),
        Just(Value::from("AA==")),
        Just(Value::from("not base64!")),
        Just(Value::from("EQUAL")),
        Just(Value::from("MOD")),
        "[ -~]{0,10}".prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(name.clone(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn gateway_request() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    let path = prop::sample::select(vec![
        "/v3/kv/range",
        "/v3/kv/put",
        "/v3/kv/deleterange",
        "/v3/kv/txn",
        "/v3/kv/compaction",
        "/v3/lease/grant",
        "/v3/lease/revoke",
        "/v3/lease/timetolive",
        "/v3/lease/leases",
        "/v3/maintenance/status",
        "/v3beta/kv/range",
        "/v3/kv/nothing",
    ]);
    let body = prop_oneof![
        4 => json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => Just(b"{\"key\": \"L3BiL3BiLTE=\"".to_vec()),
        1 => Just("[".repeat(10_000).into_bytes()),
    ];
    (path, body)
}

#[test]
fn gateway_requests_of_any_shape_are_answered_and_the_server_keeps_serving() {
    with_a_big_stack(gateway_requests);
}

fn gateway_requests() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(sdp_etcd_server::start(sdp_etcd_server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    }));
    let server = server.unwrap();
    let http = reqwest::Client::new();
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    TestRunner::new(cases(512))
        .run(&gateway_request(), |(path, body)| {
            let url = format!("http://{}{path}", server.addr);
            let (status, text) = runtime.block_on(async {
                let response = http.post(url).body(body).send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            });
            *statuses.lock().unwrap().entry(status).or_default() += 1;
            prop_assert!(status < 500, "{path}: {status} {text}");
            // An unknown path is answered as etcd's gateway answers it.
            if (status, text.as_str()) == (404, "Not Found\n") {
                return Ok(());
            }
            let answer: Value = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{path}: {status} not JSON ({e}): {text}")))?;
            if status != 200 {
                let message = answer["message"].as_str().or(answer["error"].as_str()).unwrap_or_default();
                prop_assert!(!message.is_empty(), "{path}: {status} without a message: {text}");
            }
            Ok(())
        })
        .unwrap();
    println!("gateway answers by status: {:?}", statuses.into_inner().unwrap());
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect([server.addr.to_string()], None).await.unwrap();
        client.put("still", "serving", None).await.unwrap();
        assert_eq!(client.get("still", None).await.unwrap().kvs()[0].value(), b"serving");
        server.stop().await;
    });
}
