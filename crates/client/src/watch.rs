//! `watch`: stay connected to every relay we have an inbox on, over WebSocket, and process
//! blocks as they are pushed. New inboxes (from invitations made meanwhile) are picked up,
//! the outbox is flushed, and dropped connections are retried, every few seconds.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use backchannel_wire::{QueueId, RelayAddress, WsClientMessage, WsServerMessage, ws_delivery_decode};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::error::Result;
use crate::model::Event;
use crate::party::Party;
use crate::receive::{InboxRef, Receiver};
use crate::transport::{WsStream, connect_ws};

const REFRESH: Duration = Duration::from_secs(2);

enum Incoming {
    Block(QueueId, backchannel_wire::Delivered),
    Notice(String),
    /// The relay refused a subscription or acknowledgement for this queue.
    Refused(QueueId, String),
    Closed(String),
}

/// What `watch` reports besides received messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchStatus {
    Connected(String),
    Disconnected(String, String),
}

struct Link {
    sink: SplitSink<WsStream, WsMessage>,
    subscribed: HashSet<QueueId>,
}

impl Party {
    /// Runs until the future is dropped (the CLI drops it on Ctrl-C).
    pub async fn watch(
        &mut self,
        mut on_event: impl FnMut(&Event),
        mut on_status: impl FnMut(WatchStatus),
    ) -> Result<()> {
        let (tx, mut rx) = mpsc::channel::<(String, Incoming)>(1024);
        let mut links: HashMap<String, Link> = HashMap::new();
        let mut receiver = Receiver::default();
        let mut inboxes: Vec<InboxRef> = Vec::new();
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Ok(events) = self.run_tasks().await {
                        events.iter().for_each(&mut on_event);
                    }
                    let _ = self.flush_outbox().await;
                    inboxes = self.inboxes()?;
                    self.refresh_links(&inboxes, &mut links, &tx, &mut on_status).await?;
                }
                Some(first) = rx.recv() => {
                    // Take everything already pushed, so a burst is committed once.
                    let mut burst = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        burst.push(more);
                    }
                    for (relay, incoming) in group_blocks(burst) {
                        match incoming {
                            Grouped::Blocks(recv_id, items) => {
                                let Some(inbox) = self.inbox_for(&mut inboxes, recv_id)? else { continue };
                                let (acks, events) = self.receive_blocks(&mut receiver, &inbox, items)?;
                                events.iter().for_each(&mut on_event);
                                if let (false, Some(link)) = (acks.is_empty(), links.get_mut(&relay)) {
                                    let _ = send_json(&mut link.sink, &WsClientMessage::Ack { recv_id, seqs: acks }).await;
                                }
                            }
                            Grouped::Notice(text) => on_status(WatchStatus::Disconnected(relay, text)),
                            Grouped::Refused(recv_id, text) => {
                                // Subscribe again at the next refresh; the relay may recover.
                                if let Some(link) = links.get_mut(&relay) {
                                    link.subscribed.remove(&recv_id);
                                }
                                on_status(WatchStatus::Disconnected(relay, text));
                            }
                            Grouped::Closed(why) => {
                                links.remove(&relay);
                                on_status(WatchStatus::Disconnected(relay, why));
                            }
                        }
                    }
                }
            }
        }
    }

    /// The inbox a block was pushed for; re-reads the store once if it is not known yet.
    fn inbox_for(&mut self, known: &mut Vec<InboxRef>, recv_id: QueueId) -> Result<Option<InboxRef>> {
        if !known.iter().any(|i| i.inbox.recv_id == recv_id) {
            *known = self.inboxes()?;
        }
        Ok(known.iter().find(|i| i.inbox.recv_id == recv_id).cloned())
    }

    async fn refresh_links(
        &mut self,
        inboxes: &[InboxRef],
        links: &mut HashMap<String, Link>,
        tx: &mpsc::Sender<(String, Incoming)>,
        on_status: &mut impl FnMut(WatchStatus),
    ) -> Result<()> {
        for inbox in inboxes {
            let relay = inbox.inbox.relay.to_string();
            if !links.contains_key(&relay) {
                match connect_ws(&inbox.inbox.relay).await {
                    Ok(ws) => {
                        links.insert(relay.clone(), spawn_reader(&inbox.inbox.relay, ws, tx.clone()));
                        on_status(WatchStatus::Connected(relay.clone()));
                    }
                    Err(e) => {
                        on_status(WatchStatus::Disconnected(relay.clone(), e.to_string()));
                        continue;
                    }
                }
            }
            if let Some(link) = links.get_mut(&relay) {
                subscribe(link, inbox).await;
            }
        }
        Ok(())
    }
}

enum Grouped {
    Blocks(QueueId, Vec<backchannel_wire::Delivered>),
    Notice(String),
    Refused(QueueId, String),
    Closed(String),
}

/// Gathers consecutive blocks of the same queue, keeping the order of everything else.
fn group_blocks(burst: Vec<(String, Incoming)>) -> Vec<(String, Grouped)> {
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

async fn send_json(
    sink: &mut SplitSink<WsStream, WsMessage>,
    msg: &WsClientMessage,
) -> std::result::Result<(), ()> {
    let text = serde_json::to_string(msg).map_err(|_| ())?;
    sink.send(WsMessage::text(text)).await.map_err(|_| ())
}

/// Reads one relay's socket in its own task, forwarding blocks to the watch loop.
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
