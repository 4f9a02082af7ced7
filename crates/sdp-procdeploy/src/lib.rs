//! The process deployer: runs the `type: process-direct` `/deploy` entries ("directly spawn local processes")
//! as child processes of this one, for platforms without a cluster (`sdp up`).
//!
//! - It runs only what is defined elsewhere ([`spec`]): the commands of the processing script definitions
//!   (`/script/<id>`; the platform's own run `sdp script <name> <pb_id>`) and the process engines an operator
//!   registered. An entry that carries a command is refused (FAILED, with the reason) and runs nothing.
//! - A new entry starts its process, its output appended to `<log dir>/<deploy_id>.log`;
//!   `/deploy/<id>/state` says RUNNING (with the PID), then FINISHED (exit code 0) or FAILED (exit code or
//!   signal). An ended process is not started again until its entry is recreated.
//! - A deleted (or changed) entry stops its process: SIGTERM to its process group, SIGKILL after the grace
//!   period.
//! - Nothing outlives the platform: stopping the deployer stops every process, and each gets SIGTERM from the
//!   kernel if the platform dies. A process recorded as RUNNING starts again when the platform does; one that
//!   somehow survived its platform is stopped first, so nothing runs twice.
//!
//! The decisions are [`plan::plan`], a pure function; [`daemon`] does the I/O. [`start`] runs the deployer as
//! the platform does (`sdp up`); [`spawn`] runs it on a lease of the caller's choosing.

pub mod daemon;
pub mod plan;
pub mod process;
pub mod spec;

pub use daemon::{spawn, start, Metrics, ProcessDeployer, Running, Settings, LEADER};
pub use spec::{load_engines, EngineDefinition, ProcessSpec, Runnable, ScriptDefinitions, ScriptRunner};
