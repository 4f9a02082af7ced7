//! The all-in-one sample → the exact objects the operator makes (tests/golden/*.yaml, reviewed by hand), and the
//! chart's CRDs are what `crdgen` generates.
//!
//! After a deliberate change, `UPDATE_GOLDEN=1 cargo test -p tango-operator --test golden` rewrites the golden
//! files that differ and fails, naming every file it rewrote: review the diff, then run again (without it) to
//! pass. Only the value `1` rewrites; any other value, or none, compares. This is the operator's own variable:
//! the charts' golden renderings are rewritten by `SDP_UPDATE_GOLDEN=1 scripts/test-charts`, which does not
//! set it.

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

/// Compares every `(path, actual)` pair, rewriting with `update` each file that differs, and fails after all are
/// compared, naming each file that differs or was rewritten: one run rewrites them all, none counts as a pass.
fn compare_goldens(files: &[(PathBuf, String)], update: bool) -> Result<(), String> {
    let failures: Vec<String> =
        files.iter().filter_map(|(path, actual)| compare_golden(path, actual, update).err()).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} golden file(s) failed:\n{}", failures.len(), failures.join("\n")))
    }
}

fn check_goldens(files: &[(PathBuf, String)]) {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|value| value == "1");
    if let Err(message) = compare_goldens(files, update) {
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
fn one_run_rewrites_every_golden_file_that_differs_and_names_them() {
    let dir = std::env::temp_dir().join(format!("tango-operator-goldens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (same, first, second) = (dir.join("same.yaml"), dir.join("first.yaml"), dir.join("second.yaml"));
    for path in [&same, &first, &second] {
        std::fs::write(path, "old\n").unwrap();
    }
    let files =
        [(same.clone(), "old\n".to_string()), (first.clone(), "new\n".into()), (second.clone(), "new\n".into())];
    let compared = compare_goldens(&files, false).unwrap_err();
    assert!(compared.starts_with("2 golden file(s) failed"), "{compared}");
    assert!(!compared.contains("rewritten"), "{compared}");
    let rewritten = compare_goldens(&files, true).unwrap_err();
    assert!(rewritten.starts_with("2 golden file(s) failed"), "{rewritten}");
    for path in [&first, &second] {
        assert!(rewritten.contains(&format!("{} rewritten: review the diff, then run again", path.display())));
        assert_eq!(std::fs::read_to_string(path).unwrap(), "new\n");
    }
    assert!(!rewritten.contains(&same.display().to_string()), "{rewritten}");
    assert_eq!(compare_goldens(&files, true), Ok(()));
    assert_eq!(compare_goldens(&files, false), Ok(()));
    std::fs::remove_dir_all(&dir).unwrap();
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
    check_goldens(&[(manifest_dir().join("tests/golden/databaseds-tango-base.yaml"), text)]);
}

#[test]
fn deviceserver_samples_make_the_golden_objects() {
    let (_, servers) = samples();
    assert!(servers.len() >= 2, "the sample holds several DeviceServers");
    let mut files = Vec::new();
    for server in servers {
        let name = kube::ResourceExt::name_any(&server);
        tango_operator::spec::validate(&name, &server.spec).expect("the sample is valid");
        let o = deviceserver_objects(&server);
        let mut text = yaml_documents(&[&o.config_map]);
        text += &yaml_documents(&[&o.service]);
        text += &yaml_documents(&[&o.statefulset]);
        files.push((manifest_dir().join(format!("tests/golden/{name}.yaml")), text));
    }
    check_goldens(&files);
}

#[test]
fn every_golden_file_is_made_from_the_sample() {
    let (_, servers) = samples();
    let mut made: Vec<String> = servers.iter().map(|s| format!("{}.yaml", kube::ResourceExt::name_any(s))).collect();
    made.push("databaseds-tango-base.yaml".into());
    made.sort();
    let mut present: Vec<String> = std::fs::read_dir(manifest_dir().join("tests/golden"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    assert_eq!(present, made, "tests/golden/ holds a file the sample no longer makes (remove it) or lacks one");
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
