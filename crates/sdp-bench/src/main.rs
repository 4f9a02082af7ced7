//! `sdp-bench`: measures the configuration database and prints figures, real etcd and the embedded server
//! side by side.
//!
//! cargo build --release -p sdp -p sdpcfg && cargo run --release -p sdp-bench -- [--seconds N] [--keys N]
//!
//! Starts its own etcd (Debian's) and embedded server on free loopback ports, unless `--port` names a
//! running server to measure alone.

mod hostile;
mod operator;
mod processes;
mod scripts;

use processes::{rss_mib, sibling, up_command};

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use sdp_config::{Config, ProcessingBlock, Settings};

#[derive(Parser)]
struct Args {
    /// Measure a running server on 127.0.0.1 at this port instead of starting etcd.
    #[arg(long)]
    port: Option<u16>,
    /// Duration of each throughput measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Keys written for the listing benchmark.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Watch notifications measured.
    #[arg(long, default_value_t = 500)]
    watch_events: usize,
    /// Only these database figures (comma-separated): put, txn, pb, watch, ls.
    #[arg(long, value_delimiter = ',', value_parser = ["put", "txn", "pb", "watch", "ls"])]
    only: Vec<String>,
    /// Instead of the database figures: create this many deployment entries against `sdp up` (render-only
    /// Helm deployer) and measure the time until every state is written, and `sdp up`'s memory.
    #[arg(long)]
    deployer: Option<usize>,
    /// Instead of the database figures: latency from a pod watch event (on kube-rs's mocked API service) to
    /// the deployment state written, over this many events.
    #[arg(long)]
    pod_events: Option<usize>,
    /// Instead of the database figures: reconcile throughput of the Tango operator for this many DeviceServers
    /// on an in-memory Kubernetes API, and memory idle and under load.
    #[arg(long)]
    operator: Option<usize>,
    /// Instead of the database figures: processing scripts on `sdp up`, latency from `sdpcfg process` to the
    /// owner entry, this many blocks at once, memory per script, beside a Python etcd3-py claimer.
    #[arg(long)]
    scripts: Option<usize>,
    /// Instead of the database figures: an attacker's requests against `sdp up` (huge lease TTL, nested
    /// transactions, overwrites of a big value, a command in a deployment entry, this many idle connections),
    /// with `sdp up`'s memory and whether it stays up after each.
    #[arg(long)]
    hostile: Option<usize>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Some(entries) = args.deployer {
        return deployer_bench(entries).await;
    }
    if let Some(events) = args.pod_events {
        return pod_event_bench(events).await;
    }
    if let Some(servers) = args.operator {
        return operator::operator_bench(servers).await;
    }
    if let Some(n) = args.scripts {
        return scripts::scripts_bench(n).await;
    }
    if let Some(flood) = args.hostile {
        return hostile::hostile_probes(flood).await;
    }
    let mut targets: Vec<(String, u16)> = Vec::new();
    let _etcd;
    let _embedded;
    let _data = tempfile::tempdir().expect("temp dir");
    match args.port {
        Some(port) => targets.push((format!("server at 127.0.0.1:{port}"), port)),
        None => {
            _etcd = sdp_testkit::Etcd::start();
            targets.push((format!("etcd {}", etcd_version()), _etcd.port));
            // The embedded server runs as its own process (`sdp up`), as etcd does, so neither shares the
            // benchmark's CPU time.
            let port = sdp_testkit::free_port();
            let sdp = sibling("sdp");
            _embedded = sdp_testkit::KillOnDrop(
                std::process::Command::new(&sdp)
                    .args([
                        "up",
                        "--config-listen",
                        &format!("127.0.0.1:{port}"),
                        "--staging-listen",
                        &format!("127.0.0.1:{}", sdp_testkit::free_port()),
                        "--data-dir",
                    ])
                    .arg(_data.path())
                    .env_remove("SDP_CONFIG_HOST")
                    .env("RUST_LOG", "warn")
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {}: {e}", sdp.display())),
            );
            sdp_testkit::wait_for_port(port, Duration::from_secs(20), "sdp up");
            targets.push(("embedded (sdp up)".to_string(), port));
        }
    }
    println!(
        "each server on 127.0.0.1 with its data on the same disk, fsync on; {} s per throughput figure",
        args.seconds
    );
    let mut table: Vec<(String, Vec<String>)> = Vec::new();
    for (name, port) in &targets {
        eprintln!("measuring {name} ...");
        let figures = measure(*port, &args).await;
        for (i, (row, value)) in figures.into_iter().enumerate() {
            if table.len() <= i {
                table.push((row, Vec::new()));
            }
            table[i].1.push(value);
        }
    }
    let width = table.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
    print!("{:width$}", "");
    for (name, _) in &targets {
        print!("  {name:>22}");
    }
    println!();
    for (row, values) in table {
        print!("{row:width$}");
        for v in values {
            print!("  {v:>22}");
        }
        println!();
    }
}

fn etcd_version() -> String {
    std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.lines().next().map(|l| l.trim_start_matches("etcd Version: ").to_string()))
        .unwrap_or_default()
}

/// Every figure for one server, as (row name, value) pairs.
async fn measure(port: u16, args: &Args) -> Vec<(String, String)> {
    let settings = Settings { port, ..Default::default() };
    let config = Config::connect(&settings).await.expect("connect");
    let seconds = Duration::from_secs(args.seconds);
    let wanted = |figure: &str| args.only.is_empty() || args.only.iter().any(|o| o == figure);
    let mut rows = Vec::new();
    for (figure, txn) in [("put", false), ("txn", true)] {
        if !wanted(figure) {
            continue;
        }
        for clients in [1, 8] {
            let (rate, p99) = raw_rate(port, clients, seconds, txn).await;
            rows.push((format!("{figure}/s, {clients} client(s) (p99 ms)"), format!("{rate:.0} ({:.2})", ms(p99))));
        }
    }
    if wanted("pb") {
        for clients in [1, 8] {
            let config = config.with_prefix(&format!("/bench-pb-{clients}")).unwrap();
            let (rate, created) = pb_create_rate(&config, clients, seconds).await;
            rows.push((format!("pb-create txn/s, {clients} client(s) (blocks)"), format!("{rate:.0} ({created})")));
        }
    }
    if wanted("watch") {
        let (p50, p99) = watch_latency(&config.with_prefix("/bench-watch").unwrap(), args.watch_events).await;
        rows.push((
            format!("watch latency p50/p99 ms ({} events)", args.watch_events),
            format!("{:.2} / {:.2}", ms(p50), ms(p99)),
        ));
    }
    if !wanted("ls") {
        return rows;
    }
    fill(&config, args.keys).await;
    let keys = best_sdpcfg_listing(port, "ls", |out| {
        assert_eq!(out.matches(", ").count() + 1, args.keys, "keys sdpcfg ls -R listed")
    });
    rows.push((format!("sdpcfg ls -R / on {} keys, ms (best of 3)", args.keys), format!("{:.1}", ms(keys))));
    let values = best_sdpcfg_listing(port, "ls values", |out| {
        assert_eq!(out.lines().filter(|l| l.contains(" = ")).count(), args.keys, "keys sdpcfg ls values -R listed")
    });
    rows.push((format!("sdpcfg ls values -R / on {} keys, ms (best of 3)", args.keys), format!("{:.1}", ms(values))));
    rows
}

/// The best of 3 runs of `sdpcfg <command> -R /` over the filled keys; `check` looks at each output.
fn best_sdpcfg_listing(port: u16, command: &str, check: impl Fn(&str)) -> Duration {
    let sdpcfg = sibling("sdpcfg");
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let out = std::process::Command::new(&sdpcfg)
            .args(["--prefix", "/bench-list"])
            .args(command.split(' '))
            .args(["-R", "/"])
            .env("SDP_CONFIG_HOST", "127.0.0.1")
            .env("SDP_CONFIG_PORT", port.to_string())
            .output()
            .expect("run sdpcfg");
        best = best.min(start.elapsed());
        assert!(out.status.success(), "sdpcfg failed: {}", String::from_utf8_lossy(&out.stderr));
        check(&String::from_utf8_lossy(&out.stdout));
    }
    best
}

/// Plain puts (or one-compare transactions on the client's own key) per second, and their p99 latency.
async fn raw_rate(port: u16, clients: usize, duration: Duration, txn: bool) -> (f64, Duration) {
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        tasks.push(tokio::spawn(async move {
            let mut etcd = etcd_client::Client::connect([format!("127.0.0.1:{port}")], None).await.expect("connect");
            let key = format!("raw/{}/{clients}/{client}", if txn { "txn" } else { "put" });
            let mut latencies = Vec::new();
            let mut revision = 0;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                if txn {
                    let t = etcd_client::Txn::new()
                        .when([etcd_client::Compare::mod_revision(
                            key.as_str(),
                            etcd_client::CompareOp::Equal,
                            revision,
                        )])
                        .and_then([etcd_client::TxnOp::put(key.as_str(), "value", None)]);
                    let resp = etcd.txn(t).await.expect("txn");
                    assert!(resp.succeeded(), "uncontended transaction failed");
                    revision = resp.header().unwrap().revision();
                } else {
                    etcd.put(key.as_str(), "value", None).await.expect("put");
                }
                latencies.push(t0.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    (rate, all[(all.len() * 99) / 100])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Processing blocks created per second by `clients` concurrent clients, each creation one transaction
/// that picks the next free ID (so clients conflict and retry, as real ones would), and how many were created.
async fn pb_create_rate(config: &Config, clients: usize, duration: Duration) -> (f64, u64) {
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                // IDs are 4 digits per type and day: a new type every 2,000 blocks.
                let kind = format!("bench{client}n{}", done / 2000);
                config
                    .txn(|t| {
                        let kind = kind.clone();
                        async move {
                            let id = t.new_processing_block_id(&kind).await?;
                            t.create_processing_block(&ProcessingBlock::new(&id, format!("{kind}:w:1").parse()?)).await
                        }
                    })
                    .await
                    .expect("pb create");
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    (total as f64 / start.elapsed().as_secs_f64(), total)
}

async fn watch_latency(config: &Config, events: usize) -> (Duration, Duration) {
    config.txn(|t| async move { t.create("/w", "0", None).await }).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let watch_config = config.clone();
    let watcher = tokio::spawn(async move {
        let mut watcher = watch_config.watcher();
        loop {
            let value = watcher.txn(|t| async move { t.get("/w").await }).await.unwrap();
            let n: u64 = value.unwrap().parse().unwrap();
            if tx.send((n, Instant::now())).is_err() {
                break;
            }
        }
    });
    rx.recv().await.unwrap();
    let sent = Arc::new(std::sync::Mutex::new(Vec::with_capacity(events)));
    let mut latencies = Vec::with_capacity(events);
    for i in 1..=events as u64 {
        let t0 = Instant::now();
        sent.lock().unwrap().push(t0);
        config.txn(|t| async move { t.update("/w", &i.to_string()).await }).await.unwrap();
        // Wait for this write's notification before the next, so each latency is one put's.
        loop {
            let (n, at) = rx.recv().await.unwrap();
            if n == i {
                latencies.push(at - t0);
                break;
            }
        }
    }
    watcher.abort();
    latencies.sort();
    (latencies[latencies.len() / 2], latencies[(latencies.len() * 99) / 100])
}

async fn fill(config: &Config, keys: usize) {
    let config = config.with_prefix("/bench-list").unwrap();
    // etcd allows 128 operations per transaction.
    for chunk_start in (0..keys).step_by(100) {
        let end = (chunk_start + 100).min(keys);
        config
            .txn(|t| async move {
                for i in chunk_start..end {
                    t.create(&format!("/pb/pb-{:03}/k-{i:05}", i % 500), "{\"x\": 1}", None).await?;
                }
                Ok(())
            })
            .await
            .expect("fill");
    }
}

async fn deployer_bench(entries: usize) {
    let data = tempfile::tempdir().expect("temp dir");
    let (port, lmc_port) = (sdp_testkit::free_port(), sdp_testkit::free_port());
    let mut up = up_command(data.path(), port, lmc_port);
    let child = up.arg("--charts-dir").arg(sdp_testkit::charts_dir()).spawn().expect("start sdp up");
    let pid = child.id();
    let _up = sdp_testkit::KillOnDrop(child);
    sdp_testkit::wait_for_port(port, Duration::from_secs(20), "sdp up");
    let config = Config::connect(&Settings { port, ..Default::default() }).await.expect("connect");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mib(pid);
    let peak = std::sync::Arc::new(std::sync::Mutex::new(idle));
    let sampler = {
        let peak = std::sync::Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                let now = rss_mib(pid);
                {
                    let mut p = peak.lock().unwrap();
                    *p = p.max(now);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let start = Instant::now();
    for chunk in (0..entries).collect::<Vec<_>>().chunks(50) {
        let ids: Vec<usize> = chunk.to_vec();
        config
            .txn(|t| {
                let ids = ids.clone();
                async move {
                    for i in ids {
                        let id = format!("bench-{i:05}");
                        let values = serde_json::Map::from_iter([
                            ("pb_id".to_string(), id.clone().into()),
                            ("wf_image".to_string(), "example/bench:1".into()),
                        ]);
                        let args = sdp_config::DeploymentArgs::Helm { chart: "workflow".into(), values };
                        t.create_deployment(&args.entry(&id)).await?;
                    }
                    Ok(())
                }
            })
            .await
            .expect("create entries");
    }
    let created = start.elapsed();
    let rendered = data.path().join("rendered");
    loop {
        let done = std::fs::read_dir(&rendered).map(|d| d.count()).unwrap_or(0);
        if done >= entries {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_rendered = start.elapsed();
    // Every state entry written.
    loop {
        let states = config
            .txn(|t| async move { t.list_keys("/deploy/", 1).await })
            .await
            .expect("list")
            .into_iter()
            .filter(|k| k.ends_with("/state"))
            .count();
        if states >= entries {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_states = start.elapsed();
    sampler.abort();
    println!(
        "deployer, render-only with helm {}, {entries} entries created in {:.1} s",
        helm_version(),
        created.as_secs_f64()
    );
    println!(
        "  all rendered after {:.1} s, all states written after {:.1} s ({:.1} entries/s)",
        all_rendered.as_secs_f64(),
        all_states.as_secs_f64(),
        entries as f64 / all_states.as_secs_f64()
    );
    let peak = *peak.lock().unwrap();
    println!("  sdp up RSS: idle {idle:.1} MiB, peak under load {peak:.1} MiB, after {:.1} MiB", rss_mib(pid));
}

fn helm_version() -> String {
    std::process::Command::new(sdp_testkit::helm())
        .args(["version", "--short"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Pod watch event → `/deploy/<id>/state` written, through the pod monitor, the API server mocked in-process
/// (each event answers one watch request, as a watch that delivers one event and ends).
async fn pod_event_bench(events: usize) {
    use http::{Request, Response};
    use kube::client::Body;
    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let d =
        sdp_config::Deployment { deploy_id: "d".into(), kind: "helm".into(), args: serde_json::json!({"chart": "c"}) };
    config
        .txn(|t| {
            let d = d.clone();
            async move { t.create_deployment(&d).await }
        })
        .await
        .expect("entry");
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "sdp");
    let monitor = tokio::spawn(sdp_helmdeploy::pods::monitor(client, "sdp".into(), config.clone(), Default::default()));
    let pod = |phase: &str, ready: bool, rv: usize| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "d-0", "namespace": "sdp", "resourceVersion": rv.to_string(), "labels": {"app.kubernetes.io/instance": "d"}},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        })
    };
    let (_, send) = handle.next_request().await.expect("list");
    let list =
        serde_json::json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": []});
    send.send_response(Response::builder().body(Body::from(list.to_string().into_bytes())).unwrap());
    let mut watcher = config.watcher();
    let read = |t: sdp_config::Txn| async move { t.get_deployment_state("d").await };
    watcher.txn(read).await.expect("read state");
    let mut latencies = Vec::with_capacity(events);
    for i in 0..events {
        let running = i % 2 == 0;
        let event = serde_json::json!({"type": "MODIFIED", "object": pod(if running { "Running" } else { "Pending" }, running, i + 2)});
        let (_, send) = handle.next_request().await.expect("watch");
        let t0 = Instant::now();
        send.send_response(Response::builder().body(Body::from(format!("{event}\n").into_bytes())).unwrap());
        let expected = if running { "RUNNING" } else { "PENDING" };
        loop {
            let state = watcher.txn(read).await.expect("read state");
            if state.is_some_and(|s| s["pods"]["d-0"]["status"] == expected) {
                break;
            }
        }
        latencies.push(t0.elapsed());
    }
    monitor.abort();
    latencies.sort();
    let p = |q: usize| ms(latencies[(latencies.len() * q / 100).min(latencies.len() - 1)]);
    println!("pod event -> deployment state written, {events} events (embedded configuration database): p50 {:.2} ms, p99 {:.2} ms", p(50), p(99));
    server.stop().await;
}
