//! What the platform's scripts read from their block and environment, and the values they deploy.

use serde_json::{Map, Value};

use crate::claim::{Claim, ScriptError};

/// The namespace engines are deployed into (the processing controller passes it).
pub(super) fn namespace() -> String {
    std::env::var("SDP_HELM_NAMESPACE").unwrap_or_else(|_| "sdp".into())
}

/// A whole-number parameter with a default and limits.
pub(super) fn count_parameter(claim: &Claim, name: &str, default: u64, max: u64) -> Result<u64, ScriptError> {
    match claim.parameters().get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ScriptError::Parameters(format!("{name} is {v}: expected a whole number from 1 to {max}"))),
    }
}

/// The fields of a JSON object written with `json!({...})`, as a deployment's values.
pub(super) fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(fields) => fields,
        other => unreachable!("values are written as a JSON object, not {other}"),
    }
}
