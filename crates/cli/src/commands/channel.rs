//! `channel …`, `forward`, `phase …`.

use std::path::Path;

use anyhow::{Result, bail};
use backchannel_client::{ChannelView, Fanout, Party};
use backchannel_proto::channel::{Mode, Phase, Role};

use super::party::open;
use super::talk::deliver;
use crate::args::ChannelCmd;
use crate::config;
use crate::output::{json, say};

pub async fn run(home: &Path, cmd: ChannelCmd) -> Result<()> {
    match cmd {
        ChannelCmd::Create { name, mode, role, retention } => {
            let mode = parse_mode(&mode)?;
            let default_role = if mode == Mode::Shuttle { Role::Intermediary } else { Role::Principal };
            let role = role.as_deref().map(parse_role).transpose()?.unwrap_or(default_role);
            let retention = retention.as_deref().map(config::duration).transpose()?.map(|d| d.as_secs());
            let view = open(home)?.channel_create(&name, mode, role, retention)?;
            say(format!("created {}", summary(&view)))?;
            say(format!("add members with `backchannel channel add {name} CONTACT --role principal`"))
        }
        ChannelCmd::Add { name, contact, role } => {
            let mut party = open(home)?;
            let view = party.channel_add(&name, &contact, parse_role(&role)?)?;
            deliver(&mut party, &name).await?;
            say(format!("added {contact}: {}", summary(&view)))
        }
        ChannelCmd::Remove { name, member } => {
            let mut party = open(home)?;
            let view = party.channel_remove(&name, &member)?;
            deliver(&mut party, &name).await?;
            say(format!("removed {member}: {}", summary(&view)))
        }
        ChannelCmd::Members { name, json: as_json } => {
            let view = open(home)?.channel(&name)?;
            if as_json {
                return json(&view);
            }
            members(&view)
        }
        ChannelCmd::List { json: as_json } => {
            let all = open(home)?.channels()?;
            if as_json {
                return json(&all);
            }
            if all.is_empty() {
                return say("no channels yet: `backchannel channel create NAME`");
            }
            all.iter().try_for_each(|c| say(summary(c)))
        }
    }
}

fn parse_mode(s: &str) -> Result<Mode> {
    match s.to_ascii_lowercase().as_str() {
        "direct" => Ok(Mode::Direct),
        "shuttle" => Ok(Mode::Shuttle),
        _ => bail!("--mode is direct or shuttle, not {s:?}"),
    }
}

fn parse_role(s: &str) -> Result<Role> {
    match s.to_ascii_lowercase().as_str() {
        "principal" => Ok(Role::Principal),
        "intermediary" => Ok(Role::Intermediary),
        "observer" => Ok(Role::Observer),
        _ => bail!("a role is principal, intermediary or observer, not {s:?}"),
    }
}

fn summary(c: &ChannelView) -> String {
    let mode = if c.mode == Mode::Shuttle { "shuttle" } else { "direct" };
    let gone = if c.removed { "  [you were removed]" } else { "" };
    format!("{} ({mode}, phase {}, {} members){gone}", c.name, c.phase.name(), c.members.len())
}

fn members(c: &ChannelView) -> Result<()> {
    say(summary(c))?;
    let keep = c
        .policy
        .retention_secs
        .map_or("kept".to_owned(), |s| format!("deleted after {}", config::describe(s)));
    let probes = if c.policy.probes_allowed { "allowed" } else { "not allowed" };
    say(format!("policy: notes {keep}; probes {probes}"))?;
    if let Some((phase, missing)) = &c.proposed_phase {
        say(format!("proposed: move to {}; waiting for {}", phase.name(), missing.join(", ")))?;
    }
    for m in &c.members {
        let role = format!("{:?}", m.role).to_lowercase();
        let creator = if m.creator { ", creator" } else { "" };
        let line = match (&m.safety_number, m.you) {
            (_, true) => format!("  {} ({}) — {role}{creator} — you", m.name, m.side),
            (Some(sn), false) => {
                let link = match (m.connected, m.verified) {
                    (false, _) => "introduction pending",
                    (true, false) => "NOT verified",
                    (true, true) => "verified",
                };
                format!("  {} ({}) — {role}{creator} — safety number {sn} [{link}]", m.name, m.side)
            }
            (None, false) => format!("  {} ({}) — {role}{creator}", m.name, m.side),
        };
        say(line)?;
    }
    Ok(())
}

/// What a fan-out did, for the user.
pub fn fanout_line(name: &str, out: &Fanout, delivered: bool) -> String {
    let how = if delivered { "sent to" } else { "queued in the outbox for" };
    let mut line = format!("{how} {} member(s) of {name}", out.sealed);
    if !out.waiting.is_empty() {
        line.push_str(&format!("; waiting for introductions to {}", out.waiting.join(", ")));
    }
    line
}

pub async fn forward(
    home: &Path,
    channel: &str,
    entry: usize,
    to: &[String],
    rephrase: Option<&str>,
) -> Result<()> {
    let mut party = open(home)?;
    let out = party.channel_forward(channel, entry, to, rephrase)?;
    let delivered = deliver(&mut party, channel).await?;
    say(fanout_line(channel, &out, delivered))
}

pub async fn phase(home: &Path, channel: &str, proposed: Option<&str>) -> Result<()> {
    let phase: Option<Phase> = proposed.map(str::parse).transpose().map_err(anyhow::Error::msg)?;
    let mut party: Party = open(home)?;
    party.sync().await?;
    let view = party.phase_consent(channel, phase)?;
    deliver(&mut party, channel).await?;
    match &view.proposed_phase {
        Some((p, missing)) if missing.is_empty() => say(format!(
            "{channel}: every side consents to {}; the creator moves the channel at its next sync",
            p.name()
        )),
        Some((p, missing)) => say(format!("{channel}: move to {} awaits {}", p.name(), missing.join(", "))),
        None => say(format!("{channel} is now in phase {}", view.phase.name())),
    }
}
