//! The one ownership primitive (take, lost, resign) that the daemons' leadership and the scripts' claims are
//! built on.

use std::time::Duration;

use serde_json::json;

use sdp_config::{Config, Ownership};

const PATH: &str = "/thing/owner";
const LIMIT: Duration = Duration::from_secs(10);

async fn take(config: &Config) -> Ownership {
    Ownership::take(config, PATH, 2, None, "the thing").await.unwrap().expect("nothing is required")
}

async fn owner_lease(config: &Config) -> Option<i64> {
    config.txn(|t| async move { t.lease_of(PATH).await }).await.unwrap()
}

async fn write(config: &Config, path: &'static str) {
    let squatter = json!({"command": ["squatter"], "hostname": "elsewhere", "pid": 1});
    config
        .txn(|t| {
            let squatter = &squatter;
            async move { t.put_json(path, squatter).await }
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn one_owner_at_a_time_and_the_next_takes_over_when_it_resigns() {
    let config = Config::memory();
    let first = take(&config).await;
    assert_eq!(owner_lease(&config).await, Some(first.lease().id()));

    let waiting = tokio::spawn({
        let config = config.clone();
        async move { take(&config).await }
    });
    let mut waiting = std::pin::pin!(waiting);
    // Held by a live owner: the second taker waits (as long as the first holds it, here a second).
    assert!(tokio::time::timeout(Duration::from_secs(1), &mut waiting).await.is_err(), "taken while held");
    assert_eq!(owner_lease(&config).await, Some(first.lease().id()));

    first.resign().await.unwrap();
    let second = tokio::time::timeout(LIMIT, waiting).await.expect("taken after the resignation").unwrap();
    assert_eq!(owner_lease(&config).await, Some(second.lease().id()));
}

#[tokio::test]
async fn an_entry_on_no_live_lease_is_taken_over_at_once() {
    let config = Config::memory();
    write(&config, PATH).await;
    let taken = tokio::time::timeout(LIMIT, take(&config)).await.expect("a squatter stalls nobody");
    assert_eq!(owner_lease(&config).await, Some(taken.lease().id()));
}

#[tokio::test]
async fn nothing_is_owned_when_the_required_key_is_missing() {
    let config = Config::memory();
    let taken = Ownership::take(&config, PATH, 2, Some("/thing"), "the thing").await.unwrap();
    assert!(taken.is_none());
    assert_eq!(owner_lease(&config).await, None, "no owner entry written");
    write(&config, "/thing").await;
    let taken = Ownership::take(&config, PATH, 2, Some("/thing"), "the thing").await.unwrap();
    assert!(taken.is_some_and(|o| o.lease().id() != 0));
}

#[tokio::test]
async fn ownership_is_lost_when_its_entry_is_deleted_or_written_over() {
    let config = Config::memory();
    let owned = take(&config).await;
    let lost = tokio::spawn({
        let config = config.clone();
        async move {
            owned.lost().await;
            config
        }
    });
    config.txn(|t| async move { t.delete(PATH, false, false).await.map(|_| ()) }).await.unwrap();
    tokio::time::timeout(LIMIT, lost).await.expect("lost once deleted").unwrap();

    let owned = take(&config).await;
    write(&config, PATH).await;
    tokio::time::timeout(LIMIT, owned.lost()).await.expect("lost once written over");
}
