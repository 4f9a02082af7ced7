//! Staging service figures (not a test): `cargo bench -p sdp-staging`.
//!
//! - local_copy of a 1 GiB tree against `cp -r` of the same tree;
//! - jupyter_copy MB/s against one raw contents-API upload of the same file (Python `requests`, one PUT);
//! - requests/s of `GET /config/` under `wrk`.
//!
//! `SDP_BENCH_COPY_MIB` and `SDP_BENCH_JUPYTER_MIB` change the sizes (default 1024 and 256).

#[path = "../tests/peers/jupyterhub.rs"]
mod hub;
#[path = "../tests/peers/service.rs"]
mod peers;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn mib(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Writes `mib` MiB of non-repeating bytes into `path`.
fn fill(path: &Path, mib: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x2545f4914f6cdd1d ^ mib;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for b in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

async fn stage(base: &str, method: &str, source: &str, target: &str) -> Duration {
    let url = peers::stage_url(base, "/stage-data/", &[("method", method), ("username", "alice")]);
    let start = Instant::now();
    let resp = peers::post_stage(url, source, target).await;
    let took = start.elapsed();
    let status = resp.status();
    assert!(status.is_success(), "{method} {source}: {status} {}", resp.text().await.unwrap_or_default());
    took
}

fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    start.elapsed()
}

fn rate(mib: u64, d: Duration) -> String {
    format!("{:.2} s, {:.0} MB/s", d.as_secs_f64(), (mib << 20) as f64 / 1e6 / d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let copy_mib = mib("SDP_BENCH_COPY_MIB", 1024);
    let jupyter_mib = mib("SDP_BENCH_JUPYTER_MIB", 256);
    let hub = hub::JupyterHub::start(&["alice"]).await;
    let s = peers::start_service(hub.staging_settings()).await;

    // 1. A tree of 16 files (plus a few small ones) totalling copy_mib MiB.
    let tree = s.storage.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    for i in 0..16 {
        fill(&tree.join(format!("part{i:02}.bin")), copy_mib / 16);
    }
    for i in 0..32 {
        std::fs::write(tree.join(format!("sub/small{i}.txt")), format!("{i}\n")).unwrap();
    }
    let cp_dest = s.storage.parent().unwrap().join("cp-dest");
    std::fs::create_dir_all(&cp_dest).unwrap();
    // Warm the page cache the same way for both, then alternate.
    timed(Command::new("cp").arg("-r").arg(&tree).arg(cp_dest.join("warm")));
    let cp1 = timed(Command::new("cp").arg("-r").arg(&tree).arg(cp_dest.join("one")));
    let st1 = stage(&s.base, "local_copy", "tree", "one").await;
    let cp2 = timed(Command::new("cp").arg("-r").arg(&tree).arg(cp_dest.join("two")));
    let st2 = stage(&s.base, "local_copy", "tree", "two").await;
    let (cp, st) = (cp1.min(cp2), st1.min(st2));
    println!(
        "local_copy of a {copy_mib} MiB tree (best of 2): staging {}; cp -r {}",
        rate(copy_mib, st),
        rate(copy_mib, cp)
    );
    for d in ["warm", "one", "two"] {
        std::fs::remove_dir_all(cp_dest.join(d)).unwrap();
    }
    // The staged copies are read-only folders: make them writable to remove them.
    Command::new("chmod").args(["-R", "u+w"]).arg(&s.users).status().unwrap();
    std::fs::remove_dir_all(s.users.join("alice")).unwrap();
    std::fs::remove_dir_all(&tree).unwrap();

    // 2. jupyter_copy against a raw contents-API upload of the same file, the server already running.
    let file = s.storage.join("upload.bin");
    fill(&file, jupyter_mib);
    std::fs::write(s.storage.join("tiny.txt"), "x").unwrap();
    stage(&s.base, "jupyter_copy", "tiny.txt", "tiny.txt").await;
    let staged = stage(&s.base, "jupyter_copy", "upload.bin", "staged.bin").await;
    let python =
        std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/sdp/tools/jupyterhub/bin/python")).unwrap();
    let raw_script = r#"
import base64, sys, requests
hub, token, path = sys.argv[1:4]
h = {"Authorization": "token " + token}
url = requests.get(f"{hub}/hub/api/users/alice", headers=h).json()["servers"][""]["url"]
body = {"type": "file", "format": "base64", "content": base64.b64encode(open(path, "rb").read()).decode()}
r = requests.put(f"{hub}{url}api/contents/raw.bin", headers=h, json=body)
r.raise_for_status()
"#;
    let raw = timed(Command::new(&python).args(["-c", raw_script, &hub.url, &hub.token]).arg(&file));
    let original = std::fs::read(&file).unwrap();
    for name in ["staged.bin", "raw.bin"] {
        assert!(std::fs::read(hub.home("alice").join(name)).unwrap() == original, "{name} differs");
    }
    println!(
        "jupyter_copy of {jupyter_mib} MiB: staging {} ({} MiB chunks); raw contents-API PUT (Python requests) {}",
        rate(jupyter_mib, staged),
        sdp_staging::jupyter::CHUNK_BYTES >> 20,
        rate(jupyter_mib, raw)
    );

    // 3. GET /config/ under wrk.
    let wrk =
        sdp_testkit::program("wrk", "SDP_BENCH_WRK", "install it with `apt-get install wrk` (scripts/setup does)");
    let out = Command::new(wrk)
        .args(["-t2", "-c32", "-d5s", "--latency"])
        .arg(format!("{}/config/", s.base))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        |key: &str| text.lines().find(|l| l.trim_start().starts_with(key)).map(str::trim).unwrap_or("?").to_string();
    println!("GET /config/ under wrk (2 threads, 32 connections, 5 s): {}; {}", line("Requests/sec:"), line("99%"));
}
