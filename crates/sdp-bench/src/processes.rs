//! The processes the benchmarks run and measure: this workspace's binaries, and their memory.

/// A binary of this workspace built beside this one (`cargo build --release -p sdp -p sdpcfg`).
pub fn sibling(name: &str) -> std::path::PathBuf {
    let path = std::env::current_exe().unwrap().with_file_name(name);
    assert!(path.is_file(), "{} not found: build it first (cargo build --release -p sdp -p sdpcfg)", path.display());
    path
}

/// A memory figure of `/proc/<process>/status` (`VmRSS:`, `VmHWM:`, ...; process `self` or a PID), in MiB.
pub fn status_mib(process: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Resident memory of a process, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(&pid.to_string(), "VmRSS:")
}

/// `sdp up` (built beside this binary) on loopback ports, render-only with the real helm, its data in `data`.
pub fn up_command(data: &std::path::Path, port: u16, lmc_port: u16) -> std::process::Command {
    let mut command = std::process::Command::new(sibling("sdp"));
    command
        .args(["up", "--config-listen", &format!("127.0.0.1:{port}"), "--lmc-listen", &format!("127.0.0.1:{lmc_port}")])
        .args(["--staging-listen", &format!("127.0.0.1:{}", sdp_testkit::free_port()), "--data-dir"])
        .arg(data)
        .arg("--helm")
        .arg(sdp_testkit::helm())
        .env_remove("SDP_CONFIG_HOST")
        .env_remove("KUBECONFIG")
        .env("HOME", data)
        .env("RUST_LOG", "warn");
    command
}
