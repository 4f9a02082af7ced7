//! The embedded database over TLS with client certificates, as etcd's `--cert-file --key-file
//! --trusted-ca-file --client-cert-auth` serve it: the platform's client and `etcdctl` with a certificate the
//! CA signed get in; a client without one, one trusting another CA, and plain HTTP do not. (Keys carry the
//! platform's depth tag: `/ours` is stored as `1/ours`.)

use sdp_etcd_server::{RunningServer, ServerConfig, TlsFiles};
use sdp_testkit::tls::TestCerts;

async fn start_tls(certs: &TestCerts) -> RunningServer {
    sdp_etcd_server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(TlsFiles {
            cert_file: certs.server_cert.clone(),
            key_file: certs.server_key.clone(),
            trusted_ca_file: Some(certs.ca.clone()),
            client_cert_auth: true,
        }),
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn etcdctl(server: &RunningServer, tls: Vec<std::ffi::OsString>, args: &[&str]) -> (bool, String) {
    let etcdctl = sdp_testkit::program("etcdctl", "SDP_TEST_ETCDCTL", "install it with `apt-get install etcd-client`");
    let out = tokio::process::Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=https://{}", server.addr))
        .arg("--dial-timeout=3s")
        .args(tls)
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn clients_with_a_certificate_the_ca_signed_get_in_and_no_other() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::new(dir.path());
    let server = start_tls(&certs).await;
    let port = server.addr.port();

    let config = sdp_config::Config::connect(&certs.client_settings(port)).await.unwrap();
    config
        .txn(|t| async move { t.create_json("/ours", &serde_json::json!({"by": "sdp-config"}), None).await })
        .await
        .unwrap();
    let (ok, read) = etcdctl(&server, certs.etcdctl_args(), &["get", "1/ours", "--print-value-only"]).await;
    assert!(ok && read.contains("sdp-config"), "{read}");
    let (ok, out) = etcdctl(&server, certs.etcdctl_args(), &["put", "1/theirs", "etcdctl"]).await;
    assert!(ok, "{out}");
    let theirs = config.txn(|t| async move { t.get("/theirs").await }).await.unwrap();
    assert_eq!(theirs.as_deref(), Some("etcdctl"));

    // No client certificate: the handshake is refused.
    let without_cert = sdp_config::Settings { cert: None, key: None, ..certs.client_settings(port) };
    let refused = match sdp_config::Config::connect(&without_cert).await {
        Ok(config) => config.txn(|t| async move { t.get("/ours").await }).await.err(),
        Err(e) => Some(e),
    };
    assert!(refused.is_some(), "a client without a certificate got in");
    let (ok, out) = etcdctl(&server, vec![format!("--cacert={}", certs.ca.display()).into()], &["get", "1/ours"]).await;
    assert!(!ok, "etcdctl without a client certificate got in: {out}");
    // A server certificate from another CA is not trusted by a client of ours.
    let other = sdp_config::Settings { cacert: Some(certs.other_ca.clone()), ..certs.client_settings(port) };
    let refused = match sdp_config::Config::connect(&other).await {
        Ok(config) => config.txn(|t| async move { t.get("/ours").await }).await.err(),
        Err(e) => Some(e),
    };
    assert!(refused.is_some(), "a client trusting another CA got in");
    // Plain HTTP to the TLS port gets nothing.
    let plain = reqwest::Client::new().post(format!("http://{}/v3/kv/range", server.addr)).body("{}").send().await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    server.stop().await;
}
