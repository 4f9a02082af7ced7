//! `sdp lmc`: the LMC devices from the command line, through `sdp up`'s HTTP surface.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args)]
pub struct LmcArgs {
    /// The LMC surface of `sdp up` (or `sdp lmc serve`).
    #[arg(long, env = "SDP_LMC_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The LMC surface's bearer token, when it has one.
    #[arg(long, env = "SDP_LMC_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// List the devices.
    Devices,
    /// Print the Tango names of the devices `sdp lmc serve --subarrays N` serves, one a line, without asking it.
    Names {
        #[arg(long, default_value_t = 1)]
        subarrays: usize,
    },
    /// Print a device's attributes, or one of them.
    Read { device: String, attribute: Option<String> },
    /// Write an attribute (e.g. `write subarray_1 adminMode ONLINE`).
    Write { device: String, attribute: String, value: String },
    /// Run a command (e.g. `run subarray_1 Configure '{...}'`).
    Run { device: String, command: String, argument: Option<String> },
    /// Print change events as they happen.
    Events,
    /// Serve the LMC devices (HTTP surface with /health and /metrics; Tango too when TANGO_HOST is set) on the
    /// configuration database at SDP_CONFIG_HOST, until Ctrl-C.
    Serve(ServeArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Where the LMC devices' HTTP/JSON surface listens.
    #[arg(long, env = "SDP_LMC_LISTEN", default_value = "127.0.0.1:8080")]
    pub lmc_listen: std::net::SocketAddr,
    /// Number of subarray devices.
    #[arg(long, env = "SDP_SUBARRAYS", default_value_t = 1)]
    pub subarrays: usize,
    /// When set, every route but /health(z), /readyz and /metrics needs `Authorization: Bearer <token>`.
    /// Required to listen beyond loopback.
    #[arg(long, env = "SDP_LMC_TOKEN", hide_env_values = true)]
    pub lmc_token: Option<String>,
}

impl ServeArgs {
    /// The surface's settings; an error when it would listen beyond loopback without a token.
    pub fn settings(&self) -> Result<sdp_lmc::Settings, sdp_lmc::Unprotected> {
        sdp_lmc::Settings::new(self.lmc_listen, self.subarrays, self.lmc_token.clone())
    }
}

impl LmcArgs {
    /// The arguments of `sdp lmc serve`, which runs the devices instead of talking to them.
    pub fn serve_args(&self) -> Option<&ServeArgs> {
        match &self.action {
            Action::Serve(args) => Some(args),
            _ => None,
        }
    }
}

pub async fn run(args: LmcArgs) -> anyhow::Result<()> {
    if let Action::Names { subarrays } = args.action {
        sdp_lmc::devices(subarrays).iter().for_each(|d| println!("{}", d.name));
        return Ok(());
    }
    // reqwest has no crypto provider of its own here (one TLS stack: rustls with ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = args.token.as_deref().filter(|t| !t.is_empty()) {
        let mut bearer = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("SDP_LMC_TOKEN holds characters a header cannot carry")?;
        bearer.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
    }
    let http = reqwest::Client::builder().default_headers(headers).build().context("cannot make an HTTP client")?;
    let url = args.url.trim_end_matches('/');
    let unreachable =
        || format!("cannot reach the LMC surface at {url}: is `sdp up` running? (set --url or SDP_LMC_URL)");
    let response = match &args.action {
        Action::Devices => http.get(format!("{url}/api/devices")).send().await,
        Action::Read { device, attribute: None } => http.get(format!("{url}/api/devices/{device}")).send().await,
        Action::Read { device, attribute: Some(a) } => {
            http.get(format!("{url}/api/devices/{device}/attributes/{a}")).send().await
        }
        Action::Write { device, attribute, value } => {
            // Labels are strings, numbers are numbers: `ONLINE` and `1` both work.
            let body = serde_json::from_str::<Value>(value).unwrap_or_else(|_| Value::String(value.clone()));
            http.put(format!("{url}/api/devices/{device}/attributes/{attribute}")).body(body.to_string()).send().await
        }
        Action::Run { device, command, argument } => {
            let body = argument.clone().unwrap_or_default();
            http.post(format!("{url}/api/devices/{device}/commands/{command}")).body(body).send().await
        }
        Action::Events => http.get(format!("{url}/api/events")).send().await,
        Action::Serve(_) | Action::Names { .. } => unreachable!("served or answered before (see main and above)"),
    }
    .with_context(unreachable)?;
    let status = response.status();
    if matches!(args.action, Action::Events) && status.is_success() {
        let mut response = response;
        while let Some(chunk) = response.chunk().await.with_context(unreachable)? {
            for line in String::from_utf8_lossy(&chunk).lines().filter_map(|l| l.strip_prefix("data:")) {
                println!("{}", line.trim());
            }
        }
        return Ok(());
    }
    let text = response.text().await.with_context(unreachable)?;
    if !status.is_success() {
        let err: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        match (err["reason"].as_str(), err["desc"].as_str()) {
            (Some(reason), Some(desc)) => bail!("{reason}: {desc}"),
            _ => bail!("{status}: {text}"),
        }
    }
    if !text.is_empty() {
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(listen: &str, token: Option<&str>) -> ServeArgs {
        ServeArgs { lmc_listen: listen.parse().unwrap(), subarrays: 1, lmc_token: token.map(str::to_string) }
    }

    #[test]
    fn beyond_loopback_only_with_a_token() {
        assert_eq!(serve("127.0.0.1:8080", None).settings().unwrap().token(), None);
        assert_eq!(serve("[::1]:8080", Some("t")).settings().unwrap().token(), Some("t"));
        assert_eq!(serve("0.0.0.0:8080", Some("t")).settings().unwrap().token(), Some("t"));
        let error = serve("0.0.0.0:8080", None).settings().unwrap_err().to_string();
        assert!(error.contains("set SDP_LMC_TOKEN"), "{error}");
        assert!(serve("10.1.2.3:8080", Some("")).settings().is_err());
    }
}
