//! The client over TLS against Debian's etcd serving TLS with client-certificate authentication
//! (`--cert-file --key-file --trusted-ca-file --client-cert-auth`), with etcdctl as a peer.

use std::process::Command;

use sdp_config::{Config, Error, Settings};
use sdp_testkit::Etcd;

async fn write_then_read(config: &Config, path: &'static str, value: &'static str) -> Result<Option<String>, Error> {
    config.txn(|t| async move { t.put_json(path, &value).await }).await?;
    config.txn(|t| async move { t.get(path).await }).await
}

/// The first request's error (the client connects lazily).
async fn first_error(settings: &Settings) -> Error {
    let config = Config::connect(settings).await.expect("settings accepted");
    write_then_read(&config, "/tls", "x").await.expect_err("the database must refuse this client")
}

fn etcdctl(etcd: &Etcd, args: &[&str]) -> String {
    let certs = etcd.certs.as_ref().expect("a TLS etcd");
    let out = Command::new(sdp_testkit::etcdctl())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=https://127.0.0.1:{}", etcd.port))
        .args(certs.etcdctl_args())
        .args(args)
        .output()
        .expect("run etcdctl");
    assert!(out.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_client_with_its_certificate_writes_and_reads() {
    let etcd = Etcd::start_tls();
    let config = etcd.config().await;
    assert_eq!(write_then_read(&config, "/tls/a", "over TLS").await.unwrap().as_deref(), Some("\"over TLS\""));
}

#[tokio::test]
async fn a_client_without_a_certificate_is_told_to_set_one() {
    let etcd = Etcd::start_tls();
    let settings = Settings { cert: None, key: None, ..etcd.settings() };
    let e = first_error(&settings).await;
    assert!(matches!(e, Error::TlsRefused { .. }), "{e:?}");
    assert!(e.to_string().contains("set SDP_CONFIG_CERT and SDP_CONFIG_KEY"), "{e}");
}

#[tokio::test]
async fn a_plain_client_is_told_to_set_the_ca() {
    let etcd = Etcd::start_tls();
    let settings = Settings { port: etcd.port, ..Default::default() };
    let e = first_error(&settings).await;
    assert!(e.to_string().contains("set SDP_CONFIG_CACERT"), "{e}");
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_told_to_fix_its_ca() {
    let etcd = Etcd::start_tls();
    let other_ca = etcd.certs.as_ref().unwrap().other_ca.clone();
    let e = first_error(&Settings { cacert: Some(other_ca), ..etcd.settings() }).await;
    assert!(matches!(e, Error::TlsRefused { .. }), "{e:?}");
    assert!(e.to_string().contains("not signed by a CA in SDP_CONFIG_CACERT"), "{e}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_with_what_to_change() {
    let etcd = Etcd::start_tls();
    let certs = etcd.certs.as_ref().unwrap();
    let settings = Settings {
        cert: Some(certs.untrusted_client_cert.clone()),
        key: Some(certs.untrusted_client_key.clone()),
        ..etcd.settings()
    };
    let e = first_error(&settings).await;
    assert!(matches!(e, Error::TlsRefused { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("accept the client certificate") && text.contains("set SDP_CONFIG_CERT and"), "{e}");
}

#[tokio::test]
async fn a_missing_certificate_file_is_named() {
    let etcd = Etcd::start_tls();
    let missing = etcd.log_path().join("missing.pem");
    let e = Config::connect(&Settings { cert: Some(missing.clone()), ..etcd.settings() })
        .await
        .err()
        .expect("a missing certificate file is an error");
    assert!(e.to_string().starts_with(&format!("SDP_CONFIG_CERT={}: cannot read it", missing.display())), "{e}");
}

#[tokio::test]
async fn etcdctl_reads_what_the_client_wrote_and_writes_what_it_reads() {
    let etcd = Etcd::start_tls();
    let config = etcd.config().await;
    write_then_read(&config, "/tls/ours", "from sdp-config").await.unwrap();
    assert_eq!(etcdctl(&etcd, &["get", "--print-value-only", "2/tls/ours"]), "\"from sdp-config\"\n");

    etcdctl(&etcd, &["put", "2/tls/theirs", "\"from etcdctl\""]);
    let read = config.txn(|t| async move { t.get("/tls/theirs").await }).await.unwrap();
    assert_eq!(read.as_deref(), Some("\"from etcdctl\""));
}

#[tokio::test]
async fn a_tls_client_of_a_plain_database_is_told_to_unset_tls() {
    let etcd = Etcd::start();
    let certs = sdp_testkit::tls::TestCerts::new(etcd.log_path());
    let e = first_error(&certs.client_settings(etcd.port)).await;
    assert!(matches!(e, Error::TlsRefused { .. }), "{e:?}");
    // The plain server drops the TLS client at its first bytes: the client sees the end of its handshake (a
    // sure sign) or a reset (then the error names this cause among others).
    let text = e.to_string();
    assert!(text.contains("does not serve TLS") && text.contains("unset SDP_CONFIG_CACERT"), "{e}");
}
