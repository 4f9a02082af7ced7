//! A device error, as Tango's `DevFailed` carries it.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    NotAllowed,
    BadArgument,
    Failed,
}

/// A device error, as Tango's `DevFailed` carries it: a reason code and a description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{reason}: {desc}")]
pub struct DevError {
    pub kind: ErrorKind,
    pub reason: String,
    pub desc: String,
}

/// A command refused by the device logic: nothing changed.
pub type Refusal = DevError;

impl DevError {
    pub fn not_allowed(desc: String) -> DevError {
        DevError { kind: ErrorKind::NotAllowed, reason: "API_CommandNotAllowed".into(), desc }
    }

    pub fn bad_argument(desc: String) -> DevError {
        DevError { kind: ErrorKind::BadArgument, reason: "Command failed".into(), desc }
    }

    pub fn failed(desc: String) -> DevError {
        DevError { kind: ErrorKind::Failed, reason: "Command failed".into(), desc }
    }

    pub fn not_found(reason: &str, desc: String) -> DevError {
        DevError { kind: ErrorKind::NotFound, reason: reason.into(), desc }
    }
}
