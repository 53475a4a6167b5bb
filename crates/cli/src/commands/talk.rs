//! `send`, `sync`, `read`, `watch`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use backchannel_client::{Party, WatchStatus};

use super::party::open;
use crate::output::{entry, event, json, say};

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
    let mut party = open(home)?;
    if party.is_channel(name)? {
        // Take in membership changes first, so a member removed meanwhile gets nothing.
        let report = party.sync().await?;
        report_unreachable(&report.unreachable);
        let out = party.channel_note(name, &text, to)?;
        let delivered = deliver(&mut party, name).await?;
        return say(super::channel::fanout_line(name, &out, delivered));
    }
    if !to.is_empty() {
        anyhow::bail!("--to is for shuttle channels; {name} is a contact");
    }
    party.queue_note(name, &text)?;
    if deliver(&mut party, name).await? {
        return say(format!("sent to {name}"));
    }
    say(format!("queued for {name}; it waits in the outbox for the next `backchannel sync`"))
}

fn report_unreachable(why: &[String]) {
    why.iter().for_each(|w| eprintln!("warning: {w}"));
}

/// Flushes the outbox; says plainly what could not go yet (it stays queued, nothing lost).
/// Returns whether everything went.
pub async fn deliver(party: &mut Party, name: &str) -> Result<bool> {
    let flushed = party.flush_outbox().await?;
    if flushed.refused > 0 {
        anyhow::bail!(
            "not delivered: the relay no longer has a queue {name} needs (expired or deleted); exchange a new invitation"
        );
    }
    if flushed.still_queued > 0 {
        report_unreachable(&flushed.unreachable);
        eprintln!(
            "queued: {} message(s) wait in the outbox for the next `backchannel sync`",
            flushed.still_queued
        );
    }
    Ok(flushed.still_queued == 0)
}

pub async fn sync(home: &Path) -> Result<()> {
    let report = open(home)?.sync().await?;
    for e in &report.events {
        say(event(e))?;
    }
    for why in report.unreachable.iter().chain(&report.problems) {
        eprintln!("warning: {why}");
    }
    let received =
        report.events.iter().filter(|e| matches!(e, backchannel_client::Event::Note { .. })).count();
    say(format!("sent {}, received {received}, still queued {}", report.sent, report.still_queued))
}

/// Whether an event belongs to the contact or channel called `name`.
fn concerns(e: &backchannel_client::Event, name: &str) -> bool {
    use backchannel_client::Event;
    let is = |s: &str| s.eq_ignore_ascii_case(name);
    // A contact may be named NAME@SIDE; events carry the name alone.
    let contact = name.split('@').next().unwrap_or(name);
    match e {
        Event::Note { channel: Some(c), .. } | Event::Channel { channel: c, .. } => is(c),
        Event::Note { from, .. }
        | Event::Gap { from, .. }
        | Event::GapClosed { from, .. }
        | Event::Rejected { from, .. }
        | Event::Duplicate { from } => from.eq_ignore_ascii_case(contact),
        Event::Joined { name: n, .. } => n.eq_ignore_ascii_case(contact),
    }
}

pub fn read(home: &Path, name: &str, as_json: bool) -> Result<()> {
    let entries = open(home)?.read(name)?;
    if as_json {
        return json(&entries);
    }
    // Numbered, so an intermediary can say which note to forward.
    entries.iter().enumerate().try_for_each(|(i, e)| say(format!("{:>3}. {}", i + 1, entry(e))))
}

pub async fn watch(home: &Path, only: Option<&str>) -> Result<()> {
    let mut party = open(home)?;
    if let Some(name) = only
        && !party.is_channel(name)?
    {
        party.read(name)?; // an unknown name fails here, before we wait for nothing
    }
    let on_event = |e: &backchannel_client::Event| {
        if only.is_none_or(|name| concerns(e, name)) {
            let _ = say(event(e));
        }
    };
    let on_status = |s: WatchStatus| match s {
        WatchStatus::Connected(relay) => eprintln!("connected to {relay}"),
        WatchStatus::Disconnected(relay, why) => eprintln!("relay {relay}: {why}; retrying"),
    };
    tokio::select! {
        r = party.watch(on_event, on_status) => r?,
        _ = tokio::signal::ctrl_c() => eprintln!("stopped"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::concerns;
    use backchannel_client::Event;

    #[test]
    fn watch_filters_by_contact_or_channel() {
        let note = |channel: Option<&str>| Event::Note {
            from: "Bao".into(),
            text: "t".into(),
            sent_at: 0,
            channel: channel.map(str::to_owned),
            relayed_by: None,
        };
        assert!(concerns(&note(None), "bao"));
        assert!(concerns(&note(None), "Bao@Delegation B"));
        assert!(!concerns(&note(Some("framework")), "Bao"), "a channel note belongs to its channel");
        assert!(concerns(&note(Some("framework")), "Framework"));
        let event = Event::Channel { channel: "muscat".into(), text: "x".into() };
        assert!(concerns(&event, "muscat") && !concerns(&event, "framework"));
    }
}
