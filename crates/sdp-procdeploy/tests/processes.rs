//! The process deployer with real processes, on the embedded configuration database.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use sdp_config::{Config, Deployment};
use sdp_procdeploy::Runnable;
use sdp_testkit::{deployment_state, eventually, process_alive, Embedded};

/// The engines the tests register, as an operator would in the definitions file.
fn engines(marker: &Path) -> Runnable {
    let stubborn = format!("trap '' TERM; sleep 300 & echo $! > {}; wait", marker.display());
    let definitions = json!({
        "ok": {"command": ["sh", "-c", "echo hello $GREETING; exit 0"], "env": {"GREETING": "world"}},
        "exit3": {"command": ["sh", "-c", "exit 3"]},
        "killed": {"command": ["sh", "-c", "kill -9 $$"]},
        "missing": {"command": ["/nonexistent/program"]},
        "stubborn": {"command": ["sh", "-c", stubborn]},
        "service": {"command": ["sleep", "300"]},
    });
    let file = marker.with_extension("engines.json");
    std::fs::write(&file, definitions.to_string()).unwrap();
    Runnable { scripts: None, engines: sdp_procdeploy::load_engines(&file).unwrap() }
}

fn deployer(config: &Config, logs: &Path, grace: Duration) -> sdp_procdeploy::Running {
    sdp_procdeploy::spawn(sdp_procdeploy::ProcessDeployer {
        config: config.clone(),
        settings: sdp_procdeploy::Settings {
            runnable: engines(&logs.join("child.pid")),
            log_dir: logs.to_path_buf(),
            grace,
        },
        lease_ttl: 2,
        metrics: Default::default(),
    })
}

async fn put(config: &Config, id: &str, args: Value) {
    let d = Deployment { deploy_id: id.into(), kind: "process-direct".into(), args };
    config
        .txn(|t| {
            let d = &d;
            async move { t.put_json(&sdp_config::keys::paths::deploy(id), d).await }
        })
        .await
        .unwrap();
}

async fn delete(config: &Config, id: &str) {
    config.txn(|t| async move { t.delete_deployment(id).await }).await.unwrap();
}

async fn status_is(config: &Config, id: &str, status: &str) -> bool {
    deployment_state(config, id).await.is_some_and(|s| s["status"] == status)
}

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn processes_run_end_and_report() {
    let db = Embedded::start().await;
    let config = db.config().await;
    let logs = tempfile::tempdir().unwrap();
    let running = deployer(&config, logs.path(), Duration::from_secs(5));

    for id in ["ok", "exit3", "killed", "missing"] {
        put(&config, id, json!({"engine": id})).await;
    }
    put(&config, "invalid", json!({"engine": "unregistered"})).await;
    eventually("every entry reported", LIMIT, || async {
        status_is(&config, "ok", "FINISHED").await
            && status_is(&config, "exit3", "FAILED").await
            && status_is(&config, "killed", "FAILED").await
            && status_is(&config, "missing", "FAILED").await
            && status_is(&config, "invalid", "FAILED").await
    })
    .await;
    let state = |id| {
        let config = config.clone();
        async move { deployment_state(&config, id).await.unwrap() }
    };
    assert_eq!(state("ok").await["exit_code"], 0);
    assert_eq!(state("exit3").await["error"], "exited with code 3");
    assert_eq!(state("killed").await["error"], "killed by signal 9 (SIGKILL)");
    assert!(state("missing").await["error"].as_str().unwrap().contains("cannot start /nonexistent/program"));
    assert!(state("invalid").await["error"].as_str().unwrap().contains("no process engine \"unregistered\""));
    let log = std::fs::read_to_string(logs.path().join("ok.log")).unwrap();
    assert!(
        log.contains("starting: sh -c") && log.contains("hello world") && log.contains("ended: exit code 0"),
        "{log}"
    );

    // Ended processes are not started again, even by a deployer started later.
    running.stop().await;
    let again = deployer(&config, logs.path(), Duration::from_secs(5));
    // An entry written after it started, once it reports it, shows it went through the ones before.
    put(&config, "after", json!({"engine": "exit3"})).await;
    eventually("the later deployer at work", LIMIT, || async { status_is(&config, "after", "FAILED").await }).await;
    assert_eq!(std::fs::read_to_string(logs.path().join("ok.log")).unwrap(), log);
    again.stop().await;
    db.stop().await;
}

#[tokio::test]
async fn a_deleted_entry_stops_its_process_and_everything_it_started() {
    let db = Embedded::start().await;
    let config = db.config().await;
    let logs = tempfile::tempdir().unwrap();
    let marker = logs.path().join("child.pid");
    let running = deployer(&config, logs.path(), Duration::from_millis(500));
    // A process that ignores SIGTERM and has a child of its own: SIGKILL after the grace period, to both.
    put(&config, "stubborn", json!({"engine": "stubborn"})).await;
    eventually("the process running", LIMIT, || async {
        status_is(&config, "stubborn", "RUNNING").await && marker.is_file()
    })
    .await;
    let pid = deployment_state(&config, "stubborn").await.unwrap()["pid"].as_u64().unwrap() as u32;
    let child: u32 = std::fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    assert!(process_alive(pid) && process_alive(child));
    delete(&config, "stubborn").await;
    eventually("the process and its child gone", LIMIT, || async { !process_alive(pid) && !process_alive(child) })
        .await;
    // Its state went with the entry and was not written back: not by the time the deployer reports an entry
    // written after the process ended.
    put(&config, "after", json!({"engine": "exit3"})).await;
    eventually("the deployer at work", LIMIT, || async { status_is(&config, "after", "FAILED").await }).await;
    assert_eq!(deployment_state(&config, "stubborn").await, None);
    running.stop().await;
    db.stop().await;
}

#[tokio::test]
async fn stopping_the_deployer_stops_its_processes_and_the_next_one_runs_them_once() {
    let db = Embedded::start().await;
    let config = db.config().await;
    let logs = tempfile::tempdir().unwrap();
    let first = deployer(&config, logs.path(), Duration::from_secs(5));
    put(&config, "service", json!({"engine": "service"})).await;
    eventually("running", LIMIT, || async { status_is(&config, "service", "RUNNING").await }).await;
    let pid = deployment_state(&config, "service").await.unwrap()["pid"].as_u64().unwrap() as u32;
    first.stop().await;
    assert!(!process_alive(pid), "the process outlived its deployer");
    // The state still says RUNNING: the next deployer starts it again, once.
    assert!(status_is(&config, "service", "RUNNING").await);
    let second = deployer(&config, logs.path(), Duration::from_secs(5));
    eventually("running again under a new PID", LIMIT, || async {
        deployment_state(&config, "service").await.is_some_and(|s| s["status"] == "RUNNING" && s["pid"] != pid)
    })
    .await;
    let starts = std::fs::read_to_string(logs.path().join("service.log")).unwrap().matches("starting:").count();
    assert_eq!(starts, 2);
    second.stop().await;
    db.stop().await;
}

#[tokio::test]
async fn a_process_that_outlived_its_deployer_is_stopped_before_the_entry_runs_again() {
    use std::os::unix::process::CommandExt as _;
    let db = Embedded::start().await;
    let config = db.config().await;
    let logs = tempfile::tempdir().unwrap();
    // What a deployer killed with SIGKILL may leave: its process, still running, recorded as RUNNING.
    let orphan = std::process::Command::new("sleep").arg("300").process_group(0).spawn().unwrap();
    let pid = orphan.id();
    let ticks = sdp_procdeploy::process::start_ticks(pid).unwrap();
    put(&config, "service", json!({"engine": "service"})).await;
    let state = json!({"status": "RUNNING", "pid": pid, "pid_start": ticks});
    config
        .txn(|t| {
            let state = &state;
            async move { t.put_deployment_state("service", state).await }
        })
        .await
        .unwrap();
    let running = deployer(&config, logs.path(), Duration::from_secs(5));
    let orphan = std::sync::Mutex::new(orphan);
    eventually("the leftover process stopped and the entry running anew", LIMIT, || async {
        let ended = orphan.lock().unwrap().try_wait().unwrap().is_some();
        ended && deployment_state(&config, "service").await.is_some_and(|s| s["status"] == "RUNNING" && s["pid"] != pid)
    })
    .await;
    running.stop().await;
    db.stop().await;
}

#[tokio::test]
async fn commands_written_into_entries_never_run() {
    let db = Embedded::start().await;
    let config = db.config().await;
    let logs = tempfile::tempdir().unwrap();
    let running = deployer(&config, logs.path(), Duration::from_secs(5));
    let pwned = |n: u32| logs.path().join(format!("pwned{n}.txt"));
    let line = |n: u32| format!("id > {}; sleep 300", pwned(n).display());
    put(&config, "direct", json!({"command": ["/bin/sh", "-c", line(1)]})).await;
    put(&config, "shell", json!({"args": [line(2)], "shell": true})).await;
    put(&config, "extended", json!({"engine": "service", "args": ["-c", line(3)]})).await;
    eventually("every entry refused", LIMIT, || async {
        status_is(&config, "direct", "FAILED").await
            && status_is(&config, "shell", "FAILED").await
            && status_is(&config, "extended", "FAILED").await
    })
    .await;
    for id in ["direct", "shell", "extended"] {
        let state = deployment_state(&config, id).await.unwrap();
        let error = state["error"].as_str().unwrap();
        assert!(error.contains("never a command") && error.contains("--process-engines"), "{id}: {error}");
        assert!(state["pid"].is_null(), "{id}: {state}");
        assert!(!logs.path().join(format!("{id}.log")).exists(), "{id} started something");
    }
    // A registered engine still runs; by then, a command the deployer had started would have run too.
    put(&config, "service", json!({"engine": "service"})).await;
    eventually("the engine running", LIMIT, || async { status_is(&config, "service", "RUNNING").await }).await;
    for n in 1..=3 {
        assert!(!pwned(n).exists(), "the command of entry {n} ran");
        assert!(!sdp_testkit::runs_with(&pwned(n).display().to_string()), "the command of entry {n} runs");
    }
    running.stop().await;
    db.stop().await;
}

/// [`sdp_procdeploy::start`], as the platform runs the deployer: the settings given, its metrics in the
/// platform's registry.
#[tokio::test]
async fn started_as_the_platform_runs_it() {
    let db = Embedded::start().await;
    let config = db.config().await;
    let logs = tempfile::tempdir().unwrap();
    let settings = sdp_procdeploy::Settings {
        runnable: engines(&logs.path().join("child.pid")),
        log_dir: logs.path().to_path_buf(),
        grace: Duration::from_secs(5),
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let running = sdp_procdeploy::start(settings, config.clone(), &mut registry);
    put(&config, "ok", json!({"engine": "ok"})).await;
    eventually("the process finished", LIMIT, || async { status_is(&config, "ok", "FINISHED").await }).await;
    assert!(logs.path().join("ok.log").is_file());
    let mut metrics = String::new();
    prometheus_client::encoding::text::encode(&mut metrics, &registry).unwrap();
    assert!(metrics.contains("sdp_procdeploy_processes_total{event=\"started\"} 1"), "{metrics}");
    running.stop().await;
    db.stop().await;
}
