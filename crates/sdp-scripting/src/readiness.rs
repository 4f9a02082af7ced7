//! Whether a deployment is ready, from what its deployer recorded in `/deploy/<id>/state`.

use sdp_config::{DeploymentState, Status};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Not yet, and why.
    Waiting(String),
    Ready,
    /// It will not become ready without a change: the deployer's error.
    Failed(String),
}

/// - Helm without a cluster: RENDERED is as ready as it gets.
/// - Helm with a cluster: DEPLOYED, and every pod of the release RUNNING (FINISHED counts too), at least as
///   many as its workloads ask for (`pods_expected`, from the release's manifest) when the deployer counted them.
/// - Processes: RUNNING or FINISHED.
///
/// A FAILED deployment, pod or process, or a LOCKED release is a failure.
pub fn readiness(state: Option<&DeploymentState>) -> Readiness {
    let Some(state) = state else { return Readiness::Waiting("its deployer has not reported it yet".into()) };
    let Some(status) = state.status else { return Readiness::Waiting("no status yet".into()) };
    let error = || state.error.clone().unwrap_or_else(|| status.to_string());
    match status {
        Status::Failed | Status::Locked => Readiness::Failed(error()),
        Status::Rendered | Status::Running | Status::Finished => Readiness::Ready,
        Status::Deployed => {
            let running = state.pods.values().filter(|s| matches!(s, Some(Status::Running | Status::Finished))).count();
            let expected = state.pods_expected.unwrap_or(0) as usize;
            if let Some((name, _)) = state.pods.iter().find(|(_, s)| **s == Some(Status::Failed)) {
                Readiness::Failed(format!("pod {name} failed"))
            } else if state.pods.is_empty() {
                Readiness::Waiting("released; no pods seen yet".into())
            } else if running == state.pods.len() && running >= expected {
                Readiness::Ready
            } else {
                Readiness::Waiting(format!("{running} of {} pods running", state.pods.len().max(expected)))
            }
        }
        other => Readiness::Waiting(format!("status {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn readiness(state: Option<&Value>) -> Readiness {
        super::readiness(state.map(DeploymentState::read).as_ref())
    }

    #[test]
    fn states_of_every_deployer() {
        assert!(matches!(readiness(None), Readiness::Waiting(_)));
        assert_eq!(readiness(Some(&json!({"status": "rendered", "manifest": "/x"}))), Readiness::Ready);
        assert_eq!(readiness(Some(&json!({"status": "RUNNING", "pid": 3}))), Readiness::Ready);
        assert_eq!(
            readiness(Some(&json!({"status": "FAILED", "error": "killed by signal 9 (SIGKILL)"}))),
            Readiness::Failed("killed by signal 9 (SIGKILL)".into())
        );
        assert_eq!(
            readiness(Some(&json!({"status": "failed", "error": "chart not found"}))),
            Readiness::Failed("chart not found".into())
        );
    }

    #[test]
    fn a_release_is_ready_when_all_its_pods_run() {
        let with_pods = |pods: Value| readiness(Some(&json!({"status": "deployed", "pods": pods})));
        assert_eq!(with_pods(json!({})), Readiness::Waiting("released; no pods seen yet".into()));
        assert_eq!(
            with_pods(json!({"s": {"status": "RUNNING"}, "w1": {"status": "PENDING"}, "w2": {"status": "RUNNING"}})),
            Readiness::Waiting("2 of 3 pods running".into())
        );
        assert_eq!(with_pods(json!({"s": {"status": "RUNNING"}, "w1": {"status": "RUNNING"}})), Readiness::Ready);
        // The workloads ask for three: the third pod is not there yet.
        let counted = |pods: Value| readiness(Some(&json!({"status": "deployed", "pods": pods, "pods_expected": 3})));
        let two = json!({"s": {"status": "RUNNING"}, "w1": {"status": "RUNNING"}});
        assert_eq!(counted(two), Readiness::Waiting("2 of 3 pods running".into()));
        let three = json!({"s": {"status": "RUNNING"}, "w1": {"status": "RUNNING"}, "w2": {"status": "RUNNING"}});
        assert_eq!(counted(three), Readiness::Ready);
        assert_eq!(
            with_pods(json!({"s": {"status": "RUNNING"}, "w1": {"status": "FAILED"}})),
            Readiness::Failed("pod w1 failed".into())
        );
        // The deployer has installed it but the pod monitor has not reported yet.
        assert!(matches!(readiness(Some(&json!({"status": "deployed"}))), Readiness::Waiting(_)));
    }
}
