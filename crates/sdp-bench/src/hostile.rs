//! `sdp-bench --hostile N`: the requests an attacker on loopback would send to `sdp up`, one after the other,
//! with N idle connections and N/100 half-sent requests as the flood (bounded: 60 s at most). Prints what
//! each probe got, `sdp up`'s resident and peak memory after it, and whether it still answers; then restarts
//! it on the same data folder.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};

use crate::processes::{sibling, up_command};

/// `VmRSS` and `VmHWM` (peak) of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    (crate::processes::status_mib(&pid.to_string(), "VmRSS:"), crate::processes::status_mib(&pid.to_string(), "VmHWM:"))
}

struct Probe {
    http: reqwest::Client,
    base: String,
}

impl Probe {
    /// A gateway call, as curl would make it: the HTTP status (0: no answer) and the start of the body.
    async fn post(&self, path: &str, body: &Value) -> String {
        match self.http.post(format!("{}{path}", self.base)).json(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let text: String = text.chars().take(90).collect();
                format!("{status} {text}")
            }
            Err(e) => format!("no answer: {e}"),
        }
    }

    async fn answers(&self) -> bool {
        self.post("/v3/kv/range", &json!({"key": BASE64.encode("probe")})).await.starts_with("200")
    }
}

pub async fn hostile_probes(flood: usize) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    sdp_etcd_server::raise_open_files_limit();
    let data = tempfile::tempdir().expect("temp dir");
    let (port, lmc_port) = (sdp_testkit::free_port(), sdp_testkit::free_port());
    let start_up = || {
        let child = up_command(data.path(), port, lmc_port)
            .arg("--charts-dir")
            .arg(sdp_testkit::charts_dir())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", sibling("sdp").display()));
        sdp_testkit::wait_for_port(port, Duration::from_secs(30), "sdp up");
        child
    };
    let mut up = sdp_testkit::KillOnDrop(start_up());
    let pid = up.0.id();
    let probe = Probe { http: reqwest::Client::new(), base: format!("http://127.0.0.1:{port}") };
    let (idle, _) = memory_mib(pid);
    println!("sdp up on 127.0.0.1:{port}, pid {pid}, {idle:.0} MiB resident at rest");
    println!("{:<46} {:<70} {:>8} {:>8}  up", "probe", "answer", "RSS MiB", "peak");
    let report = |name: &str, answer: &str| {
        let (rss, peak) = memory_mib(pid);
        let alive = std::fs::metadata(format!("/proc/{pid}")).is_ok();
        println!(
            "{name:<46} {:<70} {rss:>8.0} {peak:>8.0}  {}",
            answer.replace('\n', " "),
            if alive { "yes" } else { "NO" }
        );
    };

    let answer = probe.post("/v3/lease/grant", &json!({"TTL": "9223372036854775807"})).await;
    report("lease grant, TTL 2^63-1", &answer);

    let big = BASE64.encode(vec![b'x'; 1_400_000]);
    let answer = probe.post("/v3/kv/put", &json!({"key": BASE64.encode("big"), "value": big})).await;
    report("put a 1.4 MB value", &answer);
    let ranges = |n: usize| (0..n).map(|_| json!({"request_range": {"key": BASE64.encode("big")}})).collect::<Vec<_>>();
    let nested = |levels: usize, each: usize| json!({"success": (0..levels).map(|_| json!({"request_txn": {"success": ranges(each)}})).collect::<Vec<_>>()});
    report("txn: 10 nested txns x 10 ranges of it", &probe.post("/v3/kv/txn", &nested(10, 10)).await);
    report("txn: 128 nested txns x 128 ranges of it", &probe.post("/v3/kv/txn", &nested(128, 128)).await);

    let mut refused = 0;
    let mut first_refusal = String::new();
    for i in 0..200u32 {
        let value = BASE64.encode(vec![(i % 250) as u8; 1_400_000]);
        let answer = probe.post("/v3/kv/put", &json!({"key": BASE64.encode("big"), "value": value})).await;
        if !answer.starts_with("200") {
            refused += 1;
            if first_refusal.is_empty() {
                first_refusal = answer;
            }
        }
    }
    let journal = std::fs::metadata(data.path().join("journal.log")).map_or(0, |m| m.len());
    report(
        "200 overwrites of the 1.4 MB value",
        &format!("{refused} refused {first_refusal}; journal {:.0} MiB", journal as f64 / 1048576.0),
    );

    let pwned = data.path().join("pwned.txt");
    let entry = json!({"deploy_id": "x", "type": "process-direct",
        "args": {"command": ["/bin/sh", "-c", format!("id > {}", pwned.display())]}});
    let answer = probe
        .post("/v3/kv/put", &json!({"key": BASE64.encode("2/deploy/x"), "value": BASE64.encode(entry.to_string())}))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    report("raw process-direct entry running /bin/sh", &format!("{answer}; command ran: {}", pwned.exists()));

    let started = Instant::now();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut held = Vec::new();
    let mut failed = 0;
    while held.len() + failed < flood && started.elapsed() < Duration::from_secs(30) {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => held.push(stream),
            Err(_) => failed += 1,
        }
    }
    for stream in held.iter_mut().take(flood / 100) {
        use tokio::io::AsyncWriteExt;
        let _ = stream.write_all(b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\n").await;
    }
    // A client connected before the flood (as the daemons are) and one that connects during it.
    let connected = probe.answers().await;
    let fresh = Probe { http: reqwest::Client::new(), base: probe.base.clone() };
    let new_client = tokio::time::timeout(Duration::from_secs(5), fresh.answers()).await.unwrap_or(false);
    report(
        &format!("flood: {} idle + {} half-sent connections", held.len(), flood / 100),
        &format!("{failed} connects failed; answered: connected client {connected}, new client {new_client}"),
    );
    drop(held);
    let waited = Instant::now();
    let fresh = Probe { http: reqwest::Client::new(), base: probe.base.clone() };
    while !fresh.answers().await && waited.elapsed() < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report("after the flood", &format!("a new client answers after {:.1} s", waited.elapsed().as_secs_f64()));

    // SIGTERM, as an operator stops it; then the same data folder must start.
    // SAFETY: kill sends a signal to the child this function started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = up.0.wait();
    let restarted = sdp_testkit::KillOnDrop(start_up());
    let answers = probe.answers().await;
    println!("restart on the same data folder: up {answers} (pid {})", restarted.0.id());
}
