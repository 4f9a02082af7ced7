//! Leadership that one write cannot steal or stall, and that is retried promptly after it was held.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use sdp_config::keys::paths;
use sdp_config::{Config, Error};
use sdp_testkit::{eventually, Embedded};

const LIMIT: Duration = Duration::from_secs(15);

/// A replica of component `test` on leases of `ttl` seconds, whose work counts how often it started leading,
/// then works until `stop` resolves.
fn replica(
    config: &Config,
    ttl: i64,
    leads: &Arc<AtomicUsize>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (config, leads) = (config.clone(), Arc::clone(leads));
    tokio::spawn(async move {
        sdp_config::run_while_leading(&config, "test", ttl, stop, || {
            leads.fetch_add(1, Ordering::SeqCst);
            std::future::pending()
        })
        .await
    })
}

async fn leader_lease(config: &Config) -> Option<i64> {
    config.txn(|t| async move { t.lease_of(&paths::leader("test")).await }).await.unwrap()
}

async fn put_without_lease(config: &Config) {
    let squatter = json!({"command": ["squatter"], "hostname": "elsewhere", "pid": 1});
    config
        .txn(|t| {
            let squatter = &squatter;
            async move { t.put_json(&paths::leader("test"), squatter).await }
        })
        .await
        .unwrap();
}

/// The lead's lease revoked, then its entry written without a lease: the replica takes the lead back instead
/// of standing by forever. Written over while it leads: it notices and takes it back too.
#[tokio::test]
async fn a_lead_written_without_a_lease_is_taken_over() {
    let db = Embedded::start().await;
    let config = db.config().await;
    let leads = Arc::new(AtomicUsize::new(0));
    let running = replica(&config, 2, &leads, std::future::pending());
    eventually("leading", LIMIT, || async { leads.load(Ordering::SeqCst) == 1 }).await;
    let lease = leader_lease(&config).await.unwrap();
    assert_ne!(lease, 0);

    let settings = db.settings();
    let mut etcd = etcd_client::Client::connect([format!("{}:{}", settings.host, settings.port)], None).await.unwrap();
    etcd.lease_revoke(lease).await.unwrap();
    put_without_lease(&config).await;
    eventually("the lead taken back", LIMIT, || async { leads.load(Ordering::SeqCst) == 2 }).await;
    let retaken = leader_lease(&config).await.unwrap();
    assert!(retaken != 0 && retaken != lease);

    put_without_lease(&config).await;
    eventually("the overwritten lead taken back", LIMIT, || async { leads.load(Ordering::SeqCst) == 3 }).await;
    assert!(leader_lease(&config).await.is_some_and(|l| l != 0 && l != retaken));
    sdp_testkit::stop_task(running).await;
    db.stop().await;
}

/// A lead lost after it was held waits the initial delay (2 s) each time, not one that doubles: work that
/// fails at once leads again every 2 s (0, 2, 4, 6 s), where a growing delay would take 14 s for the fourth.
#[tokio::test]
async fn a_lead_held_then_lost_waits_the_initial_delay() {
    let config = Config::memory();
    let rounds = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&rounds);
    let running = tokio::spawn(async move {
        sdp_config::run_while_leading(&config, "test", 2, std::future::pending(), || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err(Error::Invalid("work failed".into())) }
        })
        .await
    });
    eventually("four rounds", Duration::from_millis(7500), || async { rounds.load(Ordering::SeqCst) >= 4 }).await;
    sdp_testkit::stop_task(running).await;
}

/// A replica told to stop resigns the lead it holds and returns: the standby leads at once, long before the
/// stopped replica's lease (60 s) would have run out.
#[tokio::test]
async fn a_stopped_leader_hands_over_at_once() {
    let config = Config::memory();
    let (first_leads, standby_leads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (stop_first, stopped) = tokio::sync::oneshot::channel::<()>();
    let first = replica(&config, 60, &first_leads, async move {
        let _ = stopped.await;
    });
    eventually("the first leading", LIMIT, || async { first_leads.load(Ordering::SeqCst) == 1 }).await;
    let standby = replica(&config, 60, &standby_leads, std::future::pending());
    let lease = leader_lease(&config).await;
    stop_first.send(()).unwrap();
    tokio::time::timeout(LIMIT, first).await.expect("the stopped replica returns").unwrap();
    eventually("the standby leading", LIMIT, || async { standby_leads.load(Ordering::SeqCst) == 1 }).await;
    assert!(leader_lease(&config).await.is_some_and(|l| Some(l) != lease));
    assert_eq!(first_leads.load(Ordering::SeqCst), 1);
    sdp_testkit::stop_task(standby).await;
}
