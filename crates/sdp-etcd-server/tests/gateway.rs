//! etcd's JSON gateway: the same requests against real etcd 3.4 and the embedded server give the same answers
//! (HTTP status and body), cluster-specific values aside (cluster and member IDs, raft terms, lease IDs etcd
//! draws, status sizes and versions); etcd3-py, the original ska-sdp-config's client, works against both.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

/// One gateway call: `(path, body)`; a GET when the body is None.
type Step = (&'static str, Option<Value>);

fn steps() -> Vec<Step> {
    let b = |v: &str| base64_of(v);
    vec![
        ("/version", None),
        ("/v3/kv/put", Some(json!({"key": b("foo"), "value": b("bar")}))),
        ("/v3/kv/range", Some(json!({"key": b("foo")}))),
        ("/v3/kv/range", Some(json!({"key": b("missing")}))),
        ("/v3/kv/put", Some(json!({"key": b("foo/a"), "value": b("1"), "prev_kv": true}))),
        ("/v3/kv/put", Some(json!({"key": b("foo/b"), "value": b("2")}))),
        ("/v3/kv/put", Some(json!({"key": b("foo/a"), "value": b("3"), "prev_kv": true}))),
        ("/v3/kv/range", Some(json!({"key": b("foo/"), "range_end": b("foo0"), "sort_order": "DESCEND", "limit": 1}))),
        ("/v3/kv/range", Some(json!({"key": b("foo/"), "range_end": b("foo0"), "count_only": true}))),
        ("/v3/kv/range", Some(json!({"key": b("foo/"), "range_end": b("foo0"), "keys_only": true, "revision": "3"}))),
        ("/v3/kv/range", Some(json!({"key": b("foo"), "revision": 1000}))),
        ("/v3/kv/put", Some(json!({"value": b("no key")}))),
        (
            "/v3/kv/txn",
            Some(json!({
                "compare": [{"key": b("foo"), "result": "EQUAL", "target": "VALUE", "value": b("bar")}],
                "success": [{"request_put": {"key": b("foo"), "value": b("baz"), "prev_kv": true}},
                            {"request_range": {"key": b("foo/a")}}],
                "failure": [{"request_range": {"key": b("foo")}}]
            })),
        ),
        (
            "/v3/kv/txn",
            Some(json!({
                "compare": [{"key": b("foo"), "result": "LESS", "target": "MOD", "mod_revision": "2"}],
                "success": [{"request_delete_range": {"key": b("foo")}}],
                "failure": [{"request_range": {"key": b("foo")}}]
            })),
        ),
        ("/v3/kv/deleterange", Some(json!({"key": b("foo/"), "range_end": b("foo0"), "prev_kv": true}))),
        ("/v3/kv/deleterange", Some(json!({"key": b("nothing")}))),
        ("/v3/lease/grant", Some(json!({"ID": 777, "TTL": 30}))),
        ("/v3/lease/grant", Some(json!({"ID": 777, "TTL": 30}))),
        ("/v3/kv/put", Some(json!({"key": b("leased"), "value": b("x"), "lease": "777"}))),
        ("/v3/kv/range", Some(json!({"key": b("leased")}))),
        ("/v3/lease/timetolive", Some(json!({"ID": "777", "keys": true}))),
        ("/v3/lease/leases", Some(json!({}))),
        ("/v3/lease/keepalive", Some(json!({"ID": 777}))),
        ("/v3/lease/revoke", Some(json!({"ID": 777}))),
        ("/v3/kv/range", Some(json!({"key": b("leased")}))),
        ("/v3/lease/revoke", Some(json!({"ID": 777}))),
        ("/v3/lease/grant", Some(json!({"TTL": 60}))),
        ("/v3/maintenance/status", Some(json!({}))),
        ("/v3beta/kv/range", Some(json!({"key": b("foo")}))),
        ("/v3/kv/range", Some(json!({"key": 12}))),
        ("/v3/nothing/here", Some(json!({}))),
    ]
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// What may differ between two etcd clusters: IDs, terms, drawn lease IDs, sizes and versions.
fn normalise(path: &str, mut v: Value) -> Value {
    fn walk(v: &mut Value, path: &str) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    let drawn_lease = (k == "ID" && path == "/v3/lease/grant" && x != "777") || k == "leader";
                    let sizes = ["dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex", "raftTerm", "version"];
                    if ["cluster_id", "member_id", "raft_term", "etcdserver", "etcdcluster"].contains(&k.as_str())
                        || drawn_lease
                        || (path == "/v3/maintenance/status" && sizes.contains(&k.as_str()))
                    {
                        *x = json!("*");
                    } else if k == "TTL" && path == "/v3/lease/timetolive" {
                        // Seconds left: whatever elapsed.
                        *x = json!("*");
                    } else {
                        walk(x, path);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|x| walk(x, path)),
            _ => {}
        }
    }
    walk(&mut v, path);
    if let Some(m) = v.as_object_mut() {
        // Decoding errors are worded by each server's JSON decoder; the code and the status are what count.
        if m.get("code") == Some(&json!(3)) && !m["message"].as_str().unwrap_or_default().starts_with("etcdserver") {
            m.insert("error".into(), json!("*"));
            m.insert("message".into(), json!("*"));
        }
    }
    v
}

/// Waits until the server's gateway answers `/version` (etcd serves it a moment after it listens).
async fn gateway_ready(port: u16) {
    let http = reqwest::Client::new();
    sdp_testkit::eventually("the JSON gateway answers /version", Duration::from_secs(30), || {
        let http = http.clone();
        async move {
            http.get(format!("http://127.0.0.1:{port}/version")).send().await.is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
}

async fn run(port: u16) -> Vec<(u16, Value)> {
    gateway_ready(port).await;
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for (path, body) in steps() {
        let url = format!("http://127.0.0.1:{port}{path}");
        let resp = match &body {
            None => http.get(&url).send().await,
            Some(b) => http.post(&url).body(b.to_string()).send().await,
        }
        .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        // Streamed calls answer one JSON document per line.
        let docs: Vec<Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| json!({ "text": l }))).collect();
        let body = if docs.len() == 1 { docs.into_iter().next().unwrap() } else { Value::Array(docs) };
        answers.push((status, normalise(path, body)));
    }
    answers
}

/// A watch through the gateway: created, then a put and a delete, with previous values.
async fn watch(port: u16) -> Vec<Value> {
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let resp = http
        .post(url("/v3/watch"))
        .body(json!({"create_request": {"key": base64_of("w"), "prev_kv": true}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut lines = Vec::new();
    let mut buffer = Vec::new();
    let mut wrote = false;
    while lines.len() < 3 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next()).await.expect("a watch line").unwrap();
        buffer.extend_from_slice(&chunk.unwrap());
        while let Some(end) = buffer.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push(normalise("/v3/watch", serde_json::from_slice(&line).unwrap()));
        }
        if !wrote && !lines.is_empty() {
            wrote = true;
            for (path, body) in [
                ("/v3/kv/put", json!({"key": base64_of("w"), "value": base64_of("1")})),
                ("/v3/kv/deleterange", json!({"key": base64_of("w")})),
            ] {
                http.post(url(path)).body(body.to_string()).send().await.unwrap();
            }
        }
    }
    lines
}

#[tokio::test]
async fn the_gateway_answers_as_etcd_does() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let etcd = sdp_testkit::Etcd::start();
    let embedded = sdp_testkit::Embedded::start().await;
    let theirs = run(etcd.port).await;
    let ours = run(embedded.server.addr.port()).await;
    for (((path, body), theirs), ours) in steps().iter().zip(&theirs).zip(&ours) {
        assert_eq!(ours, theirs, "{path} {body:?}: embedded (left) and etcd (right) differ");
    }
    let answered: Vec<u16> = theirs.iter().map(|(status, _)| *status).collect();
    assert_eq!(answered.iter().filter(|&&s| s == 200).count(), 25, "etcd's answers: {answered:?}");
    assert_eq!(theirs[2].1["kvs"][0]["value"], json!(base64_of("bar")), "etcd's range of foo");
    let (theirs, ours) = (watch(etcd.port).await, watch(embedded.server.addr.port()).await);
    assert_eq!(theirs[2]["result"]["events"][0]["type"], json!("DELETE"), "etcd's watch: {theirs:?}");
    assert_eq!(ours, theirs, "watch: embedded (left) and etcd (right) differ");
    embedded.stop().await;
}

#[test]
fn etcd3py_works_against_etcd_and_the_embedded_server() {
    let etcd = sdp_testkit::Etcd::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let embedded = runtime.block_on(sdp_testkit::Embedded::start());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/etcd3py_peer.py");
    for (server, port) in [("etcd", etcd.port), ("embedded", embedded.server.addr.port())] {
        let _ = rustls::crypto::ring::default_provider().install_default();
        runtime.block_on(gateway_ready(port));
        let out = std::process::Command::new(sdp_testkit::etcd3py_python())
            .arg(&script)
            .arg(port.to_string())
            .output()
            .expect("run etcd3-py");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.ends_with("etcd3-py ok\n"),
            "etcd3-py against {server}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    runtime.block_on(embedded.stop());
}
