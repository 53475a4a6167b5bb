//! Who is in a channel: the creator adds and removes members and publishes each new state;
//! members take newer states in, learn who joined or left, and introduce themselves to the
//! members that were there before them.

use backchannel_proto::channel::{ChannelBody, ChannelState, Member, MemberKey, Mode, PhaseVote, Role};
use backchannel_proto::identity::{Card, safety_number};

use super::Channel;
use crate::event::{ChannelEvent, Conversation, Entry};
use crate::lookup::Lookup;
use crate::step::{Effect, Step, Task};
use crate::why::Why;
use crate::{Ctx, Outcome};

impl Channel {
    fn creator_only(&self, ctx: &Ctx<'_>) -> Outcome<()> {
        match self.state.creator == ctx.me.party() {
            true => Ok(()),
            false => Err(Why::NotCreator { channel: self.state.name.clone() }),
        }
    }

    /// Adds a contact of ours to a channel we created; every member learns the new
    /// membership, and the new member introduces itself to the others.
    pub fn add(&mut self, ctx: &Ctx<'_>, card: Card, role: Role) -> Outcome {
        self.creator_only(ctx)?;
        let (name, side) = (card.name.clone(), card.side.clone());
        self.state.add(card, role)?;
        let mut step = self.publish(ctx, None);
        self.tell(&mut step, ctx, ChannelEvent::MemberJoined { name, side, role });
        Ok(step)
    }

    /// Removes a member; it receives nothing sent after this (it is told it was removed, and
    /// nothing of who remains).
    pub fn remove(&mut self, ctx: &Ctx<'_>, query: &str) -> Outcome {
        self.creator_only(ctx)?;
        let key = self.find_member(query)?.key();
        let gone = self.state.remove(&key)?;
        self.former.push(key);
        let mut step = self.publish(ctx, Some(&gone));
        step.push(Effect::ForgetWaiting { channel: self.state.id, to: key });
        let (name, side) = (gone.card.name, gone.card.side);
        self.tell(&mut step, ctx, ChannelEvent::MemberRemoved { name, side });
        Ok(step)
    }

    /// Seals the creator's current state for every other member; a member just removed gets
    /// a state that lists only the creator, which tells it it is out and nothing more.
    pub(super) fn publish(&self, ctx: &Ctx<'_>, removed: Option<&Member>) -> Step {
        let mut step = Step::none();
        let everyone: Vec<MemberKey> =
            self.state.everyone_but(&ctx.me.party()).into_iter().map(Member::key).collect();
        step.seal(everyone, self.state.id, &ChannelBody::State { state: self.state.clone() });
        if let Some(gone) = removed {
            let mut notice = self.state.clone();
            notice.members.retain(|m| m.key() == self.state.creator);
            notice.vote = PhaseVote::default();
            step.seal(vec![gone.key()], self.state.id, &ChannelBody::State { state: notice });
        }
        step
    }

    /// A newer state from the creator: who joined, who left, whether the phase moved, and
    /// whom we must introduce ourselves to.
    pub(super) fn on_state(
        &mut self,
        ctx: &Ctx<'_>,
        lookup: &dyn Lookup,
        from: &MemberKey,
        state: ChannelState,
    ) -> Outcome {
        let before = self.state.clone();
        if !self.state.update_from(from, state)? {
            return Ok(Step::none());
        }
        let me = ctx.me.party();
        let mut step = Step::none();
        if self.state.member(&me).is_none() {
            self.removed = true;
            self.tell(&mut step, ctx, ChannelEvent::RemovedYou);
            return Ok(step);
        }
        self.removed = false;
        for m in self.state.members.iter().filter(|m| before.member(&m.key()).is_none()) {
            let what = ChannelEvent::MemberJoined {
                name: m.card.name.clone(),
                side: m.card.side.clone(),
                role: m.role,
            };
            step.record(&self.conversation(), Entry::channel(what, ctx.now_ms));
        }
        for m in before.members.iter().filter(|m| self.state.member(&m.key()).is_none()) {
            let what = ChannelEvent::MemberRemoved { name: m.card.name.clone(), side: m.card.side.clone() };
            step.record(&self.conversation(), Entry::channel(what, ctx.now_ms));
            step.push(Effect::ForgetWaiting { channel: self.state.id, to: m.key() });
            self.former.push(m.key());
        }
        if before.phase != self.state.phase {
            self.vote = PhaseVote::default();
            let what = ChannelEvent::PhaseMoved { phase: self.state.phase, every_side_consented: false };
            self.tell(&mut step, ctx, what);
        }
        merge_vote(&mut self.vote, &self.state.vote.clone());
        Ok(step.and(introductions(&self.state, ctx, lookup)))
    }

    /// A message for a channel we do not hold: only the creator's state that names us opens
    /// one. Returns the new channel.
    pub(super) fn first_contact(
        ctx: &Ctx<'_>,
        lookup: &dyn Lookup,
        sender: &Card,
        body: Option<ChannelBody>,
    ) -> Outcome<(Channel, Step)> {
        let Some(ChannelBody::State { state }) = body else { return Err(Why::NotInChannel) };
        if state.creator != sender.party() || state.member(&ctx.me.party()).is_none() {
            return Err(Why::StateNotFromCreator);
        }
        state.check()?;
        let mut channel = Channel::new(state);
        merge_vote(&mut channel.vote, &channel.state.vote.clone());
        let members = channel.state.members.iter().map(|m| m.card.name.clone()).collect();
        let mut step = Step::none();
        channel.tell(&mut step, ctx, ChannelEvent::AddedYou { by: sender.name.clone(), members });
        let step = step.and(introductions(&channel.state, ctx, lookup));
        Ok((channel, step))
    }

    /// An introduction: the creator passes a newer member's invitation on, or we are the
    /// earlier member it is for and accept it (after the receive transaction).
    pub(super) fn on_introduce(
        &mut self,
        ctx: &Ctx<'_>,
        sender: &MemberKey,
        new: MemberKey,
        to: MemberKey,
        invitation: String,
    ) -> Outcome {
        if self.state.mode == Mode::Shuttle {
            return Err(Why::IntroductionNotInShuttle);
        }
        let me = ctx.me.party();
        let creator = self.state.creator;
        // Between two members who are not the creator (who has a session with each) and not
        // each other: anything else would make the creator seal to itself or hand a member
        // its own invitation.
        let both_members = self.state.member(&new).is_some()
            && self.state.member(&to).is_some()
            && new != to
            && new != creator
            && to != creator;
        let mut step = Step::none();
        if self.state.creator == me && sender == &new && both_members {
            // Pass it on: the two have no session yet, we have one with each.
            step.seal(vec![to], self.state.id, &ChannelBody::Introduce { from: new, to, invitation });
            return Ok(step);
        }
        if sender == &self.state.creator && to == me && both_members {
            step.push(Effect::Schedule(Task::AcceptIntroduction {
                channel: self.state.id,
                from: new,
                invitation,
            }));
            return Ok(step);
        }
        Err(Why::BadIntroduction)
    }

    /// The creator passed us `from`'s invitation and we accepted it: what to record.
    pub fn connected(&self, ctx: &Ctx<'_>, card: &Card) -> Step {
        let what = ChannelEvent::Connected {
            name: card.name.clone(),
            side: card.side.clone(),
            safety_number: safety_number(ctx.me, card),
        };
        let mut step = Step::none();
        self.tell(&mut step, ctx, what);
        step
    }
}

/// Members we must introduce ourselves to (those before us we have no session with yet).
fn introductions(state: &ChannelState, ctx: &Ctx<'_>, lookup: &dyn Lookup) -> Step {
    let mut step = Step::none();
    let conversation = Conversation::channel(state);
    for m in state.to_introduce(&ctx.me.party()) {
        if lookup.has_session(&m.key()) {
            continue;
        }
        step.push(Effect::Schedule(Task::Introduce { channel: state.id, to: m.key() }));
        let what = ChannelEvent::Introducing { name: m.card.name.clone(), side: m.card.side.clone() };
        step.record(&conversation, Entry::channel(what, ctx.now_ms));
    }
    step
}

/// Adds the creator's tally to what we heard ourselves (in a direct channel we also hear
/// each consent; in a shuttle only the tally).
pub(super) fn merge_vote(ours: &mut PhaseVote, tally: &PhaseVote) {
    if tally.to.is_none() {
        return;
    }
    if ours.to != tally.to {
        *ours = tally.clone();
        return;
    }
    for side in &tally.consents {
        if !ours.consents.contains(side) {
            ours.consents.push(side.clone());
        }
    }
}
