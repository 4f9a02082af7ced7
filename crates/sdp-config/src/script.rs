//! Processing script definitions: `/script/<id>`, one entry per `kind:name:version`, saying what runs a
//! processing block that names it. The processing controller reads them; the platform seeds its own scripts'
//! definitions, and a pipeline team adds its own with `sdpcfg create`, without rebuilding the platform.
//!
//! ```json
//! {"kind": "realtime", "name": "hello", "version": "0.1.0",
//!  "image": "registry.example.org/hello:0.1.0", "args": [],
//!  "command": ["/opt/hello/bin/hello"]}
//! ```
//! On Kubernetes the `workflow` chart runs `image`, its entrypoint given `args` then the block's ID. On one
//! machine (`sdp up`) the process deployer runs `command`, then the block's ID; a program named `sdp` is the
//! platform's own binary.

use serde::{Deserialize, Serialize};

use crate::entity::Workflow;
use crate::error::Error;
use crate::keys::paths;
use crate::txn::Txn;

/// The program name that stands for the platform's own binary in a definition's `command`.
pub const PLATFORM_PROGRAM: &str = "sdp";

/// `/script/<id>`: what runs the processing blocks that name `kind:name:version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptDefinition {
    pub kind: String,
    pub name: String,
    pub version: String,
    /// The image the `workflow` chart runs on Kubernetes; none: the script runs on one machine only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Arguments of the image's entrypoint, before the block's ID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// What `sdp up` runs, the block's ID appended; empty: the script runs on Kubernetes only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

/// The key the platform writes the definition of script `kind:name:version` under: `<kind>-<name>-<version>`,
/// dots as dashes (keys allow only letters, digits, `_`, `-` and `/`), e.g. `realtime-testdask-0-1-0`.
pub fn id_of(kind: &str, name: &str, version: &str) -> String {
    format!("{kind}-{name}-{version}").replace('.', "-")
}

/// `kind:name:version`, as processing blocks name a script.
pub fn reference_of(kind: &str, name: &str, version: &str) -> String {
    format!("{kind}:{name}:{version}")
}

impl ScriptDefinition {
    /// The key the platform writes a definition under, [`id_of`] its script.
    pub fn id(&self) -> String {
        id_of(&self.kind, &self.name, &self.version)
    }

    /// Whether processing blocks naming `workflow` run this script.
    pub fn runs(&self, workflow: &Workflow) -> bool {
        self.kind == workflow.kind && self.name == workflow.id && self.version == workflow.version
    }

    /// `kind:name:version`, as processing blocks name it.
    pub fn reference(&self) -> String {
        reference_of(&self.kind, &self.name, &self.version)
    }

    /// Reads `/script/<id>`'s value, saying what is wrong with it.
    pub fn read(id: &str, value: &str) -> Result<ScriptDefinition, String> {
        let definition: ScriptDefinition = serde_json::from_str(value).map_err(|e| {
            format!(
                "/script/{id} is not a script definition ({e}): expected {{\"kind\", \"name\", \"version\", \
                 \"image\", \"args\", \"command\"}}"
            )
        })?;
        for (field, value) in [("kind", &definition.kind), ("name", &definition.name), ("version", &definition.version)]
        {
            if value.is_empty() || value.contains(':') {
                return Err(format!("/script/{id}: {field} {value:?} must be non-empty, without ':'"));
            }
        }
        if definition.command.first().is_some_and(|program| program.is_empty())
            || definition.command.iter().any(|a| a.contains('\0'))
        {
            return Err(format!("/script/{id}: command must start with a program, without NUL characters"));
        }
        Ok(definition)
    }
}

impl Txn {
    /// Every `/script/<id>` entry, by ID: its definition, or what is wrong with it.
    pub async fn list_scripts(&self) -> Result<Vec<(String, Result<ScriptDefinition, String>)>, Error> {
        let below = format!("{}/", paths::SCRIPT);
        Ok(self
            .list_values(&below, 0)
            .await?
            .into_iter()
            .filter_map(|(path, value)| {
                let id = path.strip_prefix(&below)?.to_string();
                let definition = ScriptDefinition::read(&id, &value);
                Some((id, definition))
            })
            .collect())
    }

    /// `/script/<id>`, parsed.
    pub async fn get_script(&self, id: &str) -> Result<Option<ScriptDefinition>, Error> {
        let path = paths::script(id);
        match self.get(&path).await? {
            None => Ok(None),
            Some(value) => {
                ScriptDefinition::read(id, &value).map(Some).map_err(|detail| Error::BadJson { path, detail })
            }
        }
    }

    /// Writes `definition` under its [`ScriptDefinition::id`] unless that entry exists: what someone changed
    /// there stays. Returns whether it wrote.
    pub async fn create_script_if_absent(&self, definition: &ScriptDefinition) -> Result<bool, Error> {
        let path = paths::script(&definition.id());
        if self.get(&path).await?.is_some() {
            return Ok(false);
        }
        self.create_json(&path, definition, None).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_read_or_explained() {
        let read = ScriptDefinition::read(
            "realtime-hello-0-1-0",
            r#"{"kind": "realtime", "name": "hello", "version": "0.1.0", "command": ["/opt/hello"]}"#,
        )
        .unwrap();
        assert_eq!(read.id(), "realtime-hello-0-1-0");
        assert_eq!(read.reference(), "realtime:hello:0.1.0");
        assert_eq!((read.image, read.args, read.command), (None, vec![], vec!["/opt/hello".to_string()]));
        assert!(ScriptDefinition::read(
            "x",
            &serde_json::to_string(&ScriptDefinition {
                kind: "batch".into(),
                name: "b".into(),
                version: "1".into(),
                image: Some("i:1".into()),
                args: vec!["a".into()],
                command: vec![],
            })
            .unwrap()
        )
        .unwrap()
        .runs(&"batch:b:1".parse().unwrap()));
        for (value, said) in [
            ("{", "is not a script definition"),
            (r#"{"kind": "realtime", "name": "x"}"#, "missing field `version`"),
            (r#"{"kind": "realtime", "name": "x", "version": "1", "imgae": "x"}"#, "unknown field `imgae`"),
            (r#"{"kind": "", "name": "x", "version": "1"}"#, "kind \"\" must be non-empty"),
            (r#"{"kind": "a:b", "name": "x", "version": "1"}"#, "without ':'"),
            (r#"{"kind": "a", "name": "x", "version": "1", "command": [""]}"#, "must start with a program"),
        ] {
            let error = ScriptDefinition::read("x", value).unwrap_err();
            assert!(error.contains(said), "{value}: {error}");
        }
    }
}
