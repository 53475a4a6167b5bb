//! Every word the app says of what the engine reports: refusals, errors, channel and probe
//! events, in sentences for people who negotiate, not for engineers. Whatever a peer wrote
//! goes through [`peer`] (and maud escapes it again as HTML): control, bidi and zero-width
//! characters are shown as escapes, so a name cannot hide, reorder or fake what is around it.

use axum::http::StatusCode;
use backchannel_client::{
    AbortReason, ChannelEvent, ClientError, DeclinedBy, DeliveryStatus, DeliveryView, Direction, ErrorKind,
    Hotline, MessageFault, Mode, PeerReason, Phase, ProbeEvent, ProbeStatus, ProbeView, Role, RouteState,
    Why,
};
use backchannel_redline::{MayAsk, ProbeKind, ProbeResult, ProbeTerms};

/// A peer's text made safe to show inline.
pub fn peer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push(' '),
            c if is_hazard(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A peer's multi-line text (a note, a draft): line breaks kept, other hazards escaped.
pub fn peer_block(text: &str) -> String {
    text.split('\n').map(peer).collect::<Vec<_>>().join("\n")
}

fn is_hazard(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD | 0x061C | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
            | 0xFEFF | 0xFFF9..=0xFFFB)
}

fn list(names: &[String]) -> String {
    names.iter().map(|n| peer(n)).collect::<Vec<_>>().join(", ")
}

/// UTC `YYYY-MM-DD HH:MM UTC`.
pub fn time(ms: u64) -> String {
    let (y, m, d, hh, mm, _) = civil(ms);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

pub fn iso_time(ms: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(ms);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:03}Z", ms % 1000)
}

fn civil(ms: u64) -> (i64, u32, u32, u64, u64, u64) {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `3 days`, `12 hours`.
pub fn duration(secs: u64) -> String {
    let plural = |n: u64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s >= 3600 && s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
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
        Mode::Direct => "direct",
        Mode::Shuttle => "shuttle",
    }
}

pub fn phase(p: Phase) -> &'static str {
    p.name()
}

/// What a phase lets the channel do, in a sentence.
pub fn policy(p: &backchannel_client::PhasePolicy) -> String {
    let keep = match p.retention_secs {
        Some(s) => format!("notes are deleted after {}", duration(s)),
        None => "notes are kept".to_owned(),
    };
    let probes = if p.probes_allowed { "probes may run" } else { "no probes" };
    format!("{keep}; {probes}")
}

/// The HTTP status a page answers an engine error with (the one mapping, from its kind).
pub fn status(e: &ClientError) -> StatusCode {
    match e.kind() {
        ErrorKind::Input => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Locked => StatusCode::FORBIDDEN,
        ErrorKind::RelayDown | ErrorKind::RelayRefused => StatusCode::BAD_GATEWAY,
        ErrorKind::Storage | ErrorKind::Bug => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An engine error in words a person can act on.
pub fn error(e: &ClientError) -> String {
    use ClientError as E;
    match e {
        E::NotInitialized { .. } => "There is no party here yet: create one first.".into(),
        E::AlreadyInitialized { .. } => "A party already exists here: unlock it with its passphrase.".into(),
        E::WrongPassphrase { .. } => {
            "That passphrase does not unlock this party. Check it and try again.".into()
        }
        E::Locked { home } => format!(
            "Another Backchannel program (perhaps `backchannel watch`) has this party open ({}). Stop it, \
             then try again.",
            peer(home)
        ),
        E::InvalidInput { what, why } => format!("The {} is not valid: {}.", peer(what), peer(why)),
        E::UnknownContact { name } => format!("You have no contact called “{}”.", peer(name)),
        E::AmbiguousContact { name } => {
            format!("Several contacts are called “{}”; write NAME@SIDE to say which.", peer(name))
        }
        E::UnknownName { name } => format!("There is no contact or channel called “{}”.", peer(name)),
        E::UnknownChannel { name } => format!("You are in no channel called “{}”.", peer(name)),
        E::AmbiguousChannel { name, candidates } => {
            format!("You are in several channels called “{}”: open one of {}.", peer(name), list(candidates))
        }
        E::Refused { why } => refusal(why),
        E::Invitation { why } => format!(
            "This invitation cannot be used: {}. Check that you pasted all of it, or ask for a new one.",
            peer(why)
        ),
        E::InvitationReused => "This invitation was already used. Ask the sender for a new one.".into(),
        E::InvitationUsed => {
            "Someone else already used this invitation (or its sender withdrew it). Ask the sender for a \
             new one, and tell them: whoever used it was not you."
                .into()
        }
        E::OwnInvitation => {
            "This is your own invitation: give it to the other person, who accepts it.".into()
        }
        E::RelayUnreachable { relay, .. } => format!(
            "The relay {} cannot be reached right now. Nothing was lost: what you sent waits and goes \
             out when it is back.",
            peer(relay)
        ),
        E::RelayNotPinned { relay } => format!(
            "The relay {} did not prove it is the relay its address names. Nothing was sent to it; check \
             the address with whoever runs it.",
            peer(relay)
        ),
        E::RelayRefused { relay, error } => {
            format!(
                "The relay {} refused: {}. Try again later, or ask whoever runs it.",
                peer(relay),
                peer(&error.to_string())
            )
        }
        E::RelayProtocol { relay, .. } => {
            format!("The relay {} answered something this app cannot read; try again later.", peer(relay))
        }
        E::DiskFull { .. } => "The disk is full. Free some space and try again; nothing was changed.".into(),
        E::Store { why, .. } => format!("Your local store could not be used: {}.", peer(why)),
        E::Agreement { why } => format!("The agreement does not hold: {}.", peer(why)),
        E::NoOutboxItem { n } => format!("Nothing numbered {n} waits to be sent."),
        other => format!("Something went wrong: {}.", peer(&other.to_string())),
    }
}

/// Why a rule refused, in words.
pub fn refusal(why: &Why) -> String {
    use Why as W;
    let p = peer;
    match why {
        W::Channel { refused } | W::BadBody { refused } => channel_refusal(refused),
        W::ChannelExists { name } => {
            format!("You already have a channel called “{}”; choose another name.", p(name))
        }
        W::NotCreator { channel } => {
            format!("Only the person who created “{}” adds or removes its members.", p(channel))
        }
        W::NoSuchMember { query, channel } => format!("“{}” is not a member of “{}”.", p(query), p(channel)),
        W::AmbiguousMember { query, channel } => {
            format!("Several members of “{}” are called “{}”; write NAME@SIDE.", p(channel), p(query))
        }
        W::RemovedFromChannel { channel } => {
            format!("You were removed from “{}”; nothing was sent.", p(channel))
        }
        W::NotHub { channel } => format!("Only the intermediary who runs “{}” passes notes on.", p(channel)),
        W::NotAReceivedNote { channel, entry } => {
            format!(
                "Entry {entry} of “{}” is not a note you received, so it cannot be passed on.",
                p(channel)
            )
        }
        W::NoPhaseProposed { channel } => {
            format!("Nobody has proposed a phase change in “{}” yet.", p(channel))
        }
        W::SenderNotMember { name, channel } => {
            format!("{} is not a member of “{}”; what they sent was refused.", p(name), p(channel))
        }
        W::ShuttleSidesApart => {
            "In a shuttle channel the sides do not write to each other; a message was refused.".into()
        }
        W::OnlyHubRelays => "Only the shuttle's intermediary passes notes on; a message was refused.".into(),
        W::BadIntroduction => "An introduction that did not follow the rules was refused.".into(),
        W::IntroductionNotTheirs { name } => {
            format!("The introduction to {} carried someone else's invitation, and was refused.", p(name))
        }
        W::IntroductionRelayUnknown { name, relay } => format!(
            "The introduction to {} asks you to use the relay {}, which you do not use yet. If you trust it, \
             allow it with `backchannel relays allow`.",
            p(name),
            p(relay)
        ),
        W::IntroductionNotInShuttle => {
            "An introduction in a shuttle channel (whose sides never meet) was refused.".into()
        }
        W::NotInChannel => "A message for a channel you are not in was refused.".into(),
        W::StateNotFromCreator => {
            "A channel invitation that was not from its creator, or not for you, was refused.".into()
        }
        W::PhaseWithoutConsent { channel, phase: ph } => format!(
            "“{}” moved to the {} phase without every side's consent as you heard it.",
            p(channel),
            phase(*ph)
        ),
        W::ChannelIdTaken => "A channel with the same identity but another creator was refused.".into(),
        W::OnlyHubDrafts { channel } => {
            format!("In the shuttle “{}” only the intermediary puts drafts and proposals.", p(channel))
        }
        W::NotDraftingPhase { channel, phase: ph } => format!(
            "“{}” is in the {} phase. Proposals are made while drafting or once agreed: propose the drafting \
             phase first.",
            p(channel),
            phase(*ph)
        ),
        W::NotASide { side, channel, sides } => format!(
            "“{}” is not a side with a principal in “{}”. The sides are: {}.",
            p(side),
            p(channel),
            list(sides)
        ),
        W::AlreadyAVersion { title } => {
            format!("This text is already a version of “{}”: nothing changed.", p(title))
        }
        W::NoPaper { title, channel } => {
            format!("There is no non-paper called “{}” in “{}”.", p(title), p(channel))
        }
        W::NoSuchVersion { title, last, wanted } => {
            format!("“{}” has versions 1 to {last}; there is no version {wanted}.", p(title))
        }
        W::AlreadyProposed => "This exact text was already proposed.".into(),
        W::NotSignatory { side, title } => {
            format!("{} is not one of the sides that sign “{}”.", p(side), p(title))
        }
        W::AlreadyRatified { title } => format!("You already ratified “{}”.", p(title)),
        W::NoProposal { query, channel } => {
            format!("There is no proposal “{}” in “{}”.", p(query), p(channel))
        }
        W::AmbiguousProposal { query } => {
            format!("“{}” matches several proposals; pick one from the list.", p(query))
        }
        W::SealDoesNotVerify { name, title, .. } => format!(
            "{}'s ratification of “{}” does not match the text you hold (a changed text, or another key); \
             it was not counted.",
            p(name),
            p(title)
        ),
        W::SealForNonMember => "A ratification passed on for someone who is not a member was refused.".into(),
        W::SealPassedByNonHub => {
            "Only a shuttle's intermediary passes on others' ratifications; one was refused.".into()
        }
        W::NotPrincipalSeal { name } => {
            format!("{} is not a principal, so their ratification does not count.", p(name))
        }
        W::TooManyEarlySeals => {
            "Too many ratifications of proposals you do not have yet; some were refused.".into()
        }
        W::TextMissing => "The text is missing from your store: it is damaged.".into(),
        W::DocumentSize { what, len, max } => {
            format!("A {} holds 1 to {max} bytes; this one has {len}. Shorten it or split it.", p(what))
        }
        W::EncodedTooLarge { what, encoded, limit } => format!(
            "The {} takes {encoded} bytes once encoded, more than the {limit} one message carries; split it.",
            p(what)
        ),
        W::UnexpectedMessage => "An unexpected channel message was refused.".into(),
        W::ProbeNeedsOther => "A probe needs another member of the channel.".into(),
        W::NoSessionYet { name } => {
            format!("You are still being introduced to {} (this takes a moment); try again shortly.", p(name))
        }
        W::BudgetFixed { budget } => format!(
            "The channel's probe budget was agreed with its first probe ({}) and does not change.",
            budget_text(*budget)
        ),
        W::PendingBudget { probe, budget } => format!(
            "Probe {} (not accepted yet) proposes a budget of {}. Use the same budget, or decline that \
             probe first.",
            short(probe),
            budget_text(*budget)
        ),
        W::BudgetMismatch { fixed, asked } => format!(
            "The channel's probe budget is {}; this probe asks for {}.",
            budget_text(*fixed),
            budget_text(*asked)
        ),
        W::BudgetSpent { used, limit, issue, phase: ph, .. } => {
            let scope = issue.as_ref().map_or_else(|| "in all".into(), |i| format!("on “{}”", p(i)));
            format!(
                "The probe budget is spent: {used} of {limit} probes {scope} in the {} phase have run or wait.",
                p(ph)
            )
        }
        W::NotYourProbeToAccept { probe, peer: them } => {
            format!("You proposed probe {}; {} accepts or declines it.", short(probe), p(them))
        }
        W::ProbeIs { probe, status } => format!("Probe {} is already {}.", short(probe), p(status)),
        W::ProbeInputUsed { probe, .. } => {
            format!("Your number for probe {} was already used.", short(probe))
        }
        W::ProbeEnded { probe } => format!("Probe {} has ended.", short(probe)),
        W::BadProbeId { query, .. } | W::NoProbe { query, .. } => {
            format!("There is no probe “{}” here.", p(query))
        }
        W::AmbiguousProbe { query, .. } => {
            format!("“{}” names several probes; pick one from the list.", p(query))
        }
        W::ProbeNotTheirs { name, probe } => {
            format!("{} sent a message about probe {}, which is not theirs; refused.", p(name), short(probe))
        }
        W::ProbeUnknown { name, probe } => {
            format!(
                "{} sent a message about probe {}, which you do not have; refused.",
                p(name),
                short(probe)
            )
        }
        W::ProbeReplayed { what, probe } => {
            format!("A repeated {} for probe {}, which has ended, was refused.", p(what), short(probe))
        }
        W::ProbesNotAllowed { phase: ph, channel } => {
            format!("Probes are not allowed in the {} phase of “{}”.", p(ph), p(channel))
        }
        W::ProbeOtherPhase { terms_phase, phase: ph, .. } => format!(
            "This probe was agreed for the {} phase, and the channel is now in the {} phase: propose it again.",
            p(terms_phase),
            p(ph)
        ),
        W::ProbeNotMember { channel } => format!("You are not a member of “{}”.", p(channel)),
        W::ObserversDoNotProbe { channel } => {
            format!("Observers of “{}” take no part in probes.", p(channel))
        }
        W::ProbeSameSide { side } => format!("A probe runs between two sides; you are both {}.", p(side)),
        W::ProbeInShuttle { .. } => {
            "In a shuttle channel the sides cannot probe each other: run the probe in a \
             direct channel."
                .into()
        }
        W::ProbeHolders { a, b } => format!("The two numbers must be held by {} and {}.", p(a), p(b)),
        W::ProbeCap { max } => format!("Each side may list at most {max} packages in a channel."),
        W::ProbeAsker { a, b } => format!("The one who asks must be {} or {}.", p(a), p(b)),
        W::ProbeSide { given, mine, theirs } => {
            format!("“{}” is neither your side ({}) nor theirs ({}).", p(given), p(mine), p(theirs))
        }
        W::ProbeNeedsValue { .. } => "This probe asks for one number.".into(),
        W::ProbeNeedsPackages { .. } => "This probe asks for packages, one per line.".into(),
        W::NoBudgetAgreed => "No probe budget is agreed in this channel yet.".into(),
        W::ProbeDeclinedByUser => "declined".into(),
        W::ProbeProtocol { what } => format!("The probe protocol refused a message: {}.", p(what)),
        W::ProbeOutOfOrder { what } => {
            format!("A {} arrived out of order (repeated or misdirected).", p(what))
        }
        W::ProbeInput { why, max } => match max {
            Some(max) => format!("{} (the number must be between 0 and {max}).", p(why)),
            None => format!("{}.", p(why)),
        },
        W::ProbeTerms { why } => format!("These probe terms do not work: {}.", p(why)),
        W::ProbePackage { why, given, issues } => {
            format!("{}: “{}”. Write one option per issue, in the order {}.", p(why), p(given), list(issues))
        }
        W::Message { fault: f } => fault(f),
        W::NoteSize { max, .. } => format!("A note holds 1 to {max} bytes: write something, or split it."),
        W::Incomplete { frames } => {
            format!("{frames} message(s) that never arrived whole were dropped.")
        }
        W::InvitationAnswer { fault: f } => format!("An answer to your invitation was refused: {}", fault(f)),
        W::ReplyElsewhere { relay } => format!(
            "An answer to your invitation asked you to write to another relay ({}); refused, since peers do \
             not choose your relays.",
            p(relay)
        ),
        W::QueueGone { name } => format!(
            "Not delivered: the relay no longer keeps {}'s mailbox (it expired). Exchange a new invitation.",
            p(name)
        ),
        W::InvitationUsed { name } => format!(
            "The invitation from {} was already used by someone else (or withdrawn): ask them for a new one.",
            p(name)
        ),
        W::RouteNeedsAllow { name, relay } => format!(
            "{} asks to be reached through the host {}, which you do not use yet. It is not used until you \
             allow it (the Allow button on {}'s hosts page).",
            p(name),
            host(relay),
            p(name)
        ),
        W::RouteRefused { name, relay } => format!(
            "The host {} refused the route to {} (their mailbox is not there); the other hosts carry on.",
            host(relay),
            p(name)
        ),
        W::LastRoute { name, relay } => format!(
            "{} is the only host between you and {}, so it cannot be left: add another host first, then \
             leave this one.",
            host(relay),
            p(name)
        ),
        W::NoRouteThere { name, relay } => {
            format!("You and {} do not use the host {}: there is nothing to leave.", p(name), host(relay))
        }
        W::TooLargeForRoute { name, len, .. } => {
            format!("A message of {len} bytes is too large for {}'s relay and was not sent.", p(name))
        }
        other => format!("Refused ({}).", peer(&format!("{other:?}"))),
    }
}

fn short(probe: &str) -> String {
    probe.chars().take(8).collect()
}

fn budget_text(b: backchannel_client::ProbeBudget) -> String {
    format!("{} per issue and {} per phase", b.per_issue, b.per_phase)
}

fn channel_refusal(r: &backchannel_proto::channel::Refused) -> String {
    use backchannel_proto::channel::Refused as R;
    match r {
        R::BadName { why } => format!("That name cannot be used: {}.", peer(why)),
        R::ShuttleNeedsIntermediary => "You run a shuttle channel as its intermediary.".into(),
        R::AlreadyMember { name, channel } => {
            format!("{} is already a member of “{}”.", peer(name), peer(channel))
        }
        R::Full { channel, max } => {
            format!("“{}” already has {max} members, the most a channel may have.", peer(channel))
        }
        R::CreatorStays => "The creator cannot leave their own channel; create a new channel instead.".into(),
        R::NotMember { channel } => format!("You are not (or no longer) a member of “{}”.", peer(channel)),
        R::ObserverReadsOnly { channel } => format!("Observers of “{}” read only.", peer(channel)),
        R::RecipientsInDirect => {
            "In a direct channel everyone reads every note; there is nobody to choose.".into()
        }
        R::SideNamesRecipients => "In a shuttle channel your notes go to the intermediary only.".into(),
        R::HubNamesNoRecipient { .. } => {
            "You run this shuttle: choose which members receive the note.".into()
        }
        R::RecipientNotMember { channel } => {
            format!("A recipient is not another member of “{}”.", peer(channel))
        }
        R::NotPrincipal { name } => {
            format!("Only principals consent to phase changes; {} is not one.", peer(name))
        }
        R::NotNextPhase { channel, phase: ph, next } => format!(
            "“{}” is in the {} phase; the only next phase is {}.",
            peer(channel),
            phase(*ph),
            next.map_or("none (it is public)", Phase::name)
        ),
        R::BadTitle { max } => format!("A title has 1 to {max} bytes and no control characters."),
        R::BadSignatories { max } => format!("A proposal names 1 to {max} sides that sign it."),
        R::BadProbeBudget { max } => format!("A probe budget is 1 to {max} probes."),
        R::BadProbeTerms { why } => format!("These probe terms do not work: {}.", peer(why)),
        R::BadHotline => {
            "A hotline's heartbeat is 1 second to 1 hour apart, and its path test at least as far \
             apart as its heartbeat and at most 7 days."
                .into()
        }
        other => format!("Refused: {}.", peer(&other.to_string())),
    }
}

fn fault(f: &MessageFault) -> String {
    match f {
        MessageFault::Forged { .. } => {
            "it failed authentication (altered, forged, or not meant for you) and is not shown.".into()
        }
        MessageFault::Replayed => {
            "it was a copy of something already received (replayed) and was dropped.".into()
        }
        MessageFault::TooLate => {
            "it arrived too late to be opened (held back until its key was gone); it stays missing.".into()
        }
        MessageFault::Malformed { .. } => "it was damaged and could not be read.".into(),
        MessageFault::Misbehaved { what } => format!("the sender broke the protocol ({}).", peer(what)),
        MessageFault::UnsupportedKind { .. } => {
            "it is of a kind this version does not know: update Backchannel.".into()
        }
    }
}

fn you_or(name: &Option<String>) -> String {
    name.as_deref().map_or_else(|| "You".to_owned(), peer)
}

/// A channel event, as a line of the conversation.
pub fn channel_event(what: &ChannelEvent) -> String {
    use ChannelEvent as C;
    match what {
        C::Created { mode: m } => format!("You created this {} channel.", mode(*m)),
        C::AddedYou { by, members } => format!("{} added you. Members: {}.", peer(by), list(members)),
        C::MemberJoined { name, side, role: r } => {
            format!("{} ({}) joined as {}.", peer(name), peer(side), role(*r))
        }
        C::MemberRemoved { name, side } => format!("{} ({}) was removed.", peer(name), peer(side)),
        C::RemovedYou => "You were removed from this channel; nothing more will reach you here.".into(),
        C::Introducing { name, side } => format!("Introducing you to {} ({})…", peer(name), peer(side)),
        C::Connected { name, side, safety_number } => {
            format!("Connected with {} ({}). Safety number {safety_number}.", peer(name), peer(side))
        }
        C::Consented { name: None, phase: p, .. } => {
            format!("You consent to moving to the {} phase.", phase(*p))
        }
        C::Consented { name: Some(n), side, phase: p } => {
            format!("{} ({}) consents to moving to the {} phase.", peer(n), peer(side), phase(*p))
        }
        C::PhaseMoved { phase: p, every_side_consented: true } => {
            format!("Every side consented: the channel is now in the {} phase.", phase(*p))
        }
        C::PhaseMoved { phase: p, .. } => format!("The channel is now in the {} phase.", phase(*p)),
        C::Relayed { from, to, rephrased, .. } => format!(
            "You passed {}'s note on to {} ({}).",
            peer(from),
            list(to),
            if *rephrased { "rephrased" } else { "as written" }
        ),
        C::PaperPut { title, version, yours: true, .. } => {
            format!("You put version {version} of the non-paper “{}”.", peer(title))
        }
        C::PaperPut { title, version, yours: false, .. } => {
            format!("Version {version} of the non-paper “{}” arrived.", peer(title))
        }
        C::Proposed { by, title, signatories, .. } => {
            format!("{} proposed “{}” for ratification by {}.", you_or(by), peer(title), list(signatories))
        }
        C::Ratified { name: None, title, .. } => format!("You ratified “{}”.", peer(title)),
        C::Ratified { name: Some(n), side, title } => {
            format!("{} ({}) ratified “{}”.", peer(n), peer(side), peer(title))
        }
        C::RatifiedByAll { title } => {
            format!("“{}” is ratified by every side that signs it: it can be exported.", peer(title))
        }
        C::EarlySeal { name, side, .. } => format!(
            "{} ({}) ratified a proposal that has not reached you yet; it counts once it arrives.",
            peer(name),
            peer(side)
        ),
        C::SealOnlyThroughHub { name, side, title } => format!(
            "{} ({})'s ratification of “{}” came through the intermediary, under a key you know only through \
             the intermediary: not counted until you compare safety numbers with {} directly.",
            peer(name),
            peer(side),
            peer(title),
            peer(name)
        ),
        C::StateForked { name, side, version } => format!(
            "Warning: {} ({}) holds another state of this channel than you under the same version {version}. \
             The creator has shown members different states (members, phase or policies); compare with {} directly.",
            peer(name),
            peer(side),
            peer(name)
        ),
        C::StateDiverges { name, theirs, ours } => format!(
            "{} holds version {theirs} of this channel's membership, you hold version {ours}.",
            peer(name)
        ),
        C::Probe { probe, what } => probe_event(probe, what),
    }
}

fn probe_event(id: &str, what: &ProbeEvent) -> String {
    use ProbeEvent as P;
    let id = short(id);
    match what {
        P::Proposed { by_you: true, peer: p, .. } => format!("You proposed probe {id} to {}.", peer(p)),
        P::Proposed { peer: p, peer_side, .. } => {
            format!("{} ({}) proposes probe {id}: see Probes to accept or decline.", peer(p), peer(peer_side))
        }
        P::AutoDeclined { peer: p, why, .. } => {
            format!("{} proposed probe {id}; it was declined automatically: {}", peer(p), refusal(why))
        }
        P::RepeatedIgnored { peer: p } => {
            format!("A repeated proposal of probe {id} from {} was ignored.", peer(p))
        }
        P::Accepted { by_you: true, .. } => format!("You accepted probe {id}."),
        P::Accepted { peer: p, .. } => format!("{} accepted probe {id}.", peer(p)),
        P::Declined { by_you: true, .. } => format!("You declined probe {id}."),
        P::Declined { peer: p, reason, .. } => format!(
            "{} declined probe {id}{}",
            peer(p),
            reason.as_ref().map_or_else(|| ".".into(), |r| format!(": {}", peer_reason(r)))
        ),
        P::QuerySent { peer: p } => format!("Probe {id}: your question went to {}.", peer(p)),
        P::QueryArrived { peer: p } => format!("Probe {id}: {}'s question arrived.", peer(p)),
        P::ReplySent { peer: p } => format!("Probe {id}: your answer went to {}.", peer(p)),
        P::Done { terms, result } => format!("Probe {id}: {}", result_text(terms, result)),
        P::Aborted { reason } => format!("Probe {id} stopped: {}", abort_reason(reason)),
        P::PeerAborted { peer: p, reason } => {
            format!("{} stopped probe {id} on their side: {}", peer(p), peer_reason(reason))
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
        AbortReason::Peer { name, reason } => format!("{} stopped it: {}", peer(name), peer_reason(reason)),
        AbortReason::Legacy { text } => peer(text),
    }
}

/// A probe's question, in words.
pub fn question(terms: &ProbeTerms) -> String {
    match &terms.kind {
        ProbeKind::Single(s) => format!(
            "On “{}” (a number from 0 to {}): is the most {} can give at least the least {} can take?",
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
                .map(|i| format!("“{}” ({})", peer(&i.issue), list(&i.options)))
                .collect();
            format!("Which packages over {} are acceptable to both sides?", issues.join(", "))
        }
    }
}

/// What each side learns from a probe, and what it never learns, in plain words.
pub fn learns(terms: &ProbeTerms) -> Vec<String> {
    let asker = match &terms.may_ask {
        MayAsk::Only(side) => {
            format!("{} asks: it learns the answer first and then tells the other side.", peer(side))
        }
        MayAsk::Either => {
            "Either side may ask; the one who asks learns the answer first and then tells the other.".into()
        }
    };
    match &terms.kind {
        ProbeKind::Single(_) => vec![
            "Both sides learn one thing: yes (the positions overlap) or no.".into(),
            "Neither side learns the other's number, nor by how much they overlap or miss.".into(),
            asker,
        ],
        ProbeKind::Package(p) => vec![
            format!("Each side lists at most {} acceptable packages.", p.cap),
            "Both sides learn which packages are on both lists, and nothing about the others.".into(),
            asker,
        ],
    }
}

/// What both sides learned.
pub fn result_text(terms: &ProbeTerms, result: &ProbeResult) -> String {
    match (result, &terms.kind) {
        (ProbeResult::Zone { non_empty: true }, _) => {
            "Yes: the positions overlap (there is a zone of agreement).".into()
        }
        (ProbeResult::Zone { non_empty: false }, _) => "No: the positions do not overlap.".into(),
        (ProbeResult::Packages(found), _) if found.is_empty() => {
            "No package is acceptable to both sides.".into()
        }
        (ProbeResult::Packages(found), ProbeKind::Package(p)) => {
            let named: Vec<String> = found
                .iter()
                .map(|pkg| match p.space.describe(pkg) {
                    Some(names) => names
                        .iter()
                        .map(|(i, o)| format!("{} {}", peer(i), peer(o)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => "(an unknown package)".into(),
                })
                .collect();
            format!("Acceptable to both: {}.", named.join("; "))
        }
        (ProbeResult::Packages(found), _) => format!("{} package(s) are acceptable to both.", found.len()),
    }
}

/// Where a probe stands.
pub fn probe_status(p: &ProbeView) -> String {
    let with = peer(&p.with);
    let detail = match &p.status {
        ProbeStatus::Proposed if p.proposed_by_you => format!("Waiting for {with} to accept."),
        ProbeStatus::Proposed => "Proposed to you: accept or decline.".to_owned(),
        ProbeStatus::Accepted if !p.input_given => "Accepted: waiting for your private input.".to_owned(),
        ProbeStatus::Accepted => format!("Your input is in; waiting for {with}."),
        ProbeStatus::Running if p.you_ask => format!("Your question went out; waiting for {with}'s answer."),
        ProbeStatus::Running => format!("You answered; waiting for {with} to tell the result."),
        ProbeStatus::Done { result } => result_text(&p.terms, result),
        ProbeStatus::Declined { by } => match by {
            DeclinedBy::You => "Declined by you.".into(),
            DeclinedBy::Peer { name, reason } => {
                format!("Declined by {}: {}", peer(name), peer_reason(reason))
            }
            DeclinedBy::Rule { why } => format!("Declined automatically: {}", refusal(why)),
            DeclinedBy::Legacy { text } => peer(text),
        },
        ProbeStatus::Aborted { reason } => format!("Stopped: {}", abort_reason(reason)),
    };
    match &p.peer_note {
        Some((name, reason)) => {
            format!("{detail} ({} stopped it on their side: {})", peer(name), peer_reason(reason))
        }
        None => detail,
    }
}

/// A relay address as people read it: `HOST:PORT`, without the scheme and the key fingerprint
/// (which the app keeps, and checks).
pub fn host(relay: &str) -> String {
    let bare = relay.strip_prefix("bcr://").unwrap_or(relay);
    let bare = bare.split_once('#').map_or(bare, |(h, _)| h);
    peer(bare)
}

/// A route's state in one or two words.
pub fn route_state(state: RouteState) -> &'static str {
    match state {
        RouteState::Up => "up",
        RouteState::Down => "down",
        RouteState::Unknown => "not heard lately",
    }
}

/// Which way a route carries notes, with `name` the contact.
pub fn direction(d: Direction, name: &str) -> String {
    match d {
        Direction::Out => format!("You → {}", peer(name)),
        Direction::In => format!("{} → you", peer(name)),
    }
}

/// `12 seconds ago`, `3 minutes ago`: how long before `now` (both in ms) `at` was.
pub fn ago(now_ms: u64, at_ms: u64) -> String {
    let s = now_ms.saturating_sub(at_ms) / 1000;
    let plural =
        |n: u64, unit: &str| if n == 1 { format!("1 {unit} ago") } else { format!("{n} {unit}s ago") };
    match s {
        0..=4 => "just now".into(),
        5..=59 => plural(s, "second"),
        60..=3599 => plural(s / 60, "minute"),
        3600..=86_399 => plural(s / 3600, "hour"),
        _ => plural(s / 86_400, "day"),
    }
}

/// A hotline's line discipline, in a sentence.
pub fn hotline(h: &Hotline) -> String {
    format!(
        "Hotline: a heartbeat every {} on every host, and every host tested end to end every {}. A host \
         that misses 3 heartbeats is shown as down; notes go before anything else and are sent again until \
         their receipt comes back.",
        duration(u64::from(h.heartbeat_secs)),
        duration(u64::from(h.path_test_secs))
    )
}

/// One word for where a note of ours stands.
pub fn delivery_word(s: DeliveryStatus) -> &'static str {
    match s {
        DeliveryStatus::Queued => "queued",
        DeliveryStatus::Sent => "sent",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::NotConfirmed => "not confirmed",
    }
}

/// Where a note of ours stands, in a sentence.
pub fn delivery(d: &DeliveryView) -> String {
    let hosts = d.hosts.iter().map(|h| host(h)).collect::<Vec<_>>().join(", ");
    let main = match d.status {
        DeliveryStatus::Queued => {
            "Queued: waiting to be sent (it goes out when a host can be reached).".to_owned()
        }
        DeliveryStatus::Sent => format!("Sent: stored by {hosts}; not yet confirmed on their device."),
        DeliveryStatus::Delivered => "Delivered: it reached their device.".to_owned(),
        DeliveryStatus::NotConfirmed => "NOT CONFIRMED: no receipt came back in time, so it may not have \
             arrived. Say it again, or check with them another way."
            .to_owned(),
    };
    match d.recipients.len() {
        0 | 1 => main,
        _ => {
            let each: Vec<String> = d
                .recipients
                .iter()
                .map(|r| format!("{} {}", peer(&r.name), delivery_word(r.status)))
                .collect();
            format!("{main} ({})", each.join(", "))
        }
    }
}

/// A member holds a newer state of the channel than ours (M5): the creator's update has not
/// reached us, or was kept from us.
pub fn behind(member: &str, version: u64) -> String {
    format!(
        "{} already holds version {version} of this channel's settings and members, and you do not: the \
         creator's latest change has not reached you, or was held back. Until it does, what you see here may \
         be out of date.",
        peer(member)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(iso_time(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn a_peer_cannot_reorder_or_hide_text() {
        let shown = peer("ok\u{202e}desrever\u{200b}\u{1b}[31m");
        assert!(!shown.chars().any(is_hazard), "{shown:?}");
        assert!(shown.contains("\\u{202e}"));
        assert_eq!(peer_block("a\nb\u{202e}"), "a\nb\\u{202e}");
    }

    #[test]
    fn hosts_and_times_read_as_words() {
        assert_eq!(host("bcr://127.0.0.1:4443#abcDEF"), "127.0.0.1:4443");
        assert_eq!(ago(70_000, 10_000), "1 minute ago");
        assert_eq!(ago(10_000, 10_000), "just now");
        assert!(
            hotline(&Hotline::DEFAULT).contains("every 10 seconds")
                && hotline(&Hotline::DEFAULT).contains("every 1 hour")
        );
        let d = DeliveryView {
            status: DeliveryStatus::Sent,
            hosts: vec!["bcr://h:1#x".into()],
            recipients: vec![],
        };
        assert!(delivery(&d).contains("stored by h:1"), "{}", delivery(&d));
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration(14 * 86_400), "14 days");
        assert_eq!(duration(3600), "1 hour");
        assert_eq!(duration(61), "61 seconds");
    }
}
