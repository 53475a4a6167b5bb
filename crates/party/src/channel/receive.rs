//! Taking in one channel message from a member: the only place that knows every kind of
//! channel body. A refusal is the sender's fault: it becomes a rejection in the timeline, and
//! the channel stays exactly as it was (stage, then commit).

use backchannel_proto::channel::ChannelBody;
use backchannel_proto::identity::Card;
use backchannel_proto::message::{Kind, Message};

use super::{Channel, HeldMessages};
use crate::event::{Conversation, Entry};
use crate::lookup::Lookup;
use crate::step::Step;
use crate::why::{MessageFault, Why};
use crate::{Ctx, Outcome};

/// One message as it arrived: from which contact (its id) and party, and its decoded body
/// (`None` for a note; the engine refuses undecodable bodies before this).
pub struct Incoming<'a> {
    pub contact: &'a str,
    pub sender: &'a Card,
    pub msg: &'a Message,
}

/// The channel after a message, whether it changed (and must be stored), and the effects.
pub struct Received {
    pub channel: Option<Channel>,
    pub changed: bool,
    pub step: Step,
}

/// Decodes a channel message's body (`None` for a note).
pub fn body_of(msg: &Message) -> Result<Option<ChannelBody>, Why> {
    match msg.kind {
        Kind::Note => Ok(None),
        _ => ChannelBody::decode(&msg.body)
            .map(Some)
            .map_err(|e| Why::Message { fault: MessageFault::from(&e) }),
    }
}

/// Takes in one channel message. `channel` is what we hold for its channel id (`None`: not
/// in it yet), `held` its held messages.
pub fn receive(
    ctx: &Ctx<'_>,
    lookup: &dyn Lookup,
    channel: Option<Channel>,
    held: &mut HeldMessages,
    incoming: Incoming<'_>,
) -> Received {
    let contact = Conversation::contact(incoming.contact, &incoming.sender.name);
    let body = match body_of(incoming.msg) {
        Ok(b) => b,
        Err(why) => return rejected(channel, &contact, incoming.sender, why, ctx),
    };
    let is_state = matches!(body, Some(ChannelBody::State { .. }));
    let Some(mut channel) = channel else {
        // Other members' messages can overtake the creator's state that adds us.
        if !is_state && held.hold(false, lookup, incoming.contact, incoming.sender, incoming.msg) {
            return Received { channel: None, changed: false, step: Step::none() };
        }
        return match Channel::first_contact(ctx, lookup, incoming.sender, body) {
            Ok((mut channel, step)) => {
                let step = step.and(receive_held(&mut channel, ctx, lookup, held));
                let step = channel.stamp(step);
                Received { channel: Some(channel), changed: true, step }
            }
            Err(why) => rejected(None, &contact, incoming.sender, why, ctx),
        };
    };
    let from = incoming.sender.party();
    let stranger = channel.state.member(&from).is_none() && !channel.former.contains(&from);
    // A new member's first words can overtake the state that admits it: held until a newer
    // state explains them (or refused then).
    if stranger && !is_state && held.hold(true, lookup, incoming.contact, incoming.sender, incoming.msg) {
        return Received { channel: Some(channel), changed: false, step: Step::none() };
    }
    let version = channel.state.version;
    let (mut changed, mut step) = checked(&mut channel, ctx, lookup, incoming.sender, incoming.msg, body);
    if is_state && channel.state.version != version {
        step = step.and(receive_held(&mut channel, ctx, lookup, held));
    }
    if let Some(at) = ChannelBody::state_at(&incoming.msg.body).filter(|_| incoming.msg.kind == Kind::Channel)
    {
        let (heard, told) = channel.heard_state(ctx, incoming.sender, &at);
        changed |= heard;
        step = step.and(told);
    }
    let step = channel.stamp(step);
    Received { channel: Some(channel), changed, step }
}

/// After a new state: every held message is taken in now, or refused.
pub fn receive_held(
    channel: &mut Channel,
    ctx: &Ctx<'_>,
    lookup: &dyn Lookup,
    held: &mut HeldMessages,
) -> Step {
    let mut step = Step::none();
    if channel.removed {
        held.take();
        return step;
    }
    for h in held.take() {
        let msg = h.message(channel.state.id);
        step = step.and(match body_of(&msg) {
            Ok(body) => checked(channel, ctx, lookup, &h.sender, &msg, body).1,
            Err(why) => rejection(&Conversation::contact(&h.contact, &h.sender.name), &h.sender, why, ctx),
        });
    }
    step
}

fn rejection(conversation: &Conversation, sender: &Card, why: Why, ctx: &Ctx<'_>) -> Step {
    let mut step = Step::none();
    step.record(conversation, Entry::rejected(&sender.name, why, ctx.now_ms));
    step
}

fn rejected(channel: Option<Channel>, at: &Conversation, sender: &Card, why: Why, ctx: &Ctx<'_>) -> Received {
    Received { channel, changed: false, step: rejection(at, sender, why, ctx) }
}

/// Runs a message through the channel's rules. A note only reads the channel; anything else
/// runs on a copy that replaces it only if every check passed.
fn checked(
    channel: &mut Channel,
    ctx: &Ctx<'_>,
    lookup: &dyn Lookup,
    sender: &Card,
    msg: &Message,
    body: Option<ChannelBody>,
) -> (bool, Step) {
    let conversation = channel.conversation();
    let Some(body) = body else {
        return match channel.on_note(ctx, sender, msg) {
            Ok(step) => (false, step),
            Err(why) => (false, rejection(&conversation, sender, why, ctx)),
        };
    };
    let mut staged = clone(channel);
    match on_message(&mut staged, ctx, lookup, sender, msg, body) {
        Ok(step) => {
            *channel = staged;
            (true, step)
        }
        Err(why) => (false, rejection(&conversation, sender, why, ctx)),
    }
}

/// A deep copy through the stored form: the probe book holds secrets that are not `Clone`
/// by design, and this is the form the store keeps anyway.
fn clone(channel: &Channel) -> Channel {
    serde_json::to_vec(channel)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| Channel::new(channel.state.clone()))
}

fn on_message(
    channel: &mut Channel,
    ctx: &Ctx<'_>,
    lookup: &dyn Lookup,
    sender: &Card,
    msg: &Message,
    body: ChannelBody,
) -> Outcome {
    let from = sender.party();
    if channel.state.member(&from).is_none() {
        return Err(Why::SenderNotMember { name: sender.name.clone(), channel: channel.state.name.clone() });
    }
    match body {
        ChannelBody::State { state: new } => channel.on_state(ctx, lookup, &from, new),
        ChannelBody::Relayed { origin, text, rephrased } => {
            channel.on_relayed(ctx, sender, msg, origin, text, rephrased)
        }
        ChannelBody::Introduce { from: new, to, invitation } => {
            channel.on_introduce(ctx, &from, new, to, invitation)
        }
        ChannelBody::PhaseConsent { phase } => channel.on_consent(ctx, sender, phase),
        probe @ (ChannelBody::ProbePropose { .. }
        | ChannelBody::ProbeAccept { .. }
        | ChannelBody::ProbeDecline { .. }
        | ChannelBody::ProbeQuery { .. }
        | ChannelBody::ProbeReply { .. }
        | ChannelBody::ProbeDisclosure { .. }
        | ChannelBody::ProbeAbort { .. }) => channel.probes.receive(&channel.state, ctx, sender, probe),
        doc @ (ChannelBody::NonPaper { .. }
        | ChannelBody::Proposal { .. }
        | ChannelBody::Ratification { .. }) => channel.docs.receive(&channel.state, ctx, lookup, sender, doc),
    }
}
