//! The configuration database killed with SIGKILL under load: `scripts/robustness` against this build's embedded
//! server and against Debian's etcd, bounded (6 s and 3 kills each; SDP_ROBUSTNESS_SECONDS and
//! SDP_ROBUSTNESS_KILLS for longer runs). It checks the clients' history for linearizability with Porcupine, lost
//! writes, revisions, watches and leases (docs/configuration-database.md).

use std::path::Path;
use std::process::Command;

#[test]
fn the_database_survives_kills_as_etcd_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let seconds = std::env::var("SDP_ROBUSTNESS_SECONDS").unwrap_or_else(|_| "6".into());
    let kills = std::env::var("SDP_ROBUSTNESS_KILLS").unwrap_or_else(|_| "3".into());
    let out = Command::new(root.join("scripts/robustness"))
        .args([&seconds, &kills])
        .env("SDP_BIN", env!("CARGO_BIN_EXE_sdp"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scripts/robustness {seconds} {kills} failed ({}):\n{stdout}", out.status);
    for server in ["sdp", "etcd"] {
        let summary = format!("robustness ({server}): ");
        assert!(stdout.lines().any(|line| line.starts_with(&summary) && line.ends_with(" 0 violations")), "{stdout}");
    }
}
