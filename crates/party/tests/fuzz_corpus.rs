//! Replays the `channel_receive` fuzzer's corpus (`fuzz/corpus/channel_receive/*`) on stable
//! Rust, through the same fixed channel (`tests/fuzz_fixture`), so every input it kept stays a
//! test; and checks that the seeds there are what they claim: bodies this channel takes in, and
//! broken ones it refuses.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod fuzz_fixture;
#[path = "../../../fuzz/replay.rs"]
mod replay;

use backchannel_party::Entry;
use backchannel_proto::agreement::text_hash;
use backchannel_proto::channel::{ChannelBody, Member, Role};
use backchannel_proto::message::Kind;
use backchannel_redline::{MayAsk, ProbeBudget, ProbeKind, ProbeTerms, SingleTerms};
use fuzz_fixture::{ALICE, BAO, CHEN, DANA, PROPOSAL, card, receive_all, receive_one, state};
use replay::corpus;

#[test]
fn channel_receive() {
    let mut changed = 0;
    for input in corpus("channel_receive") {
        changed += receive_all(&input);
    }
    assert!(changed > 0, "some input of the corpus should change the channel");
}

/// A seed: its file name and bytes.
type Seed = (&'static str, Vec<u8>);

/// The seeds, by file name: bodies the fixed channel takes in from its creator (as a channel
/// message, or as a note for `seed-note`), then bodies it refuses.
fn seeds() -> (Vec<Seed>, Vec<Seed>) {
    let mut newer = state();
    newer.version += 1;
    newer.members.push(Member { card: card(DANA), role: Role::Principal, since: newer.version });
    let terms = ProbeTerms {
        phase: "drafting".into(),
        may_ask: MayAsk::Either,
        kind: ProbeKind::Single(SingleTerms {
            issue: "months".into(),
            max: 120,
            gives: "A".into(),
            takes: "B".into(),
        }),
    };
    let valid = [
        ("seed-state", ChannelBody::State { state: newer.clone() }),
        ("seed-consent", ChannelBody::PhaseConsent { phase: backchannel_proto::channel::Phase::Agreed }),
        (
            "seed-non-paper",
            ChannelBody::NonPaper { title: "Framework".into(), version: 1, text: "1. Talks.\n".into() },
        ),
        (
            "seed-proposal",
            ChannelBody::Proposal {
                title: "Annex".into(),
                text: "Annex 1.\n".into(),
                signatories: vec!["A".into()],
            },
        ),
        (
            "seed-probe-propose",
            ChannelBody::ProbePropose {
                probe: [7; 16],
                terms,
                budget: ProbeBudget { per_issue: 3, per_phase: 10 },
            },
        ),
        (
            "seed-introduce",
            ChannelBody::Introduce {
                from: card(CHEN).party(),
                to: card(BAO).party(),
                invitation: "invitation".into(),
            },
        ),
    ];
    let mut valid: Vec<Seed> = valid.into_iter().map(|(n, b)| (n, b.encode())).collect();
    valid.push(("seed-note", b"A note, in a channel.".to_vec()));

    let state_bytes = ChannelBody::State { state: newer.clone() }.encode();
    let mut twice = newer.clone();
    twice.members.push(twice.members[1].clone());
    let mut promoted = newer;
    promoted.members[2].role = Role::Principal;
    let broken = vec![
        ("broken-truncated-state", state_bytes[..state_bytes.len() / 2].to_vec()),
        ("broken-unknown-type", br#"{"type":"nope"}"#.to_vec()),
        (
            "broken-version-zero",
            ChannelBody::NonPaper { title: "Framework".into(), version: 0, text: "x".into() }.encode(),
        ),
        ("broken-member-twice", ChannelBody::State { state: twice }.encode()),
        ("broken-observer-promoted", ChannelBody::State { state: promoted }.encode()),
        ("broken-bytes", vec![0xff, 0x00, 0x7b, 0x22, 0xc3]),
        // A ratification is signed over a statement naming its signer's identity key, which the
        // fixture's cards fix and real identities cannot: a well-formed one that does not verify.
        (
            "broken-ratification-unsigned",
            ChannelBody::Ratification {
                proposal: text_hash(PROPOSAL.as_bytes()),
                signature: "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n".into(),
                signer: None,
                signed_at: Some(1_800_000_000),
                possession: Some(
                    "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n".into(),
                ),
            }
            .encode(),
        ),
    ];
    (valid, broken)
}

fn rejected(entries: Vec<&Entry>) -> usize {
    entries.into_iter().filter(|e| matches!(e, Entry::Rejected { .. })).count()
}

#[test]
fn the_seeds_are_taken_in_or_refused_as_they_claim() {
    let (valid, broken) = seeds();
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/channel_receive");
    for (name, bytes) in valid.iter().chain(&broken) {
        let on_disk = std::fs::read(dir.join(name)).unwrap_or_default();
        assert!(on_disk == *bytes, "{name} is missing or stale: run write_channel_receive_seeds");
    }
    for (name, bytes) in &valid {
        let kind = if *name == "seed-note" { Kind::Note } else { Kind::Channel };
        let r = receive_one(ALICE, kind, true, bytes);
        assert!(r.changed || kind == Kind::Note, "{name} did not change the channel");
        let entries: Vec<&Entry> = r.step.entries().collect();
        assert_eq!(rejected(entries.clone()), 0, "{name}: {entries:?}");
        assert!(!entries.is_empty() || *name == "seed-introduce", "{name} recorded nothing");
    }
    let opened = receive_one(ALICE, Kind::Channel, false, &valid[0].1);
    assert!(opened.changed && opened.channel.is_some(), "the state opens the channel it adds us to");
    assert!(
        opened.step.entries().any(|e| matches!(e, Entry::Note { from, .. } if from == "Dana")),
        "the held note"
    );
    for (name, bytes) in &broken {
        let r = receive_one(ALICE, Kind::Channel, true, bytes);
        assert!(!r.changed, "{name} changed the channel");
        assert_eq!(rejected(r.step.entries().collect()), 1, "{name}");
    }
}

/// Rewrites the seeds of `fuzz/corpus/channel_receive` (after changing the fixture or the
/// bodies); the fuzzer adds its own inputs beside them.
#[test]
#[ignore = "writes fuzz/corpus/channel_receive; run by hand after changing the fixture"]
fn write_channel_receive_seeds() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/channel_receive");
    std::fs::create_dir_all(&dir).unwrap();
    let (valid, broken) = seeds();
    for (name, bytes) in valid.into_iter().chain(broken) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
