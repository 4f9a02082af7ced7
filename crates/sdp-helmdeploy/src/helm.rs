//! The `helm` command line, driven as a subprocess. Argument lists are built by plain functions so they can
//! be checked without running anything.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::plan::Desired;
use crate::repositories::{ChartSource, Repositories, DEFAULT_REPOSITORY};

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
    /// helm writes it as a string in some versions and a number in others.
    #[serde(deserialize_with = "number_or_string")]
    pub revision: u64,
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().ok_or_else(|| serde::de::Error::custom(format!("revision {n}"))),
        Value::String(s) => s.parse().map_err(|_| serde::de::Error::custom(format!("revision {s:?}"))),
        other => Err(serde::de::Error::custom(format!("revision {other}"))),
    }
}

/// Why the chart a deployment entry names is not taken: helm is not started for it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChartRefused {
    #[error(
        "no chart {chart:?} among the local charts ({dir}) and no chart repository to look in: add the chart there \
         or set --chart-repo-url (SDP_CHART_REPO_URL)"
    )]
    NotFound { chart: String, dir: String },
    #[error(
        "chart {chart:?} names the repository {repo:?}, which means the local charts ({dir}), and they have no \
         {name:?}: add it there, or map {repo:?} to a chart repository in --chart-repos (SDP_CHART_REPOS)"
    )]
    NotLocal { chart: String, repo: String, name: String, dir: String },
    #[error(
        "chart {chart:?} names the repository {repo:?}, which is not configured (configured: {configured}): name \
         a local chart, or add {repo}=<url> to --chart-repos (SDP_CHART_REPOS)"
    )]
    UnknownRepository { chart: String, repo: String, configured: String },
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
    /// Local charts by name (`<dir>/<chart>`), tried before the repositories.
    pub charts_dir: Option<PathBuf>,
    /// Where `<repository>/<chart>` comes from; bare names not found locally come from
    /// [`DEFAULT_REPOSITORY`] when it is a chart repository.
    pub repositories: Repositories,
    /// Where helm keeps the repositories it added and their indexes (`HELM_REPOSITORY_CONFIG`,
    /// `HELM_REPOSITORY_CACHE`): the deployer's own, apart from those of the user running it. None: helm's.
    pub repository_dir: Option<PathBuf>,
    /// OCI registries (`host` or `host:port`, as `oci://` references write them) that charts may come from.
    pub oci_registries: Vec<String>,
}

impl Helm {
    /// Where a chart named in a deployment entry comes from: a local chart (by absolute path), a configured
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
        match chart.split_once('/') {
            None => match (self.local_chart(chart), self.repositories.get(DEFAULT_REPOSITORY)) {
                (Some(local), _) => Ok(local),
                (None, Some(ChartSource::Url(_))) => Ok(format!("{DEFAULT_REPOSITORY}/{chart}")),
                (None, _) => Err(ChartRefused::NotFound { chart: chart.into(), dir: self.charts_dir_name() }),
            },
            Some((repo, name)) => match self.repositories.get(repo) {
                Some(ChartSource::Url(_)) => Ok(chart.to_string()),
                Some(ChartSource::Local) => self.local_chart(name).ok_or_else(|| ChartRefused::NotLocal {
                    chart: chart.into(),
                    repo: repo.into(),
                    name: name.into(),
                    dir: self.charts_dir_name(),
                }),
                None => Err(ChartRefused::UnknownRepository {
                    chart: chart.into(),
                    repo: repo.into(),
                    configured: self.repositories.describe(),
                }),
            },
        }
    }

    /// The local chart an entry's chart stands for, by name (`dask` for `dask` and for `stable/dask` while
    /// `stable` means the local charts): the name the deployer's own values for it are kept under.
    pub fn local_name<'a>(&self, chart: &'a str) -> Option<&'a str> {
        let name = match chart.split_once('/') {
            None => chart,
            Some((repo, name)) if self.repositories.get(repo) == Some(&ChartSource::Local) => name,
            Some(_) => return None,
        };
        self.local_chart(name).map(|_| name)
    }

    /// The absolute path of the local chart `name`, if there is one.
    fn local_chart(&self, name: &str) -> Option<String> {
        let local = self.charts_dir.as_ref()?.join(name);
        local.join("Chart.yaml").is_file().then(|| absolute(&local))
    }

    fn charts_dir_name(&self) -> String {
        self.charts_dir.as_ref().map_or("none".into(), |d| d.display().to_string())
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
        let mut command = tokio::process::Command::new(&self.bin);
        if let Some(dir) = &self.repository_dir {
            command
                .env("HELM_REPOSITORY_CONFIG", dir.join("repositories.yaml"))
                .env("HELM_REPOSITORY_CACHE", dir.join("cache"));
        }
        let out = command
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

    /// Adds the chart repositories (again, if their URL changed) and fetches their indexes.
    pub async fn add_repositories(&self) -> Result<(), HelmError> {
        for (name, url) in self.repositories.urls() {
            self.run(&["repo".into(), "add".into(), name.into(), url.into(), "--force-update".into()]).await?;
        }
        self.update_repositories().await
    }

    /// Fetches the chart repositories' indexes, so that new chart versions are found; nothing without any.
    pub async fn update_repositories(&self) -> Result<(), HelmError> {
        let names: Vec<String> = self.repositories.urls().map(|(name, _)| name.to_string()).collect();
        if names.is_empty() {
            return Ok(());
        }
        self.run(&[vec!["repo".to_string(), "update".to_string()], names].concat()).await.map(drop)
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
            repositories: Repositories::new(Some("https://charts.example/".into()), &Repositories::default()),
            repository_dir: None,
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
    fn charts_come_from_the_local_charts_a_configured_repository_or_an_allowed_registry() {
        let dir = tempfile::tempdir().unwrap();
        for chart in ["workflow", "dask"] {
            std::fs::create_dir_all(dir.path().join(chart)).unwrap();
            std::fs::write(dir.path().join(chart).join("Chart.yaml"), format!("name: {chart}")).unwrap();
        }
        let local = |chart: &str| Ok(dir.path().join(chart).display().to_string());
        let mut helm = Helm {
            bin: "helm".into(),
            namespace: "sdp".into(),
            charts_dir: Some(dir.path().to_path_buf()),
            repositories: Repositories::default(),
            repository_dir: None,
            oci_registries: vec!["registry.example".into(), "127.0.0.1:5000".into()],
        };
        assert_eq!(helm.chart_ref("workflow"), local("workflow"));
        assert!(matches!(helm.chart_ref("vis-receive"), Err(ChartRefused::NotFound { .. })));
        // The seed era's `stable/dask` is the local dask, and the deployer's values for `dask` are its.
        assert_eq!(helm.chart_ref("stable/dask"), local("dask"));
        assert_eq!(helm.local_name("stable/dask"), Some("dask"));
        assert_eq!(helm.local_name("dask"), Some("dask"));
        let missing = helm.chart_ref("stable/vis-receive").unwrap_err();
        assert!(matches!(&missing, ChartRefused::NotLocal { name, .. } if name == "vis-receive"), "{missing}");
        assert!(missing.to_string().contains("SDP_CHART_REPOS"), "{missing}");
        let unknown = helm.chart_ref("nest/inner").unwrap_err();
        assert!(matches!(&unknown, ChartRefused::UnknownRepository { repo, .. } if repo == "nest"), "{unknown}");
        assert!(unknown.to_string().contains("not configured (configured: stable (local))"), "{unknown}");
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
        // With repositories: bare names not found locally come from the default one, `repo/chart` names a
        // configured repository, and a site may send `stable` to a real repository.
        let site = Repositories::parse("ska=https://charts.example/ska,stable=https://charts.helm.sh/stable").unwrap();
        helm.repositories = Repositories::new(Some("https://charts.example/".into()), &site);
        assert_eq!(helm.chart_ref("vis-receive").as_deref(), Ok("helmdeploy/vis-receive"));
        assert_eq!(helm.chart_ref("dask"), local("dask"));
        assert_eq!(helm.chart_ref("ska/dask").as_deref(), Ok("ska/dask"));
        assert_eq!(helm.chart_ref("stable/dask").as_deref(), Ok("stable/dask"));
        assert_eq!(helm.local_name("stable/dask"), None);
        assert_eq!(helm.local_name("ska/dask"), None);
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
