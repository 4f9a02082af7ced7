//! One behaviour suite, run unchanged on every backend: the in-process store, a real etcd server, and the
//! embedded etcd-API server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sdp_config::ownership::Taken;
use sdp_config::{Config, Deployment, Error, ProcessingBlock};
use serde_json::json;

async fn create_get_update_delete(db: Config) {
    db.txn(|t| async move { t.create("/a/b", "1", None).await }).await.unwrap();
    assert_eq!(db.txn(|t| async move { t.get("/a/b").await }).await.unwrap().as_deref(), Some("1"));
    let err = db.txn(|t| async move { t.create("/a/b", "2", None).await }).await.unwrap_err();
    assert!(matches!(err, Error::Collision(ref p) if p == "/a/b"), "{err}");
    assert_eq!(err.to_string(), "Cannot create /a/b, as it already exists!");
    db.txn(|t| async move { t.update("/a/b", "3").await }).await.unwrap();
    assert_eq!(db.txn(|t| async move { t.get("/a/b").await }).await.unwrap().as_deref(), Some("3"));
    db.txn(|t| async move { t.delete("/a/b", true, false).await }).await.unwrap();
    assert_eq!(db.txn(|t| async move { t.get("/a/b").await }).await.unwrap(), None);
    let err = db.txn(|t| async move { t.update("/a/b", "4").await }).await.unwrap_err();
    assert!(matches!(err, Error::Vanished(_)), "{err}");
    let err = db.txn(|t| async move { t.delete("/a/b", true, false).await }).await.unwrap_err();
    assert!(matches!(err, Error::Vanished(_)), "{err}");
    // A failed body writes nothing.
    assert_eq!(db.txn(|t| async move { t.get("/a/b").await }).await.unwrap(), None);
}

async fn list_by_prefix_and_depth(db: Config) {
    db.txn(|t| async move {
        for p in ["/pb/x", "/pb/x/owner", "/pb/x/state", "/pb/y", "/pbz", "/deploy/d", "/deploy/d/state"] {
            t.create(p, "{}", None).await?;
        }
        Ok(())
    })
    .await
    .unwrap();
    let list = |path: &'static str, recurse: usize| {
        let db = db.clone();
        async move { db.txn(|t| async move { t.list_keys(path, recurse).await }).await.unwrap() }
    };
    assert_eq!(list("/pb/", 0).await, ["/pb/x", "/pb/y"]);
    assert_eq!(list("/pb", 0).await, ["/pbz"]);
    assert_eq!(list("/pb", 8).await, ["/pb/x", "/pb/x/owner", "/pb/x/state", "/pb/y", "/pbz"]);
    assert_eq!(list("/", 8).await.len(), 7);
    assert_eq!(list("/deploy/", 8).await, ["/deploy/d", "/deploy/d/state"]);
    assert!(list("/nothing/", 8).await.is_empty());
    // Reads inside a transaction see its own writes, listings included.
    let seen = db
        .txn(|t| async move {
            t.create("/pb/w", "{}", None).await?;
            t.delete("/pb/y", true, false).await?;
            let listed = t.list_keys("/pb/", 0).await?;
            let value = t.get("/pb/w").await?;
            Ok((listed, value))
        })
        .await
        .unwrap();
    assert_eq!(seen, (vec!["/pb/w".to_string(), "/pb/x".to_string()], Some("{}".to_string())));
}

/// Keys with their values in one read per level: the same as listing and reading each, own writes
/// included, and a watcher wakes when a listed value changes.
async fn list_values_reads_keys_and_values_at_once(db: Config) {
    db.txn(|t| async move {
        for (p, v) in [("/pb/x", "1"), ("/pb/x/state", "2"), ("/pb/y", "3"), ("/pbz", "4"), ("/pb/x/a/deep", "5")] {
            t.create(p, v, None).await?;
        }
        Ok(())
    })
    .await
    .unwrap();
    let one_by_one = db
        .txn(|t| async move {
            let mut listed = Vec::new();
            for key in t.list_keys("/pb/", 1).await? {
                let value = t.get(&key).await?.unwrap();
                listed.push((key, value));
            }
            Ok(listed)
        })
        .await
        .unwrap();
    let at_once = db.txn(|t| async move { t.list_values("/pb/", 1).await }).await.unwrap();
    assert_eq!(at_once, one_by_one);
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    assert_eq!(at_once, pairs(&[("/pb/x", "1"), ("/pb/x/state", "2"), ("/pb/y", "3")]));
    let own = db
        .txn(|t| async move {
            t.update("/pb/y", "30").await?;
            t.delete("/pb/x/state", true, false).await?;
            t.list_values("/pb/", 1).await
        })
        .await
        .unwrap();
    assert_eq!(own, pairs(&[("/pb/x", "1"), ("/pb/y", "30")]));
    let mut watcher = db.watcher();
    watcher.txn(|t| async move { t.list_values("/pb/", 0).await }).await.unwrap();
    let writer = db.clone();
    let write =
        tokio::spawn(async move { writer.txn(|t| async move { t.update("/pb/x", "10").await }).await.unwrap() });
    let after =
        tokio::time::timeout(Duration::from_secs(10), watcher.txn(|t| async move { t.list_values("/pb/", 0).await }))
            .await
            .expect("the watcher did not wake on a listed value's change")
            .unwrap();
    assert_eq!(after, pairs(&[("/pb/x", "10"), ("/pb/y", "30")]));
    write.await.unwrap();
}

async fn recursive_delete(db: Config) {
    db.txn(|t| async move {
        for p in ["/pb/x", "/pb/x/owner", "/pb/x/state", "/pb/xy"] {
            t.create(p, "{}", None).await?;
        }
        Ok(())
    })
    .await
    .unwrap();
    let deleted = db.txn(|t| async move { t.delete("/pb/x", true, true).await }).await.unwrap();
    assert_eq!(deleted, ["/pb/x", "/pb/x/owner", "/pb/x/state"]);
    let left = db.txn(|t| async move { t.list_keys("/", 8).await }).await.unwrap();
    assert_eq!(left, ["/pb/xy"]);
}

/// `sdpcfg delete -R` of more entries than etcd takes operations in one transaction (128): one delete per level.
async fn recursive_delete_of_a_large_tree(db: Config) {
    for chunk in 0..5 {
        db.txn(|t| async move {
            for i in chunk * 20..(chunk + 1) * 20 {
                for p in [format!("/pb/b-{i:03}"), format!("/pb/b-{i:03}/owner"), format!("/pb/b-{i:03}/state")] {
                    t.create(&p, "{}", None).await?;
                }
            }
            Ok(())
        })
        .await
        .unwrap();
    }
    db.txn(|t| async move { t.create("/pbx", "{}", None).await }).await.unwrap();
    let deleted = db.txn(|t| async move { t.delete("/pb", false, true).await }).await.unwrap();
    assert_eq!(deleted.len(), 300);
    let left = db.txn(|t| async move { t.list_keys("/", 8).await }).await.unwrap();
    assert_eq!(left, ["/pbx"]);
    // Deleting a tree and writing into it again in one transaction.
    db.txn(|t| async move {
        t.create("/pb/a", "1", None).await?;
        t.create("/pb/a/state", "1", None).await
    })
    .await
    .unwrap();
    db.txn(|t| async move {
        t.delete("/pb", false, true).await?;
        t.create("/pb/a", "2", None).await
    })
    .await
    .unwrap();
    let left = db.txn(|t| async move { t.list_values("/", 8).await }).await.unwrap();
    assert_eq!(left, [("/pb/a".to_string(), "2".to_string()), ("/pbx".to_string(), "{}".to_string())]);
}

async fn conflicting_transaction_is_retried(db: Config) {
    db.txn(|t| async move { t.create("/counter", "0", None).await }).await.unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let other = db.clone();
    let result = db
        .txn(|t| {
            let attempts = Arc::clone(&attempts);
            let other = other.clone();
            async move {
                let n: i64 = t.get("/counter").await?.unwrap().parse().unwrap();
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    // Another client changes what this attempt read, before it commits.
                    other.txn(|o| async move { o.update("/counter", "10").await }).await?;
                }
                t.update("/counter", &(n + 1).to_string()).await?;
                Ok(n + 1)
            }
        })
        .await
        .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(result, 11);
    assert_eq!(db.txn(|t| async move { t.get("/counter").await }).await.unwrap().as_deref(), Some("11"));
}

async fn listing_conflicts_with_a_new_key(db: Config) {
    // Two writers both pick "the lowest free processing block ID": the loser must retry and pick the next.
    let attempts = Arc::new(AtomicUsize::new(0));
    let other = db.clone();
    let id = db
        .txn(|t| {
            let attempts = Arc::clone(&attempts);
            let other = other.clone();
            async move {
                let id = t.new_processing_block_id("batch").await?;
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    other
                        .txn(|o| async move {
                            let id = o.new_processing_block_id("batch").await?;
                            o.create_processing_block(&ProcessingBlock::new(&id, "batch:a:1".parse()?)).await
                        })
                        .await?;
                }
                t.create_processing_block(&ProcessingBlock::new(&id, "batch:b:1".parse()?)).await?;
                Ok(id)
            }
        })
        .await
        .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert!(id.ends_with("-0001"), "{id}");
    assert_eq!(db.txn(|t| async move { t.list_processing_blocks().await }).await.unwrap().len(), 2);
}

async fn processing_block_ids_fill_gaps(db: Config) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            db.txn(|t| async move {
                let id = t.new_processing_block_id("realtime").await?;
                t.create_processing_block(&ProcessingBlock::new(&id, "realtime:testdask:0.1.0".parse()?)).await?;
                Ok(id)
            })
            .await
            .unwrap(),
        );
    }
    let date = chrono_free_date(&ids[0]);
    assert_eq!(ids, [0, 1, 2].map(|i| format!("realtime-{date}-{i:04}")));
    let middle = ids[1].clone();
    db.txn(|t| {
        let middle = middle.clone();
        async move { t.delete_processing_block(&middle).await }
    })
    .await
    .unwrap();
    let next = db.txn(|t| async move { t.new_processing_block_id("realtime").await }).await.unwrap();
    assert_eq!(next, ids[1]);
}

async fn processing_block_ids_see_changes_made_since_the_last_choice(db: Config) {
    // The client keeps the day's IDs between creations; its own changes since count at once.
    let first = create_next_block(db.clone()).await;
    let stem = first.strip_suffix("0000").expect("the first ID of the day").to_string();
    assert_eq!(create_next_block(db.clone()).await, format!("{stem}0001"));
    assert_eq!(create_next_block(db.clone()).await, format!("{stem}0002"));
    // A block created under its own ID, and one deleted, by other transactions.
    let (own, deleted) = (format!("{stem}0003"), format!("{stem}0001"));
    db.txn(|t| {
        let (own, deleted) = (own.clone(), deleted.clone());
        async move {
            t.create_processing_block(&ProcessingBlock::new(&own, "batch:b:1".parse()?)).await?;
            t.delete_processing_block(&deleted).await
        }
    })
    .await
    .unwrap();
    let read_only = db.txn(|t| async move { t.new_processing_block_id("batch").await }).await.unwrap();
    assert_eq!(read_only, deleted);
    assert_eq!(create_next_block(db.clone()).await, deleted);
    assert_eq!(create_next_block(db.clone()).await, format!("{stem}0004"));
    assert_eq!(db.txn(|t| async move { t.list_processing_blocks().await }).await.unwrap().len(), 5);
}

async fn create_next_block(db: Config) -> String {
    db.txn(|t| async move {
        let id = t.new_processing_block_id("batch").await?;
        t.create_processing_block(&ProcessingBlock::new(&id, "batch:b:1".parse()?)).await?;
        Ok(id)
    })
    .await
    .unwrap()
}

/// Two clients of one database: each keeps the day's IDs current, and what the other does counts.
async fn processing_block_ids_count_another_clients_changes(a: Config, b: Config) {
    let first = create_next_block(a.clone()).await;
    let stem = first.strip_suffix("0000").expect("the first ID of the day").to_string();
    let id = |n: usize| format!("{stem}{n:04}");
    assert_eq!(create_next_block(a.clone()).await, id(1));
    assert_eq!(create_next_block(a.clone()).await, id(2));
    // The other client's creation: the next one here still gets a free ID (its commit requires it free).
    assert_eq!(create_next_block(b.clone()).await, id(3));
    assert_eq!(create_next_block(a.clone()).await, id(4));
    // The other client's deletion: the gap is the lowest free ID here once the watch has shown it.
    let deleted = id(1);
    b.txn(|t| {
        let deleted = deleted.clone();
        async move { t.delete_processing_block(&deleted).await }
    })
    .await
    .unwrap();
    let limit = Instant::now() + Duration::from_secs(10);
    while a.txn(|t| async move { t.new_processing_block_id("batch").await }).await.unwrap() != deleted {
        assert!(Instant::now() < limit, "the other client's deletion never counted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(create_next_block(a.clone()).await, deleted);
    assert_eq!(create_next_block(b.clone()).await, id(5));
    // Both at once: every ID once, no gap.
    let clients = [a, b];
    let mut ids = futures::future::join_all((0..30).map(|n| create_next_block(clients[n % 2].clone()))).await;
    ids.sort();
    assert_eq!(ids, (6..36).map(id).collect::<Vec<_>>());
}

fn chrono_free_date(id: &str) -> String {
    id.split('-').nth(1).unwrap().to_string()
}

async fn lease_expiry_removes_owner(db: Config) {
    db.txn(|t| async move { t.create_processing_block(&ProcessingBlock::new("pb-1", "batch:x:1".parse()?)).await })
        .await
        .unwrap();
    let lease = db.lease(2).await.unwrap();
    let lease = Arc::new(lease);
    let l = Arc::clone(&lease);
    db.txn(|t| {
        let l = Arc::clone(&l);
        async move { t.take_processing_block("pb-1", &l).await }
    })
    .await
    .unwrap();
    drop(l);
    // Kept alive beyond its TTL while the holder lives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let owned = db.txn(|t| async move { t.is_processing_block_owner("pb-1").await }).await.unwrap();
    assert!(owned, "owner entry vanished while its lease was kept alive");
    let taken = db
        .txn(|t| {
            let l = Arc::clone(&lease);
            async move { t.take_processing_block("pb-1", &l).await }
        })
        .await
        .unwrap();
    assert_eq!(taken, Taken::Held);
    // The holder dies: renewals stop, the entry goes after the TTL.
    drop(lease);
    let start = Instant::now();
    loop {
        let owner = db.txn(|t| async move { t.get_processing_block_owner("pb-1").await }).await.unwrap();
        if owner.is_none() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "owner entry outlived its lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(db.txn(|t| async move { t.get_processing_block("pb-1").await }).await.unwrap().is_some());
}

async fn lease_revoke_removes_keys_at_once(db: Config) {
    let lease = db.lease(30).await.unwrap();
    db.txn(|t| {
        let id = lease.id();
        let _ = id;
        let lease = &lease;
        async move { t.create("/eph", "1", Some(lease)).await }
    })
    .await
    .unwrap();
    lease.revoke().await.unwrap();
    assert_eq!(db.txn(|t| async move { t.get("/eph").await }).await.unwrap(), None);
}

async fn watcher_wakes_on_change(db: Config) {
    db.txn(|t| async move { t.create("/subarray/1", "\"IDLE\"", None).await }).await.unwrap();
    let mut watcher = db.watcher();
    let first = watcher.txn(|t| async move { t.get("/subarray/1").await }).await.unwrap();
    assert_eq!(first.as_deref(), Some("\"IDLE\""));
    let writer = db.clone();
    let change = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A key the watcher did not read must not wake it up...
        writer.txn(|t| async move { t.create("/subarray/2", "0", None).await }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer.txn(|t| async move { t.update("/subarray/1", "\"READY\"").await }).await.unwrap();
    });
    let started = Instant::now();
    let second =
        tokio::time::timeout(Duration::from_secs(10), watcher.txn(|t| async move { t.get("/subarray/1").await }))
            .await
            .expect("watcher did not wake up")
            .unwrap();
    // ...so it only returns after the second write.
    assert!(started.elapsed() >= Duration::from_millis(550));
    assert_eq!(second.as_deref(), Some("\"READY\""));
    change.await.unwrap();
}

async fn watcher_wakes_on_new_key_under_listed_prefix(db: Config) {
    let mut watcher = db.watcher();
    assert!(watcher.txn(|t| async move { t.list_deployments().await }).await.unwrap().is_empty());
    let writer = db.clone();
    let write = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let d = Deployment { deploy_id: "d1".into(), kind: "helm".into(), args: json!({"chart": "c"}) };
        writer
            .txn(|t| {
                let d = d.clone();
                async move { t.create_deployment(&d).await }
            })
            .await
            .unwrap();
    });
    let ids = tokio::time::timeout(Duration::from_secs(10), watcher.txn(|t| async move { t.list_deployments().await }))
        .await
        .expect("watcher did not wake up")
        .unwrap();
    assert_eq!(ids, ["d1"]);
    write.await.unwrap();
}

async fn contention_loses_no_update(db: Config) {
    db.txn(|t| async move { t.create("/counter", "0", None).await }).await.unwrap();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let db = db.clone();
        clients.push(tokio::spawn(async move {
            for _ in 0..200 {
                db.txn(|t| async move {
                    let n: u64 = t.get("/counter").await?.unwrap().parse().unwrap();
                    t.update("/counter", &(n + 1).to_string()).await
                })
                .await
                .unwrap();
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(db.txn(|t| async move { t.get("/counter").await }).await.unwrap().as_deref(), Some("1600"));
}

async fn malformed_json_is_a_clear_error_and_kept(db: Config) {
    db.txn(|t| async move { t.create("/pb/broken", "{not json", None).await }).await.unwrap();
    let err = db.txn(|t| async move { t.get_processing_block("broken").await }).await.unwrap_err();
    assert!(matches!(err, Error::BadJson { ref path, .. } if path == "/pb/broken"), "{err}");
    assert_eq!(db.txn(|t| async move { t.get("/pb/broken").await }).await.unwrap().as_deref(), Some("{not json"));
}

async fn prefixes_isolate(db: Config) {
    let a = db.with_prefix("/tenant-a").unwrap();
    let b = db.with_prefix("/tenant-b").unwrap();
    a.txn(|t| async move { t.create("/pb/x", "1", None).await }).await.unwrap();
    b.txn(|t| async move { t.create("/pb/x", "2", None).await }).await.unwrap();
    assert_eq!(a.txn(|t| async move { t.list_keys("/", 8).await }).await.unwrap(), ["/pb/x"]);
    assert_eq!(b.txn(|t| async move { t.get("/pb/x").await }).await.unwrap().as_deref(), Some("2"));
    // Stored under the tagged prefixed path, as the original does.
    assert_eq!(db.txn(|t| async move { t.get("/tenant-a/pb/x").await }).await.unwrap().as_deref(), Some("1"));
}

/// An owner entry written without a lease names nobody alive: a taker replaces it, in a transaction that
/// requires it as read, and holds it on its own lease from then on.
async fn an_owner_entry_without_a_lease_does_not_count(db: Config) {
    db.txn(|t| async move { t.create_processing_block(&ProcessingBlock::new("pb-1", "batch:x:1".parse()?)).await })
        .await
        .unwrap();
    let squatter = json!({"command": ["squatter"], "hostname": "elsewhere", "pid": 1});
    let owner = sdp_config::keys::paths::pb_owner("pb-1");
    let put = |value: serde_json::Value| {
        let (db, owner) = (db.clone(), owner.clone());
        async move {
            db.txn(|t| {
                let (owner, value) = (&owner, &value);
                async move { t.put_json(owner, value).await }
            })
            .await
            .unwrap()
        }
    };
    put(squatter.clone()).await;
    let take = |lease: Arc<sdp_config::Lease>| {
        let db = db.clone();
        async move {
            db.txn(|t| {
                let lease = &lease;
                async move { t.take_processing_block("pb-1", lease).await }
            })
            .await
            .unwrap()
        }
    };
    let mine = Arc::new(db.lease(10).await.unwrap());
    assert_eq!(take(Arc::clone(&mine)).await, Taken::Stale { lease: 0 });
    let held_on = db.txn(|t| async move { t.lease_of(&sdp_config::keys::paths::pb_owner("pb-1")).await }).await;
    assert_eq!(held_on.unwrap(), Some(mine.id()));
    assert!(db.txn(|t| async move { t.is_processing_block_owner("pb-1").await }).await.unwrap());
    // A live owner counts.
    let other = Arc::new(db.lease(10).await.unwrap());
    assert_eq!(take(Arc::clone(&other)).await, Taken::Held);
    // Overwritten without a lease again: taken again.
    put(squatter).await;
    assert_eq!(take(other).await, Taken::Stale { lease: 0 });
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $case() { super::$case(sdp_config::Config::memory()).await })*
        }
        mod etcd {
            $(#[tokio::test] async fn $case() {
                let etcd = sdp_testkit::Etcd::start();
                super::$case(etcd.config().await).await
            })*
        }
        mod embedded {
            $(#[tokio::test] async fn $case() {
                let server = sdp_testkit::Embedded::start().await;
                super::$case(server.config().await).await;
                server.stop().await;
            })*
        }
    };
}

/// Cases with two clients of one server (the in-process store has one client).
macro_rules! two_clients {
    ($($case:ident),* $(,)?) => {
        mod etcd_two_clients {
            $(#[tokio::test] async fn $case() {
                let etcd = sdp_testkit::Etcd::start();
                super::$case(etcd.config().await, etcd.config().await).await
            })*
        }
        mod embedded_two_clients {
            $(#[tokio::test] async fn $case() {
                let server = sdp_testkit::Embedded::start().await;
                super::$case(server.config().await, server.config().await).await;
                server.stop().await;
            })*
        }
    };
}

two_clients!(processing_block_ids_count_another_clients_changes);

conformance!(
    create_get_update_delete,
    list_by_prefix_and_depth,
    list_values_reads_keys_and_values_at_once,
    recursive_delete,
    recursive_delete_of_a_large_tree,
    conflicting_transaction_is_retried,
    listing_conflicts_with_a_new_key,
    processing_block_ids_fill_gaps,
    processing_block_ids_see_changes_made_since_the_last_choice,
    lease_expiry_removes_owner,
    an_owner_entry_without_a_lease_does_not_count,
    lease_revoke_removes_keys_at_once,
    watcher_wakes_on_change,
    watcher_wakes_on_new_key_under_listed_prefix,
    contention_loses_no_update,
    malformed_json_is_a_clear_error_and_kept,
    prefixes_isolate,
);
