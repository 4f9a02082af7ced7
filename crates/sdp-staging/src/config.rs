//! Configuration: command-line flags and environment variables (the names the Helm chart sets), over an optional
//! YAML file with the chart's `config:` keys in camelCase.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::method::{self, Method};

/// A secret value: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub allowed_methods: Vec<Method>,
    pub source_root: PathBuf,
    pub target_root: PathBuf,
    /// A tracing filter directive (`info`, `debug`, ...).
    pub log_filter: String,
    pub jupyterhub_url: Option<String>,
    pub jupyterhub_token: Option<Secret>,
    pub rucio_base_url: Option<String>,
    pub rucio_token: Option<Secret>,
    pub database_url: Secret,
    pub api_token: Option<Secret>,
    /// `POST /create-file/` may replace an existing file even without an API token.
    pub allow_overwrite: bool,
}

impl Settings {
    /// Whether `POST /create-file/` may replace a file in the storage root: source data is only overwritten by
    /// callers holding the API token, or where the operator said anyone may.
    pub fn may_overwrite(&self) -> bool {
        self.api_token.is_some() || self.allow_overwrite
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("configuration file {path} is not valid YAML with the chart's config keys: {source}")]
    Parse { path: String, source: serde_yaml::Error },
    #[error("ALLOWED_METHODS: {0}")]
    Methods(#[from] method::MethodError),
    #[error("LOGGING_LEVEL `{0}` is not one of DEBUG, INFO, WARNING, ERROR")]
    Level(String),
    #[error("STAGING_LISTEN `{0}` is not an address like 0.0.0.0:8000")]
    Listen(String),
    #[error("no home folder to keep the SQLite database in: set STAGING_DATA_DIR or DATABASE_URL")]
    NoDataDir,
}

/// Flags of `sdp-staging up`; each can come from the environment variable named.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct UpArgs {
    /// YAML file with the chart's `config:` keys (camelCase); flags and environment variables win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to serve the API and the web page on [default: 0.0.0.0:8000].
    #[arg(long, env = "STAGING_LISTEN")]
    pub listen: Option<String>,
    /// Methods the service offers: comma-separated or a JSON list [default: all four].
    #[arg(long, env = "ALLOWED_METHODS")]
    pub allowed_methods: Option<String>,
    /// Root of the storage that data is staged from [default: /tmp/storage_a].
    #[arg(long, env = "SOURCE_STORAGE_PATH")]
    pub source_storage_path: Option<PathBuf>,
    /// Root of the user areas, one folder per user [default: /tmp/user_areas].
    #[arg(long, env = "TARGET_STORAGE_PATH")]
    pub target_storage_path: Option<PathBuf>,
    /// DEBUG, INFO, WARNING or ERROR [default: INFO].
    #[arg(long, env = "LOGGING_LEVEL")]
    pub logging_level: Option<String>,
    /// JupyterHub base URL, e.g. https://jupyterhub.example.org.
    #[arg(long, env = "JUPYTERHUB_URL")]
    pub jupyterhub_url: Option<String>,
    /// JupyterHub API token used when a request brings none.
    #[arg(long, env = "JUPYTERHUB_API_TOKEN", hide_env_values = true)]
    pub jupyterhub_api_token: Option<String>,
    /// Rucio server base URL, to resolve `scope:name` identifiers.
    #[arg(long, env = "RUCIO_BASE_URL")]
    pub rucio_base_url: Option<String>,
    /// Rucio token, sent as X-Rucio-Auth-Token.
    #[arg(long, env = "RUCIO_AUTH_TOKEN", hide_env_values = true)]
    pub rucio_auth_token: Option<String>,
    /// Metadata database: mysql://user:password@host:port/database or sqlite://path.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// MySQL host, used when DATABASE_URL is not set.
    #[arg(long, env = "MYSQL_HOST")]
    pub mysql_host: Option<String>,
    /// MySQL port [default: 3306].
    #[arg(long, env = "MYSQL_PORT")]
    pub mysql_port: Option<u16>,
    /// MySQL database [default: staging].
    #[arg(long, env = "MYSQL_DATABASE")]
    pub mysql_database: Option<String>,
    /// MySQL user [default: staging].
    #[arg(long, env = "MYSQL_USER")]
    pub mysql_user: Option<String>,
    /// MySQL password.
    #[arg(long, env = "MYSQL_PASSWORD", hide_env_values = true)]
    pub mysql_password: Option<String>,
    /// Folder of the embedded SQLite database [default: ~/.local/share/sdp-staging].
    #[arg(long, env = "STAGING_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// When set, every API route but /health needs `Authorization: Bearer <token>`.
    #[arg(long, env = "STAGING_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Let `POST /create-file/` replace existing files without an API token (with one, token holders may).
    #[arg(long, env = "STAGING_ALLOW_OVERWRITE")]
    pub allow_overwrite: bool,
}

/// The YAML file: the chart's `config:` keys.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileConfig {
    listen: Option<String>,
    allowed_methods: Option<serde_yaml::Value>,
    source_storage_path: Option<PathBuf>,
    target_storage_path: Option<PathBuf>,
    logging_level: Option<String>,
    #[serde(alias = "jupyterhubUrl")]
    jupyter_hub_url: Option<String>,
    #[serde(alias = "jupyterhubApiToken")]
    jupyter_hub_api_token: Option<String>,
    rucio_base_url: Option<String>,
    rucio_auth_token: Option<String>,
    database_url: Option<String>,
    mysql_host: Option<String>,
    mysql_port: Option<u16>,
    mysql_database: Option<String>,
    mysql_user: Option<String>,
    mysql_password: Option<String>,
    data_dir: Option<PathBuf>,
    api_token: Option<String>,
    allow_overwrite: Option<bool>,
}

/// The tracing filter for a `LOGGING_LEVEL` as the original took it (Python's level names).
pub fn log_filter(level: &str) -> Result<String, ConfigError> {
    let level = match level.trim().to_ascii_uppercase().as_str() {
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARNING" | "WARN" => "warn",
        "ERROR" | "CRITICAL" => "error",
        _ => return Err(ConfigError::Level(level.to_string())),
    };
    // sqlx reports every statement at debug: keep it at warn so DEBUG stays readable.
    Ok(format!("{level},sqlx=warn"))
}

/// The MySQL URL from its parts.
pub fn mysql_url(host: &str, port: u16, database: &str, user: &str, password: Option<&str>) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let auth = match password {
        Some(p) => format!("{}:{}", enc(user), enc(p)),
        None => enc(user),
    };
    format!("mysql://{auth}@{host}:{port}/{}", enc(database))
}

impl UpArgs {
    /// The settings: flags/environment first, then the file, then the defaults.
    pub fn settings(self) -> Result<Settings, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen_text = self.listen.or(file.listen).unwrap_or_else(|| "0.0.0.0:8000".into());
        let listen = listen_text.parse().map_err(|_| ConfigError::Listen(listen_text))?;
        let allowed_methods = match (self.allowed_methods, file.allowed_methods) {
            (Some(text), _) => method::parse_list(&text)?,
            (None, Some(serde_yaml::Value::Sequence(items))) => {
                let names: Vec<String> = items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
                method::parse_list(&names.join(","))?
            }
            (None, Some(serde_yaml::Value::String(text))) => method::parse_list(&text)?,
            _ => Method::ALL.to_vec(),
        };
        let level = self.logging_level.or(file.logging_level).unwrap_or_else(|| "INFO".into());
        let mysql_host = self.mysql_host.or(file.mysql_host);
        let database_url = match (self.database_url.or(file.database_url), mysql_host) {
            (Some(url), _) => url,
            (None, Some(host)) => mysql_url(
                &host,
                self.mysql_port.or(file.mysql_port).unwrap_or(3306),
                &self.mysql_database.or(file.mysql_database).unwrap_or_else(|| "staging".into()),
                &self.mysql_user.or(file.mysql_user).unwrap_or_else(|| "staging".into()),
                self.mysql_password.or(file.mysql_password).as_deref(),
            ),
            (None, None) => {
                let dir = match self.data_dir.or(file.data_dir) {
                    Some(d) => d,
                    None => std::env::var_os("HOME")
                        .map(|h| Path::new(&h).join(".local/share/sdp-staging"))
                        .ok_or(ConfigError::NoDataDir)?,
                };
                format!("sqlite://{}", dir.join("staging.db").display())
            }
        };
        let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        Ok(Settings {
            listen,
            allowed_methods,
            source_root: self
                .source_storage_path
                .or(file.source_storage_path)
                .unwrap_or_else(|| "/tmp/storage_a".into()),
            target_root: self
                .target_storage_path
                .or(file.target_storage_path)
                .unwrap_or_else(|| "/tmp/user_areas".into()),
            log_filter: log_filter(&level)?,
            jupyterhub_url: nonempty(self.jupyterhub_url.or(file.jupyter_hub_url))
                .map(|u| u.trim_end_matches('/').to_string()),
            jupyterhub_token: nonempty(self.jupyterhub_api_token.or(file.jupyter_hub_api_token)).map(Secret),
            rucio_base_url: nonempty(self.rucio_base_url.or(file.rucio_base_url))
                .map(|u| u.trim_end_matches('/').to_string()),
            rucio_token: nonempty(self.rucio_auth_token.or(file.rucio_auth_token)).map(Secret),
            database_url: Secret(database_url),
            api_token: nonempty(self.api_token.or(file.api_token)).map(Secret),
            allow_overwrite: self.allow_overwrite || file.allow_overwrite.unwrap_or(false),
        })
    }
}

/// `sdp-staging up`'s flags, from their environment variables alone.
#[derive(clap::Parser)]
struct Environment {
    #[command(flatten)]
    args: UpArgs,
}

impl UpArgs {
    /// The flags' environment variables alone, as a platform that runs the service inside it reads them.
    pub fn from_env() -> Result<UpArgs, clap::Error> {
        Ok(<Environment as clap::Parser>::try_parse_from(["sdp up"])?.args)
    }

    /// The service inside a platform: on the platform's `listen`, whatever STAGING_LISTEN says; the storage,
    /// the user areas and the SQLite database under `root` unless set.
    pub fn inside(mut self, root: &Path, listen: SocketAddr) -> UpArgs {
        self.listen = Some(listen.to_string());
        self.source_storage_path.get_or_insert_with(|| root.join("storage"));
        self.target_storage_path.get_or_insert_with(|| root.join("user_areas"));
        self.data_dir.get_or_insert_with(|| root.to_path_buf());
        self
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(log_filter("DEBUG").unwrap(), "debug,sqlx=warn");
        assert_eq!(log_filter("warning").unwrap(), "warn,sqlx=warn");
        assert!(matches!(log_filter("LOUD"), Err(ConfigError::Level(_))));
    }

    #[test]
    fn mysql_from_parts() {
        assert_eq!(mysql_url("db", 3306, "staging", "u", Some("p@ss/w")), "mysql://u:p%40ss%2Fw@db:3306/staging");
        let s = UpArgs { mysql_host: Some("db".into()), ..Default::default() }.settings().unwrap();
        assert_eq!(s.database_url.0, "mysql://staging@db:3306/staging");
        let s =
            UpArgs { database_url: Some("sqlite:///x.db".into()), mysql_host: Some("db".into()), ..Default::default() }
                .settings()
                .unwrap();
        assert_eq!(s.database_url.0, "sqlite:///x.db");
    }

    #[test]
    fn inside_a_platform_the_data_goes_under_its_folder_unless_set() {
        let root = Path::new("/data/staging");
        let listen: SocketAddr = "127.0.0.1:8001".parse().unwrap();
        let args = UpArgs { listen: Some("0.0.0.0:9000".into()), ..Default::default() }.inside(root, listen);
        assert_eq!(args.listen.as_deref(), Some("127.0.0.1:8001"), "the platform's address wins");
        assert_eq!(args.source_storage_path, Some(root.join("storage")));
        assert_eq!(args.target_storage_path, Some(root.join("user_areas")));
        assert_eq!(args.data_dir, Some(root.to_path_buf()));
        let set = UpArgs {
            source_storage_path: Some("/s".into()),
            target_storage_path: Some("/t".into()),
            data_dir: Some("/d".into()),
            ..Default::default()
        };
        let args = set.clone().inside(root, listen);
        assert_eq!(
            (args.source_storage_path, args.target_storage_path, args.data_dir),
            (set.source_storage_path, set.target_storage_path, set.data_dir)
        );
        let settings = UpArgs::default().inside(root, listen).settings().unwrap();
        assert_eq!(settings.database_url.0, "sqlite:///data/staging/staging.db");
    }

    #[test]
    fn file_under_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "allowedMethods: [local_copy, jupyter_copy]\njupyterHubUrl: https://hub/\nsourceStoragePath: /s\n\
             targetStoragePath: /t\nloggingLevel: DEBUG\nrucioBaseUrl: https://rucio\nallowOverwrite: true\nunrelated: 1\n",
        )
        .unwrap();
        let args =
            UpArgs { config: Some(path.clone()), target_storage_path: Some("/env".into()), ..Default::default() };
        let s = args.settings().unwrap();
        assert_eq!(s.allowed_methods, vec![Method::LocalCopy, Method::JupyterCopy]);
        assert_eq!(s.jupyterhub_url.as_deref(), Some("https://hub"));
        assert_eq!((s.source_root.to_str(), s.target_root.to_str()), (Some("/s"), Some("/env")));
        assert_eq!(s.log_filter, "debug,sqlx=warn");
        assert_eq!(s.listen.to_string(), "0.0.0.0:8000");
        assert!(s.allow_overwrite && s.may_overwrite());
        assert!(!UpArgs::default().settings().unwrap().may_overwrite());
        let s = UpArgs { config: Some(path), allowed_methods: Some("local_symlink".into()), ..Default::default() };
        assert_eq!(s.settings().unwrap().allowed_methods, vec![Method::LocalSymlink]);
        assert_eq!(format!("{:?}", Secret("tok".into())), "***");
    }
}
