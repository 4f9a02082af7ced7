//! Whether a deployment is ready, from what its deployer recorded in `/deploy/<id>/state`.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Not yet, and why.
    Waiting(String),
    Ready,
    /// It will not become ready without a change: the deployer's error.
    Failed(String),
}

/// - Helm without a cluster: `rendered` is as ready as it gets.
/// - Helm with a cluster: `deployed`, and every pod of the release RUNNING (FINISHED counts too), at least as
///   many as its workloads ask for (`pods_expected`, from the release's manifest) when the deployer counted them.
/// - Processes: RUNNING or FINISHED.
///
/// A failed release, a FAILED pod or process, or a locked release is a failure.
pub fn readiness(state: Option<&Value>) -> Readiness {
    let Some(state) = state else { return Readiness::Waiting("its deployer has not reported it yet".into()) };
    let status = state.get("status").and_then(Value::as_str).unwrap_or("");
    let error = || state.get("error").and_then(Value::as_str).unwrap_or(status).to_string();
    match status.to_ascii_lowercase().as_str() {
        "failed" | "locked" => Readiness::Failed(error()),
        "rendered" | "running" | "finished" => Readiness::Ready,
        "deployed" => {
            let pods = state.get("pods").and_then(Value::as_object);
            let statuses: Vec<&str> = pods
                .map(|pods| pods.values().map(|p| p.get("status").and_then(Value::as_str).unwrap_or("")).collect())
                .unwrap_or_default();
            let running = statuses.iter().filter(|s| matches!(**s, "RUNNING" | "FINISHED")).count();
            let expected = state.get("pods_expected").and_then(Value::as_u64).unwrap_or(0) as usize;
            if let Some((name, _)) =
                pods.into_iter().flatten().find(|(_, p)| p.get("status").and_then(Value::as_str) == Some("FAILED"))
            {
                Readiness::Failed(format!("pod {name} failed"))
            } else if statuses.is_empty() {
                Readiness::Waiting("released; no pods seen yet".into())
            } else if running == statuses.len() && running >= expected {
                Readiness::Ready
            } else {
                Readiness::Waiting(format!("{running} of {} pods running", statuses.len().max(expected)))
            }
        }
        "" => Readiness::Waiting("no status yet".into()),
        other => Readiness::Waiting(format!("status {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
