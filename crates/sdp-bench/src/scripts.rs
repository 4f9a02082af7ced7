//! Processing scripts under `sdp up`: how soon a script owns its block, how many start at once, and what each
//! costs in memory, beside the original's way (a Python process claiming through etcd3-py).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sdp_config::{Config, Settings};
use sdp_testkit::KillOnDrop;

use crate::processes::{sibling, up_command};

/// `(Rss, Pss)` of a process in MiB, from `/proc/<pid>/smaps_rollup`: PSS shares the pages of a program
/// among the processes running it.
fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<f64>().ok().map(|kb| kb / 1024.0)
    };
    Some((field("Rss:")?, field("Pss:")?))
}

async fn owner_pid(config: &Config, pb_id: &str) -> Option<u32> {
    config.txn(|t| async move { t.get_processing_block_owner(pb_id).await }).await.ok().flatten().map(|o| o.pid)
}

/// Polls until `pb_id` has an owner; returns its PID.
async fn wait_owner(config: &Config, pb_id: &str) -> u32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = owner_pid(config, pb_id).await {
            return pid;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no owner for {pb_id} after 60 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Deletes every processing block, one per transaction (etcd takes at most 128 operations in one).
async fn delete_blocks(config: &Config) {
    let ids = config.txn(|t| async move { t.list_processing_blocks().await }).await.expect("list the blocks");
    for id in &ids {
        config.txn(|t| async move { t.delete_processing_block(id).await }).await.expect("delete a block");
    }
}

fn percentiles(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!("{:.1} / {:.1}", ms[ms.len() / 2], ms[ms.len() - 1])
}

fn mean_memory(pids: &[u32]) -> String {
    let samples: Vec<(f64, f64)> = pids.iter().filter_map(|p| memory_mib(*p)).collect();
    let n = samples.len().max(1) as f64;
    let (rss, pss) = samples.iter().fold((0.0, 0.0), |(r, p), (sr, sp)| (r + sr, p + sp));
    format!("{:.1} / {:.1}", rss / n, pss / n)
}

/// A claimer started directly: our script or the Python peer.
fn spawn(program: &Path, args: &[&str], port: u16) -> Child {
    Command::new(program)
        .args(args)
        .env("SDP_CONFIG_HOST", "127.0.0.1")
        .env("SDP_CONFIG_PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()))
}

/// Start → owner entry for `rounds` processes one after the other, then `n` at once: time until all own their
/// block and memory per process. `claimer(pb_id)` starts one.
async fn measure_claimers(
    config: &Config,
    rounds: usize,
    n: usize,
    blocks: bool,
    claimer: impl Fn(&str) -> Child,
) -> [String; 3] {
    let create = |pb_id: String| async move {
        if blocks {
            let pb = sdp_config::ProcessingBlock::new(&pb_id, "batch:test_batch:0.1.0".parse().unwrap());
            config
                .txn(|t| {
                    let pb = &pb;
                    async move { t.create_processing_block(pb).await }
                })
                .await
                .expect("create a block");
        }
        pb_id
    };
    let mut latencies = Vec::new();
    for round in 0..rounds {
        let pb_id = create(format!("bench-one-{round}")).await;
        let start = Instant::now();
        let _child = KillOnDrop(claimer(&pb_id));
        wait_owner(config, &pb_id).await;
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(create(format!("bench-many-{i}")).await);
    }
    let start = Instant::now();
    let children: Vec<KillOnDrop> = ids.iter().map(|id| KillOnDrop(claimer(id))).collect();
    let mut pids = Vec::new();
    for id in &ids {
        pids.push(wait_owner(config, id).await);
    }
    let all = start.elapsed();
    // Settled: memory after the start-up work.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let memory = mean_memory(&pids);
    drop(children);
    delete_blocks(config).await;
    [percentiles(latencies), format!("{:.2} s", all.as_secs_f64()), memory]
}

pub async fn scripts_bench(n: usize) {
    let data = tempfile::tempdir().expect("temp dir");
    let port = sdp_testkit::free_port();
    let sdp = sibling("sdp");
    let sdpcfg = sibling("sdpcfg");
    let _up = KillOnDrop(up_command(data.path(), port, sdp_testkit::free_port()).spawn().expect("start sdp up"));
    sdp_testkit::wait_for_port(port, Duration::from_secs(20), "sdp up");
    let config = Config::connect(&Settings { port, ..Default::default() }).await.expect("connect");
    const ROUNDS: usize = 20;

    // The whole path: `sdpcfg process` → processing controller → process deployer → `sdp script` → owner.
    eprintln!("sdpcfg process → owner entry, {ROUNDS} rounds ...");
    let mut through_platform = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let out = Command::new(&sdpcfg)
            .args(["process", "realtime:testdask:0.1.0"])
            .env("SDP_CONFIG_HOST", "127.0.0.1")
            .env("SDP_CONFIG_PORT", port.to_string())
            .output()
            .expect("run sdpcfg");
        let text = String::from_utf8_lossy(&out.stdout);
        let pb_id =
            text.trim().strip_prefix("OK, pb_id = ").unwrap_or_else(|| panic!("sdpcfg said {text}")).to_string();
        let pid = wait_owner(&config, &pb_id).await;
        through_platform.push(start.elapsed().as_secs_f64() * 1000.0);
        delete_blocks(&config).await;
        while Path::new(&format!("/proc/{pid}")).exists() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // All at once, through the platform.
    eprintln!("{n} processing blocks at once through the platform ...");
    let start = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = config
            .txn(|t| async move {
                t.create_new_processing_block("realtime:testdask:0.1.0".parse()?, serde_json::json!({})).await
            })
            .await
            .expect("create a block");
        ids.push(id);
    }
    let mut pids = Vec::new();
    for id in &ids {
        pids.push(wait_owner(&config, id).await);
    }
    let all_claimed = start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let claimed = {
        let mut n = 0;
        for id in &ids {
            n += usize::from(owner_pid(&config, id).await.is_some());
        }
        n
    };
    let platform_memory = mean_memory(&pids);
    delete_blocks(&config).await;
    while pids.iter().any(|p| Path::new(&format!("/proc/{p}")).exists()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    eprintln!("the script alone and the Python peer, {ROUNDS} rounds and {n} at once ...");
    let ours =
        measure_claimers(&config, ROUNDS, n, true, |pb_id| spawn(&sdp, &["script", "test_batch", pb_id], port)).await;
    let peer_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/claim_peer.py");
    let python = sdp_testkit::etcd3py_python();
    let port_arg = port.to_string();
    let peer = measure_claimers(&config, ROUNDS, n, false, |pb_id| {
        spawn(&python, &[peer_script.to_str().unwrap(), &port_arg, pb_id], port)
    })
    .await;

    println!("processing scripts on `sdp up` (embedded configuration database, no cluster), this machine");
    println!(
        "  sdpcfg process -> owner entry (controller, process deployer, script), p50 / max: {} ms",
        percentiles(through_platform)
    );
    println!(
        "  {n} blocks at once: {claimed} of {n} claimed, all after {:.2} s; memory per script RSS / PSS {} MiB",
        all_claimed.as_secs_f64(),
        platform_memory
    );
    println!();
    let rows = [
        "process start -> owner entry, p50 / max (ms)".to_string(),
        format!("{n} started at once: all own their block after"),
        "memory per process, RSS / PSS (MiB)".to_string(),
    ];
    println!("{:48}  {:>22}  {:>22}", "claiming a block", "sdp script (Rust)", "Python + etcd3-py");
    for (i, row) in rows.iter().enumerate() {
        println!("{row:48}  {:>22}  {:>22}", ours[i], peer[i]);
    }
}
