//! `probe propose | accept | decline | input | status | log`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use backchannel_client::{
    Asker, Command, ProbeBudget, ProbeInputSpec, ProbeRequest, ProbeSpec, ProbeStatus, ProbeView, ProbesView,
    Reply,
};

use super::{delivered, json, once, print_caught_up, say, unexpected};
use crate::args::ProbeCmd;
use crate::render::{describe, peer, probe_detail, time};

pub async fn run(home: &Path, cmd: ProbeCmd) -> Result<()> {
    match cmd {
        ProbeCmd::Propose { channel, with, issue, max, gives, takes, cap, asker, budget } => {
            let spec = match (max, cap) {
                (Some(max), None) => single(&issue, max, gives, takes)?,
                (None, Some(cap)) => packages(&issue, cap)?,
                _ => bail!("give --max (a single-value probe) or --cap (a package probe)"),
            };
            let budget = budget.as_deref().map(parse_budget).transpose()?;
            let request = ProbeRequest { with, spec, asker: parse_asker(&asker)?, budget };
            let view =
                probe_command(home, &channel, Command::ProbePropose { channel: channel.clone(), request })
                    .await?;
            let id = &view.id[..8];
            say(format!("proposed probe {id} to {}: {}", peer(&view.with), describe(&view.terms)))?;
            say(format!(
                "enter your input with `backchannel probe input {channel} {id} …`; they accept it with `backchannel probe accept {channel} {id}`"
            ))
        }
        ProbeCmd::Accept { channel, id } => {
            let view =
                probe_command(home, &channel, Command::ProbeAccept { channel: channel.clone(), id }).await?;
            say(format!("accepted probe {}: {}", &view.id[..8], probe_detail(&view, &channel)))
        }
        ProbeCmd::Decline { channel, id } => {
            let view =
                probe_command(home, &channel, Command::ProbeDecline { channel: channel.clone(), id }).await?;
            say(format!("declined probe {}", &view.id[..8]))
        }
        ProbeCmd::Input { channel, id, value, package } => {
            let input = match value {
                Some(text) => ProbeInputSpec::Value(read_value(&text)?),
                None => ProbeInputSpec::Packages(
                    package
                        .iter()
                        .flat_map(|p| p.split(';'))
                        .filter(|p| !p.trim().is_empty())
                        .map(|p| p.split(',').map(|o| o.trim().to_owned()).collect())
                        .collect(),
                ),
            };
            let view =
                probe_command(home, &channel, Command::ProbeInput { channel: channel.clone(), id, input })
                    .await?;
            say(format!(
                "your input for probe {} is kept in your encrypted store and never sent",
                &view.id[..8]
            ))?;
            say(format!("probe {}: {}", &view.id[..8], probe_detail(&view, &channel)))
        }
        ProbeCmd::Status { channel, json: as_json } => {
            let view = probes(home, &channel).await?;
            if as_json {
                return json(&view);
            }
            status(&view)
        }
        ProbeCmd::Log { channel, json: as_json } => {
            let view = probes(home, &channel).await?;
            if as_json {
                return json(&view.probes);
            }
            if view.probes.is_empty() {
                return say(format!("no probes in {} yet", peer(&channel)));
            }
            view.probes.iter().try_for_each(|p| log_entry(p, &channel))
        }
    }
}

/// A probe command: what it took in first (an acceptance, a query) is shown before its result.
async fn probe_command(home: &Path, channel: &str, command: Command) -> Result<ProbeView> {
    let reply = once(home, command).await?;
    let Reply::Probe { probe, delivery } = reply else { return Err(unexpected(reply)) };
    print_caught_up(&delivery)?;
    delivered(&delivery, channel)?;
    Ok(probe)
}

async fn probes(home: &Path, channel: &str) -> Result<ProbesView> {
    let reply = once(home, Command::Probes { channel: channel.to_owned() }).await?;
    let Reply::Probes { probes } = reply else { return Err(unexpected(reply)) };
    Ok(probes)
}

fn single(issue: &[String], max: u64, gives: Option<String>, takes: Option<String>) -> Result<ProbeSpec> {
    let [issue] = issue else { bail!("a single-value probe has one --issue") };
    let (Some(gives), Some(takes)) = (gives, takes) else {
        bail!("a single-value probe needs --gives SIDE and --takes SIDE (me, them, or a side's name)")
    };
    Ok(ProbeSpec::Single { issue: issue.clone(), max, gives, takes })
}

/// `--issue NAME=OPT,OPT,...`, once per issue.
fn packages(issues: &[String], cap: u32) -> Result<ProbeSpec> {
    let issues = issues
        .iter()
        .map(|text| {
            let Some((name, options)) = text.split_once('=') else {
                bail!("--issue {text:?}: a package probe's issue is NAME=OPTION,OPTION,...")
            };
            let options: Vec<String> = options.split(',').map(|o| o.trim().to_owned()).collect();
            if name.trim().is_empty() || options.iter().any(String::is_empty) {
                bail!("--issue {text:?}: a name, then options separated by commas, none empty");
            }
            Ok((name.trim().to_owned(), options))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ProbeSpec::Package { issues, cap })
}

fn parse_asker(s: &str) -> Result<Asker> {
    match s.to_ascii_lowercase().as_str() {
        "me" => Ok(Asker::Me),
        "them" => Ok(Asker::Them),
        "either" => Ok(Asker::Either),
        _ => bail!("--asker is me, them or either, not {s:?}"),
    }
}

fn parse_budget(s: &str) -> Result<ProbeBudget> {
    let parsed = s.split_once('/').and_then(|(i, p)| Some((i.trim().parse().ok()?, p.trim().parse().ok()?)));
    match parsed {
        Some((per_issue, per_phase)) if per_issue > 0 && per_phase > 0 => {
            Ok(ProbeBudget { per_issue, per_phase })
        }
        _ => bail!("--budget is PER_ISSUE/PER_PHASE, two whole numbers above 0 (e.g. 3/10), not {s:?}"),
    }
}

/// The number, from the argument or (for `-`) standard input. Never echoed.
fn read_value(text: &str) -> Result<u64> {
    let text = if text == "-" {
        let mut buf = String::new();
        std::io::stdin().read_to_string(&mut buf).context("cannot read the value from standard input")?;
        buf
    } else {
        text.to_owned()
    };
    text.trim().parse().context("VALUE is a whole number within the probe's range")
}

fn status(view: &ProbesView) -> Result<()> {
    let allowed = if view.probes_allowed { "allowed" } else { "NOT allowed" };
    say(format!("{}: phase {}, probes {allowed}", peer(&view.channel), view.phase))?;
    match view.budget {
        Some(b) => say(format!(
            "budget: {} per issue, {} per phase (agreed with the channel's first accepted probe)",
            b.per_issue, b.per_phase
        ))?,
        None => say(format!(
            "budget: none agreed yet; the first accepted probe fixes it (default {} per issue, {} per phase)",
            backchannel_client::DEFAULT_BUDGET.per_issue,
            backchannel_client::DEFAULT_BUDGET.per_phase
        ))?,
    }
    if let Some(b) = view.budget {
        say(format!("used in phase {}: {} of {}", view.phase, view.used_in_phase, b.per_phase))?;
    }
    for i in &view.issues {
        say(format!("  issue {:?}: {} used, {} left", peer(&i.issue), i.used, i.left))?;
    }
    let open: Vec<&ProbeView> = view
        .probes
        .iter()
        .filter(|p| matches!(p.status, ProbeStatus::Proposed | ProbeStatus::Accepted | ProbeStatus::Running))
        .collect();
    if open.is_empty() {
        return say("no open probes");
    }
    say("open probes:")?;
    open.iter().try_for_each(|p| {
        say(format!(
            "  {} with {} [{}] {}",
            &p.id[..8],
            peer(&p.with),
            p.status.name(),
            probe_detail(p, &view.channel)
        ))
    })
}

fn log_entry(p: &ProbeView, channel: &str) -> Result<()> {
    let by = if p.proposed_by_you { "proposed by you" } else { "proposed by them" };
    let asks = if p.you_ask { "you ask" } else { "they ask" };
    let with = format!("{} ({})", peer(&p.with), peer(&p.with_side));
    say(format!("{}  {}  with {with}, {by}, {asks}, phase {}", &p.id[..8], time(p.at), p.phase))?;
    say(format!("    {}", describe(&p.terms)))?;
    say(format!("    {}: {}", p.status.name(), probe_detail(p, channel)))
}
