//! The state a resource reports, decided from what the operator observed: pure functions.

use std::collections::HashSet;
use std::fmt;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;

use crate::spec::Dependency;

/// `status.state` of a DeviceServer or DatabaseDS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Objects made, pods not ready yet.
    Building,
    /// Dependencies not up; the StatefulSet is not made until they are.
    Waiting(String),
    /// The spec cannot run, or a pod failed.
    Error(String),
    /// A pod cannot be scheduled.
    Pending(String),
    /// Every replica is ready.
    Running,
}

impl State {
    pub fn label(&self) -> &'static str {
        match self {
            State::Building => "Building",
            State::Waiting(_) => "Waiting",
            State::Error(_) => "Error",
            State::Pending(_) => "Pending",
            State::Running => "Running",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Building | State::Running => f.write_str(self.label()),
            State::Waiting(why) | State::Error(why) | State::Pending(why) => write!(f, "{}({why})", self.label()),
        }
    }
}

/// Container waiting reasons that will not clear up by waiting.
const BROKEN_CONTAINER: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// State of a StatefulSet's workload from its status and its pods.
pub fn workload_state(statefulset: &StatefulSet, pods: &[Pod]) -> State {
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let Some(status) = &pod.status else { continue };
        let containers =
            status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
        for container in containers {
            let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
            if let Some(reason) = waiting.and_then(|w| w.reason.as_deref()).filter(|r| BROKEN_CONTAINER.contains(r)) {
                let message = waiting.and_then(|w| w.message.as_deref()).map(|m| format!(": {m}")).unwrap_or_default();
                return State::Error(format!("pod {name} container {}: {reason}{message}", container.name));
            }
        }
        match status.phase.as_deref() {
            Some("Failed") => {
                let why = status.message.as_deref().or(status.reason.as_deref()).unwrap_or("no reason given");
                return State::Error(format!("pod {name} failed: {why}"));
            }
            Some("Pending") => {
                let unschedulable =
                    status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False");
                if let Some(condition) = unschedulable {
                    let why = condition.message.as_deref().or(condition.reason.as_deref()).unwrap_or("unschedulable");
                    return State::Pending(format!("pod {name}: {why}"));
                }
            }
            _ => {}
        }
    }
    let wanted = statefulset.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = statefulset.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    if wanted > 0 && ready >= wanted {
        State::Running
    } else {
        State::Building
    }
}

/// Ready replicas of a StatefulSet.
pub fn ready_replicas(statefulset: &StatefulSet) -> i32 {
    statefulset.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
}

/// What the operator knows of the namespace around a DeviceServer.
#[derive(Debug, Default, Clone)]
pub struct Neighbourhood {
    /// DatabaseDS names and whether each is Running.
    pub databaseds: Vec<(String, bool)>,
    /// DeviceServer names, the devices each declares (lower case) and whether each is Running.
    pub deviceservers: Vec<(String, Vec<String>, bool)>,
    /// Endpoints (`host`, `port`) that accepted a connection.
    pub open_endpoints: HashSet<(String, u16)>,
}

/// The dependencies of DeviceServer `name` that are not up, each with the reason; empty when it may start.
/// `databaseds` is its Tango database host: when a DatabaseDS of that name is in the namespace it must be Running.
/// Device `sys/database/2` is the Tango database itself. Other devices must be declared by a Running DeviceServer
/// of the namespace.
pub fn unmet_dependencies(
    name: &str,
    databaseds: Option<&str>,
    dependencies: &[Dependency],
    around: &Neighbourhood,
) -> Vec<String> {
    let mut unmet = Vec::new();
    let database_name = databaseds.map(|d| d.split([':', '.']).next().unwrap_or(d));
    let database_running = |wanted: Option<&str>| match wanted {
        Some(wanted) => around.databaseds.iter().find(|(n, _)| n == wanted).is_none_or(|(_, running)| *running),
        // Any Tango database of the namespace will do; none at all means an external one.
        None => around.databaseds.is_empty() || around.databaseds.iter().any(|(_, running)| *running),
    };
    if !database_running(database_name) {
        unmet.push(format!("databaseds {} is not Running", database_name.unwrap_or_default()));
    }
    for dependency in dependencies {
        match dependency {
            Dependency::Device(device) if device.starts_with("sys/database/") => {
                if !database_running(database_name) && !unmet.iter().any(|u| u.starts_with("databaseds")) {
                    unmet.push(format!("{device}: the Tango database is not Running"));
                }
            }
            Dependency::Device(device) => {
                let server = around.deviceservers.iter().find(|(n, devices, _)| n != name && devices.contains(device));
                match server {
                    None => unmet.push(format!("{device} is not served by any DeviceServer of the namespace")),
                    Some((server, _, false)) => unmet.push(format!("{device} (DeviceServer {server}) is not Running")),
                    Some(_) => {}
                }
            }
            Dependency::Endpoint { host, port } => {
                if !around.open_endpoints.contains(&(host.clone(), *port)) {
                    unmet.push(format!("{host}:{port} does not accept connections"));
                }
            }
        }
    }
    unmet
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn statefulset(replicas: i32, ready: i32) -> StatefulSet {
        serde_json::from_value(
            json!({"spec": {"replicas": replicas, "selector": {}, "template": {}, "serviceName": "s"},
                                      "status": {"replicas": replicas, "readyReplicas": ready}}),
        )
        .unwrap()
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "deviceserver-x-0"}, "status": status})).unwrap()
    }

    #[test]
    fn workload_states_from_replicas_and_pods() {
        assert_eq!(workload_state(&statefulset(1, 0), &[]), State::Building);
        assert_eq!(workload_state(&statefulset(1, 1), &[pod(json!({"phase": "Running"}))]), State::Running);
        assert_eq!(workload_state(&statefulset(2, 1), &[]), State::Building);
        assert_eq!(workload_state(&statefulset(0, 0), &[]), State::Building);
        let unschedulable = pod(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes are available"}]}));
        assert_eq!(
            workload_state(&statefulset(1, 0), &[unschedulable]).to_string(),
            "Pending(pod deviceserver-x-0: 0/2 nodes are available)"
        );
        let scheduled = pod(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}));
        assert_eq!(workload_state(&statefulset(1, 0), &[scheduled]), State::Building);
        let crashing = pod(json!({"phase": "Running", "containerStatuses": [{"name": "deviceserver", "ready": false,
            "restartCount": 3, "image": "i", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff",
            "message": "back-off 40s"}}}]}));
        assert_eq!(
            workload_state(&statefulset(1, 0), &[crashing]).to_string(),
            "Error(pod deviceserver-x-0 container deviceserver: CrashLoopBackOff: back-off 40s)"
        );
        let failed = pod(json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(workload_state(&statefulset(1, 1), &[failed]).label(), "Error");
    }

    fn around() -> Neighbourhood {
        Neighbourhood {
            databaseds: vec![("tango-db".into(), true)],
            deviceservers: vec![("a".into(), vec!["x/y/1".into()], true), ("b".into(), vec!["x/y/2".into()], false)],
            open_endpoints: HashSet::from([("host".to_owned(), 80)]),
        }
    }

    #[test]
    fn dependencies_up_or_not() {
        let deps = |list: &[&str]| list.iter().map(|d| crate::spec::parse_dependency(d).unwrap()).collect::<Vec<_>>();
        let all_up = deps(&["x/y/1", "sys/database/2", "host:80"]);
        assert!(unmet_dependencies("c", Some("tango-db"), &all_up, &around()).is_empty());
        assert_eq!(
            unmet_dependencies("c", Some("tango-db"), &deps(&["x/y/2", "z/z/z", "host:81"]), &around()),
            [
                "x/y/2 (DeviceServer b) is not Running",
                "z/z/z is not served by any DeviceServer of the namespace",
                "host:81 does not accept connections",
            ]
        );
        let mut db_down = around();
        db_down.databaseds[0].1 = false;
        assert_eq!(
            unmet_dependencies("c", Some("tango-db:10000"), &[], &db_down),
            ["databaseds tango-db is not Running"]
        );
        // An external Tango database (no DatabaseDS of that name) is not waited for.
        assert!(unmet_dependencies("c", Some("elsewhere"), &deps(&["sys/database/2"]), &db_down).is_empty());
        // A server does not satisfy its own dependency.
        assert_eq!(unmet_dependencies("a", None, &deps(&["x/y/1"]), &around()).len(), 1);
    }
}
