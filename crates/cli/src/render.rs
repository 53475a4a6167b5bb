//! Every word the CLI says: entries, events, refusals and errors put into sentences, with the
//! `backchannel …` hints that belong to this front end. Whatever a peer wrote (notes, names,
//! titles, reasons) goes through [`peer`] first, so it cannot move the cursor, recolour the
//! terminal, reverse text or pass for another line.

use backchannel_client::{
    AbortReason, ChannelEvent, ChannelView, ClientError, ContactView, DeclinedBy, DeliveryStatus,
    DeliveryView, Direction, Entry, EntryView, Event, MessageFault, Mode, PeerReason, Phase, ProbeEvent,
    ProbeStatus, ProbeView, Role, RouteNote, RouteState, RouteView, Update, Why,
};
use backchannel_redline::{MayAsk, ProbeKind, ProbeResult, ProbeTerms};

/// A peer's text made safe for one terminal line: control, bidi and zero-width characters are
/// shown as escapes (`\u{202e}`), and line breaks as `⏎` (multi-line notes are laid out by
/// [`note_lines`], never by the peer).
pub fn peer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push('⏎'),
            c if is_hazard(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Characters that move, hide or reorder what a terminal shows.
fn is_hazard(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD | 0x061C | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
            | 0xFFF9..=0xFFFB)
}

/// A multi-line note as lines: the first after `head`, every other indented under it and
/// carrying the sender again, so no line of a note can pass for an entry of its own.
fn note_lines(head: &str, from: &str, text: &str) -> String {
    let mut lines = text.split('\n');
    let mut out = format!("{head}{}", peer(lines.next().unwrap_or_default()));
    for line in lines {
        out.push_str(&format!("\n       | {}: {}", peer(from), peer(line)));
    }
    out
}

/// UTC `YYYY-MM-DD HH:MM:SS` from milliseconds since the epoch (no time-zone database needed).
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `#3, #5-#7`: ranges of sequence numbers as shown to people.
pub fn ranges(r: &[(u64, u64)]) -> String {
    let parts: Vec<String> =
        r.iter().map(|(a, b)| if a == b { format!("#{a}") } else { format!("#{a}-#{b}") }).collect();
    parts.join(", ")
}

pub fn contact(c: &ContactView) -> String {
    let mark = if c.verified { "verified" } else { "NOT verified" };
    let down = c.routes.iter().filter(|r| r.state == RouteState::Down).count();
    let hosts = match (c.routes.len(), down) {
        (0, _) => String::new(),
        (n, 0) => format!("  {n} route(s)"),
        (n, d) => format!("  {n} route(s), {d} DOWN"),
    };
    format!("{} ({})  safety number {}  [{mark}]{hosts}", peer(&c.name), peer(&c.side), c.safety_number)
}

/// One route, as `contact NAME relays` lists it.
pub fn route(r: &RouteView) -> String {
    let way = match r.direction {
        Direction::In => "in ",
        Direction::Out => "out",
    };
    let state = match r.state {
        RouteState::Up => "up",
        RouteState::Down => "DOWN",
        RouteState::Unknown => "unknown",
    };
    let heard =
        r.last_heard_ms.map_or_else(|| "never heard".to_owned(), |at| format!("last heard {}", time(at)));
    let note = match r.note {
        Some(RouteNote::Leaving) => "  (leaving: deleted once the contact confirms)",
        Some(RouteNote::NeedsAllow) => "  (waiting for you: `backchannel relays allow` it to use it)",
        None => "",
    };
    let rtt = r.rtt_ms.map(|ms| format!("  path test {ms} ms")).unwrap_or_default();
    let why = r.detail.as_deref().map(|d| format!("  ({})", peer(d))).unwrap_or_default();
    format!("{way} {}  {state}  {heard}{rtt}{why}{note}", peer(&r.relay))
}

pub fn role(role: Role) -> &'static str {
    match role {
        Role::Principal => "principal",
        Role::Intermediary => "intermediary",
        Role::Observer => "observer",
    }
}

pub fn mode(mode: Mode) -> &'static str {
    match mode {
        Mode::Shuttle => "shuttle",
        Mode::Direct => "direct",
    }
}

pub fn channel_summary(c: &ChannelView) -> String {
    let gone = if c.removed { "  [you were removed]" } else { "" };
    let behind = match &c.behind {
        Some((name, version)) => format!(
            "  [{} holds version {version} of its state; the creator's update has not reached you]",
            peer(name)
        ),
        None => String::new(),
    };
    format!(
        "{} ({}, phase {}, {} members){gone}{behind}",
        peer(&c.name),
        mode(c.mode),
        c.phase.name(),
        c.members.len()
    )
}

/// One timeline entry (as `read` shows it).
pub fn entry(e: &EntryView) -> String {
    match &e.entry {
        Entry::Note { from, outgoing, text, sent_at, seq, relayed_by, rephrased, .. } => {
            let arrow = if *outgoing { "→" } else { "←" };
            let number = if *seq > 0 { format!(" #{seq}") } else { String::new() };
            let how = if *rephrased { ", rephrased" } else { "" };
            let head = match relayed_by {
                Some(hub) => {
                    format!("{} {arrow} {} (relayed by {}{how}): ", time(*sent_at), peer(from), peer(hub))
                }
                None => format!("{} {arrow} {}{number}: ", time(*sent_at), peer(from)),
            };
            let lines = note_lines(&head, from, text);
            match &e.delivery {
                Some(d) => format!("{lines}\n{}", delivery(d)),
                None => lines,
            }
        }
        Entry::Channel { what, at } => format!("{} * {}", time(*at), channel_event(what)),
        Entry::Legacy { text, at } => format!("{} * {}", time(*at), peer(text)),
        Entry::Gap { from, first, last, at, .. } => {
            let state = match &e.still_missing {
                Some(m) if !m.is_empty() => format!("still missing: {}", ranges(m)),
                _ => "all arrived since".to_owned(),
            };
            format!("{} ! gap in notes #{first}..#{last} from {}; {state}", time(*at), peer(from))
        }
        Entry::Rejected { from, why, detail, at } => {
            format!(
                "{} ! rejected (queue of {}): {}",
                time(*at),
                peer(from),
                rejection(why.as_ref(), detail.as_deref())
            )
        }
        Entry::Joined { from, at, .. } => format!("{} * session with {} established", time(*at), peer(from)),
    }
}

/// The line under a note of ours: how its delivery goes.
fn delivery(d: &DeliveryView) -> String {
    let word = |s: DeliveryStatus| match s {
        DeliveryStatus::Queued => "queued",
        DeliveryStatus::Sent => "sent",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::NotConfirmed => "NOT CONFIRMED",
    };
    let hosts = match d.hosts.is_empty() {
        true => String::new(),
        false => format!(" (stored by {})", d.hosts.iter().map(|h| peer(h)).collect::<Vec<_>>().join(", ")),
    };
    let each = match d.recipients.len() {
        0 | 1 => String::new(),
        _ => {
            let list: Vec<String> =
                d.recipients.iter().map(|r| format!("{} {}", peer(&r.name), word(r.status))).collect();
            format!(": {}", list.join(", "))
        }
    };
    format!("    [{}{hosts}{each}]", word(d.status))
}

fn rejection(why: Option<&Why>, detail: Option<&str>) -> String {
    match (why, detail) {
        (Some(why), _) => refusal(why),
        (None, Some(text)) => peer(text),
        (None, None) => "refused".into(),
    }
}

/// What happened, as `sync` and `watch` print it.
pub fn event(e: &Event) -> String {
    match e {
        Event::Entry { conversation, entry: entry_ } => {
            let channel = match conversation.kind {
                backchannel_client::ConversationKind::Channel => Some(peer(&conversation.name)),
                backchannel_client::ConversationKind::Contact => None,
            };
            let tag = channel.as_ref().map(|c| format!("[{c}] ")).unwrap_or_default();
            match entry_ {
                Entry::Note { from, text, sent_at, relayed_by, rephrased, .. } => {
                    let by = match relayed_by {
                        Some(hub) => format!(
                            " (relayed by {}{})",
                            peer(hub),
                            if *rephrased { ", rephrased" } else { "" }
                        ),
                        None => String::new(),
                    };
                    note_lines(&format!("{} ← {tag}{}{by}: ", time(*sent_at), peer(from)), from, text)
                }
                Entry::Channel { what, .. } => format!("* {tag}{}", channel_event(what)),
                Entry::Legacy { text, .. } => format!("* {tag}{}", peer(text)),
                Entry::Gap { from, first, last, .. } => {
                    format!("! gap: notes from {} missing: {}", peer(from), ranges(&[(*first, *last)]))
                }
                Entry::Rejected { from, why, detail, .. } => {
                    format!(
                        "! REJECTED from {}'s queue: {tag}{}",
                        peer(from),
                        rejection(why.as_ref(), detail.as_deref())
                    )
                }
                Entry::Joined { from, side, safety_number, .. } => format!(
                    "! new contact {} ({}); safety number {}",
                    peer(from),
                    side.as_deref().map(peer).unwrap_or_default(),
                    safety_number.as_deref().unwrap_or("?")
                ),
            }
        }
        Event::Duplicate { conversation } => format!("! duplicate from {} dropped", peer(&conversation.name)),
        Event::GapClosed { from, seq, .. } => format!("! late note #{seq} from {} arrived", peer(from)),
    }
}

/// What `watch` says of an update (`None`: nothing worth a line).
pub fn update(u: &Update) -> Option<(String, bool)> {
    match u {
        Update::Party { event: e } => Some((event(e), true)),
        Update::Link { relay, up: true, detail: None } => Some((format!("connected to {relay}"), false)),
        Update::Link { relay, detail: Some(why), .. } => {
            Some((format!("relay {relay}: {}; retrying", peer(why)), false))
        }
        Update::Link { relay, up: false, detail: None } => {
            Some((format!("relay {relay}: down; retrying"), false))
        }
        Update::Task { trouble } => {
            let again = if trouble.retry { "; will retry" } else { "" };
            Some((
                format!("! introduction in {}: {}{again}", peer(&trouble.channel), error(&trouble.error)),
                false,
            ))
        }
        Update::Trouble { error: e } => Some((format!("warning: {}", error(e)), false)),
        Update::Route { contact, relay, direction, state } => {
            let way = match direction {
                Direction::In => "from",
                Direction::Out => "to",
            };
            let state = match state {
                RouteState::Up => "up",
                RouteState::Down => "DOWN",
                RouteState::Unknown => "unknown",
            };
            Some((format!("! route {way} {} via {}: {state}", peer(contact), peer(relay)), true))
        }
    }
}

pub fn phase(p: Phase) -> &'static str {
    p.name()
}

fn you_or(name: &Option<String>) -> String {
    name.as_deref().map_or_else(|| "you".to_owned(), peer)
}

pub fn channel_event(what: &ChannelEvent) -> String {
    use ChannelEvent as C;
    match what {
        C::Created { mode: m } => format!("you created this channel ({} channel)", mode(*m)),
        C::AddedYou { by, members } => {
            let names: Vec<String> = members.iter().map(|m| peer(m)).collect();
            format!("{} added you; members: {}", peer(by), names.join(", "))
        }
        C::MemberJoined { name, side, role: r } => {
            format!("{} ({}) joined as {}", peer(name), peer(side), role(*r))
        }
        C::MemberRemoved { name, side } => format!("{} ({}) was removed", peer(name), peer(side)),
        C::RemovedYou => "you were removed from this channel; you will receive nothing more".into(),
        C::Introducing { name, side } => format!("introducing you to {} ({})", peer(name), peer(side)),
        C::Connected { name, side, safety_number } => {
            format!("now connected with {} ({}); safety number {safety_number}", peer(name), peer(side))
        }
        C::Consented { name: None, phase: p, .. } => format!("you consent to moving to {}", phase(*p)),
        C::Consented { name: Some(n), side, phase: p } => {
            format!("{} ({}) consents to moving to {}", peer(n), peer(side), phase(*p))
        }
        C::PhaseMoved { phase: p, every_side_consented: true } => {
            format!("every side consented: the phase is now {}", phase(*p))
        }
        C::PhaseMoved { phase: p, .. } => format!("the phase is now {}", phase(*p)),
        C::Relayed { from, entry: n, to, rephrased } => {
            let how = if *rephrased { "rephrased" } else { "as written" };
            let names: Vec<String> = to.iter().map(|t| peer(t)).collect();
            format!("you relayed {}'s note (entry {n}) to {} ({how})", peer(from), names.join(", "))
        }
        C::PaperPut { title, version, bytes, yours: true } => {
            format!("non-paper {:?} v{version} put ({bytes} bytes)", peer(title))
        }
        C::PaperPut { title, version, bytes, yours: false } => {
            format!("non-paper {:?} v{version} arrived ({bytes} bytes)", peer(title))
        }
        C::Proposed { by, title, id, signatories } => format!(
            "{} proposed {:?} ({}) for ratification by {}",
            you_or(by),
            peer(title),
            &id[..12.min(id.len())],
            signatories.iter().map(|s| peer(s)).collect::<Vec<_>>().join(", ")
        ),
        C::Ratified { name, side, title } => match name {
            None => format!("you ratified {:?}", peer(title)),
            Some(n) => format!("{} ({}) ratified {:?}", peer(n), peer(side), peer(title)),
        },
        C::RatifiedByAll { title } => {
            format!(
                "{:?} is ratified by every signatory; `backchannel agreement export` writes it out",
                peer(title)
            )
        }
        C::EarlySeal { name, side, proposal } => format!(
            "{} ({}) ratified a proposal that has not arrived yet ({}); it counts once the proposal arrives",
            peer(name),
            peer(side),
            &proposal[..12.min(proposal.len())]
        ),
        C::SealOnlyThroughHub { name, side, title } => format!(
            "{} ({})'s ratification of {:?} was passed on by the intermediary, signed with a key known only \
             through the intermediary: not counted until you compare safety numbers with {} directly",
            peer(name),
            peer(side),
            peer(title),
            peer(name)
        ),
        C::StateForked { name, side, version } => format!(
            "WARNING: {} ({}) holds another state of this channel than you under the same version {version}: \
             the creator has shown members different states (members, phase or policies); compare with {} directly",
            peer(name),
            peer(side),
            peer(name)
        ),
        C::StateDiverges { name, theirs, ours } => {
            format!("{} holds version {theirs} of this channel's state, you hold {ours}", peer(name))
        }
        C::Probe { probe, what } => probe_event(probe, what),
    }
}

fn probe_event(id: &str, what: &ProbeEvent) -> String {
    use ProbeEvent as P;
    match what {
        P::Proposed { by_you: true, peer: p, terms, .. } => {
            format!(
                "you proposed probe {id} to {}: {}; enter your input with `backchannel probe input CHANNEL {id}`",
                peer(p),
                describe(terms)
            )
        }
        P::Proposed { peer: p, peer_side, terms, .. } => format!(
            "{} ({}) proposes probe {id}: {}. `backchannel probe accept CHANNEL {id}`, or `probe decline`",
            peer(p),
            peer(peer_side),
            describe(terms)
        ),
        P::AutoDeclined { peer: p, terms, why } => {
            format!(
                "{} proposed probe {id}: {}; declined automatically: {}",
                peer(p),
                describe(terms),
                refusal(why)
            )
        }
        P::RepeatedIgnored { peer: p } => {
            format!("a repeated proposal of probe {id} from {} was ignored", peer(p))
        }
        P::Accepted { by_you: true, .. } => format!("you accepted probe {id}"),
        P::Accepted { peer: p, .. } => format!("{} accepted probe {id}", peer(p)),
        P::Declined { by_you: true, .. } => format!("you declined probe {id}"),
        P::Declined { peer: p, reason, .. } => {
            format!(
                "{} declined probe {id}: {}",
                peer(p),
                reason.as_ref().map_or_else(|| "no reason".into(), peer_reason)
            )
        }
        P::QuerySent { peer: p } => format!("probe {id}: query sent to {}", peer(p)),
        P::QueryArrived { peer: p } => {
            format!(
                "probe {id}: {}'s query arrived; enter your input with `backchannel probe input CHANNEL {id}`",
                peer(p)
            )
        }
        P::ReplySent { peer: p } => format!("probe {id}: reply sent to {}", peer(p)),
        P::Done { terms, result } => {
            format!("probe {id} on {}: {}", issues(terms), result_text(terms, result))
        }
        P::Aborted { reason } => format!("probe {id} aborted: {}", abort_reason(reason)),
        P::PeerAborted { peer: p, reason } => {
            format!("{} reports probe {id} aborted on their side: {}", peer(p), peer_reason(reason))
        }
    }
}

fn peer_reason(r: &PeerReason) -> String {
    match r {
        PeerReason::Why(why) => refusal(why),
        PeerReason::Text(text) => peer(text),
    }
}

fn abort_reason(r: &AbortReason) -> String {
    match r {
        AbortReason::Ours { why } => refusal(why),
        AbortReason::Peer { name, reason } => format!("{} aborted it: {}", peer(name), peer_reason(reason)),
        AbortReason::Legacy { text } => peer(text),
    }
}

fn issues(terms: &ProbeTerms) -> String {
    let names: Vec<String> = terms.issues().iter().map(|i| format!("{:?}", peer(i))).collect();
    names.join(", ")
}

/// A probe's terms in words (never an input).
pub fn describe(terms: &ProbeTerms) -> String {
    let asker = match &terms.may_ask {
        MayAsk::Only(side) => format!("{} asks", peer(side)),
        MayAsk::Either => "either may ask".to_owned(),
    };
    match &terms.kind {
        ProbeKind::Single(s) => format!(
            "is there a zone of agreement on {:?} in 0..={}? {} gives (the most it can give), {} takes \
             (the least it can take); {asker}",
            peer(&s.issue),
            s.max,
            peer(&s.gives),
            peer(&s.takes)
        ),
        ProbeKind::Package(p) => {
            let issues: Vec<String> = p
                .space
                .issues
                .iter()
                .map(|i| format!("{}={}", peer(&i.issue), peer(&i.options.join(","))))
                .collect();
            format!("packages acceptable to both over {}; at most {} each; {asker}", issues.join(" "), p.cap)
        }
    }
}

/// What both sides learned, in words.
pub fn result_text(terms: &ProbeTerms, result: &ProbeResult) -> String {
    match (result, &terms.kind) {
        (ProbeResult::Zone { non_empty: true }, _) => "zone non-empty: the positions overlap".into(),
        (ProbeResult::Zone { non_empty: false }, _) => "zone empty: the positions do not overlap".into(),
        (ProbeResult::Packages(list), _) if list.is_empty() => "no package is acceptable to both".into(),
        (ProbeResult::Packages(list), ProbeKind::Package(p)) => {
            let named: Vec<String> = list
                .iter()
                .map(|pkg| match p.space.describe(pkg) {
                    Some(names) => names
                        .iter()
                        .map(|(i, o)| format!("{}={}", peer(i), peer(o)))
                        .collect::<Vec<_>>()
                        .join(","),
                    None => "(unknown package)".into(),
                })
                .collect();
            format!("{} package(s) acceptable to both: {}", list.len(), named.join("; "))
        }
        (ProbeResult::Packages(list), _) => format!("{} package(s) acceptable to both", list.len()),
    }
}

/// Where a probe is, and what it waits for, in words.
pub fn probe_detail(p: &ProbeView, channel: &str) -> String {
    let (id, with) = (&p.id[..8], peer(&p.with));
    let detail = match &p.status {
        ProbeStatus::Proposed if p.proposed_by_you => format!("waiting for {with} to accept"),
        ProbeStatus::Proposed => format!("accept with `backchannel probe accept {channel} {id}`, or decline"),
        ProbeStatus::Accepted if !p.input_given => format!(
            "waiting for your input: `backchannel probe input {channel} {id} {}`",
            if matches!(p.terms.kind, ProbeKind::Single(_)) { "VALUE" } else { "--package ..." }
        ),
        ProbeStatus::Accepted => format!("waiting for {with}'s query"),
        ProbeStatus::Running if p.you_ask => format!("query sent; waiting for {with}'s reply"),
        ProbeStatus::Running => format!("reply sent; waiting for {with} to disclose the result"),
        ProbeStatus::Done { result } => result_text(&p.terms, result),
        ProbeStatus::Declined { by } => match by {
            DeclinedBy::You => "declined by you".into(),
            DeclinedBy::Peer { name, reason } => {
                format!("declined by {}: {}", peer(name), peer_reason(reason))
            }
            DeclinedBy::Rule { why } => format!("declined automatically: {}", refusal(why)),
            DeclinedBy::Legacy { text } => peer(text),
        },
        ProbeStatus::Aborted { reason } => abort_reason(reason),
    };
    match &p.peer_note {
        Some((name, reason)) => {
            format!("{detail} ({} aborted it on their side: {})", peer(name), peer_reason(reason))
        }
        None => detail,
    }
}

fn fault(f: &MessageFault) -> String {
    match f {
        MessageFault::Forged { what } => format!("{what} failed authentication (altered, forged or not meant for us); not shown"),
        MessageFault::Replayed => "a replayed message was dropped".into(),
        MessageFault::TooLate => {
            "a message arrived too late to be opened (held back by the host until its key was gone); it stays missing".into()
        }
        MessageFault::Malformed { what } => format!("malformed {what}; not shown"),
        MessageFault::Misbehaved { what } => format!("peer misbehaved: {what}; not shown"),
        MessageFault::UnsupportedKind { kind } => format!("unsupported message kind {kind}; upgrade Backchannel"),
    }
}

/// Why a rule refused, in words (with the command that helps, where there is one).
pub fn refusal(why: &Why) -> String {
    use Why as W;
    let p = peer;
    match why {
        W::Channel { refused } => channel_refusal(refused),
        W::ChannelExists { name } => format!("you already have a channel called {:?}", p(name)),
        W::NotCreator { channel } => format!("only the creator of {} changes its members", p(channel)),
        W::NoSuchMember { query, channel } => format!("{:?} is not a member of {}", p(query), p(channel)),
        W::AmbiguousMember { query, channel } => format!("{:?} names several members of {}; use NAME@SIDE", p(query), p(channel)),
        W::RemovedFromChannel { channel } => format!("you were removed from {}; nothing was sent", p(channel)),
        W::NotHub { channel } => format!("only the intermediary running shuttle {} forwards", p(channel)),
        W::NotAReceivedNote { channel, entry } => {
            format!("entry {entry} of {} is not a received note; `backchannel read {}` numbers them", p(channel), p(channel))
        }
        W::NoPhaseProposed { channel } => format!("no phase change is proposed in {}", p(channel)),
        W::SenderNotMember { name, channel } => format!("{} is not a member of {}; a message was refused", p(name), p(channel)),
        W::ShuttleSidesApart => "in a shuttle channel, sides do not write to each other; a message was refused".into(),
        W::OnlyHubRelays => "only the shuttle's intermediary relays; a message was refused".into(),
        W::BadIntroduction => "an introduction that did not follow the rules was refused".into(),
        W::IntroductionNotTheirs { name } => format!("the introduction to {} carried someone else's invitation; refused", p(name)),
        W::IntroductionRelayUnknown { name, relay } => format!(
            "the introduction to {} asks to connect to relay {}, which you do not use; allow it with \
             `backchannel relays allow {}` if you trust it",
            p(name),
            p(relay),
            p(relay)
        ),
        W::IntroductionNotInShuttle => "an introduction in a shuttle channel (its sides never meet) was refused".into(),
        W::NotInChannel => "a message for a channel you are not in was refused".into(),
        W::StateNotFromCreator => "an invitation to a channel not from its creator, or not naming you, was refused".into(),
        W::PhaseWithoutConsent { channel, phase: ph } => {
            format!("{} moved to {} without every side's consent as you heard it", p(channel), phase(*ph))
        }
        W::ChannelIdTaken => "a channel with this id already exists with another creator; refused".into(),
        W::OnlyHubDrafts { channel } => format!("in shuttle {}, only the intermediary puts drafts and proposals", p(channel)),
        W::NotDraftingPhase { channel, phase: ph } => format!(
            "{} is in phase {}; proposals are made while drafting or agreed (`backchannel phase propose {} drafting`)",
            p(channel),
            phase(*ph),
            p(channel)
        ),
        W::NotASide { side, channel, sides } => format!(
            "{:?} is not a side with a principal in {}; sides: {}",
            p(side),
            p(channel),
            sides.iter().map(|s| p(s)).collect::<Vec<_>>().join(", ")
        ),
        W::AlreadyAVersion { title } => format!("this text is already a version of {:?}", p(title)),
        W::NoPaper { title, channel } => format!("no non-paper titled {:?} in {}", p(title), p(channel)),
        W::NoSuchVersion { title, last, wanted } => format!("{:?} has versions 1 to {last}; there is no v{wanted}", p(title)),
        W::AlreadyProposed => "this text was already proposed".into(),
        W::NotSignatory { side, title } => format!("{} is not a signatory of {:?}", p(side), p(title)),
        W::AlreadyRatified { title } => format!("you already ratified {:?}", p(title)),
        W::NoProposal { query, channel } => format!(
            "no proposal {:?} in {}; `backchannel agreement status {}` lists them",
            p(query),
            p(channel),
            p(channel)
        ),
        W::AmbiguousProposal { query } => format!("{:?} matches several proposals; use more of the id", p(query)),
        W::SealDoesNotVerify { name, title, why } => format!(
            "{}'s ratification of {:?} does not verify against the text we hold (a changed text, or another key): {}",
            p(name),
            p(title),
            p(why)
        ),
        W::SealForNonMember => "a ratification passed on for a non-member".into(),
        W::SealPassedByNonHub => "only a shuttle's intermediary passes on others' seals".into(),
        W::NotPrincipalSeal { name } => format!("{} is not a principal: its seal does not count", p(name)),
        W::TooManyEarlySeals => "too many ratifications of proposals we do not have".into(),
        W::TextMissing => "the text is missing from your store (it is damaged)".into(),
        W::DocumentSize { what, len, max } => format!("a {what} has 1 to {max} bytes (this one has {len})"),
        W::EncodedTooLarge { what, encoded, limit } => format!(
            "the {what} takes {encoded} bytes once encoded (quotes and control characters take more room), \
             more than the {limit} one message carries; split it"
        ),
        W::BadBody { refused } => channel_refusal(refused),
        W::UnexpectedMessage => "an unexpected channel message".into(),
        W::ProbeNeedsOther => "a probe needs another member".into(),
        W::NoSessionYet { name } => format!("no session with {} yet (the introduction is under way): sync, then try again", p(name)),
        W::BudgetFixed { budget } => format!(
            "the channel's probe budget was agreed with its first probe ({}); it does not change",
            budget_text(*budget)
        ),
        W::PendingBudget { probe, budget } => format!(
            "probe {probe} (not yet accepted) proposes a budget of {}; the first accepted probe fixes it, \
             so propose with the same budget or decline that one first",
            budget_text(*budget)
        ),
        W::BudgetMismatch { fixed, asked } => format!(
            "the channel's probe budget is {} (fixed by its first accepted probe); this probe asks {}",
            budget_text(*fixed),
            budget_text(*asked)
        ),
        W::BudgetSpent { used, limit, issue, phase: ph, budget } => {
            let scope = issue.as_ref().map_or_else(|| "of any kind".into(), |i| format!("on issue {:?}", p(i)));
            format!(
                "probe budget spent: {used} of {limit} probes {scope} in phase {} already run or pending \
                 (the channel's budget: {})",
                p(ph),
                budget_text(*budget)
            )
        }
        W::NotYourProbeToAccept { probe, peer: them } => format!("you proposed probe {probe}; {} accepts or declines it", p(them)),
        W::ProbeIs { probe, status } => format!("probe {probe} is already {status}"),
        W::ProbeInputUsed { probe, status } => format!("probe {probe} is {status}: your input was already used"),
        W::ProbeEnded { probe } => format!("probe {probe} has ended"),
        W::BadProbeId { query, channel } => {
            format!("{:?}: give at least 4 hex digits of it (`backchannel probe log {}`)", p(query), p(channel))
        }
        W::NoProbe { query, channel } => format!("no probe {} in {}; `backchannel probe log {}` lists them", p(query), p(channel), p(channel)),
        W::AmbiguousProbe { query, channel } => format!("{} names several probes in {}; give more of its id", p(query), p(channel)),
        W::ProbeNotTheirs { name, probe } => format!("{} sent a message about probe {probe}, which is not theirs", p(name)),
        W::ProbeUnknown { name, probe } => format!("{} sent a message about probe {probe}, which you do not have", p(name)),
        W::ProbeReplayed { what, probe } => format!("{what} for probe {probe}, which has ended, was refused (replayed)"),
        W::ProbesNotAllowed { phase: ph, channel } => format!("probes are not allowed in phase {} of {}", p(ph), p(channel)),
        W::ProbeOtherPhase { terms_phase, channel, phase: ph } => format!(
            "the probe counts against phase {}, but {} is now in phase {}; propose it again",
            p(terms_phase),
            p(channel),
            p(ph)
        ),
        W::ProbeNotMember { channel } => format!("not a member of {}", p(channel)),
        W::ObserversDoNotProbe { channel } => format!("observers of {} take no part in probes", p(channel)),
        W::ProbeSameSide { side } => format!("a probe runs between two sides; both of you are {}", p(side)),
        W::ProbeInShuttle { channel } => format!(
            "in shuttle {} the sides have no session with each other, so they cannot probe; run the probe in a \
             direct channel (the intermediary can open one and introduce you)",
            p(channel)
        ),
        W::ProbeHolders { a, b } => format!("the numbers must be held by {} and {}", p(a), p(b)),
        W::ProbeCap { max } => format!("in a channel a package cap is at most {max}"),
        W::ProbeAsker { a, b } => format!("the asker must be {} or {}", p(a), p(b)),
        W::ProbeSide { given, mine, theirs } => format!("{:?} is neither your side ({}) nor theirs ({})", p(given), p(mine), p(theirs)),
        W::ProbeNeedsValue { probe } => format!("probe {probe} is a single-value probe: give a VALUE"),
        W::ProbeNeedsPackages { probe } => format!("probe {probe} is a package probe: give --package"),
        W::NoBudgetAgreed => "no probe budget agreed in the channel".into(),
        W::ProbeDeclinedByUser => "declined".into(),
        W::ProbeProtocol { what } => p(what),
        W::ProbeOutOfOrder { what } => format!("{what} arrived out of order (replayed or misdirected)"),
        W::ProbeInput { why, max } => match max {
            Some(max) => format!("{} (the range is 0..={max})", p(why)),
            None => p(why),
        },
        W::ProbeTerms { why } => format!("probe terms: {}", p(why)),
        W::ProbePackage { why, given, issues } => format!(
            "{}: {:?} (one option per issue, in the order {})",
            p(why),
            p(given),
            issues.iter().map(|i| format!("{:?}", p(i))).collect::<Vec<_>>().join(", ")
        ),
        W::Message { fault: f } => fault(f),
        W::NoteSize { len, max } => format!("a note has 1 to {max} bytes (this one has {len})"),
        W::Incomplete { frames } => format!("{frames} message(s) that never arrived whole were dropped (their pieces were acknowledged)"),
        W::InvitationAnswer { fault: f } => format!("invitation answer refused: {}", fault(f)),
        W::ReplyElsewhere { relay } => format!(
            "an answer to your invitation asked you to write to another relay ({}); refused: peers do not choose your hosts",
            p(relay)
        ),
        W::QueueGone { .. } => {
            "not delivered: the relay no longer has this contact's queue (expired or deleted); exchange a new invitation".into()
        }
        W::InvitationUsed { name } => format!(
            "the invitation from {} was already used by someone else (or withdrawn): ask them for a new one",
            p(name)
        ),
        W::RouteNeedsAllow { name, relay } => format!(
            "{} asks to be reached through host {}, which you do not use; it is not used until you run `backchannel relays allow {}`",
            p(name),
            p(relay),
            p(relay)
        ),
        W::RouteRefused { name, relay } => format!(
            "host {} refused the route to {} (its queue is not there); the other routes carry on",
            p(relay),
            p(name)
        ),
        W::LastRoute { name, relay } => format!(
            "{} is the only host between you and {}: add another first (`backchannel contact {} add-relay ADDRESS`)",
            p(relay),
            p(name),
            p(name)
        ),
        W::NoRouteThere { name, relay } => format!("you have no inbox for {} on host {}", p(name), p(relay)),
        W::TooLargeForRoute { name, len, block_size } => format!(
            "a message of {len} bytes was not sent to {}: it does not fit the {block_size}-byte blocks of their relay",
            p(name)
        ),
        _ => format!("{why:?}"),
    }
}

fn budget_text(b: backchannel_client::ProbeBudget) -> String {
    format!("{} per issue, {} per phase", b.per_issue, b.per_phase)
}

fn channel_refusal(r: &backchannel_proto::channel::Refused) -> String {
    use backchannel_proto::channel::Refused as R;
    match r {
        R::RecipientsInDirect => {
            "--to is for the intermediary of a shuttle channel; in a direct channel everyone reads".into()
        }
        R::SideNamesRecipients => "in a shuttle channel your notes go to the intermediary only".into(),
        R::HubNamesNoRecipient { channel } => {
            format!(
                "you run the shuttle {}: say which side receives this note with --to MEMBER",
                peer(channel)
            )
        }
        R::RecipientNotMember { channel } => {
            format!("--to names someone who is not another member of {}", peer(channel))
        }
        R::NotNextPhase { channel, phase: ph, next } => format!(
            "{} is in phase {}; the only next phase is {}",
            peer(channel),
            phase(*ph),
            next.map_or("none (it is public)", Phase::name)
        ),
        R::CreatorStays => "the creator cannot leave its own channel; create a new channel instead".into(),
        other => peer(&other.to_string()),
    }
}

/// An engine error in words a person can act on.
pub fn error(e: &ClientError) -> String {
    use ClientError as E;
    match e {
        E::NotInitialized { home } => {
            format!("no party here ({home}); run `backchannel init --name NAME --side SIDE` first")
        }
        E::AlreadyInitialized { home } => {
            format!("a party already exists in {home}; use another BACKCHANNEL_HOME for a second one")
        }
        E::WrongPassphrase { home } => format!("wrong passphrase for the store in {home}"),
        E::Locked { home } => format!(
            "another backchannel process holds {home} and does not answer; wait for it to finish, or stop it"
        ),
        E::UnknownContact { name } => {
            format!("no contact named {:?}; `backchannel contacts` lists them", peer(name))
        }
        E::AmbiguousContact { name } => {
            format!("{:?} names more than one contact; use NAME@SIDE", peer(name))
        }
        E::UnknownName { name } => format!(
            "no contact or channel named {:?}; `backchannel contacts` and `backchannel channel list` list them",
            peer(name)
        ),
        E::UnknownChannel { name } => {
            format!("no channel named {:?}; `backchannel channel list` lists them", peer(name))
        }
        E::AmbiguousChannel { name, candidates } => format!(
            "you are in more than one channel called {:?}; name one as CHANNEL@CREATOR: {}",
            peer(name),
            candidates.iter().map(|c| peer(c)).collect::<Vec<_>>().join(", ")
        ),
        E::Refused { why } => refusal(why),
        E::InvitationReused => "this invitation was already accepted; ask for a new one".into(),
        E::InvitationUsed => {
            "this invitation was already used by someone else (its host no longer has its queue); ask for a new one".into()
        }
        E::OwnInvitation => "you cannot accept your own invitation".into(),
        E::RelayUnreachable { relay, why } => {
            format!("relay {relay} unreachable: {why}. Nothing is lost; try again later")
        }
        E::RelayNotPinned { relay } => {
            format!(
                "relay {relay} presented a different certificate than its address pins; refusing to talk to it"
            )
        }
        E::DiskFull { path } => {
            format!("the disk holding {path} is full; free some space and retry (nothing was changed)")
        }
        E::NoOutboxItem { n } => format!("no outbox item {n}; `backchannel outbox` lists them"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00", "leap day");
        assert_eq!(time(1_795_000_000_000), "2026-11-18 11:06:40");
    }

    /// A note the host only delayed until its key was gone is said to have come too late, not
    /// to have been altered (the session maps Olm's missing key to `TooLate`).
    #[test]
    fn a_delayed_note_is_said_to_be_late_not_altered() {
        let late = fault(&MessageFault::TooLate);
        assert!(late.contains("too late") && !late.contains("altered") && !late.contains("forged"), "{late}");
        let forged = fault(&MessageFault::Forged { what: "block".into() });
        assert!(forged.contains("altered"), "{forged}");
    }

    #[test]
    fn a_state_fork_and_a_lag_are_told_with_escaped_names() {
        let fork =
            channel_event(&ChannelEvent::StateForked { name: "Bao\n".into(), side: "B".into(), version: 7 });
        assert!(
            fork.contains("different states") && fork.contains("version 7") && !fork.contains('\n'),
            "{fork}"
        );
    }

    #[test]
    fn a_peer_cannot_fake_lines_colours_or_direction() {
        let shown = peer("ok\u{1b}[31m red \u{202e}desrever\u{200b} \r\n2026 ← Alice: fake");
        assert!(!shown.chars().any(is_hazard), "{shown:?}");
        assert!(!shown.contains('\n'), "{shown:?}");
        assert!(
            shown.contains("\\u{1b}") && shown.contains("\\u{202e}") && shown.contains("\\u{200b}"),
            "{shown:?}"
        );
        let note =
            note_lines("12:00 ← Bao #3: ", "Bao", "first\n2026-11-18 11:06:40 ← [talks] Alice: we accept");
        let lines: Vec<&str> = note.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("       | Bao: "), "the sender on every line: {note}");
    }
}
