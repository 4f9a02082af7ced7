//! Property test of the devices' JSON arguments (Configure, ConfigureScan): whatever a client sends, the device
//! answers with a new state or a refusal, never a panic; a refusal changes nothing, and what is accepted is the
//! configuration that was sent.

use proptest::prelude::*;
use serde_json::{json, Value};

use sdp_lmc::model::{DevState, ObsState};
use sdp_lmc::subarray::{decide, Command, SubarrayState};

/// A Configure argument, whole or with any part replaced by something else.
fn configure_text() -> impl Strategy<Value = String> {
    let valid = json!({"configure": {"id": "pb-1", "sbiId": "sbi-1",
        "workflow": {"type": "realtime", "id": "vis_receive", "version": "0.1.0"},
        "parameters": {}, "scanParameters": {"1": {}}}});
    let junk = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,16}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
        Just(Value::from("../../x")),
        Just(Value::from("a".repeat(100))),
    ];
    let fields = ["id", "sbiId", "workflow", "parameters", "scanParameters", "type", "version", "extra"];
    prop_oneof![
        // Random text, JSON or not.
        any::<String>(),
        // The valid argument with one field (or one workflow field) replaced or added.
        (prop::sample::select(fields.to_vec()), junk.clone(), any::<bool>()).prop_map(move |(field, junk, deep)| {
            let mut argument = valid.clone();
            if deep && matches!(field, "type" | "id" | "version" | "extra") {
                argument["configure"]["workflow"][field] = junk;
            } else {
                argument["configure"][field] = junk;
            }
            argument.to_string()
        }),
    ]
}

fn idle() -> SubarrayState {
    SubarrayState { state: DevState::ON, obs_state: ObsState::IDLE, ..SubarrayState::default() }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn configure_answers_whatever_it_is_sent(text in configure_text()) {
        let before = idle();
        match decide(&before, "1", &Command::Configure(text.clone())) {
            Ok((after, effects)) => {
                prop_assert_eq!(after.obs_state, ObsState::READY);
                prop_assert!(!effects.is_empty());
                let sent: Value = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(after.pb_id.as_deref(), sent["configure"]["id"].as_str());
            }
            Err(refusal) => prop_assert!(!refusal.desc.is_empty(), "a refusal says why"),
        }
    }

    #[test]
    fn configure_scan_answers_whatever_it_is_sent(text in any::<String>(), scan in "[0-9]{1,3}", value in "[ -~]{0,8}") {
        let ready = SubarrayState { obs_state: ObsState::READY, pb_id: Some("pb-1".into()), ..idle() };
        let shaped = json!({"configureScan": {"scanParameters": {scan: {"field": value}}}}).to_string();
        for argument in [text, shaped] {
            if let Err(refusal) = decide(&ready, "1", &Command::ConfigureScan(argument)) {
                prop_assert!(!refusal.desc.is_empty());
            }
        }
    }
}
