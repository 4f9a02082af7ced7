//! The deployer with the real `helm` and no cluster (render-only), on the embedded server and a real etcd,
//! fed by the processing controller: the seed's flow from processing block to rendered release and back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sdp_config::{Config, Deployment};
use sdp_helmdeploy::helm::Helm;
use sdp_helmdeploy::{Deployer, Mode};
use serde_json::{json, Value};

async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    sdp_testkit::eventually(what, Duration::from_secs(30), check).await
}

fn helm(charts: &Path) -> Helm {
    Helm {
        bin: sdp_testkit::helm(),
        namespace: "sdp".into(),
        charts_dir: Some(charts.to_path_buf()),
        repositories: Default::default(),
        repository_dir: None,
        oci_registries: vec![],
    }
}

async fn state(config: &Config, id: &str) -> Option<Value> {
    sdp_testkit::deployment_state(config, id).await
}

/// Charts of the repository plus the test's broken one, side by side.
fn charts(dir: &Path) -> PathBuf {
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts).unwrap();
    for (name, from) in [
        ("workflow", sdp_testkit::charts_dir().join("workflow")),
        ("broken", PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/charts/broken")),
    ] {
        std::os::unix::fs::symlink(std::fs::canonicalize(from).unwrap(), charts.join(name)).unwrap();
    }
    charts
}

/// A render-only deployer of `dir`'s charts into `dir/rendered`, started on `config`.
fn start_deployer(
    config: &Config,
    dir: &Path,
    metrics: sdp_helmdeploy::metrics::Metrics,
) -> tokio::task::JoinHandle<()> {
    start_deployer_with(config, dir, metrics, Default::default())
}

/// As [`start_deployer`], with the deployer's values per chart.
fn start_deployer_with(
    config: &Config,
    dir: &Path,
    metrics: sdp_helmdeploy::metrics::Metrics,
    chart_values: std::collections::BTreeMap<String, Value>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(sdp_helmdeploy::run(Deployer {
        config: config.clone(),
        metrics,
        helm: helm(&dir.join("charts")),
        mode: Mode::RenderOnly(dir.join("rendered")),
        work_dir: dir.join("work"),
        max_backoff: Duration::from_secs(2),
        max_parallel: 4,
        lease_ttl: 2,
        chart_values,
        repository_refresh: sdp_helmdeploy::REPOSITORY_REFRESH,
    }))
}

async fn flow(config: Config) {
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered");
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = sdp_helmdeploy::metrics::Metrics::register(&mut registry);
    let deployer = tokio::spawn(sdp_helmdeploy::run(Deployer {
        config: config.clone(),
        metrics,
        helm: helm(&charts(dir.path())),
        mode: Mode::RenderOnly(rendered.clone()),
        work_dir: dir.path().join("work"),
        max_backoff: Duration::from_secs(2),
        max_parallel: 4,
        lease_ttl: 3,
        chart_values: Default::default(),
        repository_refresh: sdp_helmdeploy::REPOSITORY_REFRESH,
    }));
    let controller = tokio::spawn(sdp_proccontrol::run(sdp_proccontrol::Controller {
        config: config.clone(),
        builtin_scripts: sdp_proccontrol::builtin_scripts(),
        settings: sdp_proccontrol::ControllerSettings {
            config_host: "etcd.example".into(),
            config_port: 2379,
            helm_namespace: "sdp".into(),
            runner: sdp_proccontrol::ScriptRunner::Helm { tls_secret: None },
        },
        lease_ttl: 3,
        metrics: Default::default(),
    }));

    // sdpcfg process realtime:testdask:0.1.0
    let pb_id = config
        .txn(|t| async move { t.create_new_processing_block("realtime:testdask:0.1.0".parse()?, json!({})).await })
        .await
        .unwrap();
    let deploy_id = format!("{pb_id}-workflow");
    let manifest = rendered.join(format!("{deploy_id}.yaml"));
    eventually("the rendered script deployment", || async { manifest.is_file() }).await;
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("kind: Deployment"), "{text}");
    assert!(text.contains(&format!("name: {deploy_id}")));
    // The platform's image runs the script by its name, its definition's args: `sdp script testdask <pb_id>`.
    let image = format!("image: \"{}\"", sdp_proccontrol::default_script_image());
    assert!(text.contains(&image), "{text}");
    assert!(text.contains(&format!("args: [\"script\",\"testdask\",\"{pb_id}\"]")), "{text}");
    assert!(text.contains("- name: SDP_CONFIG_HOST\n              value: \"etcd.example\""), "{text}");
    // The state follows the manifest.
    eventually("state rendered", || async {
        state(&config, &deploy_id).await.is_some_and(|s| s["status"] == "RENDERED")
    })
    .await;

    // Changed values re-render (an upgrade).
    let updated = Deployment {
        deploy_id: deploy_id.clone(),
        kind: "helm".into(),
        args: json!({"chart": "workflow", "values": {"pb_id": pb_id, "wf_image": "example/other:2", "env.EXTRA": "1"}}),
    };
    config
        .txn(|t| {
            let d = updated.clone();
            async move { t.update_json(&sdp_config::keys::paths::deploy(&d.deploy_id), &d).await }
        })
        .await
        .unwrap();
    eventually("re-rendered with the new image", || async {
        std::fs::read_to_string(&manifest).is_ok_and(|t| t.contains("example/other:2"))
    })
    .await;

    // Bad entries: a chart that does not render, and malformed JSON. Each gets its error; nothing stops.
    let broken = Deployment { deploy_id: "bad-chart".into(), kind: "helm".into(), args: json!({"chart": "broken"}) };
    config
        .txn(|t| {
            let d = broken.clone();
            async move { t.create_deployment(&d).await }
        })
        .await
        .unwrap();
    config.txn(|t| async move { t.create("/deploy/bad-json", "{\"args\": ", None).await }).await.unwrap();
    eventually("errors recorded", || async {
        let chart = state(&config, "bad-chart").await;
        let json = state(&config, "bad-json").await;
        chart.is_some_and(|s| s["status"] == "FAILED" && s["error"].as_str().unwrap().contains("broken"))
            && json.is_some_and(|s| s["status"] == "FAILED" && s["error"].as_str().unwrap().contains("not valid"))
    })
    .await;
    assert_eq!(
        config.txn(|t| async move { t.get("/deploy/bad-json").await }).await.unwrap().as_deref(),
        Some("{\"args\": ")
    );

    // Deleting the processing block undoes the deployment: the release (here, its manifest) and its state go.
    let id = pb_id.as_str();
    config.txn(|t| async move { t.delete_processing_block(id).await }).await.unwrap();
    eventually("manifest removed", || async { !manifest.exists() }).await;
    eventually("state removed", || async { state(&config, &deploy_id).await.is_none() }).await;
    // The deployer is still alive and serving.
    let later = Deployment {
        deploy_id: "later".into(),
        kind: "helm".into(),
        args: json!({"chart": "workflow", "values": {"pb_id": "x", "wf_image": "i"}}),
    };
    config
        .txn(|t| {
            let d = later.clone();
            async move { t.create_deployment(&d).await }
        })
        .await
        .unwrap();
    eventually("a later deployment rendered", || async { rendered.join("later.yaml").is_file() }).await;
    // What happened is counted.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("sdp_helmdeploy_helm_calls_total{verb=\"template\",result=\"ok\"}"), "{text}");
    assert!(text.contains("sdp_helmdeploy_helm_calls_total{verb=\"template\",result=\"error\"}"), "{text}");
    assert!(text.contains("sdp_helmdeploy_reconciles_total"), "{text}");
    sdp_testkit::stop_task(deployer).await;
    sdp_testkit::stop_task(controller).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flow_on_the_embedded_server() {
    let server = sdp_testkit::Embedded::start().await;
    flow(server.config().await).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flow_on_etcd() {
    let etcd = sdp_testkit::Etcd::start();
    flow(etcd.config().await).await;
}

/// The engine charts' manifests say how many pods to wait for: the Dask scheduler and its workers, one per
/// receive process.
#[tokio::test]
async fn engine_manifests_count_their_pods() {
    let dir = tempfile::tempdir().unwrap();
    let helm = helm(&sdp_testkit::charts_dir());
    for (chart, values, pods) in [
        ("dask", json!({"worker": {"replicas": 2}}), 3),
        ("dask", json!({"worker": {"replicas": 5}}), 6),
        ("vis-receive", json!({"receive": {"processes": 4}}), 4),
    ] {
        let file = dir.path().join("v.json");
        std::fs::write(&file, values.to_string()).unwrap();
        let d = sdp_helmdeploy::plan::Desired { deploy_id: "pb-1-engine".into(), chart: chart.into(), values };
        let manifest = helm.run(&helm.template_args(&d, &file).unwrap()).await.unwrap();
        assert_eq!(sdp_helmdeploy::manifest::expected_pods(&manifest), Ok(pods), "{chart}: {manifest}");
    }
}

/// The chart the controller deploys scripts with passes `helm lint --strict`, renders, and packages.
#[tokio::test]
async fn workflow_chart_lints_renders_and_packages() {
    let dir = tempfile::tempdir().unwrap();
    let helm = helm(&sdp_testkit::charts_dir());
    let values = dir.path().join("v.json");
    std::fs::write(&values, json!({"pb_id": "pb-1", "wf_image": "img:1", "env": {"SDP_CONFIG_HOST": "h"}}).to_string())
        .unwrap();
    let chart = sdp_testkit::charts_dir().join("workflow").display().to_string();
    let v = values.display().to_string();
    helm.run(&["lint".into(), "--strict".into(), chart.clone(), "--values".into(), v.clone()]).await.unwrap();
    let out = dir.path().display().to_string();
    helm.run(&["package".into(), chart.clone(), "--destination".into(), out]).await.unwrap();
    assert!(dir.path().join("workflow-0.1.0.tgz").is_file());
    // The schema refuses values the controller would never send, with helm's message.
    std::fs::write(&values, json!({"pb_id": "bad id!", "wf_image": ""}).to_string()).unwrap();
    let err = helm.run(&["template".into(), "x".into(), chart, "--values".into(), v]).await.unwrap_err().to_string();
    assert!(err.contains("pb_id") && err.contains("wf_image"), "{err}");
}

/// Entries naming another ID than their key's, a chart on the deployer's disk or an unknown type are refused
/// with the reason, and nothing is written outside the deployer's folders; a state goes when its entry goes,
/// also when the entry alone is deleted (`sdpcfg delete /deploy/<id>`) or was deleted before the deployer
/// started.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_entries_are_refused_and_states_go_with_their_entries() {
    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let dir = tempfile::tempdir().unwrap();
    charts(dir.path());
    let create = |path: String, value: &'static str| {
        let config = config.clone();
        async move {
            config
                .txn(|t| {
                    let path = path.clone();
                    async move { t.create(&path, value, None).await }
                })
                .await
                .unwrap()
        }
    };
    create("/deploy/gone/state".into(), r#"{"status": "RUNNING", "pid": 1}"#).await;
    let deployer = start_deployer(&config, dir.path(), Default::default());
    let refused = [
        (
            "elsewhere",
            r#"{"deploy_id": "../evil", "type": "helm", "args": {"chart": "workflow"}}"#,
            "must be the key's own ID",
        ),
        ("on-disk", r#"{"deploy_id": "on-disk", "type": "helm", "args": {"chart": "../../etc"}}"#, "not a path"),
        ("odd-type", r#"{"deploy_id": "odd-type", "type": "teleport", "args": {}}"#, "unknown deployment type"),
    ];
    for (id, entry, _) in refused {
        create(format!("/deploy/{id}"), entry).await;
    }
    for (id, _, reason) in refused {
        eventually("the entry refused with its reason", || async {
            state(&config, id)
                .await
                .is_some_and(|s| s["status"] == "FAILED" && s["error"].as_str().is_some_and(|e| e.contains(reason)))
        })
        .await;
    }
    eventually("the state without an entry removed", || async { state(&config, "gone").await.is_none() }).await;
    let mut written = Vec::new();
    let mut pending = vec![dir.path().to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path.clone());
            }
            written.push(path.display().to_string());
        }
    }
    assert!(!written.iter().any(|p| p.contains("evil")), "{written:?}");
    // Each entry deleted alone: its state follows.
    for (id, _, _) in refused {
        config.txn(|t| async move { t.delete(&format!("/deploy/{id}"), true, false).await }).await.unwrap();
    }
    for (id, _, _) in refused {
        eventually("the state removed with its entry", || async { state(&config, id).await.is_none() }).await;
    }
    sdp_testkit::stop_task(deployer).await;
    server.stop().await;
}

/// The deployer's values for a chart go under each deployment's: the entry's win, the rest is added; changing
/// them re-renders the chart's releases.
#[tokio::test(flavor = "multi_thread")]
async fn the_deployers_chart_values_go_under_each_deployments() {
    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered").join("site.yaml");
    charts(dir.path());
    let site = |policy: &str| {
        sdp_helmdeploy::values::chart_values(
            &json!({"workflow": {
                "imagePullPolicy": policy, "wf_image": "site/ignored:0", "env.SITE": "local"
            }})
            .to_string(),
        )
        .unwrap()
    };
    let deployer = start_deployer_with(&config, dir.path(), Default::default(), site("Never"));
    sdp_testkit::put_workflow_deployment(&config, "site", "img:1").await;
    let text = || std::fs::read_to_string(&rendered).unwrap_or_default();
    eventually("rendered with the site's values", || async { text().contains("imagePullPolicy: Never") }).await;
    assert!(text().contains("image: \"img:1\""), "the entry's image wins: {}", text());
    assert!(text().contains("- name: SITE\n              value: \"local\""), "{}", text());
    sdp_testkit::stop_task(deployer).await;

    let restarted = start_deployer_with(&config, dir.path(), Default::default(), site("IfNotPresent"));
    eventually("re-rendered with the changed values", || async { text().contains("imagePullPolicy: IfNotPresent") })
        .await;
    sdp_testkit::stop_task(restarted).await;
    server.stop().await;
}

/// The deployer dies midway; entries change while it is down; once restarted, releases and entries agree.
#[tokio::test(flavor = "multi_thread")]
async fn converges_after_a_restart() {
    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered");
    charts(dir.path());
    let put = |id: &'static str, image: &'static str| sdp_testkit::put_workflow_deployment(&config, id, image);
    let files = || {
        let mut names: Vec<String> = std::fs::read_dir(&rendered)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    let deployer = start_deployer(&config, dir.path(), Default::default());
    for id in ["keep", "change", "drop"] {
        put(id, "img:1").await;
    }
    eventually("three rendered", || async { files() == ["change.yaml", "drop.yaml", "keep.yaml"] }).await;
    sdp_testkit::stop_task(deployer).await;

    config.txn(|t| async move { t.delete_deployment("drop").await }).await.unwrap();
    put("change", "img:2").await;
    put("new", "img:1").await;
    let restarted = start_deployer(&config, dir.path(), Default::default());
    eventually("converged", || async {
        files() == ["change.yaml", "keep.yaml", "new.yaml"]
            && std::fs::read_to_string(rendered.join("change.yaml")).is_ok_and(|t| t.contains("img:2"))
    })
    .await;
    for id in ["keep", "change", "new"] {
        eventually("state rendered", || async { state(&config, id).await.is_some_and(|s| s["status"] == "RENDERED") })
            .await;
    }
    assert!(state(&config, "drop").await.is_none());
    sdp_testkit::stop_task(restarted).await;
    server.stop().await;
}

/// Two deployers on one database do the work of one: helm runs once per change, by the leader only, and the
/// standby takes over when the leader dies.
#[tokio::test]
async fn two_deployers_do_the_work_of_one() {
    use sdp_helmdeploy::metrics::{HelmCall, Metrics};
    let logs = sdp_testkit::Logs::capture();
    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered");
    charts(dir.path());
    let put = |id: &'static str, image: &'static str| sdp_testkit::put_workflow_deployment(&config, id, image);
    let renders =
        |m: &Metrics| m.helm_calls.get_or_create(&HelmCall { verb: "template".into(), result: "ok".into() }).get();
    let rendered_with = |id: &str, image: &str| {
        std::fs::read_to_string(rendered.join(format!("{id}.yaml"))).is_ok_and(|t| t.contains(image))
    };

    let (first_metrics, second_metrics) = (Metrics::default(), Metrics::default());
    let first = start_deployer(&config, dir.path(), first_metrics.clone());
    let second = start_deployer(&config, dir.path(), second_metrics.clone());
    put("one", "img:1").await;
    eventually("rendered", || async { rendered_with("one", "img:1") }).await;
    put("one", "img:2").await;
    eventually("rendered again", || async { rendered_with("one", "img:2") }).await;
    // The standby found the lead held and waits for it: until it leads, it renders nothing.
    let waits = || logs.lines_with(&["the lead of helmdeploy is held by another live owner"]).len();
    eventually("the standby waits for the lead", || async { waits() == 1 }).await;
    // The leader takes the changes in order: once it has rendered a later one, it has done all the earlier ones
    // made it do.
    put("later", "img:1").await;
    eventually("rendered later", || async { rendered_with("later", "img:1") }).await;
    let (first_renders, second_renders) = (renders(&first_metrics), renders(&second_metrics));
    assert_eq!(
        (first_renders + second_renders, first_renders.min(second_renders)),
        (3, 0),
        "helm ran once per change, by one deployer"
    );

    let (leader, standby, standby_metrics) =
        if first_renders > 0 { (first, second, second_metrics) } else { (second, first, first_metrics) };
    sdp_testkit::stop_task(leader).await;
    put("two", "img:1").await;
    eventually("rendered by the standby", || async { rendered_with("two", "img:1") }).await;
    assert!(renders(&standby_metrics) >= 1);
    sdp_testkit::stop_task(standby).await;
    server.stop().await;
}

/// An entry whose ID cannot name a key (written by another client) is logged once, however many passes see
/// it; and once again for another reason.
#[tokio::test]
async fn a_refused_entry_is_logged_once_per_reason() {
    let logs = sdp_testkit::Logs::capture();
    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let port = server.server.addr.port();
    let dir = tempfile::tempdir().unwrap();
    charts(dir.path());
    let metrics = sdp_helmdeploy::metrics::Metrics::default();
    let deployer = start_deployer(&config, dir.path(), metrics.clone());
    let entry = |id: &str| json!({"deploy_id": id, "type": "helm", "args": {"chart": "workflow"}}).to_string();
    for id in ["..", "é"] {
        sdp_testkit::put_unchecked(port, &format!("/deploy/{id}"), &entry(id)).await;
    }
    // Every change to /deploy is a pass.
    for i in 0..10 {
        sdp_testkit::put_workflow_deployment(&config, "other", &format!("img:{i}")).await;
        let passes = metrics.reconciles.get();
        eventually("another pass", || async { metrics.reconciles.get() > passes }).await;
    }
    for id in ["\"..\"", "\"é\""] {
        assert_eq!(logs.lines_with(&["WARN", id]).len(), 1, "{:#?}", logs.lines_with(&["WARN"]));
    }
    // Another reason is logged again.
    sdp_testkit::put_unchecked(port, "/deploy/..", "not JSON").await;
    eventually("the new reason logged", || async { logs.lines_with(&["WARN", "\"..\""]).len() == 2 }).await;
    sdp_testkit::stop_task(deployer).await;
    server.stop().await;
}
