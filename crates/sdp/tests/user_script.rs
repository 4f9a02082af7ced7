//! A processing script of a user's own: `examples/hello-script`, a crate outside the platform's workspace built
//! on its scripting library, is built, registered in `/script` and run by `sdp up`, as a pipeline team's script
//! would be; a block naming a script nobody defined fails, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use sdp_config::Config;
use sdp_testkit::{deployment_state, eventually, process_alive};

mod support;
use support::{create_block, Platform};

const LIMIT: Duration = Duration::from_secs(30);

/// Builds the example with cargo, as its own workspace (its own lock file), into a target folder of its own.
fn build_example() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let target = root.join("target/example-scripts");
    let out = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
        .args(["build", "--locked", "--quiet", "--manifest-path"])
        .arg(root.join("examples/hello-script/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "building examples/hello-script: {}", String::from_utf8_lossy(&out.stderr));
    target.join("debug/hello-script")
}

async fn pb_state(config: &Config, pb_id: &str) -> Value {
    config.txn(|t| async move { t.get_processing_block_state(pb_id).await }).await.unwrap().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_own_script_is_registered_and_run_by_sdp_up() {
    let binary = build_example();
    let platform = Platform::start().await;
    let config = &platform.config;

    // What `sdpcfg create /script/realtime-hello-0-1-0 '{...}'` writes.
    let definition = json!({"kind": "realtime", "name": "hello", "version": "0.1.0", "command": [binary]});
    config
        .txn(|t| {
            let definition = &definition;
            async move { t.create_json("/script/realtime-hello-0-1-0", definition, None).await }
        })
        .await
        .unwrap();
    let pb_id = create_block(config, "realtime:hello:0.1.0", json!({"greeting": "good morning"})).await;
    eventually("the greeting in the block's state", LIMIT, || async {
        pb_state(config, &pb_id).await["hello"]["greeting"] == "good morning"
    })
    .await;
    let state = pb_state(config, &pb_id).await;
    assert_eq!((state["state"].as_str(), state.get("status")), (Some("executing"), None), "{state}");
    let pid = state["hello"]["pid"].as_u64().unwrap() as u32;
    let id = pb_id.as_str();
    let owner = config.txn(|t| async move { t.get_processing_block_owner(id).await });
    let owner = owner.await.unwrap().expect("the script owns its block");
    assert_eq!(owner.command, [binary.display().to_string(), pb_id.clone()]);
    assert_eq!(owner.pid, pid);
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(), binary);
    let deployment = deployment_state(config, &format!("{pb_id}-workflow")).await.unwrap();
    assert_eq!((deployment["status"].as_str(), deployment["pid"].as_u64()), (Some("RUNNING"), Some(pid as u64)));

    // A block of a script nobody defined fails, naming the entry to add.
    let unknown = create_block(config, "realtime:nope:0.1.0", json!({})).await;
    eventually("the unknown script's block failed", LIMIT, || async {
        pb_state(config, &unknown).await["state"] == "failed"
    })
    .await;
    let error = pb_state(config, &unknown).await["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with(
            "no processing script realtime:nope:0.1.0 is defined: add its definition as /script/realtime-nope-0-1-0"
        ),
        "{error}"
    );

    // Deleting the block releases the script, which ends.
    let id = pb_id.as_str();
    config.txn(|t| async move { t.delete_processing_block(id).await }).await.unwrap();
    eventually("the script ended", LIMIT, || async { !process_alive(pid) }).await;
}
