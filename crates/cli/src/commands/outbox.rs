//! `outbox [drop N | retry]`, `relays allow ADDRESS`.

use std::path::Path;

use anyhow::{Context, Result};
use backchannel_client::{Command, Reply};
use backchannel_wire::RelayAddress;

use super::{delivered, json, once, say, unexpected};
use crate::args::{OutboxCmd, RelaysCmd};
use crate::render::peer;

pub async fn run(home: &Path, cmd: Option<OutboxCmd>) -> Result<()> {
    match cmd {
        None | Some(OutboxCmd::List { json: false }) => {
            let items = list(home).await?;
            if items.is_empty() {
                return say("the outbox is empty: everything was delivered");
            }
            for q in items {
                let state = match (&q.held, q.awaiting_receipt, q.relay.is_empty()) {
                    (Some(why), _, _) => format!("HELD: {why}"),
                    (None, true, _) => "stored by its hosts; kept until the receipt comes".to_owned(),
                    (None, false, true) => "waiting for a usable route to this contact".to_owned(),
                    (None, false, false) => "waiting for its relay".to_owned(),
                };
                say(format!(
                    "{:>4}  to {}  via {}  {} block(s)  {state}",
                    q.n,
                    peer(&q.to),
                    q.relay,
                    q.blocks
                ))?;
            }
            say("`backchannel outbox retry` sends held items again; `backchannel outbox drop N` gives one up")
        }
        Some(OutboxCmd::List { json: true }) => json(&list(home).await?),
        Some(OutboxCmd::Drop { n }) => {
            once(home, Command::OutboxDrop { n }).await?;
            say(format!("dropped outbox item {n}; it will not be sent"))
        }
        Some(OutboxCmd::Retry) => {
            let reply = once(home, Command::OutboxRetry).await?;
            let Reply::Retried { count, delivery } = reply else { return Err(unexpected(reply)) };
            delivered(&delivery, "a contact")?;
            say(format!("{count} held item(s) sent again"))
        }
    }
}

async fn list(home: &Path) -> Result<Vec<backchannel_client::QueuedView>> {
    let reply = once(home, Command::Outbox).await?;
    let Reply::Outbox { items } = reply else { return Err(unexpected(reply)) };
    Ok(items)
}

pub async fn relays(home: &Path, cmd: RelaysCmd) -> Result<()> {
    match cmd {
        RelaysCmd::Allow { relay } => {
            let address: RelayAddress = relay.parse().context("ADDRESS")?;
            once(home, Command::AllowRelay { relay: address }).await?;
            say(format!("allowed {relay}: introductions and contacts' routes may now connect you to it"))
        }
    }
}
