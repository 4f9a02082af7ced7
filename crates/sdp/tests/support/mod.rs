//! Running `sdp up` as a user does, for the tests of this crate.
#![allow(dead_code)] // each test file uses its share

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use sdp_testkit::{free_port, wait_for_port, KillOnDrop};

/// `sdp up` on free loopback ports with a temporary data directory, and a client of its configuration database.
/// Fields drop in order: the platform is killed before its data directory goes.
pub struct Platform {
    pub up: KillOnDrop,
    pub config: sdp_config::Config,
    pub port: u16,
    pub lmc_port: u16,
    pub dir: tempfile::TempDir,
}

impl Platform {
    pub async fn start() -> Platform {
        Platform::start_with(|_, _| {}).await
    }

    /// With `configure` adding options or environment to the command; it gets the data directory.
    pub async fn start_with(configure: impl FnOnce(&mut Command, &std::path::Path)) -> Platform {
        let dir = tempfile::tempdir().unwrap();
        let (port, lmc_port) = (free_port(), free_port());
        let mut command = up_command(port, lmc_port, dir.path());
        configure(&mut command, dir.path());
        let up = spawn_up(command, port, lmc_port);
        Platform { up, config: connect(port).await, port, lmc_port, dir }
    }
}

/// A client of the configuration database on `port`.
pub async fn connect(port: u16) -> sdp_config::Config {
    sdp_config::Config::connect(&sdp_config::Settings { port, ..Default::default() }).await.unwrap()
}

/// Starts `sdp up` with its configuration database on `port` and its LMC surface on a free port.
pub fn start_up(port: u16, data_dir: &std::path::Path) -> KillOnDrop {
    start_up_with_lmc(port, free_port(), data_dir)
}

/// `sdp up` on loopback ports with its own data directory, started there (outside the repository: the charts it
/// deploys are its own), with the real helm, isolated from any cluster, external etcd or Tango database the
/// environment names (callers add those they test).
pub fn up_command(port: u16, lmc_port: u16, data_dir: &std::path::Path) -> Command {
    std::fs::create_dir_all(data_dir).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sdp"));
    command
        .args(["up", "--config-listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .current_dir(data_dir)
        .args(["--lmc-listen", &format!("127.0.0.1:{lmc_port}")])
        .env("SDP_STAGING_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env_remove("SDP_CHARTS_DIR")
        .arg("--helm")
        .arg(sdp_testkit::helm())
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("SDP_CONFIG_HOST")
        .env_remove("TANGO_HOST")
        .env("HOME", data_dir)
        // Its temporary files (the Tango servers' Unix sockets) go with the test's directory, even when it is
        // killed with SIGKILL.
        .env("TMPDIR", data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// The body of an HTTP GET on loopback.
pub fn http_get(port: u16, path: &str) -> String {
    let (status, body) = http_answer(port, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Waits until the daemon on 127.0.0.1:`port` answers `/readyz` with 200 (it listens before it is ready).
pub fn wait_ready(port: u16, what: &str) {
    wait_for_port(port, Duration::from_secs(30), what);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http_answer(port, "/readyz");
        if status == 200 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what} not ready within 30 s: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GET `path` from 127.0.0.1:`port`: the status code and the body.
pub fn http_answer(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok());
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_string());
    status.zip(body).unwrap_or_else(|| panic!("GET {path}: not an HTTP answer: {answer:?}"))
}

/// A batch processing block running the testdask script; returns its ID.
pub async fn create_batch_processing_block(config: &sdp_config::Config) -> String {
    create_block(config, "batch:testdask:0.1.0", serde_json::json!({})).await
}

pub fn start_up_with_lmc(port: u16, lmc_port: u16, data_dir: &std::path::Path) -> KillOnDrop {
    spawn_up(up_command(port, lmc_port, data_dir), port, lmc_port)
}

/// Starts `up` (an [`up_command`]) and waits until its database and LMC surface listen.
fn spawn_up(mut up: Command, port: u16, lmc_port: u16) -> KillOnDrop {
    let child = KillOnDrop(up.spawn().unwrap());
    wait_for_port(port, Duration::from_secs(20), "sdp up");
    wait_for_port(lmc_port, Duration::from_secs(20), "sdp up's LMC surface");
    child
}

/// An HTTP request on loopback with an optional bearer token: the status and the body.
pub fn http_request(port: u16, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let script = r#"
import sys, urllib.request, urllib.error
port, method, path, body, token = sys.argv[1:6]
request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body.encode() if method != "GET" else None, method=method)
if token:
    request.add_header("Authorization", f"Bearer {token}")
try:
    with urllib.request.urlopen(request) as response:
        print(response.status); print(response.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"#;
    let port = port.to_string();
    let out =
        Command::new("python3").args(["-c", script, &port, method, path, body, token.unwrap_or("")]).output().unwrap();
    assert!(out.status.success(), "{method} {path}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, body) = text.split_once('\n').unwrap_or((&text, ""));
    (status.trim().parse().unwrap(), body.trim_end().to_string())
}

/// A new processing block of `workflow` (`kind:name:version`) with `parameters`, as `sdpcfg process` makes it; its
/// ID.
pub async fn create_block(config: &sdp_config::Config, workflow: &str, parameters: serde_json::Value) -> String {
    let workflow: sdp_config::Workflow = workflow.parse().unwrap();
    config
        .txn(|t| {
            let (workflow, parameters) = (&workflow, &parameters);
            async move { t.create_new_processing_block(workflow.clone(), parameters.clone()).await }
        })
        .await
        .unwrap()
}
