//! Resource monitoring: NetworkAttachmentDefinitions (`k8s.cni.cncf.io/v1`) labelled
//! `sdp.skao.int/available-for-allocation=true` are published under `/resource` for the vis-receive script:
//! one `network-attachment-definition` entry each, and a `supernet` entry for those whose IPAM names a network.
//! Entries follow the objects: a label removed or an object deleted removes its entries.

use sdp_daemon::{Backoff, Policy};
use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde_json::{json, Value};

use sdp_config::keys::paths;
use sdp_config::{Config, Error};

pub const LABEL: &str = "sdp.skao.int/available-for-allocation";
pub const NAD_KIND: &str = "network-attachment-definition";
pub const SUPERNET_KIND: &str = "supernet";

pub fn api_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition");
    ApiResource::from_gvk_with_plural(&gvk, "network-attachment-definitions")
}

/// Kubernetes names may hold `.`, which configuration paths do not allow.
fn path_part(name: &str) -> String {
    name.replace('.', "_")
}

/// The `/resource` entries one NetworkAttachmentDefinition stands for (path → value).
pub fn resources_of(nad: &DynamicObject) -> BTreeMap<String, Value> {
    let mut entries = BTreeMap::new();
    let (Some(name), namespace) =
        (nad.metadata.name.as_deref(), nad.metadata.namespace.as_deref().unwrap_or("default"))
    else {
        return entries;
    };
    let id = format!("{}/{}", path_part(namespace), path_part(name));
    let raw = nad.data.get("spec").and_then(|s| s.get("config")).and_then(Value::as_str).unwrap_or("");
    // The CNI configuration is JSON in a string; kept as text when it is not.
    let config: Value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    entries.insert(
        paths::resource(NAD_KIND, &id),
        json!({"kind": NAD_KIND, "name": name, "namespace": namespace, "config": config}),
    );
    let ipam = config.get("ipam");
    let network = ipam.and_then(|i| i.get("range").or_else(|| i.get("subnet"))).and_then(Value::as_str);
    if let Some(network) = network {
        let field = |k: &str| ipam.and_then(|i| i.get(k)).cloned().unwrap_or(Value::Null);
        entries.insert(
            paths::resource(SUPERNET_KIND, &id),
            json!({
                "kind": SUPERNET_KIND,
                "network": network,
                "range_start": field("range_start"),
                "range_end": field("range_end"),
                "gateway": field("gateway"),
                "network_attachment_definition": format!("{namespace}/{name}"),
            }),
        );
    }
    entries
}

/// Makes the `/resource` entries of both kinds exactly `desired`, in one transaction.
pub async fn publish(config: &Config, desired: &BTreeMap<String, Value>) -> Result<(), Error> {
    config
        .txn(|t| async move {
            let mut existing = BTreeSet::new();
            for kind in [NAD_KIND, SUPERNET_KIND] {
                existing.extend(t.list_keys(&format!("{}/{kind}/", paths::RESOURCE), 2).await?);
            }
            for stale in existing.iter().filter(|p| !desired.contains_key(*p)) {
                t.delete(stale, false, false).await?;
            }
            for (path, value) in desired {
                t.put_json(path, value).await?;
            }
            Ok(())
        })
        .await
}

/// Watches the labelled NetworkAttachmentDefinitions of every namespace and publishes them, until dropped.
pub async fn monitor(client: Client, config: Config, metrics: crate::metrics::Metrics) {
    let api: Api<DynamicObject> = Api::all_with(client, &api_resource());
    let selector = format!("{LABEL}=true");
    let mut events = watcher::watcher(api, watcher::Config::default().labels(&selector)).boxed();
    let mut objects: BTreeMap<(String, String), DynamicObject> = BTreeMap::new();
    let mut relist: Option<BTreeMap<(String, String), DynamicObject>> = None;
    // Without the CRD the list fails until someone installs it: retry, ever more slowly (up to a minute).
    let mut backoff = Backoff::new(Policy::KUBERNETES_WATCH);
    let key = |o: &DynamicObject| {
        (o.metadata.namespace.clone().unwrap_or_default(), o.metadata.name.clone().unwrap_or_default())
    };
    loop {
        let publish_now = match events.next().await {
            Some(Ok(Event::Apply(o))) => {
                objects.insert(key(&o), o);
                true
            }
            Some(Ok(Event::Delete(o))) => objects.remove(&key(&o)).is_some(),
            Some(Ok(Event::Init)) => {
                relist = Some(BTreeMap::new());
                false
            }
            Some(Ok(Event::InitApply(o))) => {
                if let Some(r) = relist.as_mut() {
                    r.insert(key(&o), o);
                }
                false
            }
            Some(Ok(Event::InitDone)) => {
                objects = relist.take().unwrap_or_default();
                true
            }
            Some(Err(e)) => {
                metrics.watch_restart("network-attachment-definitions");
                let what = "the NetworkAttachmentDefinition watch (is the k8s.cni.cncf.io CRD installed?)";
                backoff.wait_after(what, &e).await;
                false
            }
            None => return,
        };
        if publish_now {
            backoff.succeeded();
            let desired: BTreeMap<String, Value> = objects.values().flat_map(resources_of).collect();
            if let Err(e) = publish(&config, &desired).await {
                tracing::warn!(error = %e, "cannot publish network resources");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nad(name: &str, config: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "sdp", "labels": {LABEL: "true"}},
            "spec": {"config": config}
        }))
        .unwrap()
    }

    #[test]
    fn a_whereabouts_network_gives_both_entries() {
        let config = r#"{"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0", "ipam": {"type": "whereabouts", "range": "192.168.10.0/24", "range_start": "192.168.10.10", "range_end": "192.168.10.200"}}"#;
        let entries = resources_of(&nad("vis.receive", config));
        let nad_entry = &entries["/resource/network-attachment-definition/sdp/vis_receive"];
        assert_eq!(nad_entry["name"], "vis.receive");
        assert_eq!(nad_entry["config"]["master"], "eth0");
        assert_eq!(
            entries["/resource/supernet/sdp/vis_receive"],
            json!({"kind": "supernet", "network": "192.168.10.0/24", "range_start": "192.168.10.10",
                   "range_end": "192.168.10.200", "gateway": null, "network_attachment_definition": "sdp/vis.receive"})
        );
    }

    #[test]
    fn without_a_network_or_valid_config_only_the_definition() {
        let entries = resources_of(&nad("plain", r#"{"type": "bridge"}"#));
        assert_eq!(entries.keys().collect::<Vec<_>>(), ["/resource/network-attachment-definition/sdp/plain"]);
        let broken = resources_of(&nad("broken", "{not json"));
        assert_eq!(broken["/resource/network-attachment-definition/sdp/broken"]["config"], "{not json");
    }
}
