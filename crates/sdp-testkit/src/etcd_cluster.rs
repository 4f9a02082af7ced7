//! A real etcd cluster of several members on loopback, whose members can be killed and restarted: the
//! database as users who outgrow one machine run it.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, log_tail, program, KillOnDrop};

/// How long a member has to listen once started.
const LISTEN_LIMIT: Duration = Duration::from_secs(20);
/// Clusters started afresh, on new ports, when a member exits at start (a port chosen free was taken before it
/// bound it).
const START_ATTEMPTS: usize = 3;

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
        for attempt in 1..=START_ATTEMPTS {
            let mut cluster = EtcdCluster::launch_all(members);
            let exited = (0..members).find_map(|i| cluster.wait_listening(i).err());
            match exited {
                None => {
                    cluster.leader().await;
                    return cluster;
                }
                Some(why) if attempt == START_ATTEMPTS => panic!("{why}"),
                Some(why) => eprintln!("starting the etcd cluster again on other ports: {why}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// A cluster of `members` on free ports, each member started.
    fn launch_all(members: usize) -> EtcdCluster {
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
        cluster
    }

    /// Waits until member `i` accepts connections; says why not, with its log, if it exits first.
    fn wait_listening(&mut self, i: usize) -> Result<(), String> {
        let start = Instant::now();
        let (name, port) = (self.members[i].name.clone(), self.members[i].port);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = self.members[i].process.as_mut().and_then(|p| p.0.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(format!("etcd member {name} exited ({status}) before listening:\n{}", self.log_tail(i)));
            }
            assert!(
                start.elapsed() < LISTEN_LIMIT,
                "etcd member {name} did not listen within {LISTEN_LIMIT:?}:\n{}",
                self.log_tail(i)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The end of member `i`'s log.
    fn log_tail(&self, i: usize) -> String {
        log_tail(&self.dir.path().join(format!("{}.log", self.members[i].name)))
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
        if let Err(why) = self.wait_listening(i) {
            panic!("{why}");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A member whose peer port was taken before it bound it exits at once; that is told with its log, not
    /// waited out.
    #[test]
    fn a_member_that_exits_at_start_is_told_with_its_log() {
        let mut cluster = EtcdCluster::launch_all(1);
        drop(cluster.members[0].process.take());
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        cluster.members[0].peer_port = taken.local_addr().unwrap().port();
        cluster.initial_cluster = format!("m0=http://127.0.0.1:{}", cluster.members[0].peer_port);
        std::fs::remove_dir_all(cluster.dir.path().join("m0")).ok();
        cluster.launch(0);
        let started = Instant::now();
        let why = cluster.wait_listening(0).unwrap_err();
        assert!(started.elapsed() < LISTEN_LIMIT / 2, "waited {:?}", started.elapsed());
        assert!(why.contains("exited") && why.contains("address already in use"), "{why}");
    }
}
