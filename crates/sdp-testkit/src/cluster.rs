//! Objects cluster tests need on the local control plane.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};

/// Installs the NetworkAttachmentDefinition CRD (Multus's `k8s.cni.cncf.io/v1`, which the local control plane
/// lacks) and waits until it is established.
pub async fn install_network_attachment_crd(client: &kube::Client) {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
        "spec": {"group": "k8s.cni.cncf.io", "scope": "Namespaced",
                 "names": {"plural": "network-attachment-definitions", "singular": "network-attachment-definition",
                           "kind": "NetworkAttachmentDefinition", "shortNames": ["net-attach-def"]},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {"config": {"type": "string"}}}}}}}]}
    }))
    .expect("a valid CRD");
    apply_crd(client, &crd).await;
}

/// Applies a CustomResourceDefinition (server-side) and waits until it is established.
pub async fn apply_crd(client: &kube::Client, crd: &CustomResourceDefinition) {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(&name, &PatchParams::apply("sdp-tests").force(), &Patch::Apply(crd)).await.expect("apply the CRD");
    crate::wait::eventually(&format!("the CRD {name} established"), Duration::from_secs(30), || async {
        crds.get(&name)
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
    })
    .await;
}

/// A NetworkAttachmentDefinition offered for allocation (`sdp.skao.int/available-for-allocation=true`) with
/// this CNI `ipam` section.
pub fn labelled_network_attachment(name: &str, namespace: &str, ipam: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace, "labels": {"sdp.skao.int/available-for-allocation": "true"}},
        "spec": {"config": json!({"cniVersion": "0.3.1", "type": "macvlan", "ipam": ipam}).to_string()}
    }))
    .expect("a valid NetworkAttachmentDefinition")
}
