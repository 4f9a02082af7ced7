//! The operations endpoints every daemon serves, with one convention: `/healthz` answers while the process
//! serves (liveness: restart it when this fails), `/readyz` while it can do its work (readiness: its
//! dependencies answer), `/metrics` in the Prometheus text format. [`serve`] runs a daemon's HTTP surface.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// Whether the daemon can do its work now: `Err` says why not.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// `/healthz`, `/readyz` and `/metrics`; `/health` answers as `/readyz` for clients of earlier versions.
pub fn router(registry: Registry, ready: ReadyCheck) -> Router {
    let registry = Arc::new(registry);
    let readyz = get(move || {
        let ready = Arc::clone(&ready);
        async move {
            match ready().await {
                Ok(()) => "ok".into_response(),
                Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
            }
        }
    });
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", readyz.clone())
        .route("/health", readyz)
        .route("/metrics", get(move || std::future::ready(metrics(&registry))))
}

/// `registry` in the Prometheus text format, as a `/metrics` answer.
pub fn metrics(registry: &Registry) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>`. The comparison takes as long wherever the given
/// token differs, so timing does not tell how much of a guess was right.
pub fn bearer_admits(headers: &HeaderMap, token: &str) -> bool {
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|given| same(given.as_bytes(), token.as_bytes()))
}

/// Comparison whose time does not depend on where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every route of `router` (those it has now: merge open ones after) answers `refusal()` (a 401) to a
/// request without the bearer token.
pub fn require_bearer(router: Router, token: &str, refusal: fn() -> Response) -> Router {
    let token: Arc<str> = token.into();
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let token = Arc::clone(&token);
        async move {
            if bearer_admits(request.headers(), &token) {
                next.run(request).await
            } else {
                tracing::info!(path = %request.uri().path(), "request without the bearer token refused");
                refusal()
            }
        }
    }))
}

/// An address a daemon cannot listen on (taken, or not this machine's).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {listen} for {what}: choose another address")]
pub struct ListenError {
    pub listen: SocketAddr,
    /// What would have listened there, and the option that sets the address.
    pub what: &'static str,
    pub source: std::io::Error,
}

/// An HTTP server started by [`serve`]; [`Serving::stop`] ends it.
pub struct Serving {
    /// Where it listens (the port chosen when `listen` asked for port 0).
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Serving {
    pub fn stop(self) {
        self.task.abort();
    }
}

/// A daemon's HTTP surface from its first moment, before its part has started (while it waits for the
/// configuration database): `/healthz` answers, so a liveness probe leaves the waiting process alone, and every
/// other path answers 503 with what it waits for. [`Surface::ready`] then serves the daemon's own routes there.
pub struct Surface {
    serving: Serving,
    app: Arc<OnceLock<Router>>,
}

impl Surface {
    /// Binds `listen` (`what` names the surface in the error); until [`Surface::ready`], answers `waiting`.
    pub async fn listen(listen: SocketAddr, what: &'static str, waiting: String) -> Result<Surface, ListenError> {
        let app: Arc<OnceLock<Router>> = Arc::default();
        let later = Arc::clone(&app);
        let waiting: Arc<str> = waiting.into();
        let router = Router::new().fallback(move |request: Request| {
            let app = later.get().cloned();
            let waiting = Arc::clone(&waiting);
            async move {
                match app {
                    Some(app) => app.oneshot(request).await.into_response(),
                    None if request.uri().path() == "/healthz" => "ok".into_response(),
                    None => (StatusCode::SERVICE_UNAVAILABLE, waiting.to_string()).into_response(),
                }
            }
        });
        Ok(Surface { serving: serve(listen, router, what).await?, app })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.serving.addr
    }

    /// Serves `app` from now on.
    pub fn ready(self, app: Router) -> Serving {
        // Set once: `self` is consumed here.
        let _ = self.app.set(app);
        self.serving
    }

    pub fn stop(self) {
        self.serving.stop();
    }
}

/// Binds `listen` and serves `app` there, in a task of its own; `what` names the surface in the error.
pub async fn serve(listen: SocketAddr, app: Router, what: &'static str) -> Result<Serving, ListenError> {
    let bound = tokio::net::TcpListener::bind(listen).await.and_then(|l| Ok((l.local_addr()?, l)));
    let (addr, listener) = bound.map_err(|source| ListenError { listen, what, source })?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok(Serving { addr, task })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::body::Body;
    use axum::http::Request;
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    async fn get(app: &Router, path: &str) -> (StatusCode, String) {
        let response = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn liveness_readiness_and_metrics_answer_different_questions() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("demo_events", "events", counter.clone());
        counter.inc();
        let database_up = Arc::new(AtomicBool::new(false));
        let check = Arc::clone(&database_up);
        let ready: ReadyCheck = Arc::new(move || {
            let up = check.load(Ordering::Relaxed);
            Box::pin(async move {
                if up {
                    Ok(())
                } else {
                    Err("the configuration database does not answer".into())
                }
            })
        });
        let app = router(registry, ready);
        assert_eq!(get(&app, "/healthz").await, (StatusCode::OK, "ok".into()));
        assert_eq!(
            get(&app, "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "the configuration database does not answer".into())
        );
        database_up.store(true, Ordering::Relaxed);
        assert_eq!(get(&app, "/readyz").await, (StatusCode::OK, "ok".into()));
        assert_eq!(get(&app, "/health").await.0, StatusCode::OK);
        let (status, text) = get(&app, "/metrics").await;
        assert!(status == StatusCode::OK && text.contains("demo_events_total 1"), "{text}");
    }

    #[tokio::test]
    async fn serves_on_the_port_it_bound_and_a_taken_address_says_so() {
        let app = Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        let serving = serve("127.0.0.1:0".parse().unwrap(), app.clone(), "the test surface").await.unwrap();
        assert_eq!(get_from(serving.addr, "/healthz").await, (StatusCode::OK, "ok".into()));
        let taken =
            serve(serving.addr, app, "the test surface (--test-listen)").await.err().expect("the port is taken");
        let message = taken.to_string();
        assert_eq!(
            message,
            format!("cannot listen on {} for the test surface (--test-listen): choose another address", serving.addr)
        );
        serving.stop();
    }

    /// GET `path` over TCP: the status and the body.
    async fn get_from(addr: SocketAddr, path: &str) -> (StatusCode, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer).await.unwrap();
        let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap();
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        (StatusCode::from_u16(status).unwrap(), body.to_string())
    }

    #[tokio::test]
    async fn a_surface_is_alive_while_its_daemon_waits_and_serves_the_daemon_once_ready() {
        let waiting = "waiting for the configuration database at 10.0.0.1:2379".to_string();
        let surface =
            Surface::listen("127.0.0.1:0".parse().unwrap(), "the test surface", waiting.clone()).await.unwrap();
        let addr = surface.addr();
        assert_eq!(get_from(addr, "/healthz").await, (StatusCode::OK, "ok".into()));
        for path in ["/readyz", "/metrics", "/api/devices"] {
            assert_eq!(get_from(addr, path).await, (StatusCode::SERVICE_UNAVAILABLE, waiting.clone()), "{path}");
        }
        let app = Router::new()
            .route("/healthz", axum::routing::get(|| async { "alive" }))
            .route("/readyz", axum::routing::get(|| async { "ready" }));
        let serving = surface.ready(app);
        assert_eq!(serving.addr, addr);
        assert_eq!(get_from(addr, "/healthz").await, (StatusCode::OK, "alive".into()));
        assert_eq!(get_from(addr, "/readyz").await, (StatusCode::OK, "ready".into()));
        assert_eq!(get_from(addr, "/metrics").await.0, StatusCode::NOT_FOUND);
        serving.stop();
    }

    #[test]
    fn constant_time_compare() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }

    #[tokio::test]
    async fn routes_behind_the_bearer_token_refuse_requests_without_it() {
        let refusal = || (StatusCode::UNAUTHORIZED, "send the token").into_response();
        let private = Router::new().route("/private", axum::routing::get(|| async { "secret" }));
        let app = require_bearer(private, "s3cret", refusal).route("/open", axum::routing::get(|| async { "ok" }));
        let with = |token: Option<&str>| {
            let mut request = Request::get("/private");
            if let Some(token) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let app = app.clone();
            async move { app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap().status() }
        };
        assert_eq!(with(None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(with(Some("s3cre")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(with(Some("s3cret!")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(with(Some("s3cret")).await, StatusCode::OK);
        assert_eq!(get(&app, "/open").await, (StatusCode::OK, "ok".into()));
    }
}
