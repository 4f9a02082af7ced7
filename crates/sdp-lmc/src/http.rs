//! The devices over HTTP/JSON: read and write attributes, run commands, follow change events (SSE).
//!
//! | route | does |
//! | --- | --- |
//! | `GET /api/devices` | the devices (id, Tango name, class, server) |
//! | `GET /api/devices/{device}` | every attribute of a device |
//! | `GET /api/devices/{device}/attributes/{name}` | one attribute |
//! | `PUT /api/devices/{device}/attributes/{name}` | write it (JSON body: `"ONLINE"` or `1`) |
//! | `POST /api/devices/{device}/commands/{name}` | run a command; the body is its string argument |
//! | `GET /api/events` | server-sent events, one per attribute change |
//!
//! Errors answer `{"kind", "reason", "desc"}`: 404 unknown device/attribute/command, 409 not allowed in the
//! current state, 400 bad argument, 500 failed; 401 without the bearer token, when [`crate::start`] serves
//! the devices behind one.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde_json::{json, Map, Value};

use crate::error::DevError;
use crate::error::ErrorKind;
use crate::runtime::Lmc;

pub fn router(lmc: Arc<Lmc>) -> Router {
    Router::new()
        .route("/api/devices", get(devices))
        .route("/api/devices/{device}", get(device))
        .route("/api/devices/{device}/attributes/{name}", get(read_attribute).put(write_attribute))
        .route("/api/devices/{device}/commands/{name}", post(command))
        .route("/api/events", get(events))
        .with_state(lmc)
}

/// The answer to a request without the surface's bearer token, in the surface's error format.
pub(crate) fn unauthorized() -> Response {
    let body = json!({
        "kind": "Unauthorized", "reason": "API_Unauthorized",
        "desc": "missing or wrong token: send `Authorization: Bearer <token>` with the platform's SDP_LMC_TOKEN",
    });
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    (StatusCode::UNAUTHORIZED, json, body.to_string()).into_response()
}

impl IntoResponse for DevError {
    fn into_response(self) -> Response {
        let status = match self.kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::NotAllowed => StatusCode::CONFLICT,
            ErrorKind::BadArgument => StatusCode::BAD_REQUEST,
            ErrorKind::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self)).into_response()
    }
}

async fn devices(State(lmc): State<Arc<Lmc>>) -> Json<Value> {
    Json(json!(lmc.devices()))
}

async fn device(State(lmc): State<Arc<Lmc>>, Path(device): Path<String>) -> Result<Json<Value>, DevError> {
    let attrs: Map<String, Value> =
        lmc.attributes(&device).await?.into_iter().map(|(n, v)| (n.to_string(), json!(v))).collect();
    Ok(Json(Value::Object(attrs)))
}

async fn read_attribute(
    State(lmc): State<Arc<Lmc>>,
    Path((device, name)): Path<(String, String)>,
) -> Result<Json<Value>, DevError> {
    Ok(Json(json!(lmc.read_attribute(&device, &name).await?)))
}

async fn write_attribute(
    State(lmc): State<Arc<Lmc>>,
    Path((device, name)): Path<(String, String)>,
    body: String,
) -> Result<StatusCode, DevError> {
    let value: Value = serde_json::from_str(&body)
        .map_err(|e| DevError::bad_argument(format!("the body must be a JSON value such as \"ONLINE\": {e}")))?;
    lmc.write_attribute(&device, &name, &value).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn command(
    State(lmc): State<Arc<Lmc>>,
    Path((device, name)): Path<(String, String)>,
    body: String,
) -> Result<StatusCode, DevError> {
    lmc.command(&device, &name, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn events(State(lmc): State<Arc<Lmc>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = tokio_stream::wrappers::BroadcastStream::new(lmc.subscribe()).filter_map(|event| async move {
        // A subscriber too slow to keep up skips what it missed rather than stalling the devices.
        let event = event.ok()?;
        Some(Ok(Event::default().event("change").json_data(&event).unwrap_or_default()))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
