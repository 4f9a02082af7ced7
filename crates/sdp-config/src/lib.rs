//! Client library for the SDP configuration database.
//!
//! All SDP state lives in etcd v3 under depth-tagged keys, in the key layout and JSON encoding of the
//! original Python `ska-sdp-config`, so both can share one database. The same API runs on an in-process
//! store with etcd's semantics (`SDP_CONFIG_BACKEND=memory`), used by tests and single-process tools.
//!
//! The daemons connect with [`Config::connect_when_reachable`] (a database not up yet is waited for) and work
//! while they lead their component ([`run_while_leading`], on leases of [`LEASE_TTL`] seconds).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sdp_config::Error> {
//! use sdp_config::{Config, ProcessingBlock};
//! let config = Config::from_env().await?;
//! let pb_id = config
//!     .txn(|txn| async move {
//!         let id = txn.new_processing_block_id("realtime").await?;
//!         txn.create_processing_block(&ProcessingBlock::new(&id, "realtime:testdask:0.1.0".parse()?)).await?;
//!         Ok(id)
//!     })
//!     .await?;
//! # Ok(()) }
//! ```

mod backend;
mod choices;
pub mod config;
pub mod deployment;
mod driver;
pub mod entity;
pub mod error;
mod etcd;
mod follow;
pub mod json;
pub mod keys;
pub mod leadership;
mod lease;
mod memory;
pub mod ownership;
pub mod script;
pub mod settings;
mod tls;
mod txn;

pub use config::{Config, MAX_RETRIES};
pub use deployment::Deployment;
pub use deployment::{DeploymentArgs, DeploymentState, ProcessRequest, StateUpdate, Status};
pub use entity::{BlockState, ProcessingBlock, Workflow};
pub use error::Error;
pub use leadership::{run_while_leading, LEASE_TTL};
pub use lease::Lease;
pub use ownership::Owner;
pub use ownership::Ownership;
pub use script::ScriptDefinition;
pub use settings::Settings;
pub use txn::{Durable, Txn, Watcher, MAX_RECURSION};
