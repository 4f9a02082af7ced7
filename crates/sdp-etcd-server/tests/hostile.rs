//! Requests an attacker would send: none may panic the server, poison its journal, or make it hold memory or
//! connections without bound. Each test replays one such request against the embedded server, then checks
//! that it still serves (and, where it matters, that it starts again on the same data).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sdp_etcd_server::{ConnectionLimits, RunningServer, ServerConfig, ServerError};
use sdp_kvstore::{Event, EventKind, Journal, KeyValue, Record};
use serde_json::{json, Value};

async fn start(dir: &Path, tune: impl FnOnce(&mut ServerConfig)) -> Result<RunningServer, ServerError> {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(dir.to_path_buf()),
        ..Default::default()
    };
    tune(&mut config);
    sdp_etcd_server::start(config).await
}

fn b64(text: impl AsRef<[u8]>) -> String {
    BASE64.encode(text)
}

/// A gateway call: the HTTP status and the JSON body.
async fn post(server: &RunningServer, path: &str, body: Value) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response =
        reqwest::Client::new().post(format!("http://{}{path}", server.addr)).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn client(server: &RunningServer) -> etcd_client::Client {
    etcd_client::Client::connect([server.addr.to_string()], None).await.unwrap()
}

async fn get(client: &mut etcd_client::Client, key: &str) -> Option<Vec<u8>> {
    client.get(key, None).await.unwrap().kvs().first().map(|kv| kv.value().to_vec())
}

async fn etcdctl(server: &RunningServer, args: &[&str]) -> String {
    let etcdctl = sdp_testkit::program("etcdctl", "SDP_TEST_ETCDCTL", "install it with `apt-get install etcd-client`");
    let out = tokio::process::Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(server.addr.to_string())
        .args(args)
        .output()
        .await
        .unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn a_lease_ttl_past_etcds_maximum_is_refused_and_the_data_folder_still_starts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await.unwrap();
    for ttl in ["9223372036854775807", "9000000001"] {
        let (status, body) = post(&server, "/v3/lease/grant", json!({"TTL": ttl})).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("etcdserver: too large lease TTL")), "{body}");
    }
    let mut client = client(&server).await;
    let refused = client.lease_grant(i64::MAX, None).await.unwrap_err().to_string();
    assert!(refused.contains("too large lease TTL"), "{refused}");
    let largest = client.lease_grant(sdp_kvstore::MAX_LEASE_TTL, None).await.unwrap();
    client.put("kept", "yes", None).await.unwrap();
    server.stop().await;

    let server = start(dir.path(), |_| {}).await.expect("the data folder starts again");
    let mut client = self::client(&server).await;
    assert_eq!(get(&mut client, "kept").await.as_deref(), Some(&b"yes"[..]));
    let ttl = client.lease_time_to_live(largest.id(), None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), sdp_kvstore::MAX_LEASE_TTL);
    server.stop().await;
}

fn put_record(revision: i64, key: &str, value: &str) -> Record {
    let kv = KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: revision,
        mod_revision: revision,
        version: 1,
        lease: 0,
    };
    Record::Changes { revision, events: vec![Event { kind: EventKind::Put, kv, prev_kv: None }] }
}

/// Writes `records` as a journal into `dir`; returns where each starts.
fn write_journal(dir: &Path, records: &[Record]) -> Vec<u64> {
    let opened = sdp_etcd_server::FileJournal::open(dir).unwrap();
    let mut offsets = Vec::new();
    for record in records {
        offsets.push(opened.journal.size_bytes());
        opened.journal.append(record).unwrap();
    }
    futures::executor::block_on(opened.journal.sync()).unwrap();
    offsets
}

#[tokio::test]
async fn a_journal_record_that_cannot_be_replayed_stops_the_start_and_names_the_repair() {
    let dir = tempfile::tempdir().unwrap();
    // What a server without the TTL check journaled: a grant no Instant can hold.
    let offsets = write_journal(
        dir.path(),
        &[put_record(2, "a", "1"), Record::LeaseGrant { id: 7, ttl: i64::MAX }, put_record(3, "b", "2")],
    );
    let error = start(dir.path(), |_| {}).await.err().expect("a start on a bad journal fails").to_string();
    let repair = format!("sdp repair-journal --data-dir {} --skip-record {}", dir.path().display(), offsets[1]);
    assert!(error.contains(&repair) && error.contains("TTL"), "{error}");

    let backup = sdp_etcd_server::repair(dir.path(), sdp_etcd_server::Repair::SkipRecord(offsets[1])).unwrap();
    assert!(backup.exists());
    let server = start(dir.path(), |_| {}).await.expect("the repaired journal starts");
    let mut client = client(&server).await;
    assert_eq!(get(&mut client, "a").await.as_deref(), Some(&b"1"[..]));
    assert_eq!(get(&mut client, "b").await.as_deref(), Some(&b"2"[..]));
    server.stop().await;
}

#[tokio::test]
async fn corruption_inside_the_journal_is_an_error_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let offsets =
        write_journal(dir.path(), &[put_record(2, "a", "1"), put_record(3, "b", "2"), put_record(4, "c", "3")]);
    let path = dir.path().join("journal.log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offsets[1] as usize + 10] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let error = start(dir.path(), |_| {}).await.err().expect("a corrupt journal does not start").to_string();
    let named = format!(
        "the journal {} cannot be replayed: the record at byte {} fails its checksum",
        path.display(),
        offsets[1]
    );
    assert!(error.contains(&named), "{error}");
    // Nothing was cut off silently.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    sdp_etcd_server::repair(dir.path(), sdp_etcd_server::Repair::TruncateAt(offsets[1])).unwrap();
    let server = start(dir.path(), |_| {}).await.unwrap();
    let mut client = client(&server).await;
    assert_eq!(get(&mut client, "a").await.as_deref(), Some(&b"1"[..]));
    assert_eq!(get(&mut client, "c").await, None);
    server.stop().await;
}

#[tokio::test]
async fn nested_transactions_cannot_amplify_a_response_or_pass_the_operation_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |c| c.limits.max_response_bytes = 4 << 20).await.unwrap();
    let (status, _) = post(&server, "/v3/kv/put", json!({"key": b64("big"), "value": b64(vec![b'x'; 1 << 20])})).await;
    assert_eq!(status, 200);
    let ranges = |n: usize| (0..n).map(|_| json!({"request_range": {"key": b64("big")}})).collect::<Vec<_>>();
    let nested = |levels: usize, each: usize| {
        (0..levels).map(|_| json!({"request_txn": {"success": ranges(each)}})).collect::<Vec<_>>()
    };
    // 10 × 10 ranges of a 1 MiB value: 100 MiB asked for, 110 operations.
    let (status, body) = post(&server, "/v3/kv/txn", json!({"success": nested(10, 10)})).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"].as_str().unwrap().contains("larger than max"), "{body}");
    // Within one level's limit, but not in total.
    let (status, body) = post(&server, "/v3/kv/txn", json!({"success": nested(100, 100)})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("too many operations"), "{body}");
    // What fits is answered.
    let (status, body) = post(&server, "/v3/kv/txn", json!({"success": nested(1, 3)})).await;
    assert_eq!(status, 200, "{body}");
    let mut client = client(&server).await;
    let refused = client.get("big", Some(etcd_client::GetOptions::new().with_limit(-1))).await.unwrap_err();
    assert!(refused.to_string().contains("negative limit"), "{refused}");
    assert_eq!(get(&mut client, "big").await.map(|v| v.len()), Some(1 << 20));
    server.stop().await;
}

#[tokio::test]
async fn the_space_quota_raises_nospace_and_etcdctl_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |c| c.limits.quota_bytes = 256 << 10).await.unwrap();
    let mut client = client(&server).await;
    let value = vec![b'v'; 100 << 10];
    client.put("k0", value.clone(), None).await.unwrap();
    client.put("k1", value.clone(), None).await.unwrap();
    let refused = client.put("k2", value.clone(), None).await.unwrap_err().to_string();
    assert!(refused.contains("database space exceeded"), "{refused}");
    // Reads and deletions go on; every write that adds data, and lease grants, wait for the alarm to clear.
    assert_eq!(get(&mut client, "k0").await.map(|v| v.len()), Some(100 << 10));
    assert!(client.put("small", "x", None).await.is_err());
    assert!(client.lease_grant(10, None).await.is_err());
    let alarms = etcdctl(&server, &["alarm", "list"]).await;
    assert!(alarms.contains("alarm:NOSPACE"), "{alarms}");
    client.delete("k1", None).await.unwrap();
    let revision = client.get("k0", None).await.unwrap().header().unwrap().revision();
    assert!(client.put("small", "x", None).await.is_err(), "the alarm stays until disarmed");
    // The operator's way out, as with etcd: compact, defragment, disarm.
    etcdctl(&server, &["compact", &revision.to_string()]).await;
    assert!(etcdctl(&server, &["defrag"]).await.contains("Finished defragmenting"));
    etcdctl(&server, &["alarm", "disarm"]).await;
    assert_eq!(etcdctl(&server, &["alarm", "list"]).await.trim(), "");
    client.put("small", "x", None).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn odd_gateway_requests_are_answered_not_half_applied() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await.unwrap();
    let both = json!({"success": [{"request_put": {"key": b64("p"), "value": b64("1")}, "request_delete_range": {"key": b64("d")}}]});
    let (status, body) = post(&server, "/v3/kv/txn", both).await;
    assert_eq!(status, 400, "{body}");
    let (_, body) = post(&server, "/v3/kv/range", json!({"key": b64("p")})).await;
    assert!(body.get("kvs").is_none(), "nothing of a refused operation is applied: {body}");
    for field in ["limit", "revision"] {
        let (status, body) = post(&server, "/v3/kv/range", json!({"key": b64("p"), field: "-1"})).await;
        assert_eq!(status, 400, "{field}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn defragment_rewrites_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await.unwrap();
    let mut client = client(&server).await;
    for i in 0..50 {
        client.put("one", vec![i as u8; 10 << 10], None).await.unwrap();
    }
    let journal = dir.path().join("journal.log");
    let before = std::fs::metadata(&journal).unwrap().len();
    let defrag = etcdctl(&server, &["defrag"]).await;
    assert!(defrag.contains("Finished defragmenting"), "{defrag}");
    let after = std::fs::metadata(&journal).unwrap().len();
    assert!(after < before / 10, "{before} -> {after} bytes");
    client.put("two", "2", None).await.unwrap();
    server.stop().await;
    let server = start(dir.path(), |_| {}).await.unwrap();
    let mut client = self::client(&server).await;
    assert_eq!(get(&mut client, "one").await, Some(vec![49u8; 10 << 10]));
    assert_eq!(get(&mut client, "two").await.as_deref(), Some(&b"2"[..]));
    server.stop().await;
}

/// Whether the server closed `stream` within `limit` (a read that ends or fails).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_floods_are_capped_and_idle_connections_closed() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ConnectionLimits { max_connections: 16, idle_timeout: Duration::from_secs(1) };
    let server = start(dir.path(), |c| c.connections = limits).await.unwrap();
    let addr = server.addr;
    let outcome = tokio::task::spawn_blocking(move || {
        let mut idle: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut over = TcpStream::connect(addr).unwrap();
        let over_closed = closed_within(&mut over, Duration::from_millis(800));
        // Headers trickled a byte at a time never finish: the connection goes all the same.
        let mut slow = None;
        let started = Instant::now();
        let all_idle_closed = idle.iter_mut().all(|s| closed_within(s, Duration::from_secs(5)));
        let idle_closed_after = started.elapsed();
        let mut trickle = TcpStream::connect(addr).unwrap();
        trickle.write_all(b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\n").unwrap();
        let trickle_started = Instant::now();
        while trickle_started.elapsed() < Duration::from_secs(6) {
            if trickle.write_all(b"X").is_err() {
                slow = Some(trickle_started.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        (over_closed, all_idle_closed, idle_closed_after, slow)
    })
    .await
    .unwrap();
    let (over_closed, all_idle_closed, idle_closed_after, slow) = outcome;
    assert!(over_closed, "a connection past --max-connections is closed at once");
    assert!(all_idle_closed, "idle connections are closed (waited {idle_closed_after:?})");
    assert!(slow.is_some(), "a request whose headers never end is cut off");
    // And the database serves as before.
    let mut client = client(&server).await;
    client.put("after", "flood", None).await.unwrap();
    assert_eq!(get(&mut client, "after").await.as_deref(), Some(&b"flood"[..]));
    server.stop().await;
}
