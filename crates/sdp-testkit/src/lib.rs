//! Real servers for tests: each one listens on free 127.0.0.1 ports, keeps its data in a temporary folder,
//! and is killed when its handle is dropped.

pub mod cluster;
mod etcd_cluster;
mod logs;
mod process;
pub mod tls;
mod wait;

pub use etcd_cluster::{EtcdCluster, Member};
pub use logs::{put_unchecked, Logs};
pub use process::{free_port, program, wait_for_port, KillOnDrop};
pub use wait::eventually;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The real helm binary (installed by `scripts/setup`).
pub fn helm() -> PathBuf {
    program("helm", "SDP_HELM", "run scripts/setup, which installs helm into ~/.cache/sdp/tools/bin")
}

/// Debian's etcdctl (API v3).
pub fn etcdctl() -> PathBuf {
    program("etcdctl", "SDP_TEST_ETCDCTL", "install it with `apt-get install etcd-client` (scripts/setup does)")
}

/// The repository's `charts/` folder.
pub fn charts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts")
}

/// A real etcd server (Debian's `etcd-server`), single member, on free loopback ports.
pub struct Etcd {
    pub port: u16,
    /// With [`Etcd::start_tls`]: the certificates it serves and trusts.
    pub certs: Option<tls::TestCerts>,
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Etcd {
    pub fn start() -> Etcd {
        Etcd::launch(false)
    }

    /// An etcd that serves its clients over TLS only and accepts only clients whose certificate its test CA
    /// signed (`--cert-file --key-file --trusted-ca-file --client-cert-auth`). [`Etcd::settings`] has such a
    /// client's settings.
    pub fn start_tls() -> Etcd {
        Etcd::launch(true)
    }

    fn launch(tls: bool) -> Etcd {
        let bin =
            program("etcd", "SDP_TEST_ETCD", "install it with `apt-get install etcd-server` (scripts/setup does)");
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = tls.then(|| tls::TestCerts::new(dir.path()));
        let (port, peer) = (free_port(), free_port());
        let client_url = format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" });
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log file");
        let mut command = Command::new(bin);
        command
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")]);
        if let Some(certs) = &certs {
            command.args(certs.server_args());
        }
        let child = command.stdout(Stdio::null()).stderr(log).spawn().expect("cannot start etcd");
        let child = KillOnDrop(child);
        wait_for_port(port, Duration::from_secs(20), "etcd");
        Etcd { port, certs, _child: child, _dir: dir }
    }

    pub fn log_path(&self) -> &Path {
        self._dir.path()
    }

    /// A client's settings: over TLS with the client certificate for [`Etcd::start_tls`].
    pub fn settings(&self) -> sdp_config::Settings {
        match &self.certs {
            Some(certs) => certs.client_settings(self.port),
            None => sdp_config::Settings { port: self.port, ..Default::default() },
        }
    }

    pub async fn config(&self) -> sdp_config::Config {
        sdp_config::Config::connect(&self.settings()).await.expect("connect to test etcd")
    }
}

/// The embedded configuration database on a free loopback port, with its journal in a temporary folder.
pub struct Embedded {
    pub server: sdp_etcd_server::RunningServer,
    _dir: tempfile::TempDir,
}

impl Embedded {
    pub async fn start() -> Embedded {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = sdp_etcd_server::start(sdp_etcd_server::ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .await
        .expect("start the embedded server");
        Embedded { server, _dir: dir }
    }

    pub fn settings(&self) -> sdp_config::Settings {
        sdp_config::Settings { port: self.server.addr.port(), ..Default::default() }
    }

    pub async fn config(&self) -> sdp_config::Config {
        sdp_config::Config::connect(&self.settings()).await.expect("connect to the embedded server")
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// Stops a task the test spawned. A panic of the task fails the test: aborting alone would lose it.
pub async fn stop_task<T>(task: tokio::task::JoinHandle<T>) {
    task.abort();
    if let Err(e) = task.await {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// Whether a process whose command line holds `text` runs.
pub fn runs_with(text: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&cmdline).contains(text)
    })
}

/// `/deploy/<deploy_id>/state` as it is now.
pub async fn deployment_state(config: &sdp_config::Config, deploy_id: &str) -> Option<serde_json::Value> {
    config.txn(|t| async move { t.get_deployment_state(deploy_id).await }).await.expect("read a deployment state")
}

/// Creates or replaces `/deploy/<id>`: the `workflow` chart for processing block `id` with that image.
pub async fn put_workflow_deployment(config: &sdp_config::Config, id: &str, image: &str) {
    put_chart_deployment(config, id, "workflow", image).await;
}

/// Creates or replaces the Helm deployment `id` of `chart`, with the workflow chart's values (`pb_id`, `wf_image`).
pub async fn put_chart_deployment(config: &sdp_config::Config, id: &str, chart: &str, image: &str) {
    put_helm_deployment(config, id, serde_json::json!({"chart": chart, "values": {"pb_id": id, "wf_image": image}}))
        .await
}

/// The arguments of the Dask deployment the seed era's testdask script writes, exactly as it writes them
/// (ska-telescope/sdp-prototype, `src/workflows/testdask/testdask.py`).
pub fn seed_testdask_dask_args() -> serde_json::Value {
    serde_json::json!({
        "chart": "stable/dask",
        "values": {"jupyter.enabled": "false", "worker.replicas": 2, "scheduler.serviceType": "ClusterIP"}
    })
}

/// Writes the `/deploy/<id>` entry of type helm with `args`.
pub async fn put_helm_deployment(config: &sdp_config::Config, id: &str, args: serde_json::Value) {
    let d = sdp_config::Deployment { deploy_id: id.into(), kind: "helm".into(), args };
    let path = sdp_config::keys::paths::deploy(id);
    config
        .txn(|t| {
            let (path, d) = (&path, &d);
            async move { t.put_json(path, d).await }
        })
        .await
        .expect("write a deployment entry");
}

/// The kubeconfig of the Kubernetes API a cluster test runs against. Such tests are `#[ignore]`d, so that a plain
/// `cargo test` reports them as not run; run with `--include-ignored` and no cluster, they fail here.
pub fn require_cluster() -> std::ffi::OsString {
    std::env::var_os("KUBECONFIG").expect(
        "no KUBECONFIG: this test needs a Kubernetes API; scripts/test starts the local control plane \
         (scripts/k8s-testbed) and runs the cluster tests with --include-ignored",
    )
}

/// The Python of the virtual environment `scripts/setup` installs PyTango into.
pub fn pytango_python() -> PathBuf {
    tool_python("pytango").unwrap_or_else(|| {
        program("python-with-pytango", "SDP_TEST_PYTHON", "run scripts/setup, which installs PyTango")
    })
}

/// The Python of etcd3-py's virtual environment in the tool cache (the original client's library).
pub fn etcd3py_python() -> PathBuf {
    tool_python("etcd3py").unwrap_or_else(|| panic!("etcd3-py not found in the tool cache: run scripts/setup"))
}

/// `<tool cache>/<venv>/bin/python`, when scripts/setup made it.
fn tool_python(venv: &str) -> Option<PathBuf> {
    tool_path(&format!("{venv}/bin/python"))
}

/// `<tool cache>/<path>`, when it is a file.
fn tool_path(path: &str) -> Option<PathBuf> {
    std::env::var_os("SDP_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sdp/tools")))
        .map(|t| t.join(path))
        .filter(|p| p.is_file())
}

/// PyTango's Tango database server (sqlite, in `dir`) on a free loopback port.
pub struct TangoDatabase {
    pub port: u16,
    _child: KillOnDrop,
}

impl TangoDatabase {
    pub fn start(dir: &Path) -> TangoDatabase {
        let port = free_port();
        let child = Command::new(pytango_python())
            .args(["-m", "tango.databaseds.database", "--host", "127.0.0.1", "--port", &port.to_string(), "2"])
            .env("PYTANGO_DATABASE_NAME", dir.join("tango.db"))
            .env("TANGO_HOST", format!("127.0.0.1:{port}"))
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start PyTango's database server");
        let mut child = KillOnDrop(child);
        // Listening comes before serving: the server says when its database device is ready.
        let stdout = child.0.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Ready to accept request") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(60)).expect("the Tango database server never became ready");
        TangoDatabase { port, _child: child }
    }

    pub fn tango_host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// The `dask` command of the virtual environment `scripts/setup` installs distributed 2022.12.1 into (the
/// version of the `ska-sdp-dask` image).
pub fn dask_command() -> PathBuf {
    tool_path("dask/bin/dask").unwrap_or_else(|| {
        panic!("Dask (distributed 2022.12.1) not found in the tool cache (<tools>/dask/bin/dask): run scripts/setup")
    })
}

/// A real Dask cluster on 127.0.0.1: `dask scheduler` and `workers` `dask worker`s (one thread each, without a
/// nanny, so that each is one process), on free ports, their files and logs in `dir`. Dropping it kills them.
pub struct DaskCluster {
    /// The scheduler's `tcp://127.0.0.1:<port>`.
    pub address: String,
    dir: PathBuf,
    /// The workers, then the scheduler: stopped in that order.
    processes: Vec<KillOnDrop>,
}

impl DaskCluster {
    /// Starts the scheduler, waits until it has written its address, then starts the workers (which register
    /// with it by themselves, a moment later).
    pub fn start(dir: &Path, workers: usize) -> DaskCluster {
        let dask = dask_command();
        let log = |name: &str| std::fs::File::create(dir.join(format!("{name}.log"))).expect("create a Dask log");
        let scheduler_file = dir.join("scheduler.json");
        let command = |name: &str| {
            let mut command = Command::new(&dask);
            let log = log(name);
            let out = log.try_clone().expect("a second handle on a Dask log");
            // DASK_CONFIG: Dask writes its default configuration files there, not into ~/.config/dask.
            command.env("DASK_CONFIG", dir.join("config")).stdin(Stdio::null()).stdout(out).stderr(log);
            command
        };
        let scheduler = command("scheduler")
            .args([
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--no-show",
            ])
            .arg("--scheduler-file")
            .arg(&scheduler_file)
            .spawn()
            .expect("start dask scheduler");
        let mut cluster =
            DaskCluster { address: String::new(), dir: dir.to_path_buf(), processes: vec![KillOnDrop(scheduler)] };
        let start = Instant::now();
        cluster.address = loop {
            let written = std::fs::read_to_string(&scheduler_file).ok();
            let address = written
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|v| v["address"].as_str().map(str::to_string));
            if let Some(address) = address {
                break address;
            }
            if let Ok(Some(status)) = cluster.processes[0].0.try_wait() {
                panic!("dask scheduler ended with {status}: {}", cluster.log_tail("scheduler"));
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "dask scheduler wrote no address within 60 s: {}",
                cluster.log_tail("scheduler")
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        for i in 0..workers {
            let name = format!("worker-{i}");
            let worker = command(&name)
                .args(["worker", &cluster.address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny"])
                .args(["--dashboard-address", "127.0.0.1:0", "--name", &name, "--death-timeout", "60"])
                .arg("--local-directory")
                .arg(dir.join(&name))
                .spawn()
                .expect("start dask worker");
            cluster.processes.insert(0, KillOnDrop(worker));
        }
        cluster
    }

    /// The PIDs of the cluster's processes and of every process they started, alive now.
    pub fn processes(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.processes.iter().map(|p| p.0.id()).collect();
        let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|entry| {
                let pid = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                // After the command's name in parentheses: the state, then the parent's PID.
                let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
                Some((pid, ppid))
            })
            .collect();
        let mut at = 0;
        while at < pids.len() {
            let parent = pids[at];
            pids.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
            at += 1;
        }
        pids.retain(|pid| process_alive(*pid));
        pids
    }

    /// The end of a process's log (`scheduler`, `worker-<i>`), for a failure's message.
    pub fn log_tail(&self, name: &str) -> String {
        crate::process::log_tail(&self.dir.join(format!("{name}.log")))
    }
}

/// Whether `pid` is a process that has not ended (a zombie has).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    #[should_panic(expected = "the task's own panic")]
    async fn stopping_a_task_that_panicked_fails() {
        let task = tokio::spawn(async { panic!("the task's own panic") });
        while !task.is_finished() {
            tokio::task::yield_now().await;
        }
        super::stop_task(task).await;
    }

    #[tokio::test]
    async fn stopping_a_running_task_is_quiet() {
        super::stop_task(tokio::spawn(std::future::pending::<()>())).await;
    }
}
