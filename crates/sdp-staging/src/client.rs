//! The one HTTP client set-up of the service (JupyterHub, Rucio, downloads).

/// An HTTP(S) client. HTTPS uses rustls with ring, installed here as the process's default crypto provider
/// (reqwest is built without one of its own, to keep a single TLS stack).
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
