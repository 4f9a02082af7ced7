//! The subarray device's logic as a pure function: (state, command) → new state and configuration-database
//! effects, or a refusal that changes nothing.

use serde_json::{json, Value};

use crate::effect::Effect;
use crate::error::Refusal;
use crate::model::{repr_list, AdminMode, DevState, HealthState, ObsState};
use crate::schema;

#[derive(Clone, Debug, PartialEq)]
pub struct SubarrayState {
    pub state: DevState,
    pub obs_state: ObsState,
    pub admin_mode: AdminMode,
    pub health_state: HealthState,
    /// The processing block the current configuration created.
    pub pb_id: Option<String>,
    /// JSON published by the receive workflow for the current processing block (`{}` until then).
    pub receive_addresses: Value,
}

impl Default for SubarrayState {
    /// As after `Init`: OFF, IDLE, OFFLINE (an operator puts it ONLINE), health OK.
    fn default() -> Self {
        SubarrayState {
            state: DevState::OFF,
            obs_state: ObsState::IDLE,
            admin_mode: AdminMode::OFFLINE,
            health_state: HealthState::OK,
            pb_id: None,
            receive_addresses: json!({}),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    AssignResources(String),
    ReleaseResources(String),
    Configure(String),
    ConfigureScan(String),
    StartScan,
    EndScan,
    EndSB,
}

impl Command {
    pub const NAMES: &'static [&'static str] =
        &["AssignResources", "ReleaseResources", "Configure", "ConfigureScan", "StartScan", "EndScan", "EndSB"];

    /// Tango command names are case-insensitive.
    pub fn parse(name: &str, argin: &str) -> Option<Command> {
        let arg = argin.to_string();
        Some(match name.to_ascii_lowercase().as_str() {
            "assignresources" => Command::AssignResources(arg),
            "releaseresources" => Command::ReleaseResources(arg),
            "configure" => Command::Configure(arg),
            "configurescan" => Command::ConfigureScan(arg),
            "startscan" => Command::StartScan,
            "endscan" => Command::EndScan,
            "endsb" => Command::EndSB,
            _ => return None,
        })
    }
}

/// Where a subarray's own entry lives: `/subarray/<n>`.
pub type SubarrayId = String;

fn require_obs_state(s: &SubarrayState, allowed: &[ObsState]) -> Result<(), Refusal> {
    if allowed.contains(&s.obs_state) {
        return Ok(());
    }
    Err(Refusal::not_allowed(format!(
        "Error: the device must be in one of the following obsStates: {}",
        repr_list(allowed, ObsState::repr)
    )))
}

fn require_admin_mode_not(s: &SubarrayState, refused: &[AdminMode]) -> Result<(), Refusal> {
    if !refused.contains(&s.admin_mode) {
        return Ok(());
    }
    Err(Refusal::not_allowed(format!(
        "The device must NOT be in one of the following adminModes: {}. Current mode: {}",
        repr_list(refused, AdminMode::repr),
        s.admin_mode.repr()
    )))
}

/// The subarray entry written on every configuration-database change, in the seed era's schema.
fn subarray_entry(s: &SubarrayState, command: &str, pb_id: &str) -> Value {
    json!({"adminState": s.admin_mode.label(), "command": command, "currentPb": pb_id})
}

/// The obsState a command shows while it runs, once its obsState allows it, as the original device does:
/// `Configure` and `ConfigureScan` are CONFIGURING until they succeed (READY) or fail (back where they
/// started), so a subscriber sees IDLE → CONFIGURING → READY. `None` for a command that goes straight to its
/// next state, or that its obsState refuses.
pub fn passes_through(s: &SubarrayState, command: &Command) -> Option<ObsState> {
    match command {
        Command::Configure(_) if s.obs_state == ObsState::IDLE => Some(ObsState::CONFIGURING),
        Command::ConfigureScan(_) if s.obs_state == ObsState::READY => Some(ObsState::CONFIGURING),
        _ => None,
    }
}

/// Decides a command. On success returns the next state and the effects to apply, all in one transaction;
/// the caller commits the state only if the effects were applied.
pub fn decide(s: &SubarrayState, id: &str, command: &Command) -> Result<(SubarrayState, Vec<Effect>), Refusal> {
    let mut next = s.clone();
    let effects = match command {
        Command::AssignResources(_) => {
            require_obs_state(s, &[ObsState::IDLE])?;
            require_admin_mode_not(s, &[AdminMode::OFFLINE, AdminMode::NOT_FITTED])?;
            next.state = DevState::ON;
            Vec::new()
        }
        Command::ReleaseResources(_) => {
            require_obs_state(s, &[ObsState::IDLE])?;
            require_admin_mode_not(s, &[AdminMode::OFFLINE, AdminMode::NOT_FITTED])?;
            next.state = DevState::OFF;
            Vec::new()
        }
        Command::Configure(text) => {
            require_obs_state(s, &[ObsState::IDLE])?;
            let cfg = schema::configure(text).map_err(Refusal::bad_argument)?;
            next.obs_state = ObsState::READY;
            next.pb_id = Some(cfg.pb_id.clone());
            next.receive_addresses = json!({});
            let mut pb = sdp_config::ProcessingBlock::new(&cfg.pb_id, cfg.workflow);
            pb.sbi_id = Some(cfg.sbi_id);
            pb.parameters = cfg.parameters;
            pb.scan_parameters = cfg.scan_parameters;
            vec![
                Effect::CreateProcessingBlock(pb),
                Effect::PutSubarray { id: id.into(), entry: subarray_entry(&next, "Configure", &cfg.pb_id) },
                Effect::MergeProcessingBlockState {
                    pb_id: cfg.pb_id,
                    fields: json!({"subarray": next.state.label(), "obsState": next.obs_state.label()}),
                },
            ]
        }
        Command::ConfigureScan(text) => {
            require_obs_state(s, &[ObsState::READY])?;
            let scan_parameters = schema::configure_scan(text).map_err(Refusal::bad_argument)?;
            let pb_id = current_pb(s)?;
            vec![
                Effect::MergeScanParameters { pb_id: pb_id.clone(), scan_parameters },
                Effect::PutSubarray { id: id.into(), entry: subarray_entry(s, "ConfigureScan", &pb_id) },
            ]
        }
        Command::StartScan => scan_transition(s, &mut next, id, ObsState::READY, ObsState::SCANNING, "StartScan")?,
        Command::EndScan => scan_transition(s, &mut next, id, ObsState::SCANNING, ObsState::READY, "EndScan")?,
        Command::EndSB => {
            require_obs_state(s, &[ObsState::READY])?;
            let pb_id = current_pb(s)?;
            next.obs_state = ObsState::IDLE;
            next.pb_id = None;
            next.receive_addresses = json!({});
            // Deleting the processing block undoes its deployments (the processing controller sees to that).
            vec![Effect::DeleteProcessingBlock(pb_id), Effect::DeleteSubarray { id: id.into() }]
        }
    };
    Ok((next, effects))
}

fn current_pb(s: &SubarrayState) -> Result<String, Refusal> {
    s.pb_id.clone().ok_or_else(|| Refusal::not_allowed("Error: no processing block is configured".to_string()))
}

fn scan_transition(
    s: &SubarrayState,
    next: &mut SubarrayState,
    id: &str,
    from: ObsState,
    to: ObsState,
    command: &str,
) -> Result<Vec<Effect>, Refusal> {
    require_obs_state(s, &[from])?;
    let pb_id = current_pb(s)?;
    next.obs_state = to;
    Ok(vec![
        Effect::PutSubarray { id: id.into(), entry: subarray_entry(next, command, &pb_id) },
        Effect::MergeProcessingBlockState {
            pb_id,
            fields: json!({"subarray": next.state.label(), "obsState": to.label()}),
        },
    ])
}
