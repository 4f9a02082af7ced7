//! The Kubernetes control plane tests run against (`scripts/k8s-testbed`, started by `scripts/test`, or the
//! cluster `KUBECONFIG` names) does what the other suites rely on: pods reach Running/Ready on the simulated
//! nodes and go with their Deployment, the real helm installs and uninstalls, CRDs are served and their
//! schemas enforced by the API server.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::Api;
use serde_json::json;

async fn client_and_namespace(prefix: &str) -> (kube::Client, String) {
    sdp_testkit::require_cluster();
    let client = kube::Client::try_default().await.expect("a Kubernetes client from KUBECONFIG");
    let name = format!("{prefix}-{}", std::process::id());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    (client, name)
}

async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    sdp_testkit::eventually(what, Duration::from_secs(60), check).await
}

fn ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test]
async fn a_deployment_runs_on_simulated_nodes_and_goes() {
    let (client, ns) = client_and_namespace("smoke").await;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments.create(&PostParams::default(), &deployment).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    eventually("two pods Running and Ready on nodes", || async {
        let list = pods.list(&Default::default()).await.unwrap().items;
        list.len() == 2 && list.iter().all(|p| ready(p) && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
    })
    .await;
    deployments.delete("web", &Default::default()).await.unwrap();
    eventually("pods gone with their Deployment", || async {
        pods.list(&Default::default()).await.unwrap().items.is_empty()
    })
    .await;
    Api::<Namespace>::all(client).delete(&ns, &Default::default()).await.unwrap();
}

#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test]
async fn helm_installs_and_uninstalls_a_chart() {
    let (client, ns) = client_and_namespace("helm").await;
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/charts/hello");
    let helm = |args: &[&str]| {
        let out = Command::new(sdp_testkit::helm()).args(args).args(["--namespace", &ns]).output().unwrap();
        assert!(out.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    helm(&["install", "hello", chart]);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    assert_eq!(config_maps.get("hello-config").await.unwrap().data.unwrap()["greeting"], "hello");
    eventually("the chart's pod Running", || async {
        pods.list(&Default::default()).await.unwrap().items.iter().any(ready)
    })
    .await;
    helm(&["uninstall", "hello"]);
    assert!(config_maps.get_opt("hello-config").await.unwrap().is_none());
    eventually("the chart's pods gone", || async { pods.list(&Default::default()).await.unwrap().items.is_empty() })
        .await;
    Api::<Namespace>::all(client).delete(&ns, &Default::default()).await.unwrap();
}

#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test]
async fn custom_resources_are_validated_by_the_server() {
    let (client, ns) = client_and_namespace("crd").await;
    let group = format!("g{}.example.org", std::process::id());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "required": ["size"],
                         "properties": {"size": {"type": "integer", "minimum": 1}}}}}}}]}
    }))
    .unwrap();
    sdp_testkit::cluster::apply_crd(&client, &crd).await;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
    let widget = |name: &str, size: i64| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": name}, "spec": {"size": size}})).unwrap()
    };
    widgets.create(&PostParams::default(), &widget("good", 3)).await.unwrap();
    let err = widgets.create(&PostParams::default(), &widget("bad", 0)).await.unwrap_err().to_string();
    assert!(err.contains("spec.size") && err.contains("should be greater than or equal to 1"), "{err}");
    let crd_name = crd.metadata.name.clone().unwrap();
    Api::<CustomResourceDefinition>::all(client.clone()).delete(&crd_name, &Default::default()).await.unwrap();
    Api::<Namespace>::all(client).delete(&ns, &Default::default()).await.unwrap();
}
