//! The master device's logic: On, Off, Standby and Disable set its state; each is always allowed (as in the
//! original) and recorded in the configuration database.

use serde_json::json;

use crate::effect::Effect;
use crate::model::{DevState, HealthState, OperatingState};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterState {
    pub state: DevState,
    pub operating_state: OperatingState,
    pub health_state: HealthState,
}

impl Default for MasterState {
    fn default() -> Self {
        MasterState { state: DevState::ON, operating_state: OperatingState::ON, health_state: HealthState::OK }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    On,
    Off,
    Standby,
    Disable,
}

impl Command {
    pub const NAMES: &'static [&'static str] = &["On", "Off", "Standby", "Disable"];

    pub fn parse(name: &str) -> Option<Command> {
        Some(match name.to_ascii_lowercase().as_str() {
            "on" => Command::On,
            "off" => Command::Off,
            "standby" => Command::Standby,
            "disable" => Command::Disable,
            _ => return None,
        })
    }
}

pub fn decide(s: &MasterState, command: Command) -> (MasterState, Vec<Effect>) {
    let (state, operating_state) = match command {
        Command::On => (DevState::ON, OperatingState::ON),
        Command::Off => (DevState::OFF, OperatingState::OFF),
        Command::Standby => (DevState::STANDBY, OperatingState::STANDBY),
        Command::Disable => (DevState::DISABLE, OperatingState::DISABLE),
    };
    let next = MasterState { state, operating_state, ..s.clone() };
    let effect = Effect::PutMaster { entry: json!({"state": state.label()}) };
    (next, vec![effect])
}
