//! The all-in-one sample → the exact objects the operator makes (tests/golden/*.yaml, reviewed by hand; rewrite
//! them with UPDATE_GOLDEN=1 after a deliberate change), and the chart's CRDs are what `crdgen` generates.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tango_operator::crd::{DatabaseDS, DeviceServer};
use tango_operator::objects::{databaseds_objects, deviceserver_objects, Settings};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sample's resources as the API server returns them: namespaced, with a uid.
pub fn samples() -> (DatabaseDS, Vec<DeviceServer>) {
    let text = std::fs::read_to_string(manifest_dir().join("tests/fixtures/all-in-one.yaml")).unwrap();
    let mut database = None;
    let mut servers = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let mut value = serde_json::Value::deserialize(document).unwrap();
        value["metadata"]["namespace"] = json!("ska-tango-examples");
        value["metadata"]["uid"] = json!(format!("6f1c2a9e-0000-4000-8000-00000000000{i}"));
        match value["kind"].as_str() {
            Some("DatabaseDS") => database = Some(serde_json::from_value(value).unwrap()),
            Some("DeviceServer") => servers.push(serde_json::from_value(value).unwrap()),
            other => panic!("unexpected kind {other:?}"),
        }
    }
    (database.expect("a DatabaseDS in the sample"), servers)
}

fn yaml_documents<T: Serialize>(objects: &[&T]) -> String {
    objects.iter().map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap())).collect()
}

fn check_golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(e, a)| e != a).unwrap_or(0);
        panic!(
            "{} differs from the objects made, first at line {}:\nexpected: {:?}\nactual:   {:?}",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

#[test]
fn databaseds_sample_makes_the_golden_objects() {
    let (database, _) = samples();
    let o = databaseds_objects(&database, &Settings::default());
    let claim = o.tangodb_claim.as_ref().expect("usePV: true asks for a claim");
    let mut text = yaml_documents(&[&o.config_map]);
    text += &yaml_documents(&[claim]);
    text += &yaml_documents(&[&o.tangodb_service, &o.databaseds_service]);
    text += &yaml_documents(&[&o.tangodb, &o.databaseds]);
    check_golden(&manifest_dir().join("tests/golden/databaseds-tango-base.yaml"), &text);
}

#[test]
fn deviceserver_samples_make_the_golden_objects() {
    let (_, servers) = samples();
    for server in servers {
        let name = kube::ResourceExt::name_any(&server);
        tango_operator::spec::validate(&name, &server.spec).expect("the sample is valid");
        let o = deviceserver_objects(&server);
        let mut text = yaml_documents(&[&o.config_map]);
        text += &yaml_documents(&[&o.service]);
        text += &yaml_documents(&[&o.statefulset]);
        check_golden(&manifest_dir().join(format!("tests/golden/{name}.yaml")), &text);
    }
}

#[test]
fn chart_crds_are_generated_from_the_types() {
    let crds = manifest_dir().join("../../charts/ska-tango-operator/crds");
    for (file, yaml) in tango_operator::crd::crd_documents() {
        let committed = std::fs::read_to_string(crds.join(file)).unwrap_or_default();
        assert!(
            committed == yaml,
            "charts/ska-tango-operator/crds/{file} is not what the types generate: run \
             `cargo run -p tango-operator -- crdgen --out-dir charts/ska-tango-operator/crds`"
        );
    }
}
