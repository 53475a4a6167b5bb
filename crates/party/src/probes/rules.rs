//! Who may probe whom, when, and on what terms.

use backchannel_proto::channel::{ChannelState, MemberKey, Mode, Role};
use backchannel_redline::{
    IssueOptions, MayAsk, OptionSpace, PackageTerms, ProbeKind, ProbeTerms, SingleTerms,
};

use super::{Asker, MAX_CHANNEL_CAP, ProbeSpec};
use crate::why::Why;
use crate::{Ctx, Outcome};

/// Whether probes may run in the channel now, under these terms.
pub(super) fn run_allowed(state: &ChannelState, terms: &ProbeTerms) -> Outcome<()> {
    let phase = state.phase.name();
    if !state.policy().probes_allowed {
        return Err(Why::ProbesNotAllowed { phase: phase.to_owned(), channel: state.name.clone() });
    }
    if terms.phase != phase {
        return Err(Why::ProbeOtherPhase {
            terms_phase: terms.phase.clone(),
            channel: state.name.clone(),
            phase: phase.to_owned(),
        });
    }
    Ok(())
}

/// Whether `me` and the member `peer` may run a probe under `terms`.
pub(super) fn admissible(
    state: &ChannelState,
    ctx: &Ctx<'_>,
    peer: &MemberKey,
    terms: &ProbeTerms,
) -> Outcome<()> {
    run_allowed(state, terms)?;
    let me = ctx.me.party();
    for key in [&me, peer] {
        let member = state.member(key).ok_or_else(|| Why::ProbeNotMember { channel: state.name.clone() })?;
        if member.role == Role::Observer {
            return Err(Why::ObserversDoNotProbe { channel: state.name.clone() });
        }
    }
    let peer_side = state.member(peer).map(|m| m.card.side.as_str()).unwrap_or_default();
    if peer_side == ctx.me.side {
        return Err(Why::ProbeSameSide { side: peer_side.to_owned() });
    }
    if state.mode == Mode::Shuttle && state.hub() != Some(&me) && state.hub() != Some(peer) {
        return Err(Why::ProbeInShuttle { channel: state.name.clone() });
    }
    let sides = [ctx.me.side.as_str(), peer_side];
    let pair = || (sides[0].to_owned(), sides[1].to_owned());
    match &terms.kind {
        ProbeKind::Single(s) if !sides.contains(&s.gives.as_str()) || !sides.contains(&s.takes.as_str()) => {
            let (a, b) = pair();
            return Err(Why::ProbeHolders { a, b });
        }
        ProbeKind::Package(p) if p.cap > MAX_CHANNEL_CAP => {
            return Err(Why::ProbeCap { max: MAX_CHANNEL_CAP });
        }
        _ => {}
    }
    match &terms.may_ask {
        MayAsk::Only(side) if !sides.contains(&side.as_str()) => {
            let (a, b) = pair();
            Err(Why::ProbeAsker { a, b })
        }
        _ => Ok(()),
    }
}

/// Builds terms from what the user typed, in the channel's current phase.
pub(super) fn build_terms(
    state: &ChannelState,
    ctx: &Ctx<'_>,
    peer_side: &str,
    spec: &ProbeSpec,
    asker: Asker,
) -> Outcome<ProbeTerms> {
    let mine = &ctx.me.side;
    let side = |s: &str| -> Outcome<String> {
        match s {
            "me" => Ok(mine.clone()),
            "them" => Ok(peer_side.to_owned()),
            _ if s.eq_ignore_ascii_case(mine) => Ok(mine.clone()),
            _ if s.eq_ignore_ascii_case(peer_side) => Ok(peer_side.to_owned()),
            _ => {
                Err(Why::ProbeSide { given: s.to_owned(), mine: mine.clone(), theirs: peer_side.to_owned() })
            }
        }
    };
    let kind = match spec {
        ProbeSpec::Single { issue, max, gives, takes } => ProbeKind::Single(SingleTerms {
            issue: issue.clone(),
            max: *max,
            gives: side(gives)?,
            takes: side(takes)?,
        }),
        ProbeSpec::Package { issues, cap } => {
            let issues = issues
                .iter()
                .map(|(issue, options)| IssueOptions { issue: issue.clone(), options: options.clone() })
                .collect();
            ProbeKind::Package(PackageTerms { space: OptionSpace { issues }, cap: *cap })
        }
    };
    let may_ask = match asker {
        Asker::Me => MayAsk::Only(mine.clone()),
        Asker::Them => MayAsk::Only(peer_side.to_owned()),
        Asker::Either => MayAsk::Either,
    };
    let terms = ProbeTerms { phase: state.phase.name().to_owned(), may_ask, kind };
    terms.validate().map_err(|e| Why::ProbeTerms { why: e.to_string() })?;
    Ok(terms)
}
