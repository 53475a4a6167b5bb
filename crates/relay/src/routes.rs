//! The HTTP API: one handler per operation. Handlers turn requests into store calls and
//! store answers into responses; every failure is an `ApiError` (see `error.rs` for the one
//! status mapping).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use backchannel_wire::{
    API_PREFIX, AckRequest, ApiError, CreateQueueRequest, CreateQueueResponse, DecodeError, FetchResponse,
    MAX_BATCH, QueueId, QueueSecret, SecretHash, SendBatch, SendResponse,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::error::ApiFailure;
use crate::limits::{TokenBucket, read_body};
use crate::metrics::Metrics;
use crate::notify::Hub;
use crate::store::{AnyStore, NewQueue, PutItem, PutResult, unix_now};
use crate::{RelayConfig, StoreError, ws};

/// Largest JSON control body (an ack of a full batch of seqs fits easily).
const MAX_JSON_BODY: usize = 64 * 1024;
/// Fresh ids are random; a clash is astronomically rare, but drawing again costs nothing.
const CREATE_ATTEMPTS: usize = 3;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub store: AnyStore,
    pub config: Arc<RelayConfig>,
    /// This node's WebSocket followers, fed by the store's writer after each commit.
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    /// Turns true when the relay begins shutting down.
    pub stopping: watch::Receiver<bool>,
    /// Relay-wide limit on new queues (per-connection limits alone let many connections
    /// together create queues without bound).
    pub new_queues: Arc<Mutex<TokenBucket>>,
}

pub(crate) fn router(state: AppState) -> Router {
    let v1 = |path: &str| format!("{API_PREFIX}{path}");
    Router::new()
        .route(&v1("/queues"), post(create_queue))
        .route(&v1("/send"), post(send))
        .route(&v1("/queues/{recv_id}/blocks"), get(fetch))
        .route(&v1("/queues/{recv_id}/ack"), post(ack))
        .route(&v1("/queues/{recv_id}"), delete(delete_queue))
        .route(&v1("/ws"), get(ws::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .fallback(no_such_endpoint)
        .with_state(state)
}

type ApiResult<T> = Result<T, ApiFailure>;

async fn create_queue(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<CreateQueueResponse>)> {
    let req: CreateQueueRequest =
        parse_json(&read_body(&headers, body, (MAX_JSON_BODY, s.config.body_timeout), "a request").await?)?;
    if req.recv_hash == req.send_hash {
        return Err(ApiError::BadRequest("the receive and send secrets must differ".into()).into());
    }
    let allowed =
        s.new_queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner).try_take(Instant::now());
    if !allowed {
        return Err(ApiError::RateLimited.into());
    }
    for _ in 0..CREATE_ATTEMPTS {
        let queue = NewQueue {
            recv_id: QueueId::random(),
            send_id: QueueId::random(),
            recv_hash: req.recv_hash,
            send_hash: req.send_hash,
        };
        match s.store.create_queue(queue, unix_now()).await {
            Ok(()) => return Ok((StatusCode::CREATED, Json(created(&s.config, &queue)))),
            Err(StoreError::IdTaken) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::Internal.into())
}

fn created(config: &RelayConfig, queue: &NewQueue) -> CreateQueueResponse {
    CreateQueueResponse {
        recv_id: queue.recv_id,
        send_id: queue.send_id,
        block_size: config.block_size,
        ttl_secs: config.ttl_secs(),
        quota_blocks: config.quota_blocks,
    }
}

async fn send(State(s): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Json<SendResponse>> {
    let bytes =
        read_body(&headers, body, (s.config.max_send_body(), s.config.body_timeout), "a send batch").await?;
    let batch = SendBatch::decode(&bytes, s.config.block_size)
        .map_err(|e| batch_problem(&e, bytes.len(), s.config.block_size))?;
    let items = batch
        .items
        .into_iter()
        .map(|i| PutItem { send_id: i.send_id, hash: i.secret.hash(), block: i.block })
        .collect();
    let results = s.store.put(items, s.config.quota_blocks, unix_now()).await?;
    record_put(&s, &results);
    Ok(Json(SendResponse { results: results.iter().map(PutResult::outcome).collect() }))
}

/// Counts what a send did (the writer has already handed the stored blocks to followers).
fn record_put(s: &AppState, results: &[PutResult]) {
    for result in results {
        match result {
            PutResult::Stored { .. } => Metrics::add(&s.metrics.blocks_stored, 1),
            PutResult::Refused => s.metrics.reject("refused", 1),
            PutResult::QueueFull => s.metrics.reject("queue_full", 1),
        }
    }
}

/// Says exactly what is wrong with a send body, without echoing any of it.
fn batch_problem(err: &DecodeError, len: usize, block_size: usize) -> ApiError {
    let item = 16 + 32 + block_size;
    ApiError::BadRequest(match err {
        DecodeError::Invalid("batch size") => format!("a send batch holds 1 to {MAX_BATCH} blocks"),
        DecodeError::Invalid("block size") => format!(
            "every block must be exactly {block_size} bytes: a batch of n blocks is 2 + n × {item} bytes, \
             and {len} bytes is not"
        ),
        other => format!("malformed send batch: {other}"),
    })
}

#[derive(Deserialize)]
struct FetchParams {
    max: Option<usize>,
    /// Only blocks with a larger seq: lets a client page past blocks it must keep for now
    /// (pieces of a message whose other blocks have not arrived).
    after: Option<u64>,
}

async fn fetch(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<FetchParams>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let recv_id = queue_id(path)?;
    let hash = bearer(&headers)?;
    let bad_max = || ApiError::BadRequest(format!("max must be a number from 1 to {MAX_BATCH}"));
    let params = query.map_err(|_| bad_max())?.0;
    let max = params.max.unwrap_or(MAX_BATCH);
    if max == 0 {
        return Err(bad_max().into());
    }
    let fetched = s.store.fetch(recv_id, hash, params.after.unwrap_or(0), max.min(MAX_BATCH)).await?;
    refresh_if_idle(&s, recv_id, fetched.touched_at);
    Metrics::add(&s.metrics.blocks_delivered, fetched.items.len() as u64);
    let body = FetchResponse { items: fetched.items }.encode(s.config.block_size);
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

/// Reading a queue counts as activity, so a quiet queue that is still polled does not
/// expire. Written at most every so often (a quarter of the TTL, at most an hour) to keep
/// reads cheap; the write is not waited for.
pub(crate) fn refresh_if_idle(s: &AppState, recv_id: QueueId, touched_at: u64) {
    let every = (s.config.ttl_secs() / 4).clamp(1, 3600);
    let now = unix_now();
    if now.saturating_sub(touched_at) >= every {
        let store = s.store.clone();
        tokio::spawn(async move {
            if let Err(err) = store.touch(recv_id, now).await {
                tracing::debug!(error = %err, "could not renew a queue's activity time");
            }
        });
    }
}

async fn ack(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    let recv_id = queue_id(path)?;
    let hash = bearer(&headers)?;
    let req: AckRequest =
        parse_json(&read_body(&headers, body, (MAX_JSON_BODY, s.config.body_timeout), "an ack").await?)?;
    check_ack_len(req.seqs.len())?;
    let deleted = s.store.ack(recv_id, hash, req.seqs, unix_now()).await?;
    Metrics::add(&s.metrics.blocks_acked, deleted);
    Ok(Json(serde_json::json!({ "deleted": deleted })))
}

pub(crate) fn check_ack_len(n: usize) -> Result<(), ApiError> {
    if n > MAX_BATCH {
        return Err(ApiError::TooLarge(format!("an ack lists at most {MAX_BATCH} seqs")));
    }
    Ok(())
}

async fn delete_queue(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let recv_id = queue_id(path)?;
    let hash = bearer(&headers)?;
    s.store.delete_queue(recv_id, hash).await?;
    // Followers read the store again and find the queue gone.
    s.hub.wake(&recv_id);
    Ok(StatusCode::NO_CONTENT)
}

/// `/metrics` on the public port: only with the configured bearer token; without one
/// configured, the public port has no such endpoint.
async fn metrics(State(s): State<AppState>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let Some(token) = &s.config.metrics_token else {
        return no_such_endpoint(method, uri).await.into_response();
    };
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()?.strip_prefix("Bearer "));
    if !presented.is_some_and(|p| token.admits(p.trim())) {
        return ApiFailure(ApiError::Unauthorized).into_response();
    }
    metrics_text(State(s)).await
}

/// The exposition, for the metrics listener (and the public port with a token).
pub(crate) async fn metrics_text(State(s): State<AppState>) -> Response {
    let stats = s.store.stats().await.ok();
    let text = s.metrics.render(stats);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// The router of the separate metrics listener: `/metrics` and nothing else.
pub(crate) fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(metrics_text)).fallback(no_such_endpoint).with_state(state)
}

async fn no_such_endpoint(method: Method, uri: Uri) -> ApiFailure {
    ApiError::BadRequest(format!("no such endpoint: {method} {}", uri.path())).into()
}

fn queue_id(path: Result<Path<String>, PathRejection>) -> Result<QueueId, ApiError> {
    let bad = || ApiError::BadRequest("a queue id is 32 hex digits".into());
    let Path(text) = path.map_err(|_| bad())?;
    QueueId::from_hex(&text).map_err(|_| bad())
}

/// The hash of the receive secret in `Authorization: Bearer <hex>`.
fn bearer(headers: &HeaderMap) -> Result<SecretHash, ApiError> {
    let bad = || {
        ApiError::BadRequest(
            "this request needs `Authorization: Bearer <receive secret as 64 hex digits>`".into(),
        )
    };
    let value = headers.get(header::AUTHORIZATION).ok_or_else(bad)?.to_str().map_err(|_| bad())?;
    let hex = value.strip_prefix("Bearer ").ok_or_else(bad)?;
    Ok(QueueSecret::from_hex(hex.trim()).map_err(|_| bad())?.hash())
}

/// Parses a JSON body; the error says where and what, with quoted values left out (they
/// might be secrets pasted into the wrong field).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {}", redact_quoted(&e.to_string()))))
}

fn redact_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split('"').enumerate() {
        out.push_str(if i % 2 == 1 { "\"…\"" } else { part });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn json_errors_name_the_field_but_not_values() {
        let err = parse_json::<CreateQueueRequest>(br#"{"recv_hash": "deadbeef"}"#).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("deadbeef"), "{text}");
        assert!(text.starts_with("bad request: malformed JSON"), "{text}");
        let err = parse_json::<AckRequest>(b"{}").unwrap_err().to_string();
        assert!(err.contains("missing field `seqs`"), "{err}");
        assert!(parse_json::<AckRequest>(b"\x00\xff").is_err());
    }

    #[test]
    fn bearer_wants_64_hex_digits() {
        let secret = QueueSecret::random();
        let mut headers = HeaderMap::new();
        assert!(bearer(&headers).is_err());
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", secret.to_hex())).unwrap(),
        );
        assert!(bearer(&headers).unwrap().admits(&secret));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        let err = bearer(&headers).unwrap_err().to_string();
        assert!(!err.contains("abc"), "{err}");
    }

    #[test]
    fn batch_problems_are_specific() {
        let err = batch_problem(&DecodeError::Invalid("block size"), 1000, 4096).to_string();
        assert!(err.contains("exactly 4096 bytes"), "{err}");
        let err = batch_problem(&DecodeError::Invalid("batch size"), 2, 4096).to_string();
        assert!(err.contains("1 to 1024"), "{err}");
    }
}
