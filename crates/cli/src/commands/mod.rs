//! One function per command: parse what the user typed into an engine [`Command`], hand it to
//! the party's engine (this process's, or the one already running on the home), and put the
//! answer into words.

mod channel;
mod documents;
mod outbox;
mod party;
mod probe;
mod relay;
mod talk;
mod ui;

use std::io::Write;
use std::path::Path;

use anyhow::{Result, anyhow};
use backchannel_client::{ClientError, Command, Delivery, Door, EngineConfig, Reply};

use crate::args::{AgreementCmd, Cli, Command as Cmd, PhaseCmd};
use crate::{config, render};

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Relay(args) => relay::run(args).await,
        Cmd::Agreement(AgreementCmd::Verify { dir, contacts }) => {
            documents::verify(cli.home, &dir, contacts).await
        }
        Cmd::Demo => crate::demo::run().await,
        Cmd::Init { name, side } => party::init(&config::home(cli.home)?, &name, &side),
        command => {
            let home = config::home(cli.home)?;
            party_command(command, &home).await
        }
    }
}

async fn party_command(command: Cmd, home: &Path) -> Result<()> {
    match command {
        Cmd::Whoami { json } => party::whoami(home, json).await,
        Cmd::Contacts { json } => party::contacts(home, json).await,
        Cmd::Verify { name } => party::verify(home, &name).await,
        Cmd::Invite { relay, expires } => party::invite(home, &relay, &expires).await,
        Cmd::Accept { text, relay } => party::accept(home, &text, &relay).await,
        Cmd::Contact { name, cmd } => party::contact_routes(home, &name, cmd).await,
        Cmd::Send { name, to, text, file } => talk::send(home, &name, &to, text, file).await,
        Cmd::Sync => talk::sync(home).await,
        Cmd::Read { name, json } => talk::read(home, &name, json).await,
        Cmd::Watch { name } => talk::watch(home, name.as_deref()).await,
        Cmd::Channel(cmd) => channel::run(home, cmd).await,
        Cmd::Forward { channel, entry, to, rephrase } => {
            channel::forward(home, &channel, entry, &to, rephrase).await
        }
        Cmd::Phase(PhaseCmd::Propose { channel, phase }) => {
            channel::phase(home, &channel, Some(&phase)).await
        }
        Cmd::Phase(PhaseCmd::Consent { channel }) => channel::phase(home, &channel, None).await,
        Cmd::Nonpaper(cmd) => documents::nonpaper(home, cmd).await,
        Cmd::Propose { channel, file, signatories, title } => {
            documents::propose(home, &channel, &file, &signatories, title).await
        }
        Cmd::Ratify { channel, proposal } => documents::ratify(home, &channel, &proposal).await,
        Cmd::Agreement(AgreementCmd::Status { channel }) => documents::status(home, channel.as_deref()).await,
        Cmd::Agreement(AgreementCmd::Export { channel, proposal, dir }) => {
            documents::export(home, &channel, &proposal, &dir).await
        }
        Cmd::Probe(cmd) => probe::run(home, cmd).await,
        Cmd::Outbox { cmd } => outbox::run(home, cmd).await,
        Cmd::Relays(cmd) => outbox::relays(home, cmd).await,
        Cmd::Ui { listen } => ui::run(home, listen).await,
        Cmd::Relay(_) | Cmd::Demo | Cmd::Init { .. } | Cmd::Agreement(AgreementCmd::Verify { .. }) => Ok(()),
    }
}

/// The home's engine: this process's, or the running one's.
pub async fn door(home: &Path) -> Result<Door> {
    Door::open(home, config::passphrase(false)?, EngineConfig::default()).await.map_err(fail)
}

/// One command through the door, its error put into words.
pub async fn ask(door: &Door, command: Command) -> Result<Reply> {
    door.execute(command).await.map_err(fail)
}

/// Opens the door and asks one command.
pub async fn once(home: &Path, command: Command) -> Result<Reply> {
    ask(&door(home).await?, command).await
}

/// An engine error as the user reads it.
pub fn fail(e: ClientError) -> anyhow::Error {
    anyhow!(render::error(&e))
}

/// A reply that does not fit the command (a bug in the engine or a version mismatch).
pub fn unexpected(reply: Reply) -> anyhow::Error {
    anyhow!("the engine answered something unexpected: {reply:?}")
}

/// Prints one line (a closed pipe ends the program quietly instead of panicking).
pub fn say(line: impl std::fmt::Display) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    Ok(())
}

pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<()> {
    say(serde_json::to_string_pretty(value)?)
}

/// Says plainly what could not be delivered yet (it stays queued, nothing lost). Returns
/// whether everything went.
pub fn delivered(delivery: &Delivery, name: &str) -> Result<bool> {
    if let Some(report) = &delivery.caught_up {
        report.unreachable.iter().for_each(|w| eprintln!("warning: {w}"));
    }
    let flushed = &delivery.flush;
    if flushed.refused > 0 {
        anyhow::bail!(
            "not delivered: the relay no longer has a queue {} needs (expired or deleted); exchange a new invitation",
            render::peer(name)
        );
    }
    if flushed.still_queued > 0 || flushed.held > 0 {
        flushed.unreachable.iter().for_each(|w| eprintln!("warning: {w}"));
        if flushed.held > 0 {
            eprintln!(
                "held: {} message(s) a relay refused wait for you; see `backchannel outbox`",
                flushed.held
            );
        }
        if flushed.still_queued > 0 {
            eprintln!(
                "queued: {} message(s) wait in the outbox for the next `backchannel sync`",
                flushed.still_queued
            );
        }
    }
    Ok(delivery.complete())
}

/// Prints what a command took in before acting (a probe's acceptance, a query).
pub fn print_caught_up(delivery: &Delivery) -> Result<()> {
    if let Some(report) = &delivery.caught_up {
        for e in &report.events {
            say(render::event(e))?;
        }
    }
    Ok(())
}
