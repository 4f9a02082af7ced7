//! The one error type of the client, each variant saying what went wrong and, where it can, what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("Cannot create {0}, as it already exists!")]
    Collision(String),
    #[error("Cannot update {0}, as it does not exist!")]
    Vanished(String),
    #[error(
        "cannot reach the configuration database at {endpoint}: {detail}. Is it running? \
         Set SDP_CONFIG_HOST and SDP_CONFIG_PORT to where it listens"
    )]
    Unreachable { endpoint: String, detail: String },
    #[error("{variable}={}: {problem}", path.display())]
    TlsFile { variable: &'static str, path: PathBuf, problem: String },
    #[error("{0}")]
    TlsSettings(&'static str),
    #[error("TLS with the configuration database at {endpoint} failed: {detail}. {fix}")]
    TlsRefused { endpoint: String, detail: String, fix: &'static str },
    #[error("configuration database error: {0}")]
    Backend(String),
    #[error("transaction gave up after {0} attempts: other clients kept changing what it read")]
    TooManyRetries(usize),
    #[error("value of {path} is not valid JSON for this entry: {detail}")]
    BadJson { path: String, detail: String },
    #[error("lease {0:x} expired or was revoked")]
    LeaseLost(i64),
    #[error("{0}")]
    Invalid(String),
}
