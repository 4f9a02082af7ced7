//! The state a resource reports, decided from what the operator observed: pure functions.

use std::collections::{BTreeMap, HashSet};
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
    /// Devices asked through Tango, by (Tango database `host:port`, device): whether each is exported there and
    /// answers a ping, else why not.
    pub tango: BTreeMap<(String, String), Result<(), String>>,
}

/// The Tango database a device dependency is looked up in: the one its `tango://host:port/` names, else the
/// DeviceServer's own (`own_database`, `host:port`).
fn database_of(database: &Option<String>, own_database: &str) -> String {
    database.clone().unwrap_or_else(|| own_database.to_owned())
}

/// Whether a device dependency is one on the Tango database itself, which its DatabaseDS stands for.
fn is_database_device(device: &str, database: &Option<String>) -> bool {
    database.is_none() && device.starts_with("sys/database/")
}

/// The devices DeviceServer `name` depends on that only Tango can tell about, as (Tango database, device): those
/// no other DeviceServer of the namespace declares (served in another namespace, by plain charts or outside
/// Kubernetes) and those named with their Tango database (`tango://host:port/...`).
pub fn tango_checks(
    name: &str,
    own_database: &str,
    dependencies: &[Dependency],
    around: &Neighbourhood,
) -> Vec<(String, String)> {
    dependencies
        .iter()
        .filter_map(|dependency| match dependency {
            Dependency::Device { name: device, database } if !is_database_device(device, database) => {
                let declared = database.is_none() && namespace_server(name, device, around).is_some();
                (!declared).then(|| (database_of(database, own_database), device.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The other DeviceServer of the namespace that declares `device`, with whether it is Running.
fn namespace_server<'a>(name: &str, device: &str, around: &'a Neighbourhood) -> Option<(&'a str, bool)> {
    around
        .deviceservers
        .iter()
        .find(|(n, devices, _)| n != name && devices.iter().any(|d| d == device))
        .map(|(n, _, running)| (n.as_str(), *running))
}

/// The dependencies of DeviceServer `name` that are not up, each with the reason; empty when it may start.
/// `databaseds` is its Tango database host: when a DatabaseDS of that name is in the namespace it must be Running.
/// Device `sys/database/2` is the Tango database itself. A device another DeviceServer of the namespace declares
/// must be Running; any other must be exported in its Tango database (`own_database`, `host:port`, unless
/// `tango://host:port/` names one) and answer a ping ([`tango_checks`]).
pub fn unmet_dependencies(
    name: &str,
    databaseds: Option<&str>,
    own_database: &str,
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
            Dependency::Device { name: device, database } if is_database_device(device, database) => {
                if !database_running(database_name) && !unmet.iter().any(|u| u.starts_with("databaseds")) {
                    unmet.push(format!("{device}: the Tango database is not Running"));
                }
            }
            Dependency::Device { name: device, database } => {
                let server = database.is_none().then(|| namespace_server(name, device, around)).flatten();
                match server {
                    Some((server, false)) => unmet.push(format!("{device} (DeviceServer {server}) is not Running")),
                    Some(_) => {}
                    None => {
                        let database = database_of(database, own_database);
                        match around.tango.get(&(database.clone(), device.clone())) {
                            Some(Ok(())) => {}
                            Some(Err(why)) => unmet.push(format!("{device} (Tango database {database}): {why}")),
                            None => unmet.push(format!("{device} (Tango database {database}): not asked yet")),
                        }
                    }
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

    const OWN: &str = "tango-db.ns.svc.cluster.local:10000";

    fn around() -> Neighbourhood {
        Neighbourhood {
            databaseds: vec![("tango-db".into(), true)],
            deviceservers: vec![("a".into(), vec!["x/y/1".into()], true), ("b".into(), vec!["x/y/2".into()], false)],
            open_endpoints: HashSet::from([("host".to_owned(), 80)]),
            tango: BTreeMap::from([
                ((OWN.to_owned(), "p/q/1".to_owned()), Ok(())),
                (("db.example.org:10000".to_owned(), "x/y/2".to_owned()), Ok(())),
                ((OWN.to_owned(), "p/q/2".to_owned()), Err("not exported".to_owned())),
            ]),
        }
    }

    fn deps(list: &[&str]) -> Vec<Dependency> {
        list.iter().map(|d| crate::spec::parse_dependency(d).unwrap()).collect()
    }

    #[test]
    fn dependencies_up_or_not() {
        let all_up = deps(&["x/y/1", "sys/database/2", "host:80", "p/q/1", "tango://db.example.org:10000/x/y/2"]);
        assert!(unmet_dependencies("c", Some("tango-db"), OWN, &all_up, &around()).is_empty());
        assert_eq!(
            unmet_dependencies("c", Some("tango-db"), OWN, &deps(&["x/y/2", "p/q/2", "z/z/z", "host:81"]), &around()),
            [
                "x/y/2 (DeviceServer b) is not Running",
                "p/q/2 (Tango database tango-db.ns.svc.cluster.local:10000): not exported",
                "z/z/z (Tango database tango-db.ns.svc.cluster.local:10000): not asked yet",
                "host:81 does not accept connections",
            ]
        );
        let mut db_down = around();
        db_down.databaseds[0].1 = false;
        assert_eq!(
            unmet_dependencies("c", Some("tango-db:10000"), OWN, &[], &db_down),
            ["databaseds tango-db is not Running"]
        );
        // An external Tango database (no DatabaseDS of that name) is not waited for.
        assert!(unmet_dependencies("c", Some("elsewhere"), OWN, &deps(&["sys/database/2"]), &db_down).is_empty());
        // A server does not satisfy its own dependency: Tango is asked about it.
        assert_eq!(
            unmet_dependencies("a", None, OWN, &deps(&["x/y/1"]), &around()),
            ["x/y/1 (Tango database tango-db.ns.svc.cluster.local:10000): not asked yet"]
        );
    }

    #[test]
    fn tango_is_asked_about_devices_no_deviceserver_of_the_namespace_declares() {
        let asked = tango_checks(
            "c",
            OWN,
            &deps(&["x/y/1", "x/y/2", "p/q/1", "sys/database/2", "tango://db.example.org:10000/x/y/1", "host:80"]),
            &around(),
        );
        assert_eq!(
            asked,
            [(OWN.to_owned(), "p/q/1".to_owned()), ("db.example.org:10000".to_owned(), "x/y/1".to_owned()),]
        );
    }
}
