//! Every subarray command in every observing state (and the admin modes that matter): allowed commands give
//! the listed state and effects; refused ones an error and nothing else.

use sdp_lmc::model::{AdminMode, DevState, ObsState};
use sdp_lmc::subarray::{decide, passes_through, Command, SubarrayState};
use sdp_lmc::{master, Effect, ErrorKind};
use serde_json::json;

const CONFIGURE: &str = r#"{ "configure": { "id": "xyz", "sbiId": "sbi-1", "workflow": { "type": "realtime", "version": "0.1.0", "id": "vis_receive" }, "parameters": {}, "scanParameters": { "1": {} } } }"#;
const CONFIGURE_SCAN: &str = r#"{"configureScan": {"scanParameters": {"2": {"fieldId": 1}}}}"#;

fn commands() -> Vec<Command> {
    vec![
        Command::AssignResources(String::new()),
        Command::ReleaseResources(String::new()),
        Command::Configure(CONFIGURE.into()),
        Command::ConfigureScan(CONFIGURE_SCAN.into()),
        Command::StartScan,
        Command::EndScan,
        Command::EndSB,
    ]
}

fn state(obs_state: ObsState, admin_mode: AdminMode) -> SubarrayState {
    let configured = matches!(obs_state, ObsState::READY | ObsState::SCANNING);
    SubarrayState {
        state: DevState::ON,
        obs_state,
        admin_mode,
        pb_id: configured.then(|| "pb-1".to_string()),
        ..SubarrayState::default()
    }
}

/// The expected outcome, written out rather than derived from the device's own rules:
/// Some((DevState, ObsState)) if allowed.
fn expected(command: &Command, obs: ObsState, admin: AdminMode) -> Option<(DevState, ObsState)> {
    let usable = !matches!(admin, AdminMode::OFFLINE | AdminMode::NOT_FITTED);
    match (command, obs) {
        (Command::AssignResources(_), ObsState::IDLE) if usable => Some((DevState::ON, ObsState::IDLE)),
        (Command::ReleaseResources(_), ObsState::IDLE) if usable => Some((DevState::OFF, ObsState::IDLE)),
        (Command::Configure(_), ObsState::IDLE) => Some((DevState::ON, ObsState::READY)),
        (Command::ConfigureScan(_), ObsState::READY) => Some((DevState::ON, ObsState::READY)),
        (Command::StartScan, ObsState::READY) => Some((DevState::ON, ObsState::SCANNING)),
        (Command::EndScan, ObsState::SCANNING) => Some((DevState::ON, ObsState::READY)),
        (Command::EndSB, ObsState::READY) => Some((DevState::ON, ObsState::IDLE)),
        _ => None,
    }
}

#[test]
fn every_command_in_every_state() {
    let mut checked = 0;
    for &obs in ObsState::ALL {
        for &admin in AdminMode::ALL {
            for command in commands() {
                let before = state(obs, admin);
                let result = decide(&before, "1", &command);
                match (expected(&command, obs, admin), result) {
                    (Some((dev, next_obs)), Ok((next, effects))) => {
                        assert_eq!((next.state, next.obs_state), (dev, next_obs), "{command:?} from {obs}/{admin}");
                        assert_eq!(next.admin_mode, admin);
                        let writes_db = !matches!(command, Command::AssignResources(_) | Command::ReleaseResources(_));
                        assert_eq!(!effects.is_empty(), writes_db, "{command:?} effects {effects:?}");
                    }
                    (None, Err(refusal)) => {
                        assert_eq!(refusal.kind, ErrorKind::NotAllowed, "{command:?} from {obs}/{admin}: {refusal:?}");
                        assert_eq!(refusal.reason, "API_CommandNotAllowed");
                    }
                    (want, got) => panic!("{command:?} from {obs}/{admin}: expected {want:?}, got {got:?}"),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 7 * 5 * 7);
}

#[test]
fn configuring_is_shown_while_configure_and_configure_scan_run() {
    for &obs in ObsState::ALL {
        for &admin in AdminMode::ALL {
            for command in commands() {
                let through = matches!(
                    (&command, obs),
                    (Command::Configure(_), ObsState::IDLE) | (Command::ConfigureScan(_), ObsState::READY)
                );
                assert_eq!(
                    passes_through(&state(obs, admin), &command),
                    through.then_some(ObsState::CONFIGURING),
                    "{command:?} from {obs}/{admin}"
                );
            }
        }
    }
}

#[test]
fn refusals_carry_the_originals_messages() {
    let offline = SubarrayState::default();
    let err = decide(&offline, "1", &Command::AssignResources(String::new())).unwrap_err();
    assert_eq!(
        err.desc,
        "The device must NOT be in one of the following adminModes: [<AdminMode.OFFLINE: 0>, <AdminMode.NOT_FITTED: 3>]. Current mode: <AdminMode.OFFLINE: 0>"
    );
    let err = decide(&offline, "1", &Command::StartScan).unwrap_err();
    assert_eq!(err.desc, "Error: the device must be in one of the following obsStates: [<ObsState.READY: 2>]");
}

#[test]
fn bad_arguments_change_nothing() {
    let idle = state(ObsState::IDLE, AdminMode::ONLINE);
    for bad in ["", "{", "{}", r#"{"configure": {}}"#] {
        let err = decide(&idle, "1", &Command::Configure(bad.into())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadArgument, "{bad}");
        assert_eq!(err.reason, "Command failed");
    }
    let ready = state(ObsState::READY, AdminMode::ONLINE);
    let err = decide(&ready, "1", &Command::ConfigureScan("{}".into())).unwrap_err();
    assert_eq!(err.desc, "'configureScan' is a required property");
}

#[test]
fn configure_effects_describe_the_processing_block_and_subarray() {
    let idle = state(ObsState::IDLE, AdminMode::ONLINE);
    let (next, effects) = decide(&idle, "1", &Command::Configure(CONFIGURE.into())).unwrap();
    assert_eq!(next.pb_id.as_deref(), Some("xyz"));
    let Effect::CreateProcessingBlock(pb) = &effects[0] else { panic!("{effects:?}") };
    assert_eq!(pb.pb_id, "xyz");
    assert_eq!(pb.sbi_id.as_deref(), Some("sbi-1"));
    assert_eq!(
        (pb.workflow.kind.as_str(), pb.workflow.id.as_str(), pb.workflow.version.as_str()),
        ("realtime", "vis_receive", "0.1.0")
    );
    assert_eq!(pb.scan_parameters, json!({"1": {}}));
    assert_eq!(
        effects[1],
        Effect::PutSubarray {
            id: "1".into(),
            entry: json!({"adminState": "ONLINE", "command": "Configure", "currentPb": "xyz"})
        }
    );
    let (_, effects) = decide(&next, "1", &Command::EndSB).unwrap();
    assert_eq!(effects, vec![Effect::DeleteProcessingBlock("xyz".into()), Effect::DeleteSubarray { id: "1".into() }]);
}

#[test]
fn master_commands() {
    let m = master::MasterState::default();
    assert_eq!(m.state, DevState::ON);
    for (name, state) in
        [("Off", DevState::OFF), ("standby", DevState::STANDBY), ("DISABLE", DevState::DISABLE), ("On", DevState::ON)]
    {
        let (next, effects) = master::decide(&m, master::Command::parse(name).unwrap());
        assert_eq!(next.state, state);
        assert_eq!(effects, vec![Effect::PutMaster { entry: json!({"state": state.label()}) }]);
    }
    assert!(master::Command::parse("Explode").is_none());
}
