//! Cross-node wake-ups. When several relay nodes share one database, a block stored through
//! one node must wake WebSocket followers on the others. The writer issues `pg_notify` inside
//! each committing transaction (so it is delivered only if the commit succeeds); every node
//! keeps one `LISTEN` connection and turns notifications into [`Wake`]s. Notifications this
//! node sent itself (from its announcing connection) are skipped: its own followers were
//! handed those blocks from memory at the commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use backchannel_wire::QueueId;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::Target;
use crate::StoreError;
use crate::store::Wake;

/// The notification channel (suffixed per schema, see `postgres::wake_channel`); the payload is
/// a comma-separated list of receive queue ids in hex, or `*` for all (`announce.rs`).
pub(super) const CHANNEL: &str = "backchannel_blocks";
const WAKES_DEPTH: usize = 1024;

/// Starts listening; the task ends when the receiver is dropped.
pub(super) fn spawn(target: Target, own_pid: Arc<AtomicI32>) -> mpsc::Receiver<Wake> {
    let (tx, rx) = mpsc::channel(WAKES_DEPTH);
    tokio::spawn(listen_loop(target, tx, own_pid));
    rx
}

/// Listens, and after any loss of the connection reconnects (backing off up to 30 s).
async fn listen_loop(target: Target, tx: mpsc::Sender<Wake>, own_pid: Arc<AtomicI32>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match listen_once(&target, &tx, &own_pid).await {
            Ok(()) => return,
            Err(err) => tracing::warn!(error = %err, "PostgreSQL wake-up listener lost; reconnecting"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = tx.closed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Forwards notifications until the connection fails (`Err`) or nobody listens (`Ok`).
async fn listen_once(
    target: &Target,
    tx: &mpsc::Sender<Wake>,
    own_pid: &AtomicI32,
) -> Result<(), StoreError> {
    let (client, mut connection) = target.config.connect(NoTls).await?;
    let (msg_tx, mut messages) = mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(msg) = stream.next().await {
            if msg_tx.send(msg).is_err() {
                return;
            }
        }
    });
    let listening = client.batch_execute(&format!("LISTEN {}", target.wake_channel)).await;
    let result = match listening {
        Ok(()) => forward(tx, &mut messages, own_pid).await,
        Err(err) => Err(err.into()),
    };
    pump.abort();
    result
}

async fn forward(
    tx: &mpsc::Sender<Wake>,
    messages: &mut mpsc::UnboundedReceiver<Result<AsyncMessage, tokio_postgres::Error>>,
    own_pid: &AtomicI32,
) -> Result<(), StoreError> {
    // Anything committed while we were not listening is caught by waking everyone once.
    if tx.send(Wake::All).await.is_err() {
        return Ok(());
    }
    loop {
        let msg = tokio::select! {
            msg = messages.recv() => msg,
            () = tx.closed() => return Ok(()),
        };
        let wakes = match msg {
            Some(Ok(AsyncMessage::Notification(n))) if n.process_id() == own_pid.load(Ordering::Relaxed) => {
                Vec::new()
            }
            Some(Ok(AsyncMessage::Notification(n))) => parse(n.payload()),
            Some(Ok(_)) => Vec::new(),
            Some(Err(err)) => return Err(err.into()),
            None => return Err(StoreError::Unreachable("the listening connection closed".into())),
        };
        for wake in wakes {
            if tx.send(wake).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// A notification's payload as wake-ups; ids that do not parse are ignored.
fn parse(payload: &str) -> Vec<Wake> {
    if payload == "*" {
        return vec![Wake::All];
    }
    payload.split(',').filter_map(|id| QueueId::from_hex(id).ok()).map(Wake::Queue).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_queues_or_all() {
        let (a, b) = (QueueId([1; 16]), QueueId([2; 16]));
        assert_eq!(parse(&format!("{a},{b}")), vec![Wake::Queue(a), Wake::Queue(b)]);
        assert_eq!(parse("*"), vec![Wake::All]);
        assert_eq!(parse("junk,"), Vec::new());
    }
}
