//! The configuration database of `sdp up`: its own, embedded, with its options (etcd's names where etcd has
//! the option), or the etcd SDP_CONFIG_HOST names; and `sdp repair-journal`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use sdp_config::{Config, Settings};
use sdp_etcd_server::{ConnectionLimits, Limits, Repair, RunningServer, ServerConfig, TlsFiles};

#[derive(clap::Args)]
pub struct DatabaseArgs {
    /// Where the embedded configuration database listens (ignored when SDP_CONFIG_HOST is set). An address
    /// beyond loopback needs TLS with client certificates (--client-cert-auth).
    #[arg(long, env = "SDP_CONFIG_LISTEN", default_value = "127.0.0.1:2379")]
    pub config_listen: SocketAddr,
    /// Operations in one transaction at most, nested transactions' included.
    #[arg(long, env = "SDP_CONFIG_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: usize,
    /// The largest request accepted, in bytes.
    #[arg(long, env = "SDP_CONFIG_MAX_REQUEST_BYTES", default_value_t = sdp_etcd_server::MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// The most keys and values one response (all reads of a transaction together) may carry, in bytes.
    #[arg(long, env = "SDP_CONFIG_MAX_RESPONSE_BYTES", default_value_t = Limits::default().max_response_bytes)]
    pub max_response_bytes: usize,
    /// Bytes of kept versions (the database lives in memory) past which writes are refused and the NOSPACE
    /// alarm raised; 0: no quota.
    #[arg(long, env = "SDP_CONFIG_QUOTA_BACKEND_BYTES", default_value_t = Limits::default().quota_bytes)]
    pub quota_backend_bytes: u64,
    /// Client connections open at once, at most; more are closed as they arrive.
    #[arg(long, env = "SDP_CONFIG_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    pub max_connections: usize,
    /// Seconds after which a connection with no request under way that sent nothing is closed.
    #[arg(long, env = "SDP_CONFIG_IDLE_CONNECTION_TIMEOUT", default_value_t = ConnectionLimits::default().idle_timeout.as_secs())]
    pub idle_connection_timeout: u64,
    /// The database's TLS certificate (PEM): clients then connect over TLS.
    #[arg(long, env = "SDP_CONFIG_CERT_FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// The private key of --cert-file (PEM).
    #[arg(long, env = "SDP_CONFIG_KEY_FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// CA bundle that signs the clients' certificates (PEM).
    #[arg(long, env = "SDP_CONFIG_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Every client must present a certificate signed by --trusted-ca-file.
    #[arg(long, env = "SDP_CONFIG_CLIENT_CERT_AUTH", requires_all = ["cert_file", "trusted_ca_file"])]
    pub client_cert_auth: bool,
}

impl DatabaseArgs {
    /// The server's configuration, or why these options may not serve.
    pub fn server_config(&self, data_dir: PathBuf) -> anyhow::Result<ServerConfig> {
        let tls = self.cert_file.clone().zip(self.key_file.clone()).map(|(cert_file, key_file)| TlsFiles {
            cert_file,
            key_file,
            trusted_ca_file: self.trusted_ca_file.clone(),
            client_cert_auth: self.client_cert_auth,
        });
        refuse_open_listen(self.config_listen, tls.as_ref())?;
        Ok(ServerConfig {
            listen: self.config_listen,
            data_dir: Some(data_dir),
            limits: Limits {
                max_txn_ops: self.max_txn_ops,
                max_response_bytes: self.max_response_bytes,
                quota_bytes: self.quota_backend_bytes,
            },
            max_request_bytes: self.max_request_bytes,
            connections: ConnectionLimits {
                max_connections: self.max_connections,
                idle_timeout: Duration::from_secs(self.idle_connection_timeout.max(1)),
            },
            tls,
            ..Default::default()
        })
    }
}

/// The database `sdp up` works on, connected: its components reach the embedded server's store in this
/// process.
pub struct Database {
    pub settings: Settings,
    pub config: Config,
    /// None when SDP_CONFIG_HOST names an etcd.
    embedded: Option<RunningServer>,
}

impl Database {
    /// Starts the embedded database with its data in `data_dir`, unless SDP_CONFIG_HOST names one, and connects.
    pub async fn open(args: &DatabaseArgs, data_dir: &Path) -> anyhow::Result<Database> {
        let embedded = if std::env::var("SDP_CONFIG_HOST").is_ok() {
            None
        } else {
            sdp_etcd_server::raise_open_files_limit();
            Some(sdp_etcd_server::start(args.server_config(data_dir.to_path_buf())?).await?)
        };
        let settings = match &embedded {
            Some(server) => {
                Settings { host: server.addr.ip().to_string(), port: server.addr.port(), ..Settings::from_env()? }
            }
            None => Settings::from_env()?,
        };
        // The components beside the embedded server use its store in this process; scripts, which run as
        // processes of their own, and every other client use its address.
        let config = match &embedded {
            Some(server) => {
                let config = Config::in_process(std::sync::Arc::clone(server.store())).with_prefix(&settings.prefix)?;
                config.answers().await?;
                config
            }
            None => Config::connect_checked(&settings).await?,
        };
        match &embedded {
            Some(server) => tracing::info!(
                listen = %server.addr,
                data_dir = %data_dir.display(),
                "embedded configuration database ready: export SDP_CONFIG_HOST={} SDP_CONFIG_PORT={}",
                server.addr.ip(),
                server.addr.port()
            ),
            None => {
                tracing::info!(host = %settings.host, port = settings.port, "using the configuration database at SDP_CONFIG_HOST")
            }
        }
        Ok(Database { settings, config, embedded })
    }

    /// Stops the embedded database, if it runs one.
    pub async fn stop(self) {
        if let Some(server) = self.embedded {
            server.stop().await;
        }
    }
}

/// `sdp config-db`: the embedded database alone, until Ctrl-C or SIGTERM.
pub async fn serve(args: &DatabaseArgs, data_dir: PathBuf) -> anyhow::Result<()> {
    let stop = sdp_daemon::shutdown_signal();
    sdp_etcd_server::raise_open_files_limit();
    let server = sdp_etcd_server::start(args.server_config(data_dir.clone())?).await?;
    tracing::info!(listen = %server.addr, data_dir = %data_dir.display(), "configuration database ready");
    stop.await;
    tracing::info!("stopping");
    server.stop().await;
    Ok(())
}

/// Whoever reaches the database can make the platform deploy: beyond loopback it must know its clients.
fn refuse_open_listen(listen: SocketAddr, tls: Option<&TlsFiles>) -> anyhow::Result<()> {
    if listen.ip().is_loopback() || tls.is_some_and(|t| t.client_cert_auth) {
        return Ok(());
    }
    bail!(
        "--config-listen {listen} reaches beyond this machine, and whoever reaches the configuration database \
         can make the platform deploy: turn on TLS with client certificates (--cert-file, --key-file, \
         --trusted-ca-file, --client-cert-auth), or listen on 127.0.0.1"
    )
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("repair").required(true).args(["skip_record", "truncate_at"])))]
pub struct RepairArgs {
    /// The data directory whose journal to repair (`sdp up --data-dir`).
    #[arg(long, env = "SDP_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Drop the one record that starts at this byte (as `sdp up` names it), keep the rest.
    #[arg(long)]
    pub skip_record: Option<u64>,
    /// Drop the record that starts at this byte and every record after it.
    #[arg(long)]
    pub truncate_at: Option<u64>,
}

/// `sdp repair-journal`: applies the repair after copying the journal aside.
pub fn repair_journal(args: &RepairArgs) -> anyhow::Result<()> {
    let repair = match (args.skip_record, args.truncate_at) {
        (Some(offset), _) => Repair::SkipRecord(offset),
        (None, Some(offset)) => Repair::TruncateAt(offset),
        (None, None) => bail!("name the record: --skip-record OFFSET or --truncate-at OFFSET"),
    };
    let backup = sdp_etcd_server::repair(&args.data_dir, repair)
        .with_context(|| format!("cannot repair the journal in {}", args.data_dir.display()))?;
    println!("repaired ({repair:?}); the journal as it was is kept in {}", backup.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_client_certificates() {
        let tls = |client_cert_auth| TlsFiles {
            cert_file: "c".into(),
            key_file: "k".into(),
            trusted_ca_file: Some("ca".into()),
            client_cert_auth,
        };
        let open: SocketAddr = "0.0.0.0:2379".parse().unwrap();
        assert!(refuse_open_listen("127.0.0.1:2379".parse().unwrap(), None).is_ok());
        assert!(refuse_open_listen("[::1]:2379".parse().unwrap(), None).is_ok());
        let refused = refuse_open_listen(open, None).unwrap_err().to_string();
        assert!(refused.contains("--client-cert-auth"), "{refused}");
        assert!(refuse_open_listen(open, Some(&tls(false))).is_err());
        assert!(refuse_open_listen(open, Some(&tls(true))).is_ok());
    }
}
