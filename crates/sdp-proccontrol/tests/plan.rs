//! The controller's decisions, table by table.

use sdp_config::{Deployment, ProcessingBlock};
use sdp_proccontrol::{
    block_counts, builtin_scripts, plan, scripts_of, Action, ControllerSettings, Leftover, ScriptDefinition,
    ScriptRunner, Snapshot,
};
use serde_json::json;

fn settings() -> ControllerSettings {
    ControllerSettings {
        config_host: "sdp-prototype-etcd-client.default.svc.cluster.local".into(),
        config_port: 2379,
        helm_namespace: "sdp".into(),
        runner: ScriptRunner::Helm { tls_secret: None },
    }
}

/// `snapshot` with the platform's script definitions in `/script`.
fn builtins(snapshot: &Snapshot) -> Snapshot {
    Snapshot { scripts: scripts_of(builtin_scripts()), ..snapshot.clone() }
}

fn pb(id: &str, workflow: &str) -> (String, Result<ProcessingBlock, String>) {
    (id.to_string(), Ok(ProcessingBlock::new(id, workflow.parse().unwrap())))
}

/// Applies actions to a snapshot the way the daemon applies them to the database.
fn apply(snapshot: &mut Snapshot, actions: &[Action]) {
    for action in actions {
        match action {
            Action::CreateDeployment(d) => assert!(snapshot.deployments.insert(d.deploy_id.clone()), "duplicate {d:?}"),
            Action::DeleteDeployment(id) => assert!(snapshot.deployments.remove(id)),
            Action::UpdateState { pb_id, fields } => {
                let state = snapshot.states.entry(pb_id.clone()).or_insert_with(|| json!({}));
                for (k, v) in fields {
                    state[k] = v.clone();
                }
            }
            Action::DeleteState(pb_id) => assert!(snapshot.leftovers.remove(pb_id).is_some_and(|l| l.state)),
        }
    }
}

#[test]
fn a_new_processing_block_gets_its_script_deployed_as_the_seed_shows() {
    let snapshot = Snapshot {
        processing_blocks: [pb("realtime-20191121-0000", "realtime:testdask:0.1.0")].into(),
        ..Default::default()
    };
    let actions = plan(&builtins(&snapshot), &settings());
    let expected = Deployment {
        deploy_id: "realtime-20191121-0000-workflow".into(),
        kind: "helm".into(),
        args: json!({"chart": "workflow", "values": {
            "env.SDP_CONFIG_HOST": "sdp-prototype-etcd-client.default.svc.cluster.local",
            "env.SDP_HELM_NAMESPACE": "sdp",
            "pb_id": "realtime-20191121-0000",
            "wf_image": format!("ska-sdp:{}", sdp_proccontrol::app_version()),
            "args": ["script", "testdask"]
        }}),
    };
    assert_eq!(actions[0], Action::CreateDeployment(expected));
    assert!(matches!(&actions[1], Action::UpdateState { pb_id, fields }
        if pb_id == "realtime-20191121-0000" && fields["state"] == "executing"));
    assert_eq!(actions.len(), 2);
}

#[test]
fn every_shipped_script_runs_in_the_platforms_image_and_a_definition_may_name_another() {
    let image = format!("ska-sdp:{}", sdp_proccontrol::app_version());
    for script in builtin_scripts() {
        assert_eq!(script.image.as_ref(), Some(&image), "{script:?}");
        assert_eq!(script.args, ["script", script.name.as_str()]);
        assert_eq!(script.command, ["sdp", "script", script.name.as_str()]);
    }
    // A user's script: its image's entrypoint gets the block's ID alone.
    let own = ScriptDefinition::read(
        "realtime-hello-0-1-0",
        r#"{"kind": "realtime", "name": "hello", "version": "0.1.0", "image": "registry.example.org/hello:2"}"#,
    )
    .unwrap();
    let snapshot = Snapshot {
        processing_blocks: [pb("p", "realtime:hello:0.1.0")].into(),
        scripts: scripts_of([own]),
        ..Default::default()
    };
    let Action::CreateDeployment(d) = &plan(&snapshot, &settings())[0] else { panic!("no deployment") };
    assert_eq!(d.args["values"]["wf_image"], "registry.example.org/hello:2");
    assert_eq!(d.args["values"].get("args"), None);
    // Under `sdp up` it has no command: the block fails, saying so.
    let process = ControllerSettings { runner: ScriptRunner::Process, ..settings() };
    let Action::UpdateState { fields, .. } = &plan(&snapshot, &process)[0] else { panic!("no failure") };
    assert_eq!(fields["state"], "failed");
    assert!(fields["error"].as_str().unwrap().contains("names no command"), "{fields:?}");
}

#[test]
fn scripts_come_from_their_definitions_one_each() {
    let definition = |image: &str| {
        serde_json::from_value::<ScriptDefinition>(json!({
            "kind": "batch", "name": "mine", "version": "1.0", "image": image, "command": ["/opt/mine"]
        }))
        .unwrap()
    };
    let blocks = Snapshot { processing_blocks: [pb("p", "batch:mine:1.0")].into(), ..Default::default() };
    // Unknown: the state says which entry to add, and names definitions that cannot be read.
    let mut snapshot = blocks.clone();
    snapshot.scripts.insert("broken".into(), Err("/script/broken is not a script definition".into()));
    let Action::UpdateState { fields, .. } = &plan(&snapshot, &settings())[0] else { panic!() };
    assert_eq!(
        fields["error"],
        "no processing script batch:mine:1.0 is defined: add its definition as /script/batch-mine-1-0 (sdpcfg \
         create); definitions that cannot be read: /script/broken is not a script definition"
    );
    // Twice: refused, naming both.
    let mut snapshot = blocks.clone();
    snapshot.scripts.insert("a".into(), Ok(definition("a:1")));
    snapshot.scripts.insert("b".into(), Ok(definition("b:1")));
    let Action::UpdateState { fields, .. } = &plan(&snapshot, &settings())[0] else { panic!() };
    assert!(fields["error"].as_str().unwrap().contains("defined more than once: /script/a, /script/b"), "{fields:?}");
    // Once: deployed, the process deployer told which definition to run.
    let mut snapshot = blocks.clone();
    snapshot.scripts.insert("mine".into(), Ok(definition("a:1")));
    let process = ControllerSettings { runner: ScriptRunner::Process, ..settings() };
    let Action::CreateDeployment(d) = &plan(&snapshot, &process)[0] else { panic!() };
    assert_eq!((d.kind.as_str(), &d.args), ("process-direct", &json!({"script": "mine", "pb_id": "p"})));
    // A block whose script runs keeps running whatever becomes of its definition.
    let mut running = blocks.clone();
    running.deployments.insert("p-workflow".into());
    running.states.insert("p".into(), json!({"state": "executing", "deployments": ["p-workflow"]}));
    assert_eq!(plan(&running, &settings()), []);
}

#[test]
fn converges_and_then_does_nothing() {
    let mut snapshot = Snapshot {
        processing_blocks: [
            pb("a", "realtime:testdask:0.1.0"),
            pb("b", "batch:testdask:0.1.0"),
            pb("c", "realtime:nope:9"),
        ]
        .into(),
        ..Default::default()
    };
    let first = plan(&builtins(&snapshot), &settings());
    apply(&mut snapshot, &first);
    assert_eq!(snapshot.deployments.iter().collect::<Vec<_>>(), ["a-workflow", "b-workflow"]);
    assert_eq!(snapshot.states["c"]["state"], "failed");
    assert!(snapshot.states["c"]["error"]
        .as_str()
        .unwrap()
        .starts_with("no processing script realtime:nope:9 is defined"));
    assert!(plan(&builtins(&snapshot), &settings()).is_empty());
}

#[test]
fn other_state_fields_are_kept_and_only_changes_are_written() {
    let mut snapshot =
        Snapshot { processing_blocks: [pb("a", "realtime:testdask:0.1.0")].into(), ..Default::default() };
    snapshot.deployments.insert("a-workflow".into());
    snapshot
        .states
        .insert("a".into(), json!({"state": "executing", "deployments": ["a-workflow"], "obsState": "SCANNING"}));
    assert!(plan(&builtins(&snapshot), &settings()).is_empty());
}

#[test]
fn deleting_a_processing_block_undoes_its_deployments_only() {
    let mut snapshot =
        Snapshot { processing_blocks: [pb("keep", "realtime:testdask:0.1.0")].into(), ..Default::default() };
    for d in ["keep-workflow", "keep-dask", "gone-workflow", "gone-dask", "gone2-workflow", "unrelated"] {
        snapshot.deployments.insert(d.into());
    }
    snapshot.states.insert("keep".into(), json!({"state": "executing"}));
    let actions = plan(&builtins(&snapshot), &settings());
    let deleted: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteDeployment(id) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, ["gone-dask", "gone-workflow", "gone2-workflow"]);
}

#[test]
fn a_malformed_processing_block_is_reported_not_fatal() {
    let snapshot = Snapshot {
        processing_blocks: [
            ("bad".to_string(), Err("missing field `workflow`".to_string())),
            pb("ok", "realtime:testdask:0.1.0"),
        ]
        .into(),
        ..Default::default()
    };
    let actions = plan(&builtins(&snapshot), &settings());
    assert!(actions.iter().any(|a| matches!(a, Action::UpdateState { pb_id, fields }
        if pb_id == "bad" && fields["state"] == "failed" && fields["error"].as_str().unwrap().contains("missing field"))));
    assert!(actions.iter().any(|a| matches!(a, Action::CreateDeployment(d) if d.deploy_id == "ok-workflow")));
}

#[test]
fn a_deleted_blocks_state_goes_once_no_script_owns_it() {
    let mut snapshot =
        Snapshot { processing_blocks: [pb("live", "realtime:testdask:0.1.0")].into(), ..Default::default() };
    snapshot.deployments.insert("live-workflow".into());
    snapshot.states.insert("live".into(), json!({"state": "executing", "deployments": ["live-workflow"]}));
    snapshot.leftovers.insert("released".into(), Leftover { state: true, owner: false });
    snapshot.leftovers.insert("winding-down".into(), Leftover { state: true, owner: true });
    snapshot.leftovers.insert("owner-only".into(), Leftover { state: false, owner: true });
    let actions = plan(&builtins(&snapshot), &settings());
    assert_eq!(actions, [Action::DeleteState("released".into())]);
    apply(&mut snapshot, &actions);
    // The script lets go: its lease takes the owner entry, then the state goes.
    snapshot.leftovers.insert("winding-down".into(), Leftover { state: true, owner: false });
    assert_eq!(plan(&builtins(&snapshot), &settings()), [Action::DeleteState("winding-down".into())]);
}

#[test]
fn on_one_machine_the_script_is_a_local_sdp_script_process() {
    let snapshot = Snapshot { processing_blocks: [pb("pb-1", "batch:test_batch:0.1.0")].into(), ..Default::default() };
    let settings = ControllerSettings { runner: ScriptRunner::Process, ..settings() };
    let actions = plan(&builtins(&snapshot), &settings);
    let Action::CreateDeployment(d) = &actions[0] else { panic!("{actions:?}") };
    assert_eq!(d.kind, "process-direct");
    // What to run, as data: the definition to run; the process deployer reads its command and adds the
    // environment itself.
    assert_eq!(d.args, json!({"script": "batch-test_batch-0-1-0", "pb_id": "pb-1"}));
}

/// A block whose script runs: its deployment, the controller's state, and what the script reported.
fn running(script_status: Option<&str>, block_state: &str) -> Snapshot {
    let mut snapshot =
        Snapshot { processing_blocks: [pb("p", "realtime:testdask:0.1.0")].into(), ..Default::default() };
    snapshot.deployments.extend(["p-workflow".to_string(), "p-dask".to_string(), "other-dask".to_string()]);
    snapshot.states.insert("p".into(), json!({"state": block_state, "deployments": ["p-workflow"]}));
    if let Some(status) = script_status {
        snapshot.script_states.insert("p".into(), json!({"status": status, "error": "killed by signal 9 (SIGKILL)"}));
    }
    snapshot
        .processing_blocks
        .insert("other".into(), Ok(ProcessingBlock::new("other", "realtime:testdask:0.1.0".parse().unwrap())));
    snapshot.states.insert("other".into(), json!({"state": "executing"}));
    snapshot.deployments.insert("other-workflow".into());
    snapshot.owned.insert("p".into());
    snapshot
}

#[test]
fn a_killed_script_fails_its_block_and_its_engines_go_once_its_lease_has() {
    let mut snapshot = running(Some("FAILED"), "executing");
    let actions = plan(&builtins(&snapshot), &settings());
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(matches!(&actions[0], Action::UpdateState { pb_id, fields } if pb_id == "p"
        && fields["state"] == "failed" && fields.get("status").is_none()
        && fields["error"] == "processing script ended: killed by signal 9 (SIGKILL)"));
    apply(&mut snapshot, &actions);
    assert_eq!(plan(&builtins(&snapshot), &settings()), []);
    // The owner entry expires with the dead script's lease: what it deployed goes, not its own deployment.
    snapshot.owned.clear();
    assert_eq!(plan(&builtins(&snapshot), &settings()), [Action::DeleteDeployment("p-dask".into())]);
}

#[test]
fn the_block_state_is_what_the_script_reports_else_how_its_deployment_ended() {
    // The script said how it ended: nothing to add.
    assert_eq!(plan(&builtins(&running(Some("FINISHED"), "finished")), &settings()), []);
    assert_eq!(plan(&builtins(&running(Some("FAILED"), "failed")), &settings()), []);
    assert_eq!(plan(&builtins(&running(Some("RUNNING"), "executing")), &settings()), []);
    // Its deployment ended while the block still says executing: the script could not say so.
    let finished = plan(&builtins(&running(Some("FINISHED"), "executing")), &settings());
    assert!(matches!(&finished[..], [Action::UpdateState { fields, .. }] if fields["state"] == "finished"));
    let failed = plan(&builtins(&running(Some("FAILED"), "executing")), &settings());
    assert!(matches!(&failed[..], [Action::UpdateState { fields, .. }] if fields["state"] == "failed"));
    // A state the script set itself (the original teststate's "error") is kept.
    assert_eq!(plan(&builtins(&running(Some("FINISHED"), "error")), &settings()), []);
}

#[test]
fn a_block_deleted_and_created_again_before_the_controller_looked_gets_a_fresh_script() {
    let mut snapshot = running(Some("FAILED"), "executing");
    // Deleting the block deleted its state; the same ID came back at once.
    snapshot.states.remove("p");
    let actions = plan(&builtins(&snapshot), &settings());
    assert_eq!(actions, [Action::DeleteDeployment("p-dask".into()), Action::DeleteDeployment("p-workflow".into())]);
    apply(&mut snapshot, &actions);
    snapshot.script_states.clear();
    let actions = plan(&builtins(&snapshot), &settings());
    assert!(matches!(&actions[0], Action::CreateDeployment(d) if d.deploy_id == "p-workflow"));
}

#[test]
fn on_a_database_with_tls_the_script_pod_gets_its_client_certificate() {
    let snapshot = Snapshot { processing_blocks: [pb("pb-1", "batch:test_batch:0.1.0")].into(), ..Default::default() };
    let settings =
        ControllerSettings { runner: ScriptRunner::Helm { tls_secret: Some("scripts-tls".into()) }, ..settings() };
    let actions = plan(&builtins(&snapshot), &settings);
    let Action::CreateDeployment(d) = &actions[0] else { panic!("{actions:?}") };
    assert_eq!(d.args["values"]["configDb.tlsSecret"], "scripts-tls");
    let without = plan(&builtins(&snapshot), &self::settings());
    let Action::CreateDeployment(d) = &without[0] else { panic!("{without:?}") };
    assert!(d.args["values"].get("configDb.tlsSecret").is_none());
}

#[test]
fn blocks_are_counted_by_state_and_claim() {
    let mut snapshot = Snapshot {
        processing_blocks: [
            pb("a", "realtime:testdask:0.1.0"),
            pb("b", "realtime:testdask:0.1.0"),
            pb("c", "batch:testdask:0.1.0"),
            pb("d", "batch:testdask:0.1.0"),
        ]
        .into(),
        ..Default::default()
    };
    snapshot.states.insert("a".into(), json!({"state": "executing"}));
    snapshot.states.insert("b".into(), json!({"state": "executing"}));
    snapshot.states.insert("c".into(), json!({"state": "failed"}));
    snapshot.owned.extend(["a".to_string(), "gone".to_string()]);
    let (by_state, claimed) = block_counts(&snapshot);
    assert_eq!(by_state, [("executing".into(), 2), ("failed".into(), 1), ("none".into(), 1)].into());
    // An owner entry of a block that is gone claims nothing.
    assert_eq!(claimed, 1);
}
