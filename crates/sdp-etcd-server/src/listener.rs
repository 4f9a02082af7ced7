//! Accepting clients: TLS when configured, a cap on open connections, and idle connections closed, so that no
//! flood of connections (idle ones, or ones that trickle half a request) starves the process of file
//! descriptors or memory.
//!
//! Why not `axum::serve`: it has no connection cap and no timeouts, and an HTTP/2 connection or one that never
//! sends a byte would stay open for ever. hyper-util's connection builder serves each connection here, with
//! hyper's header-read timeout for HTTP/1 and a watchdog for connections that carry no request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// An HTTP/1 request's headers (and the next request's, on a kept-alive connection) must be in within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How connections are bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open client connections at most; more are closed as they arrive (`--max-connections`).
    pub max_connections: usize,
    /// A connection that carries no request under way and has sent nothing for this long is closed
    /// (`--idle-connection-timeout`); an HTTP/1 request's headers must be in within 10 s, or this if shorter.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits { max_connections: 1024, idle_timeout: Duration::from_secs(60) }
    }
}

/// The database's TLS files, named as etcd's options name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// `--cert-file`: the server's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// `--key-file`: its private key (PEM).
    pub key_file: PathBuf,
    /// `--trusted-ca-file`: the CA bundle client certificates must chain to.
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth`: every client must present a certificate signed by the trusted CA.
    pub client_cert_auth: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} holds no {what} in PEM form")]
    Empty { what: &'static str, path: PathBuf },
    #[error("--client-cert-auth needs --trusted-ca-file: the CA that signs the clients' certificates")]
    NoTrustedCa,
    #[error("the TLS settings are not usable: {0}")]
    Rustls(String),
}

impl TlsFiles {
    /// The rustls server configuration these files describe (HTTP/2 and HTTP/1.1 by ALPN).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let read = |what: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.clone(), source })
        };
        let certs = |what: &'static str, path: &PathBuf| -> Result<Vec<CertificateDer<'static>>, TlsError> {
            let pem = read(what, path)?;
            let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
            if certs.is_empty() {
                return Err(TlsError::Empty { what, path: path.clone() });
            }
            Ok(certs)
        };
        let chain = certs("certificate", &self.cert_file)?;
        let key = PrivateKeyDer::from_pem_slice(&read("private key", &self.key_file)?)
            .map_err(|_| TlsError::Empty { what: "private key", path: self.key_file.clone() })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let builder = match (&self.trusted_ca_file, self.client_cert_auth) {
            (None, true) => return Err(TlsError::NoTrustedCa),
            (Some(ca), true) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs("CA certificate", ca)? {
                    roots.add(cert).map_err(|e| TlsError::Rustls(format!("{}: {e}", ca.display())))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| TlsError::Rustls(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            (_, false) => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError::Rustls(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Serves `app` on `listener` until `shutdown` turns true, then lets requests under way finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let refused = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let mut last_report = Instant::now() - Duration::from_secs(60);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for connections to close rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            let count = refused.fetch_add(1, Ordering::Relaxed) + 1;
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                tracing::warn!(
                    max = limits.max_connections,
                    refused = count,
                    "connection limit reached; closing new connections (--max-connections)"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, acceptor, limits, shutdown, open) =
            (app.clone(), acceptor.clone(), limits.clone(), shutdown.clone(), open.clone());
        tokio::spawn(async move {
            open.fetch_add(1, Ordering::Relaxed);
            serve_connection(stream, peer, app, acceptor, &limits, shutdown).await;
            open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    // Let the connections' own shutdown (they watch the same signal) run for a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while open.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    limits: &ConnectionLimits,
    shutdown: watch::Receiver<bool>,
) {
    let activity = Activity::new();
    let stream = Tracked { inner: stream, activity: activity.clone() };
    match acceptor {
        Some(acceptor) => match tokio::time::timeout(limits.idle_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => drive(tls, app, activity, limits, shutdown).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
        None => drive(stream, app, activity, limits, shutdown).await,
    }
}

/// Runs hyper on one connection until it ends, goes idle, or the server stops.
async fn drive<S>(
    io: S,
    app: Router,
    activity: Arc<Activity>,
    limits: &ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let guard = RequestGuard::new(requests.clone());
        async move {
            let response = app.oneshot(request.map(Body::new)).await?;
            // The request counts as under way until its response body ends (a watch stream may last for ever).
            Ok::<_, std::convert::Infallible>(response.map(|body| Body::new(Guarded { body, _guard: guard })))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.idle_timeout.min(HEADER_TIMEOUT));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let check_every = (limits.idle_timeout / 4).max(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = &mut connection => return,
            _ = tokio::time::sleep(check_every) => {
                if activity.idle_for() >= limits.idle_timeout {
                    tracing::debug!("closing an idle connection");
                    return;
                }
            }
            _ = stopped(&mut shutdown) => break,
        }
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
}

/// Resolves once the server is told to stop.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is dropped here, not held across the caller's awaits.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// When a connection last read anything, and how many of its requests are under way.
struct Activity {
    start: Instant,
    last_read_ms: AtomicU64,
    requests: AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity { start: Instant::now(), last_read_ms: AtomicU64::new(0), requests: AtomicUsize::new(0) })
    }

    fn touch(&self) {
        self.last_read_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long the connection has carried no request and sent nothing (zero while a request is under way).
    fn idle_for(&self) -> Duration {
        if self.requests.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        self.start.elapsed().saturating_sub(Duration::from_millis(self.last_read_ms.load(Ordering::Relaxed)))
    }
}

struct RequestGuard(Arc<Activity>);

impl RequestGuard {
    fn new(activity: Arc<Activity>) -> RequestGuard {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        RequestGuard(activity)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A response body that keeps its request counted as under way while it lives.
struct Guarded {
    body: Body,
    _guard: RequestGuard,
}

impl http_body::Body for Guarded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A stream that notes when it last read something.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Raises this process's soft limit on open files to its hard limit: the database and the daemons beside it
/// share one process, and the default soft limit (often 1024) is what a connection flood exhausts first.
pub fn raise_open_files_limit() {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
