//! `send`, `sync`, `read`, `watch`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use backchannel_client::WatchStatus;

use super::party::open;
use crate::output::{entry, event, json, say};

pub async fn send(home: &Path, name: &str, text: Option<String>, file: Option<PathBuf>) -> Result<()> {
    let text = match (text, file) {
        (Some(t), _) => t,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?,
        (None, None) => anyhow::bail!("give the note's TEXT or --file FILE"),
    };
    let mut party = open(home)?;
    party.queue_note(name, &text)?;
    let flushed = party.flush_outbox().await?;
    if flushed.refused > 0 {
        anyhow::bail!(
            "not delivered: the relay no longer has {name}'s queue (expired or deleted); exchange a new invitation"
        );
    }
    if flushed.still_queued == 0 {
        return say(format!("sent to {name}"));
    }
    for why in &flushed.unreachable {
        eprintln!("warning: {why}");
    }
    say(format!(
        "queued for {name}; {} message(s) wait in the outbox for the next `backchannel sync`",
        flushed.still_queued
    ))
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

pub fn read(home: &Path, name: &str, as_json: bool) -> Result<()> {
    let entries = open(home)?.read(name)?;
    if as_json {
        return json(&entries);
    }
    entries.iter().try_for_each(|e| say(entry(e)))
}

pub async fn watch(home: &Path) -> Result<()> {
    let mut party = open(home)?;
    let on_event = |e: &backchannel_client::Event| {
        let _ = say(event(e));
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
