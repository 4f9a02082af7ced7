//! The client against a real three-member etcd cluster (Debian's etcd): it takes every member's address, as
//! etcdctl's `--endpoints` does, and carries on while members die and come back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sdp_config::{Config, Error, Settings};
use sdp_testkit::EtcdCluster;

/// Creates `/acked/<i>`, retrying until the cluster answers; true once it exists. A create that failed
/// in flight may have been applied: the retry then finds the key, which counts as acknowledged.
async fn create_until_acknowledged(config: &Config, i: usize) {
    let path = format!("/acked/{i:05}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match config
            .txn(|t| {
                let path = path.clone();
                async move { t.create(&path, "v", None).await }
            })
            .await
        {
            Ok(()) | Err(Error::Collision(_)) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "no write acknowledged for 30 s: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Writes `count` keys from `first` on; returns the longest time between two acknowledged writes.
async fn write(config: &Config, first: usize, count: usize) -> Duration {
    let mut longest = Duration::ZERO;
    let mut last = Instant::now();
    for i in first..first + count {
        create_until_acknowledged(config, i).await;
        longest = longest.max(last.elapsed());
        last = Instant::now();
    }
    longest
}

async fn keys_on(settings: &Settings) -> Vec<String> {
    let config = Config::connect(settings).await.unwrap();
    config.txn(|t| async move { t.list_keys("/acked", 1).await }).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_while_the_leader_dies_and_every_acknowledged_write_is_on_every_member() {
    let mut cluster = EtcdCluster::start(3).await;
    let config = Config::connect_checked(&cluster.settings()).await.unwrap();
    // A watcher re-reads the keys each time they change: its watches must follow members dying.
    let seen = Arc::new(AtomicUsize::new(0));
    let watching = tokio::spawn({
        let (config, seen) = (config.clone(), Arc::clone(&seen));
        async move {
            let mut watcher = config.watcher();
            loop {
                if let Ok(keys) = watcher.txn(|t| async move { t.list_keys("/acked", 1).await }).await {
                    seen.store(keys.len(), Ordering::Relaxed);
                }
            }
        }
    });
    let mut written = 0;
    write(&config, written, 50).await;
    written += 50;

    for round in 0..2 {
        let leader = cluster.leader().await;
        cluster.kill(leader);
        let pause = write(&config, written, 100).await;
        written += 100;
        println!("round {round}: member {leader} (the leader) killed; the longest pause between two writes: {pause:?}");
        cluster.restart(leader);
        cluster.leader().await;
        write(&config, written, 20).await;
        written += 20;
    }

    sdp_testkit::eventually("the watcher sees every write", Duration::from_secs(10), || async {
        seen.load(Ordering::Relaxed) == written
    })
    .await;
    sdp_testkit::stop_task(watching).await;
    let expected: Vec<String> = (0..written).map(|i| format!("/acked/{i:05}")).collect();
    for member in &cluster.members {
        let one = Settings { host: format!("127.0.0.1:{}", member.port), ..Default::default() };
        assert_eq!(keys_on(&one).await, expected, "member {}", member.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_member_that_is_down_is_passed_over() {
    let cluster = EtcdCluster::start(3).await;
    let dead = sdp_testkit::free_port();
    let settings = Settings { host: format!("127.0.0.1:{dead},{}", cluster.host()), ..Default::default() };
    let config = Config::connect_checked(&settings).await.unwrap();
    let started = Instant::now();
    write(&config, 0, 50).await;
    println!("50 writes with a dead member listed first: {:?}", started.elapsed());
    assert_eq!(keys_on(&cluster.settings()).await.len(), 50);
}

#[tokio::test]
async fn every_member_down_is_unreachable_naming_them_all() {
    let (a, b) = (sdp_testkit::free_port(), sdp_testkit::free_port());
    let settings = Settings { host: format!("127.0.0.1:{a},127.0.0.1:{b}"), ..Default::default() };
    let refused = Config::connect_checked(&settings).await.err().expect("nothing answers");
    let message = refused.to_string();
    assert!(matches!(refused, Error::Unreachable { .. }), "{refused:?}");
    assert!(message.contains(&format!("127.0.0.1:{a},127.0.0.1:{b}")), "{message}");
}
