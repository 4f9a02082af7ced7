//! The driver for a real etcd v3 server.

use std::error::Error as _;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client as etcd;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::driver::{Change, Driver, Followed, OnChanges, Precondition, Stored, Write};
use crate::error::Error;
use crate::settings::Settings;
use crate::tls::{tls_files, tls_fix, tls_options, Tls};

/// The driver over every member SDP_CONFIG_HOST lists. Requests go to one member; when it cannot be reached, to
/// each of the others in turn, and the first that answers serves from then on. (A client's own balanced channel
/// would keep sending a share of the requests to a member that is down, and fail them.)
pub(crate) struct EtcdDriver {
    members: Vec<Member>,
    current: AtomicUsize,
    tls: Tls,
}

struct Member {
    endpoint: String,
    client: etcd::Client,
}

impl EtcdDriver {
    pub async fn connect(settings: &Settings) -> Result<EtcdDriver, Error> {
        let options = etcd::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            // A request a follower forwarded to a leader that just died waits for etcd's own timeout (7 s);
            // after 3 s it is sent again, to a member that knows the new leader (a write is a transaction whose
            // comparisons see a first attempt that was applied after all).
            .with_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            // A member that has lost its leader answers at once ("no leader") instead of holding the request
            // until its own timeout (7 s), so the request moves on to a member that has one.
            .with_require_leader(true);
        let (scheme, options, tls) = match tls_files(settings)? {
            Some(files) => ("https", options.with_tls(tls_options(&files)?), files.mode()),
            None => ("http", options, Tls::Off),
        };
        let mut members = Vec::new();
        for endpoint in settings.endpoints()? {
            let url = format!("{scheme}://{endpoint}");
            let client = etcd::Client::connect([url], Some(options.clone()))
                .await
                .map_err(|e| connection_error(&endpoint, tls, e))?;
            members.push(Member { endpoint, client });
        }
        Ok(EtcdDriver { members, current: AtomicUsize::new(0), tls })
    }

    /// Runs `request` on the member that served last; when it cannot be reached, on each of the others in turn.
    /// Repeating a request is safe: reads are, a write that compares sees a first attempt that was applied, and
    /// a write that does not is a put of the same values.
    async fn on_a_member<T, Fut>(&self, request: impl Fn(etcd::Client) -> Fut) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, etcd::Error>>,
    {
        let first = self.current.load(Ordering::Relaxed);
        let mut failed = None;
        for step in 0..self.members.len() {
            let i = (first + step) % self.members.len();
            let member = &self.members[i];
            match request(member.client.clone()).await.map_err(|e| connection_error(&member.endpoint, self.tls, e)) {
                Ok(answer) => {
                    if step > 0 {
                        self.current.store(i, Ordering::Relaxed);
                        tracing::info!(endpoint = %member.endpoint, "the configuration database answers at this member now");
                    }
                    return Ok(answer);
                }
                // A member that died mid-connection may look like a TLS refusal; a real one refuses at every member.
                Err(e @ (Error::Unreachable { .. } | Error::TlsRefused { .. })) => {
                    tracing::debug!(endpoint = %member.endpoint, error = %e, "a member of the configuration database did not answer");
                    failed = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        match failed {
            Some(Error::Unreachable { detail, .. }) if self.members.len() > 1 => {
                let endpoint = self.members.iter().map(|m| m.endpoint.as_str()).collect::<Vec<_>>().join(",");
                Err(Error::Unreachable { endpoint, detail })
            }
            failed => Err(failed.expect("at least one member")),
        }
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
            let resp = self
                .on_a_member(|c| {
                    let opts = opts.clone();
                    async move { c.kv_client().get(key, Some(opts)).await }
                })
                .await?;
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

    /// etcd answers a write once it is on disk.
    fn durable(&self) -> Option<BoxFuture<'static, Result<(), Error>>> {
        None
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
            let resp = self
                .on_a_member(|c| {
                    let txn = txn.clone();
                    async move { c.kv_client().txn(txn).await }
                })
                .await?;
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
                let mut stream = match self
                    .on_a_member(|c| {
                        let opts = opts.clone();
                        async move { c.watch_client().watch(start, Some(opts)).await }
                    })
                    .await
                {
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
            let resp = self.on_a_member(|c| async move { c.lease_client().grant(ttl, None).await }).await?;
            Ok(resp.id())
        }
        .boxed()
    }

    fn lease_keep_alive(&self, id: i64, period: Duration) -> BoxFuture<'_, Error> {
        async move {
            loop {
                let (mut keeper, mut stream) =
                    match self.on_a_member(|c| async move { c.lease_client().keep_alive(id).await }).await {
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
            let resp = self.on_a_member(|c| async move { c.lease_client().time_to_live(id, None).await }).await?;
            Ok(resp.ttl() >= 0)
        }
        .boxed()
    }

    fn lease_revoke(&self, id: i64) -> BoxFuture<'_, Result<(), Error>> {
        async move {
            self.on_a_member(|c| async move { c.lease_client().revoke(id).await }).await?;
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
