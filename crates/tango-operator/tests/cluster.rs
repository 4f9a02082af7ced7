//! End to end on a real Kubernetes API (the local control plane of `scripts/k8s-testbed`, which `scripts/test`
//! starts, or any cluster `KUBECONFIG` names): the chart's generated CRDs are accepted and established, the
//! sample manifests pass the server's validation and a malformed one does not, a DatabaseDS and two
//! DeviceServers (one depending on the other) reach Running with owned StatefulSets, Services and ConfigMaps,
//! and deleting a resource garbage-collects what it made; the umbrella chart with `global.operator=true` comes up
//! through the operator (the Tango database first, then the SDP devices) and uninstalls without leftovers.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{json, Value};
use tango_operator::controller::{self, Context};
use tango_operator::crd::{DatabaseDS, DeviceServer};
use tango_operator::metrics::Metrics;
use tango_operator::objects::Settings;

fn documents(file: &str) -> Vec<Value> {
    let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).collect()
}

async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    sdp_testkit::eventually(what, Duration::from_secs(120), check).await
}

/// Applies the CRDs of the operator's chart (what `helm install` would) and waits until they are served.
async fn install_crds(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for file in ["tango.tango-controls.org_databaseds.yaml", "tango.tango-controls.org_deviceservers.yaml"] {
        let crd = &documents(&format!("../../charts/ska-tango-operator/crds/{file}"))[0];
        let name = crd["metadata"]["name"].as_str().unwrap();
        crds.patch(name, &PatchParams::apply("tango-operator-test").force(), &Patch::Apply(crd)).await.unwrap();
        eventually(&format!("CRD {name} established"), || async {
            let crd = crds.get(name).await.unwrap();
            crd.status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
        .await;
    }
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
}

/// The operator's controllers running in this process for one namespace, retrying every second.
struct Operator {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    fn start(client: &kube::Client, namespace: &str) -> Operator {
        let mut registry = Registry::default();
        let mut ctx = Context::new(client.clone(), Settings::default(), Metrics::new(&mut registry));
        ctx.retry = Duration::from_secs(1);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(Arc::new(ctx), Some(namespace.to_string()), async {
            stopped.await.ok();
        }));
        Operator { stop, task }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task).await.expect("the operator stops").unwrap();
    }
}

#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test(flavor = "multi_thread")]
async fn samples_reach_running_and_are_garbage_collected() {
    sdp_testkit::require_cluster();
    let client = kube::Client::try_default().await.expect("a Kubernetes client from KUBECONFIG");
    install_crds(&client).await;
    let namespace = format!("tango-e2e-{}", std::process::id());
    create_namespace(&client, &namespace).await;
    let servers: Api<DeviceServer> = Api::namespaced(client.clone(), &namespace);
    let databases: Api<DatabaseDS> = Api::namespaced(client.clone(), &namespace);

    // The server validates against the generated schema: the samples pass, the malformed one names its faults.
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    for sample in documents("tests/fixtures/all-in-one.yaml") {
        match sample["kind"].as_str() {
            Some("DatabaseDS") => {
                drop(databases.create(&dry_run, &serde_json::from_value(sample).unwrap()).await.unwrap())
            }
            _ => drop(servers.create(&dry_run, &serde_json::from_value(sample).unwrap()).await.unwrap()),
        }
    }
    let malformed = &documents("tests/fixtures/malformed.yaml")[0];
    let dynamic: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), &namespace, &kube::api::ApiResource::erase::<DeviceServer>(&()));
    let error = dynamic.create(&dry_run, &serde_json::from_value(malformed.clone()).unwrap()).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("spec.dsname: Required value"), "{message}");
    assert!(message.contains("spec.dependsOn: Invalid value: \"string\""), "{message}");

    let operator = Operator::start(&client, &namespace);

    // The dependent server first: it waits for its dependency, which waits for the database.
    for sample in documents("tests/fixtures/all-in-one.yaml").into_iter().rev() {
        let mut sample = sample;
        if sample["kind"] == "DatabaseDS" {
            sample["spec"]["usePV"] = json!(false); // no storage provisioner on the local control plane
            databases.create(&PostParams::default(), &serde_json::from_value(sample).unwrap()).await.unwrap();
        } else {
            servers.create(&PostParams::default(), &serde_json::from_value(sample).unwrap()).await.unwrap();
        }
    }
    // It waits first (for the database, then for sys/tg_test/1; how long each lasts depends on the load, so
    // only the first wait is sure to be seen).
    eventually("eventreceiver-test Waiting", || async {
        let state = servers.get_status("eventreceiver-test").await.unwrap().status.map(|s| s.state).unwrap_or_default();
        state.starts_with("Waiting(")
    })
    .await;
    eventually("the DatabaseDS Running", || async {
        databases.get_status("databaseds-tango-base").await.unwrap().status.is_some_and(|s| s.state == "Running")
    })
    .await;
    eventually("eventreceiver-test Running", || async {
        servers.get_status("eventreceiver-test").await.unwrap().status.is_some_and(|s| s.state == "Running")
    })
    .await;
    let dependency = servers.get_status("tangotest-test").await.unwrap().status.map(|s| s.state);
    assert_eq!(dependency.as_deref(), Some("Running"), "eventreceiver-test runs once what it needs runs");
    // Its device is asked through Tango, which no pod serves on simulated nodes: reported, not ready.
    let receiver = servers.get("eventreceiver-test").await.unwrap();
    let status = receiver.status.as_ref().unwrap();
    assert_eq!((status.devicecount, status.devicereadycount), (1, 0));
    assert_eq!(status.devices[0].state.as_deref(), Some("UNKNOWN"));

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let owner_uid = |o: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        o.owner_references.as_ref().and_then(|r| r.first()).map(|r| r.uid.clone())
    };
    let object = "deviceserver-eventreceiver-test";
    assert_eq!(owner_uid(&statefulsets.get(object).await.unwrap().metadata), receiver.uid());
    assert_eq!(owner_uid(&services.get(object).await.unwrap().metadata), receiver.uid());
    assert_eq!(owner_uid(&config_maps.get(object).await.unwrap().metadata), receiver.uid());
    let database = databases.get("databaseds-tango-base").await.unwrap();
    for name in ["databaseds-tangodb-databaseds-tango-base", "databaseds-ds-databaseds-tango-base"] {
        assert_eq!(owner_uid(&statefulsets.get(name).await.unwrap().metadata), database.uid());
    }
    assert_eq!(owner_uid(&services.get("databaseds-tango-base").await.unwrap().metadata), database.uid());

    servers.delete("eventreceiver-test", &DeleteParams::default()).await.unwrap();
    eventually("the deleted DeviceServer's objects garbage-collected", || async {
        statefulsets.get_opt(object).await.unwrap().is_none()
            && services.get_opt(object).await.unwrap().is_none()
            && config_maps.get_opt(object).await.unwrap().is_none()
    })
    .await;
    assert!(statefulsets.get_opt("deviceserver-tangotest-test").await.unwrap().is_some(), "the other server stays");

    operator.stop().await;
    Api::<Namespace>::all(client).delete(&namespace, &DeleteParams::default()).await.unwrap();
}

#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test(flavor = "multi_thread")]
async fn one_replica_leads_and_another_takes_over_when_it_stops() {
    sdp_testkit::require_cluster();
    use tango_operator::leader::LeaderElection;
    let client = kube::Client::try_default().await.expect("a Kubernetes client from KUBECONFIG");
    let namespace = format!("tango-lease-{}", std::process::id());
    create_namespace(&client, &namespace).await;
    let replica = |id: &str| {
        LeaderElection::new(client.clone(), &namespace, "ska-tango-operator", id.into(), Duration::from_secs(3))
    };
    let (first, second) = (replica("first"), replica("second"));
    first.acquire().await;
    let leading = tokio::spawn(async move { first.hold().await });
    assert!(
        tokio::time::timeout(Duration::from_secs(5), second.acquire()).await.is_err(),
        "the second replica must not lead while the first renews"
    );
    // The leader stops renewing, as a crashed replica would.
    sdp_testkit::stop_task(leading).await;
    tokio::time::timeout(Duration::from_secs(15), second.acquire()).await.expect("the second replica takes over");
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), &namespace)
        .get("ska-tango-operator")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("second"));
    assert_eq!(spec.lease_transitions, Some(1));
    Api::<Namespace>::all(client).delete(&namespace, &DeleteParams::default()).await.unwrap();
}

/// The binary as the chart runs it: leader election on, one namespace, probes and metrics over HTTP.
#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_binary_serves_probes_and_metrics() {
    sdp_testkit::require_cluster();
    let client = kube::Client::try_default().await.expect("a Kubernetes client from KUBECONFIG");
    install_crds(&client).await;
    let namespace = format!("tango-bin-{}", std::process::id());
    create_namespace(&client, &namespace).await;
    let port = sdp_testkit::free_port();
    let _operator = sdp_testkit::KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_ska-tango-operator"))
            .arg("run")
            .env("OPERATOR_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env("WATCH_NAMESPACE", &namespace)
            .env("POD_NAMESPACE", &namespace)
            .env("LEADER_ELECT", "true")
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    sdp_testkit::wait_for_port(port, Duration::from_secs(20), "the operator's HTTP endpoints");
    let get = |path: &str| {
        let path = path.to_owned();
        async move {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
            let mut response = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response).await.unwrap();
            response
        }
    };
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    eventually("/readyz 200 once leading", || async { get("/readyz").await.starts_with("HTTP/1.1 200") }).await;

    let servers: Api<DeviceServer> = Api::namespaced(client.clone(), &namespace);
    let sample =
        documents("tests/fixtures/all-in-one.yaml").into_iter().find(|d| d["metadata"]["name"] == "tangotest-test");
    servers.create(&PostParams::default(), &serde_json::from_value(sample.unwrap()).unwrap()).await.unwrap();
    eventually("tangotest-test Running under the binary", || async {
        servers.get_status("tangotest-test").await.unwrap().status.is_some_and(|s| s.state == "Running")
    })
    .await;
    let metrics = get("/metrics").await;
    assert!(metrics.contains("controller_runtime_reconcile_total{controller=\"deviceserver\""), "{metrics}");
    assert!(
        metrics.contains("tango_operator_state_transitions_total{controller=\"deviceserver\",state=\"Running\"} 1"),
        "{metrics}"
    );
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), &namespace);
    assert!(lease.get("ska-tango-operator").await.unwrap().spec.unwrap().holder_identity.is_some());
    Api::<Namespace>::all(client).delete(&namespace, &DeleteParams::default()).await.unwrap();
}

/// `kubectl get <short name>` must reach our resources and hide nothing built in: no short name of the CRDs
/// may equal one that a built-in resource of the API server declares (as `ds` is DaemonSets').
#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test(flavor = "multi_thread")]
async fn short_names_clash_with_no_built_in_resource() {
    use kube::CustomResourceExt;
    sdp_testkit::require_cluster();
    let client = kube::Client::try_default().await.expect("a Kubernetes client from KUBECONFIG");
    let mut lists = vec![client.list_core_api_resources("v1").await.unwrap()];
    for group in client.list_api_groups().await.unwrap().groups {
        // Built-in groups only: a group served by a CRD (ours, or another project's) is not built in.
        if group.name.contains('.') && !group.name.ends_with(".k8s.io") {
            continue;
        }
        for version in &group.versions {
            lists.push(client.list_api_group_resources(&version.group_version).await.unwrap());
        }
    }
    let built_in: std::collections::BTreeMap<String, String> = lists
        .iter()
        .flat_map(|list| list.resources.iter())
        .flat_map(|r| r.short_names.iter().flatten().map(move |s| (s.clone(), r.name.clone())))
        .collect();
    assert!(built_in.get("ds").is_some_and(|r| r == "daemonsets"), "discovery lists DaemonSets' `ds`: {built_in:?}");
    for crd in [DeviceServer::crd(), DatabaseDS::crd()] {
        for short in crd.spec.names.short_names.iter().flatten() {
            assert!(
                !built_in.contains_key(short),
                "short name {short:?} of {} is also {}'s",
                crd.spec.names.plural,
                built_in[short]
            );
        }
    }
}

/// `helm <args>` in the repository, failing the test with helm's output.
fn helm(args: &[&str]) {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = std::process::Command::new(sdp_testkit::helm()).args(args).current_dir(repo).output().unwrap();
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test(flavor = "multi_thread")]
async fn umbrella_with_the_operator_brings_up_the_database_then_the_sdp_devices() {
    sdp_testkit::require_cluster();
    let client = kube::Client::try_default().await.expect("a Kubernetes client from KUBECONFIG");
    install_crds(&client).await;
    let namespace = format!("sdp-operator-{}", std::process::id());
    create_namespace(&client, &namespace).await;

    let operator = Operator::start(&client, &namespace);

    // The Tango part of the umbrella: the database and the LMC (no storage provisioner here).
    for chart in ["charts/ska-sdp-tangodb", "charts/ska-sdp-lmc", "charts/ska-sdp"] {
        helm(&["dependency", "update", chart]);
    }
    let only_tango = "configdb.enabled=false,proccontrol.enabled=false,helmdeploy.enabled=false,staging.enabled=false";
    helm(&[
        "install",
        "sdp",
        "charts/ska-sdp",
        "--namespace",
        &namespace,
        "--skip-crds",
        "--set",
        "global.operator=true",
        "--set",
        only_tango,
        "--set",
        "tangodb.tangodb.persistence.enabled=false",
        "--set",
        "lmc.subarrays=2",
    ]);

    let servers: Api<DeviceServer> = Api::namespaced(client.clone(), &namespace);
    let databases: Api<DatabaseDS> = Api::namespaced(client.clone(), &namespace);
    let lmc = "sdp-lmc";
    eventually("the SDP DeviceServer Waiting for the Tango database", || async {
        let state = servers.get_status(lmc).await.ok().and_then(|s| s.status).map(|s| s.state).unwrap_or_default();
        state.starts_with("Waiting(")
    })
    .await;
    eventually("the SDP DeviceServer Running", || async {
        servers.get_status(lmc).await.unwrap().status.is_some_and(|s| s.state == "Running")
    })
    .await;
    // The release's database: databaseds-tango-base-<release>.
    let database = databases.get("databaseds-tango-base-sdp").await.unwrap();
    assert_eq!(database.status.as_ref().map(|s| s.state.as_str()), Some("Running"), "the database came first");
    let server = servers.get(lmc).await.unwrap();
    assert_eq!(server.status.as_ref().unwrap().devicecount, 3, "SDPMaster/1's master and two subarrays");

    // Everything in the namespace is the release's (Helm) or made by the operator for one of its resources.
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let owners = [server.uid(), database.uid()];
    let owned_or_helm = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        let helm =
            meta.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/managed-by")).is_some_and(|m| m == "Helm");
        let owned = meta.owner_references.iter().flatten().any(|r| owners.contains(&Some(r.uid.clone())));
        helm || owned || meta.name.as_deref() == Some("kube-root-ca.crt")
    };
    let mut objects = Vec::new();
    objects.extend(statefulsets.list(&Default::default()).await.unwrap().items.into_iter().map(|o| o.metadata));
    objects.extend(services.list(&Default::default()).await.unwrap().items.into_iter().map(|o| o.metadata));
    objects.extend(config_maps.list(&Default::default()).await.unwrap().items.into_iter().map(|o| o.metadata));
    assert!(
        objects.len() >= 9,
        "the database's and the server's objects: {:?}",
        objects.iter().map(|m| &m.name).collect::<Vec<_>>()
    );
    let strays: Vec<_> = objects.iter().filter(|m| !owned_or_helm(m)).map(|m| m.name.clone()).collect();
    assert!(strays.is_empty(), "objects neither the release's nor owned by its resources: {strays:?}");

    helm(&["uninstall", "sdp", "--namespace", &namespace, "--wait", "--timeout", "60s"]);
    eventually("nothing of the release left", || async {
        let left = statefulsets.list(&Default::default()).await.unwrap().items.len()
            + services.list(&Default::default()).await.unwrap().items.len()
            + config_maps
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|c| c.name_any() != "kube-root-ca.crt")
                .count()
            + servers.list(&Default::default()).await.unwrap().items.len()
            + databases.list(&Default::default()).await.unwrap().items.len();
        left == 0
    })
    .await;

    operator.stop().await;
    Api::<Namespace>::all(client).delete(&namespace, &DeleteParams::default()).await.unwrap();
}
