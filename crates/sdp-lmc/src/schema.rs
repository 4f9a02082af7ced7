//! Validation of the commands' JSON arguments against the original's schemas (`configure_pb.json` and
//! `configure_scan.json` of the seed's era), with jsonschema-style messages that name the bad field.
//!
//! The schemas are a handful of required fields and types, so they are checked directly rather than through a
//! general JSON-Schema engine (which would add some twenty crates to the build for five fields).

use sdp_config::Workflow;
use serde_json::{Map, Value};

/// A validated `Configure` argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Configure {
    pub pb_id: String,
    pub sbi_id: String,
    pub workflow: Workflow,
    pub parameters: Value,
    pub scan_parameters: Value,
}

fn at(path: &str, message: String) -> String {
    if path.is_empty() {
        message
    } else {
        format!("{path}: {message}")
    }
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    value.as_object().ok_or_else(|| at(path, format!("{value} is not of type 'object'")))
}

fn require(obj: &Map<String, Value>, path: &str, fields: &[&str]) -> Result<(), String> {
    match fields.iter().find(|f| !obj.contains_key(**f)) {
        Some(missing) => Err(at(path, format!("'{missing}' is a required property"))),
        None => Ok(()),
    }
}

fn only(obj: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), String> {
    let unexpected: Vec<String> =
        obj.keys().filter(|k| !allowed.contains(&k.as_str())).map(|k| format!("'{k}'")).collect();
    match unexpected.len() {
        0 => Ok(()),
        1 => Err(at(path, format!("Additional properties are not allowed ({} was unexpected)", unexpected[0]))),
        _ => {
            Err(at(path, format!("Additional properties are not allowed ({} were unexpected)", unexpected.join(", "))))
        }
    }
}

fn string(obj: &Map<String, Value>, path: &str, field: &str) -> Result<String, String> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(at(&join(path, field), format!("{other} is not of type 'string'"))),
        None => Err(at(path, format!("'{field}' is a required property"))),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn parse(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("Unable to load JSON configuration: {e}"))
}

/// Checks a `Configure` argument: `{"configure": {"id", "sbiId", "workflow": {"type", "id", "version"},
/// "parameters", "scanParameters"?, "cspCbfOutlinkAddress"?}}`.
pub fn configure(text: &str) -> Result<Configure, String> {
    let root = parse(text)?;
    let root = object(&root, "")?;
    require(root, "", &["configure"])?;
    let path = "configure";
    let cfg = object(&root["configure"], path)?;
    require(cfg, path, &["id", "sbiId", "workflow", "parameters"])?;
    only(cfg, path, &["id", "sbiId", "cspCbfOutlinkAddress", "workflow", "parameters", "scanParameters"])?;
    let pb_id = string(cfg, path, "id")?;
    let sbi_id = string(cfg, path, "sbiId")?;
    if cfg.contains_key("cspCbfOutlinkAddress") {
        string(cfg, path, "cspCbfOutlinkAddress")?;
    }
    let wpath = join(path, "workflow");
    let wf = object(&cfg["workflow"], &wpath)?;
    require(wf, &wpath, &["type", "id", "version"])?;
    only(wf, &wpath, &["type", "id", "version"])?;
    let workflow = Workflow {
        kind: string(wf, &wpath, "type")?,
        id: string(wf, &wpath, "id")?,
        version: string(wf, &wpath, "version")?,
    };
    object(&cfg["parameters"], &join(path, "parameters"))?;
    let scan_parameters = match cfg.get("scanParameters") {
        Some(sp) => {
            let spath = join(path, "scanParameters");
            for (scan, params) in object(sp, &spath)? {
                object(params, &join(&spath, scan))?;
            }
            sp.clone()
        }
        None => Value::Object(Map::new()),
    };
    sdp_config::keys::validate_id("processing block", &pb_id).map_err(|e| at(&join(path, "id"), e.to_string()))?;
    Ok(Configure { pb_id, sbi_id, workflow, parameters: cfg["parameters"].clone(), scan_parameters })
}

/// Checks a `ConfigureScan` argument: `{"configureScan": {"scanParameters": {...}}}`; returns the scan
/// parameters.
pub fn configure_scan(text: &str) -> Result<Value, String> {
    let root = parse(text)?;
    let root = object(&root, "")?;
    require(root, "", &["configureScan"])?;
    let cs = object(&root["configureScan"], "configureScan")?;
    require(cs, "configureScan", &["scanParameters"])?;
    object(&cs["scanParameters"], "configureScan.scanParameters")?;
    Ok(cs["scanParameters"].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{ "configure": { "id": "xyz", "sbiId": "xyz", "workflow": { "type": "realtime", "version": "0.1.0", "id": "vis_receive" }, "parameters": {}, "scanParameters": { "1": {} } } }"#;

    #[test]
    fn the_seeds_configure_is_valid() {
        let c = configure(SEED).unwrap();
        assert_eq!(c.pb_id, "xyz");
        assert_eq!(c.workflow, Workflow { kind: "realtime".into(), id: "vis_receive".into(), version: "0.1.0".into() });
        assert_eq!(c.scan_parameters, serde_json::json!({"1": {}}));
    }

    #[test]
    fn messages_name_the_bad_field() {
        let cases = [
            ("{}", "'configure' is a required property"),
            ("[]", "[] is not of type 'object'"),
            ("{not json", "Unable to load JSON configuration: key must be a string at line 1 column 2"),
            (r#"{"configure": 1}"#, "configure: 1 is not of type 'object'"),
            (
                r#"{"configure": {"id": "a", "workflow": {}, "parameters": {}}}"#,
                "configure: 'sbiId' is a required property",
            ),
            (
                r#"{"configure": {"id": 7, "sbiId": "s", "workflow": {}, "parameters": {}}}"#,
                "configure.id: 7 is not of type 'string'",
            ),
            (
                r#"{"configure": {"id": "a", "sbiId": "s", "workflow": {"type": "t", "id": "i"}, "parameters": {}}}"#,
                "configure.workflow: 'version' is a required property",
            ),
            (
                r#"{"configure": {"id": "a", "sbiId": "s", "workflow": {"type": "t", "id": "i", "version": "v"}, "parameters": {}, "extra": 1}}"#,
                "configure: Additional properties are not allowed ('extra' was unexpected)",
            ),
            (
                r#"{"configure": {"id": "a", "sbiId": "s", "workflow": {"type": "t", "id": "i", "version": "v"}, "parameters": [], "scanParameters": {}}}"#,
                "configure.parameters: [] is not of type 'object'",
            ),
            (
                r#"{"configure": {"id": "a", "sbiId": "s", "workflow": {"type": "t", "id": "i", "version": "v"}, "parameters": {}, "scanParameters": {"1": 5}}}"#,
                "configure.scanParameters.1: 5 is not of type 'object'",
            ),
            (
                r#"{"configure": {"id": "a b", "sbiId": "s", "workflow": {"type": "t", "id": "i", "version": "v"}, "parameters": {}}}"#,
                "configure.id: processing block ID \"a b\" must be 1 to 64 characters of A-Z, a-z, 0-9 and '-'",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(configure(input).unwrap_err(), message, "{input}");
        }
    }

    #[test]
    fn configure_scan_schema() {
        assert!(configure_scan(r#"{"configureScan": {"scanParameters": {"scanId": 1}}}"#).is_ok());
        assert_eq!(configure_scan("{}").unwrap_err(), "'configureScan' is a required property");
        assert_eq!(
            configure_scan(r#"{"configureScan": {}}"#).unwrap_err(),
            "configureScan: 'scanParameters' is a required property"
        );
    }
}
