//! The staging work behind `POST /stage-data/`: checks, then a copy or link into the user's area, a download,
//! or an upload into the user's Jupyter server. The HTTP edge ([`crate::api`]) records and counts it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method as HttpMethod, StatusCode};
use axum::response::Response;
use tower::ServiceExt;

use crate::config::Settings;
use crate::error::Error;
use crate::jupyter::{Hub, JupyterError, Started};
use crate::local::{self, Progress};
use crate::method::{self, Method};
use crate::paths::{self, Root, Source};
use crate::rucio;

/// What a staging request asks for, as the query and body give it.
pub struct StageRequest<'a> {
    pub method: &'a str,
    pub username: &'a str,
    pub jupyter_token: Option<&'a str>,
    /// jupyter_copy: leave running the user's server if this request started it (by default it is stopped).
    pub jupyter_keep_server: bool,
    /// `local_path_on_storage`: a path under the storage root, or a Rucio DID `scope:name`.
    pub source: &'a str,
    /// `relative_path` in the user's area; empty: the source's name.
    pub target: &'a str,
}

/// What a successful staging answers: a message, or (direct download) the file itself.
pub struct Staged {
    pub message: String,
    pub response: Option<Response>,
    /// Bytes a download served.
    pub served: u64,
}

impl Staged {
    fn message(message: String) -> Staged {
        Staged { message, response: None, served: 0 }
    }
}

/// Stages what `request` asks for: checks method, user and paths, resolves a Rucio DID, then copies, links,
/// serves or uploads. Progress goes to `progress`.
pub async fn stage(
    s: &Settings,
    http: &reqwest::Client,
    request: &StageRequest<'_>,
    headers: &HeaderMap,
    progress: &Arc<Progress>,
) -> Result<Staged, Error> {
    let method = method::select(request.method, &s.allowed_methods)?;
    let user = paths::check_username(request.username)?;
    if !s.source_root.is_dir() {
        return Err(Error::NoStorage(s.source_root.display().to_string()));
    }
    let source_text = match paths::parse_did(request.source) {
        Some(did) => {
            let token = s.rucio_token.as_ref().map(|t| t.0.as_str());
            rucio::resolve(http, s.rucio_base_url.as_deref(), token, &did, &s.source_root).await?
        }
        None => request.source.to_string(),
    };
    let source_rel = paths::check_relative(&source_text, Root::Storage)?;
    if source_rel.as_os_str().is_empty() {
        return Err(paths::PathError::Empty { what: "local_path_on_storage", root: "storage root" }.into());
    }
    let source = match paths::resolve_source(&s.source_root, &source_rel, &source_text)? {
        Source::Found(p) => p,
        Source::Missing(_) => return Err(Error::SourceMissing(source_text)),
    };
    // The target's name defaults to the source's.
    let target_rel = match paths::check_relative(request.target, Root::UserArea)? {
        rel if rel.as_os_str().is_empty() => PathBuf::from(source.file_name().unwrap_or_default()),
        rel => rel,
    };
    match method {
        Method::DirectDownload => download(&source, headers).await,
        Method::LocalCopy | Method::LocalSymlink => {
            let target = paths::resolve_target(&s.target_root, user, &target_rel, request.target)?;
            stage_local(s, method, user, source, target, progress.clone()).await
        }
        Method::JupyterCopy => {
            let hub = hub(s, http, request.jupyter_token)?;
            stage_jupyter(&hub, user, source, &s.source_root, &target_rel, request.jupyter_keep_server, progress).await
        }
    }
}

/// Walks the source off the async workers (a tree may be large).
async fn plan(source: PathBuf, root: &Path) -> Result<local::Plan, Error> {
    let root = paths::canonical_root(root);
    tokio::task::spawn_blocking(move || local::plan(&source, &root))
        .await
        .map_err(|e| Error::Io(e.to_string()))?
        .map_err(Error::from)
}

/// `local_copy` and `local_symlink` into `target` (already confined to the user's area).
async fn stage_local(
    s: &Settings,
    method: Method,
    user: &str,
    source: PathBuf,
    target: PathBuf,
    progress: Arc<Progress>,
) -> Result<Staged, Error> {
    if target.symlink_metadata().is_ok() {
        let rel = target.strip_prefix(paths::canonical_root(&s.target_root).join(user));
        let shown = rel.unwrap_or(&target).display();
        return Ok(Staged::message(format!("Data already available at {shown}")));
    }
    // The plan also refuses a source holding links that lead out, for a symbolic link as for a copy.
    let plan = plan(source.clone(), &s.source_root).await?;
    progress.set_total(plan.total);
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match method {
            Method::LocalCopy => local::copy(&plan, &target, &progress),
            _ => local::symlink(&source, &target),
        }
    })
    .await
    .map_err(|e| Error::Io(e.to_string()))?
    .map_err(|e| Error::Io(format!("{e} (user area {})", s.target_root.display())))?;
    Ok(Staged::message(format!("Data staged for user {user} with method {method}")))
}

/// The configured JupyterHub, with the request's token, else the configured one.
fn hub<'a>(s: &'a Settings, http: &'a reqwest::Client, token: Option<&'a str>) -> Result<Hub<'a>, JupyterError> {
    let url = s.jupyterhub_url.as_deref().ok_or(JupyterError::NotConfigured)?;
    let token = token.filter(|t| !t.is_empty()).or(s.jupyterhub_token.as_ref().map(|t| t.0.as_str()));
    Ok(Hub { http, url, token: token.ok_or(JupyterError::NoToken)? })
}

/// Stops the JupyterHub server of `username` (`POST /jupyter/stop-server/`): what happened, as a message.
pub async fn stop_jupyter_server(
    s: &Settings,
    http: &reqwest::Client,
    username: &str,
    token: Option<&str>,
) -> Result<String, Error> {
    let user = paths::check_username(username)?;
    Ok(if hub(s, http, token)?.stop_server(user).await? {
        format!("The JupyterHub server of {user} is stopping")
    } else {
        format!("The JupyterHub server of {user} was not running")
    })
}

/// `jupyter_copy`.
async fn stage_jupyter(
    hub: &Hub<'_>,
    user: &str,
    source: PathBuf,
    source_root: &Path,
    target_rel: &Path,
    keep_server: bool,
    progress: &Progress,
) -> Result<Staged, Error> {
    let plan = plan(source, source_root).await?;
    progress.set_total(plan.total);
    let (server, started) = hub.server_url(user).await?;
    let copied = async {
        if hub.exists(&server, target_rel).await? {
            return Ok(format!("Data already available at {} in the Jupyter server", target_rel.display()));
        }
        hub.upload(&server, &plan, target_rel, progress).await?;
        Ok::<_, Error>(format!("Data staged for user {user} with method jupyter_copy"))
    }
    .await;
    // A server started for the transfer is stopped again, whatever its outcome (the data stays in the user's
    // folder), unless the request keeps it for the user.
    if started == Started::Here && !keep_server {
        if let Err(e) = hub.stop_server(user).await {
            tracing::warn!(user, error = %e, "cannot stop the JupyterHub server started for the transfer");
        }
    }
    let message = copied?;
    Ok(Staged::message(if started == Started::Here && keep_server {
        format!("{message}; the Jupyter server started for it keeps running")
    } else {
        message
    }))
}

/// Streams one file, with HTTP ranges, its content type and length, as an attachment.
async fn download(source: &Path, headers: &HeaderMap) -> Result<Staged, Error> {
    if !source.is_file() {
        return Err(Error::BadRequest("direct_download serves single files: use local_copy for a folder".into()));
    }
    let mut req = Request::builder().method(HttpMethod::GET).uri("/");
    for name in [header::RANGE, header::IF_RANGE, header::IF_MODIFIED_SINCE, header::IF_UNMODIFIED_SINCE] {
        if let Some(v) = headers.get(&name) {
            req = req.header(name, v);
        }
    }
    let req = req.body(Body::empty()).map_err(|e| Error::Io(e.to_string()))?;
    let resp = tower_http::services::ServeFile::new(source).oneshot(req).await.map_err(|e| Error::Io(e.to_string()))?;
    let served = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut resp = resp.map(Body::new);
    let name = source.file_name().unwrap_or_default().to_string_lossy().replace(['"', '\\'], "_");
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    let status = resp.status();
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        return Ok(Staged { message: format!("download answered {status}"), response: Some(resp), served: 0 });
    }
    Ok(Staged { message: format!("Serving {name} ({served} bytes, {status})"), response: Some(resp), served })
}
