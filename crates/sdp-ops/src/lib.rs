//! What every SDP daemon shares, so that they behave alike: named retry policies with capped exponential
//! backoff ([`retry`]), the operations endpoints `/healthz`, `/readyz` and `/metrics` ([`http`]), tracing
//! set-up and the shutdown signal.

#[cfg(feature = "server")]
pub mod http;
pub mod retry;

pub use retry::{Backoff, Policy};

#[cfg(feature = "server")]
/// Structured log lines on standard error; `RUST_LOG` overrides `default_filter` (e.g. `info,kube=warn`).
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colours only on a terminal: processes started by the platform log into files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).init();
}

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes sends to stop a pod).
pub async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
