//! The devices' Prometheus metrics: commands by device, command and result, and the change events published.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::error::DevError;
use crate::error::ErrorKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// `master`, `subarray_1`, ...
    pub device: String,
    pub command: String,
    /// `ok`, `refused` (the device's state or the argument), `failed` (the configuration database) or
    /// `not_found`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub device: String,
    pub attribute: String,
}

/// Counters of the devices; [`Metrics::default`] counts without being served.
#[derive(Clone, Default)]
pub struct Metrics {
    pub commands: Family<CommandLabels, Counter>,
    pub events: Family<EventLabels, Counter>,
}

impl Metrics {
    /// Metrics registered under `sdp_lmc_` in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("sdp_lmc");
        r.register("commands", "device commands run, by device, command and result", m.commands.clone());
        r.register("events", "change events published, by device and attribute", m.events.clone());
        m
    }

    pub(crate) fn command(&self, device: &str, command: &str, outcome: &Result<(), DevError>) {
        let result = match outcome {
            Ok(()) => "ok",
            Err(e) => match e.kind {
                ErrorKind::NotAllowed | ErrorKind::BadArgument => "refused",
                ErrorKind::Failed => "failed",
                ErrorKind::NotFound => "not_found",
            },
        };
        let labels =
            CommandLabels { device: device.to_owned(), command: command.to_owned(), result: result.to_owned() };
        self.commands.get_or_create(&labels).inc();
    }

    pub(crate) fn event(&self, device: &str, attribute: &str) {
        let labels = EventLabels { device: device.to_owned(), attribute: attribute.to_owned() };
        self.events.get_or_create(&labels).inc();
    }
}
