//! Commands as data: what a front end asks of an engine, and what it answers. A command runs
//! the same whether the front end opened the engine itself or hands it to the one running on
//! the home ([`crate::local`]).

use backchannel_party::channel::ChannelView;
use backchannel_party::documents::{PaperVersion, ProposalView};
use backchannel_party::probes::{ProbeRequest, ProbeView, ProbesView};
use backchannel_proto::channel::{Mode, Phase, Role};
use backchannel_proto::identity::Card;
use backchannel_wire::RelayAddress;
use serde::{Deserialize, Serialize};

use crate::api::{Delivery, Engine, EntryView, ProbeInputSpec};
use crate::engine::{ContactView, Fanout, FlushReport, QueuedView, SyncReport};
use crate::error::Result;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    Whoami,
    Contacts,
    SealKeys,
    Verify {
        name: String,
    },
    Invite {
        relays: Vec<RelayAddress>,
        ttl_secs: u64,
    },
    Accept {
        text: String,
        #[serde(default)]
        relays: Vec<RelayAddress>,
    },
    Send {
        name: String,
        text: String,
        to: Vec<String>,
    },
    Sync,
    Read {
        name: String,
    },
    IsChannel {
        name: String,
    },
    ChannelCreate {
        name: String,
        mode: Mode,
        role: Role,
        retention_secs: Option<u64>,
        #[serde(default)]
        hotline: Option<backchannel_proto::channel::Hotline>,
    },
    ChannelAdd {
        name: String,
        contact: String,
        role: Role,
    },
    ChannelRemove {
        name: String,
        member: String,
    },
    Channel {
        name: String,
    },
    Channels,
    Forward {
        channel: String,
        entry: usize,
        to: Vec<String>,
        rephrased: Option<String>,
    },
    Phase {
        channel: String,
        phase: Option<Phase>,
    },
    NonpaperPut {
        channel: String,
        title: String,
        text: String,
    },
    Nonpapers {
        channel: String,
    },
    Nonpaper {
        channel: String,
        title: String,
        version: Option<u32>,
    },
    Propose {
        channel: String,
        title: String,
        text: String,
        signatories: Vec<String>,
    },
    Proposals {
        channel: String,
    },
    Ratify {
        channel: String,
        proposal: String,
    },
    /// The agreement's export files (text, allowed signers, signatures, manifest).
    Agreement {
        channel: String,
        proposal: String,
    },
    ProbePropose {
        channel: String,
        request: ProbeRequest,
    },
    ProbeAccept {
        channel: String,
        id: String,
    },
    ProbeDecline {
        channel: String,
        id: String,
    },
    ProbeInput {
        channel: String,
        id: String,
        input: ProbeInputSpec,
    },
    Probes {
        channel: String,
    },
    Outbox,
    OutboxDrop {
        n: i64,
    },
    OutboxRetry,
    AllowRelay {
        relay: RelayAddress,
    },
    /// A channel with the routes of every member we have a session with.
    ChannelMembers {
        name: String,
    },
    ContactRoutes {
        name: String,
    },
    AddRelay {
        name: String,
        relay: RelayAddress,
    },
    DropRelay {
        name: String,
        relay: RelayAddress,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant, reason = "one reply per command, moved once to the caller")]
pub enum Reply {
    Done,
    Routes { routes: Vec<crate::RouteView> },
    Members { channel: ChannelView, routes: Vec<(String, Vec<crate::RouteView>)> },
    Card { card: Card },
    Contacts { contacts: Vec<ContactView> },
    Contact { contact: ContactView, delivery: Option<Delivery> },
    SealKeys { keys: Vec<(String, [u8; 32])> },
    Invitation { text: String },
    Sent { fanout: Option<Fanout>, delivery: Delivery },
    Synced { report: SyncReport },
    Flushed { report: FlushReport },
    Entries { entries: Vec<EntryView> },
    IsChannel { yes: bool },
    Channel { channel: ChannelView, delivery: Option<Delivery> },
    Channels { channels: Vec<ChannelView> },
    Paper { version: u32, fanout: Fanout, delivery: Delivery },
    Papers { papers: Vec<PaperVersion> },
    PaperText { version: u32, text: String },
    Proposal { proposal: ProposalView, delivery: Delivery },
    Proposals { proposals: Vec<ProposalView> },
    Agreement { files: Vec<(String, Vec<u8>)> },
    Probe { probe: ProbeView, delivery: Delivery },
    Probes { probes: ProbesView },
    Outbox { items: Vec<QueuedView> },
    Retried { count: usize, delivery: Delivery },
}

impl Engine {
    /// Runs one command.
    pub async fn execute(&self, command: Command) -> Result<Reply> {
        use Command as C;
        Ok(match command {
            C::Whoami => Reply::Card { card: self.me() },
            C::Contacts => Reply::Contacts { contacts: self.contacts()? },
            C::SealKeys => Reply::SealKeys { keys: self.seal_keys()? },
            C::Verify { name } => Reply::Contact { contact: self.verify(&name)?, delivery: None },
            C::Invite { relays, ttl_secs } => {
                Reply::Invitation { text: self.invite(&relays, ttl_secs).await? }
            }
            C::Accept { text, relays } => {
                let (contact, delivery) = self.accept(&text, &relays).await?;
                Reply::Contact { contact, delivery: Some(delivery) }
            }
            C::Send { name, text, to } => {
                let (fanout, delivery) = self.send(&name, &text, &to).await?;
                Reply::Sent { fanout, delivery }
            }
            C::Sync => Reply::Synced { report: self.sync_once().await? },
            C::Read { name } => Reply::Entries { entries: self.read(&name)? },
            C::IsChannel { name } => Reply::IsChannel { yes: self.is_channel(&name)? },
            C::ChannelCreate { name, mode, role, retention_secs, hotline } => Reply::Channel {
                channel: self.channel_create(&name, mode, role, retention_secs, hotline)?,
                delivery: None,
            },
            C::ChannelAdd { name, contact, role } => {
                let (channel, delivery) = self.channel_add(&name, &contact, role).await?;
                Reply::Channel { channel, delivery: Some(delivery) }
            }
            C::ChannelRemove { name, member } => {
                let (channel, delivery) = self.channel_remove(&name, &member).await?;
                Reply::Channel { channel, delivery: Some(delivery) }
            }
            C::Channel { name } => Reply::Channel { channel: self.channel(&name)?, delivery: None },
            C::Channels => Reply::Channels { channels: self.channels()? },
            C::Forward { channel, entry, to, rephrased } => {
                let (fanout, delivery) = self.forward(&channel, entry, &to, rephrased.as_deref()).await?;
                Reply::Sent { fanout: Some(fanout), delivery }
            }
            C::Phase { channel, phase } => {
                let (channel, delivery) = self.phase_consent(&channel, phase).await?;
                Reply::Channel { channel, delivery: Some(delivery) }
            }
            C::NonpaperPut { channel, title, text } => {
                let (version, fanout, delivery) = self.nonpaper_put(&channel, &title, &text).await?;
                Reply::Paper { version, fanout, delivery }
            }
            C::Nonpapers { channel } => Reply::Papers { papers: self.nonpapers(&channel)? },
            C::Nonpaper { channel, title, version } => {
                let (version, text) = self.nonpaper(&channel, &title, version)?;
                Reply::PaperText { version, text }
            }
            C::Propose { channel, title, text, signatories } => {
                let (proposal, delivery) = self.propose(&channel, &title, &text, &signatories).await?;
                Reply::Proposal { proposal, delivery }
            }
            C::Proposals { channel } => Reply::Proposals { proposals: self.proposals(&channel)? },
            C::Ratify { channel, proposal } => {
                let (proposal, delivery) = self.ratify(&channel, &proposal).await?;
                Reply::Proposal { proposal, delivery }
            }
            C::Agreement { channel, proposal } => {
                Reply::Agreement { files: self.agreement(&channel, &proposal)?.files()? }
            }
            C::ProbePropose { channel, request } => {
                let (probe, delivery) = self.probe_propose(&channel, &request).await?;
                Reply::Probe { probe, delivery }
            }
            C::ProbeAccept { channel, id } => {
                let (probe, delivery) = self.probe_accept(&channel, &id).await?;
                Reply::Probe { probe, delivery }
            }
            C::ProbeDecline { channel, id } => {
                let (probe, delivery) = self.probe_decline(&channel, &id).await?;
                Reply::Probe { probe, delivery }
            }
            C::ProbeInput { channel, id, input } => {
                let (probe, delivery) = self.probe_input(&channel, &id, &input).await?;
                Reply::Probe { probe, delivery }
            }
            C::Probes { channel } => Reply::Probes { probes: self.probes(&channel)? },
            C::Outbox => Reply::Outbox { items: self.outbox()? },
            C::OutboxDrop { n } => {
                self.outbox_drop(n)?;
                Reply::Done
            }
            C::OutboxRetry => {
                let (count, delivery) = self.outbox_retry().await?;
                Reply::Retried { count, delivery }
            }
            C::AllowRelay { relay } => {
                self.allow_relay(&relay)?;
                Reply::Done
            }
            C::ContactRoutes { name } => Reply::Routes { routes: self.contact_routes(&name)? },
            C::ChannelMembers { name } => {
                Reply::Members { channel: self.channel(&name)?, routes: self.channel_routes(&name)? }
            }
            C::AddRelay { name, relay } => Reply::Routes { routes: self.add_relay(&name, &relay).await? },
            C::DropRelay { name, relay } => Reply::Routes { routes: self.drop_relay(&name, &relay).await? },
        })
    }
}
