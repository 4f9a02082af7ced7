//! Charts come from the local charts, the configured repositories or an allowed OCI registry only: never from
//! the working directory of the deployer's process, and never from a host an entry names. Repositories are real
//! Helm chart repositories served here, added once and refreshed on a schedule; the seed era's `stable/dask` is
//! the bundled dask. A test binary of its own, since it changes the process's working directory.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sdp_config::Config;
use sdp_helmdeploy::helm::Helm;
use sdp_helmdeploy::metrics::Metrics;
use sdp_helmdeploy::repositories::Repositories;
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

fn start(config: &Config, dir: &Path, repositories: &str, metrics: Metrics) -> tokio::task::JoinHandle<()> {
    start_refreshing(config, dir, repositories, Duration::from_secs(3600), metrics)
}

/// A render-only deployer of the repository's workflow and dask charts with `repositories`, refreshing them
/// every `refresh`, its files under `dir`.
fn start_refreshing(
    config: &Config,
    dir: &Path,
    repositories: &str,
    refresh: Duration,
    metrics: Metrics,
) -> tokio::task::JoinHandle<()> {
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts).unwrap();
    for chart in ["workflow", "dask"] {
        let source = std::fs::canonicalize(sdp_testkit::charts_dir().join(chart)).unwrap();
        let _ = std::os::unix::fs::symlink(source, charts.join(chart));
    }
    tokio::spawn(sdp_helmdeploy::run(Deployer {
        config: config.clone(),
        metrics,
        helm: Helm {
            bin: sdp_testkit::helm(),
            namespace: "sdp".into(),
            charts_dir: Some(charts),
            repositories: Repositories::new(None, &Repositories::parse(repositories).unwrap()),
            repository_dir: Some(dir.join("helm-repositories")),
            oci_registries: vec!["registry.example".into()],
        },
        mode: Mode::RenderOnly(dir.join("rendered")),
        work_dir: dir.join("work"),
        max_backoff: Duration::from_secs(2),
        max_parallel: 4,
        lease_ttl: 2,
        chart_values: Default::default(),
        repository_refresh: refresh,
    }))
}

async fn failed_with(config: &Config, id: &str, reason: &str) {
    sdp_testkit::eventually(&format!("{id} failed: {reason}"), Duration::from_secs(30), || async {
        sdp_testkit::deployment_state(config, id)
            .await
            .is_some_and(|s: Value| s["status"] == "FAILED" && s["error"].as_str().is_some_and(|e| e.contains(reason)))
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
    let deployer = start(&config, &first, "", metrics.clone());
    sdp_testkit::put_chart_deployment(&config, "cwd", "cwdchart", "img:1").await;
    sdp_testkit::put_chart_deployment(&config, "nested", "nest/inner", "img:1").await;
    sdp_testkit::put_chart_deployment(&config, "pull", &oci, "img:1").await;
    sdp_testkit::put_chart_deployment(&config, "local", "workflow", "img:1").await;
    failed_with(&config, "cwd", "no chart \"cwdchart\" among the local charts").await;
    failed_with(
        &config,
        "nested",
        "names the repository \"nest\", which is not configured (configured: stable (local))",
    )
    .await;
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
    let deployer = start(&config, &second, "nest=http://127.0.0.1:1/", Metrics::default());
    sdp_testkit::put_chart_deployment(&config, "nested", "nest/inner", "img:1").await;
    failed_with(&config, "nested", "nest").await;
    assert!(!second.join("rendered/nested.yaml").exists());
    sdp_testkit::stop_task(deployer).await;
    server.stop().await;
}

fn call(result: &str) -> sdp_helmdeploy::metrics::HelmCall {
    sdp_helmdeploy::metrics::HelmCall { verb: "template".into(), result: result.into() }
}

/// A Helm chart repository served on 127.0.0.1 (`helm package`, `helm repo index`), holding one chart named
/// `chart` that renders a ConfigMap `from-<chart>`; counts the fetches of its index.
struct ChartRepository {
    url: String,
    index_fetches: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl ChartRepository {
    async fn serve(dir: &Path, chart: &str) -> ChartRepository {
        let source = dir.join("source").join(chart);
        std::fs::create_dir_all(source.join("templates")).unwrap();
        std::fs::write(source.join("Chart.yaml"), format!("apiVersion: v2\nname: {chart}\nversion: 0.1.0\n")).unwrap();
        std::fs::write(
            source.join("templates/cm.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-{chart}\n"),
        )
        .unwrap();
        let served = dir.join("served");
        std::fs::create_dir_all(&served).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        helm(&["package", source.to_str().unwrap(), "--destination", served.to_str().unwrap()]);
        helm(&["repo", "index", served.to_str().unwrap(), "--url", &url]);
        let index_fetches = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&index_fetches);
        let files = tower_http::services::ServeDir::new(&served);
        let app = axum::Router::new().fallback_service(files).layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                if request.uri().path() == "/index.yaml" {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                next.run(request)
            },
        ));
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        ChartRepository { url, index_fetches, server }
    }

    fn index_fetches(&self) -> usize {
        self.index_fetches.load(Ordering::SeqCst)
    }
}

fn helm(args: &[&str]) {
    let out = std::process::Command::new(sdp_testkit::helm()).args(args).output().unwrap();
    assert!(out.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn rendered(dir: &Path, id: &str) -> PathBuf {
    dir.join("rendered").join(format!("{id}.yaml"))
}

async fn wait_rendered(dir: &Path, id: &str) -> String {
    let file = rendered(dir, id);
    sdp_testkit::eventually(&format!("{id} rendered"), Duration::from_secs(60), || async { file.is_file() }).await;
    std::fs::read_to_string(file).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_chart_names_and_several_repositories_added_once_and_refreshed_on_a_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let one = ChartRepository::serve(&dir.path().join("one"), "alpha").await;
    let two = ChartRepository::serve(&dir.path().join("two"), "beta").await;
    let repositories = format!("one={},two={}", one.url, two.url);
    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;

    // Refreshed hourly: the indexes are fetched when the repositories are added, and not for each release.
    let first = dir.path().join("first");
    let deployer = start(&config, &first, &repositories, Metrics::default());
    sdp_testkit::put_chart_deployment(&config, "a", "one/alpha", "img:1").await;
    sdp_testkit::put_chart_deployment(&config, "b", "two/beta", "img:1").await;
    // The seed's testdask entry, exactly as it writes it: `stable/dask` is the bundled dask, with its values.
    sdp_testkit::put_helm_deployment(&config, "pb-seed-dask", sdp_testkit::seed_testdask_dask_args()).await;
    assert!(wait_rendered(&first, "a").await.contains("name: from-alpha"));
    assert!(wait_rendered(&first, "b").await.contains("name: from-beta"));
    let dask = wait_rendered(&first, "pb-seed-dask").await;
    assert!(dask.contains("name: pb-seed-dask-scheduler") && dask.contains("replicas: 2"), "{dask}");
    // The manifest is written before the state that reports it.
    sdp_testkit::eventually("the seed's Dask reported RENDERED", Duration::from_secs(30), || async {
        sdp_testkit::deployment_state(&config, "pb-seed-dask").await.is_some_and(|s| s["status"] == "RENDERED")
    })
    .await;
    let added = (one.index_fetches(), two.index_fetches());
    assert!(added.0 >= 1 && added.1 >= 1, "indexes fetched when added: {added:?}");
    for n in 0..5 {
        sdp_testkit::put_chart_deployment(&config, &format!("more-{n}"), "one/alpha", "img:1").await;
    }
    for n in 0..5 {
        wait_rendered(&first, &format!("more-{n}")).await;
    }
    assert_eq!((one.index_fetches(), two.index_fetches()), added, "an index fetched for a release");
    // The deployer's own repository list, not the user's.
    let listed = std::fs::read_to_string(first.join("helm-repositories/repositories.yaml")).unwrap();
    assert!(listed.contains(&one.url) && listed.contains(&two.url), "{listed}");
    sdp_testkit::stop_task(deployer).await;

    // Refreshed every second: both indexes are fetched again and again, with no entry changing.
    let config = config.with_prefix("/refreshing").unwrap();
    let metrics = Metrics::default();
    let second = dir.path().join("second");
    let before = (one.index_fetches(), two.index_fetches());
    let deployer = start_refreshing(&config, &second, &repositories, Duration::from_secs(1), metrics.clone());
    sdp_testkit::eventually("three scheduled refreshes", Duration::from_secs(30), || async {
        metrics.helm_calls.get_or_create(&refresh("ok")).get() >= 3
    })
    .await;
    assert!(one.index_fetches() >= before.0 + 4 && two.index_fetches() >= before.1 + 4, "{before:?}");
    sdp_testkit::stop_task(deployer).await;

    // A seed-era name whose chart is not bundled is refused with the reason, before helm runs.
    sdp_testkit::put_chart_deployment(&config, "nope", "stable/nope", "img:1").await;
    let deployer = start(&config, &dir.path().join("third"), "", Metrics::default());
    failed_with(&config, "nope", "means the local charts").await;
    sdp_testkit::stop_task(deployer).await;
    sdp_testkit::stop_task(one.server).await;
    sdp_testkit::stop_task(two.server).await;
    server.stop().await;
}

fn refresh(result: &str) -> sdp_helmdeploy::metrics::HelmCall {
    sdp_helmdeploy::metrics::HelmCall { verb: "repo".into(), result: result.into() }
}
