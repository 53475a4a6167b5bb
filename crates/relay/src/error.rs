//! Errors, and the one place where an API error becomes an HTTP status.
//!
//! Three kinds, by whose fault it is: [`RelayError`] is for the operator starting the relay
//! (each message says what to fix); [`StoreError`] is what a store engine reports; `ApiError`
//! (from `backchannel-wire`) is what a remote peer is told, and stays vague about secrets.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use backchannel_wire::ApiError;

/// Why the relay could not start or stopped: meant for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    #[error("invalid relay configuration: {0}")]
    Config(String),
    #[error("cannot create data directory {}: {reason}", path.display())]
    DataDir { path: PathBuf, reason: String },
    #[error("cannot bind {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("TLS certificate in {}: {reason}", dir.display())]
    Tls { dir: PathBuf, reason: String },
    #[error("cannot open store at {location}: {reason}")]
    OpenStore { location: String, reason: String },
    #[error("PostgreSQL at {location} unreachable: {reason}")]
    PostgresUnreachable { location: String, reason: String },
    #[error("cannot write {}: {reason}", path.display())]
    WriteFile { path: PathBuf, reason: String },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("relay server: {0}")]
    Server(String),
}

/// What a store engine reports. `NotAuthorized` is the peer's doing; the rest are the host's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such queue, or the presented secret does not open it (deliberately not told apart).
    #[error("no such queue, or the secret does not open it")]
    NotAuthorized,
    /// A freshly drawn random queue id is already in use; draw again.
    #[error("queue id already taken")]
    IdTaken,
    #[error("the host's disk is full")]
    DiskFull,
    #[error("the store is closed")]
    Closed,
    #[error("the database is unreachable: {0}")]
    Unreachable(String),
    #[error("{engine} error: {message}")]
    Backend { engine: &'static str, message: String },
}

impl StoreError {
    /// True for errors that concern one request only; any other error fails the whole
    /// group-committed transaction it happened in.
    pub(crate) fn is_per_request(&self) -> bool {
        matches!(self, Self::NotAuthorized | Self::IdTaken)
    }
}

/// An operating-system error in the words an operator expects ("permission denied").
pub(crate) fn io_reason(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::AddrInUse => "address already in use (is another relay running?)".to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available on this machine".to_owned(),
        io::ErrorKind::NotFound => "not found".to_owned(),
        _ => err.to_string(),
    }
}

/// Marks a response as a rejection so the connection layer can count it by reason.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rejected(pub &'static str);

/// An [`ApiError`] on its way to a peer as JSON `ApiErrorBody`.
#[derive(Debug)]
pub(crate) struct ApiFailure(pub ApiError);

/// The one mapping from API errors to HTTP statuses.
pub(crate) fn status_for(err: &ApiError) -> StatusCode {
    match err {
        ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ApiError::Unauthorized => StatusCode::FORBIDDEN,
        ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::QueueFull => StatusCode::CONFLICT,
        ApiError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ApiError> for ApiFailure {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl From<StoreError> for ApiFailure {
    fn from(err: StoreError) -> Self {
        Self(api_error(err))
    }
}

/// What a peer is told about a store failure: the host's problems stay summarised.
pub(crate) fn api_error(err: StoreError) -> ApiError {
    match err {
        StoreError::NotAuthorized => ApiError::Unauthorized,
        StoreError::DiskFull => {
            ApiError::Unavailable("the host's disk is full; nothing can be stored until it is freed".into())
        }
        StoreError::Closed => ApiError::Unavailable("the relay is shutting down".into()),
        StoreError::Unreachable(_) => ApiError::Unavailable("the relay's database is unreachable".into()),
        other => {
            tracing::error!(error = %other, "store failure");
            ApiError::Internal
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = status_for(&self.0);
        let mut response = (status, Json(self.0.body())).into_response();
        response.extensions_mut().insert(Rejected(self.0.code()));
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_distinct_and_sensible() {
        let cases = [
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::Unauthorized, 403),
            (ApiError::TooLarge("x".into()), 413),
            (ApiError::QueueFull, 409),
            (ApiError::RateLimited, 429),
            (ApiError::Unavailable("x".into()), 503),
            (ApiError::Internal, 500),
        ];
        for (err, code) in cases {
            assert_eq!(status_for(&err).as_u16(), code, "{err:?}");
        }
    }

    #[test]
    fn disk_full_is_unavailable_and_says_so() {
        let err = api_error(StoreError::DiskFull);
        assert_eq!(status_for(&err), StatusCode::SERVICE_UNAVAILABLE);
        assert!(err.to_string().contains("disk is full"), "{err}");
    }

    #[test]
    fn backend_details_do_not_reach_peers() {
        let err = api_error(StoreError::Backend { engine: "SQLite", message: "secret path /x".into() });
        assert_eq!(err, ApiError::Internal);
        assert!(!err.to_string().contains("/x"));
    }

    #[test]
    fn bind_error_reads_well() {
        let err = RelayError::Bind {
            addr: "127.0.0.1:80".parse().unwrap(),
            reason: io_reason(&io::Error::from(io::ErrorKind::PermissionDenied)),
        };
        assert_eq!(err.to_string(), "cannot bind 127.0.0.1:80: permission denied");
    }
}
