//! The SDP master and subarray as Tango device servers: `SDPMaster/1` serving `mid_sdp/elt/master` and
//! `SDPSubarray/<n>` serving `mid_sdp/elt/subarray_<n>`, built on `rstango` (pure Rust Tango) over the LMC
//! devices, whose logic they call and never repeat.
//!
//! rstango runs its own threads, not Tokio's: handlers reach the (async) LMC devices through a Tokio runtime
//! handle with `block_on`, which is allowed on those threads.
//!
//! What rstango does not offer, and how this crate does without it:
//! - enum labels on an attribute definition: they are written to the database as the class attribute
//!   property `enum_labels` at registration, where servers read them at start;
//! - writing an enum attribute: PyTango sends a DevShort, so `adminMode` takes the raw value and accepts both,
//!   and its reads carry the set point as an enum themselves;
//! - polling: change events are pushed by the devices after each command instead.

use std::sync::Arc;

use serde_json::Value as Json;
use tango::dev::{AttrRead, DevState};
use tango::error::{Error, ErrorKind, Result};
use tango::server::{AttrDef, ClassDef, CommandDef, Dev, ServerBuilder, ServerHandle};
use tango::value::{AttrDataKind, DevEnum, Value};

use sdp_lmc::model::{AdminMode, HealthState, ObsState, OperatingState};
use sdp_lmc::{AttrValue, DevError, Lmc};

pub use tango::database::DatabaseProxy;

/// One device's model: which LMC device it is, and how to reach the LMC.
struct Device {
    lmc: Arc<Lmc>,
    runtime: tokio::runtime::Handle,
    name: String,
}

fn dev_failed(e: DevError) -> Error {
    Error::new(ErrorKind::Reason(leak(e.reason))).with_description(e.desc)
}

/// rstango takes reasons as `&'static str`; the few distinct reasons are interned once each.
fn leak(reason: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static REASONS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut reasons = REASONS.lock().unwrap_or_else(|p| p.into_inner());
    let set = reasons.get_or_insert_with(HashSet::new);
    if let Some(r) = set.get(reason.as_str()) {
        return r;
    }
    let r: &'static str = Box::leak(reason.into_boxed_str());
    set.insert(r);
    r
}

fn tango_state(label: &str) -> DevState {
    match label {
        "ON" => DevState::On,
        "OFF" => DevState::Off,
        "CLOSE" => DevState::Close,
        "OPEN" => DevState::Open,
        "INSERT" => DevState::Insert,
        "EXTRACT" => DevState::Extract,
        "MOVING" => DevState::Moving,
        "STANDBY" => DevState::Standby,
        "FAULT" => DevState::Fault,
        "INIT" => DevState::Init,
        "RUNNING" => DevState::Running,
        "ALARM" => DevState::Alarm,
        "DISABLE" => DevState::Disable,
        _ => DevState::Unknown,
    }
}

impl Device {
    fn read(&self, attribute: &str) -> Result<AttrValue> {
        self.runtime.block_on(self.lmc.read_attribute(&self.name, attribute)).map_err(dev_failed)
    }

    fn state(&self, _: &Dev<Self>) -> Result<DevState> {
        match self.read("State")? {
            AttrValue::State { value } => Ok(tango_state(value)),
            other => {
                Err(Error::new(ErrorKind::Reason("API_AttrValueNotSet"))
                    .with_description(format!("State is {other:?}")))
            }
        }
    }

    fn status(&self, _: &Dev<Self>) -> Result<std::borrow::Cow<'_, str>> {
        match self.read("Status")? {
            AttrValue::String { value } => Ok(value.into()),
            other => Ok(format!("{other:?}").into()),
        }
    }

    fn enum_attr(&self, attribute: &str) -> Result<DevEnum> {
        match self.read(attribute)? {
            AttrValue::Enum { value, .. } => Ok(DevEnum(value as i16)),
            other => Err(Error::new(ErrorKind::Reason("API_AttrValueNotSet"))
                .with_description(format!("{attribute} is {other:?}"))),
        }
    }

    fn string_attr(&self, attribute: &str) -> Result<String> {
        match self.read(attribute)? {
            AttrValue::String { value } => Ok(value),
            other => Ok(format!("{other:?}")),
        }
    }

    fn write_admin_mode(&mut self, _: &Dev<Self>, value: Value) -> Result<()> {
        let mode = DevEnum::try_from(&value).map(|e| e.0).or_else(|_| i16::try_from(&value))?;
        self.runtime.block_on(self.lmc.write_attribute(&self.name, "adminMode", &Json::from(mode))).map_err(dev_failed)
    }

    /// Runs an LMC command, then pushes change events for the state and enum attributes it may change.
    fn command(&self, dev: &Dev<Self>, command: &str, argin: &str, pushed: &[&str]) -> Result<()> {
        self.runtime.block_on(self.lmc.command(&self.name, command, argin)).map_err(dev_failed)?;
        for attribute in pushed {
            let pushed = match *attribute {
                "State" => self.state(dev).and_then(|s| dev.push_change_event("State", s)),
                name => self.enum_attr(name).and_then(|v| dev.push_change_event(name, v)),
            };
            if let Err(e) = pushed {
                tracing::debug!(device = self.name, attribute, error = %e, "change event not pushed");
            }
        }
        Ok(())
    }
}

fn model_init(
    lmc: Arc<Lmc>,
    runtime: tokio::runtime::Handle,
) -> impl Fn(&Dev<Device>) -> Result<Device> + Send + Sync + 'static {
    move |dev: &Dev<Device>| {
        Ok(Device { lmc: Arc::clone(&lmc), runtime: runtime.clone(), name: dev.name().to_string() })
    }
}

fn enum_attr(name: &'static str, label: &'static str) -> AttrDef<Device> {
    AttrDef::new(name).label(label).read(move |m: &Device, _: &Dev<Device>| m.enum_attr(name)).push_change_event(false)
}

fn subarray_class(lmc: Arc<Lmc>, runtime: tokio::runtime::Handle) -> ClassDef<Device> {
    let mut class = ClassDef::new("SDPSubarray", model_init(lmc, runtime))
        .doc("SDP subarray: resources, configuration and scans of one subarray")
        .state(Device::state)
        .status(Device::status)
        .push_state_events(Some(false), None)
        .attr(enum_attr("obsState", "Obs State"))
        .attr(
            AttrDef::new("adminMode")
                .label("Admin mode")
                .kind(AttrDataKind::Enum)
                .scalar()
                // The set point is the mode itself, given as an enum: rstango would otherwise keep the DevShort
                // that PyTango wrote, and refuse to read back an enum with a short set point.
                .read(|m: &Device, _: &Dev<Device>| {
                    let mode = m.enum_attr("adminMode")?;
                    let mut read = AttrRead::new(mode);
                    read.w_value = Some(mode);
                    Ok(read)
                })
                .write_exclusive_with(Device::write_admin_mode)
                .push_change_event(false),
        )
        .attr(enum_attr("healthState", "Health state"))
        .attr(
            AttrDef::new("receiveAddresses")
                .label("Receive Addresses")
                .read(|m: &Device, _: &Dev<Device>| m.string_attr("receiveAddresses")),
        );
    for &name in sdp_lmc::subarray::Command::NAMES {
        let pushed: &'static [&'static str] = &["State", "obsState"];
        class = class.command(match name {
            // Commands taking the original's JSON (or empty) string.
            "AssignResources" | "ReleaseResources" | "Configure" | "ConfigureScan" => CommandDef::new(name)
                .in_doc("JSON configuration string")
                .exec(move |m: &Device, dev: &Dev<Device>, argin: String| m.command(dev, name, &argin, pushed)),
            _ => {
                CommandDef::new(name).exec(move |m: &Device, dev: &Dev<Device>, _: ()| m.command(dev, name, "", pushed))
            }
        });
    }
    class
}

fn master_class(lmc: Arc<Lmc>, runtime: tokio::runtime::Handle) -> ClassDef<Device> {
    let mut class = ClassDef::new("SDPMaster", model_init(lmc, runtime))
        .doc("SDP master: the state of SDP as a whole")
        .state(Device::state)
        .status(Device::status)
        .push_state_events(Some(false), None)
        .attr(enum_attr("OperatingState", "Operating state"))
        .attr(enum_attr("healthState", "Health state"));
    for &name in sdp_lmc::master::Command::NAMES {
        class =
            class.command(CommandDef::new(name).exec(move |m: &Device, dev: &Dev<Device>, _: ()| {
                m.command(dev, name, "", &["State", "OperatingState"])
            }));
    }
    class
}

/// Adds the servers and devices to the Tango database, with the enum labels of their attributes.
/// Safe to repeat.
pub fn register(db: &DatabaseProxy, lmc: &Lmc) -> Result<()> {
    for device in lmc.devices() {
        db.add_server(&device.server, &[(device.name.as_str(), device.class)])?;
    }
    let enum_labels = |class: &str, attribute: &str, labels: Vec<&'static str>| {
        let values: Vec<String> = labels.into_iter().map(String::from).collect();
        db.set_class_attr_prop(class, (attribute, ("enum_labels", values)))
    };
    enum_labels("SDPSubarray", "obsState", ObsState::labels())?;
    enum_labels("SDPSubarray", "adminMode", AdminMode::labels())?;
    enum_labels("SDPSubarray", "healthState", HealthState::labels())?;
    enum_labels("SDPMaster", "OperatingState", OperatingState::labels())?;
    enum_labels("SDPMaster", "healthState", HealthState::labels())?;
    Ok(())
}

/// The running device servers; [`TangoServers::stop`] unexports them (it blocks: call it off async threads).
pub struct TangoServers {
    handles: Vec<ServerHandle>,
}

impl TangoServers {
    pub fn stop(self) {
        for handle in &self.handles {
            if let Err(e) = futures::executor::block_on(handle.server().stop()) {
                tracing::warn!(server = %handle.server().name(), error = %e, "Tango server did not stop cleanly");
            }
        }
        for handle in self.handles {
            let _ = handle.wait_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// Registers and serves the master and subarray servers in the Tango database `db`, advertising `host` to
/// clients (empty: rstango's default). Handlers call into `lmc` on `runtime`.
pub fn serve(db: DatabaseProxy, host: &str, lmc: Arc<Lmc>, runtime: tokio::runtime::Handle) -> Result<TangoServers> {
    register(&db, &lmc)?;
    let mut handles = Vec::new();
    for device in lmc.devices() {
        let (exe, instance) = device.server.split_once('/').expect("server names are exe/instance");
        let class = match device.class {
            "SDPMaster" => master_class(Arc::clone(&lmc), runtime.clone()),
            _ => subarray_class(Arc::clone(&lmc), runtime.clone()),
        };
        let mut builder = ServerBuilder::new(exe, instance).database(db.clone()).stop_on_signal(false);
        if !host.is_empty() {
            builder = builder.host(host);
        }
        let handle = builder.class(class)?.serve()?;
        tracing::info!(server = device.server, device = device.name, "Tango device server exported");
        handles.push(handle);
    }
    Ok(TangoServers { handles })
}
