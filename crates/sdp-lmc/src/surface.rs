//! The LMC surface as the platform serves it (`sdp up`, `sdp lmc serve`): the devices over HTTP, behind a
//! bearer token when one is set, beside the open probes and metrics.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;

use axum::Router;
use sdp_daemon::http::{ListenError, Serving, Surface};

use crate::http;
use crate::runtime::Lmc;

/// A surface that would listen beyond loopback without a token: anyone who reaches it could drive the devices.
#[derive(Debug, thiserror::Error)]
#[error(
    "the LMC surface would listen on {listen} without authentication: set SDP_LMC_TOKEN (or --lmc-token) to the \
     bearer token clients must send, or listen on a loopback address"
)]
pub struct Unprotected {
    pub listen: SocketAddr,
}

/// Where and how the surface serves; made by [`Settings::new`], which refuses an unprotected surface.
#[derive(Clone, Debug)]
pub struct Settings {
    listen: SocketAddr,
    subarrays: usize,
    token: Option<String>,
}

impl Settings {
    /// The surface on `listen` with `subarrays` subarray devices; with `token` (an empty one counts as none),
    /// every route but the probes and metrics needs `Authorization: Bearer <token>`. Beyond loopback a token is
    /// required.
    pub fn new(listen: SocketAddr, subarrays: usize, token: Option<String>) -> Result<Settings, Unprotected> {
        let token = token.filter(|t| !t.is_empty());
        if token.is_none() && !listen.ip().is_loopback() {
            return Err(Unprotected { listen });
        }
        Ok(Settings { listen, subarrays, token })
    }

    /// The bearer token the surface requires, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Binds the surface's address; until [`start_on`] starts the devices there, it answers `waiting`.
    pub async fn bind(&self, waiting: String) -> Result<Surface, ListenError> {
        Surface::listen(self.listen, "the LMC surface (--lmc-listen)", waiting).await
    }
}

/// The devices and their surface, running; [`Running::stop`] stops serving.
pub struct Running {
    lmc: Arc<Lmc>,
    http: Serving,
}

impl Running {
    /// The devices, for other front ends (Tango) to serve too.
    pub fn devices(&self) -> &Arc<Lmc> {
        &self.lmc
    }

    /// Where the surface listens.
    pub fn addr(&self) -> SocketAddr {
        self.http.addr
    }

    pub fn stop(self) {
        self.http.stop();
    }
}

/// Starts the devices over `config`, counting in `metrics`, and serves them on the settings' address, `ops` (the
/// probes and metrics) beside them, open.
pub fn start(
    settings: Settings,
    config: sdp_config::Config,
    metrics: crate::metrics::Metrics,
    ops: Router,
) -> BoxFuture<'static, Result<Running, ListenError>> {
    // Boxed: a future's body is compiled in every crate that polls it; boxed here, once, in this crate.
    Box::pin(async move {
        let surface = settings.bind("starting".to_string()).await?;
        Ok(start_on(surface, settings, config, metrics, ops))
    })
}

/// [`start`] on a surface already listening on the settings' address (a daemon's, while it waited for `config`).
pub fn start_on(
    surface: Surface,
    settings: Settings,
    config: sdp_config::Config,
    metrics: crate::metrics::Metrics,
    ops: Router,
) -> Running {
    let lmc = Lmc::start(config, settings.subarrays, metrics);
    let mut devices = http::router(Arc::clone(&lmc));
    if let Some(token) = settings.token() {
        devices = sdp_daemon::http::require_bearer(devices, token, http::unauthorized);
    }
    let http = surface.ready(devices.merge(ops));
    tracing::info!(listen = %http.addr, "LMC devices (mid_sdp/elt/master, mid_sdp/elt/subarray_N) over HTTP: try `sdp lmc devices`");
    Running { lmc, http }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_only_with_a_token() {
        let token = |listen: &str, token: Option<&str>| {
            Settings::new(listen.parse().unwrap(), 1, token.map(str::to_string)).map(|s| s.token().map(str::to_string))
        };
        for (listen, given) in [("127.0.0.1:8080", None), ("127.0.0.1:8080", Some("")), ("[::1]:8080", None)] {
            assert_eq!(token(listen, given).unwrap(), None, "{listen} {given:?}");
        }
        for listen in ["127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8080", "10.1.2.3:8080"] {
            assert_eq!(token(listen, Some("t")).unwrap().as_deref(), Some("t"), "{listen}");
        }
        for (listen, given) in [("0.0.0.0:8080", None), ("10.1.2.3:8080", Some("")), ("[::]:8080", None)] {
            let refused = token(listen, given).unwrap_err().to_string();
            assert!(refused.contains(listen) && refused.contains("set SDP_LMC_TOKEN"), "{refused}");
        }
    }
}
