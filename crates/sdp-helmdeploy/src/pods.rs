//! Pod monitoring: one watch on the processing namespace; each pod belongs to the deployment (Helm release)
//! named by its `app.kubernetes.io/instance` label (or the older `release` label), and its status is a pure
//! function of its phase and conditions. The pods of each deployment go into `/deploy/<id>/state` under `pods`.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use sdp_config::{Config, StateUpdate, Status};
use sdp_daemon::{Backoff, Policy};

/// The status of a pod from its phase and conditions.
pub fn pod_status(pod: &Pod) -> Status {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let deleting = pod.metadata.deletion_timestamp.is_some();
    match phase {
        Some("Succeeded") => Status::Finished,
        Some("Failed") => Status::Failed,
        _ if deleting => Status::Cancelled,
        Some("Running") if ready => Status::Running,
        Some("Running") | Some("Pending") => Status::Pending,
        _ => Status::Unset,
    }
}

/// The deployment (Helm release) a pod belongs to.
pub fn deployment_of(pod: &Pod) -> Option<String> {
    let labels = pod.metadata.labels.as_ref()?;
    labels.get("app.kubernetes.io/instance").or_else(|| labels.get("release")).cloned()
}

/// The pods known per deployment: what the state entries should say.
#[derive(Debug, Default, PartialEq)]
pub struct PodTable {
    pods: BTreeMap<String, BTreeMap<String, Status>>,
    /// Pods seen during a re-list, to drop the ones that vanished meanwhile.
    relisting: Option<BTreeMap<String, BTreeMap<String, Status>>>,
}

impl PodTable {
    /// Folds one watch event in; returns the deployments whose pods changed.
    pub fn apply(&mut self, event: Event<Pod>) -> BTreeSet<String> {
        let mut changed = BTreeSet::new();
        match event {
            Event::Apply(pod) => self.upsert(&pod, &mut changed),
            Event::Delete(pod) => {
                if let (Some(deploy), Some(name)) = (deployment_of(&pod), pod.metadata.name.as_ref()) {
                    if let Some(pods) = self.pods.get_mut(&deploy) {
                        if pods.remove(name).is_some() {
                            changed.insert(deploy.clone());
                        }
                        if pods.is_empty() {
                            self.pods.remove(&deploy);
                        }
                    }
                }
            }
            Event::Init => self.relisting = Some(BTreeMap::new()),
            Event::InitApply(pod) => {
                if let (Some(relist), Some(deploy), Some(name)) =
                    (self.relisting.as_mut(), deployment_of(&pod), pod.metadata.name.clone())
                {
                    relist.entry(deploy).or_default().insert(name, pod_status(&pod));
                }
            }
            Event::InitDone => {
                let fresh = self.relisting.take().unwrap_or_default();
                let all: BTreeSet<&String> = fresh.keys().chain(self.pods.keys()).collect();
                for deploy in all {
                    if fresh.get(deploy) != self.pods.get(deploy) {
                        changed.insert(deploy.clone());
                    }
                }
                self.pods = fresh;
            }
        }
        changed
    }

    fn upsert(&mut self, pod: &Pod, changed: &mut BTreeSet<String>) {
        let (Some(deploy), Some(name)) = (deployment_of(pod), pod.metadata.name.clone()) else { return };
        let status = pod_status(pod);
        let pods = self.pods.entry(deploy.clone()).or_default();
        if pods.insert(name, status) != Some(status) {
            changed.insert(deploy);
        }
    }

    /// The pods of a deployment, by name.
    pub fn pods_of(&self, deploy_id: &str) -> BTreeMap<String, Status> {
        self.pods.get(deploy_id).cloned().unwrap_or_default()
    }
}

/// Watches the pods of `namespace` and keeps the deployments' state entries up to date, until dropped.
pub async fn monitor(client: Client, namespace: String, config: Config, metrics: crate::metrics::Metrics) {
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let mut table = PodTable::default();
    let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut backoff = Backoff::new(Policy::KUBERNETES_WATCH);
    loop {
        match events.next().await {
            Some(Ok(event)) => {
                backoff.succeeded();
                for deploy_id in table.apply(event) {
                    config.record_deployment_state(&deploy_id, StateUpdate::pods(&table.pods_of(&deploy_id))).await;
                }
            }
            Some(Err(e)) => {
                // The watcher retries by itself on the next poll; say why, and do not spin.
                metrics.watch_restart("pods");
                backoff.wait_after(&format!("the pod watch of {namespace}"), &e).await;
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, release: &str, phase: Option<&str>, ready: Option<&str>, deleting: bool) -> Pod {
        let mut v = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "sdp", "labels": {"app.kubernetes.io/instance": release}},
            "status": {}
        });
        if let Some(p) = phase {
            v["status"]["phase"] = json!(p);
        }
        if let Some(r) = ready {
            v["status"]["conditions"] =
                json!([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": r}]);
        }
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_phase_and_condition() {
        use Status::*;
        let cases = [
            (None, None, false, Unset),
            (Some("Unknown"), None, false, Unset),
            (Some("Pending"), None, false, Pending),
            (Some("Pending"), Some("False"), false, Pending),
            (Some("Running"), None, false, Pending),
            (Some("Running"), Some("False"), false, Pending),
            (Some("Running"), Some("True"), false, Running),
            (Some("Running"), Some("True"), true, Cancelled),
            (Some("Pending"), None, true, Cancelled),
            (Some("Succeeded"), None, false, Finished),
            (Some("Succeeded"), None, true, Finished),
            (Some("Failed"), Some("False"), false, Failed),
            (Some("Failed"), None, true, Failed),
        ];
        for (phase, ready, deleting, expected) in cases {
            assert_eq!(pod_status(&pod("p", "d", phase, ready, deleting)), expected, "{phase:?} {ready:?} {deleting}");
        }
    }

    #[test]
    fn pods_map_to_their_release() {
        let p = pod("p", "pb-1-workflow", None, None, false);
        assert_eq!(deployment_of(&p).as_deref(), Some("pb-1-workflow"));
        let mut legacy = p.clone();
        legacy.metadata.labels = Some([("release".to_string(), "old".to_string())].into());
        assert_eq!(deployment_of(&legacy).as_deref(), Some("old"));
        legacy.metadata.labels = None;
        assert_eq!(deployment_of(&legacy), None);
    }

    #[test]
    fn table_follows_events_and_relists() {
        let mut t = PodTable::default();
        let changed = t.apply(Event::Apply(pod("a-1", "a", Some("Pending"), None, false)));
        assert_eq!(changed, ["a".to_string()].into());
        assert!(t.apply(Event::Apply(pod("a-1", "a", Some("Pending"), None, false))).is_empty());
        t.apply(Event::Apply(pod("a-1", "a", Some("Running"), Some("True"), false)));
        t.apply(Event::Apply(pod("b-1", "b", Some("Running"), Some("True"), false)));
        assert_eq!(t.pods_of("a"), BTreeMap::from([("a-1".to_string(), Status::Running)]));
        assert_eq!(t.apply(Event::Delete(pod("a-1", "a", None, None, false))), ["a".to_string()].into());
        assert_eq!(t.pods_of("a"), BTreeMap::new());
        // A re-list (after a lost watch) drops what vanished meanwhile and reports it.
        t.apply(Event::Init);
        t.apply(Event::InitApply(pod("c-1", "c", Some("Failed"), None, false)));
        let changed = t.apply(Event::InitDone);
        assert_eq!(changed, ["b".to_string(), "c".to_string()].into());
        assert_eq!(t.pods_of("b"), BTreeMap::new());
        assert_eq!(t.pods_of("c"), BTreeMap::from([("c-1".to_string(), Status::Failed)]));
    }
}
