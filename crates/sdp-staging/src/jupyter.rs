//! Upload into a user's JupyterHub single-user server: find or start the server through the Hub's REST API, then
//! write through the Jupyter contents API, large files in base64 chunks.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::local::{Item, Plan, Progress};

/// Raw bytes per contents-API chunk (sent base64-encoded, a third larger).
pub const CHUNK_BYTES: u64 = 8 << 20;
/// How long a starting server may take to become ready.
const START_LIMIT: Duration = Duration::from_secs(120);

/// A failure talking to JupyterHub or the user's server.
#[derive(Debug, thiserror::Error)]
pub enum JupyterError {
    #[error("jupyter_copy needs JupyterHub: set JUPYTERHUB_URL")]
    NotConfigured,
    #[error("jupyter_copy needs a JupyterHub token: pass jupyter_token or set JUPYTERHUB_API_TOKEN")]
    NoToken,
    #[error(
        "JupyterHub refused the token ({status}) when {action}: {detail}; check jupyter_token (or JUPYTERHUB_API_TOKEN): \
         it needs the scopes read:users, servers and access:servers for this user"
    )]
    Refused { status: u16, action: String, detail: String },
    #[error("JupyterHub has no user `{0}`: the user must log in to JupyterHub once (or be created by an admin)")]
    NoUser(String),
    #[error("cannot reach JupyterHub at {url}: {}; check JUPYTERHUB_URL", sdp_daemon::causes(.source))]
    Unreachable { url: String, source: reqwest::Error },
    #[error("JupyterHub answered {status} when {action}: {detail}")]
    Failed { status: u16, action: String, detail: String },
    #[error("the JupyterHub server of `{user}` did not become ready within {secs} s: look at the Hub's spawner logs")]
    NotReady { user: String, secs: u64 },
    #[error("cannot read the source file {path}: {source}")]
    Read { path: String, source: std::io::Error },
}

/// Who started the user's server that a transfer went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// It ran already: it is the user's, and stays.
    Before,
    /// The staging service started it for the transfer, and stops it again afterwards unless asked to keep it.
    Here,
}

/// One contents-API request of a file upload: the bytes at `offset..offset+len`, with the chunk number the API
/// wants (`None`: the whole file in one request; otherwise 1, 2, ... and -1 for the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u64,
    pub len: u64,
    pub number: Option<i64>,
}

/// How a file of `size` bytes is uploaded in pieces of at most `chunk` bytes.
pub fn chunk_plan(size: u64, chunk: u64) -> Vec<Chunk> {
    let chunk = chunk.max(1);
    if size <= chunk {
        return vec![Chunk { offset: 0, len: size, number: None }];
    }
    let n = size.div_ceil(chunk);
    (0..n)
        .map(|i| Chunk {
            offset: i * chunk,
            len: chunk.min(size - i * chunk),
            number: Some(if i + 1 == n { -1 } else { i as i64 + 1 }),
        })
        .collect()
}

/// What is percent-encoded in a URL path segment.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_').remove(b'~');

/// `path` with each segment percent-encoded for a URL.
fn url_path(path: &Path) -> String {
    path.iter()
        .map(|s| percent_encoding::utf8_percent_encode(&s.to_string_lossy(), SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// A Hub client for one request (the token is the request's or the configured one).
pub struct Hub<'a> {
    pub http: &'a reqwest::Client,
    pub url: &'a str,
    pub token: &'a str,
}

impl Hub<'_> {
    async fn send(&self, req: reqwest::RequestBuilder, action: &str) -> Result<reqwest::Response, JupyterError> {
        let resp = req
            .header("Authorization", format!("token {}", self.token))
            .send()
            .await
            .map_err(|source| JupyterError::Unreachable { url: self.url.to_string(), source })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            let detail = detail(resp).await;
            return Err(JupyterError::Refused { status, action: action.to_string(), detail });
        }
        Ok(resp)
    }

    async fn user(&self, user: &str) -> Result<Value, JupyterError> {
        let action = format!("reading user {user}");
        let resp = self.send(self.http.get(format!("{}/hub/api/users/{user}", self.url)), &action).await?;
        match resp.status().as_u16() {
            200 => resp.json().await.map_err(|source| JupyterError::Unreachable { url: self.url.to_string(), source }),
            404 => Err(JupyterError::NoUser(user.to_string())),
            status => Err(JupyterError::Failed { status, action, detail: detail(resp).await }),
        }
    }

    /// The URL of the user's ready default server, starting it when needed; and whether this started it.
    pub async fn server_url(&self, user: &str) -> Result<(String, Started), JupyterError> {
        let start = Instant::now();
        let mut asked = false;
        loop {
            let info = self.user(user).await?;
            let server = &info["servers"][""];
            if server["ready"].as_bool() == Some(true) {
                let path = server["url"].as_str().unwrap_or_default();
                let started = if asked { Started::Here } else { Started::Before };
                return Ok((format!("{}{}", self.url, path), started));
            }
            if !asked && server.is_null() && info["pending"].is_null() {
                tracing::info!(user, "starting the user's JupyterHub server");
                let action = format!("starting the server of {user}");
                let resp =
                    self.send(self.http.post(format!("{}/hub/api/users/{user}/server", self.url)), &action).await?;
                // 201 started, 202 starting, 400 already running or pending.
                if !matches!(resp.status().as_u16(), 201 | 202 | 400) {
                    return Err(JupyterError::Failed {
                        status: resp.status().as_u16(),
                        action,
                        detail: detail(resp).await,
                    });
                }
                asked = true;
            }
            if start.elapsed() > START_LIMIT {
                return Err(JupyterError::NotReady { user: user.to_string(), secs: START_LIMIT.as_secs() });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the user's default server: whether one was running (or starting).
    pub async fn stop_server(&self, user: &str) -> Result<bool, JupyterError> {
        // The Hub answers 204 both when it stopped a server and when there was none.
        if self.user(user).await?["servers"][""].is_null() {
            return Ok(false);
        }
        let action = format!("stopping the server of {user}");
        let resp = self.send(self.http.delete(format!("{}/hub/api/users/{user}/server", self.url)), &action).await?;
        match resp.status().as_u16() {
            // Stopped, or stopping.
            202 | 204 => {
                tracing::info!(user, "stopped the user's JupyterHub server");
                Ok(true)
            }
            404 => Err(JupyterError::NoUser(user.to_string())),
            status => Err(JupyterError::Failed { status, action, detail: detail(resp).await }),
        }
    }

    /// Whether `path` exists in the server.
    pub async fn exists(&self, server: &str, path: &Path) -> Result<bool, JupyterError> {
        let url = format!("{server}api/contents/{}?content=0", url_path(path));
        let resp = self.send(self.http.get(url), "checking the target").await?;
        Ok(resp.status().is_success())
    }

    async fn put(&self, server: &str, path: &Path, body: Value, action: &str) -> Result<(), JupyterError> {
        let url = format!("{server}api/contents/{}", url_path(path));
        let resp = self.send(self.http.put(url).json(&body), action).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(JupyterError::Failed {
                status: resp.status().as_u16(),
                action: action.to_string(),
                detail: detail(resp).await,
            })
        }
    }

    /// Creates `dir` and its parents in the server.
    pub async fn mkdirs(&self, server: &str, dir: &Path) -> Result<(), JupyterError> {
        let mut at = std::path::PathBuf::new();
        for part in dir.iter() {
            at.push(part);
            let action = format!("creating folder {}", at.display());
            self.put(server, &at, json!({"type": "directory"}), &action).await?;
        }
        Ok(())
    }

    /// Uploads what `plan` holds to `target` in the server, counting bytes in `progress`.
    pub async fn upload(
        &self,
        server: &str,
        plan: &Plan,
        target: &Path,
        progress: &Progress,
    ) -> Result<(), JupyterError> {
        if let Some(parent) = target.parent() {
            self.mkdirs(server, parent).await?;
        }
        for item in &plan.items {
            match item {
                Item::Dir(rel) => {
                    let at = target.join(rel);
                    self.put(server, &at, json!({"type": "directory"}), &format!("creating folder {}", at.display()))
                        .await?
                }
                Item::File { rel, from, len } => {
                    self.upload_file(server, from, *len, &target.join(rel), progress).await?
                }
            }
        }
        Ok(())
    }

    async fn upload_file(
        &self,
        server: &str,
        from: &Path,
        len: u64,
        to: &Path,
        progress: &Progress,
    ) -> Result<(), JupyterError> {
        let read_err = |source| JupyterError::Read { path: from.display().to_string(), source };
        let mut file = tokio::fs::File::open(from).await.map_err(read_err)?;
        let action = format!("uploading {}", to.display());
        for chunk in chunk_plan(len, CHUNK_BYTES) {
            let mut buf = vec![0; chunk.len as usize];
            file.seek(std::io::SeekFrom::Start(chunk.offset)).await.map_err(read_err)?;
            file.read_exact(&mut buf).await.map_err(read_err)?;
            let content = base64::engine::general_purpose::STANDARD.encode(&buf);
            let mut body = json!({"type": "file", "format": "base64", "content": content});
            if let Some(n) = chunk.number {
                body["chunk"] = json!(n);
            }
            self.put(server, to, body, &action).await?;
            progress.add(chunk.len);
        }
        Ok(())
    }
}

/// The useful part of an error answer: JSON `message`/`detail`, else the text, bounded.
async fn detail(resp: reqwest::Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("message").or_else(|| v.get("detail")).and_then(Value::as_str).map(str::to_string))
        .unwrap_or(text);
    msg.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(offset: u64, len: u64, number: Option<i64>) -> Chunk {
        Chunk { offset, len, number }
    }

    #[test]
    fn chunks() {
        assert_eq!(chunk_plan(0, 10), vec![c(0, 0, None)]);
        assert_eq!(chunk_plan(10, 10), vec![c(0, 10, None)]);
        assert_eq!(chunk_plan(11, 10), vec![c(0, 10, Some(1)), c(10, 1, Some(-1))]);
        assert_eq!(chunk_plan(30, 10), vec![c(0, 10, Some(1)), c(10, 10, Some(2)), c(20, 10, Some(-1))]);
        let plan = chunk_plan(1 << 30, CHUNK_BYTES);
        assert_eq!(plan.len(), 128);
        assert_eq!(plan.iter().map(|c| c.len).sum::<u64>(), 1 << 30);
        assert_eq!(plan.last().unwrap().number, Some(-1));
    }

    #[test]
    fn url_paths() {
        assert_eq!(url_path(Path::new("a b/c#d.txt")), "a%20b/c%23d.txt");
    }
}
