//! Channels and their documents among several parties, in memory: every command through the
//! crate's rules, every message through a `Message` and `channel::receive` at its recipient,
//! every channel through its stored form after every step (see `world/mod.rs`). What is
//! checked is data: the entries each party recorded, its channel and its refusals.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod world;

use backchannel_party::channel::{MAX_HELD, MAX_HELD_CHANNELS};
use backchannel_party::event::ConversationKind;
use backchannel_party::why::MessageFault;
use backchannel_party::{ChannelEvent, Entry, Event, Task, Why};
use backchannel_proto::agreement::{AgreementError, ProposalRef, text_hash};
use backchannel_proto::channel::{ChannelBody, ChannelState, Mode, Phase, PhaseVote, Refused, Role};
use backchannel_proto::identity::safety_number;
use backchannel_proto::message::ChannelId;
use backchannel_wire::hex_encode;
use world::{Envelope, Who, World, contact_id};

use backchannel_party::channel::MAX_HELD_BYTES;

const TEXT: &str =
    "Article 1. The parties resume talks in Muscat.\nArticle 2. Nothing is agreed until everything is.\n";

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Moves `ch` one phase on: every principal in `who` consents, and all is delivered.
fn move_phase(w: &mut World, ch: ChannelId, who: &[Who], phase: Phase) {
    for p in who {
        w.consent(*p, ch, Some(phase)).unwrap();
        w.settle();
    }
    for p in 0..w.parties.len() {
        if w.holds(p, ch) && !w.channel(p, ch).removed {
            assert_eq!(w.channel(p, ch).state.phase, phase, "party {p}");
        }
    }
}

/// The ratification in a message's body, with its signature replaced.
fn resign(env: &mut Envelope, signature: String) {
    let Some(ChannelBody::Ratification { proposal, signer, signed_at, possession, .. }) = env.body() else {
        panic!("not a ratification")
    };
    env.msg.body = ChannelBody::Ratification { proposal, signature, signer, signed_at, possession }.encode();
}

/// A well-formed seal over `text` in some other proposal: it verifies nowhere in these tests.
fn ratify(identity: &backchannel_proto::identity::Identity, text: &[u8]) -> Result<String, AgreementError> {
    let sides = vec!["A".to_owned(), "B".to_owned()];
    let elsewhere = ProposalRef {
        channel: ChannelId([7; 16]),
        id: text_hash(text),
        title: "elsewhere",
        required_sides: &sides,
    };
    elsewhere.ratify(identity, 1).map(|r| r.signature)
}

// --- membership

#[test]
fn a_direct_channel_of_three_reaches_every_member_once_and_a_late_joiner_introduces_itself() {
    const A: Who = 0;
    const B: Who = 1;
    const C: Who = 2;
    let mut w = World::new(&[("Alice", "A"), ("Bao", "B"), ("Chen", "C")]);
    w.connect(A, B);
    w.connect(A, C);
    let ch = w.create(A, "muscat", Mode::Direct, Role::Principal);
    assert_eq!(w.events(A, ch), [ChannelEvent::Created { mode: Mode::Direct }]);

    w.add(A, ch, B, Role::Principal).unwrap();
    assert_eq!(w.wire.len(), 1, "the state goes to Bao");
    w.settle();
    assert_eq!(
        w.events(B, ch),
        [ChannelEvent::AddedYou { by: "Alice".into(), members: s(&["Alice", "Bao"]) }]
    );
    assert!(w.parties[B].scheduled.is_empty(), "only the creator came before Bao");
    w.note(A, ch, "a1", &[]).unwrap();
    w.note(B, ch, "b1", &[]).unwrap();
    w.settle();
    assert_eq!(w.notes(A, ch), pairs(&[("Bao", "b1")]));
    assert_eq!(w.notes(B, ch), pairs(&[("Alice", "a1")]));

    w.clear();
    w.add(A, ch, C, Role::Principal).unwrap();
    assert_eq!(w.wire.len(), 2);
    assert!(w.wire.iter().all(Envelope::is_state));
    w.flush();
    let joined = ChannelEvent::MemberJoined { name: "Chen".into(), side: "C".into(), role: Role::Principal };
    assert_eq!(w.events(A, ch), std::slice::from_ref(&joined));
    assert_eq!(w.events(B, ch), [joined]);
    assert_eq!(
        w.events(C, ch),
        [
            ChannelEvent::AddedYou { by: "Alice".into(), members: s(&["Alice", "Bao", "Chen"]) },
            ChannelEvent::Introducing { name: "Bao".into(), side: "B".into() },
        ]
    );
    assert_eq!(w.parties[C].scheduled, [Task::Introduce { channel: ch, to: w.key(B) }]);
    assert!(w.notes(C, ch).is_empty(), "a late joiner sees nothing said before it joined");

    // Chen speaks before the introduction is done: Bao's copy waits for their session.
    w.note(C, ch, "c-early", &[]).unwrap();
    assert_eq!(w.parties[C].parked.len(), 1);
    assert_eq!(w.parties[C].parked[0].to, w.key(B));
    w.settle();
    let introductions: Vec<(Who, Who)> = w
        .delivered
        .iter()
        .filter(|(_, _, _, body)| matches!(body, Some(ChannelBody::Introduce { .. })))
        .map(|(from, to, _, _)| (*from, *to))
        .collect();
    assert_eq!(introductions, [(C, A), (A, B)], "Chen's invitation goes through the creator");
    assert!(w.has_session(B, C) && w.has_session(C, B));
    assert!(w.parties[C].parked.is_empty());
    let connected = ChannelEvent::Connected {
        name: "Chen".into(),
        side: "C".into(),
        safety_number: safety_number(&w.card(B), &w.card(C)),
    };
    assert_eq!(w.events(B, ch).last(), Some(&connected));
    assert_eq!(w.notes(A, ch), pairs(&[("Chen", "c-early")]));
    assert_eq!(w.notes(B, ch), pairs(&[("Chen", "c-early")]));

    // Every member's note reaches every other member, once.
    w.clear();
    for who in [A, B, C] {
        let text = format!("from {}", w.name(who));
        let to = w.note(who, ch, &text, &[]).unwrap();
        assert_eq!(to.len(), 2);
    }
    w.settle();
    let names = ["Alice", "Bao", "Chen"];
    for who in [A, B, C] {
        let expected: Vec<(String, String)> = names
            .iter()
            .filter(|n| **n != names[who])
            .map(|n| ((*n).to_owned(), format!("from {n}")))
            .collect();
        assert_eq!(sorted(w.notes(who, ch)), expected, "{}", names[who]);
        for e in w.timeline(who, ch) {
            if let Entry::Note { relayed_by, rephrased, .. } = e {
                assert_eq!((relayed_by, rephrased), (None, false));
            }
        }
        assert!(w.rejections(who).is_empty(), "{:?}", w.rejections(who));
        assert_eq!(w.channel(who, ch).state, w.channel(A, ch).state, "everyone holds the creator's state");
    }
    assert_eq!(w.channel(A, ch).state.version, 3);
}

#[test]
fn a_dropped_note_leaves_a_gap_and_a_duplicate_is_taken_in_once() {
    let (mut w, ch) =
        World::channel_of(&[("Alice", "A"), ("Bao", "B")], Mode::Direct, Role::Principal, &[Role::Principal]);
    w.clear();
    for text in ["n1", "n2", "n3"] {
        w.note(0, ch, text, &[]).unwrap();
    }
    let mut sent: Vec<Envelope> = w.take_all(|_| true);
    let first = sent[0].msg.sender_seq; // after the messages that set the channel up
    assert_eq!(sent.iter().map(|e| e.msg.sender_seq).collect::<Vec<_>>(), [first, first + 1, first + 2]);
    let n3 = sent.pop().unwrap();
    let n2 = sent.pop().unwrap();
    let copy = Envelope { from: n3.from, to: n3.to, msg: n3.msg.clone() };
    w.deliver(sent.pop().unwrap());
    w.deliver(n3);
    w.deliver(copy);
    assert_eq!(w.notes(1, ch), pairs(&[("Alice", "n1"), ("Alice", "n3")]));
    assert_eq!(w.parties[1].duplicates, 1);
    let gaps: Vec<(u64, u64)> = w
        .timeline(1, ch)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Gap { first, last, source, .. } => {
                assert_eq!(source, Some((contact_id(0), ch)));
                Some((first, last))
            }
            _ => None,
        })
        .collect();
    assert_eq!(gaps, [(first + 1, first + 1)]);
    w.deliver(n2);
    assert_eq!(w.notes(1, ch), pairs(&[("Alice", "n1"), ("Alice", "n3"), ("Alice", "n2")]));
    assert!(matches!(w.parties[1].notified.as_slice(), [Event::GapClosed { seq, .. }] if *seq == first + 1));
}

#[test]
fn a_removed_member_learns_only_that_it_is_out_and_is_refused_after() {
    const A: Who = 0;
    const B: Who = 1;
    const C: Who = 2;
    const D: Who = 3;
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C"), ("Dana", "D")];
    let (mut w, ch) =
        World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal, Role::Principal]);
    assert!(w.has_session(B, C), "Chen introduced itself to Bao");
    w.add(A, ch, D, Role::Principal).unwrap();
    w.flush();
    assert_eq!(w.parties[D].scheduled.len(), 2, "Dana has yet to introduce itself to Bao and Chen");
    // Bao speaks while Dana has no session with it: Dana's copy waits.
    w.note(B, ch, "before the removal", &[]).unwrap();
    assert_eq!(w.parties[B].parked.len(), 1);
    w.flush();

    w.clear();
    w.remove(A, ch, "dana@d").unwrap();
    assert_eq!(w.parties[A].forgot, [(ch, w.key(D))]);
    assert_eq!(w.events(A, ch), [ChannelEvent::MemberRemoved { name: "Dana".into(), side: "D".into() }]);
    let notice = w.take(|e| e.to == D);
    let Some(ChannelBody::State { state }) = notice.body() else { panic!("the notice is a state") };
    assert_eq!(
        state.members.iter().map(|m| m.key()).collect::<Vec<_>>(),
        [w.key(A)],
        "it names no one who remains"
    );
    assert_eq!(state.vote, PhaseVote::default());
    assert_eq!(state.version, w.channel(A, ch).state.version);
    w.deliver(notice);
    // Dana's introductions, still to run, find it removed: they send nothing.
    w.settle();
    let dana = w.channel(D, ch);
    assert!(dana.removed);
    assert_eq!(dana.state.members.len(), 1);
    assert_eq!(w.events(D, ch), [ChannelEvent::RemovedYou]);
    assert!(w.notes(D, ch).is_empty(), "what waited for Dana never reached it");
    assert!(!w.has_session(D, B) && !w.has_session(D, C));
    for who in [B, C] {
        assert_eq!(
            w.events(who, ch),
            [ChannelEvent::MemberRemoved { name: "Dana".into(), side: "D".into() }]
        );
        assert_eq!(w.parties[who].forgot, [(ch, w.key(D))]);
        assert_eq!(w.channel(who, ch).former, [w.key(D)]);
        assert_eq!(w.channel(who, ch).state.members.len(), 3);
    }
    assert!(w.parties[B].parked.is_empty(), "what waited for Dana's session is forgotten");

    // Dana's own rules refuse; what it sends anyway, the others refuse.
    assert_eq!(w.note(D, ch, "still here", &[]), Err(Why::RemovedFromChannel { channel: "muscat".into() }));
    w.clear();
    let before = w.stored(A, ch);
    w.send_note(D, A, ch, "still here");
    w.send(D, A, ch, &ChannelBody::PhaseConsent { phase: Phase::Drafting });
    w.send(D, A, ch, &ChannelBody::NonPaper { title: "Framework".into(), version: 1, text: "x".into() });
    w.settle();
    let not_member = Why::SenderNotMember { name: "Dana".into(), channel: "muscat".into() };
    assert_eq!(
        w.rejections(A),
        [
            Why::Channel { refused: Refused::NotMember { channel: "muscat".into() } },
            not_member.clone(),
            not_member
        ],
        "a former member's note and messages are refused, not held"
    );
    assert_eq!(w.held(A, ch), 0);
    assert_eq!(w.stored(A, ch), before);
    assert!(w.notes(A, ch).is_empty());
}

// --- held messages

#[test]
fn a_new_members_first_note_overtaking_the_state_that_admits_it_is_held_until_it_arrives() {
    const A: Who = 0;
    const B: Who = 1;
    const C: Who = 2;
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C")];
    let (mut w, ch) = World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal]);
    w.connect(B, C); // they knew each other before
    w.add(A, ch, C, Role::Principal).unwrap();
    let to_bao = w.take(|e| e.to == B && e.is_state());
    w.flush();
    assert!(w.parties[C].scheduled.is_empty(), "Chen already has a session with Bao");
    w.clear();
    w.note(C, ch, "hello from Chen", &[]).unwrap();
    let note = w.take(|e| e.to == B);
    w.flush();
    w.deliver(note);
    assert_eq!(w.held(B, ch), 1);
    assert!(w.timeline(B, ch).is_empty() && w.rejections(B).is_empty(), "{:?}", w.entries(B));
    w.deliver(to_bao);
    assert_eq!(w.held(B, ch), 0);
    let timeline = w.timeline(B, ch);
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    assert_eq!(
        timeline[0],
        Entry::channel(
            ChannelEvent::MemberJoined { name: "Chen".into(), side: "C".into(), role: Role::Principal },
            timeline[0].at()
        )
    );
    assert!(
        matches!(&timeline[1], Entry::Note { from, text, outgoing: false, .. } if from == "Chen" && text == "hello from Chen")
    );

    // A member's note can also overtake the state that adds the one it is for: the new member
    // holds it, for a channel it is not in yet, and takes it in with the channel.
    const D: Who = 3;
    let mut w = World::new(&[("Alice", "A"), ("Bao", "B"), ("Chen", "C"), ("Dana", "D")]);
    for i in 1..4 {
        w.connect(A, i);
    }
    w.connect(B, D);
    let ch = w.create(A, "muscat", Mode::Direct, Role::Principal);
    w.add(A, ch, B, Role::Principal).unwrap();
    w.settle();
    w.add(A, ch, D, Role::Principal).unwrap();
    let to_dana = w.take(|e| e.to == D);
    w.flush();
    w.clear();
    w.note(B, ch, "welcome, Dana", &[]).unwrap();
    let note = w.take(|e| e.to == D);
    w.flush();
    w.deliver(note);
    assert!(!w.holds(D, ch));
    assert_eq!(w.held(D, ch), 1);
    assert!(w.entries(D).is_empty(), "{:?}", w.entries(D));
    w.deliver(to_dana);
    assert_eq!(w.held(D, ch), 0);
    assert_eq!(
        w.events(D, ch),
        [ChannelEvent::AddedYou { by: "Alice".into(), members: s(&["Alice", "Bao", "Dana"]) }],
        "no introduction: Dana already has a session with Bao"
    );
    assert_eq!(w.notes(D, ch), pairs(&[("Bao", "welcome, Dana")]));
}

#[test]
fn held_messages_of_a_stranger_the_next_state_does_not_admit_are_refused_then() {
    const A: Who = 0;
    const B: Who = 1;
    const E: Who = 2;
    let people = [("Alice", "A"), ("Bao", "B"), ("Eve", "E")];
    let (mut w, ch) = World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal]);
    w.connect(B, E);
    w.clear();
    w.send(E, B, ch, &ChannelBody::PhaseConsent { phase: Phase::Drafting });
    w.send_note(E, B, ch, "let me in");
    w.flush();
    assert_eq!(w.held(B, ch), 2);
    assert!(w.rejections(B).is_empty());
    let before = w.channel(B, ch).state.version;
    w.consent(A, ch, Some(Phase::Drafting)).unwrap(); // the creator publishes the tally: a newer state
    w.settle();
    assert_eq!(w.channel(B, ch).state.version, before + 1);
    assert_eq!(w.held(B, ch), 0);
    assert_eq!(
        w.rejections(B),
        [
            Why::SenderNotMember { name: "Eve".into(), channel: "muscat".into() },
            Why::Channel { refused: Refused::NotMember { channel: "muscat".into() } },
        ]
    );
    assert!(w.notes(B, ch).is_empty());
}

#[test]
fn a_strangers_messages_beyond_the_limits_are_refused() {
    const A: Who = 0;
    const B: Who = 1;
    const E: Who = 2;
    let people = [("Alice", "A"), ("Bao", "B"), ("Eve", "E")];
    let (mut w, ch) = World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal]);
    w.connect(B, E);
    w.clear();
    let not_member = || Why::Channel { refused: Refused::NotMember { channel: "muscat".into() } };

    // Count: MAX_HELD messages are held, the next is refused.
    for i in 0..MAX_HELD {
        w.send_note(E, B, ch, &format!("note {i}"));
    }
    w.flush();
    assert_eq!(w.held(B, ch), MAX_HELD);
    assert!(w.rejections(B).is_empty());
    w.send_note(E, B, ch, "one too many");
    w.flush();
    assert_eq!(w.held(B, ch), MAX_HELD);
    assert_eq!(w.rejections(B), [not_member()]);

    // Bytes: up to MAX_HELD_BYTES in all, not one more.
    let ch2 = w.create(A, "oman", Mode::Direct, Role::Principal);
    w.add(A, ch2, B, Role::Principal).unwrap();
    w.settle();
    w.clear();
    w.send_note(E, B, ch2, &"x".repeat(MAX_HELD_BYTES - 100));
    w.send_note(E, B, ch2, &"y".repeat(100));
    w.flush();
    assert_eq!(w.held(B, ch2), 2);
    assert!(w.rejections(B).is_empty());
    w.send_note(E, B, ch2, "z");
    w.flush();
    assert_eq!(w.held(B, ch2), 2);
    assert_eq!(w.rejections(B), [Why::Channel { refused: Refused::NotMember { channel: "oman".into() } }]);

    // Channels: messages are held for at most MAX_HELD_CHANNELS channels we are not in.
    w.clear();
    let foreign = |i: usize| ChannelId([i as u8 + 1; 16]);
    for i in 0..MAX_HELD_CHANNELS {
        w.send_note(E, B, foreign(i), "are you in?");
    }
    w.flush();
    assert!(w.rejections(B).is_empty());
    assert!((0..MAX_HELD_CHANNELS).all(|i| w.held(B, foreign(i)) == 1));
    w.send_note(E, B, foreign(MAX_HELD_CHANNELS), "are you in?");
    w.send_note(E, B, foreign(0), "a second one, in a channel already holding some");
    w.flush();
    assert_eq!(w.rejections(B), [Why::NotInChannel]);
    assert_eq!(w.held(B, foreign(MAX_HELD_CHANNELS)), 0);
    assert_eq!(w.held(B, foreign(0)), 2);
    assert!(!w.holds(B, foreign(0)), "held messages open no channel");
}

// --- forged states

#[test]
fn a_state_not_from_the_creator_is_refused_and_changes_nothing() {
    const A: Who = 0;
    const B: Who = 1;
    const C: Who = 2;
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C")];
    let (mut w, ch) =
        World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal, Role::Observer]);
    assert!(w.has_session(B, C));
    let mut promoted = w.channel(B, ch).state;
    promoted.version += 1;
    promoted.members[2].role = Role::Principal;
    let mut usurped = promoted.clone();
    usurped.creator = w.key(B);
    let before = [w.stored(A, ch), w.stored(C, ch)];
    w.clear();
    for state in [promoted, usurped] {
        w.send(B, C, ch, &ChannelBody::State { state: state.clone() });
        w.send(B, A, ch, &ChannelBody::State { state });
    }
    w.settle();
    let forged = Why::Channel { refused: Refused::NotFromCreator };
    for who in [A, C] {
        assert_eq!(w.rejections(who), [forged.clone(), forged.clone()]);
        assert!(w.events(who, ch).is_empty());
    }
    assert_eq!([w.stored(A, ch), w.stored(C, ch)], before);
    assert_eq!(w.channel(C, ch).state.member(&w.key(C)).unwrap().role, Role::Observer);
}

/// M5: a creator that shows two members different states under one version (here a phase
/// moved for Chen alone) is found out at the next channel message between them, which names
/// the state its sender holds; an honest phase move, with its messages crossing, shows nothing.
#[test]
fn a_creator_showing_members_different_states_is_found_out_by_the_next_message_between_them() {
    const A: Who = 0;
    const B: Who = 1;
    const C: Who = 2;
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C")];
    let (mut w, ch) =
        World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal, Role::Principal]);
    w.settle();
    let forked = |w: &World, who: Who| {
        w.events(who, ch).into_iter().filter(|e| matches!(e, ChannelEvent::StateForked { .. })).count()
    };
    // Honest: every consent crosses the creator's tallies on the way, and nothing is shown.
    move_phase(&mut w, ch, &[A, B, C], Phase::Drafting);
    assert_eq!([forked(&w, A), forked(&w, B), forked(&w, C)], [0, 0, 0]);
    assert!((0..3).all(|p| w.view(p, ch).behind.is_none()));
    // The creator moves the phase on for Chen only; Bao gets the same version unchanged.
    let base = w.channel(A, ch).state;
    let mut for_bao = base.clone();
    for_bao.version += 1;
    let mut for_chen = for_bao.clone();
    for_chen.phase = Phase::Agreed;
    w.clear();
    w.send(A, B, ch, &ChannelBody::State { state: for_bao });
    w.send(A, C, ch, &ChannelBody::State { state: for_chen });
    w.settle();
    assert_eq!(w.channel(C, ch).state.phase, Phase::Agreed, "each update on its own passes the rules");
    assert_eq!(forked(&w, C), 0, "nothing to compare yet");
    // Bao's next channel message to Chen names Bao's state: same version, another digest.
    w.put_paper(B, ch, "Framework", TEXT).unwrap();
    w.settle();
    assert_eq!(
        w.events(C, ch).into_iter().find(|e| matches!(e, ChannelEvent::StateForked { .. })),
        Some(ChannelEvent::StateForked { name: "Bao".into(), side: "B".into(), version: base.version + 1 })
    );
    assert_eq!(forked(&w, B), 0, "Bao heard nothing from Chen yet");
    // Told once per version, not at every message.
    w.put_paper(B, ch, "Framework", "second draft").unwrap();
    w.settle();
    assert_eq!(forked(&w, C), 1);
}

/// L2: the host keeps the creator's removal of Dara from Chen. Chen cannot know from the
/// creator, but the next channel message from Bao names a newer state, and Chen's view says
/// it is behind until the state arrives.
#[test]
fn a_member_kept_from_the_creators_update_is_shown_behind_by_the_next_message_of_another() {
    const A: Who = 0;
    const B: Who = 1;
    const C: Who = 2;
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C"), ("Dara", "D")];
    let (mut w, ch) = World::channel_of(
        &people,
        Mode::Direct,
        Role::Principal,
        &[Role::Principal, Role::Principal, Role::Principal],
    );
    w.settle();
    w.remove(A, ch, "Dara").unwrap();
    let kept = w.take(|e| e.to == C && e.is_state());
    w.settle();
    let version = w.channel(A, ch).state.version;
    assert_eq!(w.channel(B, ch).state.version, version);
    assert!(w.view(C, ch).behind.is_none(), "nothing says so yet");
    w.consent(B, ch, Some(Phase::Drafting)).unwrap();
    let to_chen = w.take(|e| e.from == B && e.to == C);
    w.deliver(to_chen);
    assert_eq!(w.view(C, ch).behind, Some(("Bao".to_owned(), version)));
    assert!(w.channel(C, ch).state.member(&w.key(3)).is_some(), "Chen still counts Dara in: the limit");
    w.deliver(kept);
    assert_eq!(w.channel(C, ch).state.version, version);
    assert_eq!(w.view(C, ch).behind, None, "caught up");
    w.settle();
}

#[test]
fn a_creators_state_that_changes_what_no_update_may_change_is_refused_and_changes_nothing() {
    const A: Who = 0;
    const B: Who = 1;
    const C: Who = 2;
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C")];
    let (mut w, ch) =
        World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal, Role::Observer]);
    move_phase(&mut w, ch, &[A, B], Phase::Drafting);
    let base = w.channel(A, ch).state;
    type Change = fn(&mut ChannelState);
    let changes: [(&str, Change); 8] = [
        ("a member's seal key", |s| s.members[2].card.seal_key = [9; 32]),
        ("a member's name", |s| s.members[1].card.name = "Mallory".into()),
        ("a member's side", |s| s.members[1].card.side = "A".into()),
        ("an observer promoted", |s| s.members[2].role = Role::Principal),
        ("when a member joined", |s| s.members[2].since = 1),
        ("the retention of a phase", |s| s.policies[Phase::Drafting as usize].retention_secs = None),
        ("a phase skipped", |s| s.phase = Phase::Public),
        ("the phase moved back", |s| s.phase = Phase::Exploratory),
    ];
    for (what, change) in changes {
        let mut state = base.clone();
        state.version += 1;
        change(&mut state);
        let before = [w.stored(B, ch), w.stored(C, ch)];
        w.clear();
        w.send(A, B, ch, &ChannelBody::State { state: state.clone() });
        w.send(A, C, ch, &ChannelBody::State { state });
        w.settle();
        for who in [B, C] {
            let refused = w.rejections(who);
            assert!(
                matches!(refused.as_slice(), [Why::Channel { refused: Refused::ImmutableChanged { .. } }]),
                "{what}: {refused:?}"
            );
            assert!(w.events(who, ch).is_empty(), "{what}");
        }
        assert_eq!([w.stored(B, ch), w.stored(C, ch)], before, "{what}: the channel changed");
    }
    // The same creator's honest update goes through.
    let mut state = base.clone();
    state.version += 1;
    state.phase = Phase::Agreed;
    w.clear();
    w.send(A, B, ch, &ChannelBody::State { state });
    w.settle();
    assert!(w.rejections(B).is_empty());
    assert_eq!(w.channel(B, ch).state.phase, Phase::Agreed);
}

// --- shuttle

#[test]
fn in_a_shuttle_sides_reach_only_the_hub_and_what_it_passes_on_is_marked_relayed() {
    const HUB: Who = 0;
    const SA: Who = 1;
    const SB: Who = 2;
    let people = [("Omar", "Oman"), ("Alice", "A"), ("Bao", "B")];
    let (mut w, ch) =
        World::channel_of(&people, Mode::Shuttle, Role::Intermediary, &[Role::Principal, Role::Principal]);
    assert!(
        w.parties[SA].scheduled.is_empty() && w.parties[SB].scheduled.is_empty(),
        "sides are never introduced"
    );
    w.connect(SA, SB); // they know each other outside the channel
    w.clear();

    assert_eq!(w.note(SA, ch, "we could move on the border", &[]), Ok(s(&["Omar"])));
    assert_eq!(
        w.note(SA, ch, "to Bao", &["Bao"]),
        Err(Why::Channel { refused: Refused::SideNamesRecipients })
    );
    assert_eq!(w.wire.len(), 1);
    assert_eq!(w.wire[0].to, HUB);
    w.settle();
    assert_eq!(w.notes(HUB, ch), pairs(&[("Alice", "we could move on the border")]));
    assert!(w.notes(SB, ch).is_empty());

    // A side's note straight to another side, or posing as the hub, is refused.
    w.send_note(SA, SB, ch, "psst");
    w.send(
        SA,
        SB,
        ch,
        &ChannelBody::Relayed { origin: "Omar".into(), text: "psst".into(), rephrased: false },
    );
    w.settle();
    assert_eq!(w.rejections(SB), [Why::ShuttleSidesApart, Why::OnlyHubRelays]);
    assert!(w.notes(SB, ch).is_empty());

    // The hub passes Alice's note on: reworded, then as it was.
    let entry = 1 + w
        .timeline(HUB, ch)
        .iter()
        .position(|e| matches!(e, Entry::Note { outgoing: false, .. }))
        .unwrap();
    assert_eq!(w.forward(SA, ch, entry, &["Bao"], None), Err(Why::NotHub { channel: "muscat".into() }));
    w.forward(HUB, ch, entry, &["Bao"], Some("Alice's side is flexible on the border")).unwrap();
    w.forward(HUB, ch, entry, &["Bao"], None).unwrap();
    w.settle();
    let relayed: Vec<(String, String, Option<String>, bool)> = w
        .timeline(SB, ch)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Note { from, text, relayed_by, rephrased, outgoing: false, .. } => {
                Some((from, text, relayed_by, rephrased))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        relayed,
        [
            ("Alice".into(), "Alice's side is flexible on the border".into(), Some("Omar".into()), true),
            ("Alice".into(), "we could move on the border".into(), Some("Omar".into()), false),
        ]
    );
    let passed: Vec<ChannelEvent> =
        w.events(HUB, ch).into_iter().filter(|e| matches!(e, ChannelEvent::Relayed { .. })).collect();
    assert_eq!(
        passed,
        [
            ChannelEvent::Relayed { from: "Alice".into(), entry, to: s(&["Bao"]), rephrased: true },
            ChannelEvent::Relayed { from: "Alice".into(), entry, to: s(&["Bao"]), rephrased: false },
        ]
    );
    assert!(w.notes(SA, ch).is_empty(), "Alice is not sent what the hub passed to Bao");

    // Introductions have no place in a shuttle.
    w.clear();
    let intro = ChannelBody::Introduce { from: w.key(SB), to: w.key(SA), invitation: "invitation".into() };
    w.send(SB, HUB, ch, &intro);
    w.send(HUB, SA, ch, &intro);
    w.settle();
    assert_eq!(w.rejections(HUB), [Why::IntroductionNotInShuttle]);
    assert_eq!(w.rejections(SA), [Why::IntroductionNotInShuttle]);
    assert!(w.parties[SA].scheduled.is_empty());
}

/// An introduction is passed by the creator from a newer member to an earlier one: one that
/// names the creator itself, or its own sender, as the earlier member is no introduction.
#[test]
fn an_introduction_to_the_creator_or_to_its_own_sender_is_refused() {
    const A: Who = 0;
    const B: Who = 1;
    let (mut w, ch) =
        World::channel_of(&[("Alice", "A"), ("Bao", "B")], Mode::Direct, Role::Principal, &[Role::Principal]);
    for to in [B, A] {
        w.clear();
        let body = ChannelBody::Introduce { from: w.key(B), to: w.key(to), invitation: "invitation".into() };
        w.send(B, A, ch, &body);
        // Delivered by hand: the harness refuses a party sealing to itself.
        let env = w.take(|_| true);
        let sealed_to_self =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.deliver(env))).is_err();
        assert!(!sealed_to_self, "the creator sealed the introduction to itself");
        assert_eq!(w.rejections(A), [Why::BadIntroduction], "to party {to}");
        assert!(w.wire.is_empty() && w.parties[A].parked.is_empty(), "to party {to}: it was passed on");
    }
}

#[test]
fn early_seals_are_bounded() {
    const MAX_EARLY_SEALS: usize = 4 * backchannel_proto::channel::MAX_MEMBERS;
    let people = [("Alice", "A"), ("Bao", "B")];
    let (mut w, ch) = World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal]);
    w.clear();
    let signature = ratify(&w.parties[1].identity, TEXT.as_bytes()).unwrap();
    for i in 0..=MAX_EARLY_SEALS {
        let mut proposal = [0; 32];
        proposal[..8].copy_from_slice(&(i as u64).to_le_bytes());
        w.send(
            1,
            0,
            ch,
            &ChannelBody::Ratification {
                proposal,
                signature: signature.clone(),
                signer: None,
                signed_at: None,
                possession: None,
            },
        );
    }
    w.settle();
    assert_eq!(w.channel(0, ch).docs.early_seals.len(), MAX_EARLY_SEALS);
    assert_eq!(w.rejections(0), [Why::TooManyEarlySeals]);
    let early = w.events(0, ch).into_iter().filter(|e| matches!(e, ChannelEvent::EarlySeal { .. })).count();
    assert_eq!(early, MAX_EARLY_SEALS);
}

// --- phases

#[test]
fn consents_of_every_side_move_the_phase_at_the_creator_who_publishes_it() {
    const A: Who = 0;
    const B: Who = 1;
    const C: Who = 2;
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C")];
    let (mut w, ch) =
        World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal, Role::Observer]);
    let version = w.channel(A, ch).state.version;
    w.clear();
    w.consent(B, ch, Some(Phase::Drafting)).unwrap();
    w.settle();
    let bao = ChannelEvent::Consented { name: Some("Bao".into()), side: "B".into(), phase: Phase::Drafting };
    assert_eq!(w.events(A, ch), std::slice::from_ref(&bao));
    assert_eq!(w.events(C, ch), [bao]);
    let tally = PhaseVote { to: Some(Phase::Drafting), consents: s(&["B"]) };
    assert_eq!(w.channel(A, ch).state.vote, tally, "the creator publishes the tally");
    for who in [A, B, C] {
        assert_eq!(w.channel(who, ch).state.version, version + 1);
        assert_eq!(w.channel(who, ch).state.phase, Phase::Exploratory);
        assert_eq!(w.view(who, ch).proposed_phase, Some((Phase::Drafting, s(&["A"]))));
    }

    // An observer has no say; no phase is skipped.
    assert_eq!(
        w.consent(C, ch, None),
        Err(Why::Channel { refused: Refused::NotPrincipal { name: "Chen".into() } })
    );
    let two_ahead = Refused::NotNextPhase {
        channel: "muscat".into(),
        phase: Phase::Exploratory,
        next: Some(Phase::Drafting),
    };
    assert_eq!(w.consent(B, ch, Some(Phase::Agreed)), Err(Why::Channel { refused: two_ahead.clone() }));
    w.clear();
    let before = w.stored(A, ch);
    w.send(C, A, ch, &ChannelBody::PhaseConsent { phase: Phase::Drafting });
    w.send(B, A, ch, &ChannelBody::PhaseConsent { phase: Phase::Agreed });
    w.settle();
    assert_eq!(
        w.rejections(A),
        [
            Why::Channel { refused: Refused::NotPrincipal { name: "Chen".into() } },
            Why::Channel { refused: two_ahead }
        ]
    );
    assert_eq!(w.stored(A, ch), before);
    assert!(w.wire.is_empty() && w.delivered.len() == 2, "nothing was published");

    // The last side consents: the creator moves the phase and publishes it.
    w.clear();
    w.consent(A, ch, None).unwrap();
    assert_eq!(
        w.events(A, ch),
        [
            ChannelEvent::Consented { name: None, side: "A".into(), phase: Phase::Drafting },
            ChannelEvent::PhaseMoved { phase: Phase::Drafting, every_side_consented: true },
        ]
    );
    w.settle();
    for who in [B, C] {
        assert_eq!(
            w.events(who, ch),
            [
                ChannelEvent::Consented {
                    name: Some("Alice".into()),
                    side: "A".into(),
                    phase: Phase::Drafting
                },
                ChannelEvent::PhaseMoved { phase: Phase::Drafting, every_side_consented: false },
            ]
        );
    }
    for who in [A, B, C] {
        let c = w.channel(who, ch);
        assert_eq!((c.state.phase, c.state.version), (Phase::Drafting, version + 2));
        assert_eq!((c.state.vote, c.vote), (PhaseVote::default(), PhaseVote::default()));
        assert!(w.rejections(who).is_empty());
    }
}

/// A consent travels over its sender's session, the state that moves the phase over the
/// creator's: the state can come first. The consent it already counted is then stale, not a
/// peer's fault.
#[test]
fn a_consent_overtaken_by_the_phase_move_it_took_part_in_is_not_a_rejection() {
    const A: Who = 0;
    const B: Who = 1;
    const C: Who = 2;
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C")];
    let (mut w, ch) =
        World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal, Role::Observer]);
    w.consent(A, ch, Some(Phase::Drafting)).unwrap();
    w.settle();
    w.clear();
    w.consent(B, ch, None).unwrap();
    let to_chen = w.take(|e| e.from == B && e.to == C);
    w.flush(); // Alice moves the phase; Chen has the new state
    assert_eq!(w.channel(C, ch).state.phase, Phase::Drafting);
    let before = w.stored(C, ch);
    w.deliver(to_chen);
    assert_eq!(w.rejections(C), Vec::<Why>::new(), "a stale consent is shown as a peer's fault");
    assert_eq!(w.stored(C, ch), before);
}

// --- documents

#[test]
fn non_paper_versions_are_numbered_the_same_everywhere_even_when_drafts_cross() {
    const A: Who = 0;
    const B: Who = 1;
    const C: Who = 2;
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C")];
    let (mut w, ch) =
        World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal, Role::Principal]);
    w.clear();
    assert_eq!(w.put_paper(A, ch, "Framework", "first draft"), Ok(1));
    w.settle();
    assert_eq!(w.put_paper(A, ch, "Framework", "Alice's second"), Ok(2));
    assert_eq!(w.put_paper(B, ch, "Framework", "Bao's second"), Ok(2), "Bao has not seen Alice's yet");
    w.settle();

    let hex = |t: &str| hex_encode(&text_hash(t.as_bytes()));
    let seconds = sorted(vec![hex("Alice's second"), hex("Bao's second")]);
    let expected = [(1, hex("first draft")), (2, seconds[0].clone()), (3, seconds[1].clone())];
    let texts = [
        ("first draft", hex("first draft")),
        ("Alice's second", hex("Alice's second")),
        ("Bao's second", hex("Bao's second")),
    ];
    for who in [A, B, C] {
        let c = w.channel(who, ch);
        let versions: Vec<(u32, String)> =
            c.docs.versions("Framework").into_iter().map(|p| (p.version, p.sha256)).collect();
        assert_eq!(versions, expected, "party {who}");
        for (n, sha) in &expected {
            let (_, id) = c.docs.version(&c.state, "Framework", Some(*n)).unwrap();
            let (text, _) = texts.iter().find(|(_, h)| h == sha).unwrap();
            assert_eq!(w.parties[who].book.texts.get(&id.key()).map(String::as_str), Some(*text));
        }
        let put =
            w.events(who, ch).into_iter().filter(|e| matches!(e, ChannelEvent::PaperPut { .. })).count();
        assert_eq!(put, 3, "party {who}");
    }
    assert!(w.events(C, ch).iter().all(|e| matches!(e, ChannelEvent::PaperPut { yours: false, .. })));

    // A version sent again changes nothing.
    w.clear();
    let before = w.stored(C, ch);
    w.send(
        A,
        C,
        ch,
        &ChannelBody::NonPaper { title: "Framework".into(), version: 2, text: "Alice's second".into() },
    );
    w.settle();
    assert!(w.entries(C).is_empty(), "{:?}", w.entries(C));
    assert_eq!(w.stored(C, ch), before);
}

#[test]
fn a_proposal_is_put_only_while_drafting_or_agreed() {
    const A: Who = 0;
    const B: Who = 1;
    let (mut w, ch) =
        World::channel_of(&[("Alice", "A"), ("Bao", "B")], Mode::Direct, Role::Principal, &[Role::Principal]);
    let not_drafting = |phase| Err(Why::NotDraftingPhase { channel: "muscat".into(), phase });
    assert_eq!(w.propose(A, ch, "Treaty", TEXT, &["A", "B"]), not_drafting(Phase::Exploratory));
    move_phase(&mut w, ch, &[A, B], Phase::Drafting);
    assert!(
        matches!(w.propose(A, ch, "Treaty", TEXT, &["A", "Z"]), Err(Why::NotASide { side, .. }) if side == "Z")
    );
    let view = w.propose(A, ch, "Treaty", TEXT, &["A", "B"]).unwrap();
    assert_eq!(view.id, hex_encode(&text_hash(TEXT.as_bytes())));
    assert_eq!((view.signatories, view.missing), (s(&["A", "B"]), s(&["A", "B"])));
    assert_eq!(w.propose(A, ch, "Treaty again", TEXT, &["A"]), Err(Why::AlreadyProposed), "the same text");
    w.settle();
    move_phase(&mut w, ch, &[A, B], Phase::Agreed);
    assert!(w.propose(B, ch, "Annex", "Annex text", &["B"]).is_ok());
    move_phase(&mut w, ch, &[A, B], Phase::Public);
    assert_eq!(w.propose(A, ch, "Late", "Late text", &["A"]), not_drafting(Phase::Public));
}

/// A channel of Alice (A), Bao (B), Chen (C), all principals, and Dana (B), an observer, in
/// drafting, with Alice's proposal of TEXT for sides A and B delivered everywhere.
fn proposed() -> (World, ChannelId, [u8; 32]) {
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C"), ("Dana", "B")];
    let roles = [Role::Principal, Role::Principal, Role::Observer];
    let (mut w, ch) = World::channel_of(&people, Mode::Direct, Role::Principal, &roles);
    move_phase(&mut w, ch, &[0, 1, 2], Phase::Drafting);
    w.clear();
    w.propose(0, ch, "Treaty", TEXT, &["A", "B"]).unwrap();
    w.settle();
    (w, ch, text_hash(TEXT.as_bytes()))
}

#[test]
fn every_signatory_ratifies_and_the_seals_are_counted_everywhere() {
    let (mut w, ch, id) = proposed();
    for who in 1..4 {
        let proposed = ChannelEvent::Proposed {
            by: Some("Alice".into()),
            title: "Treaty".into(),
            id: hex_encode(&id),
            signatories: s(&["A", "B"]),
        };
        assert_eq!(w.events(who, ch), [proposed], "party {who}");
    }
    assert!(matches!(w.ratify(2, ch, "Treaty"), Err(Why::NotSignatory { side, .. }) if side == "C"));
    assert_eq!(
        w.ratify(3, ch, "Treaty"),
        Err(Why::Channel { refused: Refused::ObserverReadsOnly { channel: "muscat".into() } })
    );
    w.clear();
    let view = w.ratify(0, ch, "Treaty").unwrap();
    assert_eq!(view.missing, s(&["B"]));
    assert!(matches!(w.ratify(0, ch, "Treaty"), Err(Why::AlreadyRatified { .. })));
    w.settle();
    w.ratify(1, ch, "1").unwrap();
    w.settle();
    for who in 0..4 {
        let p = w.channel(who, ch).docs.proposals().remove(0);
        assert!(p.missing.is_empty(), "party {who}: {p:?}");
        assert_eq!(p.ratified_by.len(), 2, "party {who}");
        assert!(p.unconfirmed.is_empty());
        let all = w
            .events(who, ch)
            .into_iter()
            .filter(|e| *e == ChannelEvent::RatifiedByAll { title: "Treaty".into() });
        assert_eq!(all.count(), 1, "party {who}");
        assert!(w.rejections(who).is_empty(), "party {who}: {:?}", w.rejections(who));
        let agreement = w.agreement(who, ch, "Treaty").unwrap();
        assert!(agreement.verify().is_ok(), "party {who}: the export verifies");
    }
    let ratified: Vec<ChannelEvent> =
        w.events(2, ch).into_iter().filter(|e| matches!(e, ChannelEvent::Ratified { .. })).collect();
    assert_eq!(
        ratified,
        [
            ChannelEvent::Ratified { name: Some("Alice".into()), side: "A".into(), title: "Treaty".into() },
            ChannelEvent::Ratified { name: Some("Bao".into()), side: "B".into(), title: "Treaty".into() },
        ]
    );
}

#[test]
fn a_ratification_with_a_tampered_signature_or_from_a_non_principal_is_refused() {
    let (mut w, ch, id) = proposed();
    w.clear();
    w.ratify(1, ch, "Treaty").unwrap();
    let mut to_chen = w.take(|e| e.to == 2);
    resign(&mut to_chen, ratify(&w.parties[1].identity, b"another text").unwrap());
    let before = w.stored(2, ch);
    w.deliver(to_chen);
    let refused = w.rejections(2);
    assert!(
        matches!(refused.as_slice(), [Why::SealDoesNotVerify { name, title, .. }] if name == "Bao" && title == "Treaty"),
        "{refused:?}"
    );
    assert_eq!(w.stored(2, ch), before);
    assert_eq!(w.channel(2, ch).docs.proposals()[0].missing, s(&["A", "B"]));
    w.settle();
    assert_eq!(w.channel(0, ch).docs.proposals()[0].missing, s(&["A"]), "the untampered copies count");

    // Dana is on side B but an observer: its seal is no principal's.
    w.clear();
    let signature = ratify(&w.parties[3].identity, TEXT.as_bytes()).unwrap();
    w.send(
        3,
        0,
        ch,
        &ChannelBody::Ratification {
            proposal: id,
            signature,
            signer: None,
            signed_at: None,
            possession: None,
        },
    );
    // In a direct channel no one passes on another's seal.
    let signature = ratify(&w.parties[1].identity, TEXT.as_bytes()).unwrap();
    w.send(
        2,
        0,
        ch,
        &ChannelBody::Ratification {
            proposal: id,
            signature,
            signer: Some(w.key(1)),
            signed_at: None,
            possession: None,
        },
    );
    let before = w.stored(0, ch);
    w.settle();
    assert_eq!(w.rejections(0), [Why::NotPrincipalSeal { name: "Dana".into() }, Why::SealPassedByNonHub]);
    assert_eq!(w.stored(0, ch), before);
}

#[test]
fn a_ratification_overtaking_its_proposal_is_kept_and_counted_when_the_proposal_arrives() {
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C")];
    let (mut w, ch) =
        World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal, Role::Principal]);
    move_phase(&mut w, ch, &[0, 1, 2], Phase::Drafting);
    for (title, text, tamper) in [("Treaty", TEXT, false), ("Annex", "Annex text", true)] {
        w.clear();
        w.propose(0, ch, title, text, &["A", "B"]).unwrap();
        let proposal = w.take(|e| e.to == 2);
        w.flush();
        w.ratify(1, ch, title).unwrap();
        let mut seal = w.take(|e| e.to == 2);
        if tamper {
            resign(&mut seal, ratify(&w.parties[1].identity, b"another text").unwrap());
        }
        w.deliver(seal);
        let id = text_hash(text.as_bytes());
        let early =
            ChannelEvent::EarlySeal { name: "Bao".into(), side: "B".into(), proposal: hex_encode(&id) };
        assert_eq!(w.events(2, ch), [early], "{title}");
        let c = w.channel(2, ch);
        assert_eq!(c.docs.early_seals.len(), 1);
        assert!(c.docs.proposals.iter().all(|p| p.id != id));

        w.clear();
        w.deliver(proposal);
        let c = w.channel(2, ch);
        assert!(c.docs.early_seals.is_empty());
        let view = c.docs.proposals().into_iter().find(|p| p.title == title).unwrap();
        let events = w.events(2, ch);
        assert!(matches!(&events[0], ChannelEvent::Proposed { by: Some(by), .. } if by == "Alice"));
        if tamper {
            assert_eq!(events.len(), 1, "{events:?}");
            assert!(
                matches!(w.rejections(2).as_slice(), [Why::SealDoesNotVerify { name, .. }] if name == "Bao")
            );
            assert_eq!(view.missing, s(&["A", "B"]));
        } else {
            let ratified =
                ChannelEvent::Ratified { name: Some("Bao".into()), side: "B".into(), title: title.into() };
            assert_eq!(events[1..], [ratified]);
            assert!(w.rejections(2).is_empty());
            assert_eq!(view.missing, s(&["A"]));
        }
    }
}

/// A shuttle in drafting: Omar (the hub) proposed TEXT for sides A and B; Alice (A) and Bao (B)
/// have it. `contact` gives Bao a contact card for Alice (`Some(true)`: Alice's own; `Some(false)`:
/// one under another seal key).
fn shuttle_proposed(contact: Option<bool>) -> (World, ChannelId) {
    let people = [("Omar", "Oman"), ("Alice", "A"), ("Bao", "B")];
    let (mut w, ch) =
        World::channel_of(&people, Mode::Shuttle, Role::Intermediary, &[Role::Principal, Role::Principal]);
    move_phase(&mut w, ch, &[1, 2], Phase::Drafting);
    assert_eq!(w.put_paper(1, ch, "Framework", "x"), Err(Why::OnlyHubDrafts { channel: "muscat".into() }));
    assert_eq!(
        w.propose(1, ch, "Treaty", TEXT, &["A", "B"]),
        Err(Why::OnlyHubDrafts { channel: "muscat".into() })
    );
    w.propose(0, ch, "Treaty", TEXT, &["A", "B"]).unwrap();
    w.settle();
    if let Some(own) = contact {
        w.connect(1, 2);
        if !own {
            let mut card = w.card(1);
            card.seal_key = w.card(0).seal_key;
            w.parties[2].book.contacts.insert(card.party(), (card, true));
        }
    }
    w.clear();
    (w, ch)
}

#[test]
fn in_a_shuttle_a_seal_the_hub_passes_on_is_shown_but_not_counted() {
    let (mut w, ch) = shuttle_proposed(None);
    w.ratify(1, ch, "Treaty").unwrap();
    assert_eq!(w.wire.len(), 1, "a side's seal goes to the hub only");
    assert_eq!(w.wire[0].to, 0);
    w.settle();
    let passed: Vec<(Who, Who)> = w
        .delivered
        .iter()
        .filter(|(_, _, _, b)| matches!(b, Some(ChannelBody::Ratification { signer: Some(_), .. })))
        .map(|(f, t, _, _)| (*f, *t))
        .collect();
    assert_eq!(passed, [(0, 2)], "the hub passes Alice's seal on to Bao");
    assert_eq!(
        w.channel(0, ch).docs.proposals()[0].missing,
        s(&["B"]),
        "the hub counts the seal it got itself"
    );
    let bao = w.channel(2, ch).docs.proposals().remove(0);
    assert_eq!(bao.missing, s(&["A", "B"]));
    assert_eq!(bao.unconfirmed.len(), 1);
    assert!(bao.ratified_by.is_empty());
    assert_eq!(
        w.events(2, ch),
        [ChannelEvent::SealOnlyThroughHub { name: "Alice".into(), side: "A".into(), title: "Treaty".into() }]
    );

    w.clear();
    w.ratify(2, ch, "Treaty").unwrap();
    w.settle();
    let omar = w.channel(0, ch).docs.proposals().remove(0);
    assert!(omar.missing.is_empty());
    assert!(w.events(0, ch).contains(&ChannelEvent::RatifiedByAll { title: "Treaty".into() }));
    let alice = w.channel(1, ch).docs.proposals().remove(0);
    assert_eq!((alice.missing, alice.unconfirmed.len()), (s(&["B"]), 1));
    assert!(!w.events(1, ch).contains(&ChannelEvent::RatifiedByAll { title: "Treaty".into() }));
    for who in 0..3 {
        assert!(w.rejections(who).is_empty(), "party {who}: {:?}", w.rejections(who));
    }
}

#[test]
fn in_a_shuttle_a_passed_on_seal_counts_under_the_key_learned_from_its_side() {
    for (own, counted) in [(true, true), (false, false)] {
        let (mut w, ch) = shuttle_proposed(Some(own));
        w.ratify(1, ch, "Treaty").unwrap();
        w.settle();
        let bao = w.channel(2, ch).docs.proposals().remove(0);
        if counted {
            assert_eq!((bao.missing, bao.unconfirmed.len(), bao.ratified_by.len()), (s(&["B"]), 0, 1));
            let ratified = ChannelEvent::Ratified {
                name: Some("Alice".into()),
                side: "A".into(),
                title: "Treaty".into(),
            };
            assert_eq!(w.events(2, ch), [ratified]);
        } else {
            assert_eq!(
                (bao.missing, bao.unconfirmed.len()),
                (s(&["A", "B"]), 1),
                "a contact under another key proves nothing"
            );
            assert!(matches!(w.events(2, ch).as_slice(), [ChannelEvent::SealOnlyThroughHub { .. }]));
        }
    }
}

// --- tampering

#[test]
fn a_body_that_no_longer_decodes_is_recorded_as_a_rejection_and_changes_nothing() {
    const A: Who = 0;
    const B: Who = 1;
    const C: Who = 2;
    let people = [("Alice", "A"), ("Bao", "B"), ("Chen", "C")];
    let (mut w, ch) = World::channel_of(&people, Mode::Direct, Role::Principal, &[Role::Principal]);
    let flip = |env: &mut Envelope| {
        for i in (0..env.msg.body.len()).step_by(7) {
            env.msg.body[i] ^= 0x55;
        }
        assert!(ChannelBody::decode(&env.msg.body).is_err());
    };
    let undecodable = |why: &[Why]| matches!(why, [Why::Message { fault: MessageFault::Misbehaved { .. } }]);

    // A non-paper, flipped; then one cut short.
    w.clear();
    let before = w.stored(B, ch);
    w.put_paper(A, ch, "Framework", "a draft").unwrap();
    let mut env = w.take(|e| e.to == B);
    flip(&mut env);
    w.deliver(env);
    assert!(undecodable(&w.rejections(B)), "{:?}", w.rejections(B));
    let log = &w.parties[B].log;
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].0.kind, log[0].0.key.clone()), (ConversationKind::Contact, contact_id(A)));
    assert_eq!(w.stored(B, ch), before);
    assert!(w.parties[B].book.texts.is_empty());
    w.clear();
    w.put_paper(A, ch, "Framework", "another draft").unwrap();
    let mut env = w.take(|e| e.to == B);
    env.msg.body.truncate(env.msg.body.len() / 2);
    w.deliver(env);
    assert!(undecodable(&w.rejections(B)));
    assert_eq!(w.stored(B, ch), before);

    // The state that adds Chen, flipped: Bao keeps the old one, Chen holds no channel.
    w.clear();
    w.connect(A, C);
    w.add(A, ch, C, Role::Principal).unwrap();
    let mut envs = w.take_all(|_| true);
    for env in &mut envs {
        flip(env);
    }
    for env in envs {
        w.deliver(env);
    }
    assert!(undecodable(&w.rejections(B)));
    assert!(undecodable(&w.rejections(C)));
    assert_eq!(w.stored(B, ch), before);
    assert!(!w.holds(C, ch));
    assert_eq!(w.held(C, ch), 0);
}
