//! The Helm deployer: watches `/deploy` and makes Helm releases match the `type: helm` entries in the
//! processing namespace: install when new, upgrade when chart or values change, uninstall when the entry is
//! deleted (release name = deploy ID). Outcomes go to `/deploy/<id>/state`. Without a cluster it renders
//! charts with `helm template` instead (render-only mode). With one, it also follows the pods of each
//! deployment ([`pods`]) and publishes network resources ([`resources`]).
//!
//! [`start`] runs it as the platform does: it picks the mode, unpacks the bundled charts ([`bundled`]),
//! creates the processing namespace ([`namespace`]) and starts the monitors; [`run`] is the deployer's loop
//! alone.

pub mod bundled;
mod daemon;
pub mod helm;
pub mod manifest;
pub mod metrics;
pub mod namespace;
pub mod plan;
mod platform;
pub mod pods;
pub mod repositories;
pub mod resources;
pub mod values;

pub use daemon::{run, Deployer, Mode, LEADER};
pub use platform::{start, Running, Settings, StartError, REPOSITORY_REFRESH};
