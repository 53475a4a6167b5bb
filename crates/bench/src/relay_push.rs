//! The push consumer of the relay load: one WebSocket per connection, subscribed to its
//! share of the queues, acknowledging what arrived in batches (as `backchannel watch` does).
//! A block counts when the relay answers the acknowledgement that deleted it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use backchannel_client::connect_ws;
use backchannel_wire::{QueueId, RelayAddress, WsClientMessage, WsServerMessage, ws_delivery_decode};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::relay_load::{FETCH_MAX, Progress, Queue};

/// Acknowledge when this many blocks wait, or when the socket has been quiet this long.
const QUIET: Duration = Duration::from_millis(2);

pub async fn consume(address: RelayAddress, mine: Vec<Queue>, progress: Arc<Progress>) -> Result<()> {
    let (mut sink, mut stream) = connect_ws(&address).await?.split();
    for q in &mine {
        let subscribe = WsClientMessage::Subscribe { recv_id: q.recv_id, secret: q.recv_secret.to_hex() };
        sink.send(Message::text(serde_json::to_string(&subscribe)?)).await?;
    }
    let mut pending: HashMap<QueueId, Vec<u64>> = HashMap::new();
    let mut waiting = 0usize;
    let mut ack_sent: Option<Instant> = None;
    while !progress.stopping() {
        let next = tokio::time::timeout(QUIET, stream.next()).await;
        let quiet = next.is_err();
        match next {
            Ok(Some(Ok(Message::Binary(bytes)))) => {
                let (recv_id, item) = ws_delivery_decode(&bytes)?;
                pending.entry(recv_id).or_default().push(item.seq);
                waiting += 1;
            }
            Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<WsServerMessage>(&text)? {
                WsServerMessage::Acked { deleted, .. } => {
                    progress.acked.fetch_add(deleted, Ordering::Relaxed);
                    if let Some(sent) = ack_sent.take() {
                        progress.waited(1, sent);
                    }
                }
                WsServerMessage::Error { message, .. } => bail!("relay: {message}"),
                WsServerMessage::Subscribed { .. } => {}
            },
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => bail!("the relay closed the WebSocket"),
            Err(_) => {} // quiet: acknowledge what we have
        }
        if waiting >= FETCH_MAX || (waiting > 0 && quiet) {
            for (recv_id, seqs) in pending.drain() {
                let ack = WsClientMessage::Ack { recv_id, seqs };
                sink.send(Message::text(serde_json::to_string(&ack)?)).await?;
            }
            ack_sent.get_or_insert_with(Instant::now);
            waiting = 0;
        }
    }
    Ok(())
}
