//! `channel …`, `forward`, `phase …`.

use std::path::Path;

use anyhow::{Result, bail};
use backchannel_client::{ChannelView, Command, Fanout, Hotline, Mode, Phase, Reply, Role, RouteView};

use super::{delivered, json, once, say, unexpected};
use crate::args::ChannelCmd;
use crate::config;
use crate::render::{channel_summary, peer, role, route};

pub async fn run(home: &Path, cmd: ChannelCmd) -> Result<()> {
    match cmd {
        ChannelCmd::Create { name, mode, role, retention, hotline, heartbeat, path_test } => {
            let mode = parse_mode(&mode)?;
            let default_role = if mode == Mode::Shuttle { Role::Intermediary } else { Role::Principal };
            let role = role.as_deref().map(parse_role).transpose()?.unwrap_or(default_role);
            let retention_secs = retention.as_deref().map(config::duration).transpose()?.map(|d| d.as_secs());
            let hotline =
                hotline.then(|| line_discipline(heartbeat.as_deref(), path_test.as_deref())).transpose()?;
            let command = Command::ChannelCreate { name: name.clone(), mode, role, retention_secs, hotline };
            let reply = once(home, command).await?;
            let Reply::Channel { channel: view, .. } = reply else { return Err(unexpected(reply)) };
            say(format!("created {}", channel_summary(&view)))?;
            say(format!("add members with `backchannel channel add {name} CONTACT --role principal`"))
        }
        ChannelCmd::Add { name, contact, role } => {
            let command = Command::ChannelAdd {
                name: name.clone(),
                contact: contact.clone(),
                role: parse_role(&role)?,
            };
            let (view, _) = changed(home, command, &name).await?;
            say(format!("added {}: {}", peer(&contact), channel_summary(&view)))
        }
        ChannelCmd::Remove { name, member } => {
            let (view, _) =
                changed(home, Command::ChannelRemove { name: name.clone(), member: member.clone() }, &name)
                    .await?;
            say(format!("removed {}: {}", peer(&member), channel_summary(&view)))
        }
        ChannelCmd::Members { name, json: as_json } => {
            let reply = once(home, Command::ChannelMembers { name }).await?;
            let Reply::Members { channel: view, routes } = reply else { return Err(unexpected(reply)) };
            if as_json {
                return json(&with_routes(&view, &routes)?);
            }
            members(&view, &routes)
        }
        ChannelCmd::List { json: as_json } => {
            let reply = once(home, Command::Channels).await?;
            let Reply::Channels { channels: all } = reply else { return Err(unexpected(reply)) };
            if as_json {
                return json(&all);
            }
            if all.is_empty() {
                return say("no channels yet: `backchannel channel create NAME`");
            }
            all.iter().try_for_each(|c| say(channel_summary(c)))
        }
    }
}

/// A command that changes a channel and delivers what it sealed.
async fn changed(home: &Path, command: Command, name: &str) -> Result<(ChannelView, bool)> {
    let reply = once(home, command).await?;
    let Reply::Channel { channel: view, delivery: Some(delivery) } = reply else {
        return Err(unexpected(reply));
    };
    let all = delivered(&delivery, name)?;
    Ok((view, all))
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

/// The channel as JSON, each member (but us) with `routes`: its routes both ways.
fn with_routes(c: &ChannelView, routes: &[(String, Vec<RouteView>)]) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(c)?;
    if let Some(members) = value.get_mut("members").and_then(|m| m.as_array_mut()) {
        for m in members {
            let name = m.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
            if let Some((_, r)) = routes.iter().find(|(n, _)| *n == name) {
                m["routes"] = serde_json::to_value(r)?;
            }
        }
    }
    Ok(value)
}

fn members(c: &ChannelView, routes: &[(String, Vec<RouteView>)]) -> Result<()> {
    say(channel_summary(c))?;
    let keep = c
        .policy
        .retention_secs
        .map_or("kept".to_owned(), |s| format!("deleted after {}", config::describe(s)));
    let probes = if c.policy.probes_allowed { "allowed" } else { "not allowed" };
    say(format!("policy: notes {keep}; probes {probes}"))?;
    if let Some((phase, missing)) = &c.proposed_phase {
        let missing: Vec<String> = missing.iter().map(|m| peer(m)).collect();
        say(format!("proposed: move to {}; waiting for {}", phase.name(), missing.join(", ")))?;
    }
    for m in &c.members {
        let creator = if m.creator { ", creator" } else { "" };
        let (name, side, r) = (peer(&m.name), peer(&m.side), role(m.role));
        let line = match (&m.safety_number, m.you) {
            (_, true) => format!("  {name} ({side}) — {r}{creator} — you"),
            (Some(sn), false) => {
                let link = match (m.connected, m.verified) {
                    (false, _) => "introduction pending",
                    (true, false) => "NOT verified",
                    (true, true) => "verified",
                };
                format!("  {name} ({side}) — {r}{creator} — safety number {sn} [{link}]")
            }
            (None, false) => format!("  {name} ({side}) — {r}{creator}"),
        };
        say(line)?;
        for r in routes.iter().filter(|(n, _)| *n == m.name && !m.you).flat_map(|(_, r)| r) {
            say(format!("      {}", route(r)))?;
        }
    }
    Ok(())
}

/// What a fan-out did, for the user.
pub fn fanout_line(name: &str, out: &Fanout, delivered: bool) -> String {
    let how = if delivered { "sent to" } else { "queued in the outbox for" };
    let mut line = format!("{how} {} member(s) of {}", out.sealed, peer(name));
    if !out.waiting.is_empty() {
        let waiting: Vec<String> = out.waiting.iter().map(|w| peer(w)).collect();
        line.push_str(&format!("; waiting for introductions to {}", waiting.join(", ")));
    }
    line
}

pub async fn forward(
    home: &Path,
    channel: &str,
    entry: usize,
    to: &[String],
    rephrased: Option<String>,
) -> Result<()> {
    let command = Command::Forward { channel: channel.to_owned(), entry, to: to.to_vec(), rephrased };
    let reply = once(home, command).await?;
    let Reply::Sent { fanout: Some(out), delivery } = reply else { return Err(unexpected(reply)) };
    let all = delivered(&delivery, channel)?;
    say(fanout_line(channel, &out, all))
}

pub async fn phase(home: &Path, channel: &str, proposed: Option<&str>) -> Result<()> {
    let phase: Option<Phase> = proposed.map(str::parse).transpose().map_err(anyhow::Error::msg)?;
    let (view, _) = changed(home, Command::Phase { channel: channel.to_owned(), phase }, channel).await?;
    let name = peer(channel);
    match &view.proposed_phase {
        Some((p, missing)) if missing.is_empty() => say(format!(
            "{name}: every side consents to {}; the creator moves the channel at its next sync",
            p.name()
        )),
        Some((p, missing)) => {
            let missing: Vec<String> = missing.iter().map(|m| peer(m)).collect();
            say(format!("{name}: move to {} awaits {}", p.name(), missing.join(", ")))
        }
        None => say(format!("{name} is now in phase {}", view.phase.name())),
    }
}

/// A hotline's heartbeat and path-test intervals, from `--heartbeat` and `--path-test`.
fn line_discipline(heartbeat: Option<&str>, path_test: Option<&str>) -> Result<Hotline> {
    let secs = |d: Option<&str>, default: u32| -> Result<u32> {
        match d {
            None => Ok(default),
            Some(text) => Ok(u32::try_from(config::duration(text)?.as_secs()).unwrap_or(u32::MAX)),
        }
    };
    Ok(Hotline {
        heartbeat_secs: secs(heartbeat, Hotline::DEFAULT.heartbeat_secs)?,
        path_test_secs: secs(path_test, Hotline::DEFAULT.path_test_secs)?,
    })
}
