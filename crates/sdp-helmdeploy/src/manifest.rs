//! What a release's manifest says about its pods. A release is ready once as many pods as its workloads ask
//! for run: counting the pods seen so far is not enough, since controllers create them one workload at a time.

use serde::Deserialize;
use serde_json::Value;

/// The pods the workloads of a manifest (helm's multi-document YAML) ask for: `spec.replicas` of each
/// Deployment, StatefulSet and ReplicaSet, `spec.parallelism` of each Job (1 when unset), one per Pod.
/// DaemonSets are not counted: theirs depends on the nodes.
pub fn expected_pods(manifest: &str) -> Result<u64, String> {
    let mut pods = 0;
    for document in serde_yaml::Deserializer::from_str(manifest) {
        let object = Value::deserialize(document).map_err(|e| format!("the release's manifest is not YAML: {e}"))?;
        let count = |field: &str| object["spec"].get(field).and_then(Value::as_u64).unwrap_or(1);
        pods += match object["kind"].as_str() {
            Some("Deployment" | "StatefulSet" | "ReplicaSet") => count("replicas"),
            Some("Job") => count("parallelism"),
            Some("Pod") => 1,
            _ => 0,
        };
    }
    Ok(pods)
}

/// The manifest in what `helm install|upgrade --output json` prints (the release).
pub fn release_manifest(output: &str) -> Result<String, String> {
    let release: Value = serde_json::from_str(output).map_err(|e| format!("helm printed no release JSON: {e}"))?;
    release["manifest"].as_str().map(str::to_string).ok_or_else(|| "helm's release JSON has no manifest".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_of_each_workload_kind() {
        let manifest = "---\n# Source: x/templates/a.yaml\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n\
            ---\nkind: Deployment\nspec: {replicas: 2}\n---\nkind: StatefulSet\nspec: {}\n---\nkind: Job\nspec: \
            {parallelism: 3}\n---\nkind: DaemonSet\nspec: {}\n---\nkind: Pod\n---\n";
        assert_eq!(expected_pods(manifest), Ok(7));
        assert_eq!(expected_pods(""), Ok(0));
        assert!(expected_pods("kind: [").unwrap_err().contains("not YAML"));
    }

    #[test]
    fn the_manifest_of_helms_release_json() {
        assert_eq!(release_manifest(r#"{"name": "r", "manifest": "kind: Pod\n"}"#), Ok("kind: Pod\n".into()));
        assert!(release_manifest("NAME: r").is_err());
        assert!(release_manifest("{}").is_err());
    }
}
