//! Our Rust device servers against real Tango: PyTango's database server and its client (cppTango inside),
//! replaying the seed's itango session while subscribed to the devices' events; the configuration database
//! then holds what the session made.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use sdp_testkit::TangoDatabase;

/// What each test serves the devices over: the embedded configuration database and PyTango's database server on
/// free loopback ports, and the runtime the devices run on. Fields drop in order, the folder last.
struct Peers {
    config: sdp_config::Config,
    config_db: sdp_testkit::Embedded,
    runtime: tokio::runtime::Runtime,
    tango_db: TangoDatabase,
    dir: tempfile::TempDir,
}

impl Peers {
    fn start() -> Peers {
        let dir = tempfile::tempdir().unwrap();
        let tango_db = TangoDatabase::start(dir.path());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let config_db = runtime.block_on(sdp_testkit::Embedded::start());
        let config = runtime.block_on(config_db.config());
        Peers { config, config_db, runtime, tango_db, dir }
    }

    /// The devices, served as [`serve`] does.
    fn serve(&self) -> (Arc<sdp_lmc::Lmc>, sdp_tango::TangoServers, String) {
        serve(&self.runtime, self.config.clone(), self.tango_db.port)
    }

    fn stop(self) {
        self.runtime.block_on(self.config_db.stop());
    }
}

/// The LMC devices over the configuration database `config`, served to Tango (registered in `tango_port`'s
/// database) and over HTTP; gives the HTTP surface's URL.
fn serve(
    runtime: &tokio::runtime::Runtime,
    config: sdp_config::Config,
    tango_port: u16,
) -> (Arc<sdp_lmc::Lmc>, sdp_tango::TangoServers, String) {
    let (lmc, listener) = runtime.block_on(async {
        (
            sdp_lmc::Lmc::start(config, 1, Default::default()),
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        )
    });
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = sdp_lmc::http::router(Arc::clone(&lmc));
    runtime.spawn(async move { axum::serve(listener, router).await });
    let db = sdp_tango::DatabaseProxy::new("127.0.0.1", tango_port);
    let servers = sdp_tango::serve(db, "127.0.0.1", Arc::clone(&lmc), runtime.handle().clone()).expect("serve");
    (lmc, servers, url)
}

const CONFIGURE: &str = r#"{ "configure": { "id": "xyz", "sbiId": "xyz", "workflow": { "type": "realtime", "version": "0.1.0", "id": "vis_receive" }, "parameters": {}, "scanParameters": { "1": {} } } }"#;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join(name)
}

#[test]
fn seed_itango_session_with_pytango() {
    let peers = Peers::start();
    let tango_port = peers.tango_db.port;
    let (_lmc, servers, lmc_url) = peers.serve();

    let out = Command::new(sdp_testkit::pytango_python())
        .arg(script("transcript.py"))
        .env("TANGO_HOST", format!("127.0.0.1:{tango_port}"))
        .env("SDP_LMC_URL", lmc_url)
        .env("ETCDCTL_ENDPOINTS", format!("http://{}", peers.config_db.server.addr))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "transcript failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.ends_with("transcript ok\n"));

    // The session's Configure made its processing block, and its EndSB (over HTTP) deleted it.
    let pb = peers.runtime.block_on(peers.config.txn(|t| async move { t.get_processing_block("xyz").await })).unwrap();
    assert_eq!(pb, None);
    servers.stop();
    peers.stop();
}

/// A PyTango client on the same host reaches the devices over the Unix socket their server offers beside its TCP
/// port, as it reaches cppTango's servers (omniORB's own trace names the connection), and the socket's file
/// goes when the server stops.
#[test]
fn pytango_on_this_host_connects_over_the_unix_socket() {
    let peers = Peers::start();
    let (_lmc, servers, _) = peers.serve();
    let trace = peers.dir.path().join("omniorb.log");
    let out = Command::new(sdp_testkit::pytango_python())
        .args(["-c", "import tango; print(int(tango.DeviceProxy('mid_sdp/elt/subarray_1').obsState))"])
        .env("TANGO_HOST", peers.tango_db.tango_host())
        .env("ORBtraceLevel", "25")
        .env("ORBtraceFile", &trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "the client failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "obsState EMPTY read over the socket");

    let trace = std::fs::read_to_string(&trace).unwrap();
    let ours = format!("giop:unix:{}/rstango-{}-", std::env::temp_dir().display(), std::process::id());
    let socket = trace
        .lines()
        .find_map(|line| line.split("Client opened connection to ").nth(1).filter(|to| to.starts_with(&ours)))
        .unwrap_or_else(|| panic!("no connection to {ours}… in omniORB's trace:\n{trace}"))
        .trim_start_matches("giop:unix:")
        .to_string();
    assert!(std::path::Path::new(&socket).exists());

    servers.stop();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::path::Path::new(&socket).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!std::path::Path::new(&socket).exists(), "{socket} is left behind");
    peers.stop();
}

/// A PyTango client script of these tests, its stdin and stdout piped, once it printed "subscribed"; its further
/// lines.
fn subscribed_client(name: &str, tango_db: &TangoDatabase) -> (Child, impl Iterator<Item = String>) {
    let mut client = Command::new(sdp_testkit::pytango_python())
        .arg(script(name))
        .env("TANGO_HOST", tango_db.tango_host())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines().map_while(Result::ok);
    let first = lines.next();
    assert_eq!(first.as_deref(), Some("subscribed"), "{name}: the client did not subscribe");
    (client, lines)
}

/// Tells a subscribed client `line` on its stdin, then waits for it: it must succeed, its last line `last`.
fn finish_client(mut client: Child, lines: impl Iterator<Item = String>, line: &str, last: &str) {
    writeln!(client.stdin.take().unwrap(), "{line}").unwrap();
    let rest: Vec<String> = lines.collect();
    println!("{}", rest.join("\n"));
    assert!(client.wait().unwrap().success(), "the subscriber failed: {rest:?}");
    assert_eq!(rest.last().map(String::as_str), Some(last));
}

#[test]
fn pytango_subscription_survives_a_server_restart() {
    let peers = Peers::start();
    let (lmc, servers, _) = peers.serve();

    let (client, lines) = subscribed_client("resubscribe.py", &peers.tango_db);

    servers.stop();
    let db = sdp_tango::DatabaseProxy::new("127.0.0.1", peers.tango_db.port);
    let servers = sdp_tango::serve(db, "127.0.0.1", lmc, peers.runtime.handle().clone()).expect("serve again");
    finish_client(client, lines, "restarted", "resubscribe ok");
    servers.stop();
    peers.stop();
}

/// The original's state machine and a burst: adminMode written 1,000 times with nothing between the writes
/// (microseconds apart, far faster than the event supplier's thread takes them one by one), then obsState
/// changed by commands as fast as the configuration database commits them. A PyTango subscriber gets every
/// change, in order.
#[test]
fn every_change_of_a_burst_reaches_pytango_in_order() {
    const ADMIN_CHANGES: usize = 1000;
    const OBS_CHANGES: usize = 200;
    let peers = Peers::start();
    let (lmc, servers, _) = peers.serve();
    let sub = "subarray_1";
    peers.runtime.block_on(async {
        lmc.write_attribute(sub, "adminMode", &serde_json::json!("ONLINE")).await.unwrap();
        lmc.command(sub, "AssignResources", "").await.unwrap();
        lmc.command(sub, "Configure", CONFIGURE).await.unwrap();
    });

    let (client, lines) = subscribed_client("events_burst.py", &peers.tango_db);
    peers.runtime.block_on(async {
        let started = std::time::Instant::now();
        for i in 0..ADMIN_CHANGES {
            let mode = if i % 2 == 0 { "OFFLINE" } else { "ONLINE" };
            lmc.write_attribute(sub, "adminMode", &serde_json::json!(mode)).await.unwrap();
        }
        println!("{ADMIN_CHANGES} adminMode changes in {:?}", started.elapsed());
        let started = std::time::Instant::now();
        for i in 0..OBS_CHANGES {
            lmc.command(sub, if i % 2 == 0 { "StartScan" } else { "EndScan" }, "").await.unwrap();
        }
        println!("{OBS_CHANGES} obsState changes in {:?}", started.elapsed());
    });
    finish_client(client, lines, &format!("{ADMIN_CHANGES} {OBS_CHANGES}"), "burst ok");
    servers.stop();
    peers.stop();
}
