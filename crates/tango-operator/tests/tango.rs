//! Dependencies and device states through Tango itself, with real Tango peers on the host: PyTango's database
//! server and a PyTango device server. A DeviceServer waits for a device no DeviceServer of the namespace serves
//! (`tango://host:port/...`) until that device is exported there and answers a ping; a Running DeviceServer's
//! devices carry the state Tango reports, and UNKNOWN with the reason once they stop answering.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tango_operator::controller::{reconcile_deviceserver, Context};
use tango_operator::crd::DeviceServer;
use tango_operator::fake_api::FakeApi;
use tango_operator::metrics::Metrics;
use tango_operator::objects::Settings;

const NS: &str = "tango-checks";

fn ds_path(name: &str) -> String {
    format!("/apis/tango.tango-controls.org/v1/namespaces/{NS}/deviceservers/{name}")
}

/// A DeviceServer registered in the Tango database `database`, declaring `device`, depending on `depends_on`.
fn deviceserver(name: &str, database: &str, device: &str, depends_on: &[String]) -> Value {
    let config = json!({"servers": {"Probed": {name: {"Probed": {device: {}}}}}}).to_string();
    json!({
        "apiVersion": "tango.tango-controls.org/v1", "kind": "DeviceServer",
        "metadata": {"name": name, "namespace": NS, "uid": format!("6f1c2a9e-0000-4000-8000-00000000000{}", name.len() % 10)},
        "spec": {"image": "registry.example.org/probed:1", "dsname": "Probed", "command": "/probed", "databaseds": database,
                 "config": config, "dependsOn": depends_on}
    })
}

async fn reconcile(api: &FakeApi, ctx: &Arc<Context>, name: &str) -> Value {
    let ds: DeviceServer = serde_json::from_value(api.get(&ds_path(name)).unwrap()).unwrap();
    reconcile_deviceserver(Arc::new(ds), ctx.clone()).await.expect("reconcile succeeds");
    api.get(&ds_path(name)).unwrap()["status"].clone()
}

fn pods_ready(api: &FakeApi, name: &str) {
    let path = format!("/apis/apps/v1/namespaces/{NS}/statefulsets/deviceserver-{name}");
    api.patch(&path, json!({"status": {"replicas": 1, "readyReplicas": 1}}));
}

/// `fixtures/probed.py`: serves `device` in the Tango database at `tango_host`.
fn serve(tango_host: &str, device: &str) -> sdp_testkit::KillOnDrop {
    let child: Child = Command::new(sdp_testkit::pytango_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/probed.py"))
        .args(["1", device])
        .env("TANGO_HOST", tango_host)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the PyTango device server");
    sdp_testkit::KillOnDrop(child)
}

#[tokio::test(flavor = "multi_thread")]
async fn dependencies_and_device_states_come_from_tango() {
    let dir = tempfile::tempdir().unwrap();
    let tango = sdp_testkit::TangoDatabase::start(dir.path());
    let database = tango.tango_host();
    let api = FakeApi::new();
    let mut registry = prometheus_client::registry::Registry::default();
    let ctx = Arc::new(Context::new(api.client(), Settings::default(), Metrics::new(&mut registry)));

    // Depends on a device outside the namespace's DeviceServers, named with its Tango database: not defined yet.
    let dependency = format!("tango://{database}/test/probed/1");
    api.put(&ds_path("waiter"), deviceserver("waiter", &database, "test/waiter/1", &[dependency]));
    // (PyTango's database server answers an unknown device with PyDs_UnexpectedFailure, cppTango's with
    // DB_DeviceNotDefined.)
    let status = reconcile(&api, &ctx, "waiter").await;
    let waiting = format!("Waiting(test/probed/1 (Tango database {database}): ");
    assert!(status["state"].as_str().unwrap().starts_with(&waiting), "{status}");

    // Served on the host: once exported and answering, the StatefulSet is made.
    let server = serve(&database, "test/probed/1");
    sdp_testkit::eventually("the waiter no longer Waiting", Duration::from_secs(60), || async {
        reconcile(&api, &ctx, "waiter").await["state"] == "Building"
    })
    .await;
    pods_ready(&api, "waiter");
    let status = reconcile(&api, &ctx, "waiter").await;
    assert_eq!(status["state"], "Running");
    // Its own device is served by nobody: Tango says so.
    assert_eq!(
        (status["devices"][0]["state"].as_str(), status["devicereadycount"].as_i64()),
        (Some("UNKNOWN"), Some(0))
    );
    assert!(status["devices"][0]["status"].as_str().is_some_and(|s| !s.is_empty()), "{status}");

    // A DeviceServer whose device answers: its state as Tango reports it.
    api.put(&ds_path("served"), deviceserver("served", &database, "test/probed/1", &[]));
    reconcile(&api, &ctx, "served").await;
    pods_ready(&api, "served");
    let status = reconcile(&api, &ctx, "served").await;
    assert_eq!(status["state"], "Running");
    assert_eq!((status["devices"][0]["state"].as_str(), status["devicereadycount"].as_i64()), (Some("ON"), Some(1)));
    assert_eq!(status["devices"][0].get("status"), None, "{status}");

    // The device goes: the next look says so.
    drop(server);
    sdp_testkit::eventually("the device no longer answering", Duration::from_secs(30), || async {
        reconcile(&api, &ctx, "served").await["devices"][0]["state"] == "UNKNOWN"
    })
    .await;
    let status = reconcile(&api, &ctx, "served").await;
    assert_eq!(status["devicereadycount"], 0);
    assert!(status["devices"][0]["status"].as_str().is_some_and(|s| !s.is_empty()), "{status}");
}
