//! The SDP master and subarray as Tango device servers: `SDPMaster/1` serving `mid_sdp/elt/master` and
//! `SDPSubarray/<n>` serving `mid_sdp/elt/subarray_<n>`, built on `rstango` (pure Rust Tango) over the LMC
//! devices, whose logic they call and never repeat.
//!
//! rstango runs its own threads, not Tokio's. Every handler is asynchronous, polled by the thread that received
//! the request inside the Tokio runtime's context ([`Device::on_runtime`]): a synchronous handler would be handed
//! to a thread of rstango's pool and back, two thread hops per request.
//!
//! Events: every change of a device attribute the LMC publishes (the changes `sdp lmc events` serves)
//! is pushed to Tango subscribers as a change and an archive event, whatever made it: a Tango command, the
//! HTTP surface, or another process writing the configuration database. Each device pushes its changes as
//! the LMC publishes them, on the publishing thread ([`Lmc::on_change`]): a command's event goes out from the
//! thread that ran it, as soon as its database transaction commits, with no hand-over to another task.
//!
//! [`start`] serves the devices as the platform does: in the Tango database `TANGO_HOST` names
//! ([`database_address`]), telling clients an address they can reach ([`advertised_host`]).
//!
//! What rstango does not offer, and how this crate does without it:
//! - enum labels on an attribute definition: they are written to the database as the class attribute
//!   property `enum_labels` at registration, where servers read them at start;
//! - writing an enum attribute: PyTango sends a DevShort, so `adminMode` takes the raw value and accepts both,
//!   and its reads and events carry the set point as an enum themselves.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use sdp_lmc::model::{AdminMode, HealthState, ObsState, OperatingState};
use sdp_lmc::{AttrValue, DevError, Lmc};
use serde_json::Value as Json;
use tango::dev::{AttrRead, AttrValueEvent, DevState};
use tango::error::{Error, ErrorKind, Result};
use tango::server::{AttrDef, ClassDef, CommandDef, Dev, ServerBuilder, ServerHandle};
use tango::value::{AttrDataKind, CommandDataKind, DevEnum, IntoValue, Value};

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
    /// An LMC future, polled by rstango's own thread inside the runtime's context. No thread is handed the
    /// request: a read only takes the LMC's locks, and a command's transaction is either an in-process call
    /// (`sdp up`'s embedded database) or I/O the runtime's drivers wake this future for (etcd).
    fn on_runtime<'a, T>(&'a self, lmc: impl Future<Output = T> + Send + 'a) -> impl Future<Output = T> + Send + 'a {
        let mut lmc = Box::pin(lmc);
        std::future::poll_fn(move |cx| {
            let _inside = self.runtime.enter();
            lmc.as_mut().poll(cx)
        })
    }

    async fn read(&self, attribute: &str) -> Result<AttrValue> {
        self.on_runtime(self.lmc.read_attribute(&self.name, attribute)).await.map_err(dev_failed)
    }

    /// An attribute's reading, converted as its events are ([`reading`]).
    async fn read_attr(&self, attribute: &'static str) -> Result<AttrRead<Value>> {
        let value = self.read(attribute).await?;
        reading(attribute, &value).ok_or_else(|| {
            Error::new(ErrorKind::Reason("API_AttrValueNotSet")).with_description(format!("{attribute} is {value:?}"))
        })
    }

    async fn state(&self) -> Result<DevState> {
        match self.read("State").await? {
            AttrValue::State { value } => Ok(tango_state(value)),
            other => {
                Err(Error::new(ErrorKind::Reason("API_AttrValueNotSet"))
                    .with_description(format!("State is {other:?}")))
            }
        }
    }

    async fn status(&self) -> Result<std::borrow::Cow<'_, str>> {
        match self.read("Status").await? {
            AttrValue::String { value } => Ok(value.into()),
            other => Ok(format!("{other:?}").into()),
        }
    }

    async fn write_admin_mode(&self, value: Value) -> Result<()> {
        let mode = DevEnum::try_from(&value).map(|e| e.0).or_else(|_| i16::try_from(&value))?;
        let mode = Json::from(mode);
        self.on_runtime(self.lmc.write_attribute(&self.name, "adminMode", &mode)).await.map_err(dev_failed)
    }

    /// Runs an LMC command; the device's change sink pushes its changes as they are published.
    async fn command(&self, command: &str, argin: &str) -> Result<()> {
        self.on_runtime(self.lmc.command(&self.name, command, argin)).await.map_err(dev_failed)
    }
}

/// The reading an event carries for an attribute's value; `None` for `Status`, which pushes no events.
/// `adminMode` carries its value as its set point too, as its reads do.
fn reading(attribute: &str, value: &AttrValue) -> Option<AttrRead<Value>> {
    let value = match value {
        AttrValue::State { value } => tango_state(value).into_value(),
        AttrValue::Enum { value, .. } => DevEnum(*value as i16).into_value(),
        AttrValue::String { .. } if attribute == "Status" => return None,
        AttrValue::String { value } => value.clone().into_value(),
    };
    let mut read = AttrRead::new(value);
    if attribute == "adminMode" {
        read.w_value = read.value.clone();
    }
    Some(read)
}

/// Pushes a change and an archive event of one attribute.
fn push(dev: &Dev<Device>, attribute: &str, value: &AttrValue) {
    let Some(read) = reading(attribute, value) else { return };
    for event in [AttrValueEvent::Change, AttrValueEvent::Archive] {
        if let Err(e) = dev.push_attr_event(attribute, event, Ok(read.clone())) {
            tracing::warn!(device = dev.name(), attribute, error = %e, "event not pushed");
        }
    }
}

fn model_init(
    lmc: Arc<Lmc>,
    runtime: tokio::runtime::Handle,
) -> impl Fn(&Dev<Device>) -> Result<Device> + Send + Sync + 'static {
    move |dev: &Dev<Device>| {
        let name = dev.name().to_string();
        let id =
            lmc.devices().into_iter().find(|d| d.name.eq_ignore_ascii_case(&name)).map(|d| d.id).ok_or_else(|| {
                Error::new(ErrorKind::Reason("API_DeviceNotFound")).with_description(format!("{name} is no SDP device"))
            })?;
        // A new model (the Init command) takes the place of the one before.
        let dev = dev.downgrade();
        lmc.on_change(&id, move |change| {
            if let Some(dev) = dev.upgrade() {
                push(&dev, change.attribute, &change.value);
            }
        });
        Ok(Device { lmc: Arc::clone(&lmc), runtime: runtime.clone(), name })
    }
}

/// An attribute the LMC serves, whose change and archive events the devices push themselves.
fn lmc_attr(name: &'static str, label: &'static str, kind: AttrDataKind) -> AttrDef<Device> {
    AttrDef::new(name)
        .label(label)
        .kind(kind)
        .scalar()
        .read_async_with(move |m: &Device, _: &Dev<Device>| Box::pin(m.read_attr(name)))
        .push_change_event(false)
        .push_archive_event(false)
}

fn enum_attr(name: &'static str, label: &'static str) -> AttrDef<Device> {
    lmc_attr(name, label, AttrDataKind::Enum)
}

/// A command without an argument.
fn lmc_command(name: &'static str) -> CommandDef<Device> {
    CommandDef::new(name).exec_async_with(move |m: &Device, _: &Dev<Device>, _: Value| {
        Box::pin(async move { m.command(name, "").await.map(|()| Value::Void) })
    })
}

fn subarray_class(lmc: Arc<Lmc>, runtime: tokio::runtime::Handle) -> ClassDef<Device> {
    let mut class = ClassDef::new("SDPSubarray", model_init(lmc, runtime))
        .doc("SDP subarray: resources, configuration and scans of one subarray")
        .state_async_with(|m: &Device, _: &Dev<Device>| Box::pin(m.state()))
        .status_async_with(|m: &Device, _: &Dev<Device>| Box::pin(m.status()))
        .push_state_events(Some(false), Some(false))
        .attr(enum_attr("obsState", "Obs State"))
        // Its reads carry the mode itself as the set point, given as an enum ([`reading`]): rstango would
        // otherwise keep the DevShort that PyTango wrote, and refuse to read back an enum with a short set point.
        .attr(enum_attr("adminMode", "Admin mode").write_exclusive_async_with(
            |m: &mut Device, _: &Dev<Device>, value: Value| Box::pin(async move { m.write_admin_mode(value).await }),
        ))
        .attr(enum_attr("healthState", "Health state"))
        .attr(lmc_attr("receiveAddresses", "Receive Addresses", AttrDataKind::String));
    for &name in sdp_lmc::subarray::Command::NAMES {
        class = class.command(match name {
            // Commands taking the original's JSON (or empty) string.
            "AssignResources" | "ReleaseResources" | "Configure" | "ConfigureScan" => CommandDef::new(name)
                .in_doc("JSON configuration string")
                .in_kind(CommandDataKind::String)
                .exec_async_with(move |m: &Device, _: &Dev<Device>, argin: Value| {
                    Box::pin(async move { m.command(name, &String::try_from(argin)?).await.map(|()| Value::Void) })
                }),
            _ => lmc_command(name),
        });
    }
    class
}

fn master_class(lmc: Arc<Lmc>, runtime: tokio::runtime::Handle) -> ClassDef<Device> {
    let mut class = ClassDef::new("SDPMaster", model_init(lmc, runtime))
        .doc("SDP master: the state of SDP as a whole")
        .state_async_with(|m: &Device, _: &Dev<Device>| Box::pin(m.state()))
        .status_async_with(|m: &Device, _: &Dev<Device>| Box::pin(m.status()))
        .push_state_events(Some(false), Some(false))
        .attr(enum_attr("OperatingState", "Operating state"))
        .attr(enum_attr("healthState", "Health state"));
    for &name in sdp_lmc::master::Command::NAMES {
        class = class.command(lmc_command(name));
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

/// Why the SDP devices cannot be served to Tango.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("TANGO_HOST={0:?} is not host:port: set it to the Tango database's address, as localhost:10000")]
    NotHostPort(String),
    #[error("cannot serve the SDP devices in the Tango database at {tango_host}: {reason}")]
    Serve { tango_host: String, reason: String },
    #[error("serving the SDP devices to Tango stopped halfway")]
    Interrupted(#[from] tokio::task::JoinError),
}

/// The Tango database `TANGO_HOST` names, as host and port: the first of a list, `host:port`.
pub fn database_address(tango_host: &str) -> std::result::Result<(String, u16), StartError> {
    tango_host
        .split(',')
        .next()
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| StartError::NotHostPort(tango_host.to_string()))
}

/// The address the servers tell clients to use: loopback for a Tango database on this machine (clients there
/// reach it), else empty, for rstango's default: this host as the Tango database sees it.
pub fn advertised_host(database_host: &str) -> &'static str {
    if database_host == "localhost" || database_host.starts_with("127.") {
        "127.0.0.1"
    } else {
        ""
    }
}

/// The SDP devices served to Tango; [`Running::stop`] unexports them.
pub struct Running {
    servers: TangoServers,
}

impl Running {
    pub async fn stop(self) {
        let _ = tokio::task::spawn_blocking(move || self.servers.stop()).await;
    }
}

/// Registers the SDP devices in the Tango database at `tango_host` (host:port) and serves them.
pub async fn start(tango_host: &str, lmc: Arc<Lmc>) -> std::result::Result<Running, StartError> {
    let (host, port) = database_address(tango_host)?;
    let runtime = tokio::runtime::Handle::current();
    let advertised = advertised_host(&host);
    let servers = tokio::task::spawn_blocking(move || serve(DatabaseProxy::new(&host, port), advertised, lmc, runtime))
        .await?
        .map_err(|e| StartError::Serve { tango_host: tango_host.to_string(), reason: e.to_string() })?;
    tracing::info!(tango_host, "SDP devices exported to Tango (SDPMaster/1, SDPSubarray/N)");
    Ok(Running { servers })
}

/// The SDP devices served to the Tango database `TANGO_HOST` names; without one, over HTTP only (None).
pub fn start_if_configured(lmc: &Arc<Lmc>) -> BoxFuture<'static, std::result::Result<Option<Running>, StartError>> {
    let lmc = Arc::clone(lmc);
    // Boxed: a future's body is compiled in every crate that polls it; boxed here, once, in this crate.
    Box::pin(start_from_environment(lmc))
}

async fn start_from_environment(lmc: Arc<Lmc>) -> std::result::Result<Option<Running>, StartError> {
    match std::env::var("TANGO_HOST") {
        Ok(tango_host) => Ok(Some(start(&tango_host, lmc).await?)),
        Err(_) => {
            tracing::info!("TANGO_HOST not set: the SDP devices are served over HTTP only");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tango_database_is_the_first_host_and_port_of_tango_host() {
        let parsed = |v: &str| database_address(v).map_err(|e| e.to_string());
        assert_eq!(parsed("localhost:10000"), Ok(("localhost".into(), 10000)));
        assert_eq!(parsed("tango-db.sdp:10000,backup:10000"), Ok(("tango-db.sdp".into(), 10000)));
        assert_eq!(parsed("[::1]:10000"), Ok(("[::1]".into(), 10000)));
        for wrong in ["localhost", "localhost:tango", "host:70000", ""] {
            let refused = parsed(wrong).unwrap_err();
            assert!(refused.starts_with(&format!("TANGO_HOST={wrong:?} is not host:port: set it")), "{refused}");
        }
    }

    #[test]
    fn servers_advertise_loopback_only_for_a_local_tango_database() {
        for (database, advertised) in
            [("localhost", "127.0.0.1"), ("127.0.0.1", "127.0.0.1"), ("127.0.1.1", "127.0.0.1"), ("tango-db", "")]
        {
            assert_eq!(advertised_host(database), advertised, "{database}");
        }
    }

    #[test]
    fn events_carry_tango_values_and_admin_mode_its_set_point() {
        let state = reading("State", &AttrValue::State { value: "ON" }).unwrap();
        assert_eq!(state.value, Some(DevState::On.into_value()));
        let obs = reading("obsState", &AttrValue::Enum { value: 2, label: "READY", labels: vec![] }).unwrap();
        assert_eq!((obs.value, obs.w_value), (Some(DevEnum(2).into_value()), None));
        let admin = reading("adminMode", &AttrValue::Enum { value: 1, label: "ONLINE", labels: vec![] }).unwrap();
        assert_eq!((admin.value.clone(), admin.w_value), (Some(DevEnum(1).into_value()), admin.value));
        let addresses = reading("receiveAddresses", &AttrValue::String { value: "{}".into() }).unwrap();
        assert_eq!(addresses.value, Some("{}".to_string().into_value()));
        assert!(reading("Status", &AttrValue::String { value: "The device is in ON state.".into() }).is_none());
    }
}
