//! `sdp up` as a user runs it: a separate process with a data directory, killed with SIGKILL and restarted.

use std::process::{Command, Stdio};
use std::time::Duration;

use etcd_client::{Client, GetOptions, PutOptions};
use sdp_testkit::{free_port, wait_for_port, KillOnDrop};

mod support;
use support::{
    create_batch_processing_block, http_answer, http_get, start_up, start_up_with_lmc, up_command, wait_ready, Platform,
};

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let mut server = start_up(port, dir.path());
    let mut client = Client::connect([&endpoint], None).await.unwrap();
    const N: usize = 300;
    let mut last_revision = 0;
    for i in 0..N {
        let resp = client.put(format!("k{i:04}"), format!("v{i}"), None).await.unwrap();
        last_revision = resp.header().unwrap().revision();
    }
    let lease = client.lease_grant(60, None).await.unwrap().id();
    client.put("owned", "x", Some(PutOptions::new().with_lease(lease))).await.unwrap();
    client.delete("k0000", None).await.unwrap();
    last_revision += 2;

    // No clean shutdown: the process dies between two writes.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    drop(server);
    drop(client);

    let _server = start_up(port, dir.path());
    let mut client = Client::connect([&endpoint], None).await.unwrap();
    let resp = client.get("k", Some(GetOptions::new().with_prefix())).await.unwrap();
    assert_eq!(resp.kvs().len(), N - 1, "acknowledged writes lost");
    assert_eq!(resp.kvs()[0].key_str().unwrap(), "k0001");
    assert_eq!(resp.header().unwrap().revision(), last_revision);
    // The revision continues where it stopped.
    let resp = client.put("after", "restart", None).await.unwrap();
    assert_eq!(resp.header().unwrap().revision(), last_revision + 1);
    // The lease survived with its key, and with a fresh TTL as etcd gives leases after a restart.
    let ttl = client.lease_time_to_live(lease, None).await.unwrap();
    assert!(ttl.ttl() > 50, "lease TTL after restart: {}", ttl.ttl());
    assert_eq!(client.get("owned", None).await.unwrap().kvs().len(), 1);
    client.lease_revoke(lease).await.unwrap();
    assert!(client.get("owned", None).await.unwrap().kvs().is_empty());
}

#[tokio::test]
async fn the_client_library_works_against_up() {
    let platform = Platform::start().await;
    let config = &platform.config;
    let pb_id = config
        .txn(|t| async move {
            t.create_new_processing_block("realtime:testdask:0.1.0".parse()?, serde_json::json!({})).await
        })
        .await
        .unwrap();
    assert!(pb_id.ends_with("-0000"));
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = up_command(port, free_port(), dir.path()).stderr(Stdio::piped()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{stderr}");
}

/// Ctrl-C while the platform is still starting (the database is up, the rest is not yet) stops it cleanly
/// once it has started, instead of killing it halfway.
#[test]
fn ctrl_c_while_starting_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = up_command(port, free_port(), dir.path()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_port(port, Duration::from_secs(30), "the embedded database");
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sdp up ended with {}: {stderr}", out.status);
    assert!(stderr.contains("stopped"), "{stderr}");
}

/// `sdp lmc` drives the devices of a running `sdp up` through the seed's session.
#[test]
fn lmc_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (port, lmc_port) = (free_port(), free_port());
    let _server = start_up_with_lmc(port, lmc_port, dir.path());
    let url = format!("http://127.0.0.1:{lmc_port}");
    let lmc_at = |url: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sdp")).args(["lmc", "--url", url]).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let lmc = |args: &[&str]| lmc_at(&url, args);
    // Metrics of the platform's daemons, in Prometheus text format.
    let text = http_get(lmc_port, "/metrics");
    assert!(text.contains("# TYPE sdp_helmdeploy_reconciles counter"), "{text}");
    assert_eq!(http_get(lmc_port, "/health").trim(), "ok");
    let (ok, out) = lmc(&["devices"]);
    assert!(ok && out.contains("mid_sdp/elt/subarray_1") && out.contains("SDPMaster/1"), "{out}");
    let (ok, out) = lmc(&["run", "subarray_1", "AssignResources", ""]);
    assert!(
        !ok && out.contains("API_CommandNotAllowed") && out.contains("Current mode: <AdminMode.OFFLINE: 0>"),
        "{out}"
    );
    assert!(lmc(&["write", "subarray_1", "adminMode", "ONLINE"]).0);
    assert!(lmc(&["run", "subarray_1", "AssignResources"]).0);
    let configure = r#"{ "configure": { "id": "xyz", "sbiId": "xyz", "workflow": { "type": "realtime", "version": "0.1.0", "id": "vis_receive" }, "parameters": {}, "scanParameters": { "1": {} } } }"#;
    let (ok, out) = lmc(&["run", "subarray_1", "Configure", configure]);
    assert!(ok, "{out}");
    let (ok, out) = lmc(&["read", "subarray_1", "obsState"]);
    assert!(ok && out.contains("\"label\": \"READY\"") && out.contains("\"value\": 2"), "{out}");
    // The processing block is in the configuration database.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config =
        rt.block_on(sdp_config::Config::connect(&sdp_config::Settings { port, ..Default::default() })).unwrap();
    let pb = rt.block_on(config.txn(|t| async move { t.get_processing_block("xyz").await })).unwrap();
    assert_eq!(pb.unwrap().workflow.id, "vis_receive");
    // The processing controller runs the block's script, vis_receive, which deploys the receive processes
    // (rendered: no cluster) and publishes their addresses, which the subarray device reads.
    let start = std::time::Instant::now();
    let addresses = loop {
        let (ok, out) = lmc(&["read", "subarray_1", "receiveAddresses"]);
        assert!(ok, "{out}");
        if out.contains("xyz-receive-0") {
            break out;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no receive addresses: {out}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let expected = serde_json::json!({"1": {
        "host": [[0, "xyz-receive-0.xyz-receive.sdp.svc.cluster.local"]], "port": [[0, 9000, 1]]
    }});
    assert!(addresses.contains(&serde_json::to_string(&expected.to_string()).unwrap()), "{addresses}");
    let script = rt.block_on(config.txn(|t| async move { t.get_deployment("xyz-workflow").await })).unwrap().unwrap();
    assert_eq!(script.args, serde_json::json!({"script": "realtime-vis_receive-0-1-0", "pb_id": "xyz"}));
    let state = rt.block_on(sdp_testkit::deployment_state(&config, "xyz-workflow")).unwrap();
    assert_eq!(state["command"], serde_json::json!([env!("CARGO_BIN_EXE_sdp"), "script", "vis_receive", "xyz"]));
    // The controller counted what it did.
    let text = http_get(lmc_port, "/metrics");
    assert!(text.contains("sdp_processing_actions_total{action=\"create_deployment\"} 1"), "{text}");
    assert!(text.contains("sdp_procdeploy_processes_total{event=\"started\"} 1"), "{text}");
    let manifest = std::fs::read_to_string(dir.path().join("rendered/xyz-receive.yaml")).unwrap();
    assert!(manifest.contains("kind: StatefulSet"), "{manifest}");
    let (ok, out) = lmc_at("http://127.0.0.1:1", &["devices"]);
    assert!(!ok && out.contains("cannot reach the LMC surface"), "{out}");
}

/// With TANGO_HOST set, `sdp up` registers and serves the devices in that Tango database.
#[test]
fn serves_the_devices_to_tango() {
    let dir = tempfile::tempdir().unwrap();
    let tango_db = sdp_testkit::TangoDatabase::start(dir.path());
    let (port, lmc_port) = (free_port(), free_port());
    let child =
        up_command(port, lmc_port, &dir.path().join("data")).env("TANGO_HOST", tango_db.tango_host()).spawn().unwrap();
    let _server = KillOnDrop(child);
    wait_for_port(lmc_port, Duration::from_secs(30), "sdp up");
    let script = "import tango, time\n\
        for _ in range(100):\n\
        \x20   if 'mid_sdp/elt/subarray_1' in tango.Database().get_device_exported('*'): break\n\
        \x20   time.sleep(0.2)\n\
        d = tango.DeviceProxy('mid_sdp/elt/subarray_1')\n\
        print(repr(d.obsState), d.state())";
    let out = Command::new(sdp_testkit::pytango_python())
        .args(["-c", script])
        .env("TANGO_HOST", tango_db.tango_host())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "<obsState.IDLE: 0> OFF");
}

/// With SDP_CONFIG_HOST set, `sdp up` uses that etcd and starts no embedded database.
#[test]
fn uses_the_etcd_named_by_sdp_config_host() {
    let etcd = sdp_testkit::Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let (unused_port, lmc_port) = (free_port(), free_port());
    let child = up_command(unused_port, lmc_port, dir.path())
        .env("SDP_CONFIG_HOST", "127.0.0.1")
        .env("SDP_CONFIG_PORT", etcd.port.to_string())
        .spawn()
        .unwrap();
    let _server = KillOnDrop(child);
    wait_for_port(lmc_port, Duration::from_secs(30), "sdp up's LMC surface");
    assert!(std::net::TcpStream::connect(("127.0.0.1", unused_port)).is_err(), "an embedded database was started");
    // The processing controller works on that etcd: a processing block gets its script deployment.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = etcd.config().await;
        let pb_id = create_batch_processing_block(&config).await;
        let deploy_id = format!("{pb_id}-workflow");
        sdp_testkit::eventually("the script deployment in etcd", Duration::from_secs(15), || async {
            let id = deploy_id.clone();
            config
                .txn(|t| {
                    let id = id.clone();
                    async move { t.get_deployment(&id).await }
                })
                .await
                .unwrap()
                .is_some()
        })
        .await;
    });
}

/// With a cluster, from a folder that is not the repository: `sdp up` creates its missing processing namespace
/// and installs a processing block's script with the chart it carries, up to a RUNNING pod.
#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[test]
fn up_with_a_cluster_runs_a_script_pod_from_anywhere() {
    let kubeconfig = sdp_testkit::require_cluster();
    let dir = tempfile::tempdir().unwrap();
    let namespace = format!("sdp-up-{}", std::process::id());
    let (port, lmc_port) = (free_port(), free_port());
    let child = up_command(port, lmc_port, dir.path())
        .env("KUBECONFIG", &kubeconfig)
        .env("SDP_HELM_NAMESPACE", &namespace)
        .env("SDP_SCRIPT_RUNNER", "helm")
        .spawn()
        .unwrap();
    let _server = KillOnDrop(child);
    wait_for_port(lmc_port, Duration::from_secs(30), "sdp up");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = sdp_config::Config::connect(&sdp_config::Settings { port, ..Default::default() }).await.unwrap();
        let pb_id = config
            .txn(|t| async move {
                t.create_new_processing_block("realtime:testdask:0.1.0".parse()?, serde_json::json!({})).await
            })
            .await
            .unwrap();
        let deploy_id = format!("{pb_id}-workflow");
        sdp_testkit::eventually(
            "the script's pod RUNNING in its deployment state",
            Duration::from_secs(120),
            || async {
                sdp_testkit::deployment_state(&config, &deploy_id).await.is_some_and(|s| {
                    s["status"] == "DEPLOYED"
                        && s["pods"]
                            .as_object()
                            .is_some_and(|pods| !pods.is_empty() && pods.values().all(|p| p["status"] == "RUNNING"))
                })
            },
        )
        .await;
        let client = kube::Client::try_default().await.unwrap();
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
        let ns = namespaces.get(&namespace).await.expect("the processing namespace sdp up created");
        assert_eq!(ns.metadata.labels.unwrap_or_default()["app.kubernetes.io/managed-by"], "sdp-helmdeploy");
        let id = pb_id.as_str();
        config.txn(|t| async move { t.delete_processing_block(id).await }).await.unwrap();
        sdp_testkit::eventually("the script's deployment state removed", Duration::from_secs(60), || async {
            sdp_testkit::deployment_state(&config, &deploy_id).await.is_none()
        })
        .await;
        namespaces.delete(&namespace, &Default::default()).await.unwrap();
    });
}

/// The components the charts deploy one per pod: `sdp processing-controller`, `sdp helm-deployer` and
/// `sdp lmc serve`, each on the etcd at SDP_CONFIG_HOST with /health and /metrics, working together.
#[test]
fn components_run_alone_on_one_etcd() {
    let etcd = sdp_testkit::Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let component = |args: &[&str], port: u16| {
        let child = Command::new(env!("CARGO_BIN_EXE_sdp"))
            .args(args)
            .env("SDP_CONFIG_HOST", "127.0.0.1")
            .env("SDP_CONFIG_PORT", etcd.port.to_string())
            .env("SDP_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env("SDP_LMC_LISTEN", format!("127.0.0.1:{port}"))
            .env("SDP_CHARTS_DIR", sdp_testkit::charts_dir())
            .env("SDP_HELM", sdp_testkit::helm())
            .env("SDP_DATA_DIR", dir.path())
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("TANGO_HOST")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let running = KillOnDrop(child);
        wait_ready(port, args[0]);
        running
    };
    let ports = [free_port(), free_port(), free_port()];
    let _controller = component(&["processing-controller"], ports[0]);
    let _deployer = component(&["helm-deployer"], ports[1]);
    let _lmc = component(&["lmc", "serve", "--subarrays", "2"], ports[2]);
    for port in ports {
        for probe in ["/healthz", "/readyz", "/health"] {
            assert_eq!(http_get(port, probe).trim(), "ok", "{probe} on {port}");
        }
    }
    assert!(http_get(ports[0], "/metrics").contains("sdp_processing_"), "processing controller metrics");
    assert!(http_get(ports[1], "/metrics").contains("# EOF"), "deployer metrics");
    assert!(http_get(ports[2], "/api/devices").contains("mid_sdp/elt/subarray_2"));

    // A processing block → the controller's deployment → the deployer renders it (no cluster).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = etcd.config().await;
        let pb_id = create_batch_processing_block(&config).await;
        let manifest = dir.path().join(format!("rendered/{pb_id}-workflow.yaml"));
        sdp_testkit::eventually("the deployment rendered by the deployer", Duration::from_secs(30), || async {
            std::fs::read_to_string(&manifest).is_ok_and(|m| m.contains("kind: Deployment"))
        })
        .await;
    });
}

/// In a cluster the database starts beside the daemons: one that cannot be reached yet is waited for (each try
/// logged), not a reason to exit; SIGTERM still ends the wait at once.
#[test]
fn components_wait_for_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (db_port, http_port) = (free_port(), free_port());
    let component = |args: &[&str], log: &str| {
        let child = Command::new(env!("CARGO_BIN_EXE_sdp"))
            .args(args)
            .env("SDP_CONFIG_HOST", "127.0.0.1")
            .env("SDP_CONFIG_PORT", db_port.to_string())
            .env("SDP_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("SDP_DATA_DIR", dir.path())
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(log)).unwrap())
            .spawn()
            .unwrap();
        KillOnDrop(child)
    };
    let read_log = |log: &str| std::fs::read_to_string(dir.path().join(log)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let mut controller = component(&["processing-controller"], "controller.log");
    rt.block_on(sdp_testkit::eventually("the controller logs that it waits", Duration::from_secs(20), || async {
        read_log("controller.log").contains("cannot reach the configuration database")
    }));
    wait_for_port(http_port, Duration::from_secs(5), "processing-controller");
    assert!(controller.0.try_wait().unwrap().is_none(), "the controller exited: {}", read_log("controller.log"));
    // Meanwhile it is alive (a liveness probe leaves it be) and says what it waits for.
    assert_eq!(http_answer(http_port, "/healthz"), (200, "ok".to_string()));
    let waiting = format!("starting: waiting for the configuration database at 127.0.0.1:{db_port}");
    assert_eq!(http_answer(http_port, "/readyz"), (503, waiting));
    // The database comes: the controller starts serving.
    let server = rt.block_on(sdp_etcd_server::start(sdp_etcd_server::ServerConfig {
        listen: format!("127.0.0.1:{db_port}").parse().unwrap(),
        data_dir: Some(dir.path().join("db")),
        ..Default::default()
    }));
    let server = server.expect("the database on the port the controller tries");
    wait_ready(http_port, "processing-controller");
    drop(controller);
    rt.block_on(server.stop());

    // No database at all: SIGTERM ends the wait, with success.
    let mut deployer = component(&["helm-deployer"], "deployer.log");
    rt.block_on(sdp_testkit::eventually("the deployer logs that it waits", Duration::from_secs(20), || async {
        read_log("deployer.log").contains("cannot reach the configuration database")
    }));
    let status = Command::new("kill").args(["-TERM", &deployer.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exited = (0..100).find_map(|_| {
        std::thread::sleep(Duration::from_millis(50));
        deployer.0.try_wait().unwrap()
    });
    assert!(exited.is_some_and(|s| s.success()), "the deployer did not end on SIGTERM: {exited:?}");
}

/// `sdp up` runs the staging service too: storage and user areas under its data directory.
#[test]
fn up_stages_data() {
    let dir = tempfile::tempdir().unwrap();
    let (port, lmc_port, staging_port) = (free_port(), free_port(), free_port());
    let child = up_command(port, lmc_port, dir.path())
        .env("SDP_STAGING_LISTEN", format!("127.0.0.1:{staging_port}"))
        .env_remove("SOURCE_STORAGE_PATH")
        .env_remove("TARGET_STORAGE_PATH")
        .env_remove("DATABASE_URL")
        .env_remove("MYSQL_HOST")
        .spawn()
        .unwrap();
    let _up = KillOnDrop(child);
    wait_for_port(staging_port, Duration::from_secs(30), "sdp up's staging service");
    for probe in ["/healthz", "/readyz", "/health"] {
        assert_eq!(http_get(staging_port, probe).trim(), "ok", "{probe}");
    }
    std::fs::write(dir.path().join("staging/storage/obs.ms"), b"visibilities").unwrap();
    let script = format!(
        "import urllib.request; r = urllib.request.Request('http://127.0.0.1:{staging_port}/stage-data/?method=local_copy&username=alice', \
         data=b'{{\"data\": {{\"local_path_on_storage\": \"obs.ms\", \"relative_path\": \"mine.ms\"}}}}', \
         headers={{'Content-Type': 'application/json'}}); print(urllib.request.urlopen(r).status)"
    );
    let out = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(dir.path().join("staging/user_areas/alice/mine.ms")).unwrap(), b"visibilities");
    assert!(http_get(staging_port, "/logs/").contains("mine.ms"));
}
