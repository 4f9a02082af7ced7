//! Where the charts an entry names as `<repository>/<chart>` come from: a map from repository names to chart
//! sources. The seed era's names for what the bundled charts carry are there by default (`stable/dask`, which
//! scripts of that time request, is the bundled `dask`); a site adds real repositories by name and URL, which
//! the deployer adds to helm once and refreshes on a schedule, never on an install.

use std::collections::BTreeMap;
use std::fmt;

/// The repository `--chart-repo-url` (`SDP_CHART_REPO_URL`) is added as; bare chart names that are not local
/// come from it.
pub const DEFAULT_REPOSITORY: &str = "helmdeploy";

/// Repository names that mean the local (by default the bundled) charts unless a site maps them elsewhere:
/// `stable` is where the seed era's scripts found `dask`.
const LOCAL_BY_DEFAULT: &[&str] = &["stable"];

/// Where the charts of one repository name come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChartSource {
    /// The local charts (`--charts-dir`, by default those bundled in `sdp`): `<repository>/<chart>` is the local
    /// `<chart>`.
    Local,
    /// A Helm chart repository at this URL, added to helm under the repository's name.
    Url(String),
}

impl fmt::Display for ChartSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChartSource::Local => f.write_str("local"),
            ChartSource::Url(url) => f.write_str(url),
        }
    }
}

/// Repository names and their chart sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repositories(BTreeMap<String, ChartSource>);

impl Default for Repositories {
    /// The seed era's names of the bundled charts' repositories, as local sources.
    fn default() -> Self {
        Repositories(LOCAL_BY_DEFAULT.iter().map(|name| (name.to_string(), ChartSource::Local)).collect())
    }
}

impl Repositories {
    /// The defaults, then `--chart-repo-url` as [`DEFAULT_REPOSITORY`], then the site's own entries, each
    /// replacing what came before under its name.
    pub fn new(chart_repo_url: Option<String>, site: &Repositories) -> Repositories {
        let mut repositories = Repositories::default();
        if let Some(url) = chart_repo_url {
            repositories.0.insert(DEFAULT_REPOSITORY.into(), ChartSource::Url(url));
        }
        repositories.0.extend(site.0.iter().map(|(name, source)| (name.clone(), source.clone())));
        repositories
    }

    /// Reads `name=url` or `name=local` entries separated by commas (`--chart-repos`, `SDP_CHART_REPOS`), e.g.
    /// `ska=https://artefact.skao.int/repository/helm-internal,stable=local`. Names are those helm accepts for
    /// a repository; URLs must be http(s).
    pub fn parse(text: &str) -> Result<Repositories, String> {
        let mut repositories = BTreeMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, source) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?} is not name=url or name=local (e.g. ska=https://charts.example)"))?;
            let (name, source) = (name.trim(), source.trim());
            if name.is_empty()
                || name.starts_with('.')
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(format!("{name:?} is not a repository name: use letters, digits, '.', '_' and '-'"));
            }
            let source = if source == "local" {
                ChartSource::Local
            } else if source.starts_with("https://") || source.starts_with("http://") {
                ChartSource::Url(source.to_string())
            } else {
                return Err(format!("repository {name}: {source:?} is neither an http(s) URL nor `local`"));
            };
            if repositories.insert(name.to_string(), source).is_some() {
                return Err(format!("repository {name} is named twice"));
            }
        }
        Ok(Repositories(repositories))
    }

    pub fn get(&self, name: &str) -> Option<&ChartSource> {
        self.0.get(name)
    }

    /// The repositories helm is to add, by name and URL.
    pub fn urls(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().filter_map(|(name, source)| match source {
            ChartSource::Url(url) => Some((name.as_str(), url.as_str())),
            ChartSource::Local => None,
        })
    }

    /// The names configured, for error messages: `stable (local), ska (https://...)`.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0.iter().map(|(name, source)| format!("{name} ({source})")).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_is_local_by_default_and_a_site_may_map_it_elsewhere() {
        let defaults = Repositories::new(None, &Repositories::parse("").unwrap());
        assert_eq!(defaults.get("stable"), Some(&ChartSource::Local));
        assert_eq!(defaults.urls().count(), 0);
        let site =
            Repositories::parse("stable=https://charts.helm.sh/stable, ska = https://charts.example/ska").unwrap();
        let repositories = Repositories::new(Some("https://deploy.example".into()), &site);
        assert_eq!(
            repositories.urls().collect::<Vec<_>>(),
            [
                ("helmdeploy", "https://deploy.example"),
                ("ska", "https://charts.example/ska"),
                ("stable", "https://charts.helm.sh/stable")
            ]
        );
        assert_eq!(
            repositories.describe(),
            "helmdeploy (https://deploy.example), ska (https://charts.example/ska), stable (https://charts.helm.sh/stable)"
        );
        // A site may name its own local aliases, and take the default repository's name back.
        let site = Repositories::parse("ska-sdp=local,helmdeploy=local").unwrap();
        let repositories = Repositories::new(Some("https://deploy.example".into()), &site);
        assert_eq!(repositories.get("ska-sdp"), Some(&ChartSource::Local));
        assert_eq!(repositories.urls().count(), 0);
    }

    #[test]
    fn bad_entries_say_what_is_expected() {
        for (text, said) in [
            ("ska", "is not name=url or name=local"),
            ("=https://x", "is not a repository name"),
            ("../x=https://x", "is not a repository name"),
            ("a b=https://x", "is not a repository name"),
            ("ska=file:///etc", "neither an http(s) URL nor `local`"),
            ("ska=oci://registry.example/charts", "neither an http(s) URL nor `local`"),
            ("ska=https://a,ska=https://b", "named twice"),
        ] {
            let err = Repositories::parse(text).unwrap_err();
            assert!(err.contains(said), "{text}: {err}");
        }
    }
}
