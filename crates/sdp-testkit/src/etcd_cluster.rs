//! A real etcd cluster of several members on loopback, whose members can be killed and restarted: the
//! database as users who outgrow one machine run it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{free_port, program, wait_for_port, KillOnDrop};

/// Debian's etcd, `members` members on free loopback ports, each with its data in a temporary folder.
pub struct EtcdCluster {
    pub members: Vec<Member>,
    initial_cluster: String,
    dir: tempfile::TempDir,
}

/// One member: its client port, and its process while it runs.
pub struct Member {
    pub name: String,
    pub port: u16,
    peer_port: u16,
    process: Option<KillOnDrop>,
}

impl EtcdCluster {
    /// Starts every member and waits until the cluster has a leader.
    pub async fn start(members: usize) -> EtcdCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let members: Vec<Member> = (0..members)
            .map(|i| Member { name: format!("m{i}"), port: free_port(), peer_port: free_port(), process: None })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster { members, initial_cluster, dir };
        for i in 0..cluster.members.len() {
            cluster.launch(i);
        }
        for member in &cluster.members {
            wait_for_port(member.port, Duration::from_secs(20), "an etcd member");
        }
        cluster.leader().await;
        cluster
    }

    fn launch(&mut self, i: usize) {
        let bin =
            program("etcd", "SDP_TEST_ETCD", "install it with `apt-get install etcd-server` (scripts/setup does)");
        let member = &self.members[i];
        let client_url = format!("http://127.0.0.1:{}", member.port);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", member.name)))
            .expect("etcd log file");
        let child = Command::new(bin)
            .args(["--name", &member.name, "--data-dir"])
            .arg(self.dir.path().join(&member.name))
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &self.initial_cluster, "--initial-cluster-token", "sdp-test"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start etcd");
        self.members[i].process = Some(KillOnDrop(child));
    }

    /// Every member's client address, separated by commas: SDP_CONFIG_HOST for the cluster.
    pub fn host(&self) -> String {
        self.host_from(0)
    }

    /// [`EtcdCluster::host`] listing member `first` first: the member its clients use while it answers.
    pub fn host_from(&self, first: usize) -> String {
        let n = self.members.len();
        (0..n).map(|i| format!("127.0.0.1:{}", self.members[(first + i) % n].port)).collect::<Vec<_>>().join(",")
    }

    pub fn settings(&self) -> sdp_config::Settings {
        sdp_config::Settings { host: self.host(), ..Default::default() }
    }

    /// Kills member `i` with SIGKILL, as a crash would.
    pub fn kill(&mut self, i: usize) {
        drop(self.members[i].process.take());
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].process.is_none(), "member {i} still runs");
        self.launch(i);
        wait_for_port(self.members[i].port, Duration::from_secs(20), "the restarted etcd member");
    }

    /// The index of the member that leads, once the running members agree on one (panics after 20 s).
    pub async fn leader(&self) -> usize {
        for _ in 0..200 {
            if let Some(leader) = self.agreed_leader().await {
                return leader;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the etcd cluster has no leader after 20 s; logs in {}", self.dir.path().display());
    }

    async fn agreed_leader(&self) -> Option<usize> {
        let mut ids = Vec::new();
        let mut leaders = Vec::new();
        for member in &self.members {
            let status = match member.process {
                Some(_) => status(member.port).await,
                None => None,
            };
            ids.push(status.map(|(id, _)| id));
            leaders.extend(status.map(|(_, leader)| leader));
        }
        let first = *leaders.first()?;
        if first == 0 || leaders.iter().any(|&l| l != first) {
            return None;
        }
        ids.iter().position(|&id| id == Some(first))
    }
}

/// A member's own ID and the leader it knows (0: none).
async fn status(port: u16) -> Option<(u64, u64)> {
    let options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(1));
    let mut client = etcd_client::Client::connect([format!("http://127.0.0.1:{port}")], Some(options)).await.ok()?;
    let status = client.status().await.ok()?;
    Some((status.header()?.member_id(), status.leader()))
}
