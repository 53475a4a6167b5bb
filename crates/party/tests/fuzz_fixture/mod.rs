//! The fixed channel that `fuzz/fuzz_targets/channel_receive.rs` feeds bytes to, included by
//! it and by `tests/fuzz_corpus.rs` (which replays the corpus on stable), so both run the same
//! inputs against the same channel. Every key is fixed, so the seeds in
//! `fuzz/corpus/channel_receive/` (bodies for this channel) stay valid from run to run.
//!
//! The channel "fuzz", in drafting: Alice (its creator, side A, a principal), Bao (us, B, a
//! principal), Chen (C, an observer); a proposal "Treaty" for sides A and B; a note from Dana
//! (D, not a member yet) held. Eve (E) is a contact of ours and no member.

use std::sync::OnceLock;

use backchannel_party::channel::{Channel, HeldMessages, Incoming, Received, receive};
use backchannel_party::documents::ProposalRecord;
use backchannel_party::step::TextKind;
use backchannel_party::{Ctx, Lookup, TextId};
use backchannel_proto::agreement::text_hash;
use backchannel_proto::channel::{ChannelState, Member, Mode, Phase, PhasePolicy, PhaseVote, Role};
use backchannel_proto::identity::{Card, Identity, PartyKey};
use backchannel_proto::message::{ChannelId, Kind, Message};

pub const CHANNEL: ChannelId = ChannelId([0xc4; 16]);
pub const PROPOSAL: &str = "Article 1. The parties meet again in Muscat.\n";
pub const ALICE: u8 = 1;
pub const BAO: u8 = 2;
pub const CHEN: u8 = 3;
pub const DANA: u8 = 4;
pub const EVE: u8 = 5;
/// Who sends the fuzzed bytes: the creator, a member (an observer) and a stranger.
pub const SENDERS: [u8; 3] = [ALICE, CHEN, EVE];

/// Party `n`'s identity, with the fixed seal secret `[n; 32]` (its Olm keys are fresh, and
/// unused: cards carry fixed ones). Made through the stored form, the only way to set it.
pub fn identity(n: u8) -> Identity {
    let (name, side) = label(n);
    let mut pickle = serde_json::to_value(Identity::generate(name, side).unwrap().pickle()).unwrap();
    pickle["seal_secret"] = serde_json::json!([n; 32].to_vec());
    Identity::from_pickle(serde_json::from_value(pickle).unwrap())
}

fn label(n: u8) -> (&'static str, &'static str) {
    [("Alice", "A"), ("Bao", "B"), ("Chen", "C"), ("Dana", "D"), ("Eve", "E")][usize::from(n - 1)]
}

/// Party `n`'s card: fixed keys, and the seal key of [`identity`].
pub fn card(n: u8) -> Card {
    static SEALS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    let seals = SEALS.get_or_init(|| (1..=5).map(|n| identity(n).seal_public_key()).collect());
    let (name, side) = label(n);
    Card {
        name: name.to_owned(),
        side: side.to_owned(),
        identity_key: [n; 32],
        device_key: [n + 0x10; 32],
        seal_key: seals[usize::from(n - 1)],
    }
}

/// The channel's state as Bao holds it.
pub fn state() -> ChannelState {
    let member = |n: u8, role, since| Member { card: card(n), role, since };
    ChannelState {
        id: CHANNEL,
        name: "fuzz".to_owned(),
        mode: Mode::Direct,
        creator: card(ALICE).party(),
        version: 4,
        members: vec![
            member(ALICE, Role::Principal, 1),
            member(BAO, Role::Principal, 2),
            member(CHEN, Role::Observer, 3),
        ],
        phase: Phase::Drafting,
        policies: PhasePolicy::defaults(),
        vote: PhaseVote::default(),
    }
}

/// The channel as Bao holds it.
pub fn channel() -> Channel {
    let mut channel = Channel::new(state());
    channel.docs.proposals.push(ProposalRecord {
        id: text_hash(PROPOSAL.as_bytes()),
        title: "Treaty".to_owned(),
        signatories: vec!["A".to_owned(), "B".to_owned()],
        seals: Vec::new(),
        unconfirmed: Vec::new(),
    });
    channel
}

/// What Bao knows beyond the channel: a session with everyone, the proposal's text.
pub struct Fixed;

impl Lookup for Fixed {
    fn has_session(&self, _: &PartyKey) -> bool {
        true
    }
    fn contact(&self, _: &PartyKey) -> Option<(Card, bool)> {
        None
    }
    fn text(&self, id: &TextId) -> Option<String> {
        let ours = id.channel == CHANNEL && id.kind == TextKind::Proposal;
        (ours && id.sha256 == text_hash(PROPOSAL.as_bytes())).then(|| PROPOSAL.to_owned())
    }
    fn held_channels(&self) -> usize {
        0
    }
}

fn stored(channel: Option<&Channel>) -> Option<String> {
    channel.map(|c| serde_json::to_string(c).unwrap())
}

/// Bao takes in `body` as a message of `kind` from party `sender`, holding the channel
/// (`in_channel`) or not yet. A message that leaves it unchanged must leave it exactly as it was.
pub fn receive_one(sender: u8, kind: Kind, in_channel: bool, body: &[u8]) -> Received {
    let (me, from) = (card(BAO), card(sender));
    let mut held = HeldMessages::default();
    let early = Message::new(CHANNEL, 1, 1_000, Kind::Note, b"hello from Dana".to_vec());
    held.hold(in_channel, &Fixed, "dana", &card(DANA), &early);
    let channel = in_channel.then(channel);
    let before = stored(channel.as_ref());
    let msg = Message::new(CHANNEL, 7, 2_000, kind, body.to_vec());
    let ctx = Ctx { me: &me, now_ms: 3_000 };
    let received =
        receive(&ctx, &Fixed, channel, &mut held, Incoming { contact: "contact", sender: &from, msg: &msg });
    if !received.changed {
        assert_eq!(stored(received.channel.as_ref()), before, "unchanged, and yet different");
    }
    received
}

/// Every way the fuzz target takes `data` in: as a channel body and as a note, from each of
/// [`SENDERS`], in the channel and before it. Returns how many changed the channel.
pub fn receive_all(data: &[u8]) -> usize {
    let mut changed = 0;
    for sender in SENDERS {
        for kind in [Kind::Channel, Kind::Note] {
            for in_channel in [true, false] {
                changed += usize::from(receive_one(sender, kind, in_channel, data).changed);
            }
        }
    }
    changed
}
