//! What a `process-direct` entry may ask to run, and the process that is.
//!
//! An entry names something the platform defines; it never carries a command. It asks for either
//! - `{"script": "<name>", "pb_id": "<pb_id>"}`: the platform's script runner, `<sdp> script <name> <pb_id>`,
//!   with the configuration database's settings in its environment, all from the deployer's own settings; or
//! - `{"engine": "<name>"}`: a process engine an operator registered in the engine definitions file
//!   (`sdp up --process-engines FILE`), run with the command and environment defined there.
//!
//! Anyone who can write `/deploy` can so start only what the platform or its operator defined.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// What an entry that carries a command is told.
const NO_COMMANDS: &str = "process-direct entries name what to run, never a command: \
    {\"script\": <name>, \"pb_id\": <pb_id>} for a processing script, or {\"engine\": <name>} for a process \
    engine registered in the definitions file given to `sdp up --process-engines` (SDP_PROCESS_ENGINES)";

/// The process to start: program, arguments and extra environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

impl ProcessSpec {
    /// The command line, as the state reports it.
    pub fn command_line(&self) -> Vec<String> {
        std::iter::once(self.program.clone()).chain(self.args.iter().cloned()).collect()
    }
}

/// What a `process-direct` entry's `args` ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Processing script `name` on processing block `pb_id`.
    Script { name: String, pb_id: String },
    /// The registered process engine of this name.
    Engine(String),
}

impl Request {
    /// The request an entry's `args` make, or why they make none. Shape only: whether the script or engine
    /// exists is for the deployer to say ([`Runnable::resolve`]).
    pub fn from_args(args: &Value) -> Result<Request, String> {
        let Some(fields) = args.as_object() else {
            return Err(format!("args is {args}: {NO_COMMANDS}"));
        };
        if let Some(field) = fields.keys().find(|f| !matches!(f.as_str(), "script" | "pb_id" | "engine")) {
            return Err(format!("args.{field} is not allowed: {NO_COMMANDS}"));
        }
        let text = |field: &str| match fields.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("args.{field} is {other}: expected a string")),
        };
        match (text("script")?, text("pb_id")?, text("engine")?) {
            (Some(name), Some(pb_id), None) => {
                check_name("script", &name)?;
                sdp_config::entity::validate_id("processing block", &pb_id).map_err(|e| format!("args.pb_id: {e}"))?;
                Ok(Request::Script { name, pb_id })
            }
            (None, None, Some(name)) => {
                check_name("engine", &name)?;
                Ok(Request::Engine(name))
            }
            _ => Err(format!("args name neither a script with its pb_id nor an engine: {NO_COMMANDS}")),
        }
    }
}

/// Script and engine names: 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if name.is_empty() || name.len() > 64 || !name.bytes().all(valid) {
        return Err(format!("{what} name {name:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"));
    }
    Ok(())
}

/// The platform's script runner: `<program> script <name> <pb_id>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptRunner {
    /// The `sdp` command.
    pub program: String,
    /// The scripts it runs.
    pub names: Vec<String>,
    /// Given to every script: how it reaches the configuration database.
    pub env: BTreeMap<String, String>,
}

/// A process engine an operator registered: its command and fixed environment.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineDefinition {
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Everything the process deployer may run: the script runner and the registered engines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Runnable {
    /// None: no scripts run here.
    pub scripts: Option<ScriptRunner>,
    pub engines: BTreeMap<String, EngineDefinition>,
}

impl Runnable {
    /// The process an entry's `args` ask for, or why it does not run.
    pub fn process_for(&self, args: &Value) -> Result<ProcessSpec, String> {
        self.resolve(&Request::from_args(args)?)
    }

    /// The process of a request, when the platform defines it.
    pub fn resolve(&self, request: &Request) -> Result<ProcessSpec, String> {
        match request {
            Request::Script { name, pb_id } => {
                let runner = self.scripts.as_ref().ok_or("this process deployer runs no processing scripts")?;
                if !runner.names.contains(name) {
                    return Err(format!("no processing script {name:?}: the platform has {}", runner.names.join(", ")));
                }
                Ok(ProcessSpec {
                    program: runner.program.clone(),
                    args: vec!["script".into(), name.clone(), pb_id.clone()],
                    env: runner.env.clone(),
                })
            }
            Request::Engine(name) => {
                let engine = self.engines.get(name).ok_or_else(|| {
                    format!(
                        "no process engine {name:?} is registered: add it to the definitions file given to \
                         `sdp up --process-engines` (SDP_PROCESS_ENGINES)"
                    )
                })?;
                let Some((program, args)) = engine.command.split_first() else {
                    return Err(format!("process engine {name:?} is registered without a command"));
                };
                Ok(ProcessSpec { program: program.clone(), args: args.to_vec(), env: engine.env.clone() })
            }
        }
    }
}

/// The engine definitions of a JSON text `{"<name>": {"command": ["program", "arg", ...], "env": {...}}}`.
pub fn parse_engines(text: &str) -> Result<BTreeMap<String, EngineDefinition>, String> {
    let engines: BTreeMap<String, EngineDefinition> = serde_json::from_str(text).map_err(|e| {
        format!("{e}: expected {{\"<name>\": {{\"command\": [\"program\", \"arg\", ...], \"env\": {{...}}}}}}")
    })?;
    for (name, engine) in &engines {
        check_name("engine", name)?;
        let runnable = engine.command.first().is_some_and(|p| !p.is_empty());
        if !runnable || engine.command.iter().any(|a| a.contains('\0')) {
            return Err(format!("engine {name:?}: command must name a program, without NUL characters"));
        }
        if let Some(var) = engine.env.keys().find(|v| v.is_empty() || v.contains('=') || v.contains('\0')) {
            return Err(format!("engine {name:?}: invalid environment variable name {var:?}"));
        }
    }
    Ok(engines)
}

/// The engine definitions file at `path`.
pub fn load_engines(path: &Path) -> Result<BTreeMap<String, EngineDefinition>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_engines(&text).map_err(|e| format!("process engine definitions {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn runnable() -> Runnable {
        Runnable {
            scripts: Some(ScriptRunner {
                program: "/opt/sdp".into(),
                names: vec!["testdask".into()],
                env: BTreeMap::from([("SDP_CONFIG_PORT".into(), "2400".into())]),
            }),
            engines: parse_engines(r#"{"sleeper": {"command": ["sleep", "300"], "env": {"A": "1"}}}"#).unwrap(),
        }
    }

    #[test]
    fn scripts_run_the_platforms_runner_with_its_settings() {
        let spec = runnable().process_for(&json!({"script": "testdask", "pb_id": "pb-1"})).unwrap();
        assert_eq!(spec.command_line(), ["/opt/sdp", "script", "testdask", "pb-1"]);
        assert_eq!(spec.env["SDP_CONFIG_PORT"], "2400");
        let error = runnable().process_for(&json!({"script": "rm", "pb_id": "pb-1"})).unwrap_err();
        assert!(error.contains("no processing script \"rm\""), "{error}");
        let error = runnable().process_for(&json!({"script": "testdask", "pb_id": "../x"})).unwrap_err();
        assert!(error.contains("args.pb_id"), "{error}");
        let none = Runnable { scripts: None, ..runnable() };
        assert!(none.process_for(&json!({"script": "testdask", "pb_id": "pb-1"})).is_err());
    }

    #[test]
    fn engines_run_as_registered() {
        let spec = runnable().process_for(&json!({"engine": "sleeper"})).unwrap();
        assert_eq!(spec.command_line(), ["sleep", "300"]);
        assert_eq!(spec.env["A"], "1");
        let error = runnable().process_for(&json!({"engine": "other"})).unwrap_err();
        assert!(error.contains("no process engine \"other\"") && error.contains("--process-engines"), "{error}");
    }

    #[test]
    fn commands_in_entries_are_refused() {
        let refused = |args: Value| runnable().process_for(&args).unwrap_err();
        for args in [
            json!({"command": ["/bin/sh", "-c", "id > pwned.txt"]}),
            json!({"args": ["id > pwned.txt"], "shell": true}),
            json!({"engine": "sleeper", "args": ["600"]}),
            json!({"engine": "sleeper", "env": {"LD_PRELOAD": "/tmp/x.so"}}),
            json!({"script": "testdask", "pb_id": "pb-1", "command": "sh"}),
        ] {
            let error = refused(args.clone());
            assert!(error.contains("never a command") && error.contains("--process-engines"), "{args}: {error}");
        }
        assert!(refused(json!({})).contains("neither a script"));
        assert!(refused(json!({"script": "testdask"})).contains("neither a script"));
        assert!(refused(json!({"engine": 3})).contains("expected a string"));
        assert!(refused(json!({"engine": "../x"})).contains("engine name"));
        assert!(refused(json!("sh")).contains("never a command"));
    }

    #[test]
    fn bad_definitions_say_what_is_wrong() {
        assert!(parse_engines(r#"{"x": {"command": []}}"#).unwrap_err().contains("must name a program"));
        assert!(parse_engines(r#"{"x": {"command": ["a"], "env": {"A=B": "1"}}}"#).unwrap_err().contains("A=B"));
        assert!(parse_engines(r#"{"x y": {"command": ["a"]}}"#).unwrap_err().contains("engine name"));
        assert!(parse_engines(r#"{"x": ["a"]}"#).unwrap_err().contains("expected"));
        assert!(parse_engines(r#"{"x": {"command": ["a"], "shell": true}}"#).is_err());
    }
}
