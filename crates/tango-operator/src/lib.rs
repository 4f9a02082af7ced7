//! The Tango operator: the `DeviceServer` and `DatabaseDS` custom resources of group `tango.tango-controls.org`
//! and the controllers that run them on Kubernetes without init containers or jobs.

pub mod controller;
pub mod crd;
#[cfg(feature = "fake-api")]
pub mod fake_api;
pub mod leader;
pub mod metrics;
pub mod objects;
pub mod probe;
pub mod spec;
pub mod state;
