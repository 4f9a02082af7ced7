//! The all-in-one sample → the exact objects the operator makes (tests/golden/*.yaml, reviewed by hand; after a
//! deliberate change, UPDATE_GOLDEN=1 rewrites those that differ and fails, so the next run checks them), and the
//! chart's CRDs are what `crdgen` generates.

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

/// Compares `actual` with the golden file `path`. With `update` (UPDATE_GOLDEN=1), a file that differs is
/// rewritten and the check still fails: a rewrite is reviewed, then a second run passes.
fn compare_golden(path: &Path, actual: &str, update: bool) -> Result<(), String> {
    let expected = std::fs::read_to_string(path);
    if expected.as_deref().is_ok_and(|expected| expected == actual) {
        return Ok(());
    }
    if update {
        std::fs::write(path, actual).unwrap();
        return Err(format!("{} rewritten: review the diff, then run again", path.display()));
    }
    let expected = expected.map_err(|e| format!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()))?;
    let first = expected.lines().zip(actual.lines()).position(|(e, a)| e != a);
    // Without a differing line, one file is the other plus lines at its end.
    let first = first.unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    Err(format!(
        "{} differs from the objects made, first at line {}:\nexpected: {:?}\nactual:   {:?}",
        path.display(),
        first + 1,
        expected.lines().nth(first),
        actual.lines().nth(first)
    ))
}

fn check_golden(path: &Path, actual: &str) {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|value| value == "1");
    if let Err(message) = compare_golden(path, actual, update) {
        panic!("{message}");
    }
}

#[test]
fn a_rewritten_golden_file_fails_until_the_next_run() {
    let path = std::env::temp_dir().join(format!("tango-operator-golden-{}.yaml", std::process::id()));
    std::fs::write(&path, "old\n").unwrap();
    assert!(compare_golden(&path, "new\n", false).unwrap_err().contains("differs"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n", "compared, not written");
    assert!(compare_golden(&path, "new\n", true).unwrap_err().contains("rewritten"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    assert_eq!(compare_golden(&path, "new\n", true), Ok(()));
    assert_eq!(compare_golden(&path, "new\n", false), Ok(()));
    std::fs::remove_file(&path).unwrap();
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
