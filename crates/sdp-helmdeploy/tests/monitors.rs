//! The pod and NetworkAttachmentDefinition monitors against kube-rs's mocked API service, fed real
//! Kubernetes JSON (list, then watch events), writing into the embedded configuration database.

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (kube::Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "sdp"), handle)
}

/// Answers the next request, which must be a list (`watch` false) or a watch (`watch` true) of `path`.
async fn answer(handle: &mut Handle, path: &str, watch: bool, body: String) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("the monitor did not ask the API server")
        .expect("request");
    let uri = request.uri().to_string();
    assert!(uri.starts_with(path), "{uri} is not under {path}");
    assert_eq!(uri.contains("watch=true"), watch, "{uri}");
    send.send_response(Response::builder().body(Body::from(body.into_bytes())).unwrap());
}

fn list(kind: &str, items: Vec<Value>) -> String {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "100"}, "items": items}).to_string()
}

fn events(events: &[(&str, Value)]) -> String {
    events.iter().map(|(t, o)| format!("{}\n", json!({"type": t, "object": o}))).collect()
}

fn pod(name: &str, release: &str, phase: &str, ready: bool, rv: u32) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "sdp", "resourceVersion": rv.to_string(), "uid": format!("uid-{name}"),
                     "labels": {"app.kubernetes.io/instance": release, "app.kubernetes.io/managed-by": "Helm"}},
        "spec": {"containers": [{"name": "workflow", "image": "example/workflow:1"}], "nodeName": "kwok-node-0"},
        "status": {"phase": phase, "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": if ready { "True" } else { "False" }}
        ]}
    })
}

async fn state(config: &sdp_config::Config, id: &'static str) -> Option<Value> {
    config.txn(|t| async move { t.get_deployment_state(id).await }).await.unwrap()
}

#[tokio::test]
async fn pod_events_become_deployment_states() {
    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    for id in ["d1", "d2"] {
        let d =
            sdp_config::Deployment { deploy_id: id.into(), kind: "helm".into(), args: json!({"chart": "workflow"}) };
        config
            .txn(|t| {
                let d = d.clone();
                async move { t.create_deployment(&d).await }
            })
            .await
            .unwrap();
    }
    let (client, mut handle) = mock_client();
    let monitor = tokio::spawn(sdp_helmdeploy::pods::monitor(client, "sdp".into(), config.clone(), Default::default()));
    let pods = "/api/v1/namespaces/sdp/pods";

    answer(&mut handle, pods, false, list("PodList", vec![pod("d1-a", "d1", "Pending", false, 10)])).await;
    let wait = |id: &'static str, expected: Value| {
        let config = config.clone();
        async move {
            sdp_testkit::eventually(&format!("{id} state {expected}"), Duration::from_secs(10), || async {
                state(&config, id).await.is_some_and(|s| s["pods"] == expected)
            })
            .await
        }
    };
    wait("d1", json!({"d1-a": {"status": "PENDING"}})).await;

    let watch = events(&[
        ("MODIFIED", pod("d1-a", "d1", "Running", true, 11)),
        ("ADDED", pod("d2-a", "d2", "Running", false, 12)),
        ("ADDED", pod("ghost-a", "not-a-deployment", "Running", true, 13)),
    ]);
    answer(&mut handle, pods, true, watch).await;
    wait("d1", json!({"d1-a": {"status": "RUNNING"}})).await;
    wait("d2", json!({"d2-a": {"status": "PENDING"}})).await;

    // The watch ends; the monitor watches again from the last version it saw: a pod failed, another went away.
    let watch = events(&[
        ("MODIFIED", pod("d1-a", "d1", "Failed", false, 14)),
        ("DELETED", pod("d2-a", "d2", "Running", false, 15)),
    ]);
    answer(&mut handle, pods, true, watch).await;
    wait("d1", json!({"d1-a": {"status": "FAILED"}})).await;
    wait("d2", json!({})).await;
    // Pods of releases without an entry leave no state behind.
    assert!(config.txn(|t| async move { t.get("/deploy/not-a-deployment/state").await }).await.unwrap().is_none());
    sdp_testkit::stop_task(monitor).await;
    server.stop().await;
}

fn nad(name: &str, labelled: bool, network: Option<&str>, rv: u32) -> Value {
    let mut config = json!({"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0"});
    if let Some(net) = network {
        config["ipam"] = json!({"type": "whereabouts", "range": net});
    }
    let labels = if labelled { json!({"sdp.skao.int/available-for-allocation": "true"}) } else { json!({}) };
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "sdp", "resourceVersion": rv.to_string(), "labels": labels},
        "spec": {"config": config.to_string()}
    })
}

#[tokio::test]
async fn labelled_network_definitions_become_resources() {
    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    // An entry left by an earlier run for a definition that is gone.
    config.txn(|t| async move { t.create("/resource/supernet/sdp/old", "{}", None).await }).await.unwrap();
    let (client, mut handle) = mock_client();
    let monitor = tokio::spawn(sdp_helmdeploy::resources::monitor(client, config.clone(), Default::default()));
    let nads = "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions";
    let keys = || {
        let config = config.clone();
        async move { config.txn(|t| async move { t.list_keys("/resource/", 8).await }).await.unwrap() }
    };

    answer(
        &mut handle,
        nads,
        false,
        list("NetworkAttachmentDefinitionList", vec![nad("vis", true, Some("10.1.0.0/16"), 5)]),
    )
    .await;
    sdp_testkit::eventually("two entries for vis, none for old", Duration::from_secs(10), || async {
        keys().await == ["/resource/network-attachment-definition/sdp/vis", "/resource/supernet/sdp/vis"]
    })
    .await;
    let supernet: Value =
        config.txn(|t| async move { t.get_json("/resource/supernet/sdp/vis").await }).await.unwrap().unwrap();
    assert_eq!(supernet["network"], "10.1.0.0/16");

    // Another is labelled; then vis loses its label (the API server sends that as DELETED to a label-selected watch).
    let watch =
        events(&[("ADDED", nad("other", true, None, 6)), ("DELETED", nad("vis", false, Some("10.1.0.0/16"), 7))]);
    answer(&mut handle, nads, true, watch).await;
    sdp_testkit::eventually("only other's definition", Duration::from_secs(10), || async {
        keys().await == ["/resource/network-attachment-definition/sdp/other"]
    })
    .await;
    sdp_testkit::stop_task(monitor).await;
    server.stop().await;
}

/// The watch asks for the label the platform allocates by.
#[tokio::test]
async fn the_watch_selects_the_allocation_label() {
    let server = sdp_testkit::Embedded::start().await;
    let (client, mut handle) = mock_client();
    let monitor = tokio::spawn(sdp_helmdeploy::resources::monitor(client, server.config().await, Default::default()));
    let (request, _send) = handle.next_request().await.unwrap();
    let uri = request.uri().to_string();
    assert!(uri.contains("labelSelector=sdp.skao.int%2Favailable-for-allocation%3Dtrue"), "{uri}");
    sdp_testkit::stop_task(monitor).await;
    server.stop().await;
}
