//! What Helm should do for each deployment: a pure comparison of the `/deploy` entries with what is applied.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::values;

/// A release as a `/deploy` entry of type `helm` asks for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub deploy_id: String,
    pub chart: String,
    /// Nested Helm values.
    pub values: Value,
}

impl Desired {
    /// Reads a deployment entry; `None` for entries of other types, `Err` for helm entries that are not valid.
    pub fn from_deployment(d: &sdp_config::Deployment) -> Option<Result<Desired, String>> {
        let args = d.helm_args()?;
        Some(args.and_then(|args| {
            Ok(Desired { deploy_id: d.deploy_id.clone(), chart: args.chart, values: values::nest(&args.values)? })
        }))
    }

    /// The release with `defaults` under its values (the deployer's values for its chart).
    pub fn over(mut self, defaults: Option<&Value>) -> Desired {
        if let Some(defaults) = defaults {
            self.values = values::over(defaults, &self.values);
        }
        self
    }

    /// What identifies the applied configuration: the chart and its values. The chart by name, as helm records
    /// it in a release (`dask` for `stable/dask` or `oci://…/dask`), so that a release read back after a restart
    /// matches the entry that made it.
    pub fn fingerprint(&self) -> String {
        let name = self.chart.rsplit('/').next().unwrap_or(&self.chart);
        format!("{name}\n{}", self.values)
    }
}

/// How the last helm operation on a release ended, from `helm list`'s `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseStatus {
    Deployed,
    Failed,
    /// `pending-install`, `pending-upgrade`, `pending-rollback` or `uninstalling`: an operation has not finished.
    Pending(String),
}

impl ReleaseStatus {
    pub fn from_helm(status: &str) -> ReleaseStatus {
        match status {
            "deployed" | "superseded" => ReleaseStatus::Deployed,
            "failed" => ReleaseStatus::Failed,
            other => ReleaseStatus::Pending(other.to_string()),
        }
    }
}

/// A release as observed: what it was applied with (chart and values) and how that went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub fingerprint: String,
    pub status: ReleaseStatus,
}

/// Where a deployment stands, named as Flux's helm-controller names them, each with its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseState {
    /// No release: install it.
    Absent,
    /// Released with another chart or other values: upgrade.
    OutOfSync(String),
    /// The last operation failed (also one made before a restart): upgrade again.
    Failed(String),
    /// An operation did not finish (helm holds the release): nothing can run on it.
    Locked(String),
    InSync,
}

/// The state of one deployment, from its entry and the release observed for it.
pub fn release_state(desired: &Desired, observed: Option<&Observed>) -> ReleaseState {
    let Some(observed) = observed else { return ReleaseState::Absent };
    match &observed.status {
        ReleaseStatus::Pending(status) => ReleaseState::Locked(format!(
            "release is {status}: a helm operation on it did not finish; uninstall it (helm uninstall {}) to start afresh",
            desired.deploy_id
        )),
        ReleaseStatus::Failed => ReleaseState::Failed("the last helm operation on the release failed".into()),
        ReleaseStatus::Deployed if observed.fingerprint != desired.fingerprint() => {
            ReleaseState::OutOfSync("the entry names another chart or other values".into())
        }
        ReleaseStatus::Deployed => ReleaseState::InSync,
    }
}

/// A decision, with the reason it was taken (for logs and state).
#[derive(Clone, Debug, PartialEq)]
pub enum HelmAction {
    /// No release yet.
    Install(Desired),
    /// Released with other chart or values, or failed.
    Upgrade(Desired),
    /// A release whose entry is gone.
    Uninstall(String),
}

impl HelmAction {
    pub fn deploy_id(&self) -> &str {
        match self {
            HelmAction::Install(d) | HelmAction::Upgrade(d) => &d.deploy_id,
            HelmAction::Uninstall(id) => id,
        }
    }
}

/// Compares entries (by deploy ID; invalid ones are skipped here and reported by the caller) with the releases
/// observed (by deploy ID).
pub fn plan(desired: &BTreeMap<String, Desired>, observed: &BTreeMap<String, Observed>) -> Vec<HelmAction> {
    let mut actions = Vec::new();
    for (id, d) in desired {
        match release_state(d, observed.get(id)) {
            ReleaseState::Absent => actions.push(HelmAction::Install(d.clone())),
            ReleaseState::OutOfSync(_) | ReleaseState::Failed(_) => actions.push(HelmAction::Upgrade(d.clone())),
            ReleaseState::Locked(_) | ReleaseState::InSync => {}
        }
    }
    let wanted: BTreeSet<&String> = desired.keys().collect();
    for id in observed.keys().filter(|id| !wanted.contains(id)) {
        actions.push(HelmAction::Uninstall(id.clone()));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired(id: &str, chart: &str, values: Value) -> Desired {
        Desired { deploy_id: id.into(), chart: chart.into(), values }
    }

    fn deployed(d: &Desired) -> Observed {
        Observed { fingerprint: d.fingerprint(), status: ReleaseStatus::Deployed }
    }

    #[test]
    fn install_upgrade_uninstall_or_nothing() {
        let a = desired("a", "workflow", json!({"x": 1}));
        let b = desired("b", "workflow", json!({"x": 2}));
        let entries: BTreeMap<String, Desired> = [("a".to_string(), a.clone()), ("b".to_string(), b.clone())].into();
        let observed: BTreeMap<String, Observed> = [
            ("b".to_string(), deployed(&desired("b", "workflow", json!({"x": 1})))),
            ("c".to_string(), Observed { fingerprint: "old".into(), status: ReleaseStatus::Deployed }),
        ]
        .into();
        assert_eq!(
            plan(&entries, &observed),
            vec![HelmAction::Install(a.clone()), HelmAction::Upgrade(b.clone()), HelmAction::Uninstall("c".into())]
        );
        let observed: BTreeMap<String, Observed> =
            [("a".to_string(), deployed(&a)), ("b".to_string(), deployed(&b))].into();
        assert!(plan(&entries, &observed).is_empty());
        // A different chart is an upgrade too.
        let moved: BTreeMap<String, Desired> = [("a".to_string(), desired("a", "other", json!({"x": 1})))].into();
        assert!(matches!(plan(&moved, &[("a".to_string(), deployed(&a))].into())[0], HelmAction::Upgrade(_)));
    }

    #[test]
    fn states_by_entry_and_release() {
        let a = desired("a", "workflow", json!({"x": 1}));
        let with = |status: &str| Observed { fingerprint: a.fingerprint(), status: ReleaseStatus::from_helm(status) };
        assert_eq!(release_state(&a, None), ReleaseState::Absent);
        assert_eq!(release_state(&a, Some(&with("deployed"))), ReleaseState::InSync);
        assert!(matches!(
            release_state(&desired("a", "workflow", json!({})), Some(&with("deployed"))),
            ReleaseState::OutOfSync(_)
        ));
        // A release that failed is retried though its entry did not change (say, after a restart).
        assert!(matches!(release_state(&a, Some(&with("failed"))), ReleaseState::Failed(_)));
        assert_eq!(
            plan(&[("a".to_string(), a.clone())].into(), &[("a".to_string(), with("failed"))].into()),
            [HelmAction::Upgrade(a.clone())]
        );
        let ReleaseState::Locked(reason) = release_state(&a, Some(&with("pending-install"))) else {
            panic!("not locked")
        };
        assert!(reason.contains("pending-install") && reason.contains("helm uninstall a"), "{reason}");
        assert!(plan(&[("a".to_string(), a.clone())].into(), &[("a".to_string(), with("pending-upgrade"))].into())
            .is_empty());
    }

    #[test]
    fn entries_are_read_or_explained() {
        let entry = |args: Value| sdp_config::Deployment { deploy_id: "d".into(), kind: "helm".into(), args };
        let ok = Desired::from_deployment(&entry(json!({"chart": "stable/dask", "values": {"worker.replicas": 2}})))
            .unwrap()
            .unwrap();
        assert_eq!(ok.values, json!({"worker": {"replicas": 2}}));
        assert!(Desired::from_deployment(&entry(json!({}))).unwrap().unwrap_err().contains("args.chart"));
        for path in ["../../etc/passwd", "/etc", "./workflow", "a/b/c", "..", "oci://r/../x", "a b"] {
            let refused = Desired::from_deployment(&entry(json!({"chart": path}))).unwrap().unwrap_err();
            assert!(refused.contains("not a path"), "{path}: {refused}");
        }
        for chart in
            ["workflow", "stable/dask", "vis-receive", "ska-helm/ska_sdp-1.0", "oci://registry.example/charts/dask"]
        {
            assert!(Desired::from_deployment(&entry(json!({"chart": chart}))).unwrap().is_ok(), "{chart}");
        }
        assert!(Desired::from_deployment(&entry(json!({"chart": "c", "values": [1]})))
            .unwrap()
            .unwrap_err()
            .contains("args.values"));
        let other = sdp_config::Deployment { deploy_id: "d".into(), kind: "process-direct".into(), args: json!({}) };
        assert!(Desired::from_deployment(&other).is_none());
    }

    #[test]
    fn a_release_read_back_matches_the_entry_whatever_repository_it_named() {
        let values = json!({"worker": {"replicas": 2}});
        let desired = |chart: &str| Desired { deploy_id: "d".into(), chart: chart.into(), values: values.clone() };
        // helm lists a release's chart by name only.
        let released = desired("dask").fingerprint();
        for chart in ["stable/dask", "oci://registry.example/charts/dask"] {
            assert_eq!(desired(chart).fingerprint(), released, "{chart}");
        }
        assert_ne!(desired("stable/other").fingerprint(), released);
    }
}
