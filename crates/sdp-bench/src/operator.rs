//! `--operator N`: reconcile throughput of the Tango operator for N DeviceServers on the in-memory Kubernetes
//! API, and this process's memory (the operator's state plus the in-memory API) idle and under load.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use prometheus_client::registry::Registry;
use serde_json::json;
use tango_operator::controller::{reconcile_deviceserver, Context};
use tango_operator::crd::DeviceServer;
use tango_operator::fake_api::FakeApi;
use tango_operator::metrics::Metrics;
use tango_operator::objects::Settings;

const NS: &str = "bench";
/// Reconciles in flight, as kube-runtime's controller runs them by default (unbounded, here capped).
const CONCURRENCY: usize = 16;

fn path(name: &str) -> String {
    format!("/apis/tango.tango-controls.org/v1/namespaces/{NS}/deviceservers/{name}")
}

/// Reconciles every server once, `CONCURRENCY` at a time; returns the reconciles done.
async fn round(api: &FakeApi, ctx: &Arc<Context>, names: &[String]) -> usize {
    futures::stream::iter(names)
        .map(|name| {
            let ds: DeviceServer =
                serde_json::from_value(api.get(&path(name)).expect("stored")).expect("a DeviceServer");
            reconcile_deviceserver(Arc::new(ds), ctx.clone())
        })
        .buffer_unordered(CONCURRENCY)
        .map(|result| result.expect("reconcile"))
        .count()
        .await
}

pub async fn operator_bench(servers: usize) {
    let api = FakeApi::new();
    let mut registry = Registry::default();
    let ctx = Arc::new(Context::new(api.client(), Settings::default(), Metrics::new(&mut registry)));
    // Every second server depends on a device of the one before it, so half of them wait in the first round.
    let names: Vec<String> = (0..servers).map(|i| format!("server-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let depends_on = if i % 2 == 1 { vec![format!("bench/device/{}", i - 1)] } else { vec![] };
        api.put(
            &path(name),
            json!({
                "apiVersion": "tango.tango-controls.org/v1", "kind": "DeviceServer",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "image": "registry/bench:1", "dsname": "Bench", "args": name, "command": "/usr/local/bin/Bench",
                    "config": json!({"servers": {"Bench": {name: {"Bench": {format!("bench/device/{i}"): {}}}}}}).to_string(),
                    "dependsOn": depends_on,
                }
            }),
        );
    }
    let idle = crate::processes::status_mib("self", "VmRSS:");
    let started = Instant::now();
    let mut reconciles = 0;
    let mut rounds = 0;
    loop {
        rounds += 1;
        reconciles += round(&api, &ctx, &names).await;
        // Play the StatefulSet controller: every StatefulSet made has its pod ready.
        for statefulset in api.paths().into_iter().filter(|p| p.contains("/statefulsets/")) {
            api.patch(&statefulset, json!({"status": {"replicas": 1, "readyReplicas": 1}}));
        }
        let running = names.iter().filter(|n| api.get(&path(n)).unwrap()["status"]["state"] == "Running").count();
        if running == servers {
            break;
        }
    }
    let took = started.elapsed();
    println!("Tango operator, {servers} DeviceServers (half depending on another) on the in-memory Kubernetes API:");
    println!("  all Running after {rounds} rounds, {reconciles} reconciles in {:.2} s", took.as_secs_f64());
    println!(
        "  reconcile throughput: {:.0} reconciles/s ({} API requests)",
        reconciles as f64 / took.as_secs_f64(),
        api.requests()
    );
    println!(
        "  memory (this process: operator + in-memory API): idle {idle:.1} MiB, after load {:.1} MiB, peak {:.1} MiB",
        crate::processes::status_mib("self", "VmRSS:"),
        crate::processes::status_mib("self", "VmHWM:")
    );
}
