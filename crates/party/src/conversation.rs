//! Direct conversations with a contact: notes, and the numbering that shows what is missing.
//! Every kind of message is numbered per sender and channel, so a gap shows in the timeline
//! the message belongs to, and a late arrival closes it.

use backchannel_proto::delivery::{Arrival, SeqTracker};
use backchannel_proto::message::Message;

use crate::Ctx;
use crate::event::{Conversation, Entry, Event, channel_key};
use crate::step::{Effect, Step};

/// Records `msg`'s number in its sender's tracker for its channel. Returns how it arrived
/// and the gaps it opened or closed. `contact` is the sender's contact id.
pub fn track(
    ctx: &Ctx<'_>,
    tracker: &mut SeqTracker,
    contact: &str,
    from: &str,
    channel_name: Option<&str>,
    msg: &Message,
) -> (Arrival, Step) {
    let before = tracker.missing();
    let arrival = tracker.record(msg.sender_seq);
    let mut step = Step::none();
    if arrival == Arrival::Duplicate {
        return (arrival, step);
    }
    let after = tracker.missing();
    let new_gaps = after.into_iter().filter(|(a, b)| !before.iter().any(|(c, d)| a <= d && b >= c));
    let (conversation, source) = match channel_name {
        None => (Conversation::contact(contact, from), None),
        Some(name) => (
            Conversation {
                kind: crate::event::ConversationKind::Channel,
                key: channel_key(&msg.channel),
                name: name.to_owned(),
            },
            Some((contact.to_owned(), msg.channel)),
        ),
    };
    for (first, last) in new_gaps {
        let gap = Entry::Gap { from: from.to_owned(), first, last, at: ctx.now_ms, source: source.clone() };
        step.record(&conversation, gap);
    }
    if arrival == Arrival::Late {
        let closed = Event::GapClosed { conversation, from: from.to_owned(), seq: msg.sender_seq };
        step.push(Effect::Notify(closed));
    }
    (arrival, step)
}

/// A direct note from a contact, as it goes into the conversation.
pub fn note(ctx: &Ctx<'_>, contact: &str, from: &str, msg: &Message) -> Step {
    let mut step = Step::none();
    step.record(&Conversation::contact(contact, from), received(ctx, from, msg, None));
    step
}

/// A note as it arrived; `relayed_by` names the shuttle's intermediary that passed it on and
/// whether it said it reworded it.
pub fn received(ctx: &Ctx<'_>, from: &str, msg: &Message, relayed_by: Option<(String, bool)>) -> Entry {
    Entry::Note {
        from: from.to_owned(),
        outgoing: false,
        text: String::from_utf8_lossy(&msg.body).into_owned(),
        sent_at: msg.sent_at,
        at: ctx.now_ms,
        seq: msg.sender_seq,
        rephrased: relayed_by.as_ref().is_some_and(|(_, r)| *r),
        relayed_by: relayed_by.map(|(hub, _)| hub),
    }
}

/// Our own note, as it goes into the conversation when it is sealed.
pub fn sent(ctx: &Ctx<'_>, text: &str, seq: u64) -> Entry {
    Entry::Note {
        from: ctx.me.name.clone(),
        outgoing: true,
        text: text.to_owned(),
        sent_at: ctx.now_ms,
        at: ctx.now_ms,
        seq,
        relayed_by: None,
        rephrased: false,
    }
}

/// Largest note text, in bytes.
pub const MAX_NOTE: usize = 1024 * 1024;

/// A note has 1 to [`MAX_NOTE`] bytes.
pub fn check_note(text: &str) -> crate::Outcome<()> {
    if text.is_empty() || text.len() > MAX_NOTE {
        return Err(crate::Why::NoteSize { len: text.len(), max: MAX_NOTE });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_proto::identity::Identity;
    use backchannel_proto::message::{ChannelId, Kind};

    #[test]
    fn gaps_open_once_and_late_notes_close_them() {
        let me = Identity::generate("Alice", "A").unwrap().card();
        let ctx = Ctx { me: &me, now_ms: 5 };
        let mut tracker = SeqTracker::starting_at(1);
        let msg = |seq| Message::new(ChannelId::DIRECT, seq, 1, Kind::Note, b"x".to_vec());
        let (a, step) = track(&ctx, &mut tracker, "c1", "Bao", None, &msg(1));
        assert_eq!((a, step.effects.len()), (Arrival::InOrder, 0));
        let (_, step) = track(&ctx, &mut tracker, "c1", "Bao", None, &msg(4));
        let gaps: Vec<_> = step.entries().collect();
        assert!(matches!(gaps.as_slice(), [Entry::Gap { first: 2, last: 3, .. }]), "{gaps:?}");
        let (_, step) = track(&ctx, &mut tracker, "c1", "Bao", None, &msg(6));
        assert_eq!(step.entries().count(), 1, "only the new gap (5) is recorded");
        let (a, step) = track(&ctx, &mut tracker, "c1", "Bao", None, &msg(2));
        assert_eq!(a, Arrival::Late);
        assert!(matches!(step.effects.as_slice(), [Effect::Notify(Event::GapClosed { seq: 2, .. })]));
        let (a, step) = track(&ctx, &mut tracker, "c1", "Bao", None, &msg(2));
        assert_eq!((a, step.effects.len()), (Arrival::Duplicate, 0));
    }
}
