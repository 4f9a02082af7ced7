//! Charts come from the local charts, the configured repository or an allowed OCI registry only: never from
//! the working directory of the deployer's process, and never from a host an entry names. A test binary of its
//! own, since it changes the process's working directory.

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use sdp_config::Config;
use sdp_helmdeploy::helm::Helm;
use sdp_helmdeploy::metrics::Metrics;
use sdp_helmdeploy::{Deployer, Mode};
use serde_json::Value;

/// A chart that renders a ConfigMap saying where it came from.
fn write_chart(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("Chart.yaml"), "apiVersion: v2\nname: planted\nversion: 0.1.0\n").unwrap();
    std::fs::write(
        dir.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: planted-in-the-working-directory\n",
    )
    .unwrap();
}

fn start(config: &Config, dir: &Path, repo: Option<(String, String)>, metrics: Metrics) -> tokio::task::JoinHandle<()> {
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts).unwrap();
    let workflow = std::fs::canonicalize(sdp_testkit::charts_dir().join("workflow")).unwrap();
    let _ = std::os::unix::fs::symlink(workflow, charts.join("workflow"));
    tokio::spawn(sdp_helmdeploy::run(Deployer {
        config: config.clone(),
        metrics,
        helm: Helm {
            bin: sdp_testkit::helm(),
            namespace: "sdp".into(),
            charts_dir: Some(charts),
            repo,
            oci_registries: vec!["registry.example".into()],
        },
        mode: Mode::RenderOnly(dir.join("rendered")),
        work_dir: dir.join("work"),
        max_backoff: Duration::from_secs(2),
        max_parallel: 4,
        lease_ttl: 2,
        chart_values: Default::default(),
    }))
}

async fn failed_with(config: &Config, id: &str, reason: &str) {
    sdp_testkit::eventually(&format!("{id} failed: {reason}"), Duration::from_secs(30), || async {
        sdp_testkit::deployment_state(config, id)
            .await
            .is_some_and(|s: Value| s["status"] == "failed" && s["error"].as_str().is_some_and(|e| e.contains(reason)))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn charts_are_never_taken_from_the_working_directory_or_an_unlisted_registry() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("cwd");
    write_chart(&cwd.join("cwdchart"));
    write_chart(&cwd.join("nest/inner"));
    std::env::set_current_dir(&cwd).unwrap();
    // Where `oci://127.0.0.1:<port>/x` would pull from.
    let registry = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    registry.set_nonblocking(true).unwrap();
    let oci = format!("oci://127.0.0.1:{}/x", registry.local_addr().unwrap().port());

    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let metrics = Metrics::default();
    let first = dir.path().join("first");
    let deployer = start(&config, &first, None, metrics.clone());
    sdp_testkit::put_chart_deployment(&config, "cwd", "cwdchart", "img:1").await;
    sdp_testkit::put_chart_deployment(&config, "nested", "nest/inner", "img:1").await;
    sdp_testkit::put_chart_deployment(&config, "pull", &oci, "img:1").await;
    sdp_testkit::put_chart_deployment(&config, "local", "workflow", "img:1").await;
    failed_with(&config, "cwd", "no chart \"cwdchart\" among the local charts").await;
    failed_with(&config, "nested", "names the repository \"nest\", which is not configured").await;
    failed_with(&config, "pull", "SDP_HELM_OCI_REGISTRIES").await;
    sdp_testkit::eventually("the local chart rendered", Duration::from_secs(30), || async {
        first.join("rendered/local.yaml").is_file()
    })
    .await;
    // helm ran for the local chart only, and nothing connected to the registry's port.
    assert_eq!(metrics.helm_calls.get_or_create(&call("ok")).get(), 1);
    assert_eq!(metrics.helm_calls.get_or_create(&call("error")).get(), 0);
    assert_eq!(registry.accept().err().map(|e| e.kind()), Some(ErrorKind::WouldBlock));
    sdp_testkit::stop_task(deployer).await;

    // With a repository named `nest`, `nest/inner` is a name helm resolves, and it does so from a folder of its
    // own: not from the process's working directory, where a chart of that name is.
    let config = config.with_prefix("/second").unwrap();
    let second = dir.path().join("second");
    let deployer = start(&config, &second, Some(("nest".into(), "http://127.0.0.1:1/".into())), Metrics::default());
    sdp_testkit::put_chart_deployment(&config, "nested", "nest/inner", "img:1").await;
    failed_with(&config, "nested", "nest").await;
    assert!(!second.join("rendered/nested.yaml").exists());
    sdp_testkit::stop_task(deployer).await;
    server.stop().await;
}

fn call(result: &str) -> sdp_helmdeploy::metrics::HelmCall {
    sdp_helmdeploy::metrics::HelmCall { verb: "template".into(), result: result.into() }
}
