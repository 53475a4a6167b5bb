//! `nonpaper …`, `propose`, `ratify`, `agreement …`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use backchannel_client::{Command, Reply};
use backchannel_proto::agreement::{Agreement, VerifiedAgreement};
use backchannel_wire::hex_encode;

use super::channel::fanout_line;
use super::{ask, delivered, door, once, say, unexpected};
use crate::args::NonpaperCmd;
use crate::render::{peer, time};

/// The largest file any export may hold; the text limit is enforced again when parsing.
const MAX_EXPORT_FILE: u64 = 16 * 1024 * 1024;

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {} as UTF-8 text", path.display()))
}

pub async fn nonpaper(home: &Path, cmd: NonpaperCmd) -> Result<()> {
    match cmd {
        NonpaperCmd::Put { channel, title, file } => {
            let text = read_text(&file)?;
            let bytes = text.len();
            let reply =
                once(home, Command::NonpaperPut { channel: channel.clone(), title: title.clone(), text })
                    .await?;
            let Reply::Paper { version, fanout, delivery } = reply else { return Err(unexpected(reply)) };
            let all = delivered(&delivery, &channel)?;
            say(format!("non-paper {:?} v{version} ({bytes} bytes)", peer(&title)))?;
            say(fanout_line(&channel, &fanout, all))
        }
        NonpaperCmd::List { channel } => {
            let reply = once(home, Command::Nonpapers { channel: channel.clone() }).await?;
            let Reply::Papers { papers } = reply else { return Err(unexpected(reply)) };
            if papers.is_empty() {
                return say(format!("no non-papers in {} yet", peer(&channel)));
            }
            for p in papers {
                say(format!(
                    "{:?} v{}  {} bytes  {}  sha256 {}",
                    peer(&p.title),
                    p.version,
                    p.bytes,
                    time(p.at),
                    &p.sha256[..16]
                ))?;
            }
            Ok(())
        }
        NonpaperCmd::Show { channel, title, version } => {
            let reply = once(home, Command::Nonpaper { channel, title: title.clone(), version }).await?;
            let Reply::PaperText { version: v, text } = reply else { return Err(unexpected(reply)) };
            eprintln!("non-paper {:?} v{v} (no attribution)", peer(&title));
            say(text.trim_end_matches('\n'))
        }
        NonpaperCmd::Diff { channel, title, v1, v2 } => {
            let door = door(home).await?;
            let text = |version| Command::Nonpaper {
                channel: channel.clone(),
                title: title.clone(),
                version: Some(version),
            };
            let (Reply::PaperText { text: old, .. }, Reply::PaperText { text: new, .. }) =
                (ask(&door, text(v1)).await?, ask(&door, text(v2)).await?)
            else {
                bail!("the engine answered something unexpected");
            };
            let diff = similar::TextDiff::from_lines(&old, &new);
            let unified = diff
                .unified_diff()
                .context_radius(2)
                .header(&format!("{title} v{v1}"), &format!("{title} v{v2}"))
                .to_string();
            if unified.is_empty() {
                return say(format!("v{v1} and v{v2} of {:?} are identical", peer(&title)));
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
    let command = Command::Propose {
        channel: channel.to_owned(),
        title: title.clone(),
        text,
        signatories: signatories.to_vec(),
    };
    let reply = once(home, command).await?;
    let Reply::Proposal { proposal: view, delivery } = reply else { return Err(unexpected(reply)) };
    delivered(&delivery, channel)?;
    say(format!("proposed {:?}: text sha256 {}", peer(&title), view.id))?;
    say(format!(
        "each of {} ratifies it with `backchannel ratify {channel} {}`",
        view.signatories.join(", "),
        &view.id[..12]
    ))
}

pub async fn ratify(home: &Path, channel: &str, proposal: &str) -> Result<()> {
    let reply =
        once(home, Command::Ratify { channel: channel.to_owned(), proposal: proposal.to_owned() }).await?;
    let Reply::Proposal { proposal: view, delivery } = reply else { return Err(unexpected(reply)) };
    delivered(&delivery, channel)?;
    say(format!("you ratified {:?} (sha256 {})", peer(&view.title), view.id))?;
    match view.missing.as_slice() {
        [] => say(format!(
            "every signatory has ratified; export it with `backchannel agreement export {channel} {} DIR`",
            &view.id[..12]
        )),
        missing => say(format!("still to ratify: {}", missing.join(", "))),
    }
}

pub async fn status(home: &Path, channel: Option<&str>) -> Result<()> {
    let door = door(home).await?;
    let channels: Vec<String> = match channel {
        Some(c) => vec![c.to_owned()],
        None => match ask(&door, Command::Channels).await? {
            Reply::Channels { channels } => channels.into_iter().map(|c| c.name).collect(),
            other => return Err(unexpected(other)),
        },
    };
    for name in channels {
        let reply = ask(&door, Command::Proposals { channel: name.clone() }).await?;
        let Reply::Proposals { proposals } = reply else { return Err(unexpected(reply)) };
        for (i, p) in proposals.iter().enumerate() {
            let state = if p.missing.is_empty() {
                "RATIFIED".to_owned()
            } else {
                format!("awaiting {}", p.missing.join(", "))
            };
            say(format!("{} #{} {:?}  {}  {state}", peer(&name), i + 1, peer(&p.title), &p.id[..12]))?;
            if !p.ratified_by.is_empty() {
                say(format!(
                    "    ratified by {}",
                    p.ratified_by.iter().map(|r| peer(r)).collect::<Vec<_>>().join(", ")
                ))?;
            }
            if !p.stale.is_empty() {
                say(format!(
                    "    ratified with an earlier version of Backchannel (the text only, no signed statement); \
                     to count, ratify again: {}",
                    p.stale.iter().map(|r| peer(r)).collect::<Vec<_>>().join(", ")
                ))?;
            }
            if !p.unconfirmed.is_empty() {
                say(format!(
                    "    signed with a key known only through the intermediary (not counted): {}",
                    p.unconfirmed.iter().map(|r| peer(r)).collect::<Vec<_>>().join(", ")
                ))?;
            }
        }
    }
    Ok(())
}

pub async fn export(home: &Path, channel: &str, proposal: &str, dir: &Path) -> Result<()> {
    let reply =
        once(home, Command::Agreement { channel: channel.to_owned(), proposal: proposal.to_owned() }).await?;
    let Reply::Agreement { files } = reply else { return Err(unexpected(reply)) };
    let agreement =
        Agreement::from_files(|name| files.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone()))
            .context("the engine's export does not read back")?;
    let verified = agreement.verify();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, bytes) in &files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    say(format!("wrote {:?} to {}", peer(&agreement.title), dir.display()))?;
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
pub async fn verify(home: Option<PathBuf>, dir: &Path, contacts: bool) -> Result<()> {
    let agreement = read_export(dir)?;
    let verified = agreement.verify().with_context(|| format!("{} does NOT verify", dir.display()))?;
    say(verified.to_string().trim_end())?;
    if !contacts {
        return say("compare each key fingerprint with its signatory out of band, or run with --contacts");
    }
    check_against_contacts(&crate::config::home(home)?, &verified).await
}

async fn check_against_contacts(home: &Path, verified: &VerifiedAgreement) -> Result<()> {
    let door = door(home).await?;
    let (Reply::Card { card: me }, Reply::SealKeys { keys: known }) =
        (ask(&door, Command::Whoami).await?, ask(&door, Command::SealKeys).await?)
    else {
        bail!("the engine answered something unexpected");
    };
    for s in &verified.signatories {
        let ours = s.seal_key == me.seal_key;
        let (name, side) = (peer(&s.name), peer(&s.side));
        match known.iter().find(|(_, key)| key == &s.seal_key) {
            _ if ours => say(format!("  {name} ({side}): your own seal"))?,
            Some((who, _)) => {
                say(format!("  {name} ({side}): matches the seal of your contact {}", peer(who)))?
            }
            None => bail!(
                "{name} ({side})'s seal {} is not the seal of any of your contacts",
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
        // Only plain files: a link could point anywhere, a device or a FIFO could read forever.
        match std::fs::symlink_metadata(&path) {
            Ok(m) if !m.file_type().is_file() => {
                problem = Some(format!("{} is not a plain file", path.display()));
                None
            }
            Ok(m) if m.len() > MAX_EXPORT_FILE => {
                problem = Some(format!("{} is larger than {MAX_EXPORT_FILE} bytes", path.display()));
                None
            }
            Ok(_) => read_at_most(&path, MAX_EXPORT_FILE),
            Err(_) => None,
        }
    });
    match (agreement, problem) {
        (_, Some(p)) => bail!("{} does NOT verify: {p}", dir.display()),
        (a, None) => a.with_context(|| format!("{} does NOT verify", dir.display())),
    }
}

/// A file's bytes, reading no more than `max` (a file that grows while read stops there).
fn read_at_most(path: &Path, max: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path).ok()?.take(max + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= max).then_some(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;
    use backchannel_proto::agreement::MANIFEST_FILE;

    /// L7: `agreement verify` reads plain files only. A manifest that is a symbolic link (to
    /// a file it would otherwise read), a FIFO (which would block the read) or a device is
    /// refused by name, before anything is opened.
    #[test]
    fn an_export_folder_with_a_link_fifo_or_device_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere.json");
        std::fs::write(&elsewhere, b"{}").unwrap();
        let folder = dir.path().join("export");
        std::fs::create_dir(&folder).unwrap();
        let manifest = folder.join(MANIFEST_FILE);
        let refused = |why: &str| {
            let err = read_export(&folder).map(drop).expect_err("refused").to_string();
            assert!(err.contains("is not a plain file") && err.contains(MANIFEST_FILE), "{why}: {err}");
        };
        std::os::unix::fs::symlink(&elsewhere, &manifest).unwrap();
        refused("a symbolic link");
        std::fs::remove_file(&manifest).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&manifest).status().unwrap();
        assert!(made.success(), "mkfifo");
        refused("a FIFO");
        std::fs::remove_file(&manifest).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &manifest).unwrap();
        refused("a device behind a link");
        std::fs::remove_file(&manifest).unwrap();
        std::fs::write(&manifest, b"{}").unwrap();
        let err = read_export(&folder).map(drop).expect_err("an empty manifest is no agreement").to_string();
        assert!(!err.contains("is not a plain file"), "a plain file is read: {err}");
    }
}
