//! Texts in a channel: non-papers (versioned, unattributed drafts) and proposals put to
//! ratification, with the seals that ratify them. Summaries live in the channel record; the
//! texts (up to several MiB) in records of their own, so listing does not open them.

use backchannel_proto::agreement::{self, Agreement, ProposalRef, Signatory};
use backchannel_proto::channel::{ChannelBody, MAX_MEMBERS, Mode, Phase};
use backchannel_proto::identity::Card;
use backchannel_wire::hex_encode;
use serde::{Deserialize, Serialize};

use crate::channels::{ChannelRecord, Fanout, find_channel, timeline_key};
use crate::error::{ClientError, Result};
use crate::model::{Entry, Event};
use crate::party::{Party, load_card, load_identity, now_ms};
use crate::store::Tx;

const TEXT: &str = "text";
/// Largest non-paper or proposal, in bytes (it travels as one message of up to 1024 blocks).
pub const MAX_DOCUMENT: usize = 3 * 1024 * 1024;

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
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct ProposalRecord {
    pub id: [u8; 32],
    pub title: String,
    pub signatories: Vec<String>,
    pub seals: Vec<Seal>,
}

/// A signatory's seal over a proposal, checked when it arrived: its signature over its
/// statement (dated `signed_at`) and its proof of possession of the seal key. Seals stored by
/// older versions (over the bare text) have neither and no longer verify.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Seal {
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
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct EarlySeal {
    pub proposal: [u8; 32],
    pub seal: Seal,
}

/// Most seals one channel keeps waiting for their proposals (a member could send any number).
const MAX_EARLY_SEALS: usize = 4 * MAX_MEMBERS;

impl Seal {
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

    fn from_card(card: &Card, signature: String, signed_at: Option<u64>, possession: Option<String>) -> Self {
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

    fn card(&self) -> Card {
        Card {
            name: self.name.clone(),
            side: self.side.clone(),
            identity_key: self.identity_key,
            device_key: [0; 32],
            seal_key: self.seal_key,
        }
    }
}

/// What the channel knows of proposal `p`, to make or check a seal on it.
fn proposal_ref<'a>(rec: &ChannelRecord, p: &'a ProposalRecord) -> ProposalRef<'a> {
    ProposalRef { channel: rec.state.id, id: p.id, title: &p.title, required_sides: &p.signatories }
}

impl ProposalRecord {
    fn view(&self) -> ProposalView {
        let signed: Vec<&str> = self.seals.iter().map(|s| s.side.as_str()).collect();
        ProposalView {
            id: hex_encode(&self.id),
            title: self.title.clone(),
            signatories: self.signatories.clone(),
            ratified_by: self.seals.iter().map(|s| format!("{} ({})", s.name, s.side)).collect(),
            missing: self.signatories.iter().filter(|s| !signed.contains(&s.as_str())).cloned().collect(),
        }
    }
}

fn text_id(channel: &str, kind: &str, key: &str) -> String {
    format!("{channel}/{kind}/{key}")
}

fn check_document(text: &str) -> Result<()> {
    if text.is_empty() || text.len() > MAX_DOCUMENT {
        let why = format!("a document has 1 to {MAX_DOCUMENT} bytes (this one has {})", text.len());
        return Err(ClientError::InvalidInput { what: "document", why });
    }
    Ok(())
}

/// Checks a text's message before anything is stored: its bounds, and its size once encoded
/// (JSON escapes control characters and quotes, so a text near the limit can outgrow it).
fn check_body(body: &ChannelBody, what: &'static str) -> Result<()> {
    body.check().map_err(|why| ClientError::InvalidInput { what, why: why.0 })?;
    let encoded = body.encode().len();
    // A message also carries its header and the frame's padding: keep a margin.
    let limit = backchannel_proto::message::MAX_BODY - 4096;
    if encoded > limit {
        let why = format!(
            "it takes {encoded} bytes once encoded (quotes and control characters take more room), \
             more than the {limit} one message carries; split it"
        );
        return Err(ClientError::InvalidInput { what, why });
    }
    Ok(())
}

/// Who may put texts to the channel: any member that may post; in a shuttle, only the hub
/// (the mediator drafts the single text the sides react to).
fn may_draft(rec: &ChannelRecord, who: &Card) -> Result<()> {
    rec.state.may_post(&who.identity_key)?;
    if rec.state.mode == Mode::Shuttle && rec.state.hub() != Some(&who.identity_key) {
        return Err(ClientError::Refused(format!(
            "in shuttle {}, only the intermediary puts drafts and proposals",
            rec.state.name
        )));
    }
    Ok(())
}

fn channel_event(tx: &Tx<'_>, rec: &ChannelRecord, text: String) -> Result<Event> {
    tx.append_timeline(&timeline_key(&rec.state.id), &Entry::Event { text: text.clone(), at: now_ms() })?;
    Ok(Event::Channel { channel: rec.state.name.clone(), text })
}

/// A title's versions in the order every member agrees on: by the number the drafter gave,
/// then by text hash, so drafts that crossed get the same numbers everywhere once all have
/// arrived. Returned renumbered 1, 2, 3…
fn versions(rec: &ChannelRecord, title: &str) -> Vec<PaperVersion> {
    let mut all: Vec<PaperVersion> = rec.papers.iter().filter(|p| p.title == title).cloned().collect();
    all.sort_by(|a, b| (a.version, &a.sha256).cmp(&(b.version, &b.sha256)));
    for (i, p) in all.iter_mut().enumerate() {
        p.version = i as u32 + 1;
    }
    all
}

/// Stores a version the drafter numbered `claimed`; returns its place among the title's
/// versions, or `None` for a repeat.
fn store_paper(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    title: &str,
    claimed: u32,
    text: &str,
) -> Result<Option<u32>> {
    let sha = hex_encode(&agreement::text_hash(text.as_bytes()));
    if rec.papers.iter().any(|p| p.title == title && p.sha256 == sha) {
        return Ok(None);
    }
    let channel = hex_encode(&rec.state.id.0);
    tx.put(TEXT, &text_id(&channel, "paper", &sha), &text.to_owned())?;
    let at = now_ms();
    rec.papers.push(PaperVersion {
        title: title.to_owned(),
        version: claimed,
        bytes: text.len(),
        sha256: sha.clone(),
        at,
    });
    Ok(versions(rec, title).iter().find(|p| p.sha256 == sha).map(|p| p.version))
}

impl Party {
    /// Puts a non-paper to the channel: a new version if the title exists.
    pub fn nonpaper_put(&mut self, channel: &str, title: &str, text: &str) -> Result<(u32, Fanout)> {
        check_document(text)?;
        self.store.tx(|tx| {
            let (id, mut rec) = find_channel(tx, channel)?;
            let me = load_card(tx)?;
            may_draft(&rec, &me)?;
            let next =
                rec.papers.iter().filter(|p| p.title == title).map(|p| p.version).max().unwrap_or(0) + 1;
            let body =
                ChannelBody::NonPaper { title: title.to_owned(), version: next, text: text.to_owned() };
            check_body(&body, "non-paper")?;
            let Some(version) = store_paper(tx, &mut rec, title, next, text)? else {
                return Err(ClientError::Refused(format!("this text is already a version of {title:?}")));
            };
            let out = crate::channels::broadcast(tx, &mut rec, &me.identity_key, &body)?;
            channel_event(tx, &rec, format!("non-paper {title:?} v{version} put ({} bytes)", text.len()))?;
            tx.put(crate::channels::CHANNEL, &id, &rec)?;
            Ok((version, out))
        })
    }

    /// Every non-paper's versions, numbered as every member numbers them.
    pub fn nonpapers(&mut self, channel: &str) -> Result<Vec<PaperVersion>> {
        self.store.tx(|tx| {
            let rec = find_channel(tx, channel)?.1;
            let mut titles: Vec<&str> = Vec::new();
            for p in &rec.papers {
                if !titles.contains(&p.title.as_str()) {
                    titles.push(&p.title);
                }
            }
            Ok(titles.iter().flat_map(|t| versions(&rec, t)).collect())
        })
    }

    /// A version's text (the latest without `version`).
    pub fn nonpaper(&mut self, channel: &str, title: &str, version: Option<u32>) -> Result<(u32, String)> {
        self.store.tx(|tx| {
            let (id, rec) = find_channel(tx, channel)?;
            let all = versions(&rec, title);
            let Some(latest) = all.last() else {
                return Err(ClientError::Refused(format!("no non-paper titled {title:?} in {channel}")));
            };
            let wanted = version.unwrap_or(latest.version);
            let Some(p) = all.iter().find(|p| p.version == wanted) else {
                return Err(ClientError::Refused(format!(
                    "{title:?} has versions 1 to {}; there is no v{wanted}",
                    latest.version
                )));
            };
            let text: Option<String> = tx.get(TEXT, &text_id(&id, "paper", &p.sha256))?;
            text.map(|t| (wanted, t)).ok_or_else(|| ClientError::Store {
                path: String::new(),
                why: "non-paper text missing".into(),
            })
        })
    }

    /// Puts a text to ratification by the named sides.
    pub fn propose(
        &mut self,
        channel: &str,
        title: &str,
        text: &str,
        signatories: &[String],
    ) -> Result<ProposalView> {
        check_document(text)?;
        self.store.tx(|tx| {
            let (id, mut rec) = find_channel(tx, channel)?;
            let me = load_card(tx)?;
            may_draft(&rec, &me)?;
            if !matches!(rec.state.phase, Phase::Drafting | Phase::Agreed) {
                return Err(ClientError::Refused(format!(
                    "{channel} is in phase {}; proposals are made while drafting or agreed (`backchannel phase propose {channel} drafting`)",
                    rec.state.phase.name()
                )));
            }
            let sides = rec.state.sides();
            if let Some(bad) = signatories.iter().find(|s| !sides.contains(s)) {
                return Err(ClientError::Refused(format!(
                    "{bad:?} is not a side with a principal in {channel}; sides: {}",
                    sides.join(", ")
                )));
            }
            let body = ChannelBody::Proposal { title: title.to_owned(), text: text.to_owned(), signatories: signatories.to_vec() };
            check_body(&body, "proposal")?;
            let view = store_proposal(tx, &mut rec, title, text, signatories)?
                .ok_or_else(|| ClientError::Refused("this text was already proposed".into()))?;
            count_early_seals(tx, &mut rec, text)?;
            crate::channels::broadcast(tx, &mut rec, &me.identity_key, &body)?;
            channel_event(tx, &rec, format!("you proposed {title:?} ({}) for ratification by {}", &view.id[..12], signatories.join(", ")))?;
            tx.put(crate::channels::CHANNEL, &id, &rec)?;
            Ok(view)
        })
    }

    pub fn proposals(&mut self, channel: &str) -> Result<Vec<ProposalView>> {
        self.store
            .tx(|tx| Ok(find_channel(tx, channel)?.1.proposals.iter().map(ProposalRecord::view).collect()))
    }

    /// Signs a proposal's text with our seal and sends the signature to every member.
    pub fn ratify(&mut self, channel: &str, proposal: &str) -> Result<ProposalView> {
        self.store.tx(|tx| {
            let (id, mut rec) = find_channel(tx, channel)?;
            let identity = load_identity(tx)?;
            let me = identity.card();
            rec.state.may_post(&me.identity_key)?;
            let i = find_proposal(&rec, proposal)?;
            let p = &rec.proposals[i];
            if !p.signatories.contains(&me.side) {
                return Err(ClientError::Refused(format!("{} is not a signatory of {:?}", me.side, p.title)));
            }
            if p.seals.iter().any(|s| s.seal_key == me.seal_key) {
                return Err(ClientError::Refused(format!("you already ratified {:?}", p.title)));
            }
            let seal = proposal_ref(&rec, p).ratify(&identity, now_ms() / 1000)?;
            let body = ChannelBody::Ratification {
                proposal: p.id,
                signature: seal.signature.clone(),
                signer: None,
                signed_at: Some(seal.signed_at),
                possession: Some(seal.possession.clone()),
            };
            let title = p.title.clone();
            rec.proposals[i].seals.push(Seal::from_card(
                &me,
                seal.signature,
                Some(seal.signed_at),
                Some(seal.possession),
            ));
            crate::channels::broadcast(tx, &mut rec, &me.identity_key, &body)?;
            channel_event(tx, &rec, format!("you ratified {title:?}"))?;
            tx.put(crate::channels::CHANNEL, &id, &rec)?;
            Ok(rec.proposals[i].view())
        })
    }

    /// The agreement as exported: text, every seal so far, the sides required.
    pub fn agreement(&mut self, channel: &str, proposal: &str) -> Result<Agreement> {
        self.store.tx(|tx| {
            let (id, rec) = find_channel(tx, channel)?;
            let p = &rec.proposals[find_proposal(&rec, proposal)?];
            Ok(Agreement {
                channel: rec.state.id,
                title: p.title.clone(),
                text: proposal_text(tx, &id, &p.id)?.into_bytes(),
                required_sides: p.signatories.clone(),
                signatories: p.seals.iter().map(Seal::signatory).collect(),
                proposal_id: p.id,
            })
        })
    }
}

/// A proposal by number (1-based, as listed), id prefix (hex) or exact title.
fn find_proposal(rec: &ChannelRecord, query: &str) -> Result<usize> {
    let hits: Vec<usize> = rec
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
        [] => Err(ClientError::Refused(format!(
            "no proposal {query:?} in {}; `backchannel agreement status {}` lists them",
            rec.state.name, rec.state.name
        ))),
        _ => Err(ClientError::Refused(format!("{query:?} matches several proposals; use more of the id"))),
    }
}

fn proposal_text(tx: &Tx<'_>, channel: &str, id: &[u8; 32]) -> Result<String> {
    tx.get::<String>(TEXT, &text_id(channel, "proposal", &hex_encode(id)))?
        .ok_or_else(|| ClientError::Store { path: String::new(), why: "proposal text missing".into() })
}

fn store_proposal(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    title: &str,
    text: &str,
    signatories: &[String],
) -> Result<Option<ProposalView>> {
    let id = agreement::text_hash(text.as_bytes());
    if rec.proposals.iter().any(|p| p.id == id) {
        return Ok(None);
    }
    tx.put(TEXT, &text_id(&hex_encode(&rec.state.id.0), "proposal", &hex_encode(&id)), &text.to_owned())?;
    let p =
        ProposalRecord { id, title: title.to_owned(), signatories: signatories.to_vec(), seals: Vec::new() };
    let view = p.view();
    rec.proposals.push(p);
    Ok(Some(view))
}

/// Takes in a non-paper, proposal or ratification from a member.
pub(crate) fn receive(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    sender: &Card,
    body: ChannelBody,
) -> Result<Vec<Event>> {
    match body {
        ChannelBody::NonPaper { title, version, text } => {
            may_draft(rec, sender)?;
            match store_paper(tx, rec, &title, version, &text)? {
                None => Ok(Vec::new()),
                Some(v) => Ok(vec![channel_event(
                    tx,
                    rec,
                    format!("non-paper {title:?} v{v} arrived ({} bytes)", text.len()),
                )?]),
            }
        }
        ChannelBody::Proposal { title, text, signatories } => {
            may_draft(rec, sender)?;
            match store_proposal(tx, rec, &title, &text, &signatories)? {
                None => Ok(Vec::new()),
                Some(v) => {
                    let mut events = vec![channel_event(
                        tx,
                        rec,
                        format!(
                            "{} proposed {title:?} ({}) for ratification by {}",
                            sender.name,
                            &v.id[..12],
                            signatories.join(", ")
                        ),
                    )?];
                    events.extend(count_early_seals(tx, rec, &text)?);
                    Ok(events)
                }
            }
        }
        ChannelBody::Ratification { proposal, signature, signer, signed_at, possession } => {
            let signer = signer_of(rec, sender, signer)?;
            rec.state.ratifier(&signer.identity_key)?;
            let seal = Seal::from_card(&signer, signature, signed_at, possession);
            let events = on_ratification(tx, rec, proposal, seal.clone())?;
            pass_on_seal(tx, rec, sender, &signer, proposal, seal, !events.is_empty())?;
            Ok(events)
        }
        _ => Err(ClientError::Refused("an unexpected channel message".into())),
    }
}

/// Whose seal a ratification carries: the sender's own, or, passed on by a shuttle's hub,
/// the side it names (checked against that side's card in the channel state).
fn signer_of(rec: &ChannelRecord, sender: &Card, signer: Option<[u8; 32]>) -> Result<Card> {
    match signer {
        None => Ok(sender.clone()),
        Some(k) if k == sender.identity_key => Ok(sender.clone()),
        Some(k) if rec.state.hub() == Some(&sender.identity_key) => rec
            .state
            .member(&k)
            .map(|m| m.card.clone())
            .ok_or_else(|| ClientError::Refused("a ratification passed on for a non-member".into())),
        Some(_) => Err(ClientError::Refused("only a shuttle's intermediary passes on others' seals".into())),
    }
}

/// The hub of a shuttle passes a side's new seal to the other members, who cannot hear the
/// side; they verify it under the side's own key.
fn pass_on_seal(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    sender: &Card,
    signer: &Card,
    proposal: [u8; 32],
    seal: Seal,
    new: bool,
) -> Result<()> {
    let me = load_card(tx)?.identity_key;
    if !new || rec.state.hub() != Some(&me) || sender.identity_key != signer.identity_key {
        return Ok(());
    }
    let to: Vec<_> = rec
        .state
        .everyone_but(&me)
        .into_iter()
        .filter(|m| m.card.identity_key != signer.identity_key)
        .cloned()
        .collect();
    let body = ChannelBody::Ratification {
        proposal,
        signature: seal.signature,
        signer: Some(signer.identity_key),
        signed_at: seal.signed_at,
        possession: seal.possession,
    };
    crate::channels::fan_out_to(tx, rec, &to, &body)?;
    Ok(())
}

fn on_ratification(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    proposal: [u8; 32],
    seal: Seal,
) -> Result<Vec<Event>> {
    let Some(i) = rec.proposals.iter().position(|p| p.id == proposal) else {
        return keep_early_seal(tx, rec, proposal, seal);
    };
    add_seal(tx, rec, i, seal)
}

/// Checks a seal over proposal `i` and counts it: refused if its side is not a signatory, or
/// its proof of possession or its signature over the statement this channel implies for it
/// does not verify; a repeat changes nothing.
fn add_seal(tx: &Tx<'_>, rec: &mut ChannelRecord, i: usize, seal: Seal) -> Result<Vec<Event>> {
    let checked = {
        let p = &rec.proposals[i];
        if !p.signatories.contains(&seal.side) {
            return Err(ClientError::Refused(format!("{} is not a signatory of {:?}", seal.side, p.title)));
        }
        proposal_ref(rec, p).check_seal(
            &seal.card(),
            seal.signed_at,
            &seal.signature,
            seal.possession.as_deref(),
        )
    };
    let p = &mut rec.proposals[i];
    if let Err(e) = checked {
        return Err(ClientError::Refused(format!(
            "{}'s ratification of {:?} does not verify (a changed proposal, another key, or another channel): {e}",
            seal.name, p.title
        )));
    }
    if p.seals.iter().any(|s| s.seal_key == seal.seal_key) {
        return Ok(Vec::new());
    }
    let who = format!("{} ({}) ratified {:?}", seal.name, seal.side, p.title);
    p.seals.push(seal);
    let (title, complete) = (p.title.clone(), p.view().missing.is_empty());
    let mut events = vec![channel_event(tx, rec, who)?];
    if complete {
        events.push(channel_event(
            tx,
            rec,
            format!("{title:?} is ratified by every signatory; `backchannel agreement export` writes it out"),
        )?);
    }
    Ok(events)
}

/// A seal for a proposal that has not arrived yet (it travels over the proposer's session,
/// the seal over the signatory's): kept until the proposal comes, and checked then.
fn keep_early_seal(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    proposal: [u8; 32],
    seal: Seal,
) -> Result<Vec<Event>> {
    if rec.early_seals.iter().any(|e| e.proposal == proposal && e.seal.seal_key == seal.seal_key) {
        return Ok(Vec::new());
    }
    if rec.early_seals.len() >= MAX_EARLY_SEALS {
        return Err(ClientError::Refused("too many ratifications of proposals we do not have".into()));
    }
    let text = format!(
        "{} ({}) ratified a proposal that has not arrived yet ({}); it counts once the proposal arrives",
        seal.name,
        seal.side,
        &hex_encode(&proposal)[..12]
    );
    rec.early_seals.push(EarlySeal { proposal, seal });
    Ok(vec![channel_event(tx, rec, text)?])
}

/// Counts the seals that arrived before the proposal whose text is `text`, each checked as
/// one that arrives after it; a refused one is shown as a rejection.
fn count_early_seals(tx: &Tx<'_>, rec: &mut ChannelRecord, text: &str) -> Result<Vec<Event>> {
    let id = agreement::text_hash(text.as_bytes());
    let (early, others): (Vec<EarlySeal>, Vec<EarlySeal>) =
        rec.early_seals.drain(..).partition(|e| e.proposal == id);
    rec.early_seals = others;
    let Some(i) = rec.proposals.iter().position(|p| p.id == id) else { return Ok(Vec::new()) };
    let mut events = Vec::new();
    for EarlySeal { seal, .. } in early {
        let from = seal.name.clone();
        match add_seal(tx, rec, i, seal) {
            Ok(more) => events.extend(more),
            Err(ClientError::Refused(detail)) => {
                let entry = Entry::Rejected { from: from.clone(), detail: detail.clone(), at: now_ms() };
                tx.append_timeline(&timeline_key(&rec.state.id), &entry)?;
                events.push(Event::Rejected { from, detail: format!("[{}] {detail}", rec.state.name) });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(events)
}
