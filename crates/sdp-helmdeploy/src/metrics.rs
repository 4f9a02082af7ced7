//! The deployer's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HelmCall {
    /// install, upgrade, uninstall, template
    pub verb: String,
    /// ok or error
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchName {
    /// deploy, pods, network-attachment-definitions
    pub watch: String,
}

#[derive(Clone, Default)]
pub struct Metrics {
    pub helm_calls: Family<HelmCall, Counter>,
    pub reconciles: Counter,
    pub watch_restarts: Family<WatchName, Counter>,
}

impl Metrics {
    /// Metrics registered under `sdp_helmdeploy_` in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("sdp_helmdeploy");
        r.register("helm_calls", "helm commands run, by verb and result", m.helm_calls.clone());
        r.register("reconciles", "passes over the /deploy entries", m.reconciles.clone());
        r.register("watch_restarts", "watches restarted after an error", m.watch_restarts.clone());
        m
    }

    pub fn helm_call(&self, verb: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.helm_calls.get_or_create(&HelmCall { verb: verb.into(), result: result.into() }).inc();
    }

    pub fn watch_restart(&self, watch: &str) {
        self.watch_restarts.get_or_create(&WatchName { watch: watch.into() }).inc();
    }
}
