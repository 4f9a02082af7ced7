//! The Kubernetes objects a resource asks for: pure functions of the resource and the operator's settings.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::crd::{DatabaseDS, DeviceServer};
use crate::spec::DEVICESERVER_PREFIX;

/// Where the ConfigMap's files are mounted in the containers.
pub const SCRIPTS_DIR: &str = "/etc/tango-operator";
/// The Tango database device server's port (the port of `TANGO_HOST`).
pub const DATABASEDS_PORT: i32 = 10000;
const TANGODB_PORT: i32 = 3306;
/// Device server ports in legacy compatibility: server, ZMQ heartbeat, ZMQ events.
const SERVER_PORT: i32 = 45450;
const HEARTBEAT_PORT: i32 = 45460;
const EVENT_PORT: i32 = 45470;

/// Operator-wide choices the resources do not carry.
#[derive(Debug, Clone)]
pub struct Settings {
    /// MariaDB image with the Tango schema.
    pub tangodb_image: String,
    /// Image with the DataBaseds server.
    pub databaseds_image: String,
    /// Size of the Tango DB's PersistentVolumeClaim.
    pub tangodb_storage: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tangodb_image: "artefact.skao.int/ska-tango-images-tango-db:11.0.2".into(),
            databaseds_image: "artefact.skao.int/ska-tango-images-tango-databaseds:5.22.2".into(),
            tangodb_storage: "1Gi".into(),
        }
    }
}

/// Everything a DatabaseDS makes. The DataBaseds StatefulSet is applied once the Tango DB is ready.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseDsObjects {
    pub config_map: ConfigMap,
    pub tangodb_claim: Option<PersistentVolumeClaim>,
    pub tangodb_service: Service,
    pub tangodb: StatefulSet,
    pub databaseds_service: Service,
    pub databaseds: StatefulSet,
}

/// Everything a DeviceServer makes. The StatefulSet is applied once its dependencies are up.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceServerObjects {
    pub config_map: ConfigMap,
    pub service: Service,
    pub statefulset: StatefulSet,
}

pub const DEVICESERVER_MANAGER: &str = "DeviceServerController";
pub const DATABASEDS_MANAGER: &str = "DatabaseDSController";

/// Labels of every object a resource makes; the first two also select its pods.
pub fn labels(app: &str, instance: &str, manager: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), app.to_owned()),
        ("app.kubernetes.io/instance".to_owned(), instance.to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), manager.to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "ska-tango-operator".to_owned()),
    ])
}

/// The label selector (`name=...,instance=...`) of the pods of one of a resource's StatefulSets.
pub fn pod_selector(app: &str, instance: &str) -> String {
    format!("app.kubernetes.io/name={app},app.kubernetes.io/instance={instance}")
}

fn selector(app: &str, instance: &str) -> Value {
    json!({"app.kubernetes.io/name": app, "app.kubernetes.io/instance": instance})
}

fn metadata(name: &str, namespace: &str, labels: &BTreeMap<String, String>, owner: &OwnerReference) -> Value {
    json!({"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner]})
}

fn typed<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("the operator's object templates match the Kubernetes types")
}

fn owner<K: Resource<DynamicType = ()>>(resource: &K) -> OwnerReference {
    resource.controller_owner_ref(&()).expect("resources come from the API server and have a uid")
}

fn domain(cluster_domain: &Option<String>) -> &str {
    cluster_domain.as_deref().filter(|d| !d.is_empty()).unwrap_or("cluster.local")
}

/// `TANGO_HOST` for a DeviceServer: `databaseds` with the namespace's service domain when it is a bare name,
/// and port 10000 unless it has one.
/// The Tango database of a DeviceServer (`host:port`): its `databaseds`, else `databaseds-tango-base`, of its
/// namespace.
pub fn deviceserver_tango_host(ds: &DeviceServer) -> String {
    let databaseds = ds.spec.databaseds.as_deref().unwrap_or("databaseds-tango-base");
    tango_host(databaseds, &ds.namespace().unwrap_or_default(), domain(&ds.spec.cluster_domain))
}

pub fn tango_host(databaseds: &str, namespace: &str, cluster_domain: &str) -> String {
    let (host, port) = databaseds.split_once(':').unwrap_or((databaseds, ""));
    let host = if host.contains('.') { host.to_owned() } else { format!("{host}.{namespace}.svc.{cluster_domain}") };
    let port = if port.is_empty() { DATABASEDS_PORT.to_string() } else { port.to_owned() };
    format!("{host}:{port}")
}

pub fn databaseds_objects(db: &DatabaseDS, settings: &Settings) -> DatabaseDsObjects {
    let name = db.name_any();
    let ns = db.namespace().unwrap_or_default();
    let owner = owner(db);
    let domain = domain(&db.spec.cluster_domain);
    let pull = db.spec.image_pull_policy.clone().unwrap_or_else(|| "IfNotPresent".into());
    let use_pv = db.spec.use_pv.unwrap_or(false);
    // The resource's images, else the operator's.
    let image = |own: &Option<String>, default: &str| {
        own.as_deref().map(str::trim).filter(|i| !i.is_empty()).unwrap_or(default).to_owned()
    };
    let tangodb_image = image(&db.spec.tango_db_image, &settings.tangodb_image);
    let databaseds_image = image(&db.spec.database_ds_image, &settings.databaseds_image);
    let config_name = format!("databaseds-{name}");
    let tangodb_name = format!("databaseds-tangodb-{name}");
    let ds_name = format!("databaseds-ds-{name}");
    let config_labels = labels("databaseds", &name, DATABASEDS_MANAGER);
    let tangodb_labels = labels("databaseds-tangodb", &name, DATABASEDS_MANAGER);
    let ds_labels = labels("databaseds-ds", &name, DATABASEDS_MANAGER);
    let publish_host = format!("{name}.{ns}.svc.{domain}");
    let credentials = [("MYSQL_DATABASE", "tango"), ("MYSQL_USER", "tango"), ("MYSQL_PASSWORD", "tango")]
        .map(|(name, value)| json!({"name": name, "value": value}));

    let config_map = typed(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": metadata(&config_name, &ns, &config_labels, &owner),
        "data": {
            "start-databaseds-tangodb.sh": "#!/bin/sh\n\
                # Tango DB entrypoint: MariaDB with the Tango schema, data in /var/lib/mysql.\n\
                exec docker-entrypoint.sh mysqld\n",
            "start-databaseds.sh": format!("#!/bin/sh\n\
                # DataBaseds entrypoint: the Tango database device server on port {DATABASEDS_PORT}, published under\n\
                # the Service named like the DatabaseDS. The operator starts it once the Tango DB is ready.\n\
                exec /usr/local/bin/DataBaseds 2 -ORBendPoint giop:tcp::{DATABASEDS_PORT} \
                -ORBendPointPublish giop:tcp:${{TANGO_SERVER_PUBLISH_HOSTNAME}}:{DATABASEDS_PORT}\n"),
            "config.json": serde_json::to_string_pretty(&json!({
                "servers": {"DataBaseds": {"2": {"DataBase": {"sys/database/2": {}}}}}
            })).expect("JSON"),
        }
    }));
    let storage_volume = if use_pv {
        json!({"name": "data", "persistentVolumeClaim": {"claimName": tangodb_name}})
    } else {
        json!({"name": "data", "emptyDir": {}})
    };
    let scripts_volume = json!({"name": "scripts", "configMap": {"name": config_name, "defaultMode": 0o555}});
    let tangodb_claim = use_pv.then(|| {
        let mut spec = json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": settings.tangodb_storage}},
        });
        if let Some(class) = db.spec.tango_db_storage_class.as_deref().filter(|c| !c.is_empty()) {
            spec["storageClassName"] = json!(class);
        }
        typed(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": metadata(&tangodb_name, &ns, &tangodb_labels, &owner),
            "spec": spec,
        }))
    });
    let tangodb_service = typed(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": metadata(&tangodb_name, &ns, &tangodb_labels, &owner),
        "spec": {
            "selector": selector("databaseds-tangodb", &name),
            "ports": [{"name": "mysql", "port": TANGODB_PORT, "targetPort": TANGODB_PORT}],
        }
    }));
    let tangodb = typed(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": metadata(&tangodb_name, &ns, &tangodb_labels, &owner),
        "spec": {
            "replicas": 1,
            "serviceName": tangodb_name,
            "selector": {"matchLabels": selector("databaseds-tangodb", &name)},
            "template": {
                "metadata": {"labels": tangodb_labels},
                "spec": {
                    "containers": [{
                        "name": "tangodb",
                        "image": tangodb_image,
                        "imagePullPolicy": pull,
                        "command": ["/bin/sh", format!("{SCRIPTS_DIR}/start-databaseds-tangodb.sh")],
                        "env": [
                            {"name": "MYSQL_ROOT_PASSWORD", "value": "secret"},
                            credentials[0], credentials[1], credentials[2],
                        ],
                        "ports": [{"name": "mysql", "containerPort": TANGODB_PORT}],
                        "readinessProbe": {"tcpSocket": {"port": TANGODB_PORT}, "periodSeconds": 5},
                        "livenessProbe": {
                            "tcpSocket": {"port": TANGODB_PORT}, "initialDelaySeconds": 30, "periodSeconds": 10
                        },
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/var/lib/mysql"},
                            {"name": "scripts", "mountPath": SCRIPTS_DIR},
                        ],
                    }],
                    "volumes": [storage_volume, scripts_volume],
                }
            }
        }
    }));
    let service_type = if db.spec.enable_load_balancer.unwrap_or(false) { "LoadBalancer" } else { "ClusterIP" };
    let databaseds_service = typed(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": metadata(&name, &ns, &ds_labels, &owner),
        "spec": {
            "type": service_type,
            "selector": selector("databaseds-ds", &name),
            "ports": [{"name": "ds", "port": DATABASEDS_PORT, "targetPort": DATABASEDS_PORT}],
        }
    }));
    let databaseds = typed(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": metadata(&ds_name, &ns, &ds_labels, &owner),
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": selector("databaseds-ds", &name)},
            "template": {
                "metadata": {"labels": ds_labels},
                "spec": {
                    "containers": [{
                        "name": "ds",
                        "image": databaseds_image,
                        "imagePullPolicy": pull,
                        "command": ["/bin/sh", format!("{SCRIPTS_DIR}/start-databaseds.sh")],
                        "env": [
                            {"name": "MYSQL_HOST", "value": format!("{tangodb_name}:{TANGODB_PORT}")},
                            credentials[0], credentials[1], credentials[2],
                            {"name": "TANGO_SERVER_PUBLISH_HOSTNAME", "value": publish_host},
                        ],
                        "ports": [{"name": "ds", "containerPort": DATABASEDS_PORT}],
                        "readinessProbe": {"tcpSocket": {"port": DATABASEDS_PORT}, "periodSeconds": 5},
                        "livenessProbe": {
                            "tcpSocket": {"port": DATABASEDS_PORT}, "initialDelaySeconds": 30, "periodSeconds": 10
                        },
                        "volumeMounts": [{"name": "scripts", "mountPath": SCRIPTS_DIR}],
                    }],
                    "volumes": [scripts_volume],
                }
            }
        }
    }));
    DatabaseDsObjects { config_map, tangodb_claim, tangodb_service, tangodb, databaseds_service, databaseds }
}

/// The objects of a DeviceServer whose spec passed [`crate::spec::validate`].
pub fn deviceserver_objects(ds: &DeviceServer) -> DeviceServerObjects {
    let name = ds.name_any();
    let ns = ds.namespace().unwrap_or_default();
    let owner = owner(ds);
    let spec = &ds.spec;
    let domain = domain(&spec.cluster_domain);
    let object_name = format!("{DEVICESERVER_PREFIX}{name}");
    let labels = labels("deviceserver", &name, DEVICESERVER_MANAGER);
    let legacy = spec.legacy_compatibility.unwrap_or(true);
    let publish_host = format!("{object_name}.{ns}.svc.{domain}");
    let args = spec.args.as_deref().unwrap_or("").trim();

    let mut data = BTreeMap::new();
    let program = match (spec.command.as_deref().filter(|c| !c.trim().is_empty()), &spec.script) {
        (Some(command), _) => command.trim().to_owned(),
        (None, script) => {
            let file = format!("{}.py", spec.dsname);
            data.insert(file.clone(), script.clone().unwrap_or_default());
            format!("python3 {SCRIPTS_DIR}/{file}")
        }
    };
    let endpoint = if legacy {
        format!(
            " -ORBendPoint giop:tcp::{SERVER_PORT} -ORBendPointPublish giop:tcp:${{TANGO_SERVER_PUBLISH_HOSTNAME}}:{SERVER_PORT}"
        )
    } else {
        String::new()
    };
    let register = if spec.config.as_deref().is_some_and(|c| !c.trim().is_empty()) {
        data.insert("config.json".to_owned(), spec.config.clone().unwrap_or_default());
        format!(
            "# Register the server's devices and properties in the Tango database (json2tango exits 2 when it\n\
             # changed something). An image without json2tango runs a server that registers itself.\n\
             if command -v json2tango >/dev/null; then\n\
             \x20 json2tango -w -a -u {SCRIPTS_DIR}/config.json || [ $? -eq 2 ]\n\
             fi\n"
        )
    } else {
        String::new()
    };
    data.insert(
        "start-deviceserver.sh".to_owned(),
        format!(
            "#!/bin/sh\n\
             # Entrypoint of device server {dsname}/{args}. The operator starts it once its dependencies are up.\n\
             set -e\n{register}exec {program} {args}{endpoint}\n",
            dsname = spec.dsname,
        ),
    );
    let config_map = typed(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": metadata(&object_name, &ns, &labels, &owner),
        "data": data,
    }));

    let service_type = if spec.enable_load_balancer.unwrap_or(false) { "LoadBalancer" } else { "ClusterIP" };
    let ports = [("server", SERVER_PORT), ("heartbeat", HEARTBEAT_PORT), ("event", EVENT_PORT)];
    let service = typed(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": metadata(&object_name, &ns, &labels, &owner),
        "spec": {
            "type": service_type,
            "selector": selector("deviceserver", &name),
            "ports": ports.map(|(n, p)| json!({"name": n, "port": p, "targetPort": p})),
        }
    }));

    let mut env = vec![
        json!({"name": "TANGO_HOST", "value": deviceserver_tango_host(ds)}),
        json!({"name": "TANGO_SERVER_PUBLISH_HOSTNAME", "value": publish_host}),
    ];
    if legacy {
        env.extend([
            json!({"name": "TANGO_SERVER_PORT", "value": SERVER_PORT.to_string()}),
            json!({"name": "TANGO_ZMQ_HEARTBEAT_PORT", "value": HEARTBEAT_PORT.to_string()}),
            json!({"name": "TANGO_ZMQ_EVENT_PORT", "value": EVENT_PORT.to_string()}),
        ]);
    }
    env.extend(spec.env.iter().flatten().map(|e| json!(e)));
    let mut mounts = vec![json!({"name": "tango-operator-scripts", "mountPath": SCRIPTS_DIR})];
    mounts.extend(spec.volume_mounts.iter().flatten().map(|m| json!(m)));
    let mut volumes =
        vec![json!({"name": "tango-operator-scripts", "configMap": {"name": object_name, "defaultMode": 0o555}})];
    volumes.extend(spec.volumes.iter().flatten().map(|v| json!(v)));

    let mut container = json!({
        "name": "deviceserver",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy.as_deref().unwrap_or("IfNotPresent"),
        "command": ["/bin/sh", format!("{SCRIPTS_DIR}/start-deviceserver.sh")],
        "env": env,
        "ports": ports.map(|(n, p)| json!({"name": n, "containerPort": p})),
        "volumeMounts": mounts,
    });
    if legacy {
        container["readinessProbe"] = json!({"tcpSocket": {"port": SERVER_PORT}, "periodSeconds": 5});
        container["livenessProbe"] =
            json!({"tcpSocket": {"port": SERVER_PORT}, "initialDelaySeconds": 30, "periodSeconds": 10});
    }
    let hook = |command: &Option<String>| {
        command.as_deref().filter(|c| !c.trim().is_empty()).map(|c| json!({"exec": {"command": ["/bin/sh", "-c", c]}}))
    };
    let mut lifecycle = serde_json::Map::new();
    if let Some(post_start) = hook(&spec.post_start) {
        lifecycle.insert("postStart".into(), post_start);
    }
    if let Some(pre_stop) = hook(&spec.pre_stop) {
        lifecycle.insert("preStop".into(), pre_stop);
    }
    if !lifecycle.is_empty() {
        container["lifecycle"] = Value::Object(lifecycle);
    }
    if let Some(resources) = &spec.resources {
        container["resources"] = json!(resources);
    }
    if let Some(security) = &spec.security_context {
        container["securityContext"] = json!(security);
    }
    let mut pod = json!({"containers": [container], "volumes": volumes});
    if let Some(node_selector) = &spec.node_selector {
        pod["nodeSelector"] = json!(node_selector);
    }
    if let Some(affinity) = &spec.affinity {
        pod["affinity"] = json!(affinity);
    }
    if let Some(tolerations) = &spec.tolerations {
        pod["tolerations"] = json!(tolerations);
    }
    let statefulset = typed(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": metadata(&object_name, &ns, &labels, &owner),
        "spec": {
            "replicas": 1,
            "serviceName": object_name,
            "selector": {"matchLabels": selector("deviceserver", &name)},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        }
    }));
    DeviceServerObjects { config_map, service, statefulset }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tango_host_completes_bare_names_and_keeps_ports() {
        assert_eq!(tango_host("tango-db", "ska", "cluster.local"), "tango-db.ska.svc.cluster.local:10000");
        assert_eq!(tango_host("tango-db:10001", "ska", "cl"), "tango-db.ska.svc.cl:10001");
        assert_eq!(tango_host("db.example.org", "ska", "cl"), "db.example.org:10000");
    }

    fn image_of(set: &k8s_openapi::api::apps::v1::StatefulSet) -> String {
        let pod = set.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        pod.containers[0].image.clone().unwrap()
    }

    #[test]
    fn a_databaseds_names_its_images_else_the_operators_are_used() {
        let resource = |spec: serde_json::Value| -> DatabaseDS {
            serde_json::from_value(json!({
                "apiVersion": "tango.tango-controls.org/v1", "kind": "DatabaseDS",
                "metadata": {"name": "tango", "namespace": "ska", "uid": "6f1c2a9e-0000-4000-8000-000000000001"},
                "spec": spec,
            }))
            .unwrap()
        };
        let settings = Settings::default();
        let defaults = databaseds_objects(&resource(json!({})), &settings);
        assert_eq!(image_of(&defaults.tangodb), settings.tangodb_image);
        assert_eq!(image_of(&defaults.databaseds), settings.databaseds_image);
        let own = databaseds_objects(
            &resource(json!({"tangoDBImage": "ska-sdp-tangodb:0.1.0", "databaseDSImage": "ska-sdp-databaseds:0.1.0"})),
            &settings,
        );
        assert_eq!(image_of(&own.tangodb), "ska-sdp-tangodb:0.1.0");
        assert_eq!(image_of(&own.databaseds), "ska-sdp-databaseds:0.1.0");
        let blank = databaseds_objects(&resource(json!({"tangoDBImage": " "})), &settings);
        assert_eq!(image_of(&blank.tangodb), settings.tangodb_image);
    }
}
