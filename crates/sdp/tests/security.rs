//! What a hostile request can do to `sdp up`: no command of its choosing runs, and the LMC surface answers only
//! with its token when it has one, and never beyond loopback without one.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use sdp_config::Config;
use sdp_testkit::{deployment_state, eventually, free_port};

mod support;
use support::{http_request, up_command, Platform};

const LIMIT: Duration = Duration::from_secs(30);

async fn status_is(config: &Config, id: &str, status: &str) -> bool {
    deployment_state(config, id).await.is_some_and(|s| s["status"] == status)
}

/// Configure over the LMC's HTTP surface, with the testdeploy script and parameters asking for commands, runs
/// none of them; neither does a raw `/deploy` entry. A registered engine still runs.
#[tokio::test(flavor = "multi_thread")]
async fn neither_lmc_configure_nor_a_deploy_entry_runs_a_command() {
    let platform = Platform::start_with(|up, dir| {
        let engines = dir.join("engines.json");
        std::fs::write(&engines, r#"{"sleeper": {"command": ["sleep", "300"]}}"#).unwrap();
        up.env("SDP_PROCESS_ENGINES", engines);
    })
    .await;
    let config = &platform.config;
    let marker = platform.dir.path().join("pwned");
    let line = |n: u32| format!("id > {}{n}.txt; sleep 300", marker.display());
    let lmc = |method: &str, path: &str, body: &str| http_request(platform.lmc_port, method, path, body, None);
    assert_eq!(lmc("PUT", "/api/devices/subarray_1/attributes/adminMode", "\"ONLINE\"").0, 204);
    assert_eq!(lmc("POST", "/api/devices/subarray_1/commands/AssignResources", "").0, 204);
    let configure = json!({"configure": {
        "id": "pwn", "sbiId": "pwn", "workflow": {"type": "realtime", "version": "0.1.0", "id": "testdeploy"},
        "parameters": {
            "direct": {"type": "process-direct", "args": {"command": ["/bin/sh", "-c", line(1)]}},
            "shell": {"type": "process-direct", "args": {"args": [line(2)], "shell": true}},
            "sleeper": {"type": "process-direct", "args": {"engine": "sleeper"}},
        },
        "scanParameters": {"1": {}},
    }});
    let (status, body) = lmc("POST", "/api/devices/subarray_1/commands/Configure", &configure.to_string());
    assert_eq!(status, 204, "{body}");
    eventually("the registered engine running", LIMIT, || async { status_is(config, "pwn-sleeper", "RUNNING").await })
        .await;
    let refused = |name: &'static str| async move {
        let state = config.txn(|t| async move { t.get_processing_block_state("pwn").await }).await.unwrap();
        state.and_then(|s| s["refused_deployments"][name].as_str().map(str::to_string))
    };
    eventually("both parameters refused", LIMIT, || async {
        refused("direct").await.is_some() && refused("shell").await.is_some()
    })
    .await;
    assert!(refused("direct").await.unwrap().contains("--process-engines"));
    for name in ["direct", "shell"] {
        assert_eq!(deployment_state(config, &format!("pwn-{name}")).await, None, "{name} was deployed");
    }

    // A raw entry written straight into the database is refused in its state.
    let raw = sdp_config::Deployment {
        deploy_id: "raw".into(),
        kind: "process-direct".into(),
        args: json!({"command": ["/bin/sh", "-c", line(3)]}),
    };
    config
        .txn(|t| {
            let raw = &raw;
            async move { t.put_json(&sdp_config::keys::paths::deploy("raw"), raw).await }
        })
        .await
        .unwrap();
    eventually("the raw entry refused", LIMIT, || async { status_is(config, "raw", "FAILED").await }).await;
    let state = deployment_state(config, "raw").await.unwrap();
    assert!(state["error"].as_str().unwrap().contains("never a command"), "{state}");

    // A command started would be seen at once: a spawned process has run its program when spawn returns.
    for n in 1..=3 {
        assert!(!platform.dir.path().join(format!("pwned{n}.txt")).exists(), "command {n} ran");
    }
    assert!(!sdp_testkit::runs_with(&marker.display().to_string()), "a command runs");
}

/// With SDP_LMC_TOKEN set, the devices answer only requests that bring it; the probes and metrics stay open,
/// and `sdp lmc` sends the token from the same variable.
#[tokio::test(flavor = "multi_thread")]
async fn the_lmc_surface_needs_its_token() {
    let platform = Platform::start_with(|up, _| {
        up.env("SDP_LMC_TOKEN", "s3cret");
    })
    .await;
    let port = platform.lmc_port;
    let request =
        |method: &str, path: &str, body: &str, token: Option<&str>| http_request(port, method, path, body, token);
    let (status, body) = request("GET", "/api/devices", "", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("SDP_LMC_TOKEN"), "{body}");
    assert_eq!(request("GET", "/api/devices", "", Some("s3cre")).0, 401);
    assert_eq!(request("PUT", "/api/devices/subarray_1/attributes/adminMode", "\"ONLINE\"", None).0, 401);
    assert_eq!(request("POST", "/api/devices/subarray_1/commands/AssignResources", "", Some("wrong")).0, 401);
    assert_eq!(request("GET", "/api/events", "", None).0, 401);
    let (status, body) = request("GET", "/api/devices/subarray_1/attributes/adminMode", "", Some("s3cret"));
    assert!(status == 200 && body.contains("OFFLINE"), "the refused write changed something: {status} {body}");
    for open in ["/health", "/healthz", "/readyz", "/metrics"] {
        assert_eq!(request("GET", open, "", None).0, 200, "{open}");
    }
    let lmc = |token: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sdp"));
        command.args(["lmc", "--url", &format!("http://127.0.0.1:{port}"), "devices"]).env_remove("SDP_LMC_TOKEN");
        if let Some(token) = token {
            command.env("SDP_LMC_TOKEN", token);
        }
        let out = command.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (ok, out) = lmc(Some("s3cret"));
    assert!(ok && out.contains("mid_sdp/elt/subarray_1"), "{out}");
    let (ok, out) = lmc(None);
    assert!(!ok && out.contains("API_Unauthorized"), "{out}");
}

/// Without a token, the LMC surface refuses to listen beyond loopback, before anything starts.
#[test]
fn the_lmc_surface_listens_beyond_loopback_only_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // up_command's arguments, with the LMC surface on every address.
    let loopback = up_command(free_port(), free_port(), &data);
    let mut args: Vec<String> = loopback.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let at = args.iter().position(|a| a == "--lmc-listen").unwrap();
    args[at + 1] = format!("0.0.0.0:{}", free_port());
    let mut up = Command::new(loopback.get_program());
    up.args(&args).current_dir(&data).env("HOME", &data).env_remove("SDP_LMC_TOKEN").env_remove("SDP_CONFIG_HOST");
    let mut child = up.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("sdp up listened beyond loopback without a token");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("set SDP_LMC_TOKEN"), "{stderr}");
}
