//! One function per command; each opens what it needs and prints what the user asked for.

mod party;
mod relay;
mod talk;

use anyhow::Result;

use crate::args::{Cli, Command};
use crate::config;

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Relay(args) => relay::run(args).await,
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
        Command::Send { name, text, file } => talk::send(&home, &name, text, file).await,
        Command::Sync => talk::sync(&home).await,
        Command::Read { name, json } => talk::read(&home, &name, json),
        Command::Watch => talk::watch(&home).await,
        Command::Relay(_) | Command::Demo => Ok(()),
    }
}
