//! What a `process-direct` entry asks to run.

use std::collections::BTreeMap;

use serde_json::Value;

/// The process of a `process-direct` deployment: `args` of `{"command": "prog" | ["prog", "arg", ...],
/// "args": [...], "env": {"NAME": "value"}}`. The original's form `{"args": ["sleep infinity"], "shell": true}`
/// runs its arguments, joined by spaces, with `sh -c`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

impl ProcessSpec {
    /// The process an entry's `args` describe, or what is wrong with them.
    pub fn from_args(args: &Value) -> Result<ProcessSpec, String> {
        let strings = |field: &str| -> Result<Vec<String>, String> {
            match args.get(field) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        other => Err(format!("args.{field} holds {other}: expected strings")),
                    })
                    .collect(),
                Some(other) => Err(format!("args.{field} is {other}: expected a string or a list of strings")),
            }
        };
        let mut env = BTreeMap::new();
        match args.get("env") {
            None | Some(Value::Null) => {}
            Some(Value::Object(vars)) => {
                for (name, value) in vars {
                    if name.is_empty() || name.contains('=') || name.contains('\0') {
                        return Err(format!("args.env has an invalid variable name {name:?}"));
                    }
                    let value = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(_) | Value::Bool(_) => value.to_string(),
                        other => return Err(format!("args.env.{name} is {other}: expected a string")),
                    };
                    env.insert(name.clone(), value);
                }
            }
            Some(other) => return Err(format!("args.env is {other}: expected an object of strings")),
        }
        let command = strings("command")?;
        let rest = strings("args")?;
        let shell = args.get("shell").and_then(Value::as_bool).unwrap_or(false);
        let (program, args) = if shell {
            let line = command.into_iter().chain(rest).collect::<Vec<_>>().join(" ");
            ("sh".to_string(), vec!["-c".to_string(), line])
        } else {
            let mut words = command.into_iter().chain(rest);
            let program = words.next().ok_or("args.command is missing: name the program to run")?;
            (program, words.collect())
        };
        if program.is_empty() || program.contains('\0') || args.iter().any(|a| a.contains('\0')) {
            return Err("args.command names no runnable program".into());
        }
        Ok(ProcessSpec { program, args, env })
    }

    /// The command line, as the state reports it.
    pub fn command_line(&self) -> Vec<String> {
        std::iter::once(self.program.clone()).chain(self.args.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn command_args_and_env() {
        let spec = ProcessSpec::from_args(&json!({
            "command": ["/bin/sdp", "script"], "args": ["testdask", "pb-1"], "env": {"A": "1", "N": 2}
        }))
        .unwrap();
        assert_eq!(spec.command_line(), ["/bin/sdp", "script", "testdask", "pb-1"]);
        assert_eq!(spec.env, BTreeMap::from([("A".into(), "1".into()), ("N".into(), "2".into())]));
        assert_eq!(ProcessSpec::from_args(&json!({"command": "true"})).unwrap().command_line(), ["true"]);
    }

    #[test]
    fn the_original_shell_form() {
        let spec = ProcessSpec::from_args(&json!({"args": ["sleep infinity"], "shell": true})).unwrap();
        assert_eq!(spec.command_line(), ["sh", "-c", "sleep infinity"]);
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let error = |args: Value| ProcessSpec::from_args(&args).unwrap_err();
        assert!(error(json!({})).contains("args.command is missing"));
        assert!(error(json!({"command": 3})).contains("expected a string or a list"));
        assert!(error(json!({"command": ["x", {"a": 1}]})).contains("expected strings"));
        assert!(error(json!({"command": "x", "env": {"A=B": "1"}})).contains("invalid variable name"));
        assert!(error(json!({"command": "x", "env": ["A"]})).contains("expected an object"));
        assert!(error(json!({"command": ""})).contains("no runnable program"));
    }
}
