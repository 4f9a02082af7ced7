//! Facts about a rendered multi-document manifest (`helm template` output), read with a YAML parser.

use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize as _;
use serde_yaml::Value;

#[derive(clap::Subcommand)]
pub enum Query {
    /// `<kind> <namespace> <name>` per object; `-` for no namespace (the release's, or cluster-scoped).
    Objects { file: PathBuf },
    /// The names a Tango client may point at: DatabaseDSs, and Services labelled component databaseds.
    TangoDatabases { file: PathBuf },
    /// `TANGO_HOST <host:port>` per TANGO_HOST environment variable, `databaseds <name>` per DeviceServer.
    TangoReferences { file: PathBuf },
    /// `<kind>/<name>: <label>` for each of `labels` missing from an object's metadata.labels.
    LabelsMissing { file: PathBuf, labels: Vec<String> },
    /// The Tango device names (`domain/family/member`, quoted) that DeviceServers declare, sorted.
    DeviceServerDevices { file: PathBuf },
    /// The text of `data.<key>` of the ConfigMaps that have it (a Grafana dashboard's JSON, say).
    ConfigMapData { file: PathBuf, key: String },
}

impl Query {
    pub fn run(&self) -> anyhow::Result<Vec<String>> {
        let (Query::Objects { file }
        | Query::TangoDatabases { file }
        | Query::TangoReferences { file }
        | Query::LabelsMissing { file, .. }
        | Query::DeviceServerDevices { file }
        | Query::ConfigMapData { file, .. }) = self;
        let text = crate::files::read(file)?;
        let objects = objects(&text).with_context(|| format!("{} is not YAML", file.display()))?;
        Ok(match self {
            Query::Objects { .. } => {
                objects.iter().map(|o| format!("{} {} {}", kind(o), namespace(o), name(o))).collect()
            }
            Query::TangoDatabases { .. } => {
                objects.iter().filter(|o| is_tango_database(o)).map(|o| name(o).to_string()).collect()
            }
            Query::TangoReferences { .. } => objects.iter().flat_map(tango_references).collect(),
            Query::LabelsMissing { labels, .. } => objects
                .iter()
                .flat_map(|o| {
                    let have = &o["metadata"]["labels"];
                    labels
                        .iter()
                        .filter(|l| have.get(l.as_str()).is_none())
                        .map(move |l| format!("{}/{}: {l}", kind(o), name(o)))
                })
                .collect(),
            Query::DeviceServerDevices { .. } => {
                let mut devices: Vec<String> = objects
                    .iter()
                    .filter(|o| kind(o) == "DeviceServer")
                    .flat_map(|o| strings(o).into_iter().flat_map(|s| quoted_device_names(&s)).collect::<Vec<_>>())
                    .collect();
                devices.sort();
                devices
            }
            Query::ConfigMapData { key, .. } => objects
                .iter()
                .filter(|o| kind(o) == "ConfigMap")
                .filter_map(|o| o["data"][key.as_str()].as_str().map(str::to_string))
                .collect(),
        })
    }
}

/// The manifest part of a text: all of `helm template`'s output; of `helm install --dry-run`'s, the hooks and the
/// manifest, without the release's header and notes.
fn manifest_part(text: &str) -> String {
    if !text.lines().any(|l| l == "MANIFEST:") {
        return text.to_string();
    }
    let start = text.lines().position(|l| l == "HOOKS:" || l == "MANIFEST:").unwrap_or(0);
    text.lines()
        .skip(start + 1)
        .take_while(|l| *l != "NOTES:")
        .filter(|l| *l != "MANIFEST:")
        .collect::<Vec<_>>()
        .join("\n")
}

/// The objects of a multi-document YAML text (empty documents left out).
fn objects(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&manifest_part(text)) {
        let value = Value::deserialize(document)?;
        if value.is_mapping() {
            objects.push(value);
        }
    }
    Ok(objects)
}

fn text<'a>(value: &'a Value, default: &'a str) -> &'a str {
    value.as_str().unwrap_or(default)
}

fn kind(object: &Value) -> &str {
    text(&object["kind"], "")
}

fn name(object: &Value) -> &str {
    text(&object["metadata"]["name"], "")
}

fn namespace(object: &Value) -> &str {
    text(&object["metadata"]["namespace"], "-")
}

fn is_tango_database(object: &Value) -> bool {
    kind(object) == "DatabaseDS"
        || (kind(object) == "Service"
            && object["metadata"]["labels"]["app.kubernetes.io/component"].as_str() == Some("databaseds"))
}

fn tango_references(object: &Value) -> Vec<String> {
    let mut found = Vec::new();
    visit(object, &mut |value| {
        if let Some(env) = value.as_mapping() {
            if env.get("name").and_then(Value::as_str) == Some("TANGO_HOST") {
                if let Some(host) = env.get("value").and_then(Value::as_str) {
                    found.push(format!("TANGO_HOST {host}"));
                }
            }
        }
    });
    if kind(object) == "DeviceServer" {
        if let Some(database) = object["spec"]["databaseds"].as_str() {
            found.push(format!("databaseds {database}"));
        }
    }
    found
}

/// Every string value in `value`, depth first.
fn strings(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    visit(value, &mut |v| {
        if let Some(s) = v.as_str() {
            found.push(s.to_string());
        }
    });
    found
}

fn visit(value: &Value, on: &mut dyn FnMut(&Value)) {
    on(value);
    match value {
        Value::Mapping(map) => map.values().for_each(|v| visit(v, on)),
        Value::Sequence(items) => items.iter().for_each(|v| visit(v, on)),
        Value::Tagged(tagged) => visit(&tagged.value, on),
        _ => {}
    }
}

/// The `"domain/family/member"` names quoted in a text (a DeviceServer's JSON configuration).
fn quoted_device_names(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            let parts: Vec<&str> = s.split('/').collect();
            parts.len() == 3
                && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::with_file;

    const RENDERED: &str = r#"
---
# Source: a comment only
---
apiVersion: v1
kind: Service
metadata:
  name: "db"
  namespace: sdp
  labels:
    app.kubernetes.io/component: databaseds
    helm.sh/chart: x
---
kind: DeviceServer
metadata:
  name: lmc
spec:
  databaseds: tangodb
  config: |
    {"servers": {"SDPMaster": {"1": {"SDPMaster": {"mid_sdp/elt/master": {}}}}}, "x": "a/b"}
  env:
    - name: TANGO_HOST
      value: "db.sdp:10000"
"#;

    fn run(query: impl Fn(PathBuf) -> Query) -> Vec<String> {
        with_file(RENDERED, |file| query(file).run().unwrap())
    }

    #[test]
    fn reads_objects_and_their_facts() {
        assert_eq!(run(|file| Query::Objects { file }), ["Service sdp db", "DeviceServer - lmc"]);
        assert_eq!(run(|file| Query::TangoDatabases { file }), ["db"]);
        assert_eq!(run(|file| Query::TangoReferences { file }), ["TANGO_HOST db.sdp:10000", "databaseds tangodb"]);
        let labels = vec!["helm.sh/chart".to_string()];
        assert_eq!(
            run(|file| Query::LabelsMissing { file, labels: labels.clone() }),
            ["DeviceServer/lmc: helm.sh/chart"]
        );
        assert_eq!(run(|file| Query::DeviceServerDevices { file }), ["mid_sdp/elt/master"]);
        let dashboards = "kind: ConfigMap\nmetadata:\n  name: d\ndata:\n  a.json: |-\n    {\n      \"x\": 1\n    }\n";
        let data = with_file(dashboards, |file| Query::ConfigMapData { file, key: "a.json".into() }.run().unwrap());
        assert_eq!(data, ["{\n  \"x\": 1\n}"]);
    }

    #[test]
    fn reads_the_manifest_of_a_dry_run_install() {
        let release =
            format!("NAME: x\nSTATUS: pending-install\nHOOKS:\nMANIFEST:\n{RENDERED}\nNOTES:\nHello: there: x\n");
        let objects = with_file(&release, |file| Query::Objects { file }.run().unwrap());
        assert_eq!(objects, ["Service sdp db", "DeviceServer - lmc"]);
    }

    #[test]
    fn refuses_what_is_not_yaml() {
        assert!(with_file("a: [1\n", |file| Query::Objects { file }.run()).is_err());
    }
}
