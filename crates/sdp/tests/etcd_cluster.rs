//! `sdp up` on a three-member etcd cluster (Debian's etcd, SDP_CONFIG_HOST listing every member) while the
//! leader member is killed and restarted: the platform carries on through the election, no acknowledged write
//! is lost, and no script runs twice.

use std::time::{Duration, Instant};

use serde_json::json;

use sdp_config::{Config, Settings};
use sdp_testkit::{eventually, free_port, EtcdCluster, KillOnDrop};

mod support;
use support::{up_command, wait_ready};

const LIMIT: Duration = Duration::from_secs(30);

/// Creates a batch block that finishes after a second, retrying while the cluster elects; its ID once
/// acknowledged. (A create lost in flight may have made a block nobody acknowledged: the checks below count
/// every block there is.)
async fn create_acknowledged(config: &Config) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        let created = config
            .txn(|t| async move {
                t.create_new_processing_block("batch:test_batch:0.1.0".parse()?, json!({"duration": 1})).await
            })
            .await;
        match created {
            Ok(pb_id) => return pb_id,
            Err(e) => assert!(Instant::now() < deadline, "no block acknowledged for {LIMIT:?}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn blocks(config: &Config) -> Vec<String> {
    config.txn(|t| async move { t.list_processing_blocks().await }).await.unwrap()
}

async fn state(config: &Config, pb_id: &str) -> String {
    let state = config.txn(|t| async move { t.get_processing_block_state(pb_id).await }).await.ok().flatten();
    state.and_then(|s| s["state"].as_str().map(str::to_string)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_carries_on_while_the_leader_member_dies_and_comes_back() {
    let mut cluster = EtcdCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let (embedded_port, lmc_port) = (free_port(), free_port());
    // The leader listed first: every client of the platform works through the member that will die.
    let leader = cluster.leader().await;
    let host = cluster.host_from(leader);
    let up = up_command(embedded_port, lmc_port, dir.path()).env("SDP_CONFIG_HOST", &host).spawn().unwrap();
    let _up = KillOnDrop(up);
    wait_ready(lmc_port, "sdp up's LMC surface");
    assert!(std::net::TcpStream::connect(("127.0.0.1", embedded_port)).is_err(), "an embedded database was started");
    let config = Config::connect_checked(&Settings { host, ..Default::default() }).await.unwrap();

    let mut acknowledged = vec![create_acknowledged(&config).await, create_acknowledged(&config).await];
    let killed = Instant::now();
    cluster.kill(leader);
    let during = create_acknowledged(&config).await;
    let write_pause = killed.elapsed();
    let workflow = format!("{during}-workflow");
    eventually("the controller deploys the block created during the election", LIMIT, || async {
        sdp_testkit::deployment_state(&config, &workflow).await.is_some()
    })
    .await;
    let platform_pause = killed.elapsed();
    println!(
        "leader member {leader} killed: a block was acknowledged {write_pause:?} later, and its script deployed \
         {platform_pause:?} later"
    );
    acknowledged.push(during);
    acknowledged.push(create_acknowledged(&config).await);
    cluster.restart(leader);
    cluster.leader().await;
    acknowledged.push(create_acknowledged(&config).await);

    // Every block there is (acknowledged or not) runs its script to the end.
    let all = blocks(&config).await;
    for pb_id in &acknowledged {
        assert!(all.contains(pb_id), "acknowledged block {pb_id} lost: {all:?}");
    }
    for pb_id in &all {
        eventually(&format!("{pb_id} finished"), LIMIT, || async { state(&config, pb_id).await == "finished" }).await;
    }
    // Each once: one script deployment per block, and one run of its script.
    let deployments = config.txn(|t| async move { t.list_deployments().await }).await.unwrap();
    let mut expected: Vec<String> = all.iter().map(|pb_id| format!("{pb_id}-workflow")).collect();
    expected.sort();
    assert_eq!(deployments, expected);
    for pb_id in &all {
        let log = std::fs::read_to_string(dir.path().join(format!("processes/{pb_id}-workflow.log"))).unwrap();
        assert_eq!(log.matches("script done").count(), 1, "{pb_id}'s script ran once: {log}");
    }
    // Every member holds every block.
    for member in &cluster.members {
        let one = Settings { host: format!("127.0.0.1:{}", member.port), ..Default::default() };
        assert_eq!(blocks(&Config::connect(&one).await.unwrap()).await, all, "member {}", member.name);
    }
}
