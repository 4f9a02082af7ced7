//! `sdpcfg` as a process against Debian's etcd serving TLS with client-certificate authentication, configured
//! by SDP_CONFIG_CACERT, SDP_CONFIG_CERT and SDP_CONFIG_KEY.

use std::process::{Command, Output};

fn sdpcfg(env: &[(&str, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdpcfg"))
        .env_remove("SDP_CONFIG_BACKEND")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .expect("run sdpcfg")
}

#[test]
fn sdpcfg_writes_and_reads_over_tls_with_its_certificate() {
    let etcd = sdp_testkit::Etcd::start_tls();
    let env = etcd.certs.as_ref().unwrap().client_env(etcd.port);
    let created = sdpcfg(&env, &["create", "/tls/x", "{\"over\": \"TLS\"}"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let got = sdpcfg(&env, &["get", "/tls/x"]);
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    assert!(String::from_utf8_lossy(&got.stdout).contains("\"over\": \"TLS\""));
}

#[test]
fn sdpcfg_without_a_client_certificate_says_what_to_set() {
    let etcd = sdp_testkit::Etcd::start_tls();
    let env: Vec<_> = etcd
        .certs
        .as_ref()
        .unwrap()
        .client_env(etcd.port)
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "SDP_CONFIG_CERT" | "SDP_CONFIG_KEY"))
        .collect();
    let out = sdpcfg(&env, &["get", "/tls/x"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("set SDP_CONFIG_CERT and SDP_CONFIG_KEY"), "{stderr}");
}

#[test]
fn sdpcfg_names_an_unreadable_ca_file() {
    let env = [("SDP_CONFIG_CACERT", "/nonexistent/ca.pem".to_string())];
    let out = sdpcfg(&env, &["get", "/tls/x"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SDP_CONFIG_CACERT=/nonexistent/ca.pem: cannot read it"), "{stderr}");
}
