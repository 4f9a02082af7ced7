//! The custom resources, group `tango.tango-controls.org`, version `v1`. Field names follow the manifests that
//! the ska-tango-util and ska-tango-base charts write (`global.operator: true`), so those charts work unchanged.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, ResourceRequirements, SecurityContext, Toleration, Volume, VolumeMount,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Tango device server: one StatefulSet running `start-deviceserver.sh`, its Service and ConfigMap.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tango.tango-controls.org",
    version = "v1",
    kind = "DeviceServer",
    plural = "deviceservers",
    singular = "deviceserver",
    shortname = "tangods",
    namespaced,
    status = "DeviceServerStatus",
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Devices","type":"integer","jsonPath":".status.devicecount"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.devicereadycount"}"#,
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".spec.image","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DeviceServerSpec {
    /// Fixed ports 45450 (server), 45460 (ZMQ heartbeat), 45470 (ZMQ events) and `-ORBendPoint` arguments, as
    /// the chart-only deployments used. Default true.
    #[serde(default, rename = "legacycompatibility", skip_serializing_if = "Option::is_none")]
    pub legacy_compatibility: Option<bool>,
    /// Cluster DNS domain used in published host names. Default `cluster.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<String>,
    /// Expose the device server through a LoadBalancer Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_load_balancer: Option<bool>,
    /// Host of the Tango database (`TANGO_HOST` without port, or `host:port`): a DatabaseDS of this namespace
    /// or an external one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databaseds: Option<String>,
    /// Container image, `registry/image:tag`.
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Arguments of the server: its instance name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
    /// Device server name (the executable name registered in the Tango database).
    pub dsname: String,
    /// Shell command run after the container starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_start: Option<String>,
    /// Shell command run before the container stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<String>,
    /// Tango database configuration of the server, dsconfig (json2tango) JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Command that starts the server (takes precedence over `script`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Python script that starts the server, run as `<dsname>.py`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Devices (`domain/family/member`, or `tango://host:port/domain/family/member` in another Tango database) or
    /// endpoints (`host:port`) that must be up before the server starts. A device another DeviceServer of the
    /// namespace declares must be Running; any other must be exported in its Tango database and answer a ping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
}

/// What the operator observed. `state` is `Building`, `Waiting`, `Error`, `Pending` or `Running`, followed by the
/// reason in parentheses when there is one, e.g. `Waiting(sys/tg_test/1 is not Running)`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DeviceServerStatus {
    #[serde(default)]
    pub state: String,
    /// Replicas of the StatefulSet.
    #[serde(default)]
    pub replicas: i32,
    /// Replicas that are ready.
    #[serde(default)]
    pub succeeded: i32,
    #[serde(default)]
    pub devicecount: i32,
    #[serde(default)]
    pub devicereadycount: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceStatus>,
}

/// One device the server's configuration declares; while the server is Running, `state` is its Tango state
/// (`ON`, ...), or `UNKNOWN` with the reason in `status` when Tango does not answer for it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DeviceStatus {
    pub name: String,
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, rename = "retTime", skip_serializing_if = "Option::is_none")]
    pub ret_time: Option<String>,
}

/// A Tango database: the Tango DB (MariaDB) StatefulSet, Service and PersistentVolumeClaim, the DataBaseds
/// StatefulSet and the Service named like the resource (the host part of `TANGO_HOST`), and their ConfigMap.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tango.tango-controls.org",
    version = "v1",
    kind = "DatabaseDS",
    plural = "databaseds",
    singular = "databaseds",
    shortname = "dbds",
    namespaced,
    status = "DatabaseDSStatus",
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.succeeded"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseDSSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<String>,
    /// Keep the Tango DB's data on a PersistentVolumeClaim (else an emptyDir that lives as long as the pod).
    #[serde(default, rename = "usePV", skip_serializing_if = "Option::is_none")]
    pub use_pv: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_load_balancer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Storage class of the Tango DB's PersistentVolumeClaim.
    #[serde(default, rename = "tangoDBStorageClass", skip_serializing_if = "Option::is_none")]
    pub tango_db_storage_class: Option<String>,
    /// Image of the Tango DB (MariaDB with the Tango schema, started as `docker-entrypoint.sh mysqld`); default:
    /// the operator's (`TANGODB_IMAGE`).
    #[serde(default, rename = "tangoDBImage", skip_serializing_if = "Option::is_none")]
    pub tango_db_image: Option<String>,
    /// Image of the DataBaseds server (`/usr/local/bin/DataBaseds`); default: the operator's
    /// (`DATABASEDS_IMAGE`).
    #[serde(default, rename = "databaseDSImage", skip_serializing_if = "Option::is_none")]
    pub database_ds_image: Option<String>,
}

/// `state` is `Building` until the Tango DB and the DataBaseds are ready, then `Running`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DatabaseDSStatus {
    #[serde(default)]
    pub state: String,
    /// StatefulSets (Tango DB and DataBaseds).
    #[serde(default)]
    pub replicas: i32,
    /// StatefulSets whose replicas are all ready.
    #[serde(default)]
    pub succeeded: i32,
}

/// The CRDs as YAML documents, as `crdgen` writes them: (file name, YAML).
pub fn crd_documents() -> Vec<(&'static str, String)> {
    use kube::CustomResourceExt;
    let yaml = |crd| serde_yaml::to_string(&crd).expect("a CRD serializes");
    vec![
        ("tango.tango-controls.org_databaseds.yaml", yaml(DatabaseDS::crd())),
        ("tango.tango-controls.org_deviceservers.yaml", yaml(DeviceServer::crd())),
    ]
}
