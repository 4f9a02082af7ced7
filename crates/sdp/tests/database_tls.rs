//! `sdp up` with its configuration database on TLS with client certificates: every client of the platform (its
//! daemons, the scripts they start, sdpcfg's library) connects with the certificate it is given, and a client
//! without one is refused; beyond loopback the database does not start without client certificates.

use std::time::Duration;

use sdp_testkit::tls::TestCerts;
use sdp_testkit::{eventually, free_port, wait_for_port, KillOnDrop};

mod support;
use support::{create_batch_processing_block, up_command};

#[tokio::test(flavor = "multi_thread")]
async fn every_client_of_the_platform_connects_with_its_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::new(dir.path());
    let (port, lmc_port) = (free_port(), free_port());
    let mut up = up_command(port, lmc_port, &dir.path().join("data"));
    up.args(certs.server_args());
    // The platform's own clients take their certificate where every client of ours does.
    for (name, value) in certs.client_env(port) {
        if name != "SDP_CONFIG_HOST" && name != "SDP_CONFIG_PORT" {
            up.env(name, value);
        }
    }
    let _up = KillOnDrop(up.spawn().unwrap());
    wait_for_port(port, Duration::from_secs(20), "sdp up");
    wait_for_port(lmc_port, Duration::from_secs(20), "sdp up's LMC surface");

    let config = sdp_config::Config::connect(&certs.client_settings(port)).await.unwrap();
    let pb_id = create_batch_processing_block(&config).await;
    // The processing controller saw the block, the process deployer started its script, and the script
    // claimed it: each over TLS with the client certificate.
    eventually("the script's owner entry", Duration::from_secs(60), || {
        let (config, pb_id) = (&config, &pb_id);
        async move { config.txn(|t| async move { t.get_processing_block_owner(pb_id).await }).await.unwrap().is_some() }
    })
    .await;

    let plain = sdp_config::Settings { port, ..Default::default() };
    let refused = match sdp_config::Config::connect(&plain).await {
        Ok(config) => config.txn(|t| async move { t.list_processing_blocks().await }).await.err(),
        Err(e) => Some(e),
    };
    assert!(refused.is_some(), "a client without TLS got in");
}

#[test]
fn beyond_loopback_the_database_needs_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sdp"))
        .args(["up", "--config-listen", &format!("0.0.0.0:{}", free_port()), "--data-dir"])
        .arg(dir.path())
        .env_remove("SDP_CONFIG_HOST")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--client-cert-auth"), "{stderr}");
}
