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
        if d.kind != "helm" {
            return None;
        }
        Some((|| {
            let chart = d.args.get("chart").and_then(Value::as_str).filter(|c| !c.is_empty());
            let chart = chart.ok_or("args.chart must be a chart name (e.g. \"workflow\" or \"repo/chart\")")?;
            let values = match d.args.get("values") {
                None | Some(Value::Null) => Value::Object(Default::default()),
                Some(Value::Object(v)) => values::nest(v)?,
                Some(other) => return Err(format!("args.values must be an object, not {other}")),
            };
            Ok(Desired { deploy_id: d.deploy_id.clone(), chart: chart.to_string(), values })
        })())
    }

    /// What identifies the applied configuration: the chart and its values.
    pub fn fingerprint(&self) -> String {
        format!("{}\n{}", self.chart, self.values)
    }
}

/// A decision, with the reason it was taken (for logs and state).
#[derive(Clone, Debug, PartialEq)]
pub enum HelmAction {
    /// No release yet.
    Install(Desired),
    /// Released with other chart or values.
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

/// Compares entries (by deploy ID; invalid ones are skipped here and reported by the caller) with applied
/// releases (deploy ID → fingerprint of what was applied).
pub fn plan(desired: &BTreeMap<String, Desired>, applied: &BTreeMap<String, String>) -> Vec<HelmAction> {
    let mut actions = Vec::new();
    for (id, d) in desired {
        match applied.get(id) {
            None => actions.push(HelmAction::Install(d.clone())),
            Some(fp) if *fp != d.fingerprint() => actions.push(HelmAction::Upgrade(d.clone())),
            Some(_) => {}
        }
    }
    let wanted: BTreeSet<&String> = desired.keys().collect();
    for id in applied.keys().filter(|id| !wanted.contains(id)) {
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

    #[test]
    fn install_upgrade_uninstall_or_nothing() {
        let a = desired("a", "workflow", json!({"x": 1}));
        let b = desired("b", "workflow", json!({"x": 2}));
        let entries: BTreeMap<String, Desired> = [("a".to_string(), a.clone()), ("b".to_string(), b.clone())].into();
        let applied: BTreeMap<String, String> = [
            ("b".to_string(), desired("b", "workflow", json!({"x": 1})).fingerprint()),
            ("c".to_string(), "old".to_string()),
        ]
        .into();
        assert_eq!(
            plan(&entries, &applied),
            vec![HelmAction::Install(a.clone()), HelmAction::Upgrade(b.clone()), HelmAction::Uninstall("c".into())]
        );
        let applied: BTreeMap<String, String> = [("a".to_string(), a.fingerprint()), ("b".to_string(), b.fingerprint())].into();
        assert!(plan(&entries, &applied).is_empty());
        // A different chart is an upgrade too.
        let moved: BTreeMap<String, Desired> = [("a".to_string(), desired("a", "other", json!({"x": 1})))].into();
        assert!(matches!(plan(&moved, &[("a".to_string(), a.fingerprint())].into())[0], HelmAction::Upgrade(_)));
    }

    #[test]
    fn entries_are_read_or_explained() {
        let entry = |args: Value| sdp_config::Deployment { deploy_id: "d".into(), kind: "helm".into(), args };
        let ok = Desired::from_deployment(&entry(json!({"chart": "stable/dask", "values": {"worker.replicas": 2}}))).unwrap().unwrap();
        assert_eq!(ok.values, json!({"worker": {"replicas": 2}}));
        assert!(Desired::from_deployment(&entry(json!({}))).unwrap().unwrap_err().contains("args.chart"));
        assert!(Desired::from_deployment(&entry(json!({"chart": "c", "values": [1]}))).unwrap().unwrap_err().contains("args.values"));
        let other = sdp_config::Deployment { deploy_id: "d".into(), kind: "process-direct".into(), args: json!({}) };
        assert!(Desired::from_deployment(&other).is_none());
    }
}
