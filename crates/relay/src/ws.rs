//! `GET /v1/ws`: a socket that follows any number of queues.
//!
//! The client sends JSON text frames (`subscribe`, `ack`); the relay answers in text and
//! pushes blocks as binary frames. Each followed queue has a task that reads the store for
//! blocks after the last seq it pushed, then sleeps until the notifier says a block for that
//! queue was committed. So a seq is pushed once per subscription, the backlog comes first,
//! and a missed wake-up can delay nothing that a later one will not catch.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use backchannel_wire::{
    ApiError, MAX_BATCH, QueueId, QueueSecret, SecretHash, WsClientMessage, WsServerMessage,
    ws_delivery_encode,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{ApiFailure, api_error};
use crate::metrics::Metrics;
use crate::routes::{AppState, check_ack_len, parse_json, refresh_if_idle};
use crate::server::{ConnCtx, stopped};
use crate::store::unix_now;

/// Client frames are small JSON; anything larger is not ours.
const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// Client frames are small JSON, so a small read buffer will do. The default (128 KiB, zeroed
/// when first read into) made every idle socket cost the relay ~130 KiB of resident memory.
const READ_BUFFER: usize = 4 * 1024;
/// Frames waiting for a slow client; followers pause when it is full.
const OUTBOX: usize = 64;

pub(crate) async fn upgrade(
    State(state): State<AppState>,
    conn: Option<Extension<Arc<ConnCtx>>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return ApiFailure(ApiError::BadRequest("this endpoint needs a WebSocket upgrade".into()))
            .into_response();
    };
    let conn = conn.map(|Extension(c)| c);
    ws.max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| Session::run(socket, state, conn))
}

/// A followed queue: the capability presented for it, and the task pushing its blocks.
struct Follower {
    hash: SecretHash,
    task: JoinHandle<()>,
    /// Set once the store accepted the capability: only then does the socket follow a queue.
    verified: Arc<AtomicBool>,
}

struct Session {
    state: AppState,
    /// The connection's rate limit and slot; held so the slot stays taken while the socket lives.
    conn: Option<Arc<ConnCtx>>,
    out: mpsc::Sender<Message>,
    followers: HashMap<QueueId, Follower>,
}

impl Session {
    async fn run(socket: WebSocket, state: AppState, conn: Option<Arc<ConnCtx>>) {
        let (sink, mut stream) = socket.split();
        let (out, outbox) = mpsc::channel(OUTBOX);
        let writer = tokio::spawn(write_frames(sink, outbox));
        let mut stopping = state.stopping.clone();
        // A socket must follow a queue (with a capability the store accepted) within the
        // header timeout, the same bound an idle HTTP connection gets: otherwise it only holds
        // a connection slot. Checked once, at the deadline.
        let idle_check = tokio::time::sleep(state.config.header_timeout);
        tokio::pin!(idle_check);
        let mut checked = false;
        let mut session = Self { state, conn, out, followers: HashMap::new() };
        loop {
            tokio::select! {
                () = &mut idle_check, if !checked => {
                    checked = true;
                    if !session.follows_a_queue() {
                        session.close_idle().await;
                        break;
                    }
                }
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => session.on_text(text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => {
                        session.error(ApiError::BadRequest("send JSON text frames; blocks go to POST /v1/send".into())).await;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                },
                () = stopped(&mut stopping) => break,
            }
        }
        for follower in session.followers.into_values() {
            follower.task.abort();
        }
        drop(session.out);
        let _ = writer.await;
    }

    fn follows_a_queue(&self) -> bool {
        self.followers.values().any(|f| f.verified.load(Ordering::Relaxed))
    }

    /// Tells a socket that followed nothing in time why it is closed, and closes it.
    async fn close_idle(&self) {
        let secs = self.state.config.header_timeout.as_secs_f64();
        let reason = format!("idle: a WebSocket must follow a queue (with its secret) within {secs} s");
        let close = CloseFrame { code: close_code::POLICY, reason: reason.into() };
        let _ = self.out.send(Message::Close(Some(close))).await;
    }

    async fn on_text(&mut self, text: &str) {
        if let Some(conn) = &self.conn
            && !conn.allow()
        {
            return self.error(ApiError::RateLimited).await;
        }
        match parse_json::<WsClientMessage>(text.as_bytes()) {
            Ok(WsClientMessage::Subscribe { recv_id, secret }) => self.subscribe(recv_id, &secret).await,
            Ok(WsClientMessage::Ack { recv_id, seqs }) => self.ack(recv_id, seqs).await,
            Err(err) => self.error(err).await,
        }
    }

    /// Starts (or restarts, from the oldest block) following a queue.
    async fn subscribe(&mut self, recv_id: QueueId, secret: &str) {
        let Ok(secret) = QueueSecret::from_hex(secret) else {
            return self.error(ApiError::BadRequest("a queue secret is 64 hex digits".into())).await;
        };
        let limit = self.state.config.max_subscriptions;
        if !self.followers.contains_key(&recv_id) && self.followers.len() >= limit {
            return self
                .error(ApiError::TooLarge(format!("one WebSocket follows at most {limit} queues")))
                .await;
        }
        let hash = secret.hash();
        let verified = Arc::new(AtomicBool::new(false));
        let task =
            tokio::spawn(follow(self.state.clone(), recv_id, hash, self.out.clone(), Arc::clone(&verified)));
        if let Some(old) = self.followers.insert(recv_id, Follower { hash, task, verified }) {
            old.task.abort();
        }
    }

    async fn ack(&mut self, recv_id: QueueId, seqs: Vec<u64>) {
        let Some(follower) = self.followers.get(&recv_id) else {
            let err =
                ApiError::BadRequest(format!("subscribe to queue {recv_id} before acknowledging its blocks"));
            return self.error(err).await;
        };
        if let Err(err) = check_ack_len(seqs.len()) {
            return self.error(err).await;
        }
        // Not awaited here: a client acknowledging many queues at once gets them all into one
        // group commit instead of one commit after another. The rate limit bounds how many.
        let (state, out, hash) = (self.state.clone(), self.out.clone(), follower.hash);
        tokio::spawn(async move {
            let answer = match state.store.ack(recv_id, hash, seqs, unix_now()).await {
                Ok(deleted) => {
                    Metrics::add(&state.metrics.blocks_acked, deleted);
                    WsServerMessage::Acked { recv_id, deleted }
                }
                Err(err) => {
                    let err = api_error(err);
                    state.metrics.reject(err.code(), 1);
                    WsServerMessage::Error { message: err.to_string(), recv_id: Some(recv_id) }
                }
            };
            let _ = out.send(text(&answer)).await;
        });
    }

    async fn error(&self, err: ApiError) {
        self.state.metrics.reject(err.code(), 1);
        let _ =
            self.out.send(text(&WsServerMessage::Error { message: err.to_string(), recv_id: None })).await;
    }
}

/// Pushes a queue's blocks: the backlog, then each newly committed block, each seq once.
async fn follow(
    state: AppState,
    recv_id: QueueId,
    hash: SecretHash,
    out: mpsc::Sender<Message>,
    verified: Arc<AtomicBool>,
) {
    // Taken before the first read, so a block committed during it still wakes us.
    let mut wake = state.notifier.follow(recv_id);
    let mut last = 0;
    let mut subscribed = false;
    loop {
        let fetched = match state.store.fetch(recv_id, hash, last, MAX_BATCH).await {
            Ok(fetched) => fetched,
            Err(err) => {
                let err = api_error(err);
                state.metrics.reject(err.code(), 1);
                let message = format!("queue {recv_id}: {err}");
                let _ = out.send(text(&WsServerMessage::Error { message, recv_id: Some(recv_id) })).await;
                return;
            }
        };
        if !subscribed {
            subscribed = true;
            verified.store(true, Ordering::Relaxed);
            refresh_if_idle(&state, recv_id, fetched.touched_at);
            if out.send(text(&WsServerMessage::Subscribed { recv_id })).await.is_err() {
                return;
            }
        }
        let more_waiting = fetched.items.len() == MAX_BATCH;
        for item in &fetched.items {
            last = item.seq;
            if out.send(Message::Binary(ws_delivery_encode(&recv_id, item).into())).await.is_err() {
                return;
            }
            Metrics::add(&state.metrics.blocks_delivered, 1);
        }
        if !more_waiting && wake.changed().await.is_err() {
            return;
        }
    }
}

/// Sends queued frames in order; says goodbye when the session ends.
async fn write_frames(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut outbox: mpsc::Receiver<Message>,
) {
    while let Some(frame) = outbox.recv().await {
        // Queue every frame already waiting, then flush once: far fewer TLS records and
        // system calls than flushing each block.
        let mut next = Some(frame);
        while let Some(frame) = next {
            if sink.feed(frame).await.is_err() {
                return;
            }
            next = outbox.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let bye = CloseFrame { code: close_code::AWAY, reason: "relay closing this socket".into() };
    let _ = sink.send(Message::Close(Some(bye))).await;
    let _ = sink.close().await;
}

fn text(msg: &WsServerMessage) -> Message {
    Message::Text(serde_json::to_string(msg).unwrap_or_default().into())
}
