//! Live links to relays: one WebSocket per relay we have inboxes on, following every inbox
//! there; blocks pushed by the relay go to the driver as they come.

use std::collections::{HashMap, HashSet};

use backchannel_wire::{
    Delivered, QueueId, RelayAddress, WsClientMessage, WsServerMessage, ws_delivery_decode,
};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::routes::InboxRef;
use crate::net::{WsStream, connect_ws};

/// What a relay's socket brought.
pub(crate) enum Incoming {
    Block(QueueId, Delivered),
    Notice(String),
    /// The relay refused a subscription or acknowledgement for this queue.
    Refused(QueueId, String),
    Closed(String),
}

/// A burst of what arrived, with consecutive blocks of one queue gathered.
pub(crate) enum Grouped {
    Blocks(QueueId, Vec<Delivered>),
    Notice(String),
    Refused(QueueId, String),
    Closed(String),
}

struct Link {
    sink: SplitSink<WsStream, WsMessage>,
    subscribed: HashSet<QueueId>,
}

/// Every link, by relay, and the channel their readers feed.
pub(crate) struct Links {
    links: HashMap<String, Link>,
    tx: mpsc::Sender<(String, Incoming)>,
}

/// Link changes for the driver to report.
pub(crate) enum LinkChange {
    Up(String),
    Down(String, String),
}

impl Links {
    pub fn new() -> (Self, mpsc::Receiver<(String, Incoming)>) {
        let (tx, rx) = mpsc::channel(1024);
        (Self { links: HashMap::new(), tx }, rx)
    }

    /// Connects to the relays of `inboxes` not linked yet and follows every inbox.
    pub async fn refresh(&mut self, inboxes: &[InboxRef]) -> Vec<LinkChange> {
        let mut changes = Vec::new();
        let mut failed: HashSet<String> = HashSet::new();
        for inbox in inboxes {
            let relay = inbox.inbox.relay.to_string();
            if failed.contains(&relay) {
                continue;
            }
            if !self.links.contains_key(&relay) {
                match connect_ws(&inbox.inbox.relay).await {
                    Ok(ws) => {
                        self.links
                            .insert(relay.clone(), spawn_reader(&inbox.inbox.relay, ws, self.tx.clone()));
                        changes.push(LinkChange::Up(relay.clone()));
                    }
                    Err(e) => {
                        changes.push(LinkChange::Down(relay.clone(), e.to_string()));
                        failed.insert(relay);
                        continue;
                    }
                }
            }
            if let Some(link) = self.links.get_mut(&relay) {
                subscribe(link, inbox).await;
            }
        }
        changes
    }

    /// Acknowledges blocks (the relay deletes them).
    pub async fn ack(&mut self, relay: &str, recv_id: QueueId, seqs: Vec<u64>) {
        if let Some(link) = self.links.get_mut(relay) {
            // A lost acknowledgement only means the block comes again; the seen-set drops it.
            let _ = send_json(&mut link.sink, &WsClientMessage::Ack { recv_id, seqs }).await;
        }
    }

    /// The relay refused a queue: follow it again at the next refresh (it may recover).
    pub fn unfollow(&mut self, relay: &str, recv_id: &QueueId) {
        if let Some(link) = self.links.get_mut(relay) {
            link.subscribed.remove(recv_id);
        }
    }

    pub fn closed(&mut self, relay: &str) {
        self.links.remove(relay);
    }
}

/// Gathers consecutive blocks of the same queue, keeping the order of everything else.
pub(crate) fn group(burst: Vec<(String, Incoming)>) -> Vec<(String, Grouped)> {
    let mut out: Vec<(String, Grouped)> = Vec::new();
    for (relay, incoming) in burst {
        match (incoming, out.last_mut()) {
            (Incoming::Block(id, item), Some((r, Grouped::Blocks(last, items))))
                if *r == relay && *last == id =>
            {
                items.push(item);
            }
            (Incoming::Block(id, item), _) => out.push((relay, Grouped::Blocks(id, vec![item]))),
            (Incoming::Notice(t), _) => out.push((relay, Grouped::Notice(t))),
            (Incoming::Refused(id, t), _) => out.push((relay, Grouped::Refused(id, t))),
            (Incoming::Closed(t), _) => out.push((relay, Grouped::Closed(t))),
        }
    }
    out
}

async fn subscribe(link: &mut Link, inbox: &InboxRef) {
    if link.subscribed.contains(&inbox.inbox.recv_id) {
        return;
    }
    let msg =
        WsClientMessage::Subscribe { recv_id: inbox.inbox.recv_id, secret: inbox.inbox.recv_secret.to_hex() };
    if send_json(&mut link.sink, &msg).await.is_ok() {
        link.subscribed.insert(inbox.inbox.recv_id);
    }
}

async fn send_json(sink: &mut SplitSink<WsStream, WsMessage>, msg: &WsClientMessage) -> Result<(), ()> {
    let text = serde_json::to_string(msg).map_err(|_| ())?;
    sink.send(WsMessage::text(text)).await.map_err(|_| ())
}

/// Reads one relay's socket in its own task, forwarding blocks to the driver.
fn spawn_reader(relay: &RelayAddress, ws: WsStream, tx: mpsc::Sender<(String, Incoming)>) -> Link {
    let (sink, mut stream) = ws.split();
    let name = relay.to_string();
    tokio::spawn(async move {
        let why = loop {
            let incoming = match stream.next().await {
                Some(Ok(WsMessage::Binary(bytes))) => match ws_delivery_decode(&bytes) {
                    Ok((recv_id, item)) => Incoming::Block(recv_id, item),
                    Err(e) => Incoming::Notice(format!("unreadable frame from relay: {e}")),
                },
                Some(Ok(WsMessage::Text(text))) => match serde_json::from_str::<WsServerMessage>(&text) {
                    Ok(WsServerMessage::Error { message, recv_id: Some(id) }) => {
                        Incoming::Refused(id, message)
                    }
                    Ok(WsServerMessage::Error { message, recv_id: None }) => Incoming::Notice(message),
                    _ => continue,
                },
                Some(Ok(WsMessage::Close(_))) | None => break "connection closed".to_owned(),
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e.to_string(),
            };
            if tx.send((name.clone(), incoming)).await.is_err() {
                return;
            }
        };
        let _ = tx.send((name, Incoming::Closed(why))).await;
    });
    Link { sink, subscribed: HashSet::new() }
}
