//! Processing scripts under `sdp up`, run for real: the seed's flow, deletion, a script killed with SIGKILL, a
//! batch script finishing, and the platform stopping and starting again around a running script.

use std::time::Duration;

use serde_json::{json, Value};

use sdp_config::Config;
use sdp_testkit::{deployment_state, eventually, free_port, process_alive};

mod support;
use support::{connect, create_block, start_up, Platform};

const LIMIT: Duration = Duration::from_secs(30);

async fn owner(config: &Config, pb_id: &str) -> Option<sdp_config::Owner> {
    config.txn(|t| async move { t.get_processing_block_owner(pb_id).await }).await.unwrap()
}

async fn pb_state(config: &Config, pb_id: &str) -> Value {
    config.txn(|t| async move { t.get_processing_block_state(pb_id).await }).await.unwrap().unwrap_or_default()
}

async fn deployments(config: &Config) -> Vec<String> {
    config.txn(|t| async move { t.list_deployments().await }).await.unwrap()
}

/// The PIDs of running `sdp script` processes working on `pb_id` of the platform whose database is on `port`
/// (tests running at once make blocks of the same IDs).
fn script_processes(pb_id: &str, port: u16) -> Vec<u32> {
    let on_port = format!("SDP_CONFIG_PORT={port}");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let ours = environ.split(|b| *b == 0).any(|v| v == on_port.as_bytes());
        if args.get(1).map(String::as_str) == Some("script")
            && args.iter().any(|a| a == pb_id)
            && ours
            && process_alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_flow_runs_the_script_and_deleting_the_block_stops_it() {
    let platform = Platform::start().await;
    let config = &platform.config;

    let pb_id = create_block(config, "realtime:testdask:0.1.0", json!({})).await;
    eventually("the script's owner entry", LIMIT, || async { owner(config, &pb_id).await.is_some() }).await;
    let owner = owner(config, &pb_id).await.unwrap();
    assert_eq!(owner.command, [env!("CARGO_BIN_EXE_sdp"), "script", "testdask", pb_id.as_str()]);
    assert!(!owner.hostname.is_empty());
    let script = deployment_state(config, &format!("{pb_id}-workflow")).await.unwrap();
    assert_eq!((script["status"].as_str(), script["pid"].as_u64()), (Some("RUNNING"), Some(owner.pid as u64)));
    // The script deploys Dask as the seed shows; without a cluster it is rendered, which the script takes as
    // ready.
    let dask = format!("{pb_id}-dask");
    eventually("Dask ready in the block's state", LIMIT, || async {
        pb_state(config, &pb_id).await["dask"]["deployment"] == "RENDERED"
    })
    .await;
    assert_eq!(deployments(config).await, [dask.clone(), format!("{pb_id}-workflow")]);
    let entry = config.txn(|t| {
        let dask = &dask;
        async move { t.get_deployment(dask).await }
    });
    // Exactly the seed's testdask entry.
    assert_eq!(entry.await.unwrap().unwrap().args, sdp_testkit::seed_testdask_dask_args());
    let state = pb_state(config, &pb_id).await;
    assert_eq!((state["state"].as_str(), state.get("status")), (Some("executing"), None), "one field for the state");
    // Rendered, no scheduler runs: the script asks nobody and claims no workers.
    let dask_state = &state["dask"];
    let scheduler = dask_state["scheduler"].as_str().unwrap();
    assert!(scheduler.starts_with(&format!("tcp://{dask}-scheduler.")) && scheduler.ends_with(":8786"), "{state}");
    assert_eq!(dask_state["workers_requested"], 2);
    assert!(dask_state["check"].as_str().unwrap().starts_with("none: the chart was only rendered"), "{state}");
    assert!(dask_state["workers"].is_null() && dask_state["scheduler_id"].is_null(), "{state}");
    let manifest = std::fs::read_to_string(platform.dir.path().join(format!("rendered/{dask}.yaml"))).unwrap();
    assert!(manifest.contains(&format!("name: {dask}-scheduler")), "{manifest}");

    // sdpcfg delete /pb/<id>: the script stops and its deployments go.
    let id = pb_id.as_str();
    config.txn(|t| async move { t.delete(&sdp_config::keys::paths::pb(id), true, true).await }).await.unwrap();
    eventually("the script ended and every deployment gone", LIMIT, || async {
        !process_alive(owner.pid) && deployments(config).await.is_empty()
    })
    .await;
    let log = std::fs::read_to_string(platform.dir.path().join(format!("processes/{pb_id}-workflow.log"))).unwrap();
    // The script ends by whichever the platform tells it first: its block's deletion (Released(Deleted)), or the
    // SIGTERM of its deployer, whose entry the controller removed (Stopped).
    assert!(log.contains("took processing block"), "{log}");
    assert!(log.contains("Released(Deleted)") || log.contains("outcome=Stopped"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a log file");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_killed_with_sigkill_fails_its_block_and_leaves_nothing_behind() {
    let platform = Platform::start().await;
    let config = &platform.config;
    let pb_id = create_block(config, "realtime:testdask:0.1.0", json!({})).await;
    let dask = format!("{pb_id}-dask");
    eventually("Dask ready", LIMIT, || async { pb_state(config, &pb_id).await["dask"]["deployment"] == "RENDERED" })
        .await;
    let pid = owner(config, &pb_id).await.unwrap().pid;
    // SAFETY: a signal to a process this test found.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let workflow = format!("{pb_id}-workflow");
    eventually("the script's deployment FAILED", LIMIT, || async {
        deployment_state(config, &workflow).await.is_some_and(|s| s["status"] == "FAILED" && s["signal"] == 9)
    })
    .await;
    eventually("the block failed", LIMIT, || async {
        let state = pb_state(config, &pb_id).await;
        state["state"] == "failed"
    })
    .await;
    assert_eq!(pb_state(config, &pb_id).await["error"], "processing script ended: killed by signal 9 (SIGKILL)");
    // The owner entry lives on the dead script's lease: it expires (TTL 10 s), then Dask goes.
    eventually("the owner lease expired and Dask removed", LIMIT, || async {
        owner(config, &pb_id).await.is_none() && !deployments(config).await.contains(&dask)
    })
    .await;
    assert!(script_processes(&pb_id, platform.port).is_empty());
    // Nothing restarts a failed script: not by the time a block created after it has run its script to the end.
    let later = create_block(config, "batch:test_batch:0.1.0", json!({"duration": 1})).await;
    eventually("a later block finished", LIMIT, || async { pb_state(config, &later).await["state"] == "finished" })
        .await;
    assert!(script_processes(&pb_id, platform.port).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_script_finishes_by_itself() {
    let platform = Platform::start().await;
    let config = &platform.config;
    let pb_id = create_block(config, "batch:test_batch:0.1.0", json!({"duration": 1})).await;
    eventually("the block finished", LIMIT, || async { pb_state(config, &pb_id).await["state"] == "finished" }).await;
    let state = pb_state(config, &pb_id).await;
    assert_eq!((state.get("status"), state["progress"].as_str()), (None, Some("1/1")), "{state}");
    assert!(owner(config, &pb_id).await.is_none(), "the script let go of the block");
    let script = deployment_state(config, &format!("{pb_id}-workflow")).await.unwrap();
    assert_eq!((script["status"].as_str(), script["exit_code"].as_i64()), (Some("FINISHED"), Some(0)));
    // Bad parameters fail the block with the reason.
    let bad = create_block(config, "batch:test_batch:0.1.0", json!({"duration": "soon"})).await;
    eventually("the bad block failed", LIMIT, || async { pb_state(config, &bad).await["state"] == "failed" }).await;
    assert_eq!(
        pb_state(config, &bad).await["error"],
        "invalid parameters: duration is \"soon\": expected a whole number from 1 to 86400"
    );
    // Parameters that are not named values are refused when the block is created.
    let listed = config
        .txn(|t| async move { t.create_new_processing_block("batch:test_batch:0.1.0".parse()?, json!([1])).await })
        .await
        .unwrap_err()
        .to_string();
    assert!(listed.contains("must be a JSON object of named values, not [1]"), "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_stop_with_the_platform_and_run_once_when_it_starts_again() {
    let Platform { mut up, config, port, dir, .. } = Platform::start().await;
    let pb_id = create_block(&config, "realtime:testdask:0.1.0", json!({})).await;
    eventually("the script running", LIMIT, || async { owner(&config, &pb_id).await.is_some() }).await;
    let first = owner(&config, &pb_id).await.unwrap().pid;

    // Ctrl-C: the script gets SIGTERM and cleans up before the platform goes.
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(up.0.id() as i32, libc::SIGINT) };
    let stopped = up.0.wait().unwrap();
    assert!(stopped.success(), "sdp up ended with {stopped}");
    assert!(!process_alive(first), "the script outlived the platform");

    drop(up);
    // Started again on the same data: the block's script runs again, once, and finds the block free.
    let up = start_up(port, dir.path());
    let config = connect(port).await;
    eventually("a new script owns the block", LIMIT, || async {
        owner(&config, &pb_id).await.is_some_and(|o| o.pid != first)
    })
    .await;
    eventually("Dask deployed again", LIMIT, || async {
        pb_state(&config, &pb_id).await["dask"]["deployment"] == "RENDERED"
    })
    .await;
    assert_eq!(script_processes(&pb_id, port).len(), 1);
    let second = owner(&config, &pb_id).await.unwrap().pid;

    // Killed with SIGKILL, the platform cannot stop its scripts: the kernel sends them SIGTERM.
    drop(up);
    eventually("the script ended with its platform", LIMIT, || async { !process_alive(second) }).await;
}

/// With a cluster: testdask's Dask pods reach RUNNING and the script sees it; vis_receive's receive process
/// joins the supernet the Helm deployer published and its address comes from that network's range; deleting
/// the blocks uninstalls the engines.
#[ignore = "needs a Kubernetes API (KUBECONFIG): scripts/test starts one and runs these"]
#[tokio::test(flavor = "multi_thread")]
async fn with_a_cluster_the_engines_run_and_the_scripts_see_them() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{DynamicObject, ListParams, PostParams};
    use kube::Api;

    let kubeconfig = sdp_testkit::require_cluster();
    let client = kube::Client::try_default().await.expect("a Kubernetes client from KUBECONFIG");
    sdp_testkit::cluster::install_network_attachment_crd(&client).await;
    let namespace = format!("sdp-scripts-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let (port, lmc_port) = (free_port(), free_port());
    let _up = sdp_testkit::KillOnDrop(
        support::up_command(port, lmc_port, dir.path())
            .env("KUBECONFIG", &kubeconfig)
            .env("SDP_HELM_NAMESPACE", &namespace)
            .spawn()
            .unwrap(),
    );
    sdp_testkit::wait_for_port(lmc_port, LIMIT, "sdp up");
    let config = connect(port).await;
    let nads: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &sdp_helmdeploy::resources::api_resource());
    let nad_name = format!("receive-{}", std::process::id());
    let ipam = json!({"type": "whereabouts", "range": "10.20.0.0/24", "range_start": "10.20.0.50"});
    nads.create(&PostParams::default(), &sdp_testkit::cluster::labelled_network_attachment(&nad_name, "default", ipam))
        .await
        .unwrap();
    eventually("the supernet published", LIMIT, || async {
        let keys = config.txn(|t| async move { t.list_keys("/resource/supernet/", 2).await }).await.unwrap();
        keys.iter().any(|k| k.ends_with(&nad_name))
    })
    .await;

    let dask_block = create_block(&config, "realtime:testdask:0.1.0", json!({})).await;
    let receive_block = create_block(&config, "realtime:vis_receive:0.1.0", json!({})).await;
    let cluster_limit = Duration::from_secs(120);
    eventually("the script saw Dask's pods running", cluster_limit, || async {
        pb_state(&config, &dask_block).await["dask"]["deployment"] == "DEPLOYED"
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let dask_pods = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={dask_block}-dask")))
        .await
        .unwrap();
    assert_eq!(dask_pods.items.len(), 3, "a scheduler and two workers");
    assert!(dask_pods.items.iter().all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")));
    let dask_state = deployment_state(&config, &format!("{dask_block}-dask")).await.unwrap();
    // The script waited for all three: the release's manifest asks for them.
    assert_eq!(dask_state["pods_expected"], 3, "{dask_state}");
    assert_eq!(dask_state["pods"].as_object().unwrap().len(), 3, "{dask_state}");
    // The simulated nodes' pods run no Dask, so nothing answers at the scheduler's Service: the script keeps
    // asking (until its limit, then the block fails), and claims no workers it did not see.
    let dask = &pb_state(&config, &dask_block).await["dask"];
    let check = dask["check"].as_str().unwrap();
    assert!(check.starts_with("asking the scheduler") || check.starts_with("failed: "), "{dask}");
    assert!(dask["workers"].is_null(), "{dask}");

    eventually("receive addresses from the supernet", cluster_limit, || async {
        pb_state(&config, &receive_block).await["receiveAddresses"]
            == json!({"default": {"host": [[0, "10.20.0.50"]], "port": [[0, 9000, 1]]}})
    })
    .await;
    let receive_pods = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={receive_block}-receive")))
        .await
        .unwrap();
    let annotations = receive_pods.items[0].metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations["k8s.v1.cni.cncf.io/networks"], format!("default/{nad_name}"));

    for pb_id in [&dask_block, &receive_block] {
        config.txn(|t| async move { t.delete_processing_block(pb_id).await }).await.unwrap();
    }
    eventually("the engines uninstalled", cluster_limit, || async {
        pods.list(&ListParams::default()).await.unwrap().items.is_empty() && deployments(&config).await.is_empty()
    })
    .await;
    nads.delete(&nad_name, &Default::default()).await.unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    namespaces.delete(&namespace, &Default::default()).await.unwrap();
}

/// `sdp up` with the process engine `sleeper` registered.
async fn platform_with_sleeper() -> Platform {
    Platform::start_with(|up, dir| {
        let engines = dir.join("engines.json");
        std::fs::write(&engines, r#"{"sleeper": {"command": ["sleep", "300"]}}"#).unwrap();
        up.env("SDP_PROCESS_ENGINES", engines);
    })
    .await
}

/// testdeploy turns each parameter into a deployment (here a registered process engine, as the original's
/// example), and teststate reports the original's error state after its duration.
#[tokio::test(flavor = "multi_thread")]
async fn testdeploy_and_teststate_do_what_the_originals_did() {
    let platform = platform_with_sleeper().await;
    let config = &platform.config;
    let sleeper = json!({
        "sleeper": {"type": "process-direct", "args": {"engine": "sleeper"}},
        "../x": {"type": "process-direct", "args": {"engine": "sleeper"}},
    });
    let deploy_block = create_block(config, "realtime:testdeploy:0.1.0", sleeper).await;
    let sleeper_id = format!("{deploy_block}-sleeper");
    eventually("the parameter's process running", LIMIT, || async {
        deployment_state(config, &sleeper_id).await.is_some_and(|s| s["status"] == "RUNNING")
    })
    .await;
    let pid = deployment_state(config, &sleeper_id).await.unwrap()["pid"].as_u64().unwrap() as u32;
    assert_eq!(
        pb_state(config, &deploy_block).await["deployments"],
        json!([format!("{deploy_block}-workflow"), sleeper_id])
    );
    // The parameter that cannot name a deployment is reported in the block's state.
    eventually("the refused parameter reported", LIMIT, || async {
        pb_state(config, &deploy_block).await["refused_deployments"]["../x"]
            .as_str()
            .is_some_and(|e| e.contains("must be 1 to 64 characters"))
    })
    .await;

    let state_block = create_block(config, "realtime:teststate:0.1.0", json!({"duration": 1})).await;
    eventually("teststate's error state", LIMIT, || async { pb_state(config, &state_block).await["state"] == "error" })
        .await;
    let state = pb_state(config, &state_block).await;
    assert_eq!(state["obsState"], "SCANNING-test");
    // Its own word stays: the script ends without writing over it.
    let workflow = format!("{state_block}-workflow");
    eventually("teststate ended", LIMIT, || async {
        deployment_state(config, &workflow).await.is_some_and(|s| s["status"] == "FINISHED")
    })
    .await;
    assert_eq!(pb_state(config, &state_block).await["state"], "error");
    assert_eq!(state["receiveAddresses"], json!({"1": {"1": ["0.0.0.0", 1024]}}));

    let id = deploy_block.as_str();
    config.txn(|t| async move { t.delete_processing_block(id).await }).await.unwrap();
    eventually("the parameter's process stopped and its deployment gone", LIMIT, || async {
        !process_alive(pid) && !deployments(config).await.contains(&sleeper_id)
    })
    .await;
}
