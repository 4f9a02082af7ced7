//! The driver for a real etcd v3 server.

use std::error::Error as _;
use std::time::Duration;

use etcd_client as etcd;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::driver::{Change, Driver, Followed, OnChanges, Precondition, Stored, Write};
use crate::error::Error;
use crate::settings::Settings;
use crate::tls::{tls_files, tls_fix, tls_options, Tls};

pub(crate) struct EtcdDriver {
    client: etcd::Client,
    endpoint: String,
    tls: Tls,
}

impl EtcdDriver {
    pub async fn connect(settings: &Settings) -> Result<EtcdDriver, Error> {
        let endpoint = format!("{}:{}", settings.host, settings.port);
        let options = etcd::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let (url, options, tls) = match tls_files(settings)? {
            Some(files) => (format!("https://{endpoint}"), options.with_tls(tls_options(&files)?), files.mode()),
            None => (format!("http://{endpoint}"), options, Tls::Off),
        };
        let client =
            etcd::Client::connect([url], Some(options)).await.map_err(|e| connection_error(&endpoint, tls, e))?;
        Ok(EtcdDriver { client, endpoint, tls })
    }

    fn error(&self, e: etcd::Error) -> Error {
        connection_error(&self.endpoint, self.tls, e)
    }
}

impl Driver for EtcdDriver {
    fn range<'a>(
        &'a self,
        key: &'a str,
        prefix: bool,
        keys_only: bool,
        revision: Option<i64>,
    ) -> BoxFuture<'a, Result<(Vec<Stored>, i64), Error>> {
        async move {
            let mut opts = etcd::GetOptions::new();
            if prefix {
                opts = opts.with_prefix();
            }
            if keys_only {
                opts = opts.with_keys_only();
            }
            if let Some(rev) = revision {
                opts = opts.with_revision(rev);
            }
            let resp = self.client.kv_client().get(key, Some(opts)).await.map_err(|e| self.error(e))?;
            let rev = resp.header().map_or(0, |h| h.revision());
            let found = resp
                .kvs()
                .iter()
                .map(|kv| Stored {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    value: String::from_utf8_lossy(kv.value()).into_owned(),
                    mod_revision: kv.mod_revision(),
                    lease: kv.lease(),
                })
                .collect();
            Ok((found, rev))
        }
        .boxed()
    }

    fn commit<'a>(
        &'a self,
        preconditions: &'a [Precondition],
        writes: &'a [Write],
    ) -> BoxFuture<'a, Result<Option<i64>, Error>> {
        async move {
            let compares: Vec<etcd::Compare> = preconditions
                .iter()
                .map(|p| match p {
                    Precondition::ModRevision { key, revision } => {
                        etcd::Compare::mod_revision(key.as_str(), etcd::CompareOp::Equal, *revision)
                    }
                    Precondition::PrefixUnchangedSince { prefix, revision } => {
                        etcd::Compare::mod_revision(prefix.as_str(), etcd::CompareOp::Less, revision + 1).with_prefix()
                    }
                })
                .collect();
            let ops: Vec<etcd::TxnOp> = writes
                .iter()
                .map(|w| match w {
                    Write::Put { key, value, lease } => {
                        let opts = (*lease != 0).then(|| etcd::PutOptions::new().with_lease(*lease));
                        etcd::TxnOp::put(key.as_str(), value.as_str(), opts)
                    }
                    Write::Delete { key } => etcd::TxnOp::delete(key.as_str(), None),
                    Write::DeletePrefix { prefix } => {
                        etcd::TxnOp::delete(prefix.as_str(), Some(etcd::DeleteOptions::new().with_prefix()))
                    }
                })
                .collect();
            let txn = etcd::Txn::new().when(compares).and_then(ops);
            let resp = self.client.kv_client().txn(txn).await.map_err(|e| self.error(e))?;
            Ok(resp.succeeded().then(|| resp.header().map_or(0, |h| h.revision())))
        }
        .boxed()
    }

    fn follow<'a>(
        &'a self,
        start: &'a str,
        end: &'a str,
        revision: i64,
        on_changes: OnChanges<'a>,
    ) -> BoxFuture<'a, Result<Followed, Error>> {
        async move {
            let mut from = revision + 1;
            loop {
                let opts = etcd::WatchOptions::new().with_range(end).with_start_revision(from);
                let mut stream = match self.client.watch_client().watch(start, Some(opts)).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "watch failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                loop {
                    match stream.message().await {
                        Ok(Some(resp)) => {
                            if resp.compact_revision() > 0 {
                                return Ok(Followed::Compacted(resp.compact_revision()));
                            }
                            if resp.canceled() {
                                tracing::warn!(reason = resp.cancel_reason(), "watch cancelled; re-watching");
                                break;
                            }
                            let changes: Vec<Change> = resp
                                .events()
                                .iter()
                                .filter_map(|ev| {
                                    let kv = ev.kv()?;
                                    Some(Change {
                                        key: String::from_utf8_lossy(kv.key()).into_owned(),
                                        exists: ev.event_type() == etcd::EventType::Put,
                                        revision: kv.mod_revision(),
                                    })
                                })
                                .collect();
                            if let Some(last) = changes.last() {
                                from = from.max(last.revision + 1);
                            }
                            if let Some(stop) = on_changes(&changes) {
                                return Ok(Followed::Stopped(stop));
                            }
                        }
                        Ok(None) | Err(_) => {
                            tracing::warn!(from, "watch stream ended; re-watching");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            break;
                        }
                    }
                }
            }
        }
        .boxed()
    }

    fn lease_grant(&self, ttl: i64) -> BoxFuture<'_, Result<i64, Error>> {
        async move {
            let resp = self.client.lease_client().grant(ttl, None).await.map_err(|e| self.error(e))?;
            Ok(resp.id())
        }
        .boxed()
    }

    fn lease_keep_alive(&self, id: i64, period: Duration) -> BoxFuture<'_, Error> {
        async move {
            loop {
                let (mut keeper, mut stream) = match self.client.lease_client().keep_alive(id).await {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(lease = id, error = %e, "lease keep-alive failed; retrying");
                        tokio::time::sleep(period / 2).await;
                        continue;
                    }
                };
                loop {
                    if keeper.keep_alive().await.is_err() {
                        break;
                    }
                    match stream.message().await {
                        Ok(Some(resp)) if resp.ttl() <= 0 => return Error::LeaseLost(id),
                        Ok(Some(_)) => tokio::time::sleep(period).await,
                        Ok(None) | Err(_) => break,
                    }
                }
                tokio::time::sleep(period / 2).await;
            }
        }
        .boxed()
    }

    /// etcd reports an unknown or ended lease with TTL -1.
    fn lease_alive(&self, id: i64) -> BoxFuture<'_, Result<bool, Error>> {
        async move {
            let resp = self.client.lease_client().time_to_live(id, None).await.map_err(|e| self.error(e))?;
            Ok(resp.ttl() >= 0)
        }
        .boxed()
    }

    fn lease_revoke(&self, id: i64) -> BoxFuture<'_, Result<(), Error>> {
        async move {
            self.client.lease_client().revoke(id).await.map_err(|e| self.error(e))?;
            Ok(())
        }
        .boxed()
    }
}

/// The error a failed request to etcd becomes: what to do about TLS when that is the cause, that the database
/// is unreachable when it cannot be reached, else the server's answer.
fn connection_error(endpoint: &str, tls: Tls, e: etcd::Error) -> Error {
    let detail = match &e {
        etcd::Error::TransportError(t) => sdp_daemon::with_causes(t.to_string(), t.source()),
        etcd::Error::IoError(io) => sdp_daemon::with_causes(io.to_string(), io.source()),
        // A status with a source is the transport's, whatever its code.
        etcd::Error::GRpcStatus(s) if s.code() == tonic::Code::Unavailable || s.source().is_some() => {
            sdp_daemon::with_causes(s.message().to_string(), s.source())
        }
        _ => return Error::Backend(e.to_string()),
    };
    match tls_fix(tls, &detail) {
        Some(fix) => Error::TlsRefused { endpoint: endpoint.to_string(), detail, fix },
        None => Error::Unreachable { endpoint: endpoint.to_string(), detail },
    }
}
