//! Texts in a channel: non-papers (versioned, unattributed drafts) and proposals put to
//! ratification, with the seals that ratify them. The summaries live here; the texts (up to
//! several MiB) are stored apart ([`Effect::PutText`]) and read back through [`Lookup`].

use backchannel_proto::agreement::{self, Agreement, ProposalRef, Signatory};
use backchannel_proto::channel::{ChannelBody, ChannelState, MAX_MEMBERS, MemberKey, Mode, Phase};
use backchannel_proto::identity::{Card, Identity};
use backchannel_wire::hex_encode;
use serde::{Deserialize, Serialize};

use crate::event::{ChannelEvent, Conversation, Entry};
use crate::lookup::Lookup;
use crate::step::{Effect, Step, TextId, TextKind};
use crate::why::Why;
use crate::{Ctx, Outcome};

/// Largest non-paper or proposal, in bytes (it travels as one message of up to 1024 blocks).
pub const MAX_DOCUMENT: usize = 3 * 1024 * 1024;
/// Most seals one channel keeps waiting for their proposals (a member could send any number).
const MAX_EARLY_SEALS: usize = 4 * MAX_MEMBERS;

/// One version of a non-paper, as listed (the text is stored apart).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaperVersion {
    pub title: String,
    /// As listed: the place among the title's versions. As stored: the drafter's number.
    pub version: u32,
    pub bytes: usize,
    pub sha256: String,
    pub at: u64,
}

/// A proposal and who has ratified it so far.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProposalView {
    /// sha256 of the text (hex): what everyone signs.
    pub id: String,
    pub title: String,
    pub signatories: Vec<String>,
    pub ratified_by: Vec<String>,
    /// Sides that have not ratified yet.
    pub missing: Vec<String>,
    /// Seals passed on by a shuttle's intermediary under keys we know only through it: shown,
    /// never counted (the intermediary could have made them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed: Vec<String>,
    /// Seals made by an earlier version over the bare text, not over a signed statement: not
    /// counted, and their signatories ratify again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProposalRecord {
    pub id: [u8; 32],
    pub title: String,
    pub signatories: Vec<String>,
    pub seals: Vec<Seal>,
    #[serde(default)]
    pub unconfirmed: Vec<Seal>,
}

/// A signatory's seal over a proposal, checked when it arrived: its signature over its
/// statement (dated `signed_at`) and its proof of possession of the seal key. Seals stored by
/// older versions (over the bare text) have neither and no longer verify.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Seal {
    pub name: String,
    pub side: String,
    pub seal_key: [u8; 32],
    pub signature: String,
    #[serde(default)]
    pub identity_key: [u8; 32],
    #[serde(default)]
    pub signed_at: Option<u64>,
    #[serde(default)]
    pub possession: Option<String>,
}

/// A seal over a proposal we did not have yet when it arrived.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EarlySeal {
    pub proposal: [u8; 32],
    pub seal: Seal,
    /// Passed on by the hub under a key we know only through it.
    #[serde(default)]
    pub through_hub: bool,
}

/// A channel's documents as this party holds them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Documents {
    #[serde(default)]
    pub papers: Vec<PaperVersion>,
    #[serde(default)]
    pub proposals: Vec<ProposalRecord>,
    /// Ratifications that arrived before their proposal (they come over other sessions, maybe
    /// other relays); checked and counted when the proposal arrives.
    #[serde(default)]
    pub early_seals: Vec<EarlySeal>,
}

impl Seal {
    fn of(card: &Card, signature: String, signed_at: Option<u64>, possession: Option<String>) -> Self {
        Seal {
            name: card.name.clone(),
            side: card.side.clone(),
            seal_key: card.seal_key,
            signature,
            identity_key: card.identity_key,
            signed_at,
            possession,
        }
    }

    /// The signer's card as far as a seal needs it (no device key).
    fn card(&self) -> Card {
        Card {
            name: self.name.clone(),
            side: self.side.clone(),
            identity_key: self.identity_key,
            device_key: [0; 32],
            seal_key: self.seal_key,
        }
    }

    fn signatory(&self) -> Signatory {
        Signatory {
            name: self.name.clone(),
            side: self.side.clone(),
            identity_key: self.identity_key,
            seal_key: self.seal_key,
            signed_at: self.signed_at.unwrap_or(0),
            signature: self.signature.clone(),
        }
    }

    fn who(&self) -> String {
        format!("{} ({})", self.name, self.side)
    }
}

impl ProposalRecord {
    /// The seals that count: made over a signed statement.
    fn counted(&self) -> impl Iterator<Item = &Seal> {
        self.seals.iter().filter(|s| s.signed_at.is_some())
    }

    pub fn view(&self) -> ProposalView {
        let signed: Vec<&str> = self.counted().map(|s| s.side.as_str()).collect();
        ProposalView {
            id: hex_encode(&self.id),
            title: self.title.clone(),
            signatories: self.signatories.clone(),
            ratified_by: self.counted().map(Seal::who).collect(),
            missing: self.signatories.iter().filter(|s| !signed.contains(&s.as_str())).cloned().collect(),
            unconfirmed: self.unconfirmed.iter().map(Seal::who).collect(),
            stale: self.seals.iter().filter(|s| s.signed_at.is_none()).map(Seal::who).collect(),
        }
    }
}

/// The 32 bytes a hex hash names (as the papers list stores them).
fn hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

/// What the channel knows of proposal `p`, to make or check a seal on it.
fn proposal_ref<'a>(state: &ChannelState, p: &'a ProposalRecord) -> ProposalRef<'a> {
    ProposalRef { channel: state.id, id: p.id, title: &p.title, required_sides: &p.signatories }
}

fn text_id(state: &ChannelState, kind: TextKind, sha256: [u8; 32]) -> TextId {
    TextId { channel: state.id, kind, sha256 }
}

/// Checks a text's size before anything is stored.
pub fn check_document(what: &str, text: &str) -> Outcome<()> {
    if text.is_empty() || text.len() > MAX_DOCUMENT {
        return Err(Why::DocumentSize { what: what.to_owned(), len: text.len(), max: MAX_DOCUMENT });
    }
    Ok(())
}

/// Checks a text's message: its bounds, and its size once encoded (JSON escapes control
/// characters and quotes, so a text near the limit can outgrow it).
fn check_body(body: &ChannelBody, what: &str) -> Outcome<()> {
    body.check().map_err(|refused| Why::BadBody { refused })?;
    let encoded = body.encode().len();
    // A message also carries its header and the frame's padding: keep a margin.
    let limit = backchannel_proto::message::MAX_BODY - 4096;
    if encoded > limit {
        return Err(Why::EncodedTooLarge { what: what.to_owned(), encoded, limit });
    }
    Ok(())
}

/// Who may put texts to the channel: any member that may post; in a shuttle, only the hub
/// (the mediator drafts the single text the sides react to).
fn may_draft(state: &ChannelState, who: &Card) -> Outcome<()> {
    state.may_post(&who.party())?;
    if state.mode == Mode::Shuttle && state.hub() != Some(&who.party()) {
        return Err(Why::OnlyHubDrafts { channel: state.name.clone() });
    }
    Ok(())
}

fn recipients(state: &ChannelState, sender: &MemberKey) -> Vec<MemberKey> {
    state.item_recipients(sender).into_iter().map(|m| m.key()).collect()
}

impl Documents {
    /// A title's versions in the order every member agrees on: by the number the drafter gave,
    /// then by text hash, so drafts that crossed get the same numbers everywhere once all have
    /// arrived. Returned renumbered 1, 2, 3…
    pub fn versions(&self, title: &str) -> Vec<PaperVersion> {
        let mut all: Vec<PaperVersion> = self.papers.iter().filter(|p| p.title == title).cloned().collect();
        all.sort_by(|a, b| (a.version, &a.sha256).cmp(&(b.version, &b.sha256)));
        for (i, p) in all.iter_mut().enumerate() {
            p.version = i as u32 + 1;
        }
        all
    }

    /// Every non-paper's versions, numbered as every member numbers them.
    pub fn list(&self) -> Vec<PaperVersion> {
        let mut titles: Vec<&str> = Vec::new();
        for p in &self.papers {
            if !titles.contains(&p.title.as_str()) {
                titles.push(&p.title);
            }
        }
        titles.iter().flat_map(|t| self.versions(t)).collect()
    }

    /// The version asked for (the latest without one), and where its text is stored.
    pub fn version(&self, state: &ChannelState, title: &str, wanted: Option<u32>) -> Outcome<(u32, TextId)> {
        let all = self.versions(title);
        let Some(latest) = all.last() else {
            return Err(Why::NoPaper { title: title.to_owned(), channel: state.name.clone() });
        };
        let wanted = wanted.unwrap_or(latest.version);
        let Some(p) = all.iter().find(|p| p.version == wanted) else {
            return Err(Why::NoSuchVersion { title: title.to_owned(), last: latest.version, wanted });
        };
        let sha = hex32(&p.sha256).ok_or(Why::TextMissing)?;
        Ok((wanted, text_id(state, TextKind::Paper, sha)))
    }

    /// Stores a version the drafter numbered `claimed`; returns its place among the title's
    /// versions, or `None` for a repeat.
    fn store_paper(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        title: &str,
        claimed: u32,
        text: &str,
        step: &mut Step,
    ) -> Option<u32> {
        let hash = agreement::text_hash(text.as_bytes());
        let sha = hex_encode(&hash);
        if self.papers.iter().any(|p| p.title == title && p.sha256 == sha) {
            return None;
        }
        step.push(Effect::PutText { id: text_id(state, TextKind::Paper, hash), text: text.to_owned() });
        let at = ctx.now_ms;
        self.papers.push(PaperVersion {
            title: title.to_owned(),
            version: claimed,
            bytes: text.len(),
            sha256: sha.clone(),
            at,
        });
        self.versions(title).iter().find(|p| p.sha256 == sha).map(|p| p.version)
    }

    /// Puts a non-paper to the channel: a new version if the title exists.
    pub fn put_paper(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        title: &str,
        text: &str,
    ) -> Outcome<(u32, Step)> {
        check_document("non-paper", text)?;
        may_draft(state, ctx.me)?;
        let next = self.papers.iter().filter(|p| p.title == title).map(|p| p.version).max().unwrap_or(0) + 1;
        let body = ChannelBody::NonPaper { title: title.to_owned(), version: next, text: text.to_owned() };
        check_body(&body, "non-paper")?;
        let mut step = Step::none();
        let Some(version) = self.store_paper(state, ctx, title, next, text, &mut step) else {
            return Err(Why::AlreadyAVersion { title: title.to_owned() });
        };
        step.seal(recipients(state, &ctx.me.party()), state.id, &body);
        let what =
            ChannelEvent::PaperPut { title: title.to_owned(), version, bytes: text.len(), yours: true };
        step.record(&Conversation::channel(state), Entry::channel(what, ctx.now_ms));
        Ok((version, step))
    }

    /// Puts a text to ratification by the named sides.
    pub fn propose(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        lookup: &dyn Lookup,
        title: &str,
        text: &str,
        signatories: &[String],
    ) -> Outcome<(ProposalView, Step)> {
        check_document("proposal", text)?;
        may_draft(state, ctx.me)?;
        if !matches!(state.phase, Phase::Drafting | Phase::Agreed) {
            return Err(Why::NotDraftingPhase { channel: state.name.clone(), phase: state.phase });
        }
        let sides = state.sides();
        if let Some(bad) = signatories.iter().find(|s| !sides.contains(s)) {
            return Err(Why::NotASide { side: bad.clone(), channel: state.name.clone(), sides });
        }
        let body = ChannelBody::Proposal {
            title: title.to_owned(),
            text: text.to_owned(),
            signatories: signatories.to_vec(),
        };
        check_body(&body, "proposal")?;
        let mut step = Step::none();
        let view =
            self.store_proposal(state, title, text, signatories, &mut step).ok_or(Why::AlreadyProposed)?;
        step = step.and(self.count_early_seals(state, ctx, lookup, text));
        step.seal(recipients(state, &ctx.me.party()), state.id, &body);
        let what = ChannelEvent::Proposed {
            by: None,
            title: title.to_owned(),
            id: view.id.clone(),
            signatories: signatories.to_vec(),
        };
        step.record(&Conversation::channel(state), Entry::channel(what, ctx.now_ms));
        Ok((view, step))
    }

    pub fn proposals(&self) -> Vec<ProposalView> {
        self.proposals.iter().map(ProposalRecord::view).collect()
    }

    /// A proposal by number (1-based, as listed), id prefix (hex) or exact title.
    pub fn find_proposal(&self, state: &ChannelState, query: &str) -> Outcome<usize> {
        let hits: Vec<usize> = self
            .proposals
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                query.parse::<usize>().ok() == Some(i + 1)
                    || (query.len() >= 6 && hex_encode(&p.id).starts_with(&query.to_ascii_lowercase()))
                    || p.title == query
            })
            .map(|(i, _)| i)
            .collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(Why::NoProposal { query: query.to_owned(), channel: state.name.clone() }),
            _ => Err(Why::AmbiguousProposal { query: query.to_owned() }),
        }
    }

    fn proposal_text(&self, state: &ChannelState, lookup: &dyn Lookup, id: [u8; 32]) -> Outcome<String> {
        lookup.text(&text_id(state, TextKind::Proposal, id)).ok_or(Why::TextMissing)
    }

    /// Signs a proposal's text with our seal and sends the signature to the members it reaches.
    pub fn ratify(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        identity: &Identity,
        query: &str,
    ) -> Outcome<(ProposalView, Step)> {
        let me = ctx.me;
        state.may_post(&me.party())?;
        let i = self.find_proposal(state, query)?;
        let p = &self.proposals[i];
        if !p.signatories.contains(&me.side) {
            return Err(Why::NotSignatory { side: me.side.clone(), title: p.title.clone() });
        }
        if p.counted().any(|s| s.seal_key == me.seal_key) {
            return Err(Why::AlreadyRatified { title: p.title.clone() });
        }
        let sealed = proposal_ref(state, p).ratify(identity, ctx.now_ms / 1000).map_err(|e| {
            Why::SealDoesNotVerify { name: me.name.clone(), title: p.title.clone(), why: e.to_string() }
        })?;
        let body = ChannelBody::Ratification {
            proposal: p.id,
            signature: sealed.signature.clone(),
            signer: None,
            signed_at: Some(sealed.signed_at),
            possession: Some(sealed.possession.clone()),
        };
        let title = p.title.clone();
        let seal = Seal::of(me, sealed.signature, Some(sealed.signed_at), Some(sealed.possession));
        self.proposals[i].seals.retain(|s| s.seal_key != me.seal_key);
        self.proposals[i].seals.push(seal);
        let mut step = Step::none();
        step.seal(recipients(state, &me.party()), state.id, &body);
        let what = ChannelEvent::Ratified { name: None, side: me.side.clone(), title: title.clone() };
        step.record(&Conversation::channel(state), Entry::channel(what, ctx.now_ms));
        if self.proposals[i].view().missing.is_empty() {
            step.record(
                &Conversation::channel(state),
                Entry::channel(ChannelEvent::RatifiedByAll { title }, ctx.now_ms),
            );
        }
        Ok((self.proposals[i].view(), step))
    }

    /// The agreement as exported: text, every counted seal so far, the sides required.
    pub fn agreement(&self, state: &ChannelState, lookup: &dyn Lookup, query: &str) -> Outcome<Agreement> {
        let p = &self.proposals[self.find_proposal(state, query)?];
        Ok(Agreement {
            channel: state.id,
            title: p.title.clone(),
            text: self.proposal_text(state, lookup, p.id)?.into_bytes(),
            required_sides: p.signatories.clone(),
            signatories: p.counted().map(Seal::signatory).collect(),
            proposal_id: p.id,
        })
    }

    fn store_proposal(
        &mut self,
        state: &ChannelState,
        title: &str,
        text: &str,
        signatories: &[String],
        step: &mut Step,
    ) -> Option<ProposalView> {
        let id = agreement::text_hash(text.as_bytes());
        if self.proposals.iter().any(|p| p.id == id) {
            return None;
        }
        step.push(Effect::PutText { id: text_id(state, TextKind::Proposal, id), text: text.to_owned() });
        let p = ProposalRecord {
            id,
            title: title.to_owned(),
            signatories: signatories.to_vec(),
            seals: Vec::new(),
            unconfirmed: Vec::new(),
        };
        let view = p.view();
        self.proposals.push(p);
        Some(view)
    }

    /// Takes in a non-paper, proposal or ratification from a member.
    pub fn receive(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        lookup: &dyn Lookup,
        sender: &Card,
        body: ChannelBody,
    ) -> Outcome {
        let conversation = Conversation::channel(state);
        match body {
            ChannelBody::NonPaper { title, version, text } => {
                may_draft(state, sender)?;
                let mut step = Step::none();
                if let Some(v) = self.store_paper(state, ctx, &title, version, &text, &mut step) {
                    let what = ChannelEvent::PaperPut { title, version: v, bytes: text.len(), yours: false };
                    step.record(&conversation, Entry::channel(what, ctx.now_ms));
                }
                Ok(step)
            }
            ChannelBody::Proposal { title, text, signatories } => {
                may_draft(state, sender)?;
                if !matches!(state.phase, Phase::Drafting | Phase::Agreed) {
                    return Err(Why::NotDraftingPhase { channel: state.name.clone(), phase: state.phase });
                }
                let mut step = Step::none();
                let Some(v) = self.store_proposal(state, &title, &text, &signatories, &mut step) else {
                    return Ok(step);
                };
                let what =
                    ChannelEvent::Proposed { by: Some(sender.name.clone()), title, id: v.id, signatories };
                step.record(&conversation, Entry::channel(what, ctx.now_ms));
                Ok(step.and(self.count_early_seals(state, ctx, lookup, &text)))
            }
            ChannelBody::Ratification { proposal, signature, signer, signed_at, possession } => {
                let (signer, through_hub) = signer_of(state, lookup, sender, signer)?;
                let seal = Seal::of(&signer, signature, signed_at, possession);
                let step = self.on_ratification(state, ctx, through_hub, proposal, seal.clone())?;
                let counted = step.entries().next().is_some();
                Ok(step.and(pass_on_seal(state, ctx, sender, &signer, proposal, seal, counted)))
            }
            _ => Err(Why::UnexpectedMessage),
        }
    }

    fn on_ratification(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        through_hub: bool,
        proposal: [u8; 32],
        seal: Seal,
    ) -> Outcome {
        let Some(i) = self.proposals.iter().position(|p| p.id == proposal) else {
            return self.keep_early_seal(state, ctx, through_hub, proposal, seal);
        };
        self.add_seal(state, ctx, i, seal, through_hub)
    }

    /// Checks a seal over proposal `i` and counts it: refused if its side is not a signatory,
    /// or its proof of possession or its signature over the statement this channel implies
    /// for it does not verify; a repeat changes nothing. A seal known only through the hub is
    /// kept apart and shown, never counted.
    fn add_seal(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        i: usize,
        seal: Seal,
        through_hub: bool,
    ) -> Outcome {
        {
            let p = &self.proposals[i];
            if !p.signatories.contains(&seal.side) {
                return Err(Why::NotSignatory { side: seal.side.clone(), title: p.title.clone() });
            }
            let checked = proposal_ref(state, p).check_seal(
                &seal.card(),
                seal.signed_at,
                &seal.signature,
                seal.possession.as_deref(),
            );
            if let Err(e) = checked {
                let why = e.to_string();
                return Err(Why::SealDoesNotVerify { name: seal.name.clone(), title: p.title.clone(), why });
            }
        }
        let p = &mut self.proposals[i];
        let known = |list: &[Seal]| list.iter().any(|s| s.seal_key == seal.seal_key && s.signed_at.is_some());
        if known(&p.seals) || (through_hub && known(&p.unconfirmed)) {
            return Ok(Step::none());
        }
        let conversation = Conversation::channel(state);
        let mut step = Step::none();
        if through_hub {
            let what = ChannelEvent::SealOnlyThroughHub {
                name: seal.name.clone(),
                side: seal.side.clone(),
                title: p.title.clone(),
            };
            p.unconfirmed.push(seal);
            step.record(&conversation, Entry::channel(what, ctx.now_ms));
            return Ok(step);
        }
        let what = ChannelEvent::Ratified {
            name: Some(seal.name.clone()),
            side: seal.side.clone(),
            title: p.title.clone(),
        };
        p.unconfirmed.retain(|s| s.seal_key != seal.seal_key);
        p.seals.retain(|s| s.seal_key != seal.seal_key);
        p.seals.push(seal);
        step.record(&conversation, Entry::channel(what, ctx.now_ms));
        if p.view().missing.is_empty() {
            step.record(
                &conversation,
                Entry::channel(ChannelEvent::RatifiedByAll { title: p.title.clone() }, ctx.now_ms),
            );
        }
        Ok(step)
    }

    /// A seal for a proposal that has not arrived yet (it travels over the proposer's session,
    /// the seal over the signatory's): kept until the proposal comes, and checked then.
    fn keep_early_seal(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        through_hub: bool,
        proposal: [u8; 32],
        seal: Seal,
    ) -> Outcome {
        if self.early_seals.iter().any(|e| e.proposal == proposal && e.seal.seal_key == seal.seal_key) {
            return Ok(Step::none());
        }
        if self.early_seals.len() >= MAX_EARLY_SEALS {
            return Err(Why::TooManyEarlySeals);
        }
        let what = ChannelEvent::EarlySeal {
            name: seal.name.clone(),
            side: seal.side.clone(),
            proposal: hex_encode(&proposal),
        };
        self.early_seals.push(EarlySeal { proposal, seal, through_hub });
        let mut step = Step::none();
        step.record(&Conversation::channel(state), Entry::channel(what, ctx.now_ms));
        Ok(step)
    }

    /// Counts the seals that arrived before the proposal whose text is `text`, each checked as
    /// one that arrives after it; a refused one is shown as a rejection.
    fn count_early_seals(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        _lookup: &dyn Lookup,
        text: &str,
    ) -> Step {
        let id = agreement::text_hash(text.as_bytes());
        let (early, others): (Vec<EarlySeal>, Vec<EarlySeal>) =
            self.early_seals.drain(..).partition(|e| e.proposal == id);
        self.early_seals = others;
        let mut step = Step::none();
        let Some(i) = self.proposals.iter().position(|p| p.id == id) else { return step };
        for EarlySeal { seal, through_hub, .. } in early {
            let from = seal.name.clone();
            match self.add_seal(state, ctx, i, seal, through_hub) {
                Ok(more) => step = step.and(more),
                Err(why) => {
                    step.record(&Conversation::channel(state), Entry::rejected(&from, why, ctx.now_ms));
                }
            }
        }
        step
    }
}

/// Whose seal a ratification carries, and whether we know its key only through the hub: the
/// sender's own; or, passed on by a shuttle's hub, the side it names. A passed-on seal counts
/// only under a key we learned from that side itself (a contact of ours with the same seal
/// key): the hub publishes the cards, so a key we know only from it proves nothing.
fn signer_of(
    state: &ChannelState,
    lookup: &dyn Lookup,
    sender: &Card,
    signer: Option<MemberKey>,
) -> Outcome<(Card, bool)> {
    let card = match signer {
        None => sender.clone(),
        Some(k) if k == sender.party() => sender.clone(),
        Some(k) if state.hub() == Some(&sender.party()) => {
            state.member(&k).map(|m| m.card.clone()).ok_or(Why::SealForNonMember)?
        }
        Some(_) => return Err(Why::SealPassedByNonHub),
    };
    match state.ratifier(&card.party()) {
        Ok(_) => {}
        Err(backchannel_proto::channel::Refused::NotPrincipalRatifier { .. }) => {
            return Err(Why::NotPrincipalSeal { name: card.name.clone() });
        }
        Err(_) => return Err(Why::SealForNonMember),
    }
    let through_hub = card.party() != sender.party()
        && !lookup.contact(&card.party()).is_some_and(|(known, _)| known.seal_key == card.seal_key);
    Ok((card, through_hub))
}

/// The hub of a shuttle passes a side's new seal to the other members, who cannot hear the
/// side; they verify it under the side's own key.
fn pass_on_seal(
    state: &ChannelState,
    ctx: &Ctx<'_>,
    sender: &Card,
    signer: &Card,
    proposal: [u8; 32],
    seal: Seal,
    new: bool,
) -> Step {
    let me = ctx.me.party();
    let mut step = Step::none();
    if !new || state.hub() != Some(&me) || sender.party() != signer.party() {
        return step;
    }
    let to: Vec<MemberKey> =
        state.everyone_but(&me).into_iter().map(|m| m.key()).filter(|k| *k != signer.party()).collect();
    let body = ChannelBody::Ratification {
        proposal,
        signature: seal.signature,
        signer: Some(signer.party()),
        signed_at: seal.signed_at,
        possession: seal.possession,
    };
    step.seal(to, state.id, &body);
    step
}
