//! Phases: a principal proposes the next phase (proposing is consenting); the creator moves
//! the channel once every side with a principal has consented, and publishes the tally on
//! the way (members that do not hear each other, in a shuttle, learn of the proposal from it).

use backchannel_proto::channel::{ChannelBody, MemberKey, Phase, PhaseVote};
use backchannel_proto::identity::Card;

use super::Channel;
use crate::event::ChannelEvent;
use crate::step::Step;
use crate::why::Why;
use crate::{Ctx, Outcome};

impl Channel {
    /// Proposes moving to `phase` (or consents to the proposal in hand).
    pub fn consent(&mut self, ctx: &Ctx<'_>, phase: Option<Phase>) -> Outcome {
        self.not_removed()?;
        let me = ctx.me.party();
        let phase = phase
            .or(self.vote.to)
            .ok_or_else(|| Why::NoPhaseProposed { channel: self.state.name.clone() })?;
        self.vote.consent(&self.state, &me, phase)?;
        let mut step = Step::none();
        let to = self.state.item_recipients(&me).into_iter().map(|m| m.key()).collect();
        step.seal(to, self.state.id, &ChannelBody::PhaseConsent { phase });
        let what = ChannelEvent::Consented { name: None, side: ctx.me.side.clone(), phase };
        self.tell(&mut step, ctx, what);
        Ok(step.and(self.tally(ctx)))
    }

    /// A member's consent arrived.
    pub(super) fn on_consent(&mut self, ctx: &Ctx<'_>, sender: &Card, phase: Phase) -> Outcome {
        // A consent to the phase already entered was overtaken by the creator's state that
        // moved it (they travel over different sessions): late, not wrong.
        if phase == self.state.phase && self.state.member(&sender.party()).is_some() {
            return Ok(Step::none());
        }
        self.vote.consent(&self.state, &sender.party(), phase)?;
        let mut step = Step::none();
        let what =
            ChannelEvent::Consented { name: Some(sender.name.clone()), side: sender.side.clone(), phase };
        self.tell(&mut step, ctx, what);
        Ok(step.and(self.tally(ctx)))
    }

    /// The creator publishes the tally: the new phase once every side consented, else the vote
    /// so far.
    fn tally(&mut self, ctx: &Ctx<'_>) -> Step {
        let me: MemberKey = ctx.me.party();
        if self.state.creator != me {
            return Step::none();
        }
        self.state.version += 1;
        let Some(phase) = self.vote.agreed(&self.state) else {
            self.state.vote = self.vote.clone();
            return self.publish(ctx, None);
        };
        self.state.phase = phase;
        self.vote = PhaseVote::default();
        self.state.vote = PhaseVote::default();
        let mut step = self.publish(ctx, None);
        self.tell(&mut step, ctx, ChannelEvent::PhaseMoved { phase, every_side_consented: true });
        step
    }
}
