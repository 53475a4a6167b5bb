//! `GET /v1/ws`: a socket that follows any number of queues.
//!
//! The client sends JSON text frames (`subscribe`, `ack`); the relay answers in text and
//! pushes blocks as binary frames. One task per socket, nothing per followed queue but its
//! capability and the last seq pushed: an idle follower costs little more than its TLS
//! state (the 10,000-socket figure in the README). The session pushes the backlog from the
//! store at subscription, then the blocks the writer hands over after each commit
//! (`notify.rs`), and reads the store again only when a block is missing (committed through
//! another node, or too many handed over while the client was slow). A seq is pushed at most
//! once per subscription, in order.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use backchannel_wire::{
    ApiError, Delivered, MAX_BATCH, QueueId, QueueSecret, SecretHash, WsClientMessage, WsServerMessage,
};
use futures_util::{SinkExt, StreamExt};

use crate::error::{ApiFailure, api_error};
use crate::metrics::Metrics;
use crate::notify::{Committed, Mail, Mailbox};
use crate::routes::{AppState, check_ack_len, parse_json, refresh_if_idle};
use crate::server::{ConnCtx, stopped};
use crate::store::unix_now;

/// Client frames are small JSON; anything larger is not ours.
const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// Client frames are small JSON (a subscription is about 150 bytes), so a small read buffer
/// will do; it grows for a larger frame. Every idle socket keeps it.
const READ_BUFFER: usize = 512;
/// Frames are gathered up to this many bytes before being written (then flushed once).
const WRITE_BUFFER: usize = 16 * 1024;

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
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| Session::run(socket, state, conn))
}

/// A followed queue: the capability presented for it and how far it was pushed.
struct Follow {
    hash: SecretHash,
    last: u64,
}

/// The queues a socket follows: a short list (most sockets follow a few), searched in order;
/// smaller than a hash map for the idle sockets that are most of a relay's.
#[derive(Default)]
struct Follows(Vec<(QueueId, Follow)>);

impl Follows {
    fn get(&self, id: &QueueId) -> Option<&Follow> {
        self.0.iter().find(|(q, _)| q == id).map(|(_, f)| f)
    }

    fn get_mut(&mut self, id: &QueueId) -> Option<&mut Follow> {
        self.0.iter_mut().find(|(q, _)| q == id).map(|(_, f)| f)
    }

    fn contains_key(&self, id: &QueueId) -> bool {
        self.get(id).is_some()
    }

    fn insert(&mut self, id: QueueId, follow: Follow) {
        match self.get_mut(&id) {
            Some(old) => *old = follow,
            None => self.0.push((id, follow)),
        }
    }

    fn remove(&mut self, id: &QueueId) {
        self.0.retain(|(q, _)| q != id);
    }

    fn keys(&self) -> impl Iterator<Item = &QueueId> {
        self.0.iter().map(|(q, _)| q)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

struct Session {
    state: AppState,
    /// The connection's rate limit and slot; held so the slot stays taken while the socket lives.
    conn: Option<Arc<ConnCtx>>,
    ws: WebSocket,
    mailbox: Arc<Mailbox>,
    follows: Follows,
}

/// Why the session loop stopped.
struct Closed;

impl Session {
    async fn run(ws: WebSocket, state: AppState, conn: Option<Arc<ConnCtx>>) {
        let mut stopping = state.stopping.clone();
        // A socket must follow a queue (with a capability the store accepted) within the
        // header timeout, the same bound an idle HTTP connection gets: otherwise it only holds
        // a connection slot. Checked once, at the deadline.
        let idle_check = tokio::time::sleep(state.config.header_timeout);
        tokio::pin!(idle_check);
        let mut checked = false;
        let mailbox = Arc::new(Mailbox::default());
        let mut s = Self { state, conn, ws, mailbox, follows: Follows::default() };
        loop {
            let step = tokio::select! {
                () = &mut idle_check, if !checked => {
                    checked = true;
                    if s.follows.is_empty() { Err(s.close_idle().await) } else { Ok(()) }
                }
                frame = s.ws.next() => s.on_frame(frame).await,
                () = s.mailbox.ready() => s.deliver().await,
                () = stopped(&mut stopping) => Err(s.goodbye().await),
            };
            if step.is_err() {
                break;
            }
        }
        for recv_id in s.follows.keys() {
            s.state.hub.unfollow(recv_id, &s.mailbox);
        }
    }

    async fn on_frame(&mut self, frame: Option<Result<Message, axum::Error>>) -> Result<(), Closed> {
        match frame {
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
            Some(Ok(Message::Binary(_))) => {
                self.error(ApiError::BadRequest("send JSON text frames; blocks go to POST /v1/send".into()))
                    .await
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
            Some(Ok(Message::Close(_)) | Err(_)) | None => Err(Closed),
        }
    }

    /// Tells a socket that followed nothing in time why it is closed, and closes it.
    async fn close_idle(&mut self) -> Closed {
        let secs = self.state.config.header_timeout.as_secs_f64();
        let reason = format!("idle: a WebSocket must follow a queue (with its secret) within {secs} s");
        let _ = self
            .ws
            .send(Message::Close(Some(CloseFrame { code: close_code::POLICY, reason: reason.into() })))
            .await;
        Closed
    }

    async fn goodbye(&mut self) -> Closed {
        let bye = CloseFrame { code: close_code::AWAY, reason: "relay closing this socket".into() };
        let _ = self.ws.send(Message::Close(Some(bye))).await;
        Closed
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Closed> {
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

    /// Starts (or restarts, from the oldest block) following a queue: checks the capability
    /// and pushes the backlog.
    async fn subscribe(&mut self, recv_id: QueueId, secret: &str) -> Result<(), Closed> {
        let Ok(secret) = QueueSecret::from_hex(secret) else {
            return self.error(ApiError::BadRequest("a queue secret is 64 hex digits".into())).await;
        };
        let limit = self.state.config.max_subscriptions;
        if !self.follows.contains_key(&recv_id) && self.follows.len() >= limit {
            return self
                .error(ApiError::TooLarge(format!("one WebSocket follows at most {limit} queues")))
                .await;
        }
        // Followed before the first read, so a block committed during it is handed over too.
        self.state.hub.follow(recv_id, &self.mailbox);
        let hash = secret.hash();
        // Boxed: the store's futures are large, and an idle session should not carry them.
        let fetched = match Box::pin(self.state.store.fetch(recv_id, hash, 0, MAX_BATCH)).await {
            Ok(fetched) => fetched,
            Err(err) => {
                self.state.hub.unfollow(&recv_id, &self.mailbox);
                self.follows.remove(&recv_id);
                return self.queue_error(recv_id, err).await;
            }
        };
        refresh_if_idle(&self.state, recv_id, fetched.touched_at);
        if let Some(latest) = fetched.latest {
            self.state.hub.saw(&recv_id, latest);
        }
        self.follows.insert(recv_id, Follow { hash, last: 0 });
        self.send_text(&WsServerMessage::Subscribed { recv_id }).await?;
        self.push_read(recv_id, fetched.items).await
    }

    async fn ack(&mut self, recv_id: QueueId, seqs: Vec<u64>) -> Result<(), Closed> {
        let Some(follow) = self.follows.get(&recv_id) else {
            let err =
                ApiError::BadRequest(format!("subscribe to queue {recv_id} before acknowledging its blocks"));
            return self.error(err).await;
        };
        if let Err(err) = check_ack_len(seqs.len()) {
            return self.error(err).await;
        }
        // Not awaited here: a client acknowledging many queues at once gets them all into one
        // group commit instead of one commit after another. The rate limit bounds how many.
        let (state, mailbox, hash) = (self.state.clone(), Arc::clone(&self.mailbox), follow.hash);
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
            mailbox.text(json(&answer));
        });
        Ok(())
    }

    /// Sends what the mailbox holds: answers, handed-over blocks, then re-reads.
    async fn deliver(&mut self) -> Result<(), Closed> {
        let Mail { blocks, mut reread, texts } = self.mailbox.take();
        for text in texts {
            self.ws.feed(Message::Text(text.into())).await.map_err(|_| Closed)?;
        }
        for c in blocks {
            let Some(follow) = self.follows.get_mut(&c.recv_id) else { continue };
            if c.seq <= follow.last {
                continue; // pushed already (by a re-read)
            }
            if (follow.last != 0 && c.seq != follow.last + 1) || reread.contains(&c.recv_id) {
                // A block before this one was not handed over: the store has it.
                if !reread.contains(&c.recv_id) {
                    reread.push(c.recv_id);
                }
                continue;
            }
            follow.last = c.seq;
            self.feed_block(&c).await?;
        }
        for recv_id in reread {
            self.reread(recv_id).await?;
        }
        self.ws.flush().await.map_err(|_| Closed)
    }

    /// Reads a followed queue from the store after the last seq pushed, and pushes it.
    async fn reread(&mut self, recv_id: QueueId) -> Result<(), Closed> {
        let Some(follow) = self.follows.get(&recv_id) else { return Ok(()) };
        match Box::pin(self.state.store.fetch(recv_id, follow.hash, follow.last, MAX_BATCH)).await {
            Ok(fetched) => {
                if let Some(latest) = fetched.latest {
                    self.state.hub.saw(&recv_id, latest);
                }
                self.push_read(recv_id, fetched.items).await
            }
            Err(err) => {
                // The queue was deleted (or the store failed): this follower stops.
                self.follows.remove(&recv_id);
                self.state.hub.unfollow(&recv_id, &self.mailbox);
                self.queue_error(recv_id, err).await
            }
        }
    }

    /// Pushes blocks read from the store; a full page means more may wait.
    async fn push_read(&mut self, recv_id: QueueId, items: Vec<Delivered>) -> Result<(), Closed> {
        let full = items.len() == MAX_BATCH;
        for item in items {
            let Some(follow) = self.follows.get_mut(&recv_id) else { return Ok(()) };
            if item.seq <= follow.last {
                continue;
            }
            follow.last = item.seq;
            let frame = backchannel_wire::ws_delivery_encode(&recv_id, &item);
            self.ws.feed(Message::Binary(frame.into())).await.map_err(|_| Closed)?;
            Metrics::add(&self.state.metrics.blocks_delivered, 1);
        }
        if full {
            self.mailbox.reread(recv_id);
        }
        self.ws.flush().await.map_err(|_| Closed)
    }

    async fn feed_block(&mut self, c: &Committed) -> Result<(), Closed> {
        let frame = delivery_frame(c);
        self.ws.feed(Message::Binary(frame.into())).await.map_err(|_| Closed)?;
        Metrics::add(&self.state.metrics.blocks_delivered, 1);
        Ok(())
    }

    async fn queue_error(&mut self, recv_id: QueueId, err: crate::StoreError) -> Result<(), Closed> {
        let err = api_error(err);
        self.state.metrics.reject(err.code(), 1);
        let message = format!("queue {recv_id}: {err}");
        self.send_text(&WsServerMessage::Error { message, recv_id: Some(recv_id) }).await
    }

    async fn error(&mut self, err: ApiError) -> Result<(), Closed> {
        self.state.metrics.reject(err.code(), 1);
        self.send_text(&WsServerMessage::Error { message: err.to_string(), recv_id: None }).await
    }

    async fn send_text(&mut self, msg: &WsServerMessage) -> Result<(), Closed> {
        self.ws.send(Message::Text(json(msg).into())).await.map_err(|_| Closed)
    }
}

/// `recv_id ‖ seq ‖ block`, as `ws_delivery_encode` makes it, without copying the block twice.
fn delivery_frame(c: &Committed) -> Vec<u8> {
    let mut frame = Vec::with_capacity(16 + 8 + c.block.len());
    frame.extend_from_slice(&c.recv_id.0);
    frame.extend_from_slice(&c.seq.to_be_bytes());
    frame.extend_from_slice(&c.block);
    frame
}

fn json(msg: &WsServerMessage) -> String {
    serde_json::to_string(msg).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_the_wire_encoding() {
        let c = Committed { recv_id: QueueId([5; 16]), seq: 9, block: bytes::Bytes::from(vec![1u8; 64]) };
        let item = Delivered { seq: 9, block: vec![1u8; 64] };
        assert_eq!(delivery_frame(&c), backchannel_wire::ws_delivery_encode(&c.recv_id, &item));
    }
}
