//! Who may probe whom, when, and on what terms.

use backchannel_proto::channel::{ChannelState, MemberKey, Mode, Role};
use backchannel_redline::{
    IssueOptions, MayAsk, OptionSpace, PackageTerms, ProbeKind, ProbeTerms, SingleTerms,
};

use super::book::Ctx;
use super::{Asker, MAX_CHANNEL_CAP, ProbeSpec, refused};
use crate::error::{ClientError, Result};

/// Whether probes may run in the channel now, under these terms.
pub(super) fn run_allowed(state: &ChannelState, terms: &ProbeTerms) -> std::result::Result<(), String> {
    let phase = state.phase.name();
    if !state.policy().probes_allowed {
        return Err(format!("probes are not allowed in phase {phase} of {}", state.name));
    }
    if terms.phase != phase {
        return Err(format!(
            "the probe counts against phase {}, but {} is now in phase {phase}; propose it again",
            terms.phase, state.name
        ));
    }
    Ok(())
}

/// Whether `me` and the member `peer` (of side `peer_side`) may run a probe under `terms`.
pub(super) fn admissible(
    ctx: &Ctx<'_>,
    peer: &MemberKey,
    terms: &ProbeTerms,
) -> std::result::Result<(), String> {
    run_allowed(ctx.state, terms)?;
    let (state, me) = (ctx.state, &ctx.me.identity_key);
    for key in [me, peer] {
        let member = state.member(key).ok_or_else(|| format!("not a member of {}", state.name))?;
        if member.role == Role::Observer {
            return Err(format!("observers of {} take no part in probes", state.name));
        }
    }
    let peer_side = state.member(peer).map(|m| m.card.side.as_str()).unwrap_or_default();
    if peer_side == ctx.me.side {
        return Err(format!("a probe runs between two sides; both of you are {peer_side}"));
    }
    if state.mode == Mode::Shuttle && state.hub() != Some(me) && state.hub() != Some(peer) {
        return Err(format!(
            "in shuttle {} the sides have no session with each other, so they cannot probe; \
             run the probe in a direct channel (the intermediary can open one and introduce you)",
            state.name
        ));
    }
    let sides = [ctx.me.side.as_str(), peer_side];
    match &terms.kind {
        ProbeKind::Single(s) if !sides.contains(&s.gives.as_str()) || !sides.contains(&s.takes.as_str()) => {
            return Err(format!("the numbers must be held by {} and {}", sides[0], sides[1]));
        }
        ProbeKind::Package(p) if p.cap > MAX_CHANNEL_CAP => {
            return Err(format!("in a channel a package cap is at most {MAX_CHANNEL_CAP}"));
        }
        _ => {}
    }
    match &terms.may_ask {
        MayAsk::Only(side) if !sides.contains(&side.as_str()) => {
            Err(format!("the asker must be {} or {}", sides[0], sides[1]))
        }
        _ => Ok(()),
    }
}

/// Builds terms from what the user typed, in the channel's current phase.
pub(super) fn build_terms(
    ctx: &Ctx<'_>,
    peer_side: &str,
    spec: &ProbeSpec,
    asker: Asker,
) -> Result<ProbeTerms> {
    let side = |s: &str| -> Result<String> {
        match s {
            "me" => Ok(ctx.me.side.clone()),
            "them" => Ok(peer_side.to_owned()),
            _ if s.eq_ignore_ascii_case(&ctx.me.side) => Ok(ctx.me.side.clone()),
            _ if s.eq_ignore_ascii_case(peer_side) => Ok(peer_side.to_owned()),
            _ => refused(format!("{s:?} is neither your side ({}) nor theirs ({peer_side})", ctx.me.side)),
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
        Asker::Me => MayAsk::Only(ctx.me.side.clone()),
        Asker::Them => MayAsk::Only(peer_side.to_owned()),
        Asker::Either => MayAsk::Either,
    };
    let terms = ProbeTerms { phase: ctx.state.phase.name().to_owned(), may_ask, kind };
    terms.validate().map_err(|e| ClientError::InvalidInput { what: "probe terms", why: e.to_string() })?;
    Ok(terms)
}
