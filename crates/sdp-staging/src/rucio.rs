//! Resolution of Rucio data identifiers (`scope:name`) to a replica on the configured storage.

use std::path::Path;

use serde_json::Value;

use crate::paths::{replica_on_storage, Did};

/// A failure resolving a DID.
#[derive(Debug, thiserror::Error)]
pub enum RucioError {
    #[error("`{0}` is a Rucio identifier (scope:name) but RUCIO_BASE_URL is not set: set it, or give a path")]
    NotConfigured(String),
    #[error("cannot reach Rucio at {url}: {}; check RUCIO_BASE_URL", sdp_daemon::causes(.source))]
    Unreachable { url: String, source: reqwest::Error },
    #[error("Rucio refused the token ({0}): set a valid RUCIO_AUTH_TOKEN")]
    Refused(u16),
    #[error("Rucio knows no replicas of {0}")]
    NotFound(String),
    #[error("Rucio answered {status} for the replicas of {did}: {detail}")]
    Failed { did: String, status: u16, detail: String },
    #[error("no replica of {did} lies under the storage root {root}; replicas: {pfns}")]
    NotOnStorage { did: String, root: String, pfns: String },
}

/// The physical file names in a replicas answer: JSON lines (or one JSON array), each with `pfns` (an object
/// keyed by PFN) and/or `rses` (RSE → list of PFNs).
pub fn pfns_of(body: &str) -> Vec<String> {
    let docs: Vec<Value> = match serde_json::from_str::<Value>(body.trim()) {
        Ok(Value::Array(items)) => items,
        Ok(one) => vec![one],
        Err(_) => body.lines().filter_map(|l| serde_json::from_str(l).ok()).collect(),
    };
    let mut out = Vec::new();
    for doc in &docs {
        if let Some(pfns) = doc["pfns"].as_object() {
            out.extend(pfns.keys().cloned());
        }
        if let Some(rses) = doc["rses"].as_object() {
            out.extend(
                rses.values().filter_map(Value::as_array).flatten().filter_map(Value::as_str).map(str::to_string),
            );
        }
    }
    out.dedup();
    out
}

/// The path, relative to `storage_root`, of a replica of `did`.
pub async fn resolve(
    http: &reqwest::Client,
    base: Option<&str>,
    token: Option<&str>,
    did: &Did,
    storage_root: &Path,
) -> Result<String, RucioError> {
    let text = format!("{}:{}", did.scope, did.name);
    let base = base.ok_or_else(|| RucioError::NotConfigured(text.clone()))?;
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let mut req = http
        .get(format!("{base}/replicas/{}/{}", enc(&did.scope), enc(&did.name)))
        .header("Accept", "application/x-json-stream");
    if let Some(token) = token {
        req = req.header("X-Rucio-Auth-Token", token);
    }
    let resp = req.send().await.map_err(|source| RucioError::Unreachable { url: base.to_string(), source })?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(|source| RucioError::Unreachable { url: base.to_string(), source })?;
    match status {
        200 => {}
        401 | 403 => return Err(RucioError::Refused(status)),
        404 => return Err(RucioError::NotFound(text)),
        _ => return Err(RucioError::Failed { did: text, status, detail: body.chars().take(300).collect() }),
    }
    let pfns = pfns_of(&body);
    if pfns.is_empty() {
        return Err(RucioError::NotFound(text));
    }
    replica_on_storage(pfns.iter().map(String::as_str), storage_root).ok_or_else(|| RucioError::NotOnStorage {
        did: text,
        root: storage_root.display().to_string(),
        pfns: pfns.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_answers() {
        let lines = concat!(
            r#"{"scope":"s","name":"n","pfns":{"root://x//data/s/n":{"rse":"A"}},"rses":{"A":["root://x//data/s/n"]}}"#,
            "\n",
            r#"{"scope":"s","name":"m","rses":{"B":["file:///mnt/b/m"]}}"#,
            "\n"
        );
        assert_eq!(pfns_of(lines), vec!["root://x//data/s/n", "file:///mnt/b/m"]);
        assert_eq!(pfns_of(r#"[{"pfns":{"/a":{}}}]"#), vec!["/a"]);
        assert!(pfns_of("not json").is_empty());
    }
}
