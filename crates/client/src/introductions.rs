//! Introductions between channel members who have never met, run after receiving (they need
//! the network: a fresh queue on a relay). The newer member makes a one-time invitation and
//! hands it to the creator, who passes it to the earlier member, who accepts it. The creator
//! could swap in its own invitation: comparing safety numbers with each member, out of band,
//! is what catches that (see docs/threat-model.md).

use backchannel_proto::channel::{ChannelBody, MemberKey};
use backchannel_proto::invitation::Invitation;
use backchannel_proto::message::{ChannelId, Kind};
use backchannel_wire::hex_encode;

use crate::channels::{CHANNEL, ChannelRecord, TASK, Task, contact_by_key, seal_to, timeline_key};
use crate::error::{ClientError, Result};
use crate::model::{Entry, Event};
use crate::party::{Party, load_card, now_ms};

/// How long an introduction's invitation stays valid.
const INTRODUCTION_TTL_SECS: u64 = 7 * 24 * 3600;

impl Party {
    /// Runs the introductions found while receiving. A relay that cannot be reached leaves
    /// its task for the next sync; anything else that fails is shown and dropped.
    pub(crate) async fn run_tasks(&mut self) -> Result<Vec<Event>> {
        let tasks: Vec<(String, Task)> = self.store.tx(|tx| tx.all(TASK))?;
        let mut events = Vec::new();
        for (id, task) in tasks {
            let outcome = match task {
                Task::Introduce { channel, to } => self.introduce(channel, to).await,
                Task::AcceptIntroduction { channel, from, invitation } => {
                    self.accept_introduction(channel, from, &invitation).await
                }
            };
            match outcome {
                Err(e @ (ClientError::RelayUnreachable { .. } | ClientError::RelayNotPinned { .. })) => {
                    events.push(Event::Rejected {
                        from: "introduction".into(),
                        detail: format!("{e}; will retry"),
                    });
                    continue;
                }
                Err(e) => events.push(Event::Rejected { from: "introduction".into(), detail: e.to_string() }),
                Ok(()) => {}
            }
            self.store.tx(|tx| tx.delete(TASK, &id))?;
        }
        Ok(events)
    }

    /// We joined after `to`: invite it, through the creator.
    async fn introduce(&mut self, channel: ChannelId, to: MemberKey) -> Result<()> {
        let creator = self.store.tx(|tx| {
            let Some(rec) = tx.get::<ChannelRecord>(CHANNEL, &hex_encode(&channel.0))? else {
                return Ok(None);
            };
            let wanted =
                !rec.removed && rec.state.member(&to).is_some() && contact_by_key(tx, &to)?.is_none();
            if !wanted {
                return Ok(None);
            }
            Ok(contact_by_key(tx, &rec.state.creator)?.map(|(_, c)| c.inbox.relay))
        })?;
        let Some(relay) = creator else { return Ok(()) };
        // Our invitation's queue lives on the relay we already use with the creator.
        let invitation = self.invite(&relay, INTRODUCTION_TTL_SECS).await?;
        self.store.tx(|tx| {
            let id = hex_encode(&channel.0);
            let Some(mut rec) = tx.get::<ChannelRecord>(CHANNEL, &id)? else { return Ok(()) };
            let from = load_card(tx)?.identity_key;
            let body = ChannelBody::Introduce { from, to, invitation }.encode();
            let creator = rec.state.creator;
            seal_to(tx, &mut rec, &creator, Kind::Channel, &body)?;
            tx.put(CHANNEL, &id, &rec)
        })
    }

    /// The creator passed us `from`'s invitation: accept it if it is really `from`'s.
    async fn accept_introduction(&mut self, channel: ChannelId, from: MemberKey, text: &str) -> Result<()> {
        let invitation = Invitation::from_text(text)?;
        let rec = self.store.tx(|tx| tx.get::<ChannelRecord>(CHANNEL, &hex_encode(&channel.0)))?;
        let Some(rec) = rec else { return Ok(()) };
        let Some(member) = rec.state.member(&from).cloned() else { return Ok(()) };
        if invitation.inviter.identity_key != from || invitation.inviter.seal_key != member.card.seal_key {
            return Err(ClientError::Refused(format!(
                "the introduction to {} carried someone else's invitation; refused",
                member.card.name
            )));
        }
        if self.store.tx(|tx| contact_by_key(tx, &from))?.is_some() {
            return Ok(());
        }
        let view = self.accept(text).await?;
        self.store.tx(|tx| {
            let text = format!(
                "now connected with {} ({}); safety number {}",
                view.name, view.side, view.safety_number
            );
            tx.append_timeline(&timeline_key(&channel), &Entry::Event { text, at: now_ms() })
        })
    }
}
