//! Connecting as the daemons do: a database that cannot be reached yet is waited for, until it comes or the
//! daemon is stopped; any other error ends the start at once.

use std::time::{Duration, Instant};

use sdp_config::{Config, Error, Settings};

/// Settings for a database on a loopback port where nothing listens (yet).
fn nothing_on(port: u16) -> Settings {
    Settings { host: "127.0.0.1".into(), port, ..Default::default() }
}

#[tokio::test]
async fn an_unreachable_database_is_waited_for_until_stopped() {
    let started = Instant::now();
    let mut stop = Box::pin(tokio::time::sleep(Duration::from_secs(2)));
    let connected = Config::connect_when_reachable(&nothing_on(sdp_testkit::free_port()), &mut stop).await;
    assert!(matches!(connected, Ok(None)), "stopping ends the wait without an error");
    assert!(started.elapsed() >= Duration::from_secs(2), "it gave up before it was stopped");
}

#[tokio::test]
async fn a_database_that_comes_later_is_connected_to() {
    let port = sdp_testkit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        sdp_etcd_server::start(sdp_etcd_server::ServerConfig {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            data_dir: Some(data_dir),
            ..Default::default()
        })
        .await
        .expect("the database on the port the daemon tries")
    });
    let mut stop = std::pin::pin!(std::future::pending::<()>());
    let config = Config::connect_when_reachable(&nothing_on(port), &mut stop).await.unwrap();
    config.expect("connected once the database came").answers().await.unwrap();
    server.await.unwrap().stop().await;
}

#[tokio::test]
async fn other_errors_end_the_start_at_once() {
    let settings = Settings { backend: "bogus".into(), ..nothing_on(sdp_testkit::free_port()) };
    let mut stop = std::pin::pin!(std::future::pending::<()>());
    let refused = Config::connect_when_reachable(&settings, &mut stop).await;
    assert!(matches!(refused, Err(Error::Invalid(_))), "{:?}", refused.map(|c| c.is_some()));
}
