//! SDP's local monitoring and control (LMC): the master and subarray devices.
//!
//! The logic is pure ([`subarray::decide`], [`master::decide`]): a command either gives the next state and the
//! configuration-database effects, or a refusal that changes nothing. [`Lmc`] runs the devices over the
//! configuration database (commands on one device are serialised; a command's effects are one transaction,
//! and its new state is kept only if that commits) and publishes change events. [`http`] serves it as
//! HTTP/JSON with server-sent events; a Tango front end can sit on the same [`Lmc`]. [`start`] serves the
//! devices as the platform does: behind a bearer token when one is set, beside the open probes and metrics.

pub mod http;
pub mod master;
pub mod metrics;
pub mod model;
mod runtime;
pub mod schema;
pub mod subarray;
mod surface;

use serde::Serialize;
use serde_json::Value;

pub use metrics::Metrics;
pub use runtime::{AttrValue, ChangeEvent, DeviceInfo, Lmc};
pub use surface::{start, Running, Settings, Unprotected};

/// What a command does to the configuration database.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    CreateProcessingBlock(sdp_config::ProcessingBlock),
    /// Merges `fields` into `/pb/<pb_id>/state` (created if absent), keeping what others wrote there.
    MergeProcessingBlockState {
        pb_id: String,
        fields: Value,
    },
    /// Merges per-scan parameters into the processing block's `scan_parameters`.
    MergeScanParameters {
        pb_id: String,
        scan_parameters: Value,
    },
    /// Deletes `/pb/<pb_id>` with its owner and state entries.
    DeleteProcessingBlock(String),
    PutSubarray {
        id: String,
        entry: Value,
    },
    DeleteSubarray {
        id: String,
    },
    PutMaster {
        entry: Value,
    },
}

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

/// Applies a command's effects in one configuration-database transaction.
pub async fn apply(config: &sdp_config::Config, effects: &[Effect]) -> Result<(), sdp_config::Error> {
    use sdp_config::keys::paths;
    if effects.is_empty() {
        return Ok(());
    }
    config
        .txn(|t| async move {
            for effect in effects {
                match effect {
                    Effect::CreateProcessingBlock(pb) => t.create_processing_block(pb).await?,
                    Effect::MergeProcessingBlockState { pb_id, fields } => {
                        let fields = fields.as_object().cloned().unwrap_or_default();
                        t.merge_state(&paths::pb_state(pb_id), &fields).await?;
                    }
                    Effect::MergeScanParameters { pb_id, scan_parameters } => {
                        let mut pb = t
                            .get_processing_block(pb_id)
                            .await?
                            .ok_or_else(|| sdp_config::Error::Vanished(paths::pb(pb_id)))?;
                        let fields = scan_parameters.as_object().cloned().unwrap_or_default();
                        sdp_config::json::merge_fields(&mut pb.scan_parameters, &fields);
                        t.update_json(&paths::pb(pb_id), &pb).await?;
                    }
                    Effect::DeleteProcessingBlock(pb_id) => {
                        t.delete(&paths::pb(pb_id), false, true).await?;
                    }
                    Effect::PutSubarray { id, entry } => t.put_json(&paths::subarray(id), entry).await?,
                    Effect::DeleteSubarray { id } => {
                        t.delete(&paths::subarray(id), false, false).await?;
                    }
                    Effect::PutMaster { entry } => t.put_json(paths::MASTER, entry).await?,
                }
            }
            Ok(())
        })
        .await
}
