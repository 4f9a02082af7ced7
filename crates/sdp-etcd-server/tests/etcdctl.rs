//! `etcdctl` (Debian's, API v3) against real etcd and against the embedded server: the same session must
//! print the same thing on both, revisions and errors included.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long one etcdctl command may take before the test fails (a bound on a failure: they take milliseconds).
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

struct Step {
    args: Vec<String>,
    stdin: Option<&'static str>,
    /// A watch never ends by itself: it is stopped once its output ends with this, the last event it replays.
    last_event: Option<&'static str>,
}

/// One command line; `""` is an empty argument (`--prefix ""`: the whole key space).
fn step(line: &str) -> Step {
    let args = line.split_whitespace().map(|a| if a == "\"\"" { String::new() } else { a.to_string() }).collect();
    Step { args, stdin: None, last_event: None }
}

fn txn(input: &'static str) -> Step {
    Step { stdin: Some(input), ..step("txn") }
}

fn watch(line: &str, last_event: &'static str) -> Step {
    Step { last_event: Some(last_event), ..step(line) }
}

/// The child's standard output once it exits, or once it ends with `last_event` (the child is then stopped).
/// Panics when neither happens within STEP_TIMEOUT.
fn output_until(child: &mut Child, last_event: Option<&str>, what: &[String]) -> String {
    let mut pipe = child.stdout.take().unwrap();
    let (chunks, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0; 4096];
        loop {
            match pipe.read(&mut buffer) {
                Ok(n) if n > 0 && chunks.send(buffer[..n].to_vec()).is_ok() => {}
                _ => break,
            }
        }
    });
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut out = Vec::new();
    loop {
        if last_event.is_some_and(|end| out.ends_with(end.as_bytes())) {
            child.kill().unwrap();
            break;
        }
        match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(chunk) => out.extend(chunk),
            // The child closed its output: it has exited.
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                child.kill().unwrap();
                panic!(
                    "etcdctl {what:?}: no end within {STEP_TIMEOUT:?} (expected last event {last_event:?}), printed {:?}",
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs one etcdctl command; returns "stdout|stderr|exit code" with the session's lease ID replaced.
fn run(endpoint: &str, step: &Step, lease: &mut Option<String>) -> String {
    let etcdctl = sdp_testkit::program("etcdctl", "SDP_TEST_ETCDCTL", "install it with `apt-get install etcd-client`");
    let args: Vec<String> = step.args.iter().map(|a| a.replace("LEASE", lease.as_deref().unwrap_or("0"))).collect();
    let mut child = Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoint)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = step.stdin {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    drop(stdin);
    let stdout = output_until(&mut child, step.last_event, &args);
    let out = child.wait_with_output().unwrap();
    if let Some(id) = stdout.strip_prefix("lease ").and_then(|rest| rest.split_whitespace().next()) {
        if stdout.contains("granted with TTL") {
            *lease = Some(id.to_string());
        }
    }
    // etcdctl logs its client retries with timestamps and connection names: keep only its own messages.
    let stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("{\"level\":"))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!("{stdout}|{stderr}|{:?}", out.status.code());
    match lease {
        Some(id) => {
            let decimal = i64::from_str_radix(id, 16).unwrap().to_string();
            text.replace(id.as_str(), "<LEASE>").replace(&decimal, "<LEASE>")
        }
        None => text,
    }
}

fn session() -> Vec<Step> {
    vec![
        step("put a 1"),
        step("put a 2 --prev-kv"),
        step("put b/x 3"),
        step("put b/y 4"),
        step("get --prefix b/"),
        step("get --prefix b/ --keys-only"),
        step("get --prefix b/ --limit 1"),
        step("get --prefix b/ --count-only -w simple"),
        step("get a --print-value-only"),
        step("get a --rev 2"),
        step("get a --rev 99"),
        step("get --from-key a --sort-by=MODIFY --order=DESCEND"),
        step("get --prefix b/ --sort-by=VALUE --order=DESCEND --print-value-only"),
        txn("mod(\"a\") > \"0\"\n\nput a 3\nput c 5\n\nget a\n\n"),
        txn("value(\"a\") = \"3\"\nversion(\"c\") = \"1\"\n\nget c\n\nput never 1\n\n"),
        txn("create(\"a\") = \"99\"\n\nput never 1\n\nget a\ndel b/x\n\n"),
        txn("\n\nput d 1\nput d 2\n\n\n"),
        step("del b/y --prev-kv"),
        step("del nothing"),
        step("lease grant 100"),
        step("put k v --lease=LEASE"),
        step("put k2 v2 --lease=LEASE"),
        step("lease list"),
        step("lease keep-alive --once LEASE"),
        step("get k -w json"),
        step("lease revoke LEASE"),
        step("get --prefix k"),
        step("lease revoke LEASE"),
        step("lease timetolive LEASE"),
        step("put ignore --ignore-value"),
        watch("watch --prefix \"\" --rev 1 --prev-kv", "DELETE\nk2\nv2\nk2\n\n"),
        watch("watch b/ --prefix --rev 5", "DELETE\nb/y\n\n"),
        watch("watch a --rev 3", "PUT\na\n3\n"),
        step("compaction 4"),
        // The server cancels a watch of a compacted revision: etcdctl exits.
        step("watch a --rev 3"),
        step("get a --rev 3"),
        step("get a --rev 4"),
        step("compaction 2"),
        step("del --prefix \"\""),
        step("get --prefix \"\""),
    ]
}

/// `-w json` headers name the cluster and member: those legitimately differ between servers.
fn normalize(text: &str) -> String {
    let mut out = text.to_string();
    for field in ["\"cluster_id\":", "\"member_id\":"] {
        while let Some(start) = out.find(field) {
            let end = out[start..].find(',').map(|e| start + e).unwrap_or(out.len());
            out.replace_range(start..end, "");
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn same_session_same_output() {
    let etcd = sdp_testkit::Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let embedded = sdp_etcd_server::start(sdp_etcd_server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .unwrap();
    let endpoints = [format!("127.0.0.1:{}", etcd.port), embedded.addr.to_string()];
    let steps = session();
    let results: Vec<Vec<String>> = endpoints
        .iter()
        .map(|endpoint| {
            let mut lease = None;
            let endpoint = endpoint.clone();
            steps.iter().map(|s| normalize(&run(&endpoint, s, &mut lease))).collect()
        })
        .collect();
    let mut mismatches = Vec::new();
    for (i, (real, ours)) in results[0].iter().zip(&results[1]).enumerate() {
        if real != ours {
            let what = format!("{:?} {:?}", steps[i].args, steps[i].stdin);
            mismatches.push(format!("step {i} {what}\n  etcd:     {real:?}\n  embedded: {ours:?}"));
        }
    }
    assert!(mismatches.is_empty(), "outputs differ:\n{}", mismatches.join("\n"));
    // The session is not trivial: it printed values, errors and a watch replay.
    assert!(results[0].iter().any(|o| o.contains("required revision has been compacted")));
    assert!(results[0].iter().any(|o| o.contains("PUT\na\n2\nPUT\na\n3")), "{:?}", results[0]);
    embedded.stop().await;
}
