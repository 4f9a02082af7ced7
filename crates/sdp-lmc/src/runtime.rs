//! The devices at run time: state, attributes, commands and change events, over the configuration database.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, watch, Mutex};

use crate::effect::apply;
use crate::error::DevError;
use crate::master::{self, MasterState};
use crate::model::{AdminMode, DevState};
use crate::subarray::{self, SubarrayState};

/// One device as Tango would list it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// Short name used in URLs: `master`, `subarray_1`.
    pub id: String,
    /// Tango device name: `mid_sdp/elt/subarray_1`.
    pub name: String,
    pub class: &'static str,
    pub server: String,
}

/// An attribute value: enums carry number and label, as Tango enum attributes do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AttrValue {
    Enum { value: i64, label: &'static str, labels: Vec<&'static str> },
    State { value: &'static str },
    String { value: String },
}

macro_rules! enum_value {
    ($ty:ty, $v:expr) => {
        AttrValue::Enum { value: $v as i64, label: $v.label(), labels: <$ty>::labels() }
    };
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeEvent {
    pub device: String,
    pub attribute: &'static str,
    pub value: AttrValue,
}

struct SubarrayDevice {
    info: DeviceInfo,
    /// Number used in the configuration database: `/subarray/<n>`.
    number: String,
    state: Mutex<SubarrayState>,
    /// The current processing block, for the task that follows its receive addresses.
    current_pb: watch::Sender<Option<String>>,
}

pub struct Lmc {
    config: sdp_config::Config,
    metrics: crate::metrics::Metrics,
    master_info: DeviceInfo,
    master: Mutex<MasterState>,
    subarrays: Vec<SubarrayDevice>,
    events: broadcast::Sender<ChangeEvent>,
    /// By device ID, what is called with each of its changes as it is published ([`Lmc::on_change`]).
    sinks: std::sync::RwLock<HashMap<String, ChangeSink>>,
}

/// Called with a device's change on the thread that publishes it, before the change stream has it.
pub type ChangeSink = Box<dyn Fn(&ChangeEvent) + Send + Sync>;

fn status(state: DevState) -> String {
    format!("The device is in {} state.", state.label())
}

/// The subarray's attributes, in the order devices list them.
const SUBARRAY_ATTRIBUTES: [&str; 6] = ["State", "Status", "obsState", "adminMode", "healthState", "receiveAddresses"];
/// The master's attributes, in the order devices list them.
const MASTER_ATTRIBUTES: [&str; 4] = ["State", "Status", "OperatingState", "healthState"];

/// One attribute of a subarray (by its name as listed), computed alone: a read builds only what it returns.
fn subarray_attribute(s: &SubarrayState, name: &'static str) -> AttrValue {
    match name {
        "State" => AttrValue::State { value: s.state.label() },
        "Status" => AttrValue::String { value: status(s.state) },
        "obsState" => enum_value!(crate::model::ObsState, s.obs_state),
        "adminMode" => enum_value!(AdminMode, s.admin_mode),
        "healthState" => enum_value!(crate::model::HealthState, s.health_state),
        _ => AttrValue::String { value: s.receive_addresses.to_string() },
    }
}

/// One attribute of the master (by its name as listed), computed alone.
fn master_attribute(m: &MasterState, name: &'static str) -> AttrValue {
    match name {
        "State" => AttrValue::State { value: m.state.label() },
        "Status" => AttrValue::String { value: status(m.state) },
        "OperatingState" => enum_value!(crate::model::OperatingState, m.operating_state),
        _ => enum_value!(crate::model::HealthState, m.health_state),
    }
}

fn subarray_attributes(s: &SubarrayState) -> Vec<(&'static str, AttrValue)> {
    SUBARRAY_ATTRIBUTES.iter().map(|&name| (name, subarray_attribute(s, name))).collect()
}

/// Whether a subarray's attribute `name` differs between two states, told from the fields it is made of: a
/// change computes only the attributes it changes (`receiveAddresses`' text is the costly one).
fn subarray_attribute_changed(before: &SubarrayState, after: &SubarrayState, name: &str) -> bool {
    match name {
        "State" | "Status" => before.state != after.state,
        "obsState" => before.obs_state != after.obs_state,
        "adminMode" => before.admin_mode != after.admin_mode,
        "healthState" => before.health_state != after.health_state,
        _ => before.receive_addresses != after.receive_addresses,
    }
}

/// The subarray's attributes that differ between `before` and `after`, with their values in `after`.
fn changed_subarray_attributes(before: &SubarrayState, after: &SubarrayState) -> Vec<(&'static str, AttrValue)> {
    SUBARRAY_ATTRIBUTES
        .iter()
        .filter(|name| subarray_attribute_changed(before, after, name))
        .map(|&name| (name, subarray_attribute(after, name)))
        .collect()
}

fn master_attributes(m: &MasterState) -> Vec<(&'static str, AttrValue)> {
    MASTER_ATTRIBUTES.iter().map(|&name| (name, master_attribute(m, name))).collect()
}

/// The master's attributes that differ between `before` and `after`, with their values in `after`.
fn changed_master_attributes(before: &MasterState, after: &MasterState) -> Vec<(&'static str, AttrValue)> {
    MASTER_ATTRIBUTES
        .iter()
        .filter_map(|&name| {
            let value = master_attribute(after, name);
            (master_attribute(before, name) != value).then_some((name, value))
        })
        .collect()
}

/// The listed name of attribute or command `name`: Tango names are case-insensitive.
fn listed(names: &[&'static str], name: &str) -> Option<&'static str> {
    names.iter().find(|n| n.eq_ignore_ascii_case(name)).copied()
}

/// The SDP master device.
fn master_info() -> DeviceInfo {
    DeviceInfo {
        id: "master".into(),
        name: "mid_sdp/elt/master".into(),
        class: "SDPMaster",
        server: "SDPMaster/1".into(),
    }
}

/// Subarray device `n` (from 1).
fn subarray_info(n: usize) -> DeviceInfo {
    DeviceInfo {
        id: format!("subarray_{n}"),
        name: format!("mid_sdp/elt/subarray_{n}"),
        class: "SDPSubarray",
        server: format!("SDPSubarray/{n}"),
    }
}

/// The devices [`Lmc::start`] serves with `subarrays` subarrays: the master, then the subarrays.
pub fn devices(subarrays: usize) -> Vec<DeviceInfo> {
    std::iter::once(master_info()).chain((1..=subarrays).map(subarray_info)).collect()
}

impl Lmc {
    /// A master and `subarrays` subarray devices (`mid_sdp/elt/subarray_1` …) over `config`, counting their
    /// commands and events in `metrics`. Spawns the tasks that follow the receive addresses published for each
    /// subarray's processing block.
    pub fn start(config: sdp_config::Config, subarrays: usize, metrics: crate::metrics::Metrics) -> Arc<Lmc> {
        let (events, _) = broadcast::channel(1024);
        let lmc = Arc::new(Lmc {
            config,
            metrics,
            master_info: master_info(),
            master: Mutex::new(MasterState::default()),
            subarrays: (1..=subarrays)
                .map(|n| SubarrayDevice {
                    info: subarray_info(n),
                    number: n.to_string(),
                    state: Mutex::new(SubarrayState::default()),
                    current_pb: watch::Sender::new(None),
                })
                .collect(),
            events,
            sinks: Default::default(),
        });
        for index in 0..lmc.subarrays.len() {
            tokio::spawn(follow_receive_addresses(Arc::clone(&lmc), index));
        }
        lmc
    }

    pub fn devices(&self) -> Vec<DeviceInfo> {
        std::iter::once(self.master_info.clone()).chain(self.subarrays.iter().map(|s| s.info.clone())).collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.events.subscribe()
    }

    /// Calls `sink` with every change of the device `id` as it is published, on the publishing thread (the one
    /// that ran the command, or the one following the configuration database), in place of any sink before it.
    /// For whoever forwards changes and cannot afford the hand-over to a task that following [`Lmc::subscribe`]
    /// costs: `sink` must not block, and must not call back into the LMC.
    pub fn on_change(&self, id: &str, sink: impl Fn(&ChangeEvent) + Send + Sync + 'static) {
        self.sinks.write().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), Box::new(sink));
    }

    fn subarray(&self, device: &str) -> Option<&SubarrayDevice> {
        self.subarrays.iter().find(|s| s.info.id == device || s.info.name.eq_ignore_ascii_case(device))
    }

    fn is_master(&self, device: &str) -> bool {
        device == self.master_info.id || device.eq_ignore_ascii_case(&self.master_info.name)
    }

    fn no_device(device: &str) -> DevError {
        DevError::not_found("API_DeviceNotFound", format!("device {device} not defined"))
    }

    pub async fn attributes(&self, device: &str) -> Result<Vec<(&'static str, AttrValue)>, DevError> {
        if self.is_master(device) {
            return Ok(master_attributes(&*self.master.lock().await));
        }
        let sub = self.subarray(device).ok_or_else(|| Self::no_device(device))?;
        Ok(subarray_attributes(&*sub.state.lock().await))
    }

    pub async fn read_attribute(&self, device: &str, name: &str) -> Result<AttrValue, DevError> {
        let not_found = || DevError::not_found("API_AttrNotFound", format!("{name} attribute not found for {device}"));
        if self.is_master(device) {
            let name = listed(&MASTER_ATTRIBUTES, name).ok_or_else(not_found)?;
            return Ok(master_attribute(&*self.master.lock().await, name));
        }
        let sub = self.subarray(device).ok_or_else(|| Self::no_device(device))?;
        let name = listed(&SUBARRAY_ATTRIBUTES, name).ok_or_else(not_found)?;
        Ok(subarray_attribute(&*sub.state.lock().await, name))
    }

    /// Writes `adminMode` (the one writable attribute): a label (`"ONLINE"`) or a number.
    pub async fn write_attribute(&self, device: &str, name: &str, value: &Value) -> Result<(), DevError> {
        let not_writable = || DevError {
            kind: crate::error::ErrorKind::NotAllowed,
            reason: "API_AttrNotWritable".into(),
            desc: format!("attribute {name} of {device} is not writable"),
        };
        // Unknown devices and attributes are reported as such before "not writable".
        self.read_attribute(device, name).await?;
        let sub = match self.subarray(device) {
            Some(sub) if name.eq_ignore_ascii_case("adminMode") => sub,
            _ => return Err(not_writable()),
        };
        let mode = match value {
            Value::String(label) => AdminMode::from_label(label),
            Value::Number(n) => n.as_i64().and_then(AdminMode::from_value),
            _ => None,
        }
        .ok_or_else(|| {
            DevError::bad_argument(format!(
                "{value} is not an adminMode: use one of {:?} or its number",
                AdminMode::labels()
            ))
        })?;
        let mut state = sub.state.lock().await;
        let next = SubarrayState { admin_mode: mode, ..state.clone() };
        self.change_subarray(sub, &mut state, next);
        Ok(())
    }

    /// Runs a command; refusals and failures change nothing.
    pub async fn command(&self, device: &str, name: &str, argin: &str) -> Result<(), DevError> {
        let outcome = self.run_command(device, name, argin).await;
        // Labels from the devices' own names only: what a client sends is not a label.
        let (device, names) = if self.is_master(device) {
            (self.master_info.id.as_str(), master::Command::NAMES)
        } else {
            (self.subarray(device).map_or("unknown", |sub| sub.info.id.as_str()), subarray::Command::NAMES)
        };
        let command = listed(names, name).unwrap_or("unknown");
        self.metrics.command(device, command, &outcome);
        outcome
    }

    async fn run_command(&self, device: &str, name: &str, argin: &str) -> Result<(), DevError> {
        let not_found = || DevError::not_found("API_CommandNotFound", format!("Command {name} not found"));
        if self.is_master(device) {
            let command = master::Command::parse(name).ok_or_else(not_found)?;
            let mut state = self.master.lock().await;
            let (next, effects) = master::decide(&state, command);
            let durable = self.apply(&effects).await?;
            let before = std::mem::replace(&mut *state, next);
            self.publish(&self.master_info.id, changed_master_attributes(&before, &state));
            return self.acknowledge(durable).await;
        }
        let sub = self.subarray(device).ok_or_else(|| Self::no_device(device))?;
        let command = subarray::Command::parse(name, argin).ok_or_else(not_found)?;
        let mut state = sub.state.lock().await;
        let started = state.clone();
        if let Some(obs_state) = subarray::passes_through(&started, &command) {
            self.change_subarray(sub, &mut state, SubarrayState { obs_state, ..started.clone() });
        }
        let decided = match subarray::decide(&started, &sub.number, &command) {
            Ok((next, effects)) => self.apply(&effects).await.map(|durable| (next, durable)),
            Err(refusal) => Err(refusal),
        };
        let durable = match decided {
            Ok((next, durable)) => {
                self.change_subarray(sub, &mut state, next);
                durable
            }
            Err(e) => {
                self.change_subarray(sub, &mut state, started);
                return Err(e);
            }
        };
        // The change is told (its event pushed) as soon as it commits; the command is answered once it is on disk.
        self.acknowledge(durable).await?;
        tracing::info!(device = %sub.info.name, command = name, obs_state = %state.obs_state, state = %state.state, "command done");
        Ok(())
    }

    /// Makes `next` the subarray's state and publishes the attributes that changed.
    fn change_subarray(&self, sub: &SubarrayDevice, state: &mut SubarrayState, next: SubarrayState) {
        let before = std::mem::replace(state, next);
        // Only a new processing block restarts the task that follows its receive addresses.
        sub.current_pb.send_if_modified(|pb_id| {
            let modified = *pb_id != state.pb_id;
            pb_id.clone_from(&state.pb_id);
            modified
        });
        self.publish(&sub.info.id, changed_subarray_attributes(&before, state));
    }

    async fn apply(&self, effects: &[crate::effect::Effect]) -> Result<sdp_config::Durable, DevError> {
        apply(&self.config, effects).await.map_err(|e| {
            tracing::warn!(error = %e, "command failed in the configuration database; state unchanged");
            DevError::failed(e.to_string())
        })
    }

    /// Waits until a command's committed writes are on disk, before it is answered.
    async fn acknowledge(&self, durable: sdp_config::Durable) -> Result<(), DevError> {
        durable.wait().await.map_err(|e| {
            tracing::error!(error = %e, "command committed, but its writes are not on disk");
            DevError::failed(format!("the change is made but not on disk: {e}"))
        })
    }

    /// Tells each of a device's changed attributes to its sink, then to the change stream.
    fn publish(&self, device: &str, changes: Vec<(&'static str, AttrValue)>) {
        if changes.is_empty() {
            return;
        }
        let sinks = self.sinks.read().unwrap_or_else(|p| p.into_inner());
        let sink = sinks.get(device);
        for (name, value) in changes {
            self.metrics.event(device, name);
            let change = ChangeEvent { device: device.to_string(), attribute: name, value };
            if let Some(sink) = sink {
                sink(&change);
            }
            let _ = self.events.send(change);
        }
    }
}

/// Reads of a block's state woken by changes start at least this far apart (see [`follow_receive_addresses`]).
const FOLLOW_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Follows `/pb/<current>/state` of a subarray's processing block and publishes its `receiveAddresses` once
/// the receive workflow writes them.
async fn follow_receive_addresses(lmc: Arc<Lmc>, index: usize) {
    let sub = &lmc.subarrays[index];
    let mut current = sub.current_pb.subscribe();
    let mut backoff = sdp_daemon::Backoff::new(sdp_daemon::Policy::DATABASE);
    loop {
        let Some(pb_id) = current.borrow_and_update().clone() else {
            if current.changed().await.is_err() {
                return;
            }
            continue;
        };
        // The block's state changes with every scan, which publishes nothing here: in a burst, one read a while.
        let mut watcher = lmc.config.watcher().with_min_interval(FOLLOW_MIN_INTERVAL);
        loop {
            let read = watcher.txn(|t| {
                let pb_id = pb_id.clone();
                async move {
                    let state = t.get_processing_block_state(&pb_id).await.ok().flatten();
                    Ok(state.and_then(|s| s.get("receiveAddresses").cloned()))
                }
            });
            tokio::select! {
                result = read => match result {
                    Ok(Some(addresses)) => {
                        backoff.succeeded();
                        let mut state = sub.state.lock().await;
                        if state.pb_id.as_deref() == Some(pb_id.as_str()) && state.receive_addresses != addresses {
                            let before = state.clone();
                            state.receive_addresses = addresses;
                            lmc.publish(&sub.info.id, changed_subarray_attributes(&before, &state));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => backoff.wait_after(&format!("reading the state of {pb_id}"), &e).await,
                },
                changed = current.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HealthState, ObsState};

    /// A read computes one attribute alone: it must be what the full listing holds, whatever the name's case.
    #[tokio::test]
    async fn a_read_is_the_listed_attribute() {
        let lmc = Lmc::start(sdp_config::Config::memory(), 1, crate::Metrics::default());
        lmc.write_attribute("subarray_1", "adminMode", &Value::from("ONLINE")).await.unwrap();
        for device in ["master", "subarray_1"] {
            let listed = lmc.attributes(device).await.unwrap();
            assert_eq!(listed.len(), if device == "master" { 4 } else { 6 });
            for (name, value) in listed {
                for asked in [name.to_string(), name.to_uppercase(), name.to_lowercase()] {
                    assert_eq!(lmc.read_attribute(device, &asked).await.unwrap(), value, "{device} {asked}");
                }
            }
            let missing = lmc.read_attribute(device, "nope").await.unwrap_err();
            assert_eq!(missing.reason, "API_AttrNotFound");
        }
    }

    /// A change publishes exactly the attributes whose values differ, though it tells them from the fields:
    /// every pair of states one field apart (and the default against each) agrees with the computed values.
    #[test]
    fn a_change_publishes_the_attributes_whose_values_differ() {
        let base = SubarrayState::default();
        let mut states = vec![base.clone()];
        states.extend(DevState::ALL.iter().map(|&state| SubarrayState { state, ..base.clone() }));
        states.extend(ObsState::ALL.iter().map(|&obs_state| SubarrayState { obs_state, ..base.clone() }));
        states.extend(AdminMode::ALL.iter().map(|&admin_mode| SubarrayState { admin_mode, ..base.clone() }));
        states.extend(HealthState::ALL.iter().map(|&health_state| SubarrayState { health_state, ..base.clone() }));
        states.push(SubarrayState { pb_id: Some("pb-1".into()), ..base.clone() });
        states.push(SubarrayState { receive_addresses: serde_json::json!({"1": {"host": []}}), ..base.clone() });
        for before in &states {
            for after in &states {
                let expected: Vec<_> = subarray_attributes(before)
                    .into_iter()
                    .zip(subarray_attributes(after))
                    .filter(|((_, old), (_, new))| old != new)
                    .map(|(_, changed)| changed)
                    .collect();
                assert_eq!(changed_subarray_attributes(before, after), expected, "{before:?} -> {after:?}");
            }
        }
    }

    /// A device's sink has each of its changes once, before the command returns, and only its own; a second
    /// sink for the device takes the place of the first.
    #[tokio::test]
    async fn a_change_sink_has_each_change_of_its_device_once() {
        let lmc = Lmc::start(sdp_config::Config::memory(), 1, crate::Metrics::default());
        let seen = |sink: &Arc<std::sync::Mutex<Vec<String>>>| sink.lock().unwrap().clone();
        let sink = |lmc: &Lmc, id: &str| {
            let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
            let into = Arc::clone(&changes);
            lmc.on_change(id, move |change| {
                into.lock().unwrap().push(format!("{} {:?}", change.attribute, change.value))
            });
            changes
        };
        let (first, master) = (sink(&lmc, "subarray_1"), sink(&lmc, "master"));
        lmc.write_attribute("subarray_1", "adminMode", &Value::from("ONLINE")).await.unwrap();
        assert_eq!(seen(&first).len(), 1, "{:?}", seen(&first));
        assert!(seen(&first)[0].starts_with("adminMode"), "{:?}", seen(&first));
        assert!(seen(&master).is_empty(), "{:?}", seen(&master));
        lmc.command("master", "Standby", "").await.unwrap();
        assert!(seen(&master).iter().any(|c| c.starts_with("State")), "{:?}", seen(&master));
        assert_eq!(seen(&first).len(), 1, "{:?}", seen(&first));
        let second = sink(&lmc, "subarray_1");
        lmc.write_attribute("subarray_1", "adminMode", &Value::from("OFFLINE")).await.unwrap();
        assert_eq!(seen(&first).len(), 1, "{:?}", seen(&first));
        assert_eq!(seen(&second).len(), 1, "{:?}", seen(&second));
    }
}
