//! Validation of a DeviceServer's spec: what the operator needs to know before it makes anything.

use serde_json::Value;

use crate::crd::DeviceServerSpec;

/// Prefix of the StatefulSet, Service and ConfigMap made for a DeviceServer; pods are `deviceserver-<name>-0`.
pub const DEVICESERVER_PREFIX: &str = "deviceserver-";
/// Longest StatefulSet name: the pods' `controller-revision-hash` label adds 11 characters to it and labels stop
/// at 63.
const MAX_STATEFULSET_NAME: usize = 52;

/// A spec the operator cannot run; the message says what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("dsname {0:?} is not a valid server name: use letters, digits, '_', '-' or '.' (at most 63)")]
    DsName(String),
    #[error("name {name:?} is too long: `deviceserver-{name}` must fit in {MAX_STATEFULSET_NAME} characters")]
    NameTooLong { name: String },
    #[error("image is empty: give `registry/image:tag`")]
    NoImage,
    #[error("neither `command` nor `script` is set: give the command that starts the server")]
    NoEntrypoint,
    #[error("config is not valid dsconfig JSON: {0}")]
    Config(String),
    #[error("dependsOn entry {0:?} is neither a device name (domain/family/member) nor host:port")]
    Dependency(String),
}

/// What a DeviceServer waits for before its StatefulSet is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependency {
    /// A device, lower-cased `domain/family/member`, in the Tango database `tango://host:port/` names (`database`),
    /// else in the DeviceServer's own.
    Device { name: String, database: Option<String> },
    /// A TCP endpoint that must accept connections.
    Endpoint { host: String, port: u16 },
}

/// A device the configuration declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub class: String,
}

/// A spec the operator can run.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec {
    pub devices: Vec<Device>,
    pub dependencies: Vec<Dependency>,
}

pub fn validate(name: &str, spec: &DeviceServerSpec) -> Result<ValidSpec, SpecError> {
    let valid_dsname = !spec.dsname.is_empty()
        && spec.dsname.len() <= 63
        && spec.dsname.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !valid_dsname {
        return Err(SpecError::DsName(spec.dsname.clone()));
    }
    if DEVICESERVER_PREFIX.len() + name.len() > MAX_STATEFULSET_NAME {
        return Err(SpecError::NameTooLong { name: name.to_owned() });
    }
    if spec.image.trim().is_empty() {
        return Err(SpecError::NoImage);
    }
    let has = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    if !has(&spec.command) && !has(&spec.script) {
        return Err(SpecError::NoEntrypoint);
    }
    let devices = match &spec.config {
        Some(config) if !config.trim().is_empty() => config_devices(config)?,
        _ => Vec::new(),
    };
    let dependencies = spec.depends_on.iter().flatten().map(|d| parse_dependency(d)).collect::<Result<_, _>>()?;
    Ok(ValidSpec { devices, dependencies })
}

/// The devices of a dsconfig document: `servers.<server>.<instance>.<class>.<device>`.
pub fn config_devices(config: &str) -> Result<Vec<Device>, SpecError> {
    let doc: Value = serde_json::from_str(config).map_err(|e| SpecError::Config(e.to_string()))?;
    let servers = match doc.get("servers") {
        None => return Ok(Vec::new()),
        Some(Value::Object(servers)) => servers,
        Some(_) => return Err(SpecError::Config("`servers` is not an object".into())),
    };
    let mut devices = Vec::new();
    for (server, instances) in servers {
        for (instance, classes) in object(instances, &format!("servers.{server}"))? {
            for (class, members) in object(classes, &format!("servers.{server}.{instance}"))? {
                for device in object(members, &format!("servers.{server}.{instance}.{class}"))?.keys() {
                    devices.push(Device { name: device.to_lowercase(), class: class.clone() });
                }
            }
        }
    }
    Ok(devices)
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a serde_json::Map<String, Value>, SpecError> {
    value.as_object().ok_or_else(|| SpecError::Config(format!("{what} is not an object")))
}

/// `domain/family/member` (optionally `tango://host:port/` first) or `host:port`.
pub fn parse_dependency(entry: &str) -> Result<Dependency, SpecError> {
    let bad = || SpecError::Dependency(entry.to_owned());
    let (database, device) = match entry.strip_prefix("tango://") {
        Some(rest) => {
            let (database, device) = rest.split_once('/').ok_or_else(bad)?;
            let valid_database = database.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !valid_database {
                return Err(bad());
            }
            (Some(database.to_owned()), device)
        }
        None => (None, entry),
    };
    let parts: Vec<&str> = device.split('/').collect();
    if parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && !p.contains(':')) {
        return Ok(Dependency::Device { name: device.to_lowercase(), database });
    }
    if database.is_some() {
        return Err(bad());
    }
    let (host, port) = entry.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok(Dependency::Endpoint { host: host.to_owned(), port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DeviceServerSpec {
        DeviceServerSpec {
            image: "registry/ds:1".into(),
            dsname: "TangoTest".into(),
            command: Some("/usr/local/bin/TangoTest".into()),
            ..Default::default()
        }
    }

    #[test]
    fn devices_come_from_every_server_instance_and_class() {
        let config = r#"{"servers": {"S": {"a": {"C1": {"X/Y/1": {}, "x/y/2": {}}}, "b": {"C2": {"p/q/r": {}}}}}}"#;
        let devices = config_devices(config).unwrap();
        let names: Vec<_> = devices.iter().map(|d| (d.name.as_str(), d.class.as_str())).collect();
        assert_eq!(names, [("x/y/1", "C1"), ("x/y/2", "C1"), ("p/q/r", "C2")]);
    }

    #[test]
    fn dependencies_are_devices_or_endpoints() {
        assert_eq!(
            parse_dependency("Sys/TG_Test/1"),
            Ok(Dependency::Device { name: "sys/tg_test/1".into(), database: None })
        );
        assert_eq!(
            parse_dependency("tango://db.example.org:10000/a/B/c"),
            Ok(Dependency::Device { name: "a/b/c".into(), database: Some("db.example.org:10000".into()) })
        );
        for bad in ["tango://db/a/b/c", "tango://:10000/a/b/c", "tango://db:0/a/b/c", "tango://db:10000/a/b"] {
            assert_eq!(parse_dependency(bad), Err(SpecError::Dependency(bad.into())), "{bad}");
        }
        assert_eq!(
            parse_dependency("tango-databaseds:10000"),
            Ok(Dependency::Endpoint { host: "tango-databaseds".into(), port: 10000 })
        );
        for bad in ["a/b", "a//c", "host:port", ":10", "a/b/c/d", "nothing"] {
            assert_eq!(parse_dependency(bad), Err(SpecError::Dependency(bad.into())), "{bad}");
        }
    }

    #[test]
    fn bad_specs_say_what_to_change() {
        let cases: Vec<(DeviceServerSpec, &str)> = vec![
            (DeviceServerSpec { dsname: "my server".into(), ..spec() }, "dsname \"my server\" is not a valid"),
            (DeviceServerSpec { image: " ".into(), ..spec() }, "image is empty"),
            (DeviceServerSpec { command: None, ..spec() }, "neither `command` nor `script`"),
            (DeviceServerSpec { config: Some("{\"servers\": [".into()), ..spec() }, "config is not valid"),
            (
                DeviceServerSpec { config: Some("{\"servers\": {\"S\": 1}}".into()), ..spec() },
                "config is not valid dsconfig JSON: servers.S is not",
            ),
            (DeviceServerSpec { depends_on: Some(vec!["x:y".into()]), ..spec() }, "dependsOn entry \"x:y\""),
        ];
        for (spec, message) in cases {
            let error = validate("tangotest-test", &spec).unwrap_err().to_string();
            assert!(error.starts_with(message), "{error}");
        }
        let long = "x".repeat(40);
        assert!(validate(&long, &spec()).unwrap_err().to_string().contains("too long"));
        assert!(validate("tangotest-test", &spec()).is_ok());
    }
}
