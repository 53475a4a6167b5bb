//! Texts in a channel: non-papers (versioned, unattributed drafts) and proposals put to
//! ratification, with the seals that ratify them. Summaries live in the channel record; the
//! texts (up to several MiB) in records of their own, so listing does not open them.

use backchannel_proto::agreement::{self, Agreement, Signatory};
use backchannel_proto::channel::{ChannelBody, Mode, Phase};
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

/// A signatory's seal over a proposal, checked when it arrived.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Seal {
    pub name: String,
    pub side: String,
    pub seal_key: [u8; 32],
    pub signature: String,
}

impl Seal {
    fn signatory(&self) -> Signatory {
        Signatory {
            name: self.name.clone(),
            side: self.side.clone(),
            seal_key: self.seal_key,
            signature: self.signature.clone(),
        }
    }
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

fn paper_key(title: &str, version: u32) -> String {
    format!("{}/{version}", hex_encode(&agreement::text_hash(title.as_bytes())))
}

fn check_document(text: &str) -> Result<()> {
    if text.is_empty() || text.len() > MAX_DOCUMENT {
        let why = format!("a document has 1 to {MAX_DOCUMENT} bytes (this one has {})", text.len());
        return Err(ClientError::InvalidInput { what: "document", why });
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

/// Stores a version; if another text already holds that number (two drafts crossed), it
/// takes the next free one. Returns the number used, or `None` for a repeat.
fn store_paper(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    title: &str,
    version: u32,
    text: &str,
) -> Result<Option<u32>> {
    let sha = hex_encode(&agreement::text_hash(text.as_bytes()));
    let same_title = || rec.papers.iter().filter(|p| p.title == title);
    if same_title().any(|p| p.sha256 == sha) {
        return Ok(None);
    }
    let taken = same_title().any(|p| p.version == version);
    let version = if taken { same_title().map(|p| p.version).max().unwrap_or(0) + 1 } else { version };
    let channel = hex_encode(&rec.state.id.0);
    tx.put(TEXT, &text_id(&channel, "paper", &paper_key(title, version)), &text.to_owned())?;
    rec.papers.push(PaperVersion {
        title: title.to_owned(),
        version,
        bytes: text.len(),
        sha256: sha,
        at: now_ms(),
    });
    Ok(Some(version))
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
            body.check().map_err(|why| ClientError::InvalidInput { what: "non-paper", why: why.0 })?;
            let Some(version) = store_paper(tx, &mut rec, title, next, text)? else {
                return Err(ClientError::Refused(format!("this text is already a version of {title:?}")));
            };
            let out = crate::channels::broadcast(tx, &mut rec, &me.identity_key, &body)?;
            channel_event(tx, &rec, format!("non-paper {title:?} v{version} put ({} bytes)", text.len()))?;
            tx.put(crate::channels::CHANNEL, &id, &rec)?;
            Ok((version, out))
        })
    }

    pub fn nonpapers(&mut self, channel: &str) -> Result<Vec<PaperVersion>> {
        self.store.tx(|tx| Ok(find_channel(tx, channel)?.1.papers))
    }

    /// A version's text (the latest without `version`).
    pub fn nonpaper(&mut self, channel: &str, title: &str, version: Option<u32>) -> Result<(u32, String)> {
        self.store.tx(|tx| {
            let (id, rec) = find_channel(tx, channel)?;
            let versions: Vec<u32> =
                rec.papers.iter().filter(|p| p.title == title).map(|p| p.version).collect();
            let Some(latest) = versions.iter().max().copied() else {
                return Err(ClientError::Refused(format!("no non-paper titled {title:?} in {channel}")));
            };
            let v = version.unwrap_or(latest);
            if !versions.contains(&v) {
                return Err(ClientError::Refused(format!(
                    "{title:?} has versions 1 to {latest}; there is no v{v}"
                )));
            }
            let text: Option<String> = tx.get(TEXT, &text_id(&id, "paper", &paper_key(title, v)))?;
            text.map(|t| (v, t)).ok_or_else(|| ClientError::Store {
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
            body.check().map_err(|why| ClientError::InvalidInput { what: "proposal", why: why.0 })?;
            let view = store_proposal(tx, &mut rec, title, text, signatories)?
                .ok_or_else(|| ClientError::Refused("this text was already proposed".into()))?;
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
            let text = proposal_text(tx, &id, &p.id)?;
            let signature = agreement::ratify(&identity, text.as_bytes())?;
            let body = ChannelBody::Ratification { proposal: p.id, signature: signature.clone() };
            let title = p.title.clone();
            rec.proposals[i].seals.push(Seal {
                name: me.name.clone(),
                side: me.side.clone(),
                seal_key: me.seal_key,
                signature,
            });
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
                Some(v) => Ok(vec![channel_event(
                    tx,
                    rec,
                    format!(
                        "{} proposed {title:?} ({}) for ratification by {}",
                        sender.name,
                        &v.id[..12],
                        signatories.join(", ")
                    ),
                )?]),
            }
        }
        ChannelBody::Ratification { proposal, signature } => {
            on_ratification(tx, rec, sender, proposal, signature)
        }
        _ => Err(ClientError::Refused("an unexpected channel message".into())),
    }
}

fn on_ratification(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    sender: &Card,
    proposal: [u8; 32],
    signature: String,
) -> Result<Vec<Event>> {
    let Some(i) = rec.proposals.iter().position(|p| p.id == proposal) else {
        return Err(ClientError::Refused("a ratification of a proposal we do not have".into()));
    };
    let channel = hex_encode(&rec.state.id.0);
    let text = proposal_text(tx, &channel, &proposal)?;
    let p = &mut rec.proposals[i];
    if !p.signatories.contains(&sender.side) {
        return Err(ClientError::Refused(format!("{} is not a signatory of {:?}", sender.side, p.title)));
    }
    if agreement::verify_signature(&sender.seal_key, text.as_bytes(), &signature).is_err() {
        return Err(ClientError::Refused(format!(
            "{}'s ratification of {:?} does not verify against the text we hold (a changed text, or another key)",
            sender.name, p.title
        )));
    }
    if p.seals.iter().any(|s| s.seal_key == sender.seal_key) {
        return Ok(Vec::new());
    }
    p.seals.push(Seal {
        name: sender.name.clone(),
        side: sender.side.clone(),
        seal_key: sender.seal_key,
        signature,
    });
    let (title, view) = (p.title.clone(), p.view());
    let mut events =
        vec![channel_event(tx, rec, format!("{} ({}) ratified {title:?}", sender.name, sender.side))?];
    if view.missing.is_empty() {
        events.push(channel_event(
            tx,
            rec,
            format!("{title:?} is ratified by every signatory; `backchannel agreement export` writes it out"),
        )?);
    }
    Ok(events)
}
