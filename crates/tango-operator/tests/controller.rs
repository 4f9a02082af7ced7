//! The reconcilers against an in-memory Kubernetes API: objects applied with owner references, Building →
//! Running when the pods are ready, Waiting on a missing dependency until it runs, a bad spec → Error with the
//! reason and nothing made, DatabaseDS starts DataBaseds only once its Tango DB is ready.

use std::sync::Arc;

use kube::runtime::controller::Action;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use tango_operator::controller::{reconcile_databaseds, reconcile_deviceserver, Context};
use tango_operator::crd::{DatabaseDS, DeviceServer};
use tango_operator::fake_api::FakeApi;
use tango_operator::metrics::Metrics;
use tango_operator::objects::Settings;

const NS: &str = "ska-tango-examples";

fn context(api: &FakeApi) -> (Arc<Context>, Registry) {
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    (Arc::new(Context::new(api.client(), Settings::default(), metrics)), registry)
}

fn sample(kind: &str, name: &str) -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/all-in-one.yaml")).unwrap();
    let found = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .find(|v: &Value| v["kind"] == kind && v["metadata"]["name"] == name);
    found.unwrap_or_else(|| panic!("{kind} {name} in the sample"))
}

fn ds_path(name: &str) -> String {
    format!("/apis/tango.tango-controls.org/v1/namespaces/{NS}/deviceservers/{name}")
}

fn db_path(name: &str) -> String {
    format!("/apis/tango.tango-controls.org/v1/namespaces/{NS}/databaseds/{name}")
}

fn sts_path(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{name}")
}

/// Creates the resource in the API (as kubectl would) and returns its path.
fn create(api: &FakeApi, mut resource: Value) -> String {
    let name = resource["metadata"]["name"].as_str().unwrap().to_owned();
    resource["metadata"]["namespace"] = json!(NS);
    let path = if resource["kind"] == "DatabaseDS" { db_path(&name) } else { ds_path(&name) };
    api.put(&path, resource);
    path
}

async fn reconcile_ds(api: &FakeApi, ctx: &Arc<Context>, name: &str) -> Action {
    let ds: DeviceServer = serde_json::from_value(api.get(&ds_path(name)).unwrap()).unwrap();
    reconcile_deviceserver(Arc::new(ds), ctx.clone()).await.expect("reconcile succeeds")
}

async fn reconcile_db(api: &FakeApi, ctx: &Arc<Context>, name: &str) -> Action {
    let db: DatabaseDS = serde_json::from_value(api.get(&db_path(name)).unwrap()).unwrap();
    reconcile_databaseds(Arc::new(db), ctx.clone()).await.expect("reconcile succeeds")
}

fn state(api: &FakeApi, path: &str) -> String {
    api.get(path).unwrap()["status"]["state"].as_str().unwrap_or("").to_owned()
}

/// What the StatefulSet controller and the kubelet would report once the pods are ready.
fn pods_ready(api: &FakeApi, statefulset: &str) {
    api.patch(&sts_path(statefulset), json!({"status": {"replicas": 1, "readyReplicas": 1}}));
}

fn events(api: &FakeApi) -> Vec<Value> {
    api.paths().iter().filter(|p| p.starts_with("/apis/events.k8s.io/v1/")).map(|p| api.get(p).unwrap()).collect()
}

#[tokio::test]
async fn deviceserver_is_built_then_runs() {
    let api = FakeApi::new();
    let (ctx, registry) = context(&api);
    let path = create(&api, sample("DeviceServer", "tangotest-test"));
    let uid = api.get(&path).unwrap()["metadata"]["uid"].clone();

    reconcile_ds(&api, &ctx, "tangotest-test").await;
    for kind in ["/api/v1/namespaces/ska-tango-examples/configmaps", "/api/v1/namespaces/ska-tango-examples/services"] {
        let object = api.get(&format!("{kind}/deviceserver-tangotest-test")).expect("made");
        assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], uid);
        assert_eq!(object["metadata"]["ownerReferences"][0]["controller"], true);
    }
    let statefulset = api.get(&sts_path("deviceserver-tangotest-test")).expect("StatefulSet made");
    assert_eq!(statefulset["metadata"]["ownerReferences"][0]["kind"], "DeviceServer");
    assert_eq!(
        statefulset["spec"]["template"]["spec"]["containers"][0]["image"],
        "artefact.skao.int/ska-tango-images-tango-test:3.10.1"
    );
    assert_eq!(state(&api, &path), "Building");
    let status = &api.get(&path).unwrap()["status"];
    assert_eq!((status["devicecount"].as_i64(), status["devicereadycount"].as_i64()), (Some(1), Some(0)));

    pods_ready(&api, "deviceserver-tangotest-test");
    let action = reconcile_ds(&api, &ctx, "tangotest-test").await;
    assert_eq!(state(&api, &path), "Running");
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(300)));
    let status = &api.get(&path).unwrap()["status"];
    assert_eq!(status["succeeded"], 1);
    assert_eq!(status["devices"][0]["name"], "sys/tg_test/1");
    assert_eq!(status["devices"][0]["class"], "TangoTest");
    // Its device as Tango reports it: no Tango database answers here (tests/tango.rs has one that does).
    assert_eq!(
        (status["devices"][0]["state"].as_str(), status["devicereadycount"].as_i64()),
        (Some("UNKNOWN"), Some(0))
    );
    assert!(status["devices"][0]["status"].as_str().unwrap().starts_with("API_CantConnectToDatabase"), "{status}");

    // Nothing changed: no new status write.
    let version = api.get(&path).unwrap()["metadata"]["resourceVersion"].clone();
    reconcile_ds(&api, &ctx, "tangotest-test").await;
    assert_eq!(api.get(&path).unwrap()["metadata"]["resourceVersion"], version);

    let reasons: Vec<Value> = events(&api).iter().map(|e| e["reason"].clone()).collect();
    assert_eq!(reasons, [json!("Building"), json!("Running")]);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("controller_runtime_reconcile_total{controller=\"deviceserver\",result=\"requeue_after\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("tango_operator_state_transitions_total{controller=\"deviceserver\",state=\"Running\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn missing_dependency_waits_then_runs_when_it_appears() {
    let api = FakeApi::new();
    let (ctx, _) = context(&api);
    let receiver = create(&api, sample("DeviceServer", "eventreceiver-test"));

    reconcile_ds(&api, &ctx, "eventreceiver-test").await;
    // No DeviceServer of the namespace declares it: Tango is asked, and its database does not answer here.
    assert!(
        state(&api, &receiver).starts_with(
            "Waiting(sys/tg_test/1 (Tango database databaseds-tango-base.ska-tango-examples.svc.cluster.local:10000): \
             API_CantConnectToDatabase"
        ),
        "{}",
        state(&api, &receiver)
    );
    assert!(api.get(&sts_path("deviceserver-eventreceiver-test")).is_none(), "no StatefulSet while waiting");
    assert!(api.get("/api/v1/namespaces/ska-tango-examples/configmaps/deviceserver-eventreceiver-test").is_some());

    let tangotest = create(&api, sample("DeviceServer", "tangotest-test"));
    reconcile_ds(&api, &ctx, "tangotest-test").await;
    reconcile_ds(&api, &ctx, "eventreceiver-test").await;
    assert_eq!(state(&api, &receiver), "Waiting(sys/tg_test/1 (DeviceServer tangotest-test) is not Running)");

    pods_ready(&api, "deviceserver-tangotest-test");
    reconcile_ds(&api, &ctx, "tangotest-test").await;
    assert_eq!(state(&api, &tangotest), "Running");
    reconcile_ds(&api, &ctx, "eventreceiver-test").await;
    assert_eq!(state(&api, &receiver), "Building");
    pods_ready(&api, "deviceserver-eventreceiver-test");
    reconcile_ds(&api, &ctx, "eventreceiver-test").await;
    assert_eq!(state(&api, &receiver), "Running");
}

#[tokio::test]
async fn deviceserver_waits_for_its_databaseds() {
    let api = FakeApi::new();
    let (ctx, _) = context(&api);
    create(&api, sample("DatabaseDS", "databaseds-tango-base"));
    let path = create(&api, sample("DeviceServer", "tangotest-test"));
    reconcile_ds(&api, &ctx, "tangotest-test").await;
    assert_eq!(state(&api, &path), "Waiting(databaseds databaseds-tango-base is not Running)");
    api.patch(&db_path("databaseds-tango-base"), json!({"status": {"state": "Running"}}));
    reconcile_ds(&api, &ctx, "tangotest-test").await;
    assert_eq!(state(&api, &path), "Building");
}

#[tokio::test]
async fn bad_spec_is_an_error_with_the_reason_and_makes_nothing() {
    let api = FakeApi::new();
    let (ctx, _) = context(&api);
    let mut broken = sample("DeviceServer", "tangotest-test");
    broken["spec"]["config"] = json!("{\"servers\": {\"TangoTest\": ");
    let path = create(&api, broken);
    let action = reconcile_ds(&api, &ctx, "tangotest-test").await;
    assert_eq!(action, Action::await_change());
    let state = state(&api, &path);
    assert!(state.starts_with("Error(config is not valid dsconfig JSON: EOF while parsing"), "{state}");
    assert_eq!(api.paths().iter().filter(|p| p.contains("deviceserver-tangotest-test")).count(), 0);
    let warning = events(&api).into_iter().find(|e| e["type"] == "Warning").expect("a Warning event");
    assert!(warning["note"].as_str().unwrap().contains("config is not valid"));

    // Fixing the spec recovers.
    api.patch(&path, json!({"spec": {"config": "{\"servers\": {}}"}}));
    reconcile_ds(&api, &ctx, "tangotest-test").await;
    assert_eq!(self::state(&api, &path), "Building");
}

#[tokio::test]
async fn crashing_pod_is_an_error() {
    let api = FakeApi::new();
    let (ctx, _) = context(&api);
    let path = create(&api, sample("DeviceServer", "tangotest-test"));
    reconcile_ds(&api, &ctx, "tangotest-test").await;
    api.put(
        &format!("/api/v1/namespaces/{NS}/pods/deviceserver-tangotest-test-0"),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "deviceserver-tangotest-test-0", "namespace": NS,
                            "labels": {"app.kubernetes.io/name": "deviceserver", "app.kubernetes.io/instance": "tangotest-test"}},
               "status": {"phase": "Running", "containerStatuses": [{"name": "deviceserver", "ready": false,
                          "restartCount": 4, "image": "i", "imageID": "",
                          "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}}}]}}),
    );
    reconcile_ds(&api, &ctx, "tangotest-test").await;
    assert_eq!(
        state(&api, &path),
        "Error(pod deviceserver-tangotest-test-0 container deviceserver: CrashLoopBackOff: back-off 1m20s)"
    );
}

#[tokio::test]
async fn databaseds_starts_its_server_once_the_tango_db_is_ready() {
    let api = FakeApi::new();
    let (ctx, _) = context(&api);
    let path = create(&api, sample("DatabaseDS", "databaseds-tango-base"));
    reconcile_db(&api, &ctx, "databaseds-tango-base").await;
    assert_eq!(state(&api, &path), "Building");
    for made in [
        "/api/v1/namespaces/ska-tango-examples/configmaps/databaseds-databaseds-tango-base",
        "/api/v1/namespaces/ska-tango-examples/persistentvolumeclaims/databaseds-tangodb-databaseds-tango-base",
        "/api/v1/namespaces/ska-tango-examples/services/databaseds-tangodb-databaseds-tango-base",
        "/api/v1/namespaces/ska-tango-examples/services/databaseds-tango-base",
    ] {
        assert!(api.get(made).is_some(), "{made}");
    }
    let claim = api
        .get("/api/v1/namespaces/ska-tango-examples/persistentvolumeclaims/databaseds-tangodb-databaseds-tango-base");
    assert_eq!(claim.unwrap()["spec"]["storageClassName"], "nfss1");
    assert!(api.get(&sts_path("databaseds-tangodb-databaseds-tango-base")).is_some());
    assert!(api.get(&sts_path("databaseds-ds-databaseds-tango-base")).is_none(), "DataBaseds waits for the Tango DB");

    pods_ready(&api, "databaseds-tangodb-databaseds-tango-base");
    reconcile_db(&api, &ctx, "databaseds-tango-base").await;
    assert!(api.get(&sts_path("databaseds-ds-databaseds-tango-base")).is_some());
    assert_eq!(state(&api, &path), "Building");
    assert_eq!(api.get(&path).unwrap()["status"]["succeeded"], 1);

    pods_ready(&api, "databaseds-ds-databaseds-tango-base");
    reconcile_db(&api, &ctx, "databaseds-tango-base").await;
    assert_eq!(state(&api, &path), "Running");
    assert_eq!(api.get(&path).unwrap()["status"]["succeeded"], 2);
}
