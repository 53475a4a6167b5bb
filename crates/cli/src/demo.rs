//! `backchannel demo`: a whole back channel on this machine, narrated. A host in a neutral
//! place starts a relay; an intermediary (Omar, for Oman) knows two sides that have never met.
//! He shuttles an opening between them; they move to a direct channel, where a non-paper goes
//! from v1 to v2; both sides ratify the framework, which is exported and verified (with
//! ssh-keygen too, where present). We search everything the host holds for what it must never
//! see. Then a crisis: the sides open a hotline over two hosts, one host goes dark in the
//! middle of the exchange, both sides see it, and nothing is lost. Last, what each party saw.

use std::path::Path;

use anyhow::{Context, Result, bail};
use backchannel_client::{
    Asker, DeliveryStatus, Engine, EngineConfig, Hotline, Mode, Passphrase, Phase, ProbeInputSpec,
    ProbeRequest, ProbeResult, ProbeSpec, ProbeStatus, Role,
};
use backchannel_proto::identity::Card;
use backchannel_relay::{RelayOptions, RunningRelay};
use backchannel_wire::hex_encode;

use crate::commands::say;
use crate::render::{describe, entry, event, probe_detail, route};

const OPENING: &str = "Our principals could consider a phased withdrawal, if the first phase is verifiable.";
const OPENING_AS_RELAYED: &str =
    "Delegation A signals openness to a phased withdrawal, provided the first phase can be verified.";
const ANSWER: &str = "Phasing is of interest. Who would verify, and on what timetable?";
const DIRECT_NOTE: &str = "Thank you for carrying this. Shall we talk directly about the timetable?";
const CRISIS_ALERT: &str =
    "Reports of shelling near the line of contact. Not ours. Can you confirm on your side?";
const CRISIS_ANSWER: &str =
    "Not ours either. Our forces stand down for 24 hours. Please keep this line open.";
const DRAFT_V1: &str = "Framework for talks\n\n1. Phased withdrawal over 12 months.\n2. Verification by a neutral monitor.\n3. Talks resume in Geneva.\n";
const DRAFT_V2: &str = "Framework for talks\n\n1. Phased withdrawal over 18 months.\n2. Verification by a neutral monitor, reporting to both sides.\n3. Talks resume in Geneva.\n";

struct Cast {
    alice: Engine,
    bao: Engine,
    omar: Engine,
}

impl Cast {
    /// Syncs everyone until nothing more arrives (introductions take a few rounds).
    async fn settle(&mut self) -> Result<()> {
        for _ in 0..6 {
            let mut quiet = true;
            for (name, p) in [("Alice", &mut self.alice), ("Bao", &mut self.bao), ("Omar", &mut self.omar)] {
                let report = p.sync_once().await?;
                quiet &= report.events.is_empty() && report.sent == 0;
                for e in &report.events {
                    say(format!("   [{name}] {}", event(e)))?;
                }
            }
            if quiet {
                return Ok(());
            }
        }
        Ok(())
    }
}

pub async fn run() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    say("== A host in a neutral place starts a relay (embedded store, TLS with a pinned certificate)")?;
    let host_dir = tmp.path().join("host");
    let relay = backchannel_relay::start(RelayOptions::new("127.0.0.1:0".parse()?, &host_dir)).await?;
    say(format!("   relay address: {}", relay.address()))?;
    let outcome = story(tmp.path(), &relay, &host_dir).await;
    relay.shutdown().await;
    outcome
}

async fn story(dir: &Path, relay: &RunningRelay, host_dir: &Path) -> Result<()> {
    say("\n== Two sides and an intermediary create their identities (each store encrypted)")?;
    let mut cast = Cast {
        alice: Engine::init(
            &dir.join("alice"),
            &demo_passphrase(),
            "Alice",
            "Delegation A",
            EngineConfig::default(),
        )?,
        bao: Engine::init(
            &dir.join("bao"),
            &demo_passphrase(),
            "Bao",
            "Delegation B",
            EngineConfig::default(),
        )?,
        omar: Engine::init(&dir.join("omar"), &demo_passphrase(), "Omar", "Oman", EngineConfig::default())?,
    };
    let cards = [cast.alice.me(), cast.bao.me(), cast.omar.me()];
    for c in &cards {
        say(format!("   {} ({}), fingerprint {}", c.name, c.side, c.fingerprint()))?;
    }

    say("\n== Omar knows both sides; the sides have never met. Each side accepts his invitation")?;
    for side in ["Alice", "Bao"] {
        let invitation = cast.omar.invite(std::slice::from_ref(relay.address()), 24 * 3600).await?;
        let party = if side == "Alice" { &mut cast.alice } else { &mut cast.bao };
        let (omar, _) = party.accept(&invitation, &[]).await?;
        party.verify("Omar")?;
        say(format!("   {side} accepted; safety number with Omar {}", omar.safety_number))?;
    }
    cast.settle().await?;
    cast.omar.verify("Alice")?;
    cast.omar.verify("Bao")?;

    shuttle(&mut cast).await?;
    direct(&mut cast).await?;
    probe(&mut cast).await?;
    drafting(&mut cast).await?;
    ratification(&mut cast, dir).await?;

    say("\n== What the host holds right now (one last note not yet fetched)")?;
    cast.alice.send("framework", "See you in Geneva.", &[]).await?;
    let secrets =
        [OPENING, OPENING_AS_RELAYED, ANSWER, DIRECT_NOTE, "See you in Geneva.", "Phased withdrawal"];
    inspect_host(relay, host_dir, &cards.iter().collect::<Vec<_>>(), &secrets).await?;
    cast.settle().await?;
    crisis(&mut cast, dir).await?;

    say("\n== What each party saw")?;
    for (who, party, channels) in [
        ("Alice", &cast.alice, &["muscat", "framework", "hotline"][..]),
        ("Bao", &cast.bao, &["muscat", "framework", "hotline"][..]),
        ("Omar", &cast.omar, &["muscat", "framework"][..]),
    ] {
        for channel in channels {
            say(format!("-- {who}, channel {channel}:"))?;
            for e in party.read(channel)? {
                say(format!("   {}", entry(&e)))?;
            }
        }
    }
    say("\nDone: the host carried everything and could read none of it; the agreement verifies anywhere.")
}

/// A crisis: a hotline over two hosts, and one of them goes dark mid-exchange.
async fn crisis(cast: &mut Cast, dir: &Path) -> Result<()> {
    say("\n== Crisis: Alice and Bao open a hotline, over a second host as well as the first")?;
    let second =
        backchannel_relay::start(RelayOptions::new("127.0.0.1:0".parse()?, dir.join("host-2"))).await?;
    say(format!("   a second host, elsewhere, starts a relay: {}", second.address()))?;
    cast.bao.allow_relay(second.address())?;
    cast.alice.add_relay("Bao", second.address()).await?;
    cast.settle().await?;
    cast.alice.channel_create("hotline", Mode::Direct, Role::Principal, None, Some(Hotline::DEFAULT))?;
    cast.alice.channel_add("hotline", "Bao", Role::Principal).await?;
    cast.settle().await?;
    say("   Alice's routes to and from Bao (every note goes over both hosts at once):")?;
    show_routes(&cast.alice, "Bao")?;
    cast.alice.send("hotline", CRISIS_ALERT, &[]).await?;
    cast.settle().await?;

    say("\n== The second host goes dark in the middle of the exchange")?;
    second.shutdown().await;
    cast.bao.send("hotline", CRISIS_ANSWER, &[]).await?;
    cast.settle().await?;
    say("   Bao's routes to and from Alice now:")?;
    show_routes(&cast.bao, "Alice")?;
    for (who, party, text) in [("Alice", &cast.alice, CRISIS_ALERT), ("Bao", &cast.bao, CRISIS_ANSWER)] {
        let mine = party
            .read("hotline")?
            .into_iter()
            .find(|e| matches!(&e.entry, backchannel_client::Entry::Note { text: t, .. } if t == text));
        let status = mine.and_then(|e| e.delivery).map(|d| d.status);
        if status != Some(DeliveryStatus::Delivered) {
            bail!("{who}'s hotline note was not confirmed: {status:?}");
        }
        say(format!("   {who}'s note: delivered (the other side's device confirmed it)"))?;
    }
    say("   nothing was lost: the first host carried everything while the second was dark")
}

fn show_routes(party: &Engine, contact: &str) -> Result<()> {
    for r in party.contact_routes(contact)? {
        say(format!("     {}", route(&r)))?;
    }
    Ok(())
}

/// Shuttle: the sides talk only to Omar; what he passes on is marked as relayed by him.
async fn shuttle(cast: &mut Cast) -> Result<()> {
    say("\n== Omar opens a shuttle channel: each side talks only to him")?;
    cast.omar.channel_create("muscat", Mode::Shuttle, Role::Intermediary, None, None)?;
    cast.omar.channel_add("muscat", "Alice", Role::Principal).await?;
    cast.omar.channel_add("muscat", "Bao", Role::Principal).await?;
    cast.settle().await?;
    say("\n== Alice makes an opening; only Omar receives it")?;
    cast.alice.send("muscat", OPENING, &[]).await?;
    cast.settle().await?;
    let n = entry_number(&cast.omar, "muscat", OPENING)?;
    say("\n== Omar passes it to Bao, in his own words (marked: relayed by Omar, rephrased)")?;
    cast.omar.forward("muscat", n, &["Bao".into()], Some(OPENING_AS_RELAYED)).await?;
    cast.settle().await?;
    cast.bao.send("muscat", ANSWER, &[]).await?;
    cast.settle().await?;
    let n = entry_number(&cast.omar, "muscat", ANSWER)?;
    say("\n== Omar passes Bao's answer to Alice as written")?;
    cast.omar.forward("muscat", n, &["Alice".into()], None).await?;
    cast.settle().await
}

/// The number `read` gives the note saying `wanted` (what `forward` takes).
fn entry_number(party: &Engine, channel: &str, wanted: &str) -> Result<usize> {
    let entries = party.read(channel)?;
    let at = entries
        .iter()
        .position(|e| matches!(&e.entry, backchannel_client::Entry::Note { text, .. } if text == wanted));
    at.map(|i| i + 1).with_context(|| format!("the note {wanted:?} did not arrive in {channel}"))
}

/// The sides move to a direct channel: Omar introduces them; they check safety numbers.
async fn direct(cast: &mut Cast) -> Result<()> {
    say("\n== The sides agree to talk directly: Omar opens a direct channel and introduces them")?;
    cast.omar.channel_create("framework", Mode::Direct, Role::Intermediary, None, None)?;
    cast.omar.channel_add("framework", "Alice", Role::Principal).await?;
    cast.omar.channel_add("framework", "Bao", Role::Principal).await?;
    cast.settle().await?;
    let at_alice = cast.alice.channel("framework")?;
    let at_bao = cast.bao.channel("framework")?;
    let number = |v: &backchannel_client::ChannelView, name: &str| {
        v.members.iter().find(|m| m.name == name).and_then(|m| m.safety_number.clone())
    };
    let (a, b) = (number(&at_alice, "Bao"), number(&at_bao, "Alice"));
    say(format!("   Alice sees Bao's safety number   {}", a.clone().unwrap_or_default()))?;
    say(format!("   Bao   sees Alice's safety number {}", b.clone().unwrap_or_default()))?;
    if a.is_none() || a != b {
        bail!("the sides' safety numbers differ: someone is in the middle");
    }
    if !at_alice.members.iter().all(|m| m.you || m.connected) {
        bail!("Alice is not yet connected to every member");
    }
    cast.alice.verify("Bao")?;
    cast.bao.verify("Alice")?;
    say("   they compare them by phone: they match; both mark each other verified")?;
    cast.alice.send("framework", DIRECT_NOTE, &[]).await?;
    cast.settle().await
}

/// Before anything is drafted, the sides learn whether their red lines on the timetable
/// overlap: a private probe tells both that, and nothing more (not even Omar takes part).
async fn probe(cast: &mut Cast) -> Result<()> {
    say(
        "\n== Before Omar drafts, the sides probe privately: is there a zone of agreement on the timetable?",
    )?;
    let spec = ProbeSpec::Single {
        issue: "months until withdrawal completes".into(),
        max: 120,
        gives: "them".into(),
        takes: "me".into(),
    };
    let req = ProbeRequest { with: "Bao".into(), spec, asker: Asker::Me, budget: None };
    let (view, _) = cast.alice.probe_propose("framework", &req).await?;
    let id = view.id[..8].to_owned();
    say(format!("   Alice proposes probe {id}: {}", describe(&view.terms)))?;
    cast.alice.probe_input("framework", &id, &ProbeInputSpec::Value(12)).await?;
    cast.settle().await?;
    cast.bao.probe_accept("framework", &id).await?;
    cast.bao.probe_input("framework", &id, &ProbeInputSpec::Value(18)).await?;
    say(
        "   each enters a red line on this machine only (Alice needs at least 12 months, Bao can give at most 18);",
    )?;
    say("   the numbers never leave their stores: three messages of blinded points go through the relay")?;
    cast.settle().await?;
    for (who, party) in [("Alice", &cast.alice), ("Bao", &cast.bao)] {
        let log = party.probes("framework")?;
        let p = log.probes.iter().find(|p| p.id.starts_with(&id)).context("the probe is missing")?;
        say(format!(
            "   {who}'s probe log: {id} {}: {} ({} bytes)",
            p.status.name(),
            probe_detail(p, "framework"),
            p.bytes
        ))?;
        if !matches!(p.status, ProbeStatus::Done { result: ProbeResult::Zone { non_empty: true } }) {
            bail!("{who} did not learn that the zone of agreement is non-empty");
        }
    }
    Ok(())
}

async fn drafting(cast: &mut Cast) -> Result<()> {
    say("\n== Alice proposes moving to drafting; Bao consents; the phase moves")?;
    cast.alice.phase_consent("framework", Some(Phase::Drafting)).await?;
    cast.settle().await?;
    cast.bao.phase_consent("framework", None).await?;
    cast.settle().await?;
    let phase = cast.alice.channel("framework")?.phase;
    say(format!("   framework is now in phase {}", phase.name()))?;
    if phase != Phase::Drafting {
        bail!("the phase did not move");
    }
    say("\n== Omar circulates a non-paper (unattributed); after comments, a second version")?;
    cast.omar.nonpaper_put("framework", "Framework", DRAFT_V1).await?;
    cast.settle().await?;
    cast.omar.nonpaper_put("framework", "Framework", DRAFT_V2).await?;
    cast.settle().await?;
    let (_, v1) = cast.bao.nonpaper("framework", "Framework", Some(1))?;
    let (_, v2) = cast.bao.nonpaper("framework", "Framework", Some(2))?;
    say("   Bao's diff of v1 and v2:")?;
    let diff = similar::TextDiff::from_lines(&v1, &v2);
    for line in diff.unified_diff().context_radius(1).to_string().lines() {
        say(format!("   {line}"))?;
    }
    Ok(())
}

async fn ratification(cast: &mut Cast, dir: &Path) -> Result<()> {
    say("\n== Omar proposes v2 for ratification by both sides; each ratifies with its seal")?;
    let (_, text) = cast.omar.nonpaper("framework", "Framework", Some(2))?;
    let signatories = ["Delegation A".to_owned(), "Delegation B".to_owned()];
    let (proposal, _) = cast.omar.propose("framework", "Framework", &text, &signatories).await?;
    cast.settle().await?;
    cast.alice.ratify("framework", &proposal.id).await?;
    cast.bao.ratify("framework", &proposal.id).await?;
    cast.settle().await?;
    say("\n== Omar exports the agreement for the official channels, and anyone can verify it")?;
    let agreement = cast.omar.agreement("framework", &proposal.id)?;
    let out = dir.join("framework-agreement");
    std::fs::create_dir_all(&out)?;
    for (name, bytes) in agreement.files()? {
        std::fs::write(out.join(&name), bytes)?;
        say(format!("   wrote {name}"))?;
    }
    let verified = backchannel_proto::agreement::Agreement::from_files(|n| std::fs::read(out.join(n)).ok())?
        .verify()
        .context("the exported agreement does not verify")?;
    for line in verified.to_string().lines() {
        say(format!("   {line}"))?;
    }
    ssh_keygen_check(&out, &agreement)
}

/// Checks every signature with OpenSSH's own tool, when it is installed.
fn ssh_keygen_check(out: &Path, agreement: &backchannel_proto::agreement::Agreement) -> Result<()> {
    for principal in agreement.principals() {
        // Each signature covers its signatory's statement, which names the text by its sha256.
        let text = std::fs::read(out.join(backchannel_proto::agreement::statement_file(&principal)))?;
        let child = std::process::Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f", "allowed_signers", "-I", &principal, "-n"])
            .arg(backchannel_proto::agreement::NAMESPACE)
            .arg("-s")
            .arg(format!("{principal}.sig"))
            .current_dir(out)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            return say("   (ssh-keygen is not installed here; skipped the OpenSSH check)");
        };
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(&mut stdin, &text)?;
        }
        let result = child.wait_with_output()?;
        let said = String::from_utf8_lossy(&result.stdout);
        if !result.status.success() {
            bail!("ssh-keygen rejected {principal}'s signature: {}", String::from_utf8_lossy(&result.stderr));
        }
        say(format!("   ssh-keygen -Y verify: {}", said.trim()))?;
    }
    Ok(())
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
