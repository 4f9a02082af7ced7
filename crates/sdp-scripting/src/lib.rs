//! What a processing script uses: claim its processing block, read its parameters, deploy execution engines
//! (Helm charts or processes) and wait until they are ready, report progress and receive addresses in
//! `/pb/<id>/state`, idle until released, and always remove what it deployed.
//!
//! [`run`] is a script's whole life around its work: a script of one's own is a program that calls it with
//! the block's ID it is given (see `examples/hello-script`, a crate of its own that depends on this one).
//! [`scripts`] holds the scripts the platform ships, written on this API; `sdp script <name> <pb_id>` runs
//! one. [`dask`] asks a Dask scheduler, over Dask's own protocol, who it is and which workers it has.

mod claim;
pub mod dask;
mod readiness;
pub mod scripts;

pub use claim::{idle_or_finish, run, Claim, Outcome, Release, ScriptError};
pub use readiness::{readiness, Readiness};
