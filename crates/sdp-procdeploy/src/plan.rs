//! What to start and stop, from the entries, their states and the processes this deployer runs.

use std::collections::BTreeMap;

use sdp_config::{DeploymentState, ProcessRequest};

use crate::spec::ProcessSpec;

/// A `process-direct` entry as read: what it asks for and the process that is now, or why it cannot run; and
/// its recorded state.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub request: Result<ProcessRequest, String>,
    pub spec: Result<ProcessSpec, String>,
    pub state: Option<DeploymentState>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Start(String, ProcessRequest, ProcessSpec),
    /// SIGTERM, then SIGKILL after the grace period: the entry is gone or asks for something else.
    Stop(String),
    /// The entry cannot run: recorded as FAILED with the reason.
    Reject(String, String),
}

/// The actions that make the processes match the entries. `running` are the processes this deployer runs
/// (by the request they run for); `ended` the ones that ended under it, whose states may not be read back yet.
/// Processes are told apart by what their entry asks for, not by the command that is for now: a script
/// definition changed later leaves the processes started from it as they are. A process that ended (FINISHED
/// or FAILED) is not started again until its entry is recreated; one recorded as RUNNING by an earlier
/// deployer is started again (its process went with that deployer). An invalid entry leaves a running process
/// as it is: stopping it takes deleting the entry.
pub fn plan(
    entries: &BTreeMap<String, Entry>,
    running: &BTreeMap<String, ProcessRequest>,
    ended_here: &BTreeMap<String, ProcessRequest>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for (id, request) in running {
        match entries.get(id).map(|e| &e.request) {
            None => actions.push(Action::Stop(id.clone())),
            Some(Ok(wanted)) if wanted != request => actions.push(Action::Stop(id.clone())),
            Some(_) => {}
        }
    }
    for (id, entry) in entries {
        if running.contains_key(id) {
            continue;
        }
        let started = entry.request.as_ref().and_then(|request| Ok((request, entry.spec.as_ref()?)));
        match started {
            Err(error) => {
                let recorded = entry.state.as_ref().and_then(|s| s.error.as_deref());
                if recorded != Some(error.as_str()) {
                    actions.push(Action::Reject(id.clone(), error.clone()));
                }
            }
            Ok((request, spec)) => {
                let ended_with_this = ended_here.get(id) == Some(request);
                let ended_before =
                    !ended_here.contains_key(id) && entry.state.as_ref().is_some_and(DeploymentState::ended);
                if !ended_with_this && !ended_before {
                    actions.push(Action::Start(id.clone(), request.clone(), spec.clone()));
                }
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn request(engine: &str) -> ProcessRequest {
        ProcessRequest::Engine(engine.into())
    }

    fn spec(program: &str) -> ProcessSpec {
        ProcessSpec { program: program.into(), args: vec![], env: Default::default() }
    }

    fn entry(engine: &str, state: Option<Value>) -> Entry {
        Entry { request: Ok(request(engine)), spec: Ok(spec(engine)), state: state.as_ref().map(DeploymentState::read) }
    }

    fn start(id: &str, engine: &str) -> Action {
        Action::Start(id.into(), request(engine), spec(engine))
    }

    #[test]
    fn starts_new_entries_and_those_an_earlier_deployer_ran() {
        let entries = BTreeMap::from([
            ("new".to_string(), entry("a", None)),
            ("was-running".to_string(), entry("b", Some(json!({"status": "RUNNING", "pid": 7})))),
        ]);
        assert_eq!(plan(&entries, &BTreeMap::new(), &BTreeMap::new()), [start("new", "a"), start("was-running", "b")]);
    }

    #[test]
    fn ended_processes_are_not_started_again() {
        let entries = BTreeMap::from([
            ("done".to_string(), entry("a", Some(json!({"status": "FINISHED"})))),
            ("failed".to_string(), entry("a", Some(json!({"status": "FAILED", "signal": 9})))),
            // Ended under this deployer; the state read is older than its exit.
            ("just-ended".to_string(), entry("a", Some(json!({"status": "RUNNING"})))),
        ]);
        let ended = BTreeMap::from([("just-ended".to_string(), request("a"))]);
        assert_eq!(plan(&entries, &BTreeMap::new(), &ended), []);
        // An entry changed since its process ended runs the new process.
        let changed = BTreeMap::from([("just-ended".to_string(), entry("b", Some(json!({"status": "FINISHED"}))))]);
        assert_eq!(plan(&changed, &BTreeMap::new(), &ended), [start("just-ended", "b")]);
    }

    #[test]
    fn stops_processes_whose_entry_went_or_changed() {
        let running = BTreeMap::from([
            ("gone".to_string(), request("a")),
            ("changed".to_string(), request("a")),
            ("same".to_string(), request("a")),
            ("broken".to_string(), request("a")),
            ("redefined".to_string(), request("a")),
        ]);
        let entries = BTreeMap::from([
            ("changed".to_string(), entry("b", None)),
            ("same".to_string(), entry("a", None)),
            ("broken".to_string(), Entry { request: Err("bad".into()), spec: Err("bad".into()), state: None }),
            // The same request, whose definition now says something else (or nothing that runs).
            ("redefined".to_string(), Entry { request: Ok(request("a")), spec: Err("gone".into()), state: None }),
        ]);
        assert_eq!(
            plan(&entries, &running, &BTreeMap::new()),
            [Action::Stop("changed".into()), Action::Stop("gone".into())]
        );
    }

    #[test]
    fn invalid_entries_are_rejected_once() {
        let bad = |state| {
            BTreeMap::from([(
                "x".to_string(),
                Entry { request: Ok(request("a")), spec: Err("no command".into()), state },
            )])
        };
        assert_eq!(
            plan(&bad(None), &BTreeMap::new(), &BTreeMap::new()),
            [Action::Reject("x".into(), "no command".into())]
        );
        let recorded = Some(DeploymentState::read(&json!({"status": "FAILED", "error": "no command"})));
        assert_eq!(plan(&bad(recorded), &BTreeMap::new(), &BTreeMap::new()), []);
    }
}
