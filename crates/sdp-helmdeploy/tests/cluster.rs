//! End to end on a real Kubernetes API (the local control plane of `scripts/k8s-testbed`, which
//! `scripts/test` starts, or any cluster `KUBECONFIG` names): processing block → controller → deployer →
//! real `helm install` → pods on (simulated) nodes → RUNNING in the deployment state; a failing pod shows
//! FAILED; deleting the processing block uninstalls the release; labelled NetworkAttachmentDefinitions
//! appear under /resource and go when unlabelled.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{json, Value};

use sdp_helmdeploy::helm::Helm;
use sdp_helmdeploy::{Deployer, Mode};

async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    sdp_testkit::eventually(what, Duration::from_secs(120), check).await
}

/// A client of the cluster `KUBECONFIG` names and a namespace made for this test there, `<prefix>-<pid>`.
async fn fresh_namespace(prefix: &str) -> (kube::Client, String) {
    sdp_testkit::require_cluster();
    let client = kube::Client::try_default().await.expect("a Kubernetes client from KUBECONFIG");
    let namespace = format!("{prefix}-{}", std::process::id());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    (client, namespace)
}

/// A deployer of the repository's charts into `namespace`, started on `config`.
fn start_deployer(
    config: &sdp_config::Config,
    namespace: &str,
    dir: &std::path::Path,
    max_backoff: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(sdp_helmdeploy::run(Deployer {
        config: config.clone(),
        metrics: Default::default(),
        helm: Helm {
            bin: sdp_testkit::helm(),
            namespace: namespace.to_string(),
            charts_dir: Some(sdp_testkit::charts_dir()),
            repositories: Default::default(),
            repository_dir: None,
            oci_registries: vec![],
        },
        mode: Mode::Cluster,
        work_dir: dir.to_path_buf(),
        max_backoff,
        max_parallel: 4,
        lease_ttl: 2,
        chart_values: Default::default(),
        repository_refresh: sdp_helmdeploy::REPOSITORY_REFRESH,
    }))
}

#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test(flavor = "multi_thread")]
async fn processing_block_to_running_pods_and_back() {
    let (client, namespace) = fresh_namespace("sdp-e2e").await;

    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let dir = tempfile::tempdir().unwrap();
    let tasks = vec![
        tokio::spawn(sdp_proccontrol::run(sdp_proccontrol::Controller {
            config: config.clone(),
            builtin_scripts: sdp_proccontrol::builtin_scripts(),
            settings: sdp_proccontrol::ControllerSettings {
                config_host: "etcd".into(),
                config_port: 2379,
                helm_namespace: namespace.clone(),
                runner: sdp_proccontrol::ScriptRunner::Helm { tls_secret: None },
            },
            lease_ttl: 5,
            metrics: Default::default(),
        })),
        start_deployer(&config, &namespace, dir.path(), Duration::from_secs(5)),
        tokio::spawn(sdp_helmdeploy::pods::monitor(
            client.clone(),
            namespace.clone(),
            config.clone(),
            Default::default(),
        )),
    ];

    let pb_id = config
        .txn(|t| async move { t.create_new_processing_block("realtime:testdask:0.1.0".parse()?, json!({})).await })
        .await
        .unwrap();
    let deploy_id = format!("{pb_id}-workflow");
    let state = || sdp_testkit::deployment_state(&config, &deploy_id);
    let pod_statuses = |s: Option<Value>| -> Vec<String> {
        s.and_then(|s| s["pods"].as_object().cloned())
            .map(|pods| pods.values().filter_map(|p| p["status"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    eventually("the script's pod RUNNING in the deployment state", || async {
        let s = state().await;
        s.as_ref().is_some_and(|s| s["status"] == "DEPLOYED") && pod_statuses(s) == ["RUNNING"]
    })
    .await;

    // A pod that fails shows FAILED.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod = pods.list(&Default::default()).await.unwrap().items.into_iter().next().unwrap();
    let failed = json!({"status": {"phase": "Failed", "conditions": [{"type": "Ready", "status": "False"}]}});
    pods.patch_status(pod.metadata.name.as_deref().unwrap(), &PatchParams::default(), &Patch::Merge(&failed))
        .await
        .unwrap();
    eventually("FAILED in the deployment state", || async {
        pod_statuses(state().await).contains(&"FAILED".to_string())
    })
    .await;

    // Deleting the processing block uninstalls the release and removes the state.
    let id = pb_id.as_str();
    config.txn(|t| async move { t.delete_processing_block(id).await }).await.unwrap();
    let helm = helm_in(&namespace);
    eventually("release uninstalled", || async { helm.list().await.is_ok_and(|r| r.is_empty()) }).await;
    eventually("state removed", || async { state().await.is_none() }).await;

    for t in tasks {
        sdp_testkit::stop_task(t).await;
    }
    Api::<Namespace>::all(client).delete(&namespace, &Default::default()).await.unwrap();
    server.stop().await;
}

#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test(flavor = "multi_thread")]
async fn labelled_network_definitions_are_published() {
    sdp_testkit::require_cluster();
    let client = kube::Client::try_default().await.expect("a Kubernetes client from KUBECONFIG");
    sdp_testkit::cluster::install_network_attachment_crd(&client).await;

    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let monitor = tokio::spawn(sdp_helmdeploy::resources::monitor(client.clone(), config.clone(), Default::default()));
    let nads: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &sdp_helmdeploy::resources::api_resource());
    let name = format!("vis-{}", std::process::id());
    let ipam = json!({"type": "whereabouts", "range": "10.9.0.0/16"});
    let nad = sdp_testkit::cluster::labelled_network_attachment(&name, "default", ipam);
    nads.create(&PostParams::default(), &nad).await.unwrap();
    // Only this test's: the monitor publishes every labelled definition of the cluster, other tests' too.
    let keys = || {
        let (config, name) = (config.clone(), name.clone());
        async move {
            let keys = config.txn(|t| async move { t.list_keys("/resource/", 8).await }).await.unwrap();
            keys.into_iter().filter(|k| k.ends_with(&format!("/{name}"))).collect::<Vec<_>>()
        }
    };
    let expected = [
        format!("/resource/network-attachment-definition/default/{name}"),
        format!("/resource/supernet/default/{name}"),
    ];
    eventually("entries published", || async { keys().await == expected }).await;
    let unlabel = json!({"metadata": {"labels": {"sdp.skao.int/available-for-allocation": null}}});
    nads.patch(&name, &PatchParams::default(), &Patch::Merge(&unlabel)).await.unwrap();
    eventually("entries removed", || async { keys().await.is_empty() }).await;
    nads.delete(&name, &Default::default()).await.unwrap();
    sdp_testkit::stop_task(monitor).await;
    server.stop().await;
}

/// A release that failed is retried after a restart although its entry did not change: a quota makes the
/// install fail, the deployer stops, the quota goes, and the restarted deployer deploys.
#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_release_is_retried_after_a_restart() {
    use k8s_openapi::api::core::v1::ResourceQuota;
    let (client, namespace) = fresh_namespace("sdp-retry").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &namespace);
    let quota: ResourceQuota = serde_json::from_value(
        json!({"metadata": {"name": "no-deployments"}, "spec": {"hard": {"count/deployments.apps": "0"}}}),
    )
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();

    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let dir = tempfile::tempdir().unwrap();
    let start = || start_deployer(&config, &namespace, dir.path(), Duration::from_secs(60));
    sdp_testkit::put_workflow_deployment(&config, "retry-workflow", "img:1").await;
    let status = || {
        let config = config.clone();
        async move {
            let s = sdp_testkit::deployment_state(&config, "retry-workflow").await;
            s.and_then(|s| s["status"].as_str().map(str::to_string)).unwrap_or_default()
        }
    };
    let deployer = start();
    eventually("the install failed on the quota", || async { status().await == "FAILED" }).await;
    let helm = helm_in(&namespace);
    eventually("helm holds a failed release", || async {
        helm.list().await.is_ok_and(|r| r.iter().any(|r| r.name == "retry-workflow" && r.status == "failed"))
    })
    .await;
    sdp_testkit::stop_task(deployer).await;

    quotas.delete("no-deployments", &Default::default()).await.unwrap();
    let restarted = start();
    eventually("deployed after the restart", || async { status().await == "DEPLOYED" }).await;
    sdp_testkit::stop_task(restarted).await;
    Api::<Namespace>::all(client).delete(&namespace, &Default::default()).await.unwrap();
    server.stop().await;
}

/// The seed era's testdask writes `stable/dask` with dotted values; that exact entry becomes a deployed release
/// of the bundled dask chart with the values it asked for, and a restarted deployer leaves it as it is.
#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_testdask_entry_becomes_a_deployed_release() {
    use k8s_openapi::api::apps::v1::Deployment;
    let (client, namespace) = fresh_namespace("sdp-seed-dask").await;
    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let dir = tempfile::tempdir().unwrap();

    let deployer = start_deployer(&config, &namespace, dir.path(), Duration::from_secs(5));
    sdp_testkit::put_helm_deployment(&config, "pb-seed-dask", sdp_testkit::seed_testdask_dask_args()).await;
    let status = || async {
        let s = sdp_testkit::deployment_state(&config, "pb-seed-dask").await;
        s.and_then(|s| s["status"].as_str().map(str::to_string)).unwrap_or_default()
    };
    eventually("the seed's Dask entry deployed", || async { status().await == "DEPLOYED" }).await;
    let helm = helm_in(&namespace);
    let releases = helm.list().await.unwrap();
    assert!(
        releases.iter().any(|r| r.name == "pb-seed-dask" && r.chart.starts_with("dask-") && r.status == "deployed"),
        "{releases:?}"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let workers = deployments.get("pb-seed-dask-worker").await.unwrap();
    assert_eq!(workers.spec.and_then(|s| s.replicas), Some(2));
    deployments.get("pb-seed-dask-scheduler").await.unwrap();
    sdp_testkit::stop_task(deployer).await;

    // Restarted: the release read back from helm (chart `dask`) is the entry's (`stable/dask`): no upgrade.
    let revision = |releases: Vec<sdp_helmdeploy::helm::Release>| {
        releases.into_iter().find(|r| r.name == "pb-seed-dask").map(|r| r.revision)
    };
    let before = revision(helm.list().await.unwrap());
    let restarted = start_deployer(&config, &namespace, dir.path(), Duration::from_secs(5));
    sdp_testkit::put_workflow_deployment(&config, "after-restart", "img:1").await;
    eventually("a later entry deployed", || async {
        sdp_testkit::deployment_state(&config, "after-restart").await.is_some_and(|s| s["status"] == "DEPLOYED")
    })
    .await;
    assert_eq!(revision(helm.list().await.unwrap()), before, "the restarted deployer upgraded the release");
    sdp_testkit::stop_task(restarted).await;
    Api::<Namespace>::all(client).delete(&namespace, &Default::default()).await.unwrap();
    server.stop().await;
}

/// helm on `namespace`, to look at the releases the deployer made.
fn helm_in(namespace: &str) -> Helm {
    Helm {
        bin: sdp_testkit::helm(),
        namespace: namespace.to_string(),
        charts_dir: None,
        repositories: Default::default(),
        repository_dir: None,
        oci_registries: vec![],
    }
}
