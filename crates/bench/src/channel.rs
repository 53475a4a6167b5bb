//! Channels: the client CPU to send one note to a 50-member channel (49 pairwise seals, the
//! outbox rows and session updates in one durable transaction), beside 49 raw vodozemac Olm
//! encryptions of the same note (what any pairwise fan-out must at least pay); and the time
//! to ratify a text with a seal (SSH signature) and to verify it, beside raw Ed25519 sign and
//! verify of the same text.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use backchannel_client::{Engine, EngineConfig, Passphrase};
use backchannel_proto::agreement;
use backchannel_proto::channel::{MAX_MEMBERS, Mode, Role};
use backchannel_proto::identity::Identity;
use backchannel_proto::message::{ChannelId, Kind};
use backchannel_proto::session::Session;
use backchannel_relay::RelayOptions;
use vodozemac::olm::{Account, OlmMessage, SessionConfig};

use crate::Timing;
use crate::client_cpu::ProtoPair;
use crate::report::Report;

const NOTE_BYTES: usize = 256;
const TEXT_BYTES: usize = 16 * 1024;

pub async fn run(report: &mut Report, timing: Timing) -> Result<()> {
    let notes = std::env::var("BACKCHANNEL_BENCH_FANOUT_NOTES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if timing.quick { 30 } else { 200 });
    let dir = tempfile::tempdir()?;
    let relay =
        backchannel_relay::start(RelayOptions::new("127.0.0.1:0".parse()?, dir.path().join("relay"))).await?;
    let outcome = fanout(report, dir.path(), &relay, notes).await;
    relay.shutdown().await;
    outcome?;
    report.set("olm_fanout_ms_per_note_50", olm_fanout_ms(MAX_MEMBERS - 1, notes)?);
    report.set("fanout_seal_ms_per_note_50", seal_fanout_ms(MAX_MEMBERS - 1, notes)?);
    ratify(report, if timing.quick { 50 } else { 500 })
}

/// A creator with 49 contacts, all in one channel; then `notes` notes timed one by one.
async fn fanout(
    report: &mut Report,
    dir: &Path,
    relay: &backchannel_relay::RunningRelay,
    notes: usize,
) -> Result<()> {
    let pass = Passphrase::new("bench passphrase".into());
    let creator = Engine::init(&dir.join("creator"), &pass, "Creator", "Chair", EngineConfig::default())?;
    let mut members = Vec::new();
    for i in 1..MAX_MEMBERS {
        let invitation = creator.invite(relay.address(), 3600).await?;
        let member = Engine::init(
            &dir.join(format!("m{i}")),
            &pass,
            &format!("M{i}"),
            &format!("Side {i}"),
            EngineConfig::default(),
        )?;
        member.accept(&invitation).await?;
        members.push(member);
    }
    creator.sync_once().await?;
    ensure!(creator.contacts()?.len() == MAX_MEMBERS - 1, "not every member's answer arrived");
    creator.channel_create("plenary", Mode::Direct, Role::Principal, None)?;
    for i in 1..MAX_MEMBERS {
        creator.channel_add("plenary", &format!("M{i}"), Role::Principal).await?;
    }
    creator.flush().await?;
    let text = "n".repeat(NOTE_BYTES);
    let (cpu0, wall0) = (cpu_seconds()?, Instant::now());
    for _ in 0..notes {
        let out = creator.channel_note("plenary", &text, &[])?;
        ensure!(
            out.sealed == MAX_MEMBERS - 1,
            "a note reached {} members, not {}",
            out.sealed,
            MAX_MEMBERS - 1
        );
    }
    let (cpu, wall) = (cpu_seconds()? - cpu0, wall0.elapsed().as_secs_f64());
    report.set("fanout_ms_per_note_50", cpu * 1000.0 / notes as f64);
    report.set("fanout_wall_ms_per_note_50", wall * 1000.0 / notes as f64);
    // The members really can read what was sealed for them.
    creator.flush().await?;
    let report_m1 = members[0].sync_once().await?;
    ensure!(
        report_m1
            .events
            .iter()
            .filter(|e| matches!(
                e,
                backchannel_client::Event::Entry { entry: backchannel_client::Entry::Note { .. }, .. }
            ))
            .count()
            == notes,
        "member 1 did not get every note"
    );
    report.note(format!(
        "channel fan-out: {notes} notes of {NOTE_BYTES} B to a channel of {MAX_MEMBERS} (49 pairwise seals, outbox rows and \
         session updates in one durable SQLite transaction); fanout_ms_per_note_50 = process CPU time (/proc/self/stat) per \
         note, fanout_wall_ms_per_note_50 = wall clock incl. the disk sync; fanout_seal_ms_per_note_50 = the 49 seals alone, \
         in memory (no store); baseline: 49 raw Olm encryptions of the same note"
    ));
    Ok(())
}

/// Process CPU time (user + system) from /proc/self/stat, in seconds.
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").context("odd /proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        |i: usize| -> Result<f64> { Ok(fields.get(i).context("short /proc/self/stat")?.parse::<f64>()?) };
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the state field.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// Milliseconds for `members` established Olm sessions to each encrypt one note.
fn olm_fanout_ms(members: usize, notes: usize) -> Result<f64> {
    let mut sessions = Vec::new();
    for _ in 0..members {
        let alice = Account::new();
        let mut bao = Account::new();
        bao.generate_one_time_keys(1);
        let otk = *bao.one_time_keys().values().next().context("no one-time key")?;
        let mut out = alice.create_outbound_session(SessionConfig::version_1(), bao.curve25519_key(), otk)?;
        let OlmMessage::PreKey(first) = out.encrypt(b"hello")? else {
            bail!("first Olm message is not pre-key")
        };
        let mut inbound =
            bao.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first)?.session;
        // One reply, so the outbound session is past its pre-key messages.
        out.decrypt(&inbound.encrypt(b"ok")?)?;
        sessions.push(out);
    }
    let note = vec![0x6e_u8; NOTE_BYTES];
    let start = Instant::now();
    for _ in 0..notes {
        for s in &mut sessions {
            std::hint::black_box(s.encrypt(&note)?);
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0 / notes as f64)
}

/// Milliseconds for `members` in-memory protocol sessions to each seal one note (Olm, the
/// post-quantum chain and the 4 KiB block): the fan-out without the store.
fn seal_fanout_ms(members: usize, notes: usize) -> Result<f64> {
    let mut sessions: Vec<Session> =
        (0..members).map(|_| Ok(ProtoPair::new()?.alice)).collect::<Result<_>>()?;
    let note = vec![0x6e_u8; NOTE_BYTES];
    let start = Instant::now();
    for _ in 0..notes {
        for s in &mut sessions {
            std::hint::black_box(s.seal(ChannelId([1; 16]), Kind::Note, note.clone(), 1)?);
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0 / notes as f64)
}

/// Ratify (hash the text, SSHSIG over the statement, proof of possession) and check both as a
/// receiver does, beside raw Ed25519 of the same text.
fn ratify(report: &mut Report, rounds: usize) -> Result<()> {
    let identity = Identity::generate("Alice", "Delegation A").map_err(anyhow::Error::msg)?;
    let card = identity.card();
    let text = vec![b'x'; TEXT_BYTES];
    let sides = vec!["Delegation A".to_owned()];
    let start = Instant::now();
    for _ in 0..rounds {
        let id = agreement::text_hash(&text);
        let p = agreement::ProposalRef {
            channel: ChannelId([1; 16]),
            id,
            title: "Bench",
            required_sides: &sides,
        };
        let r = p.ratify(&identity, 1_800_000_000)?;
        p.check_seal(&card, Some(r.signed_at), &r.signature, Some(&r.possession))?;
    }
    report.set("ratify_verify_ms", start.elapsed().as_secs_f64() * 1000.0 / rounds as f64);
    let key = vodozemac::Ed25519SecretKey::new();
    let public = key.public_key();
    let start = Instant::now();
    for _ in 0..rounds {
        let sig = key.sign(&text);
        public.verify(&text, &sig)?;
    }
    report.set("ed25519_sign_verify_ms", start.elapsed().as_secs_f64() * 1000.0 / rounds as f64);
    report.note(format!(
        "ratify_verify_ms: sha256 of a {TEXT_BYTES} B text, then two SSH signatures (the statement, namespace \
         backchannel-agreement, and the proof of possession) made and strictly checked, {rounds} rounds; baseline: \
         raw Ed25519 sign + verify of the same text"
    ));
    Ok(())
}
