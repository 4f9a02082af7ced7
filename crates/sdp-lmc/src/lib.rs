//! SDP's local monitoring and control (LMC): the master and subarray devices.
//!
//! The logic is pure ([`subarray::decide`], [`master::decide`]): a command either gives the next state and the
//! configuration-database effects, or a refusal that changes nothing. [`Lmc`] runs the devices over the
//! configuration database (commands on one device are serialised; a command's effects are one transaction,
//! and its new state is kept only if that commits) and publishes change events. [`http`] serves it as
//! HTTP/JSON with server-sent events; a Tango front end can sit on the same [`Lmc`]. [`start`] serves the
//! devices as the platform does: behind a bearer token when one is set, beside the open probes and metrics.

pub mod effect;
pub mod error;
pub mod http;
pub mod master;
pub mod metrics;
pub mod model;
mod runtime;
pub mod schema;
pub mod subarray;
mod surface;

pub use effect::{apply, Effect};
pub use error::{DevError, ErrorKind, Refusal};
pub use metrics::Metrics;
pub use runtime::{devices, AttrValue, ChangeEvent, DeviceInfo, Lmc};
pub use surface::{start, start_on, Running, Settings, Unprotected};
