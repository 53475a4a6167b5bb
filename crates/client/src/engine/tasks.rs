//! Durable tasks: network work the rules asked for while receiving (which runs in a
//! transaction, offline), done after it. Today they are introductions between channel members
//! who have never met: the newer member makes a one-time invitation and hands it to the
//! creator, who passes it to the earlier member, who accepts it. The creator could swap in its
//! own invitation: comparing safety numbers with each member, out of band, catches that.

use backchannel_party::Task;
use backchannel_proto::channel::{ChannelBody, MemberKey};
use backchannel_proto::invitation::Invitation;
use backchannel_proto::message::{ChannelId, Kind};
use serde::{Deserialize, Serialize};

use super::Shared;
use super::ops::channel_by_id;
use crate::error::{ClientError, Result};
use crate::store::Record;

/// A task as stored (under [`Task::key`], so a repeat replaces it).
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct TaskRecord(pub Task);

impl Record for TaskRecord {
    const KIND: &'static str = "task";
}

/// What became of a task that could not run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTrouble {
    pub channel: String,
    pub error: ClientError,
    /// It stays and runs again at the next turn (a relay was down).
    pub retry: bool,
}

impl Shared {
    /// Runs every task. A relay that cannot be reached leaves its task for the next turn;
    /// anything else that fails is reported and the task dropped.
    pub async fn run_tasks(&self) -> Result<Vec<TaskTrouble>> {
        let tasks = self.read(|tx, _| tx.load_all::<TaskRecord>())?;
        let mut trouble = Vec::new();
        for (key, TaskRecord(task)) in tasks {
            let channel = match &task {
                Task::Introduce { channel, .. } | Task::AcceptIntroduction { channel, .. } => *channel,
            };
            let outcome = match task {
                Task::Introduce { channel, to } => self.introduce(channel, to).await,
                Task::AcceptIntroduction { channel, from, invitation } => {
                    self.accept_introduction(channel, from, &invitation).await
                }
            };
            if let Err(error) = outcome {
                let name = self.read(|tx, _| {
                    Ok(channel_by_id(tx, &channel)?.map(|c| c.state.name).unwrap_or_default())
                })?;
                let retry = error.relay_down()
                    || matches!(
                        error,
                        ClientError::Refused { why: backchannel_party::Why::IntroductionRelayUnknown { .. } }
                    );
                trouble.push(TaskTrouble { channel: name, error, retry });
                if retry {
                    continue;
                }
            }
            self.write(|tx, _| tx.remove::<TaskRecord>(&key))?;
        }
        Ok(trouble)
    }

    /// We joined after `to`: invite it, through the creator.
    async fn introduce(&self, channel: ChannelId, to: MemberKey) -> Result<()> {
        let relays = self.read(|tx, contacts| {
            let Some(ch) = channel_by_id(tx, &channel)? else { return Ok(Vec::new()) };
            let wanted = !ch.removed && ch.state.member(&to).is_some() && contacts.id_of(&to).is_none();
            let creator = contacts.id_of(&ch.state.creator).and_then(|id| contacts.get(id));
            let relays = creator
                .filter(|_| wanted)
                .map(|c| c.inboxes.iter().filter(|i| i.current()).map(|i| i.relay.clone()).collect());
            Ok(relays.unwrap_or_default())
        })?;
        if relays.is_empty() {
            return Ok(());
        }
        // Our invitation's queues live on the hosts we already use with the creator.
        let ttl = self.config().introduction_ttl_secs;
        let invitation = self.invite(&relays, ttl).await?;
        self.batch(|b| {
            let Some(ch) = channel_by_id(b.tx, &channel)? else { return Ok(()) };
            let body = ChannelBody::Introduce { from: b.me.party(), to, invitation };
            b.seal_to(&[ch.state.creator], channel, Kind::Channel, &body.encode()).map(drop)
        })
    }

    /// The creator passed us `from`'s invitation: accept it if it is really `from`'s.
    async fn accept_introduction(&self, channel: ChannelId, from: MemberKey, text: &str) -> Result<()> {
        let invitation = Invitation::from_text(text)?;
        let Some(ch) = self.read(|tx, _| channel_by_id(tx, &channel))? else { return Ok(()) };
        let Some(member) = ch.state.member(&from).cloned() else { return Ok(()) };
        if invitation.inviter.party() != from || invitation.inviter.seal_key != member.card.seal_key {
            return Err(backchannel_party::Why::IntroductionNotTheirs { name: member.card.name }.into());
        }
        if self.read(|_, contacts| Ok(contacts.id_of(&from).is_some()))? {
            return Ok(());
        }
        let hosts = std::iter::once(&invitation.route).chain(&invitation.more_routes);
        for relay in hosts.map(|r| r.relay.to_string()) {
            if !self.read(|tx, contacts| super::relays::known(tx, contacts, &relay))? {
                let why = backchannel_party::Why::IntroductionRelayUnknown { name: member.card.name, relay };
                return Err(why.into());
            }
        }
        self.accept(text, &[]).await?;
        self.batch(|b| {
            let step = ch.connected(&b.ctx(), &member.card);
            b.apply(step)
        })
    }
}
