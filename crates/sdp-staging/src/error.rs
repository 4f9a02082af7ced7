//! The one error type of the API, and how each failure answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::db::DbError;
use crate::jupyter::JupyterError;
use crate::local::PlanError;
use crate::method::MethodError;
use crate::paths::PathError;
use crate::rucio::RucioError;

/// Why a request failed. The message says what to do; the answer is `{"detail": message}` as the original's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Method(#[from] MethodError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{0}")]
    BadRequest(String),
    #[error("Source path does not exist: {0} (paths are relative to the storage root; see GET /config/)")]
    SourceMissing(String),
    #[error("missing or wrong token: send `Authorization: Bearer <token>` with the service's STAGING_API_TOKEN")]
    Unauthorized,
    #[error(
        "`{0}` exists in the storage root and is source data: replacing it needs the service's STAGING_API_TOKEN \
         (then only its holders may) or STAGING_ALLOW_OVERWRITE=true"
    )]
    Overwrite(String),
    #[error(transparent)]
    Jupyter(#[from] JupyterError),
    #[error(transparent)]
    Rucio(#[from] RucioError),
    #[error("the storage root {0} is not a folder here: check SOURCE_STORAGE_PATH and the volume mounted there")]
    NoStorage(String),
    #[error("staging failed: {0}")]
    Io(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Path(_) | Error::Method(_) | Error::Plan(PlanError::Link(_) | PlanError::Special(_)) => {
                StatusCode::BAD_REQUEST
            }
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::SourceMissing(_) => StatusCode::NOT_FOUND,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Overwrite(_) => StatusCode::CONFLICT,
            Error::Jupyter(e) => match e {
                JupyterError::NotConfigured | JupyterError::NoToken => StatusCode::BAD_REQUEST,
                JupyterError::Refused { .. } => StatusCode::FORBIDDEN,
                JupyterError::NoUser(_) => StatusCode::NOT_FOUND,
                JupyterError::NotReady { .. } => StatusCode::GATEWAY_TIMEOUT,
                JupyterError::Unreachable { .. } | JupyterError::Failed { .. } => StatusCode::BAD_GATEWAY,
                JupyterError::Read { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::Rucio(e) => match e {
                RucioError::NotConfigured(_) => StatusCode::BAD_REQUEST,
                RucioError::NotFound(_) | RucioError::NotOnStorage { .. } => StatusCode::NOT_FOUND,
                RucioError::Refused(_) | RucioError::Unreachable { .. } | RucioError::Failed { .. } => {
                    StatusCode::BAD_GATEWAY
                }
            },
            Error::Plan(PlanError::Io { .. }) | Error::NoStorage(_) | Error::Io(_) | Error::Db(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::info!(error = %self, status = status.as_u16(), "request refused");
        }
        (status, Json(serde_json::json!({ "detail": self.to_string() }))).into_response()
    }
}
