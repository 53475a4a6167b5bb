//! `nonpaper …`, `propose`, `ratify`, `agreement …`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use backchannel_proto::agreement::Agreement;
use backchannel_wire::hex_encode;

use super::party::open;
use super::talk::deliver;
use crate::args::NonpaperCmd;
use crate::output::{say, time};

/// The largest file any export may hold; the text limit is enforced again when parsing.
const MAX_EXPORT_FILE: u64 = 16 * 1024 * 1024;

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {} as UTF-8 text", path.display()))
}

pub async fn nonpaper(home: &Path, cmd: NonpaperCmd) -> Result<()> {
    match cmd {
        NonpaperCmd::Put { channel, title, file } => {
            let text = read_text(&file)?;
            let mut party = open(home)?;
            party.sync().await?;
            let (version, out) = party.nonpaper_put(&channel, &title, &text)?;
            let delivered = deliver(&mut party, &channel).await?;
            say(format!("non-paper {title:?} v{version} ({} bytes)", text.len()))?;
            say(super::channel::fanout_line(&channel, &out, delivered))
        }
        NonpaperCmd::List { channel } => {
            let papers = open(home)?.nonpapers(&channel)?;
            if papers.is_empty() {
                return say(format!("no non-papers in {channel} yet"));
            }
            for p in papers {
                say(format!(
                    "{:?} v{}  {} bytes  {}  sha256 {}",
                    p.title,
                    p.version,
                    p.bytes,
                    time(p.at),
                    &p.sha256[..16]
                ))?;
            }
            Ok(())
        }
        NonpaperCmd::Show { channel, title, version } => {
            let (v, text) = open(home)?.nonpaper(&channel, &title, version)?;
            eprintln!("non-paper {title:?} v{v} (no attribution)");
            say(text.trim_end_matches('\n'))
        }
        NonpaperCmd::Diff { channel, title, v1, v2 } => {
            let mut party = open(home)?;
            let (_, old) = party.nonpaper(&channel, &title, Some(v1))?;
            let (_, new) = party.nonpaper(&channel, &title, Some(v2))?;
            let diff = similar::TextDiff::from_lines(&old, &new);
            let unified = diff
                .unified_diff()
                .context_radius(2)
                .header(&format!("{title} v{v1}"), &format!("{title} v{v2}"))
                .to_string();
            if unified.is_empty() {
                return say(format!("v{v1} and v{v2} of {title:?} are identical"));
            }
            say(unified.trim_end_matches('\n'))
        }
    }
}

pub async fn propose(
    home: &Path,
    channel: &str,
    file: &Path,
    signatories: &[String],
    title: Option<String>,
) -> Result<()> {
    let text = read_text(file)?;
    let title = title
        .unwrap_or_else(|| file.file_stem().map_or("proposal".into(), |s| s.to_string_lossy().into_owned()));
    let mut party = open(home)?;
    party.sync().await?;
    let view = party.propose(channel, &title, &text, signatories)?;
    deliver(&mut party, channel).await?;
    say(format!("proposed {title:?}: text sha256 {}", view.id))?;
    say(format!(
        "each of {} ratifies it with `backchannel ratify {channel} {}`",
        view.signatories.join(", "),
        &view.id[..12]
    ))
}

pub async fn ratify(home: &Path, channel: &str, proposal: &str) -> Result<()> {
    let mut party = open(home)?;
    party.sync().await?;
    let view = party.ratify(channel, proposal)?;
    deliver(&mut party, channel).await?;
    say(format!("you ratified {:?} (sha256 {})", view.title, view.id))?;
    match view.missing.as_slice() {
        [] => say(format!(
            "every signatory has ratified; export it with `backchannel agreement export {channel} {} DIR`",
            &view.id[..12]
        )),
        missing => say(format!("still to ratify: {}", missing.join(", "))),
    }
}

pub fn status(home: &Path, channel: Option<&str>) -> Result<()> {
    let mut party = open(home)?;
    let channels: Vec<String> = match channel {
        Some(c) => vec![c.to_owned()],
        None => party.channels()?.into_iter().map(|c| c.name).collect(),
    };
    for name in channels {
        for (i, p) in party.proposals(&name)?.iter().enumerate() {
            let state = if p.missing.is_empty() {
                "RATIFIED".to_owned()
            } else {
                format!("awaiting {}", p.missing.join(", "))
            };
            say(format!("{name} #{} {:?}  {}  {state}", i + 1, p.title, &p.id[..12]))?;
            if !p.ratified_by.is_empty() {
                say(format!("    ratified by {}", p.ratified_by.join(", ")))?;
            }
        }
    }
    Ok(())
}

pub fn export(home: &Path, channel: &str, proposal: &str, dir: &Path) -> Result<()> {
    let agreement = open(home)?.agreement(channel, proposal)?;
    let verified = agreement.verify();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, bytes) in agreement.files()? {
        let path = dir.join(&name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    say(format!("wrote {:?} to {}", agreement.title, dir.display()))?;
    match verified {
        Ok(_) => say(format!(
            "check it anywhere with `backchannel agreement verify {}` or ssh-keygen -Y verify (see manifest.json)",
            dir.display()
        )),
        Err(e) => say(format!("note: not yet a complete agreement: {e}")),
    }
}

/// Verifies an exported folder; with `contacts`, also that each seal is the one the named
/// contact showed us (the folder alone cannot prove whose key it holds).
pub fn verify(home: Option<PathBuf>, dir: &Path, contacts: bool) -> Result<()> {
    let agreement = read_export(dir)?;
    let verified = agreement.verify().with_context(|| format!("{} does NOT verify", dir.display()))?;
    say(verified.to_string().trim_end())?;
    if !contacts {
        return say("compare each key fingerprint with its signatory out of band, or run with --contacts");
    }
    let me = open(&crate::config::home(home)?)?;
    check_against_contacts(me, &verified)
}

fn check_against_contacts(
    mut party: backchannel_client::Party,
    verified: &backchannel_proto::agreement::VerifiedAgreement,
) -> Result<()> {
    let me = party.me()?;
    let known = party.seal_keys()?;
    for s in &verified.signatories {
        let ours = s.seal_key == me.seal_key;
        match known.iter().find(|(_, key)| key == &s.seal_key) {
            _ if ours => say(format!("  {} ({}): your own seal", s.name, s.side))?,
            Some((who, _)) => {
                say(format!("  {} ({}): matches the seal of your contact {who}", s.name, s.side))?
            }
            None => bail!(
                "{} ({})'s seal {} is not the seal of any of your contacts",
                s.name,
                s.side,
                hex_encode(&s.seal_key)
            ),
        }
    }
    Ok(())
}

fn read_export(dir: &Path) -> Result<Agreement> {
    if !dir.is_dir() {
        bail!("{} is not a folder; give the folder `agreement export` wrote", dir.display());
    }
    let mut problem = None;
    let agreement = Agreement::from_files(|name| {
        let path = dir.join(name);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_EXPORT_FILE => {
                problem = Some(format!("{} is larger than {MAX_EXPORT_FILE} bytes", path.display()));
                None
            }
            Ok(_) => std::fs::read(&path).ok(),
            Err(_) => None,
        }
    });
    match (agreement, problem) {
        (_, Some(p)) => bail!("{} does NOT verify: {p}", dir.display()),
        (a, None) => a.with_context(|| format!("{} does NOT verify", dir.display())),
    }
}
