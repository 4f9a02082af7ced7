//! `sdp-bench`: measures the configuration database through the client library and prints figures.
//!
//! cargo run --release -p sdp-bench -- [--seconds N] [--keys N]
//!
//! Starts its own etcd (Debian's) on free loopback ports unless `--port` names a running server.

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
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let etcd = args.port.is_none().then(sdp_testkit::Etcd::start);
    let port = args.port.or(etcd.as_ref().map(|e| e.port)).unwrap();
    let settings = Settings { port, ..Default::default() };
    let config = Config::connect(&settings).await.expect("connect");
    println!("configuration database at 127.0.0.1:{port}{}", if etcd.is_some() { " (etcd started by the benchmark)" } else { "" });

    for clients in [1, 8] {
        let config = config.with_prefix(&format!("/bench-pb-{clients}")).unwrap();
        let rate = pb_create_rate(&config, clients, Duration::from_secs(args.seconds)).await;
        println!("pb-create transactions/s, {clients} client(s): {rate:.0}");
    }

    let (p50, p99) = watch_latency(&config.with_prefix("/bench-watch").unwrap(), args.watch_events).await;
    println!("watch latency put->notification over {} events: p50 {:.2} ms, p99 {:.2} ms", args.watch_events, ms(p50), ms(p99));

    fill(&config, args.keys).await;
    let sdpcfg = std::env::current_exe().unwrap().with_file_name("sdpcfg");
    if sdpcfg.is_file() {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            let out = std::process::Command::new(&sdpcfg)
                .args(["--prefix", "/bench-list", "ls", "-R", "/"])
                .env("SDP_CONFIG_HOST", "127.0.0.1")
                .env("SDP_CONFIG_PORT", port.to_string())
                .output()
                .expect("run sdpcfg");
            best = best.min(start.elapsed());
            assert!(out.status.success(), "sdpcfg failed: {}", String::from_utf8_lossy(&out.stderr));
            let listed = String::from_utf8_lossy(&out.stdout).matches(", ").count() + 1;
            assert_eq!(listed, args.keys, "sdpcfg listed {listed} keys");
        }
        println!("sdpcfg ls -R / on {} keys: {:.1} ms (best of 3)", args.keys, ms(best));
    } else {
        println!("sdpcfg ls -R /: skipped, build it first (cargo build --release -p sdpcfg)");
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Processing blocks created per second by `clients` concurrent clients, each creation one transaction
/// that picks the next free ID (so clients conflict and retry, as real ones would).
async fn pb_create_rate(config: &Config, clients: usize, duration: Duration) -> f64 {
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let kind = format!("bench{client}");
            let mut done = 0u64;
            while Instant::now() < deadline {
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
                if done % 2000 == 0 {
                    // IDs are 4 digits per type and day: start a new type before they run out.
                    break;
                }
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
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
