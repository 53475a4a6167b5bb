//! `send`, `sync`, `read`, `watch`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use backchannel_client::{Command, ConversationKind, Door, Event, Reply, Update};

use super::channel::fanout_line;
use super::{ask, delivered, door, json, once, say, unexpected};
use crate::render;

pub async fn send(
    home: &Path,
    name: &str,
    to: &[String],
    text: Option<String>,
    file: Option<PathBuf>,
) -> Result<()> {
    let text = match (text, file) {
        (Some(t), _) => t,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?,
        (None, None) => anyhow::bail!("give the note's TEXT or --file FILE"),
    };
    let reply = once(home, Command::Send { name: name.to_owned(), text, to: to.to_vec() }).await?;
    let Reply::Sent { fanout, delivery } = reply else { return Err(unexpected(reply)) };
    let all = delivered(&delivery, name)?;
    match fanout {
        Some(out) => say(fanout_line(name, &out, all)),
        None if all => say(format!("sent to {}", render::peer(name))),
        None => say(format!(
            "queued for {}; it waits in the outbox for the next `backchannel sync`",
            render::peer(name)
        )),
    }
}

pub async fn sync(home: &Path) -> Result<()> {
    let reply = once(home, Command::Sync).await?;
    let Reply::Synced { report } = reply else { return Err(unexpected(reply)) };
    for e in &report.events {
        say(render::event(e))?;
    }
    for trouble in &report.tasks {
        let again = if trouble.retry { "; will retry" } else { "" };
        eprintln!(
            "warning: introduction in {}: {}{again}",
            render::peer(&trouble.channel),
            render::error(&trouble.error)
        );
    }
    for why in report.unreachable.iter().chain(&report.problems) {
        eprintln!("warning: {why}");
    }
    if report.held > 0 {
        eprintln!("held: {} message(s) a relay refused wait for you; see `backchannel outbox`", report.held);
    }
    let received = report
        .events
        .iter()
        .filter(|e| {
            matches!(e, Event::Entry { entry: backchannel_client::Entry::Note { outgoing: false, .. }, .. })
        })
        .count();
    say(format!("sent {}, received {received}, still queued {}", report.sent, report.still_queued))
}

pub async fn read(home: &Path, name: &str, as_json: bool) -> Result<()> {
    let reply = once(home, Command::Read { name: name.to_owned() }).await?;
    let Reply::Entries { entries } = reply else { return Err(unexpected(reply)) };
    if as_json {
        return json(&entries);
    }
    // Numbered, so an intermediary can say which note to forward.
    entries.iter().enumerate().try_for_each(|(i, e)| say(format!("{:>3}. {}", i + 1, render::entry(e))))
}

/// Whether an update belongs to the contact or channel called `name`.
fn concerns(u: &Update, name: &str) -> bool {
    let Update::Party { event } = u else { return true };
    let conversation = match event {
        Event::Entry { conversation, .. }
        | Event::Duplicate { conversation }
        | Event::GapClosed { conversation, .. } => conversation,
    };
    // A contact may be named NAME@SIDE; conversations carry the name alone.
    let wanted = match conversation.kind {
        ConversationKind::Channel => name,
        ConversationKind::Contact => name.split('@').next().unwrap_or(name),
    };
    conversation.name.eq_ignore_ascii_case(wanted)
}

fn show(u: &Update, only: Option<&str>) {
    if only.is_some_and(|name| !concerns(u, name)) {
        return;
    }
    if let Some((line, to_stdout)) = render::update(u) {
        match to_stdout {
            true => {
                let _ = say(line);
            }
            false => eprintln!("{line}"),
        }
    }
}

pub async fn watch(home: &Path, only: Option<&str>) -> Result<()> {
    let door = door(home).await?;
    if let Some(name) = only {
        // An unknown name fails here, before we wait for nothing.
        ask(&door, Command::Read { name: name.to_owned() }).await?;
    }
    match door {
        Door::Local(engine) => {
            let mut updates = engine.subscribe();
            let printer = tokio::spawn({
                let only = only.map(str::to_owned);
                async move {
                    while let Ok(u) = updates.recv().await {
                        show(&u, only.as_deref());
                    }
                }
            });
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            let out = backchannel_client::run_serving(&engine, stop).await;
            printer.abort();
            eprintln!("stopped");
            out.map_err(super::fail)
        }
        Door::Remote(remote) => {
            eprintln!("watching through the engine already running on {}", home.display());
            let mut updates = remote.subscribe().await.map_err(super::fail)?;
            loop {
                tokio::select! {
                    u = updates.recv() => match u {
                        Some(u) => show(&u, only),
                        None => { eprintln!("the running engine stopped"); return Ok(()) }
                    },
                    _ = tokio::signal::ctrl_c() => { eprintln!("stopped"); return Ok(()) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::concerns;
    use backchannel_client::{Conversation, Entry, Event, Update};

    fn note(kind: backchannel_client::ConversationKind, name: &str) -> Update {
        let conversation = Conversation { kind, key: "k".into(), name: name.into() };
        let entry = Entry::Note {
            from: "Bao".into(),
            outgoing: false,
            text: "t".into(),
            sent_at: 0,
            at: 0,
            seq: 1,
            relayed_by: None,
            rephrased: false,
        };
        Update::Party { event: Event::Entry { conversation, entry } }
    }

    #[test]
    fn watch_filters_by_contact_or_channel() {
        use backchannel_client::ConversationKind::{Channel, Contact};
        assert!(concerns(&note(Contact, "Bao"), "bao"));
        assert!(concerns(&note(Contact, "Bao"), "Bao@Delegation B"));
        assert!(!concerns(&note(Channel, "framework"), "Bao"), "a channel note belongs to its channel");
        assert!(concerns(&note(Channel, "framework"), "Framework"));
        assert!(!concerns(&note(Channel, "muscat"), "framework"));
    }
}
