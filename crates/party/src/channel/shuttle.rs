//! Shuttle channels: a star around the intermediary, who passes a side's note on to the
//! others, marked as passed on by it, and says when it reworded it.

use backchannel_proto::channel::{ChannelBody, Member};
use backchannel_proto::identity::Card;
use backchannel_proto::message::Message;

use super::Channel;
use crate::conversation::received;
use crate::event::{ChannelEvent, Entry};
use crate::step::Step;
use crate::why::Why;
use crate::{Ctx, Outcome};

impl Channel {
    /// The hub passes the received note `entry` (1-based, as `read` numbers the timeline; the
    /// engine looks it up and gives it here) on to `to`; `rephrased` replaces the wording.
    pub fn forward(
        &self,
        ctx: &Ctx<'_>,
        entry: usize,
        note: Option<&Entry>,
        to: &[String],
        rephrased: Option<&str>,
    ) -> Outcome<(Vec<Member>, Step)> {
        self.not_removed()?;
        if self.state.hub() != Some(&ctx.me.party()) {
            return Err(Why::NotHub { channel: self.state.name.clone() });
        }
        let Some(Entry::Note { from, text, outgoing: false, .. }) = note else {
            return Err(Why::NotAReceivedNote { channel: self.state.name.clone(), entry });
        };
        let text = rephrased.unwrap_or(text).to_owned();
        crate::conversation::check_note(&text)?;
        let members = self.note_recipients(ctx, to)?;
        let body = ChannelBody::Relayed { origin: from.clone(), text, rephrased: rephrased.is_some() };
        let mut step = Step::none();
        step.seal(members.iter().map(Member::key).collect(), self.state.id, &body);
        let names = members.iter().map(|m| m.card.name.clone()).collect();
        let what =
            ChannelEvent::Relayed { from: from.clone(), entry, to: names, rephrased: rephrased.is_some() };
        self.tell(&mut step, ctx, what);
        Ok((members, step))
    }

    /// A note the hub passed on: shown as `origin`'s words, passed on by the hub.
    pub(super) fn on_relayed(
        &self,
        ctx: &Ctx<'_>,
        sender: &Card,
        msg: &Message,
        origin: String,
        text: String,
        rephrased: bool,
    ) -> Outcome {
        if self.state.hub() != Some(&sender.party()) {
            return Err(Why::OnlyHubRelays);
        }
        let mut relayed = msg.clone();
        relayed.body = text.into_bytes();
        let mut step = Step::none();
        step.record(
            &self.conversation(),
            received(ctx, &origin, &relayed, Some((sender.name.clone(), rephrased))),
        );
        Ok(step)
    }

    /// A member's own note in the channel.
    pub(super) fn on_note(&self, ctx: &Ctx<'_>, sender: &Card, msg: &Message) -> Outcome {
        let (me, from) = (ctx.me.party(), sender.party());
        self.state.may_post(&from)?;
        if let Some(hub) = self.state.hub()
            && hub != &me
            && hub != &from
        {
            return Err(Why::ShuttleSidesApart);
        }
        let mut step = Step::none();
        step.record(&self.conversation(), received(ctx, &sender.name, msg, None));
        Ok(step)
    }
}
