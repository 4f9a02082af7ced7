//! What a `process-direct` entry may ask to run, and the process that is.
//!
//! An entry names something defined elsewhere; it never carries a command. It asks for either
//! - `{"script": "<id>", "pb_id": "<pb_id>"}`: the processing script defined as `/script/<id>`, its `command`
//!   with the block's ID appended (a program named `sdp` being this platform's binary), with the configuration
//!   database's settings in its environment from the deployer's own settings; or
//! - `{"engine": "<name>"}`: a process engine an operator registered in the engine definitions file
//!   (`sdp up --process-engines FILE`), run with the command and environment defined there.
//!
//! Anyone who can write `/deploy` can so start only what a script definition or the operator defined. (Writing
//! `/script` defines commands: under `sdp up` it is as powerful as running programs as the platform's user.)

use std::collections::BTreeMap;
use std::path::Path;

use sdp_config::deployment::check_name;
use sdp_config::script::PLATFORM_PROGRAM;
use sdp_config::{ProcessRequest, ScriptDefinition};
use serde::Deserialize;

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

/// How processing scripts run here: their definition's command, `sdp` standing for `program`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptRunner {
    /// This platform's `sdp` binary.
    pub program: String,
    /// Given to every script: how it reaches the configuration database.
    pub env: BTreeMap<String, String>,
}

/// The processing script definitions (`/script/<id>`) by ID, each parsed or with what is wrong with it.
pub type ScriptDefinitions = BTreeMap<String, Result<ScriptDefinition, String>>;

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
    /// The process of a request, with the script definitions it may name.
    pub fn resolve(&self, request: &ProcessRequest, scripts: &ScriptDefinitions) -> Result<ProcessSpec, String> {
        match request {
            ProcessRequest::Script { script, pb_id } => {
                let runner = self.scripts.as_ref().ok_or("this process deployer runs no processing scripts")?;
                let definition = match scripts.get(script) {
                    None => return Err(format!("no processing script is defined as /script/{script}")),
                    Some(Err(error)) => return Err(error.clone()),
                    Some(Ok(definition)) => definition,
                };
                let Some((program, args)) = definition.command.split_first() else {
                    return Err(format!("/script/{script} names no command to run on this machine"));
                };
                let program = if program == PLATFORM_PROGRAM { runner.program.clone() } else { program.clone() };
                let args = args.iter().cloned().chain([pb_id.clone()]).collect();
                Ok(ProcessSpec { program, args, env: runner.env.clone() })
            }
            ProcessRequest::Engine(name) => {
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
    use sdp_config::deployment::{DeploymentArgs, PROCESS};
    use serde_json::{json, Value};

    fn runnable() -> Runnable {
        Runnable {
            scripts: Some(ScriptRunner {
                program: "/opt/sdp".into(),
                env: BTreeMap::from([("SDP_CONFIG_PORT".into(), "2400".into())]),
            }),
            engines: parse_engines(r#"{"sleeper": {"command": ["sleep", "300"], "env": {"A": "1"}}}"#).unwrap(),
        }
    }

    fn definitions() -> ScriptDefinitions {
        let definition = |command: &[&str]| ScriptDefinition {
            kind: "realtime".into(),
            name: "n".into(),
            version: "1".into(),
            image: None,
            args: vec![],
            command: command.iter().map(|a| a.to_string()).collect(),
        };
        BTreeMap::from([
            ("testdask".to_string(), Ok(definition(&["sdp", "script", "testdask"]))),
            ("hello".to_string(), Ok(definition(&["/opt/hello/bin/hello", "--verbose"]))),
            ("k8s-only".to_string(), Ok(definition(&[]))),
            ("broken".to_string(), Err("/script/broken is not a script definition".to_string())),
        ])
    }

    fn process_for(runnable: &Runnable, args: Value) -> Result<ProcessSpec, String> {
        match DeploymentArgs::from_parts(PROCESS, &args)? {
            DeploymentArgs::Process(request) => runnable.resolve(&request, &definitions()),
            other => panic!("not a process request: {other:?}"),
        }
    }

    #[test]
    fn scripts_run_their_definitions_command_with_the_deployers_settings() {
        let spec = process_for(&runnable(), json!({"script": "testdask", "pb_id": "pb-1"})).unwrap();
        assert_eq!(spec.command_line(), ["/opt/sdp", "script", "testdask", "pb-1"]);
        assert_eq!(spec.env["SDP_CONFIG_PORT"], "2400");
        let spec = process_for(&runnable(), json!({"script": "hello", "pb_id": "pb-1"})).unwrap();
        assert_eq!(spec.command_line(), ["/opt/hello/bin/hello", "--verbose", "pb-1"]);
        for (script, said) in [
            ("rm", "no processing script is defined as /script/rm"),
            ("k8s-only", "names no command"),
            ("broken", "is not a script definition"),
            ("../x", "args.script"),
        ] {
            let error = process_for(&runnable(), json!({"script": script, "pb_id": "pb-1"})).unwrap_err();
            assert!(error.contains(said), "{script}: {error}");
        }
        let error = process_for(&runnable(), json!({"script": "testdask", "pb_id": "../x"})).unwrap_err();
        assert!(error.contains("args.pb_id"), "{error}");
        let none = Runnable { scripts: None, ..runnable() };
        assert!(process_for(&none, json!({"script": "testdask", "pb_id": "pb-1"})).is_err());
    }

    #[test]
    fn engines_run_as_registered() {
        let spec = process_for(&runnable(), json!({"engine": "sleeper"})).unwrap();
        assert_eq!(spec.command_line(), ["sleep", "300"]);
        assert_eq!(spec.env["A"], "1");
        let error = process_for(&runnable(), json!({"engine": "other"})).unwrap_err();
        assert!(error.contains("no process engine \"other\"") && error.contains("--process-engines"), "{error}");
    }

    #[test]
    fn commands_in_entries_are_refused() {
        let refused = |args: Value| process_for(&runnable(), args).unwrap_err();
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
