//! Where the configuration database is, and how to reach it.

use std::path::PathBuf;

use crate::error::Error;

/// Where the configuration database is, from the environment the original tool reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `etcd3` (default) or `memory`.
    pub backend: String,
    /// One host, or several members of an etcd cluster separated by commas (`host` or `host:port` each), as
    /// etcdctl's `--endpoints`: requests go to any that answers. See [`Settings::endpoints`].
    pub host: String,
    /// The port of every host given without one.
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
        s.endpoints()?;
        Ok(s)
    }

    /// The database's client addresses, `host:port` each, from [`Settings::host`] and [`Settings::port`]:
    /// `etcd-0,etcd-1:2380,[::1]:2379` gives `etcd-0:<port>`, `etcd-1:2380` and `[::1]:2379`.
    pub fn endpoints(&self) -> Result<Vec<String>, Error> {
        self.host.split(',').map(|entry| endpoint(entry.trim(), self.port)).collect()
    }
}

/// One entry of SDP_CONFIG_HOST as `host:port`, with `port` unless the entry names its own.
fn endpoint(entry: &str, port: u16) -> Result<String, Error> {
    let refuse = |why: &str| Err(Error::Invalid(format!("SDP_CONFIG_HOST entry {entry:?}: {why}")));
    if entry.is_empty() {
        return refuse("empty; give host or host:port, several separated by commas");
    }
    if entry.contains("://") {
        return refuse("give host or host:port, without a scheme (SDP_CONFIG_CACERT turns TLS on)");
    }
    if entry.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(format!("[{entry}]:{port}"));
    }
    let (host, own_port) = match entry.rsplit_once(':') {
        // `[v6]` alone, or a host with a port.
        _ if entry.starts_with('[') && entry.ends_with(']') => (entry, None),
        Some((host, p)) => (host, Some(p)),
        None => (entry, None),
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) || (host.contains(':') && !host.starts_with('[')) {
        return refuse("not a host name or address");
    }
    match own_port {
        None => Ok(format!("{host}:{port}")),
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => Ok(format!("{host}:{p}")),
            _ => refuse(&format!("{p:?} is not a port number (1-65535)")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(host: &str) -> Result<Vec<String>, String> {
        Settings { host: host.into(), port: 2379, ..Default::default() }.endpoints().map_err(|e| e.to_string())
    }

    #[test]
    fn one_host_or_several_each_with_the_default_port_or_its_own() {
        assert_eq!(endpoints("127.0.0.1").unwrap(), ["127.0.0.1:2379"]);
        assert_eq!(
            endpoints("etcd-0, etcd-1:2380 ,10.0.0.3:12379").unwrap(),
            ["etcd-0:2379", "etcd-1:2380", "10.0.0.3:12379"]
        );
        assert_eq!(endpoints("::1,[::1],[fe80::1]:2381").unwrap(), ["[::1]:2379", "[::1]:2379", "[fe80::1]:2381"]);
    }

    #[test]
    fn a_bad_entry_is_named_with_what_to_give_instead() {
        for (host, why) in [
            ("", "empty"),
            ("a,,b", "empty"),
            ("a,", "empty"),
            ("http://a:2379", "without a scheme"),
            ("a:0", "not a port number"),
            ("a:99999", "not a port number"),
            ("a:x", "not a port number"),
            (":2379", "not a host"),
            ("a b", "not a host"),
            ("user@a", "not a host"),
            ("fe80::1:x:2379", "not a host"),
        ] {
            let refused = endpoints(host).unwrap_err();
            assert!(refused.contains("SDP_CONFIG_HOST entry") && refused.contains(why), "{host:?}: {refused}");
        }
    }
}
