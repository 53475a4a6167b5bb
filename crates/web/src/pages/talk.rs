//! A conversation (with a contact, or in a channel): notes with their time and sender,
//! "relayed by" marks, gaps and rejections shown as what they are, live as notes arrive
//! (`crate::live`), composing and sending; in a shuttle, the intermediary passes notes on.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use backchannel_client::{ChannelView, DeliveryStatus, DeliveryView, Engine, Entry, EntryView, Mode};
use maud::{Markup, html};

use super::{Tab, channel_head, engine, failure, me, we_created, who};
use crate::app::App;
use crate::layout::{self, Fields, Nav, Problem, Shown, seg, time};
use crate::words::{self, peer, peer_block};

/// Who the intermediary of a shuttle may pass a note to: the other members.
pub struct Hub {
    pub members: Vec<(String, String)>,
}

/// What drawing entries needs to know of their conversation.
pub struct Context {
    pub name: String,
    pub hub: Option<Hub>,
}

impl Context {
    pub fn of(engine: &Engine, name: &str) -> (Self, Option<ChannelView>) {
        let view = engine.channel(name).ok();
        let hub = view.as_ref().filter(|v| v.mode == Mode::Shuttle && we_created(v)).map(|v| Hub {
            members: v
                .members
                .iter()
                .filter(|m| !m.you)
                .map(|m| (format!("{}@{}", m.name, m.side), format!("{} ({})", peer(&m.name), peer(&m.side))))
                .collect(),
        });
        (Self { name: name.to_owned(), hub }, view)
    }
}

/// One entry of a conversation; `i` is its place (0-based) in the timeline.
pub fn entry(ctx: &Context, i: usize, e: &EntryView) -> Markup {
    match &e.entry {
        Entry::Note { from, outgoing, text, sent_at, relayed_by, rephrased, .. } => html! {
            li.note.out[*outgoing].in[!*outgoing] id={ "e" (i + 1) } data-n=(i + 1) {
                p.meta {
                    strong { bdi { (peer(from)) } } " · " (time(*sent_at))
                }
                @if let Some(hub) = relayed_by {
                    p.relayed { "Relayed by " bdi { (peer(hub)) } @if *rephrased { " (rephrased)" } " — these are the intermediary's words" }
                }
                p.text { (peer_block(text)) }
                @if let Some(d) = &e.delivery { (delivery(d)) }
                @if let (Some(hub), false, None) = (&ctx.hub, *outgoing, relayed_by) {
                    (forward_form(ctx, hub, i + 1))
                }
            }
        },
        Entry::Gap { from, first, last, at, .. } => html! {
            li.gap id={ "e" (i + 1) } data-n=(i + 1) {
                p { strong { "Missing notes." } " Notes " (first) "–" (last) " from " bdi { (peer(from)) }
                    " have not arrived (the relay may have dropped or delayed them). "
                    @match &e.still_missing {
                        Some(m) if !m.is_empty() => { "Still missing: " (ranges(m)) "." }
                        _ => { "All of them arrived since." }
                    }
                    " " (time(*at))
                }
            }
        },
        Entry::Rejected { from, why, detail, at } => html! {
            li.rejected id={ "e" (i + 1) } data-n=(i + 1) {
                p { strong { "Rejected." } " Something that arrived in " bdi { (peer(from)) } "'s mailbox was not shown: "
                    @match (why, detail) {
                        (Some(why), _) => (words::refusal(why)),
                        (None, Some(text)) => (peer(text)),
                        (None, None) => "it failed the checks.",
                    }
                    " " (time(*at))
                }
            }
        },
        Entry::Channel { what, at } => html! {
            li.event id={ "e" (i + 1) } data-n=(i + 1) { p { (words::channel_event(what)) " " (time(*at)) } }
        },
        Entry::Joined { from, at, side, .. } => html! {
            li.event id={ "e" (i + 1) } data-n=(i + 1) {
                p { "A private session with " bdi { (peer(from)) }
                    @if let Some(side) = side { " (" bdi { (peer(side)) } ")" }
                    " is set up. " (time(*at)) }
            }
        },
        Entry::Legacy { text, at } => html! {
            li.event id={ "e" (i + 1) } data-n=(i + 1) { p { (peer(text)) " " (time(*at)) } }
        },
    }
}

/// How one of our notes is doing; "not confirmed" stands out, since it asks the sender to act.
pub fn delivery(d: &DeliveryView) -> Markup {
    let word = words::delivery_word(d.status);
    let text = words::delivery(d);
    html! {
        @match d.status {
            DeliveryStatus::NotConfirmed => p.delivery.unconfirmed data-delivery=(word) { strong { (text) } },
            DeliveryStatus::Delivered => p.delivery.delivered data-delivery=(word) { "✓ " (text) },
            _ => p.delivery data-delivery=(word) { (text) },
        }
    }
}

fn ranges(r: &[(u64, u64)]) -> String {
    r.iter()
        .map(|(a, b)| if a == b { a.to_string() } else { format!("{a}–{b}") })
        .collect::<Vec<_>>()
        .join(", ")
}

fn forward_form(ctx: &Context, hub: &Hub, n: usize) -> Markup {
    html! {
        details.forward {
            summary { "Pass this note on" }
            form method="post" action={ "/channels/" (seg(&ctx.name)) "/forward" } {
                input type="hidden" name="entry" value=(n);
                fieldset {
                    legend { "To" }
                    @for (r, label) in &hub.members {
                        label.choice { input type="checkbox" name="to" value=(r); " " (label) }
                    }
                }
                label for={ "rephrase" (n) } { "Your rewording (leave empty to pass it on as written)" }
                textarea id={ "rephrase" (n) } name="rephrase" rows="3" data-draft={ "rephrase:" (ctx.name) ":" (n) } {}
                button type="submit" { "Pass on" }
            }
        }
    }
}

pub async fn show(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    match engine(&app) {
        Ok(engine) => render(&engine, &name, None),
        Err(r) => *r,
    }
}

fn render(engine: &Engine, name: &str, problem: Option<&Problem>) -> Response {
    let entries = match engine.read(name) {
        Ok(e) => e,
        Err(e) => return failure("Conversation", Nav::Channels, &e),
    };
    let (ctx, view) = Context::of(engine, name);
    let shown = Shown(problem);
    let head = match &view {
        Some(v) => channel_head(name, v, Tab::Talk),
        None => {
            let (n, side) = name.rsplit_once('@').unwrap_or((name, ""));
            html! { h1 { "Talk with " (who(n, side)) } p.sub { "Notes between the two of you, deniable: nothing is signed." } }
        }
    };
    let nav = if view.is_some() { Nav::Channels } else { Nav::Contacts };
    let line = view.as_ref().and_then(|v| {
        let hotline = engine.channel_hotline(name).ok().flatten()?;
        Some(super::routes::line(engine, v, &hotline))
    });
    let body = html! {
        (head)
        @if let Some(line) = line { (line) }
        div.log role="log" aria-label="Conversation" {
            ol #timeline.timeline data-name=(name) data-count=(entries.len()) {
                @for (i, e) in entries.iter().enumerate() { (entry(&ctx, i, e)) }
            }
            @if entries.is_empty() { p #empty { "Nothing here yet." } }
        }
        (compose(&ctx, view.as_ref(), &shown))
    };
    layout::answer(problem, layout::page("Conversation", nav, body))
}

fn compose(ctx: &Context, view: Option<&ChannelView>, shown: &Shown<'_>) -> Markup {
    let observer = view.and_then(me).is_some_and(|m| m.role == backchannel_client::Role::Observer);
    html! {
        @if observer {
            p.hint { "You observe this channel: you read, and do not write." }
        } @else {
            form.compose method="post" action={ "/talk/" (seg(&ctx.name)) "/send" } id="compose" data-send="1"
                data-error=[shown.failed("compose")] {
                (shown.error("compose"))
                @if let Some(hub) = &ctx.hub {
                    fieldset {
                        legend { "Send to" }
                        @for (r, label) in &hub.members {
                            label.choice { input type="checkbox" name="to" value=(r); " " (label) }
                        }
                    }
                }
                label for="text" { "Your note" }
                textarea #text name="text" rows="3" required data-draft={ "note:" (ctx.name) } aria-describedby="compose-hint" {
                    (shown.value("compose", "text"))
                }
                p.hint #compose-hint { "Notes are informal and deniable: they are never signed. Ctrl+Enter sends." }
                div.problem #compose-problem role="alert" hidden {}
                button type="submit" { "Send" }
            }
        }
    }
}

/// Whether the page's script sent this (it wants a short answer, not a page).
fn from_script(headers: &HeaderMap) -> bool {
    headers.get("x-requested-with").is_some_and(|v| v == "fetch")
}

pub async fn send(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let result = engine.send(&name, fields.get("text"), &fields.all("to")).await;
    match (result, from_script(&headers)) {
        (Ok(_), true) => StatusCode::NO_CONTENT.into_response(),
        (Ok(_), false) => layout::see_other(&format!("/talk/{}", seg(&name))),
        (Err(e), true) => (words::status(&e), words::error(&e)).into_response(),
        (Err(e), false) => render(&engine, &name, Some(&Problem::engine("compose", &e, &fields))),
    }
}

pub async fn forward(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let Ok(n) = fields.get("entry").parse::<usize>() else {
        return render(&engine, &name, Some(&Problem::new("compose", "Choose a note to pass on.", &fields)));
    };
    let rephrased = Some(fields.get("rephrase").trim()).filter(|t| !t.is_empty());
    match engine.forward(&name, n, &fields.all("to"), rephrased).await {
        Ok(_) => layout::see_other(&format!("/talk/{}", seg(&name))),
        Err(e) => render(&engine, &name, Some(&Problem::engine("compose", &e, &fields))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_client::{MessageFault, Why};

    fn draw(entry: Entry, still_missing: Option<Vec<(u64, u64)>>) -> String {
        let ctx = Context { name: "talks".into(), hub: None };
        let open = still_missing.as_ref().map(|m| !m.is_empty());
        entry_html(&ctx, EntryView { entry, open, still_missing, delivery: None })
    }

    fn entry_html(ctx: &Context, view: EntryView) -> String {
        entry(ctx, 0, &view).into_string()
    }

    fn note(text: &str, relayed_by: Option<&str>, rephrased: bool) -> Entry {
        Entry::Note {
            from: "Bao".into(),
            outgoing: false,
            text: text.into(),
            sent_at: 0,
            at: 0,
            seq: 1,
            relayed_by: relayed_by.map(str::to_owned),
            rephrased,
        }
    }

    #[test]
    fn gaps_and_rejections_are_shown_as_such_never_as_notes() {
        let gap = draw(
            Entry::Gap { from: "Bao".into(), first: 3, last: 5, at: 0, source: None },
            Some(vec![(4, 5)]),
        );
        assert!(
            gap.contains(r#"class="gap""#)
                && gap.contains("Missing notes")
                && gap.contains("Still missing: 4–5"),
            "{gap}"
        );
        assert!(!gap.contains("class=\"note"), "{gap}");
        let closed =
            draw(Entry::Gap { from: "Bao".into(), first: 3, last: 3, at: 0, source: None }, Some(vec![]));
        assert!(closed.contains("All of them arrived since"), "{closed}");
        let forged = Why::Message { fault: MessageFault::Forged { what: "a block".into() } };
        let rejected = draw(Entry::rejected("Bao", forged, 0), None);
        assert!(
            rejected.contains(r#"class="rejected""#) && rejected.contains("failed authentication"),
            "{rejected}"
        );
        assert!(!rejected.contains("class=\"note"), "{rejected}");
    }

    #[test]
    fn relayed_notes_say_by_whom_and_a_peers_markup_is_text() {
        let relayed = draw(note("<script>alert(1)</script>", Some("Omar"), true), None);
        assert!(relayed.contains("Relayed by <bdi>Omar</bdi> (rephrased)"), "{relayed}");
        assert!(!relayed.contains("<script>") && relayed.contains("&lt;script&gt;"), "{relayed}");
        let direct = draw(note("plain", None, false), None);
        assert!(!direct.contains("Relayed"), "{direct}");
    }

    #[test]
    fn our_notes_say_how_their_delivery_goes_and_not_confirmed_stands_out() {
        let ctx = Context { name: "talks".into(), hub: None };
        let mut mine = note("x", None, false);
        if let Entry::Note { outgoing, .. } = &mut mine {
            *outgoing = true;
        }
        let with = |status| EntryView {
            entry: mine.clone(),
            open: None,
            still_missing: None,
            delivery: Some(DeliveryView { status, hosts: vec!["bcr://h1:1#f".into()], recipients: vec![] }),
        };
        let sent = entry_html(&ctx, with(DeliveryStatus::Sent));
        assert!(sent.contains(r#"data-delivery="sent""#) && sent.contains("stored by h1:1"), "{sent}");
        let lost = entry_html(&ctx, with(DeliveryStatus::NotConfirmed));
        assert!(
            lost.contains(r#"class="delivery unconfirmed""#) && lost.contains("<strong>NOT CONFIRMED"),
            "{lost}"
        );
        let theirs = draw(note("x", None, false), None);
        assert!(!theirs.contains("data-delivery"), "{theirs}");
    }

    #[test]
    fn the_hub_can_pass_on_received_notes_only() {
        let hub = Context {
            name: "muscat".into(),
            hub: Some(Hub { members: vec![("Bao@B".into(), "Bao (B)".into())] }),
        };
        let view = |entry| EntryView { entry, open: None, still_missing: None, delivery: None };
        assert!(entry_html(&hub, view(note("x", None, false))).contains("Pass this note on"));
        let mut mine = note("x", None, false);
        if let Entry::Note { outgoing, .. } = &mut mine {
            *outgoing = true;
        }
        assert!(!entry_html(&hub, view(mine)).contains("Pass this note on"), "our own note");
        assert!(
            !entry_html(&hub, view(note("x", Some("Omar"), false))).contains("Pass this note on"),
            "already relayed"
        );
    }
}
