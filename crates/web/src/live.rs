//! Server-sent events from `Engine::subscribe`, so pages change as things arrive.
//!
//! A conversation page asks for `/events?c=NAME&after=N` (N: the entries it shows). The
//! stream sends, as JSON, the entries past N (drawn by the same code as the page) each time the
//! conversation changes, with the new count as the event id: a browser that reconnects (after
//! a network hiccup, or `backchannel ui` restarting) says `Last-Event-ID` and gets only what it
//! missed. When entries went away (retention) or a gap closed, it sends the whole timeline.
//! Other pages get a bare `changed`, and refetch their live part.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use backchannel_client::{Engine, Event, Update};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::app::App;
use crate::pages::talk::{Context, entry};

#[derive(Deserialize)]
pub struct Ask {
    c: Option<String>,
    after: Option<usize>,
}

type Tx = mpsc::Sender<Result<Sse, Infallible>>;

pub async fn events(State(app): State<Arc<App>>, headers: HeaderMap, Query(ask): Query<Ask>) -> Response {
    let (tx, rx) = mpsc::channel(64);
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let start = resume.or(ask.after).unwrap_or(0);
    let stopping = app.stopping();
    let task = async move {
        let Ok(engine) = app.engine() else {
            let _ = tx.send(Ok(Sse::default().event("locked").data("locked"))).await;
            return;
        };
        let _ =
            tx.send(Ok(Sse::default().event("hello").retry(Duration::from_millis(1000)).data("live"))).await;
        match ask.c {
            Some(name) => follow(&engine, &name, start, &tx).await,
            None => nudge(&engine, &tx).await,
        }
    };
    tokio::spawn(async move {
        tokio::select! {
            () = task => {}
            () = stopping => {}
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    axum::response::sse::Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// Whether an update touches the conversation called `name` (`NAME@SIDE` for a contact,
/// `NAME@CREATOR` for one of several channels of that name).
fn concerns(update: &Update, name: &str) -> bool {
    let Update::Party { event } = update else { return false };
    let conversation = match event {
        Event::Entry { conversation, .. }
        | Event::Duplicate { conversation }
        | Event::GapClosed { conversation, .. } => conversation,
    };
    let bare = name.rsplit_once('@').map_or(name, |(n, _)| n);
    conversation.name.eq_ignore_ascii_case(name) || conversation.name.eq_ignore_ascii_case(bare)
}

/// What the status line says of the engine's own news: links, and troubles it went on past.
fn link_text(update: &Update) -> Option<String> {
    match update {
        Update::Link { up: true, detail: None, relay } => {
            Some(format!("Connected to the host {}.", crate::words::host(relay)))
        }
        Update::Link { up: false, relay, .. } => Some(format!(
            "The host {} cannot be reached; retrying. Notes go over your other hosts; what only it \
             carries waits.",
            crate::words::host(relay)
        )),
        Update::Route { contact, relay, state, .. } => Some(format!(
            "The host {} is {} between you and {}.",
            crate::words::host(relay),
            crate::words::route_state(*state),
            crate::words::peer(contact)
        )),
        Update::Task { trouble } => Some(format!(
            "An introduction in “{}” could not be made: {}{}",
            crate::words::peer(&trouble.channel),
            crate::words::error(&trouble.error),
            if trouble.retry { " It will be tried again." } else { "" }
        )),
        Update::Trouble { error } => Some(crate::words::error(error)),
        _ => None,
    }
}

/// Waits for the next update worth telling; `None` once the engine is gone.
async fn next(
    updates: &mut tokio::sync::broadcast::Receiver<Update>,
    tx: &Tx,
    wanted: impl Fn(&Update) -> bool,
) -> Option<bool> {
    loop {
        let update = match updates.recv().await {
            Ok(u) => u,
            // Some were missed: whatever they were, read again.
            Err(RecvError::Lagged(_)) => return Some(true),
            Err(RecvError::Closed) => return None,
        };
        if let Some(text) = link_text(&update)
            && tx.send(Ok(Sse::default().event("link").data(text))).await.is_err()
        {
            return None;
        }
        if wanted(&update) {
            let gap_closed = matches!(&update, Update::Party { event: Event::GapClosed { .. } });
            // Take in the rest of a burst before reading once.
            let mut more = gap_closed;
            while let Ok(u) = updates.try_recv() {
                more |= matches!(&u, Update::Party { event: Event::GapClosed { .. } });
            }
            return Some(more);
        }
    }
}

/// How often a conversation page's stream looks again at the delivery of our notes still on
/// their way: "sent" becomes "delivered" when a receipt comes (which no event announces), and
/// "not confirmed" when its bound passes (which nothing announces either).
const DELIVERY_TICK: Duration = Duration::from_millis(500);

/// The delivery mark of each of our notes, by entry number (1-based).
fn marks(entries: &[backchannel_client::EntryView]) -> Vec<(usize, String, bool)> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let d = e.delivery.as_ref()?;
            let settled = d.status == backchannel_client::DeliveryStatus::Delivered;
            Some((i + 1, crate::pages::talk::delivery(d).into_string(), settled))
        })
        .collect()
}

async fn follow(engine: &Engine, name: &str, start: usize, tx: &Tx) {
    let mut updates = engine.subscribe();
    let mut shown = start;
    let mut whole = false;
    // What the page shows of each note's delivery (unknown at first: sent once in full).
    let mut told: std::collections::HashMap<usize, String> = std::collections::HashMap::new();
    let hotline = engine.channel_hotline(name).ok().flatten();
    let mut tick = tokio::time::interval(DELIVERY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let Ok(entries) = engine.read(name) else { return };
        let (ctx, view) = Context::of(engine, name);
        let reset = whole || entries.len() < shown;
        let from = if reset { 0 } else { shown };
        let current = marks(&entries);
        if reset || from < entries.len() {
            let html: String =
                entries.iter().enumerate().skip(from).map(|(i, e)| entry(&ctx, i, e).into_string()).collect();
            let body = serde_json::json!({ "from": from, "html": html, "count": entries.len() });
            let Ok(event) = Sse::default().event("entries").id(entries.len().to_string()).json_data(body)
            else {
                return;
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
            for (n, html, _) in current.iter().filter(|(n, ..)| *n > from) {
                told.insert(*n, html.clone());
            }
            shown = entries.len();
        }
        let changed: Vec<serde_json::Value> = current
            .iter()
            .filter(|(n, html, _)| told.get(n) != Some(html))
            .map(|(n, html, _)| serde_json::json!({ "n": n, "html": html }))
            .collect();
        if !changed.is_empty() {
            let Ok(event) = Sse::default().event("delivery").json_data(&changed) else { return };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
            told.extend(current.iter().map(|(n, html, _)| (*n, html.clone())));
        }
        let waiting = current.iter().any(|(_, _, settled)| !settled);
        whole = false;
        // Until the conversation changes (or a note on its way may have moved on).
        loop {
            tokio::select! {
                got = updates.recv() => {
                    let update = match got {
                        Ok(u) => u,
                        Err(RecvError::Lagged(_)) => { whole = true; break; }
                        Err(RecvError::Closed) => return,
                    };
                    if let Some(text) = link_text(&update)
                        && tx.send(Ok(Sse::default().event("link").data(text))).await.is_err()
                    {
                        return;
                    }
                    if let (Update::Route { .. }, Some(h), Some(v)) = (&update, &hotline, &view) {
                        let html = crate::pages::routes::line(engine, v, h).into_string();
                        if tx.send(Ok(Sse::default().event("line").data(html))).await.is_err() {
                            return;
                        }
                    }
                    if concerns(&update, name) {
                        whole = matches!(&update, Update::Party { event: Event::GapClosed { .. } });
                        // Take in the rest of a burst before reading once.
                        while let Ok(u) = updates.try_recv() {
                            whole |= matches!(&u, Update::Party { event: Event::GapClosed { .. } });
                        }
                        break;
                    }
                }
                _ = tick.tick(), if waiting => break,
            }
        }
    }
}

async fn nudge(engine: &Engine, tx: &Tx) {
    let mut updates = engine.subscribe();
    loop {
        let wanted = |u: &Update| matches!(u, Update::Party { .. } | Update::Route { .. });
        if next(&mut updates, tx, wanted).await.is_none() {
            return;
        }
        if tx.send(Ok(Sse::default().event("changed").data("changed"))).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_client::{Conversation, ConversationKind, Entry};

    fn note(kind: ConversationKind, name: &str) -> Update {
        let conversation = Conversation { kind, key: "k".into(), name: name.into() };
        let entry = Entry::Legacy { text: "t".into(), at: 0 };
        Update::Party { event: Event::Entry { conversation, entry } }
    }

    #[test]
    fn the_engines_troubles_reach_the_status_line() {
        let error = backchannel_client::ClientError::DiskFull { path: "/x".into() };
        let said = link_text(&Update::Trouble { error });
        assert_eq!(
            said.as_deref(),
            Some("The disk is full. Free some space and try again; nothing was changed.")
        );
        let down = Update::Link { relay: "r".into(), up: false, detail: Some("refused".into()) };
        assert!(link_text(&down).is_some_and(|t| t.contains("cannot be reached")));
    }

    #[test]
    fn updates_go_to_their_conversation() {
        assert!(concerns(&note(ConversationKind::Contact, "Bao"), "Bao@Delegation B"));
        assert!(concerns(&note(ConversationKind::Channel, "talks"), "talks"));
        assert!(!concerns(&note(ConversationKind::Channel, "talks"), "other"));
    }
}
