//! `init`, `whoami`, `contacts`, `verify`, `invite`, `accept`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use backchannel_client::{Command, Engine, EngineConfig, Reply};
use backchannel_wire::{RelayAddress, hex_encode};

use super::{delivered, fail, json, once, say, unexpected};
use crate::args::ContactCmd;
use crate::config;
use crate::render::{contact, peer, route};

pub fn init(home: &Path, name: &str, side: &str) -> Result<()> {
    let engine =
        Engine::init(home, &config::passphrase(true)?, name, side, EngineConfig::default()).map_err(fail)?;
    let me = engine.me();
    say(format!("created {} ({}) in {}", peer(&me.name), peer(&me.side), home.display()))?;
    say(format!("fingerprint {}", me.fingerprint()))
}

pub async fn whoami(home: &Path, as_json: bool) -> Result<()> {
    let Reply::Card { card: me } = once(home, Command::Whoami).await? else { return Err(unexpected_reply()) };
    if as_json {
        return json(&serde_json::json!({
            "name": me.name,
            "side": me.side,
            "fingerprint": me.fingerprint(),
            "identity_key": hex_encode(&me.identity_key),
            "seal_key": hex_encode(&me.seal_key),
        }));
    }
    say(format!("name         {}", peer(&me.name)))?;
    say(format!("side         {}", peer(&me.side)))?;
    say(format!("fingerprint  {}", me.fingerprint()))
}

fn unexpected_reply() -> anyhow::Error {
    unexpected(Reply::Done)
}

pub async fn contacts(home: &Path, as_json: bool) -> Result<()> {
    let reply = once(home, Command::Contacts).await?;
    let Reply::Contacts { contacts: all } = reply else { return Err(unexpected(reply)) };
    if as_json {
        return json(&all);
    }
    if all.is_empty() {
        return say("no contacts yet: `backchannel invite --relay ADDRESS`, or accept an invitation");
    }
    all.iter().try_for_each(|c| say(contact(c)))
}

pub async fn verify(home: &Path, name: &str) -> Result<()> {
    let reply = once(home, Command::Verify { name: name.to_owned() }).await?;
    let Reply::Contact { contact: c, .. } = reply else { return Err(unexpected(reply)) };
    say(format!("marked verified: {}", contact(&c)))
}

fn relays(given: &[String]) -> Result<Vec<RelayAddress>> {
    given.iter().map(|r| r.parse().with_context(|| format!("--relay {r}"))).collect()
}

pub async fn invite(home: &Path, relay: &[String], expires: &str) -> Result<()> {
    let relays = relays(relay)?;
    let ttl = config::duration(expires)?;
    let reply = once(home, Command::Invite { relays, ttl_secs: ttl.as_secs() }).await?;
    let Reply::Invitation { text } = reply else { return Err(unexpected(reply)) };
    eprintln!("one-time invitation, valid for {expires}; pass it to one person over a channel you trust:");
    say(text)
}

pub async fn accept(home: &Path, text: &str, relay: &[String]) -> Result<()> {
    let relays = relays(relay)?;
    let text = if text == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .context("cannot read the invitation from standard input")?;
        buf
    } else {
        text.to_owned()
    };
    let reply = once(home, Command::Accept { text, relays }).await?;
    let Reply::Contact { contact: view, delivery } = reply else { return Err(unexpected(reply)) };
    if let Some(d) = &delivery {
        // The Hello waits in the outbox if the relay is down; `sync` sends it.
        let _ = delivered(d, &view.name);
    }
    say(format!("new contact: {}", contact(&view)))?;
    say("compare the safety number with them out of band, then run `backchannel verify NAME`")
}

/// `contact NAME relays | add-relay ADDRESS | drop-relay ADDRESS`.
pub async fn contact_routes(home: &Path, name: &str, cmd: ContactCmd) -> Result<()> {
    let name = name.to_owned();
    let (command, as_json, done) = match cmd {
        ContactCmd::Relays { json } => (Command::ContactRoutes { name }, json, None),
        ContactCmd::AddRelay { relay } => {
            let relay: RelayAddress = relay.parse().context("ADDRESS")?;
            let said = format!("added host {relay}; the contact hears of it over your session");
            (Command::AddRelay { name, relay }, false, Some(said))
        }
        ContactCmd::DropRelay { relay } => {
            let relay: RelayAddress = relay.parse().context("ADDRESS")?;
            let said = format!("leaving host {relay}; its inbox is deleted once the contact confirms");
            (Command::DropRelay { name, relay }, false, Some(said))
        }
    };
    let reply = once(home, command).await?;
    let Reply::Routes { routes } = reply else { return Err(unexpected(reply)) };
    if as_json {
        return json(&routes);
    }
    if let Some(said) = done {
        say(said)?;
    }
    routes.iter().try_for_each(|r| say(route(r)))
}
