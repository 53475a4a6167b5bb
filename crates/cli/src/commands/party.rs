//! `init`, `whoami`, `contacts`, `verify`, `invite`, `accept`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use backchannel_client::Party;
use backchannel_wire::{RelayAddress, hex_encode};

use crate::config;
use crate::output::{contact, json, say};

pub fn open(home: &Path) -> Result<Party> {
    Ok(Party::open(home, &config::passphrase(false)?)?)
}

pub fn init(home: &Path, name: &str, side: &str) -> Result<()> {
    let mut party = Party::init(home, &config::passphrase(true)?, name, side)?;
    let me = party.me()?;
    say(format!("created {} ({}) in {}", me.name, me.side, home.display()))?;
    say(format!("fingerprint {}", me.fingerprint()))
}

pub fn whoami(home: &Path, as_json: bool) -> Result<()> {
    let me = open(home)?.me()?;
    if as_json {
        return json(&serde_json::json!({
            "name": me.name,
            "side": me.side,
            "fingerprint": me.fingerprint(),
            "identity_key": hex_encode(&me.identity_key),
            "seal_key": hex_encode(&me.seal_key),
        }));
    }
    say(format!("name         {}", me.name))?;
    say(format!("side         {}", me.side))?;
    say(format!("fingerprint  {}", me.fingerprint()))
}

pub fn contacts(home: &Path, as_json: bool) -> Result<()> {
    let all = open(home)?.contacts()?;
    if as_json {
        return json(&all);
    }
    if all.is_empty() {
        return say("no contacts yet: `backchannel invite --relay ADDRESS`, or accept an invitation");
    }
    all.iter().try_for_each(|c| say(contact(c)))
}

pub fn verify(home: &Path, name: &str) -> Result<()> {
    let c = open(home)?.verify(name)?;
    say(format!("marked verified: {}", contact(&c)))
}

pub async fn invite(home: &Path, relay: &str, expires: &str) -> Result<()> {
    let relay: RelayAddress = relay.parse().context("--relay")?;
    let ttl = config::duration(expires)?;
    let text = open(home)?.invite(&relay, ttl.as_secs()).await?;
    eprintln!("one-time invitation, valid for {expires}; pass it to one person over a channel you trust:");
    say(text)
}

pub async fn accept(home: &Path, text: &str) -> Result<()> {
    let text = if text == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .context("cannot read the invitation from standard input")?;
        buf
    } else {
        text.to_owned()
    };
    let view = open(home)?.accept(&text).await?;
    say(format!("new contact: {}", contact(&view)))?;
    say("compare the safety number with them out of band, then run `backchannel verify NAME`")
}
