//! Property tests of every parser of the client that takes bytes from the database or the command line: whatever
//! they are given, they answer with a value or a clear error, and never panic. What they accept reads back as
//! written.

use proptest::prelude::*;
use serde_json::Value;

use sdp_config::deployment::{self, DeploymentArgs, DeploymentState, Status};
use sdp_config::keys::{self, paths};
use sdp_config::{BlockState, Deployment, ProcessingBlock, ScriptDefinition, Workflow};

/// Any JSON value, nested a few levels, with the field names the parsers look for among others.
fn json() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("chart".to_string()),
        Just("values".to_string()),
        Just("script".to_string()),
        Just("pb_id".to_string()),
        Just("engine".to_string()),
        Just("command".to_string()),
        Just("status".to_string()),
        Just("pods".to_string()),
        Just("pid".to_string()),
        Just("state".to_string()),
        "[a-z_./-]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,12}".prop_map(Value::from),
        Just(Value::from("../../etc")),
        Just(Value::from("oci://registry/x")),
        Just(Value::from("RUNNING")),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(name.clone(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Any text: random bytes as a string, or the JSON of a random value (so that parsers get past the JSON).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), json().prop_map(|v| v.to_string())]
}

fn kind() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(deployment::HELM.to_string()),
        Just(deployment::PROCESS.to_string()),
        Just(deployment::KUBERNETES.to_string()),
        "[a-z-]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn deployment_args_answer_and_read_back(kind in kind(), args in json()) {
        match DeploymentArgs::from_parts(&kind, &args) {
            Ok(asked) => {
                let entry = asked.entry("pb-1-x");
                prop_assert!(entry.validate().is_ok());
                prop_assert_eq!(DeploymentArgs::of(&entry), Ok(asked));
            }
            Err(error) => prop_assert!(!error.is_empty()),
        }
    }

    #[test]
    fn entries_answer(id in "[ -~]{0,70}", text in text()) {
        if let Err(e) = Deployment::read(&id, &text) {
            prop_assert!(!e.to_string().is_empty());
        }
        if let Err(e) = ProcessingBlock::read(&id, &text) {
            prop_assert!(!e.to_string().is_empty());
        }
        if let Err(e) = ScriptDefinition::read(&id, &text) {
            prop_assert!(!e.is_empty());
        }
        if let Err(e) = text.parse::<Workflow>() {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn states_are_read_whatever_they_hold(state in json(), word in "[ -~]{0,12}") {
        let read = DeploymentState::read(&state);
        prop_assert_eq!(read.status, deployment::status_of(Some(&state)));
        let _ = BlockState::of(Some(&state));
        if let Some(status) = Status::parse(&word) {
            prop_assert!(status.as_str().eq_ignore_ascii_case(&word));
        }
    }

    #[test]
    fn keys_answer_and_valid_paths_read_back(path in "[ -~]{0,40}", key in "[ -~]{0,40}") {
        if keys::check_path(&path).is_ok() {
            let tagged = keys::tag(&path);
            prop_assert_eq!(keys::untag(&tagged), Some(path.as_str()));
        }
        let _ = keys::untag(&key);
        if let Some((id, _)) = paths::entry_of(paths::PB, &key) {
            let prefix = format!("/pb/{id}");
            prop_assert!(key.starts_with(&prefix));
        }
        if let Err(e) = keys::validate_id("deployment", &path) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
