//! What every SDP daemon shares, so that they behave alike: named retry policies with capped exponential
//! backoff ([`retry`]), the operations endpoints `/healthz`, `/readyz` and `/metrics` ([`http`]), tracing
//! set-up, the shutdown signal, tasks stopped within a limit ([`stopping`]), refused entries logged once
//! ([`refusals`]), and errors with their causes ([`causes`]).

pub mod causes;
#[cfg(feature = "server")]
pub mod http;
pub mod refusals;
pub mod retry;
pub mod stopping;

pub use causes::{causes, with_causes};
pub use stopping::{stop_within, StopSignal, Stoppable};

/// Aborts a task when dropped: for a task that lives as long as whatever holds this.
pub struct AbortOnDrop(pub tokio::task::AbortHandle);

impl<T> From<tokio::task::JoinHandle<T>> for AbortOnDrop {
    fn from(task: tokio::task::JoinHandle<T>) -> Self {
        AbortOnDrop(task.abort_handle())
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
pub use refusals::Refusals;
pub use retry::{Backoff, Policy};

#[cfg(feature = "server")]
/// Structured log lines on standard error; `RUST_LOG` overrides `default_filter` (e.g. `info,kube=warn`).
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colours only on a terminal: processes started by the platform log into files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what Kubernetes sends to stop a pod).
///
/// The handlers are installed when this is called, not when it is first awaited: a daemon calls it before it
/// starts its parts, so a signal that arrives while they start stops it cleanly once they have, instead of
/// killing it with the default action halfway through.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
    let mut terminate = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
}
