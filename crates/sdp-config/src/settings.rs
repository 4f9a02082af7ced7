//! Where the configuration database is, and how to reach it.

use std::path::PathBuf;

use crate::error::Error;

/// Where the configuration database is, from the environment the original tool reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `etcd3` (default) or `memory`.
    pub backend: String,
    pub host: String,
    pub port: u16,
    /// Prepended to every logical path (for sharing one database between independent users or tests).
    pub prefix: String,
    /// CA bundle (PEM) to trust for the database's certificate; set, the client speaks TLS (etcdctl's
    /// `--cacert`).
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) for servers that ask for one (etcdctl's `--cert`); needs `key`.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM) (etcdctl's `--key`).
    pub key: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backend: "etcd3".into(),
            host: "127.0.0.1".into(),
            port: 2379,
            prefix: String::new(),
            cacert: None,
            cert: None,
            key: None,
        }
    }
}

impl Settings {
    /// Reads `SDP_CONFIG_BACKEND`, `SDP_CONFIG_HOST`, `SDP_CONFIG_PORT` and, for TLS, `SDP_CONFIG_CACERT`,
    /// `SDP_CONFIG_CERT` and `SDP_CONFIG_KEY` (an empty value counts as unset).
    pub fn from_env() -> Result<Settings, Error> {
        let mut s = Settings::default();
        if let Ok(b) = std::env::var("SDP_CONFIG_BACKEND") {
            s.backend = b;
        }
        if let Ok(h) = std::env::var("SDP_CONFIG_HOST") {
            s.host = h;
        }
        if let Ok(p) = std::env::var("SDP_CONFIG_PORT") {
            s.port = p
                .parse()
                .map_err(|_| Error::Invalid(format!("SDP_CONFIG_PORT={p:?} is not a port number (1-65535)")))?;
        }
        let path = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        s.cacert = path("SDP_CONFIG_CACERT");
        s.cert = path("SDP_CONFIG_CERT");
        s.key = path("SDP_CONFIG_KEY");
        Ok(s)
    }
}
