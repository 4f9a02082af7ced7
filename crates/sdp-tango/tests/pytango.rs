//! Our Rust device servers against real Tango: PyTango's database server and its client (cppTango inside),
//! replaying the seed's itango session; the configuration database then holds what the session made.

use std::path::PathBuf;
use std::process::Command;

use sdp_testkit::TangoDatabase;

#[test]
fn seed_itango_session_with_pytango() {
    let dir = tempfile::tempdir().unwrap();
    let tango_db = TangoDatabase::start(dir.path());
    let tango_port = tango_db.port;
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
    let out = Command::new(sdp_testkit::pytango_python())
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
