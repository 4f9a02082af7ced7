//! Child processes: each in a process group of its own (a signal reaches whatever it started), started from
//! one long-lived thread so that the kernel's parent-death signal fires only when this process ends, even if
//! it is killed with SIGKILL.

use std::fs::File;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;

use sdp_config::{StateUpdate, Status};
use serde_json::Value;
use tokio::process::Child;

use crate::spec::ProcessSpec;

/// A command to start, the runtime that waits for it, and where to send it.
type SpawnRequest =
    (tokio::process::Command, tokio::runtime::Handle, tokio::sync::oneshot::Sender<std::io::Result<Child>>);

/// The thread that starts every child. PR_SET_PDEATHSIG fires when the *thread* that forked the child ends,
/// so the children are forked from one that lives as long as the process.
fn spawner() -> &'static std::sync::Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<std::sync::Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("sdp-procdeploy-spawner".into())
            .spawn(move || {
                for (mut command, runtime, reply) in rx {
                    let _entered = runtime.enter();
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("a thread can be started");
        std::sync::Mutex::new(tx)
    })
}

/// Starts `spec` with its output appended to `log`, in a new process group, to be sent SIGTERM if this
/// process dies.
pub async fn start(spec: &ProcessSpec, log: &Path) -> std::io::Result<Child> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = File::options().create(true).append(true).open(log)?;
    let mut command = std::process::Command::new(&spec.program);
    command.args(&spec.args).envs(&spec.env).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, raise) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl: then nobody would send the signal.
            if libc::getppid() != parent {
                libc::raise(libc::SIGTERM);
            }
            Ok(())
        });
    }
    let (reply, child) = tokio::sync::oneshot::channel();
    spawner()
        .lock()
        .expect("the spawner channel is never poisoned")
        .send((tokio::process::Command::from(command), tokio::runtime::Handle::current(), reply))
        .map_err(|_| std::io::Error::other("the process spawner thread is gone"))?;
    child.await.map_err(|_| std::io::Error::other("the process spawner thread is gone"))?
}

/// Sends `signal` to every process of the group `pgid`; false if none is left.
pub fn signal_group(pgid: u32, signal: libc::c_int) -> bool {
    // SAFETY: kill has no memory effects; a negative pid names a process group.
    unsafe { libc::kill(-(pgid as libc::pid_t), signal) == 0 }
}

/// When a process started, in clock ticks since boot (`/proc/<pid>/stat` field 22): with the PID, it tells a
/// process from a later one that reuses the PID.
pub fn start_ticks(pid: u32) -> Option<u64> {
    parse_start_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_start_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process recorded as `pid` started at `ticks` still runs.
pub fn still_running(pid: u32, ticks: u64) -> bool {
    start_ticks(pid) == Some(ticks)
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The state an exit leaves: FINISHED for exit code 0, else FAILED with the code or the signal.
pub fn outcome(status: ExitStatus) -> StateUpdate {
    let update = match (status.code(), status.signal()) {
        (Some(0), _) => StateUpdate::status(Status::Finished).with("exit_code", 0).with("signal", Value::Null),
        (Some(code), _) => {
            StateUpdate::failed(format!("exited with code {code}")).with("exit_code", code).with("signal", Value::Null)
        }
        (None, Some(signal)) => StateUpdate::failed(format!("killed by signal {signal} ({})", signal_name(signal)))
            .with("exit_code", Value::Null)
            .with("signal", signal),
        (None, None) => StateUpdate::failed("ended without an exit code or signal"),
    };
    update.with("pid", Value::Null).with("pid_start", Value::Null)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_as_states() {
        let exited = |code: i32| Value::Object(outcome(ExitStatus::from_raw(code << 8)).fields().clone());
        assert_eq!(exited(0)["status"], "FINISHED");
        assert_eq!(exited(3)["status"], "FAILED");
        assert_eq!(exited(3)["exit_code"], 3);
        let killed = Value::Object(outcome(ExitStatus::from_raw(libc::SIGKILL)).fields().clone());
        assert_eq!((killed["status"].as_str(), killed["signal"].as_i64()), (Some("FAILED"), Some(9)));
        assert_eq!(killed["error"], "killed by signal 9 (SIGKILL)");
        assert!(killed["pid"].is_null());
    }

    #[test]
    fn start_time_from_proc_stat() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 97 0 0 0 0 0 0 0 20 0 1 0 123456 2387968 150";
        assert_eq!(parse_start_ticks(stat), Some(123456));
        let me = start_ticks(std::process::id()).expect("this process has a start time");
        assert!(still_running(std::process::id(), me));
        assert!(!still_running(std::process::id(), me + 1));
        assert_eq!(parse_start_ticks("garbage"), None);
    }
}
