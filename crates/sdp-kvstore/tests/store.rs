//! The store's etcd semantics, checked directly.

use std::time::Duration;

use sdp_kvstore::*;

fn put(store: &Store, key: &str, value: &str) -> Revision {
    store.put(PutRequest { key: key.into(), value: value.into(), ..Default::default() }).unwrap().1
}

fn get(store: &Store, key: &str, revision: Revision) -> Option<KeyValue> {
    let req = RangeRequest { range: KeyRange::single(key), revision, ..Default::default() };
    store.range(&req).unwrap().0.kvs.into_iter().next()
}

#[test]
fn revisions_and_versions_follow_etcd() {
    let store = Store::new();
    assert_eq!(store.revision(), 1);
    assert_eq!(put(&store, "a", "1"), 2);
    assert_eq!(put(&store, "a", "2"), 3);
    let kv = get(&store, "a", 0).unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    assert_eq!(get(&store, "a", 2).unwrap().value, b"1");
    store.delete_range(DeleteRangeRequest { range: KeyRange::single("a"), prev_kv: false }).unwrap();
    assert_eq!(store.revision(), 4);
    assert!(get(&store, "a", 0).is_none());
    assert_eq!(get(&store, "a", 3).unwrap().value, b"2");
    // Re-created: a new generation starts at version 1.
    put(&store, "a", "3");
    let kv = get(&store, "a", 0).unwrap();
    assert_eq!((kv.create_revision, kv.version), (5, 1));
    // A transaction's writes share one revision; reads in it see its earlier writes.
    let txn = TxnRequest {
        compare: vec![Compare {
            range: KeyRange::single("a"),
            result: CompareResult::Equal,
            target: CompareTarget::Version(1),
        }],
        success: vec![
            RequestOp::Put(PutRequest { key: "b".into(), value: "x".into(), ..Default::default() }),
            RequestOp::Put(PutRequest { key: "c".into(), value: "y".into(), ..Default::default() }),
            RequestOp::Range(RangeRequest { range: KeyRange::prefix(""), ..Default::default() }),
        ],
        failure: vec![],
    };
    let (resp, rev) = store.txn(&txn).unwrap();
    assert!(resp.succeeded);
    assert_eq!(rev, 6);
    match &resp.responses[2] {
        ResponseOp::Range(r) => assert_eq!(r.count, 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(get(&store, "b", 0).unwrap().mod_revision, get(&store, "c", 0).unwrap().mod_revision);
    // A read-only transaction does not move the revision.
    store.txn(&TxnRequest { success: vec![RequestOp::Range(RangeRequest::default())], ..Default::default() }).unwrap();
    assert_eq!(store.revision(), 6);
}

#[test]
fn compares_on_missing_keys_and_ranges() {
    let store = Store::new();
    let holds = |target: CompareTarget, result: CompareResult, key: &str| {
        let c = Compare { range: KeyRange::single(key), result, target };
        store.txn(&TxnRequest { compare: vec![c], ..Default::default() }).unwrap().0.succeeded
    };
    assert!(holds(CompareTarget::Version(0), CompareResult::Equal, "nope"));
    assert!(holds(CompareTarget::ModRevision(0), CompareResult::Equal, "nope"));
    assert!(!holds(CompareTarget::Value(Vec::new()), CompareResult::Equal, "nope"));
    put(&store, "k/1", "a");
    put(&store, "k/2", "b");
    let range = |result, target| {
        let c = Compare { range: KeyRange::prefix("k/"), result, target };
        store.txn(&TxnRequest { compare: vec![c], ..Default::default() }).unwrap().0.succeeded
    };
    assert!(range(CompareResult::Less, CompareTarget::ModRevision(4)));
    assert!(!range(CompareResult::Less, CompareTarget::ModRevision(3)));
    assert!(range(CompareResult::Greater, CompareTarget::Value(b"0".to_vec())));
}

#[test]
fn duplicate_writes_are_refused_and_change_nothing() {
    let store = Store::new();
    let p = |k: &str| RequestOp::Put(PutRequest { key: k.into(), ..Default::default() });
    let err = store.txn(&TxnRequest { success: vec![p("a"), p("a")], ..Default::default() }).unwrap_err();
    assert_eq!(err, Error::DuplicateKey);
    let del = RequestOp::DeleteRange(DeleteRangeRequest { range: KeyRange::prefix(""), prev_kv: false });
    let err = store.txn(&TxnRequest { failure: vec![p("a"), del], ..Default::default() }).unwrap_err();
    assert_eq!(err, Error::DuplicateKey);
    assert_eq!(store.revision(), 1);
}

#[tokio::test]
async fn watch_replays_history_in_order_then_follows() {
    let store = Store::new();
    for i in 0..5 {
        put(&store, &format!("w/{i}"), "v");
    }
    put(&store, "other", "v");
    let mut watch = store.watch(KeyRange::prefix("w/"), 3).unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.extend(watch.events.recv().await.unwrap().into_iter().map(|e| e.kv.mod_revision));
    }
    assert_eq!(seen, [3, 4, 5, 6]);
    store.delete_range(DeleteRangeRequest { range: KeyRange::single("w/0"), prev_kv: false }).unwrap();
    let batch = watch.events.recv().await.unwrap();
    assert_eq!(batch[0].kind, EventKind::Delete);
    assert_eq!(batch[0].prev_kv.as_ref().unwrap().key, b"w/0");
    // After compaction, history before it is gone.
    store.compact(5).unwrap();
    assert!(matches!(store.watch(KeyRange::prefix("w/"), 4), Err(Error::Compacted { compact_revision: 5 })));
    assert!(store.watch(KeyRange::prefix("w/"), 5).is_ok());
    let old = RangeRequest { range: KeyRange::single("w/0"), revision: 4, ..Default::default() };
    assert!(matches!(store.range(&old), Err(Error::Compacted { .. })));
    assert!(get(&store, "w/1", 5).is_some());
}

#[tokio::test]
async fn lease_expiry_deletes_attached_keys_in_one_revision() {
    let store = Store::new();
    let expiry = tokio::spawn(std::sync::Arc::clone(&store).run_lease_expiry());
    let granted = std::time::Instant::now();
    let (id, _) = store.lease_grant(0, 1).unwrap();
    for k in ["o/1", "o/2"] {
        store.put(PutRequest { key: k.into(), value: "x".into(), lease: id, ..Default::default() }).unwrap();
    }
    let before = store.revision();
    assert_eq!(store.lease_time_to_live(id).unwrap().keys.len(), 2);
    // Waits for the keys to go, for up to four times the TTL; the watch wakes on their deletion.
    let mut watch = store.watch(KeyRange::prefix("o/"), before + 1).unwrap();
    let deleted = tokio::time::timeout(Duration::from_secs(4), watch.events.recv()).await.expect("the lease expired");
    assert_eq!(deleted.map(|batch| batch.len()), Some(2), "both keys in one event batch");
    assert!(granted.elapsed() >= Duration::from_secs(1), "expired before its TTL: {:?}", granted.elapsed());
    assert!(get(&store, "o/1", 0).is_none() && get(&store, "o/2", 0).is_none());
    assert_eq!(store.revision(), before + 1);
    assert!(matches!(store.lease_keep_alive(id), Err(Error::LeaseNotFound(_))));
    let err = store.put(PutRequest { key: "p".into(), lease: id, ..Default::default() }).unwrap_err();
    assert_eq!(err, Error::LeaseNotFound(id));
    assert!(!expiry.is_finished(), "the lease expiry task ended: {:?}", expiry.await);
    expiry.abort();
}

#[test]
fn a_client_may_grant_the_largest_lease_id_and_the_next_chosen_id_goes_round() {
    let store = Store::new();
    assert_eq!(store.lease_grant(i64::MAX, 30).unwrap().0, i64::MAX);
    let (chosen, _) = store.lease_grant(0, 30).unwrap();
    assert!(chosen > 0 && chosen != i64::MAX, "{chosen}");
    let (next, _) = store.lease_grant(0, 30).unwrap();
    assert!(next > 0 && next != chosen, "{next}");
}

#[test]
fn a_snapshot_rebuilds_the_live_state() {
    let store = Store::new();
    let (id, _) = store.lease_grant(0, 30).unwrap();
    put(&store, "a", "1");
    store.put(PutRequest { key: "b".into(), value: "2".into(), lease: id, ..Default::default() }).unwrap();
    put(&store, "a", "3");
    let copy = Store::recover(None, [store.snapshot()], Limits::default()).unwrap();
    assert_eq!(copy.revision(), store.revision());
    assert_eq!(get(&copy, "a", 0), get(&store, "a", 0));
    assert_eq!(copy.lease_time_to_live(id).unwrap().keys, vec![b"b".to_vec()]);
    // The copy goes on from the same revision.
    assert_eq!(put(&copy, "c", "4"), store.revision() + 1);
}

#[test]
fn the_operation_limit_counts_nested_requests_but_not_both_branches() {
    let range = || RequestOp::Range(RangeRequest { range: KeyRange::single("k"), ..Default::default() });
    let put = |i: usize| RequestOp::Put(PutRequest { key: format!("k{i}").into(), ..Default::default() });
    let compare = |i: usize| Compare {
        range: KeyRange::single(format!("k{i}")),
        result: CompareResult::Equal,
        target: CompareTarget::Version(0),
    };
    // As etcd counts a flat transaction: 100 compares and 100 puts, or 128 requests in each branch, pass.
    let flat =
        TxnRequest { compare: (0..100).map(compare).collect(), success: (0..100).map(put).collect(), failure: vec![] };
    assert_eq!(flat.total_ops(), 100);
    let branches = TxnRequest {
        compare: vec![],
        success: (0..128).map(|_| range()).collect(),
        failure: (0..128).map(|_| range()).collect(),
    };
    assert_eq!(branches.total_ops(), 128);
    // Nested transactions add up: 10 of 10 ranges cost 110, 100 of 100 cost 10,100.
    let nested = |levels: usize, each: usize| TxnRequest {
        success: (0..levels)
            .map(|_| RequestOp::Txn(TxnRequest { success: (0..each).map(|_| range()).collect(), ..Default::default() }))
            .collect(),
        ..Default::default()
    };
    assert_eq!(nested(10, 10).total_ops(), 110);
    let store = Store::new();
    assert_eq!(store.txn(&nested(100, 100)).unwrap_err(), Error::TooManyOps { ops: 10_100, limit: 128 });
    store.txn(&flat).unwrap();
}
