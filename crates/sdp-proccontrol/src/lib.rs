//! The processing controller.
//!
//! For every processing block it deploys the block's processing script, as the block's `kind:name:version`
//! is defined in `/script/<id>` ([`ScriptDefinition`]; the platform's own, [`builtin_scripts`], are written there
//! where missing when the controller starts leading): `/deploy/<pb_id>-workflow`, a Helm deployment of the
//! `workflow` chart with the values the original passes (`env.SDP_CONFIG_HOST`, `env.SDP_HELM_NAMESPACE`,
//! `pb_id`, `wf_image` the definition's image) and the definition's `args` (the platform's own scripts run
//! `sdp script <name> <pb_id>` in the platform's image, [`SCRIPT_IMAGE`]), or, on one machine, a
//! `process-direct` deployment `{"script": <id>, "pb_id": <pb_id>}`, which the process deployer runs as the
//! definition's command ([`ScriptRunner`]). It keeps the block's `state` field in `/pb/<pb_id>/state`:
//! `executing`, then `finished` or `failed` as the script reports, or as its deployment ended when it could not.
//! Once the script has ended and let go of the block, the engines it left (`<pb_id>-*`) are removed. When a
//! processing block is deleted, every deployment whose ID starts with `<pb_id>-` goes too, and so does
//! `/pb/<pb_id>/state` once no script owns the block (`/pb/<pb_id>/owner` lives on the script's lease: it goes
//! when the script lets go or its lease expires).
//!
//! The decision is [`plan`], a pure function of what the database holds; [`run`] applies it in the same
//! transaction that read it, so two controllers (or one restarted midway) can never create a deployment twice.
//! Only one controller acts at a time: the holder of the lease-backed entry `/controller/processing`.
//! [`start`] runs it as the platform does (`sdp up`, `sdp processing-controller`).

mod daemon;
mod plan;

pub use daemon::{run, start, ActionKind, Controller, Metrics, Running};
pub use plan::*;
