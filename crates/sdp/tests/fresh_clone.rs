//! A Rust developer's first command on a fresh clone, `cargo build`, stops at once with an error that says to
//! run scripts/setup, and leaves Cargo.lock alone; after scripts/patch-crates (which setup runs) the workspace
//! resolves as locked.

use std::path::Path;
use std::process::Command;

fn run(dir: &Path, program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

#[test]
fn cargo_build_on_a_fresh_clone_says_to_run_setup() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone");
    let cloned = run(dir.path(), "git", &["clone", "--quiet", repo.to_str().unwrap(), clone.to_str().unwrap()]);
    assert!(cloned.status.success(), "git clone: {}", String::from_utf8_lossy(&cloned.stderr));
    let lock = std::fs::read(clone.join("Cargo.lock")).unwrap();

    let build = run(&clone, "cargo", &["build"]);
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(!build.status.success(), "cargo build went on without the patched crates: {stderr}");
    assert!(stderr.contains("run scripts/setup first"), "the error does not say what to do: {stderr}");
    assert!(!stderr.contains("Compiling"), "cargo compiled before stopping: {stderr}");
    assert_eq!(std::fs::read(clone.join("Cargo.lock")).unwrap(), lock, "cargo build rewrote Cargo.lock");

    let patched = run(&clone, "scripts/patch-crates", &[]);
    assert!(patched.status.success(), "patch-crates: {}", String::from_utf8_lossy(&patched.stderr));
    // This machine's packages only: a fresh machine has downloaded none of the other platforms'.
    let rustc = String::from_utf8(run(&clone, "rustc", &["-vV"]).stdout).unwrap();
    let host = rustc.lines().find_map(|line| line.strip_prefix("host: ")).expect("rustc -vV names its host");
    let resolved = run(
        &clone,
        "cargo",
        &["metadata", "--locked", "--offline", "--format-version", "1", "--filter-platform", host],
    );
    assert!(resolved.status.success(), "after patch-crates: {}", String::from_utf8_lossy(&resolved.stderr));
    let metadata = String::from_utf8_lossy(&resolved.stdout);
    assert!(metadata.contains("patched/rstango"), "rstango is not the patched one");
}
