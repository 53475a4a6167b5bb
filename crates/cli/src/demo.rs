//! `backchannel demo`: a whole back channel on this machine, narrated. A neutral host starts a
//! relay; Alice (Delegation A) invites Bao (Delegation B); they compare safety numbers and
//! exchange notes; then we look at everything the host holds and search it for what it must
//! never see.

use std::path::Path;

use anyhow::{Result, bail};
use backchannel_client::{Event, Party, Passphrase};
use backchannel_proto::identity::Card;
use backchannel_relay::{RelayOptions, RunningRelay};
use backchannel_wire::hex_encode;

use crate::output::{entry, say};

const NOTES_A: [&str; 2] = [
    "Our principals could consider a phased withdrawal, if the first phase is verifiable.",
    "Verification by a neutral party would be acceptable to us in principle.",
];
const NOTE_B: &str = "Phasing is of interest. Who would verify, and on what timetable?";
const LAST_NOTE: &str = "Let us both take this back to our capitals before Thursday.";

pub async fn run() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    say("== A neutral host starts a relay (embedded store, TLS with a pinned certificate)")?;
    let host_dir = tmp.path().join("host");
    let relay = backchannel_relay::start(RelayOptions::new("127.0.0.1:0".parse()?, &host_dir)).await?;
    say(format!("   relay address: {}", relay.address()))?;
    let outcome = story(tmp.path(), &relay, &host_dir).await;
    relay.shutdown().await;
    outcome
}

async fn story(dir: &Path, relay: &RunningRelay, host_dir: &Path) -> Result<()> {
    say("\n== Two parties create their identities (each store encrypted under its own passphrase)")?;
    let mut alice = Party::init(&dir.join("alice"), &demo_passphrase(), "Alice", "Delegation A")?;
    let mut bao = Party::init(&dir.join("bao"), &demo_passphrase(), "Bao", "Delegation B")?;
    let (a, b) = (alice.me()?, bao.me()?);
    say(format!("   {} ({}), fingerprint {}", a.name, a.side, a.fingerprint()))?;
    say(format!("   {} ({}), fingerprint {}", b.name, b.side, b.fingerprint()))?;

    say("\n== Alice makes a one-time invitation and passes it to Bao out of band")?;
    let invitation = alice.invite(relay.address(), 24 * 3600).await?;
    say(format!("   {}… ({} characters)", &invitation[..60.min(invitation.len())], invitation.len()))?;
    let alice_at_bao = bao.accept(&invitation).await?;
    say(format!("   Bao accepted; he sees {} ({})", alice_at_bao.name, alice_at_bao.side))?;
    show(&alice.sync().await?.events)?;

    say("\n== They compare safety numbers (in person or by phone)")?;
    let bao_at_alice = alice.contacts()?.into_iter().find(|c| c.name == "Bao");
    let Some(bao_at_alice) = bao_at_alice else { bail!("Alice did not receive Bao's answer") };
    say(format!("   Alice sees {}", bao_at_alice.safety_number))?;
    say(format!("   Bao   sees {}", alice_at_bao.safety_number))?;
    if bao_at_alice.safety_number != alice_at_bao.safety_number {
        bail!("safety numbers differ: someone is in the middle");
    }
    alice.verify("Bao")?;
    bao.verify("Alice")?;
    say("   they match; both mark each other verified")?;

    say("\n== A short exchange of notes (deniable: authenticated, never signed)")?;
    for note in NOTES_A {
        alice.queue_note("Bao", note)?;
    }
    alice.flush_outbox().await?;
    show(&bao.sync().await?.events)?;
    bao.queue_note("Alice", NOTE_B)?;
    bao.flush_outbox().await?;
    show(&alice.sync().await?.events)?;
    alice.queue_note("Bao", LAST_NOTE)?;
    alice.flush_outbox().await?;

    say("\n== What the host holds right now (Alice's last note is not yet fetched)")?;
    inspect_host(relay, host_dir, &[&a, &b], &[NOTES_A[0], NOTES_A[1], NOTE_B, LAST_NOTE]).await?;

    say("\n== Bao fetches the last note; his view of the conversation:")?;
    bao.sync().await?;
    for e in bao.read("Alice")? {
        say(format!("   {}", entry(&e)))?;
    }
    say("\nDone: the host carried every note and could read none of them.")
}

fn show(events: &[Event]) -> Result<()> {
    events.iter().try_for_each(|e| say(format!("   {}", crate::output::event(e))))
}

/// Counts the host's opaque blocks, then searches every byte it stored for the notes, the
/// names, the sides and the identity keys (raw, hex and base64).
async fn inspect_host(relay: &RunningRelay, host_dir: &Path, cards: &[&Card], notes: &[&str]) -> Result<()> {
    let stats = relay.stats().await?;
    say(format!(
        "   {} queue(s), {} opaque block(s) of {} bytes each ({} bytes in all), all ciphertext",
        stats.queues,
        stats.blocks,
        backchannel_wire::DEFAULT_BLOCK_SIZE,
        stats.bytes
    ))?;
    let haystack = read_all_files(host_dir)?;
    let mut needles: Vec<(String, Vec<u8>)> =
        notes.iter().map(|n| (format!("note {n:?}"), n.as_bytes().to_vec())).collect();
    for card in cards {
        needles.push((format!("name {:?}", card.name), card.name.as_bytes().to_vec()));
        needles.push((format!("side {:?}", card.side), card.side.as_bytes().to_vec()));
        for (what, key) in [("identity key", card.identity_key), ("seal key", card.seal_key)] {
            needles.push((format!("{} {what} (raw)", card.name), key.to_vec()));
            needles.push((format!("{} {what} (hex)", card.name), hex_encode(&key).into_bytes()));
        }
    }
    let found: Vec<&String> = needles
        .iter()
        .filter(|(_, n)| haystack.windows(n.len()).any(|w| w == n.as_slice()))
        .map(|(w, _)| w)
        .collect();
    say(format!("   searched {} bytes of the host's files for {} secrets:", haystack.len(), needles.len()))?;
    if !found.is_empty() {
        bail!("the host's files contain: {found:?}");
    }
    say("   found none of the notes, names, sides or identity keys")
}

fn read_all_files(dir: &Path) -> Result<Vec<u8>> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            all.extend(std::fs::read(&path)?);
        }
    }
    Ok(all)
}

fn demo_passphrase() -> Passphrase {
    Passphrase::new(hex_encode(&backchannel_proto::crypto::random_array::<16>()))
}
