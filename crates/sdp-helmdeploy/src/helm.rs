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
    #[error("cannot make an empty working folder for helm in {dir}: {source}. Set TMPDIR to a writable folder")]
    WorkingDir { dir: String, source: std::io::Error },
}

/// A release as `helm list -o json` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub chart: String,
    pub status: String,
}

/// The name the chart repository (`--chart-repo-url`) is added under: entries name its charts `helmdeploy/<chart>`.
pub const REPOSITORY: &str = "helmdeploy";

/// Why the chart a deployment entry names is not taken: helm is not started for it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChartRefused {
    #[error(
        "no chart {chart:?} among the local charts ({dir}) and no chart repository to look in: add the chart there \
         or set --chart-repo-url (SDP_CHART_REPO_URL)"
    )]
    NotFound { chart: String, dir: String },
    #[error("chart {chart:?} names the repository {repo:?}, which is not configured: name a local chart, or {hint}")]
    UnknownRepository { chart: String, repo: String, hint: String },
    #[error(
        "chart {chart:?} is in the OCI registry {registry:?}, which is not allowed: add it to \
         --helm-oci-registries (SDP_HELM_OCI_REGISTRIES) to allow it"
    )]
    OciRegistry { chart: String, registry: String },
}

#[derive(Clone, Debug)]
pub struct Helm {
    pub bin: PathBuf,
    pub namespace: String,
    /// Local charts by name (`<dir>/<chart>`), tried before the repository.
    pub charts_dir: Option<PathBuf>,
    /// Chart repository (name, URL) added at start; bare chart names resolve to `<name>/<chart>`.
    pub repo: Option<(String, String)>,
    /// OCI registries (`host` or `host:port`, as `oci://` references write them) that charts may come from.
    pub oci_registries: Vec<String>,
}

impl Helm {
    /// Where a chart named in a deployment entry comes from: a local chart (by absolute path), the configured
    /// repository (`<repo>/<chart>`) or an allowed OCI registry. Anything else is refused, since helm would
    /// otherwise read a relative name from its working directory or connect to whatever host an entry names.
    pub fn chart_ref(&self, chart: &str) -> Result<String, ChartRefused> {
        if let Some(reference) = chart.strip_prefix("oci://") {
            let registry = reference.split('/').next().unwrap_or_default();
            if self.oci_registries.iter().any(|allowed| allowed.eq_ignore_ascii_case(registry)) {
                return Ok(chart.to_string());
            }
            return Err(ChartRefused::OciRegistry { chart: chart.into(), registry: registry.into() });
        }
        let repo = self.repo.as_ref().map(|(name, _)| name.as_str());
        match chart.split_once('/') {
            None => {
                if let Some(dir) = &self.charts_dir {
                    let local = dir.join(chart);
                    if local.join("Chart.yaml").is_file() {
                        return Ok(absolute(&local));
                    }
                }
                match repo {
                    Some(repo) => Ok(format!("{repo}/{chart}")),
                    None => Err(ChartRefused::NotFound {
                        chart: chart.into(),
                        dir: self.charts_dir.as_ref().map_or("none".into(), |d| d.display().to_string()),
                    }),
                }
            }
            Some((named, _)) if Some(named) == repo => Ok(chart.to_string()),
            Some((named, _)) => Err(ChartRefused::UnknownRepository {
                chart: chart.into(),
                repo: named.into(),
                hint: match repo {
                    Some(repo) => format!("one of the configured repository as {repo}/<chart>"),
                    None => {
                        format!("set --chart-repo-url (SDP_CHART_REPO_URL) and name its charts {REPOSITORY}/<chart>")
                    }
                },
            }),
        }
    }

    /// Installs, printing the release as JSON (its manifest says how many pods to wait for).
    pub fn install_args(&self, d: &Desired, values_file: &Path) -> Result<Vec<String>, ChartRefused> {
        let mut args = self.release_args("install", d, values_file)?;
        args.extend(["--output".into(), "json".into()]);
        Ok(args)
    }

    /// Upgrades, printing the release as JSON.
    pub fn upgrade_args(&self, d: &Desired, values_file: &Path) -> Result<Vec<String>, ChartRefused> {
        let mut args = self.release_args("upgrade", d, values_file)?;
        args.extend(["--output".into(), "json".into()]);
        Ok(args)
    }

    pub fn template_args(&self, d: &Desired, values_file: &Path) -> Result<Vec<String>, ChartRefused> {
        self.release_args("template", d, values_file)
    }

    fn release_args(&self, verb: &str, d: &Desired, values_file: &Path) -> Result<Vec<String>, ChartRefused> {
        Ok(vec![
            verb.into(),
            d.deploy_id.clone(),
            self.chart_ref(&d.chart)?,
            "--namespace".into(),
            self.namespace.clone(),
            "--values".into(),
            absolute(values_file),
        ])
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

    /// Runs helm in an empty folder of its own, made for this command (helm reads a chart named `x` or `a/b`
    /// from its working directory when one is there); returns its standard output.
    pub async fn run(&self, args: &[String]) -> Result<String, HelmError> {
        let cwd = tempfile::Builder::new()
            .prefix("sdp-helm-")
            .tempdir()
            .map_err(|source| HelmError::WorkingDir { dir: std::env::temp_dir().display().to_string(), source })?;
        let out = tokio::process::Command::new(&self.bin)
            .args(args)
            .current_dir(cwd.path())
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

/// `path` as helm, running elsewhere, finds it.
fn absolute(path: &Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
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
            oci_registries: vec![],
        };
        let d = Desired { deploy_id: "pb-1-workflow".into(), chart: "workflow".into(), values: json!({}) };
        let local = dir.path().join("workflow").display().to_string();
        assert_eq!(
            helm.install_args(&d, Path::new("/v/pb-1-workflow.json")).unwrap(),
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
        assert_eq!(helm.upgrade_args(&d, Path::new("/v.json")).unwrap()[0], "upgrade");
        // helm runs elsewhere: a relative values file is given by its absolute path.
        let relative = helm.template_args(&d, Path::new("work/v.json")).unwrap();
        assert_eq!(relative[6], std::env::current_dir().unwrap().join("work/v.json").display().to_string());
        assert_eq!(helm.uninstall_args("x"), ["uninstall", "x", "--namespace", "sdp"]);
        assert_eq!(
            helm.list_args(),
            ["list", "--deployed", "--failed", "--pending", "--namespace", "sdp", "--output", "json"]
        );
    }

    #[test]
    fn charts_come_from_the_local_charts_the_repository_or_an_allowed_registry() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workflow")).unwrap();
        std::fs::write(dir.path().join("workflow/Chart.yaml"), "name: workflow").unwrap();
        let mut helm = Helm {
            bin: "helm".into(),
            namespace: "sdp".into(),
            charts_dir: Some(dir.path().to_path_buf()),
            repo: None,
            oci_registries: vec!["registry.example".into(), "127.0.0.1:5000".into()],
        };
        assert_eq!(helm.chart_ref("workflow"), Ok(dir.path().join("workflow").display().to_string()));
        assert!(matches!(helm.chart_ref("dask"), Err(ChartRefused::NotFound { .. })));
        let unknown = helm.chart_ref("nest/inner").unwrap_err();
        assert!(matches!(&unknown, ChartRefused::UnknownRepository { repo, .. } if repo == "nest"), "{unknown}");
        assert!(unknown.to_string().contains("not configured"), "{unknown}");
        // Allowed registries, by host or host:port as the reference writes them.
        for allowed in ["oci://registry.example/charts/dask", "oci://REGISTRY.example/x", "oci://127.0.0.1:5000/x"] {
            assert_eq!(helm.chart_ref(allowed).as_deref(), Ok(allowed));
        }
        for refused in ["oci://127.0.0.1:1/x", "oci://registry.example:444/x", "oci://user@registry.example/x"] {
            let e = helm.chart_ref(refused).unwrap_err();
            assert!(matches!(e, ChartRefused::OciRegistry { .. }), "{refused}: {e}");
            assert!(e.to_string().contains("SDP_HELM_OCI_REGISTRIES"), "{e}");
        }
        helm.oci_registries.clear();
        assert!(helm.chart_ref("oci://registry.example/charts/dask").is_err());
        // With a repository: bare names not found locally come from it, and `repo/chart` only names it.
        helm.repo = Some(("ska".into(), "https://charts.example/".into()));
        assert_eq!(helm.chart_ref("dask").as_deref(), Ok("ska/dask"));
        assert_eq!(helm.chart_ref("ska/dask").as_deref(), Ok("ska/dask"));
        let unknown = helm.chart_ref("stable/dask").unwrap_err();
        assert!(unknown.to_string().ends_with("or one of the configured repository as ska/<chart>"), "{unknown}");
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
