//! CPU per note in the protocol core, in memory: `Session::seal` of a 256-byte note, opening
//! its blocks, reassembling the frame and `Session::open`. Baseline: raw vodozemac Olm
//! encrypt + decrypt of the same 256 bytes. Both switch direction every few notes so the DH
//! ratchet turns, in the same pattern.

use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use backchannel_proto::block::{Reassembler, open_block};
use backchannel_proto::crypto::SecretKey;
use backchannel_proto::identity::Identity;
use backchannel_proto::invitation;
use backchannel_proto::message::{ChannelId, Kind, Route};
use backchannel_proto::session::{self, Session};
use backchannel_wire::{DEFAULT_BLOCK_SIZE, QueueId, QueueSecret, RelayAddress};
use vodozemac::olm::{Account, OlmMessage, SessionConfig};

use crate::Timing;
use crate::report::Report;

const NOTE_BYTES: usize = 256;
/// Notes sent one way before the other side answers (each answer turns the DH ratchet).
const RUN_LENGTH: usize = 8;
const NOW_MS: u64 = 1_700_000_000_000;

pub fn run(report: &mut Report, timing: Timing) -> Result<()> {
    let notes = if timing.quick { 2_000 } else { 20_000 };
    let ours = per_note_us(notes, ProtoPair::new()?, RUN_LENGTH)?;
    let olm = per_note_us(notes, OlmPair::new()?, RUN_LENGTH)?;
    report.set("client_us_per_note", ours);
    report.set("olm_us_per_note", olm);
    // One way (no ratchet turn after the first reply): the case published Olm figures quote.
    let ours_one_way = per_note_us(notes, ProtoPair::new()?, usize::MAX)?;
    let olm_one_way = per_note_us(notes, OlmPair::new()?, usize::MAX)?;
    report.set("client_us_per_note_one_way", ours_one_way);
    report.set("olm_us_per_note_one_way", olm_one_way);
    report.note(format!(
        "client CPU: {notes} notes of {NOTE_BYTES} B, one thread (seal + open blocks + open vs Olm encrypt + \
         decrypt); client_us_per_note: direction switches every {RUN_LENGTH} notes, so the DH ratchet turns; \
         client_us_per_note_one_way: all notes one way"
    ));
    Ok(())
}

/// Two ends of a conversation that can carry a note either way.
trait Pair {
    fn one_note(&mut self, forward: bool, body: &[u8]) -> Result<()>;
}

/// Average microseconds per note over `notes`, after a short warm-up.
fn per_note_us(notes: usize, mut pair: impl Pair, run_length: usize) -> Result<f64> {
    let body = vec![0x5a_u8; NOTE_BYTES];
    // One note back first, so both sessions are established (no pre-key messages) either way.
    pair.one_note(false, &body)?;
    for i in 0..notes / 10 {
        pair.one_note((i / run_length).is_multiple_of(2), &body)?;
    }
    let start = Instant::now();
    for i in 0..notes {
        pair.one_note((i / run_length).is_multiple_of(2), &body)?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / notes as f64)
}

/// Two established Backchannel sessions, set up as in the proto crate's example.
pub(crate) struct ProtoPair {
    pub alice: Session,
    bao: Session,
}

impl ProtoPair {
    pub(crate) fn new() -> Result<Self> {
        let relay = RelayAddress::for_certificate("127.0.0.1", 4443, b"bench");
        let route = |block_key| Route {
            relay: relay.clone(),
            block_size: DEFAULT_BLOCK_SIZE as u32,
            send_id: QueueId::random(),
            send_secret: QueueSecret::random(),
            block_key,
        };
        let mut alice_id = Identity::generate("Alice", "Delegation A").map_err(anyhow::Error::msg)?;
        let bao_id = Identity::generate("Bao", "Delegation B").map_err(anyhow::Error::msg)?;
        let (inv, pending) = invitation::create(
            &mut alice_id,
            route(SecretKey::random()),
            QueueId::random(),
            QueueSecret::random(),
            u64::MAX,
        )?;
        let (bao, hello) = session::accept(inv, &bao_id, route(SecretKey::random()), NOW_MS)?;
        let frame = reassemble(&hello.blocks, &pending.route.block_key)?;
        let (alice, _) = session::answer(&pending, &mut alice_id, &frame)?;
        Ok(Self { alice, bao })
    }
}

impl Pair for ProtoPair {
    fn one_note(&mut self, forward: bool, body: &[u8]) -> Result<()> {
        let (from, to) =
            if forward { (&mut self.alice, &mut self.bao) } else { (&mut self.bao, &mut self.alice) };
        let sealed = from.seal(ChannelId::DIRECT, Kind::Note, body.to_vec(), NOW_MS)?;
        let frame = reassemble(&sealed.blocks, &to.recv_block_key)?;
        let message = to.open(&frame)?;
        ensure!(message.body == body, "a note came out different");
        Ok(())
    }
}

fn reassemble(blocks: &[Vec<u8>], key: &SecretKey) -> Result<Vec<u8>> {
    let mut r = Reassembler::default();
    for block in blocks {
        if let Some((_, frame)) = r.push(open_block(block, key)?)? {
            return Ok(frame);
        }
    }
    bail!("{} blocks did not make a whole frame", blocks.len())
}

/// Two raw Olm sessions (the same `SessionConfig` the protocol core uses).
struct OlmPair {
    alice: vodozemac::olm::Session,
    bao: vodozemac::olm::Session,
}

impl OlmPair {
    fn new() -> Result<Self> {
        let alice_account = Account::new();
        let mut bao_account = Account::new();
        bao_account.generate_one_time_keys(1);
        let otk = *bao_account.one_time_keys().values().next().context("no one-time key")?;
        let mut alice = alice_account.create_outbound_session(
            SessionConfig::version_1(),
            bao_account.curve25519_key(),
            otk,
        )?;
        let OlmMessage::PreKey(first) = alice.encrypt(b"hello")? else {
            bail!("first Olm message is not pre-key")
        };
        let created = bao_account.create_inbound_session(
            SessionConfig::version_1(),
            alice_account.curve25519_key(),
            &first,
        )?;
        Ok(Self { alice, bao: created.session })
    }
}

impl Pair for OlmPair {
    fn one_note(&mut self, forward: bool, body: &[u8]) -> Result<()> {
        let (from, to) =
            if forward { (&mut self.alice, &mut self.bao) } else { (&mut self.bao, &mut self.alice) };
        let message = from.encrypt(body)?;
        let plaintext = to.decrypt(&message)?;
        ensure!(plaintext == body, "an Olm message came out different");
        Ok(())
    }
}
