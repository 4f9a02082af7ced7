//! The `helm` command line, driven as a subprocess. Argument lists are built by plain functions so they can
//! be checked without running anything.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::plan::Desired;

#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("cannot run {bin}: {source}. Is helm installed? (scripts/setup installs it; or set SDP_HELM)")]
    Spawn { bin: String, source: std::io::Error },
    #[error("`helm {command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    /// Install of a release whose name is taken (made while the deployer was down, say).
    #[error("`helm {command}`: a release of that name exists: {stderr}")]
    NameInUse { command: String, stderr: String },
    #[error("`helm {command}`: no such release: {stderr}")]
    ReleaseNotFound { command: String, stderr: String },
    #[error(
        "`helm {command}`: the namespace {namespace} does not exist: create it (`kubectl create namespace {namespace}`), \
         let the deployer create it (it tries at start when it may), or set SDP_HELM_NAMESPACE to an existing one"
    )]
    NamespaceMissing { command: String, namespace: String },
    #[error("`helm {command}` printed something unexpected: {detail}")]
    Output { command: String, detail: String },
}

/// A release as `helm list -o json` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub chart: String,
    pub status: String,
}

#[derive(Clone, Debug)]
pub struct Helm {
    pub bin: PathBuf,
    pub namespace: String,
    /// Local charts by name (`<dir>/<chart>`), tried before the repository.
    pub charts_dir: Option<PathBuf>,
    /// Chart repository (name, URL) added at start; bare chart names resolve to `<name>/<chart>`.
    pub repo: Option<(String, String)>,
}

impl Helm {
    /// Where a chart named in a deployment entry comes from.
    pub fn chart_ref(&self, chart: &str) -> String {
        if !chart.contains('/') {
            if let Some(dir) = &self.charts_dir {
                let local = dir.join(chart);
                if local.join("Chart.yaml").is_file() {
                    return local.display().to_string();
                }
            }
            if let Some((name, _)) = &self.repo {
                return format!("{name}/{chart}");
            }
        }
        chart.to_string()
    }

    /// Installs, printing the release as JSON (its manifest says how many pods to wait for).
    pub fn install_args(&self, d: &Desired, values_file: &Path) -> Vec<String> {
        let mut args = self.release_args("install", d, values_file);
        args.extend(["--output".into(), "json".into()]);
        args
    }

    /// Upgrades, printing the release as JSON.
    pub fn upgrade_args(&self, d: &Desired, values_file: &Path) -> Vec<String> {
        let mut args = self.release_args("upgrade", d, values_file);
        args.extend(["--output".into(), "json".into()]);
        args
    }

    pub fn template_args(&self, d: &Desired, values_file: &Path) -> Vec<String> {
        self.release_args("template", d, values_file)
    }

    fn release_args(&self, verb: &str, d: &Desired, values_file: &Path) -> Vec<String> {
        vec![
            verb.into(),
            d.deploy_id.clone(),
            self.chart_ref(&d.chart),
            "--namespace".into(),
            self.namespace.clone(),
            "--values".into(),
            values_file.display().to_string(),
        ]
    }

    pub fn uninstall_args(&self, deploy_id: &str) -> Vec<String> {
        vec!["uninstall".into(), deploy_id.into(), "--namespace".into(), self.namespace.clone()]
    }

    /// Releases in every state that holds the name (helm 4 has no `--all`; these flags exist in 3 and 4).
    pub fn list_args(&self) -> Vec<String> {
        ["list", "--deployed", "--failed", "--pending", "--namespace", &self.namespace, "--output", "json"]
            .map(String::from)
            .to_vec()
    }

    pub fn get_values_args(&self, deploy_id: &str) -> Vec<String> {
        vec![
            "get".into(),
            "values".into(),
            deploy_id.into(),
            "--namespace".into(),
            self.namespace.clone(),
            "--output".into(),
            "json".into(),
        ]
    }

    /// Runs helm; returns its standard output.
    pub async fn run(&self, args: &[String]) -> Result<String, HelmError> {
        let out = tokio::process::Command::new(&self.bin)
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| HelmError::Spawn { bin: self.bin.display().to_string(), source })?;
        if !out.status.success() {
            return Err(failure(args.join(" "), String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub async fn list(&self) -> Result<Vec<Release>, HelmError> {
        let args = self.list_args();
        let text = self.run(&args).await?;
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_str(&text).map_err(|e| HelmError::Output { command: args.join(" "), detail: e.to_string() })
    }

    /// The values a release was installed with.
    pub async fn get_values(&self, deploy_id: &str) -> Result<Value, HelmError> {
        let args = self.get_values_args(deploy_id);
        let text = self.run(&args).await?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| HelmError::Output { command: args.join(" "), detail: e.to_string() })?;
        // helm prints `null` for a release installed without values.
        Ok(if value.is_null() { Value::Object(Default::default()) } else { value })
    }

    /// Adds (or refreshes) the chart repository.
    pub async fn add_repo(&self) -> Result<(), HelmError> {
        if let Some((name, url)) = &self.repo {
            self.run(&["repo".into(), "add".into(), name.clone(), url.clone(), "--force-update".into()]).await?;
            self.run(&["repo".into(), "update".into()]).await?;
        }
        Ok(())
    }
}

/// The kind of a helm failure, from its message (helm has no machine-readable errors).
pub fn failure(command: String, stderr: String) -> HelmError {
    if stderr.contains("cannot re-use a name that is still in use") {
        return HelmError::NameInUse { command, stderr };
    }
    if stderr.contains("release: not found") {
        return HelmError::ReleaseNotFound { command, stderr };
    }
    // e.g. `create: failed to create: namespaces "sdp" not found`
    if let Some(namespace) =
        stderr.split("namespaces \"").nth(1).and_then(|rest| rest.split_once("\" not found")).map(|(ns, _)| ns)
    {
        return HelmError::NamespaceMissing { command, namespace: namespace.to_string() };
    }
    HelmError::Failed { command, stderr }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn command_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workflow")).unwrap();
        std::fs::write(dir.path().join("workflow/Chart.yaml"), "name: workflow").unwrap();
        let helm = Helm {
            bin: "helm".into(),
            namespace: "sdp".into(),
            charts_dir: Some(dir.path().to_path_buf()),
            repo: Some(("ska".into(), "https://charts.example/".into())),
        };
        let d = Desired { deploy_id: "pb-1-workflow".into(), chart: "workflow".into(), values: json!({}) };
        let local = dir.path().join("workflow").display().to_string();
        assert_eq!(
            helm.install_args(&d, Path::new("/v/pb-1-workflow.json")),
            [
                "install",
                "pb-1-workflow",
                local.as_str(),
                "--namespace",
                "sdp",
                "--values",
                "/v/pb-1-workflow.json",
                "--output",
                "json"
            ]
        );
        assert_eq!(helm.upgrade_args(&d, Path::new("/v.json"))[0], "upgrade");
        assert_eq!(helm.chart_ref("dask"), "ska/dask");
        assert_eq!(helm.chart_ref("stable/dask"), "stable/dask");
        assert_eq!(helm.uninstall_args("x"), ["uninstall", "x", "--namespace", "sdp"]);
        assert_eq!(
            helm.list_args(),
            ["list", "--deployed", "--failed", "--pending", "--namespace", "sdp", "--output", "json"]
        );
    }

    #[test]
    fn failures_by_kind() {
        let kind = |stderr: &str| failure("install x".into(), stderr.into());
        assert!(matches!(
            kind("Error: INSTALLATION FAILED: cannot re-use a name that is still in use"),
            HelmError::NameInUse { .. }
        ));
        assert!(matches!(
            kind("Error: uninstall: Release not loaded: x: release: not found"),
            HelmError::ReleaseNotFound { .. }
        ));
        let missing = kind("Error: INSTALLATION FAILED: create: failed to create: namespaces \"sdp\" not found");
        assert!(matches!(&missing, HelmError::NamespaceMissing { namespace, .. } if namespace == "sdp"), "{missing:?}");
        assert!(missing.to_string().contains("kubectl create namespace sdp"), "{missing}");
        assert!(matches!(kind("Error: chart \"nope\" not found"), HelmError::Failed { .. }));
    }
}
