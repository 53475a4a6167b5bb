//! One function per command; each opens what it needs and prints what the user asked for.

mod channel;
mod documents;
mod party;
mod probe;
mod relay;
mod talk;

use anyhow::Result;

use crate::args::{AgreementCmd, Cli, Command, PhaseCmd};
use crate::config;

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Relay(args) => relay::run(args).await,
        Command::Agreement(AgreementCmd::Verify { dir, contacts }) => {
            documents::verify(cli.home, &dir, contacts)
        }
        Command::Demo => crate::demo::run().await,
        command => {
            let home = config::home(cli.home)?;
            party_command(command, home).await
        }
    }
}

async fn party_command(command: Command, home: std::path::PathBuf) -> Result<()> {
    match command {
        Command::Init { name, side } => party::init(&home, &name, &side),
        Command::Whoami { json } => party::whoami(&home, json),
        Command::Contacts { json } => party::contacts(&home, json),
        Command::Verify { name } => party::verify(&home, &name),
        Command::Invite { relay, expires } => party::invite(&home, &relay, &expires).await,
        Command::Accept { text } => party::accept(&home, &text).await,
        Command::Send { name, to, text, file } => talk::send(&home, &name, &to, text, file).await,
        Command::Sync => talk::sync(&home).await,
        Command::Read { name, json } => talk::read(&home, &name, json),
        Command::Watch { name } => talk::watch(&home, name.as_deref()).await,
        Command::Channel(cmd) => channel::run(&home, cmd).await,
        Command::Forward { channel, entry, to, rephrase } => {
            channel::forward(&home, &channel, entry, &to, rephrase.as_deref()).await
        }
        Command::Phase(PhaseCmd::Propose { channel, phase }) => {
            channel::phase(&home, &channel, Some(&phase)).await
        }
        Command::Phase(PhaseCmd::Consent { channel }) => channel::phase(&home, &channel, None).await,
        Command::Nonpaper(cmd) => documents::nonpaper(&home, cmd).await,
        Command::Propose { channel, file, signatories, title } => {
            documents::propose(&home, &channel, &file, &signatories, title).await
        }
        Command::Ratify { channel, proposal } => documents::ratify(&home, &channel, &proposal).await,
        Command::Agreement(AgreementCmd::Status { channel }) => documents::status(&home, channel.as_deref()),
        Command::Agreement(AgreementCmd::Export { channel, proposal, dir }) => {
            documents::export(&home, &channel, &proposal, &dir)
        }
        Command::Probe(cmd) => probe::run(&home, cmd).await,
        Command::Relay(_) | Command::Demo | Command::Agreement(AgreementCmd::Verify { .. }) => Ok(()),
    }
}
