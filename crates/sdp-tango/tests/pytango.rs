//! Our Rust device servers against real Tango: PyTango's database server and its client (cppTango inside),
//! replaying the seed's itango session; the configuration database then holds what the session made.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use sdp_testkit::{free_port, program, wait_for_port, KillOnDrop};

fn python() -> PathBuf {
    let venv = std::env::var_os("SDP_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sdp/tools")))
        .map(|t| t.join("pytango/bin/python"));
    match venv {
        Some(p) if p.is_file() => p,
        _ => program("python-with-pytango", "SDP_TEST_PYTHON", "run scripts/setup, which installs PyTango"),
    }
}

/// PyTango's database server (sqlite) on a free loopback port.
fn tango_database(dir: &std::path::Path) -> (KillOnDrop, u16) {
    let port = free_port();
    let child = Command::new(python())
        .args(["-m", "tango.databaseds.database", "--host", "127.0.0.1", "--port", &port.to_string(), "2"])
        .env("PYTANGO_DATABASE_NAME", dir.join("tango.db"))
        .env("TANGO_HOST", format!("127.0.0.1:{port}"))
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start PyTango's database server");
    let mut child = KillOnDrop(child);
    wait_for_port(port, Duration::from_secs(60), "the Tango database server");
    // Listening comes before serving: the server says when its database device is ready.
    let stdout = child.0.stdout.take().unwrap();
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
    (child, port)
}

#[test]
fn seed_itango_session_with_pytango() {
    let dir = tempfile::tempdir().unwrap();
    let (_database, tango_port) = tango_database(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config_db = runtime.block_on(sdp_testkit::Embedded::start());
    let config = runtime.block_on(config_db.config());
    let lmc = {
        let _guard = runtime.enter();
        sdp_lmc::Lmc::start(config.clone(), 1)
    };
    let db = sdp_tango::DatabaseProxy::new("127.0.0.1", tango_port);
    let servers = sdp_tango::serve(db, "127.0.0.1", lmc, runtime.handle().clone()).expect("serve the devices");

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/transcript.py");
    let out = Command::new(python())
        .arg(&script)
        .env("TANGO_HOST", format!("127.0.0.1:{tango_port}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "transcript failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.ends_with("transcript ok\n"));

    // The session's Configure made its processing block.
    let pb = runtime.block_on(config.txn(|t| async move { t.get_processing_block("xyz").await })).unwrap().unwrap();
    assert_eq!((pb.workflow.kind.as_str(), pb.workflow.id.as_str()), ("realtime", "vis_receive"));
    servers.stop();
    runtime.block_on(config_db.stop());
}
