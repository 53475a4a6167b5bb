//! The commands on channels, documents and probes, each the same shape: find what it is about,
//! ask the rule, carry out its step, store what changed — all in one transaction.

use backchannel_party::channel::{Channel, ChannelView, HeldMessages};
use backchannel_party::documents::{PaperVersion, ProposalView};
use backchannel_party::probes::{ProbeRequest, ProbeView, ProbesView};
use backchannel_party::{Entry, Why};
use backchannel_proto::agreement::Agreement;
use backchannel_proto::channel::{ChannelState, Member, Mode, Phase, Role};
use backchannel_proto::message::ChannelId;
use backchannel_redline::{Package, ProbeInput, ProbeKind};
use backchannel_wire::hex_encode;
use serde::{Deserialize, Serialize};

use super::Batch;
use super::seal::park;
use crate::error::{ClientError, Result};
use crate::store::{Record, Tx};

impl Record for Channel {
    const KIND: &'static str = "channel";
}

impl Record for HeldMessages {
    const KIND: &'static str = "held";
}

/// Where a channel message went.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fanout {
    /// Sealed into the outbox, one per member reached.
    pub sealed: usize,
    /// Members still being introduced: their copy waits until the session exists.
    pub waiting: Vec<String>,
}

pub(crate) fn record_id(id: &ChannelId) -> String {
    hex_encode(&id.0)
}

/// A channel we hold by id, with what earlier versions kept inside it moved out.
pub(crate) fn channel_by_id(tx: &Tx<'_>, id: &ChannelId) -> Result<Option<Channel>> {
    tx.load::<Channel>(&record_id(id))?.map(|c| upgraded(tx, c)).transpose()
}

/// Moves the messages an earlier version kept inside a channel record to the parked queue.
fn upgraded(tx: &Tx<'_>, mut channel: Channel) -> Result<Channel> {
    if !channel.legacy_waiting.is_empty() {
        for w in std::mem::take(&mut channel.legacy_waiting) {
            park(tx, &w.to, channel.state.id, w.kind(), &w.body)?;
        }
        tx.save(&record_id(&channel.state.id), &channel)?;
    }
    Ok(channel)
}

/// Finds one of our channels by name (case-insensitive), or by `NAME@CREATOR` when several
/// creators gave their channels the same name.
pub(crate) fn find_channel(tx: &Tx<'_>, name: &str) -> Result<Channel> {
    let mut all: Vec<Channel> = tx.load_all::<Channel>()?.into_iter().map(|(_, c)| c).collect();
    let named = |c: &Channel, n: &str| c.state.name.eq_ignore_ascii_case(n);
    let mut hits: Vec<usize> = (0..all.len()).filter(|&i| named(&all[i], name)).collect();
    if hits.is_empty()
        && let Some((channel, creator)) = name.rsplit_once('@')
    {
        hits = (0..all.len())
            .filter(|&i| named(&all[i], channel) && all[i].creator_name().eq_ignore_ascii_case(creator))
            .collect();
    }
    match hits.as_slice() {
        [] => Err(ClientError::UnknownChannel { name: name.to_owned() }),
        [one] => upgraded(tx, all.swap_remove(*one)),
        several => Err(ClientError::AmbiguousChannel {
            name: name.to_owned(),
            candidates: several
                .iter()
                .map(|&i| format!("{}@{}", all[i].state.name, all[i].creator_name()))
                .collect(),
        }),
    }
}

impl Batch<'_, '_> {
    pub fn channel(&self, name: &str) -> Result<Channel> {
        find_channel(self.tx, name)
    }

    pub fn save_channel(&self, channel: &Channel) -> Result<()> {
        self.tx.save(&record_id(&channel.state.id), channel)
    }

    pub fn view(&self, channel: &Channel) -> ChannelView {
        channel.view(self.me, self)
    }

    /// Who of `members` has a session (their copy was sealed) and who waits for one.
    fn fanout(&self, members: &[Member]) -> Fanout {
        let mut out = Fanout::default();
        for m in members {
            match self.contacts.id_of(&m.key()) {
                Some(_) => out.sealed += 1,
                None => out.waiting.push(m.card.name.clone()),
            }
        }
        out
    }

    /// Runs a rule on a channel and stores it: `rule` returns its step and a result.
    fn on_channel<T>(
        &mut self,
        name: &str,
        rule: impl FnOnce(&mut Channel, &Self) -> std::result::Result<(T, backchannel_party::Step), Why>,
    ) -> Result<(Channel, T)> {
        let mut channel = self.channel(name)?;
        let (value, step) = rule(&mut channel, self)?;
        self.apply(channel.stamp(step))?;
        self.save_channel(&channel)?;
        Ok((channel, value))
    }

    pub fn channel_create(
        &mut self,
        name: &str,
        mode: Mode,
        role: Role,
        retention: Option<u64>,
        hotline: Option<backchannel_proto::channel::Hotline>,
    ) -> Result<ChannelView> {
        if !matches!(self.channel(name), Err(ClientError::UnknownChannel { .. })) {
            return Err(Why::ChannelExists { name: name.to_owned() }.into());
        }
        let (channel, step) = Channel::create(&self.ctx(), name, mode, role, retention, hotline)?;
        self.apply(step)?;
        self.save_channel(&channel)?;
        Ok(self.view(&channel))
    }

    pub fn channel_add(&mut self, name: &str, contact: &str, role: Role) -> Result<ChannelView> {
        let id = self.contacts.find(contact)?;
        let card = self
            .contacts
            .get(&id)
            .map(|c| c.card.clone())
            .ok_or(ClientError::UnknownContact { name: contact.to_owned() })?;
        let ctx = self.ctx();
        let (channel, ()) = self.on_channel(name, |c, _| Ok(((), c.add(&ctx, card, role)?)))?;
        Ok(self.view(&channel))
    }

    pub fn channel_remove(&mut self, name: &str, member: &str) -> Result<ChannelView> {
        let ctx = self.ctx();
        let (channel, ()) = self.on_channel(name, |c, _| Ok(((), c.remove(&ctx, member)?)))?;
        Ok(self.view(&channel))
    }

    pub fn channel_note(&mut self, name: &str, text: &str, to: &[String]) -> Result<Fanout> {
        backchannel_party::conversation::check_note(text)?;
        let ctx = self.ctx();
        let channel = self.channel(name)?;
        let (members, step) = channel.note(&ctx, text, to)?;
        let out = self.fanout(&members);
        self.apply(step)?;
        Ok(out)
    }

    pub fn channel_forward(
        &mut self,
        name: &str,
        entry: usize,
        to: &[String],
        rephrased: Option<&str>,
    ) -> Result<Fanout> {
        let ctx = self.ctx();
        let channel = self.channel(name)?;
        let entries: Vec<Entry> = self.tx.timeline(&channel.conversation().key)?;
        let note = entries.get(entry.wrapping_sub(1));
        let (members, step) = channel.forward(&ctx, entry, note, to, rephrased)?;
        let out = self.fanout(&members);
        self.apply(channel.stamp(step))?;
        Ok(out)
    }

    pub fn phase_consent(&mut self, name: &str, phase: Option<Phase>) -> Result<ChannelView> {
        let ctx = self.ctx();
        let (channel, ()) = self.on_channel(name, |c, _| Ok(((), c.consent(&ctx, phase)?)))?;
        Ok(self.view(&channel))
    }

    pub fn nonpaper_put(&mut self, name: &str, title: &str, text: &str) -> Result<(u32, Fanout)> {
        let ctx = self.ctx();
        let (channel, version) = self.on_channel(name, |c, _| {
            let Channel { state, docs, .. } = c;
            docs.put_paper(state, &ctx, title, text)
        })?;
        Ok((version, self.fanout(&items_to(&channel.state, &ctx))))
    }

    pub fn nonpaper(&self, name: &str, title: &str, version: Option<u32>) -> Result<(u32, String)> {
        let channel = self.channel(name)?;
        let (v, id) = channel.docs.version(&channel.state, title, version)?;
        let text = self
            .tx
            .load::<super::TextRecord>(&id.key())?
            .ok_or_else(|| self.tx.damaged("non-paper text missing".into()))?;
        Ok((v, text.0))
    }

    pub fn nonpapers(&self, name: &str) -> Result<Vec<PaperVersion>> {
        Ok(self.channel(name)?.docs.list())
    }

    pub fn propose(
        &mut self,
        name: &str,
        title: &str,
        text: &str,
        signatories: &[String],
    ) -> Result<ProposalView> {
        let ctx = self.ctx();
        let (_, view) = self.on_channel(name, |c, lookup| {
            let Channel { state, docs, .. } = c;
            docs.propose(state, &ctx, lookup, title, text, signatories)
        })?;
        Ok(view)
    }

    pub fn proposals(&self, name: &str) -> Result<Vec<ProposalView>> {
        Ok(self.channel(name)?.docs.proposals())
    }

    pub fn ratify(&mut self, name: &str, proposal: &str) -> Result<ProposalView> {
        let ctx = self.ctx();
        let identity = self.identity()?;
        let (_, view) = self.on_channel(name, |c, _| {
            let Channel { state, docs, .. } = c;
            docs.ratify(state, &ctx, &identity, proposal)
        })?;
        Ok(view)
    }

    pub fn agreement(&self, name: &str, proposal: &str) -> Result<Agreement> {
        let channel = self.channel(name)?;
        Ok(channel.docs.agreement(&channel.state, self, proposal)?)
    }

    /// Runs one probe operation; returns the probe's view.
    fn probe_op(
        &mut self,
        name: &str,
        op: impl FnOnce(
            &mut Channel,
            &backchannel_party::Ctx<'_>,
            &Self,
        ) -> std::result::Result<(usize, backchannel_party::Step), Why>,
    ) -> Result<ProbeView> {
        let ctx = self.ctx();
        let (channel, i) = self.on_channel(name, |c, lookup| {
            if c.removed {
                return Err(Why::RemovedFromChannel { channel: c.state.name.clone() });
            }
            op(c, &ctx, lookup)
        })?;
        channel
            .probes
            .view_of(i)
            .ok_or_else(|| ClientError::Store { path: String::new(), why: "probe vanished".into() })
    }

    pub fn probe_propose(&mut self, name: &str, req: &ProbeRequest) -> Result<ProbeView> {
        self.probe_op(name, |c, ctx, lookup| {
            let peer = c.find_member(&req.with)?.card.clone();
            if peer.party() == ctx.me.party() {
                return Err(Why::ProbeNeedsOther);
            }
            if !backchannel_party::Lookup::has_session(lookup, &peer.party()) {
                return Err(Why::NoSessionYet { name: peer.name });
            }
            let Channel { state, probes, .. } = c;
            let elsewhere = |side: &str, issue: &str| {
                backchannel_party::Lookup::probes_elsewhere(lookup, &state.id, side, issue)
            };
            probes.propose_counting(state, ctx, &peer, req, &elsewhere)
        })
    }

    pub fn probe_accept(&mut self, name: &str, id: &str) -> Result<ProbeView> {
        self.probe_op(name, |c, ctx, lookup| {
            let i = c.probes.find(&c.state.name, id)?;
            let channel = c.state.id;
            let elsewhere = |side: &str, issue: &str| {
                backchannel_party::Lookup::probes_elsewhere(lookup, &channel, side, issue)
            };
            Ok((i, c.probes.accept_counting(&c.state, ctx, i, &elsewhere)?))
        })
    }

    pub fn probe_decline(&mut self, name: &str, id: &str) -> Result<ProbeView> {
        self.probe_op(name, |c, ctx, _| {
            let i = c.probes.find(&c.state.name, id)?;
            Ok((i, c.probes.decline(&c.state, ctx, i)?))
        })
    }

    pub fn probe_input_value(&mut self, name: &str, id: &str, value: u64) -> Result<ProbeView> {
        self.probe_op(name, |c, ctx, _| {
            let i = c.probes.find(&c.state.name, id)?;
            Ok((i, c.probes.input(&c.state, ctx, i, ProbeInput::Value(value))?))
        })
    }

    /// Our acceptable packages in a package probe, each as option names in the issues' order.
    pub fn probe_input_packages(
        &mut self,
        name: &str,
        id: &str,
        packages: &[Vec<String>],
    ) -> Result<ProbeView> {
        self.probe_op(name, |c, ctx, _| {
            let i = c.probes.find(&c.state.name, id)?;
            let terms = c
                .probes
                .terms_of(i)
                .ok_or(Why::NoProbe { query: id.to_owned(), channel: c.state.name.clone() })?;
            let ProbeKind::Package(package_terms) = &terms.kind else {
                return Err(Why::ProbeNeedsValue { probe: id.to_owned() });
            };
            let list = packages
                .iter()
                .map(|names| {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    package_terms.space.package(&names).map_err(|e| Why::ProbePackage {
                        why: e.to_string(),
                        given: names.join(","),
                        issues: terms.issues().iter().map(|s| (*s).to_owned()).collect(),
                    })
                })
                .collect::<std::result::Result<Vec<Package>, Why>>()?;
            Ok((i, c.probes.input(&c.state, ctx, i, ProbeInput::Packages(list))?))
        })
    }

    pub fn probes(&self, name: &str) -> Result<ProbesView> {
        let channel = self.channel(name)?;
        Ok(channel.probes.view(&channel.state))
    }
}

/// The members a channel-wide item from us reaches.
fn items_to(state: &ChannelState, ctx: &backchannel_party::Ctx<'_>) -> Vec<Member> {
    state.item_recipients(&ctx.me.party()).into_iter().cloned().collect()
}
