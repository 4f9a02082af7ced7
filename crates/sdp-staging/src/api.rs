//! The HTTP edge: the route table, the extractors, the optional bearer check, the records and the metrics;
//! the staging work itself is in [`crate::staging`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::db::{Db, NewEntry, Status};
use crate::error::Error;
use crate::local::Progress;
use crate::method::Method;
use crate::paths::{self, Root, Source};
use crate::staging::{self, StageRequest};

const INDEX_HTML: &str = include_str!("../web/index.html");
const OPENAPI_JSON: &str = include_str!("../web/openapi.json");

type Labels = Vec<(String, String)>;

/// Prometheus metrics of the service.
struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let bytes = Family::<Labels, Counter>::default();
        registry.register("sdp_staging_requests", "Staging requests by method and outcome", requests.clone());
        registry.register("sdp_staging_bytes", "Bytes staged by method", bytes.clone());
        Metrics { registry, requests, bytes }
    }
}

/// What every handler shares.
pub struct App {
    settings: Settings,
    db: Db,
    http: reqwest::Client,
    metrics: Metrics,
}

/// The service's routes over `settings` and `db`.
pub fn router(settings: Settings, db: Db) -> Router {
    let http = crate::client::http_client()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client with the ring provider builds");
    let app = Arc::new(App { settings, db, http, metrics: Metrics::new() });
    let api = [
        ("/stage-data/", post(stage_data)),
        ("/logs/", get(logs)),
        ("/config/", get(config)),
        ("/config/allowed-methods/", get(allowed_methods)),
        ("/create-file/", post(create_file)),
        ("/jupyter/stop-server/", post(stop_jupyter_server)),
        // The chart's ingress routes `/stage_data` (underscore) as the original's did; answer there too.
        ("/stage_data/", post(stage_data)),
    ];
    // Each API route also answers without its trailing slash (the original redirected those).
    let router = api
        .into_iter()
        .fold(Router::new(), |r, (path, route)| r.route(path, route.clone()).route(path.trim_end_matches('/'), route));
    router
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/health", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON) }))
        .layer(middleware::from_fn_with_state(app.clone(), bearer))
        // One span per request naming the path only: the query may carry a JupyterHub token.
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &Request| tracing::debug_span!("http", method = %req.method(), path = %req.uri().path()),
        ))
        .with_state(app)
}

/// With `STAGING_API_TOKEN` set, everything but the page and the probes needs the bearer token.
async fn bearer(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let open = matches!(req.uri().path(), "/" | "/health" | "/healthz" | "/readyz");
    if let (Some(token), false) = (&app.settings.api_token, open) {
        if !sdp_daemon::http::bearer_admits(req.headers(), &token.0) {
            return Error::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

/// Ready while the metadata database answers.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.db.ping().await {
        Ok(()) => "ok".into_response(),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("the metadata database does not answer: {e}")).into_response()
        }
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    sdp_daemon::http::metrics(&app.metrics.registry)
}

async fn config(State(app): State<Arc<App>>) -> Json<Value> {
    let s = &app.settings;
    Json(json!({
        "source_storage_path": s.source_root,
        "target_storage_path": s.target_root,
        "allowed_methods": s.allowed_methods,
        "jupyterhub_url": s.jupyterhub_url,
        "rucio_base_url": s.rucio_base_url,
        "database": app.db.backend(),
        "api_token_required": s.api_token.is_some(),
        "create_file_overwrites": s.may_overwrite(),
    }))
}

async fn allowed_methods(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({ "allowed_methods": app.settings.allowed_methods }))
}

#[derive(Debug, Deserialize)]
struct Page {
    offset: Option<i64>,
    limit: Option<i64>,
}

async fn logs(State(app): State<Arc<App>>, Query(page): Query<Page>) -> Result<Json<Value>, Error> {
    let offset = page.offset.unwrap_or(0).max(0);
    let limit = page.limit.unwrap_or(50).clamp(1, 1000);
    let (entries, total) = app.db.list(offset, limit).await?;
    Ok(Json(json!({ "total": total, "offset": offset, "limit": limit, "entries": entries })))
}

#[derive(Debug, Deserialize)]
struct StageQuery {
    method: String,
    username: String,
    jupyter_token: Option<String>,
    #[serde(default)]
    jupyter_keep_server: bool,
}

#[derive(Debug, Deserialize)]
struct UserQuery {
    username: String,
    jupyter_token: Option<String>,
}

/// `POST /jupyter/stop-server/`: stops the user's JupyterHub server (one staging started and kept, or any).
async fn stop_jupyter_server(State(app): State<Arc<App>>, Query(q): Query<UserQuery>) -> Result<Json<Value>, Error> {
    let message =
        staging::stop_jupyter_server(&app.settings, &app.http, &q.username, q.jupyter_token.as_deref()).await?;
    tracing::info!(username = %q.username, "{message}");
    Ok(Json(json!({ "status": "success", "message": message })))
}

#[derive(Debug, Deserialize)]
struct DataItem {
    local_path_on_storage: String,
    #[serde(default)]
    relative_path: String,
}

#[derive(Debug, Deserialize)]
struct StageBody {
    data: DataItem,
}

/// `POST /stage-data/`: records the request, stages, records the outcome (and the progress meanwhile). The work
/// runs in its own task, so a client that goes away does not leave a copy half done or its record `running`.
async fn stage_data(
    State(app): State<Arc<App>>,
    Query(q): Query<StageQuery>,
    headers: HeaderMap,
    Json(body): Json<StageBody>,
) -> Result<Response, Error> {
    let d = &body.data;
    tracing::info!(method = %q.method, username = %q.username, source = %d.local_path_on_storage,
        target = %d.relative_path, "staging request");
    let entry = NewEntry {
        method: &q.method,
        username: &q.username,
        source: &d.local_path_on_storage,
        target: &d.relative_path,
        status: Status::Running,
        message: "",
    };
    let id = app.db.insert(&entry).await?;
    let job = tokio::spawn(async move { stage_and_record(app, id, q, body.data, headers).await });
    job.await.map_err(|e| Error::Io(format!("the staging task ended abnormally: {e}")))?
}

async fn stage_and_record(
    app: Arc<App>,
    id: i64,
    q: StageQuery,
    d: DataItem,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let progress = Arc::new(Progress::default());
    let reporter = tokio::spawn(report_progress(app.clone(), id, progress.clone()));
    let request = StageRequest {
        method: &q.method,
        username: &q.username,
        jupyter_token: q.jupyter_token.as_deref(),
        jupyter_keep_server: q.jupyter_keep_server,
        source: &d.local_path_on_storage,
        target: &d.relative_path,
    };
    let result = staging::stage(&app.settings, &app.http, &request, &headers, &progress).await;
    reporter.abort();
    let (done, total) = progress.get();
    let (status, outcome, message) = match &result {
        Ok(staged) => (Status::Done, "done", staged.message.clone()),
        Err(e) if e.status().is_client_error() => (Status::Rejected, "rejected", e.to_string()),
        Err(e) => (Status::Failed, "failed", e.to_string()),
    };
    app.db.finish(id, status, &message, done, total).await?;
    let method_label = q.method.parse::<Method>().map(Method::as_str).unwrap_or("unknown");
    let labels =
        |extra: (&str, &str)| vec![("method".to_string(), method_label.to_string()), (extra.0.into(), extra.1.into())];
    app.metrics.requests.get_or_create(&labels(("outcome", outcome))).inc();
    let staged = result?;
    app.metrics
        .bytes
        .get_or_create(&vec![("method".to_string(), method_label.to_string())])
        .inc_by(done.max(staged.served));
    tracing::info!(id, method = method_label, username = %q.username, bytes = done, "{}", staged.message);
    Ok(match staged.response {
        Some(response) => response,
        None => Json(json!({ "status": "success", "message": staged.message, "id": id })).into_response(),
    })
}

async fn report_progress(app: Arc<App>, id: i64, progress: Arc<Progress>) {
    let mut last = (0, 0);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = progress.get();
        if now != last {
            if let Err(e) = app.db.progress(id, now.0, now.1).await {
                tracing::warn!(id, error = %e, "cannot record progress");
            }
            last = now;
        }
    }
}

#[derive(Debug, Deserialize)]
struct NewFile {
    filename: String,
    content: String,
}

/// `POST /create-file/`: writes a file under the storage root (a helper for trying the service).
async fn create_file(State(app): State<Arc<App>>, Json(f): Json<NewFile>) -> Result<Json<Value>, Error> {
    let root = &app.settings.source_root;
    let rel = paths::check_relative(&f.filename, Root::Storage)?;
    if rel.as_os_str().is_empty() {
        return Err(paths::PathError::Empty { what: "filename", root: "storage root" }.into());
    }
    let path = match paths::resolve_source(root, &rel, &f.filename)? {
        Source::Found(p) if p.is_file() && app.settings.may_overwrite() => p,
        Source::Found(p) if p.is_file() => return Err(Error::Overwrite(f.filename)),
        Source::Found(_) => return Err(Error::BadRequest(format!("`{}` is a folder: give a file name", f.filename))),
        Source::Missing(p) => p,
    };
    let write = async {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, f.content.as_bytes()).await
    };
    write.await.map_err(|e| Error::Io(format!("cannot write {}: {e}", rel.display())))?;
    tracing::info!(file = %rel.display(), bytes = f.content.len(), "file created in storage");
    Ok(Json(json!({
        "status": "success",
        "message": format!("File '{}' created successfully in {}.", f.filename, path.display()),
    })))
}
