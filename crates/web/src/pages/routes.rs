//! A contact's hosts (the routes between us, both ways): every host with its state each way,
//! when it was last heard, the last path test and its round trip, notes such as "needs your
//! allow" (with an Allow button); adding a host, and leaving one behind a confirmation. Also
//! the line state of a hotline channel's members, drawn on its conversation and members pages.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use backchannel_client::{
    ChannelView, ContactView, Direction, Engine, Hotline, RouteNote, RouteState, RouteView,
};
use backchannel_wire::RelayAddress;
use maud::{Markup, html};
use serde::Deserialize;

use super::{engine, failure, who};
use crate::app::App;
use crate::layout::{self, Fields, Nav, Problem, Shown, seg};
use crate::words::{self, host, peer};

/// Most hosts a contact is reached over (the engine's own limit, said before asking it).
pub const MAX_HOSTS: usize = 8;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A time as "N minutes ago"; the script keeps it current, the title gives the moment.
pub fn ago(now: u64, at: u64) -> Markup {
    html! {
        time datetime=(words::iso_time(at)) data-ago title=(words::time(at)) { (words::ago(now, at)) }
    }
}

/// A route's state with its way shown: an arrow for the eye, words for a screen reader.
pub fn way_badge(v: &RouteView, peer_name: &str) -> Markup {
    html! {
        span.way title=(words::direction(v.direction, peer_name)) {
            span aria-hidden="true" { @match v.direction { Direction::Out => "→", Direction::In => "←" } }
            span.visually-hidden { (words::direction(v.direction, peer_name)) " " }
            (state_badge(v.state))
        }
        " "
    }
}

pub fn state_badge(state: RouteState) -> Markup {
    let word = words::route_state(state);
    html! {
        @match state {
            RouteState::Up => span.badge.good data-state="up" { (word) },
            RouteState::Down => span.badge.bad data-state="down" { (word) },
            RouteState::Unknown => span.badge.warn data-state="unknown" { (word) },
        }
    }
}

/// The route one way over a host: the one in use, rather than one being left there.
pub fn pick<'a>(routes: &'a [RouteView], relay: &str, d: Direction) -> Option<&'a RouteView> {
    let all: Vec<&RouteView> = routes.iter().filter(|x| x.relay == relay && x.direction == d).collect();
    all.iter().find(|x| x.note != Some(RouteNote::Leaving)).or(all.first()).copied()
}

/// Distinct hosts in the order the engine lists them.
fn hosts(routes: &[RouteView]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in routes {
        if !out.contains(&r.relay) {
            out.push(r.relay.clone());
        }
    }
    out
}

#[derive(Deserialize)]
pub struct Ask {
    drop: Option<String>,
}

pub async fn show(State(app): State<Arc<App>>, Path(name): Path<String>, Query(ask): Query<Ask>) -> Response {
    match engine(&app) {
        Ok(engine) => render(&engine, &name, ask.drop.as_deref(), None),
        Err(r) => *r,
    }
}

fn contact(engine: &Engine, name: &str) -> Result<ContactView, backchannel_client::ClientError> {
    engine
        .contacts()?
        .into_iter()
        .find(|c| super::contacts::contact_ref(c) == name)
        .ok_or_else(|| backchannel_client::ClientError::UnknownContact { name: name.to_owned() })
}

fn render(engine: &Engine, name: &str, dropping: Option<&str>, problem: Option<&Problem>) -> Response {
    let c = match contact(engine, name) {
        Ok(c) => c,
        Err(e) => return failure("Hosts", Nav::Contacts, &e),
    };
    let routes = match engine.contact_routes(name) {
        Ok(r) => r,
        Err(e) => return failure("Hosts", Nav::Contacts, &e),
    };
    let shown = Shown(problem);
    let r = seg(name);
    // The confirmation, for a host there (or to say what went wrong with the one asked for).
    let asked = problem.is_some_and(|p| p.form == "drop");
    let dropping = dropping.filter(|d| asked || routes.iter().any(|x| x.relay == *d));
    let body = html! {
        h1 { "Hosts between you and " (who(&c.name, &c.side)) }
        p.sub { a href={ "/contacts/" (r) } { "Safety number" } " · " a href={ "/talk/" (r) } { "Talk" } }
        p { "Every note goes over every host at once, so losing one host loses nothing. Each host carries "
            "notes one way: to " bdi { (peer(&c.name)) } "'s mailbox there, or to yours." }
        section #live.card data-src={ "/contacts/" (r) "/routes" } data-every="5000" aria-labelledby="routes-h" {
            h2 #routes-h { "Hosts" }
            (shown.error("allow"))
            (table(&c, name, &routes, now_ms()))
        }
        @if let Some(relay) = dropping {
            (drop_form(&c, name, relay, &shown))
        }
        section.card aria-labelledby="add-h" {
            h2 #add-h { "Add a host" }
            form method="post" action={ "/contacts/" (r) "/routes/add" } id="add-host" data-error=[shown.failed("add")] {
                (shown.error("add"))
                label for="relay" { "Host address" }
                input #relay name="relay" required spellcheck="false" placeholder="bcr://relay.example.org:4443#…"
                    value=(shown.value("add", "relay")) aria-describedby="add-hint" data-draft={ "add-host:" (name) };
                p.hint #add-hint { "A fresh mailbox of yours is made there and announced to " bdi { (peer(&c.name)) }
                    ", who is asked to add one there too. No new invitation is needed." }
                button type="submit" { "Add this host" }
            }
        }
    };
    layout::answer(problem, layout::page("Hosts", Nav::Contacts, body))
}

/// One row per host: the way to them and the way back, with what is known of each.
fn table(c: &ContactView, name: &str, routes: &[RouteView], now: u64) -> Markup {
    let r = seg(name);
    let each = |relay: &str, d: Direction| pick(routes, relay, d);
    html! {
        @if routes.is_empty() {
            p { "No hosts: this contact cannot be reached. Add a host below." }
        } @else {
            table.routes {
                thead { tr {
                    th scope="col" { "Host" }
                    th scope="col" { (words::direction(Direction::Out, &c.name)) }
                    th scope="col" { (words::direction(Direction::In, &c.name)) }
                    th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for relay in hosts(routes) {
                        tr data-host=(host(&relay)) {
                            th scope="row" { code title=(peer(&relay)) { (host(&relay)) } }
                            td { (way(each(&relay, Direction::Out), &c.name, name, now)) }
                            td { (way(each(&relay, Direction::In), &c.name, name, now)) }
                            td {
                                @if !routes.iter().any(|x| x.relay == relay && x.note == Some(RouteNote::Leaving)) {
                                    a href={ "/contacts/" (r) "/routes?drop=" (seg(&relay)) "#drop-h" } {
                                        "Leave this host" span.visually-hidden { " " (host(&relay)) } "…"
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn way(route: Option<&RouteView>, peer_name: &str, name: &str, now: u64) -> Markup {
    let Some(v) = route else {
        return html! { span.hint { "not used this way" } };
    };
    html! {
        div.route data-direction=(match v.direction { Direction::In => "in", Direction::Out => "out" }) {
            (state_badge(v.state))
            @if let Some(why) = &v.detail { " " span.why { "(" (peer(why)) ")" } }
            br;
            @match (v.direction, v.last_heard_ms) {
                (Direction::In, Some(at)) => { "Last heard " (ago(now, at)) }
                (Direction::In, None) => { "Nothing heard here yet" }
                (Direction::Out, Some(at)) => { bdi { (peer(peer_name)) } " last heard you here " (ago(now, at)) }
                (Direction::Out, None) => { "No report back from " bdi { (peer(peer_name)) } " yet" }
            }
            @if v.direction == Direction::Out {
                br;
                @match (v.tested_ms, v.rtt_ms) {
                    (Some(at), Some(rtt)) => { "Path test " (ago(now, at)) ", round trip " (rtt) " ms" }
                    (Some(at), None) => { "Path test " (ago(now, at)) }
                    _ => { "No path test yet" }
                }
            }
            @match v.note {
                Some(RouteNote::Leaving) => p.note { "Being left: deleted once " bdi { (peer(peer_name)) } " confirms." },
                Some(RouteNote::NeedsAllow) => div.note {
                    p { strong { "Needs your allow." } " " bdi { (peer(peer_name)) } " asks to be reached through this host, "
                        "which you do not use yet. Allow it only if you trust it." }
                    form method="post" action={ "/contacts/" (seg(name)) "/routes/allow" } {
                        input type="hidden" name="relay" value=(v.relay);
                        button type="submit" { "Allow " span.visually-hidden { (host(&v.relay)) } }
                    }
                },
                None => {}
            }
        }
    }
}

fn drop_form(c: &ContactView, name: &str, relay: &str, shown: &Shown<'_>) -> Markup {
    let r = seg(name);
    html! {
        section.card.confirm aria-labelledby="drop-h" {
            h2 #drop-h tabindex="-1" data-focus { "Leave the host " code { (host(relay)) } "?" }
            p { "Your mailbox there is no longer used and is deleted once " bdi { (peer(&c.name)) } " confirms; "
                bdi { (peer(&c.name)) } " is asked to leave it too. Notes keep going over the other hosts." }
            form method="post" action={ "/contacts/" (r) "/routes/drop" } id="drop" {
                (shown.error("drop"))
                input type="hidden" name="relay" value=(relay);
                button.danger type="submit" { "Leave this host" }
                " "
                a href={ "/contacts/" (r) "/routes" } { "Keep it" }
            }
        }
    }
}

fn parse(fields: &Fields) -> Result<RelayAddress, &'static str> {
    fields.get("relay").trim().parse().map_err(|_| {
        "That is not a host address. It looks like bcr://HOST:PORT#FINGERPRINT; copy it whole from whoever \
         runs the host."
    })
}

pub async fn add(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let relay = match parse(&fields) {
        Ok(r) => r,
        Err(why) => return render(&engine, &name, None, Some(&Problem::new("add", why, &fields))),
    };
    match engine.add_relay(&name, &relay).await {
        Ok(_) => layout::see_other(&format!("/contacts/{}/routes", seg(&name))),
        Err(e) => render(&engine, &name, None, Some(&Problem::engine("add", &e, &fields))),
    }
}

pub async fn leave(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let typed = fields.get("relay").to_owned();
    let relay = match parse(&fields) {
        Ok(r) => r,
        Err(why) => return render(&engine, &name, Some(&typed), Some(&Problem::new("drop", why, &fields))),
    };
    match engine.drop_relay(&name, &relay).await {
        Ok(_) => layout::see_other(&format!("/contacts/{}/routes", seg(&name))),
        Err(e) => render(&engine, &name, Some(&typed), Some(&Problem::engine("drop", &e, &fields))),
    }
}

pub async fn allow(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let relay = match parse(&fields) {
        Ok(r) => r,
        Err(why) => return render(&engine, &name, None, Some(&Problem::new("allow", why, &fields))),
    };
    match engine.allow_relay(&relay) {
        Ok(()) => layout::see_other(&format!("/contacts/{}/routes", seg(&name))),
        Err(e) => render(&engine, &name, None, Some(&Problem::engine("allow", &e, &fields))),
    }
}

/// A hotline channel's line: its discipline, and every other member's hosts with their states.
/// Drawn in `#line` on the conversation page (and sent again over the event stream when a
/// route changes) and on the members page.
pub fn line(engine: &Engine, view: &ChannelView, hotline: &Hotline) -> Markup {
    let contacts = engine.contacts().unwrap_or_default();
    html! {
        section #line.card.hotline aria-labelledby="line-h" {
            h2 #line-h { "Hotline" }
            p #hotline-rule { (words::hotline(hotline)) }
            ul.line {
                @for m in view.members.iter().filter(|m| !m.you) {
                    li data-member=(m.name) {
                        (who(&m.name, &m.side)) ": "
                        @if let Some(c) = contacts.iter().find(|c| c.name == m.name && c.side == m.side && !c.routes.is_empty()) {
                            @for relay in hosts(&c.routes) {
                                span.host {
                                    code { (host(&relay)) } " "
                                    @for v in [Direction::Out, Direction::In].iter().filter_map(|d| pick(&c.routes, &relay, *d)) {
                                        (way_badge(v, &m.name))
                                    }
                                }
                            }
                            a href={ "/contacts/" (seg(&super::contacts::contact_ref(c))) "/routes" } {
                                "Hosts" span.visually-hidden { " of " (peer(&m.name)) }
                            }
                        } @else {
                            span.badge.warn { "no session yet" }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(relay: &str, direction: Direction, state: RouteState, note: Option<RouteNote>) -> RouteView {
        RouteView {
            relay: relay.into(),
            direction,
            state,
            last_heard_ms: Some(1_000),
            detail: None,
            note,
            tested_ms: Some(2_000),
            rtt_ms: Some(42),
        }
    }

    #[test]
    fn a_host_is_one_row_with_both_ways_and_an_allow_where_needed() {
        let c = ContactView {
            name: "Bao".into(),
            side: "B".into(),
            safety_number: String::new(),
            verified: false,
            relay: String::new(),
            routes: Vec::new(),
        };
        let routes = [
            route("bcr://h1:1#f", Direction::In, RouteState::Up, None),
            route("bcr://h1:1#f", Direction::Out, RouteState::Up, None),
            route("bcr://h2:2#f", Direction::Out, RouteState::Down, Some(RouteNote::NeedsAllow)),
        ];
        let html = table(&c, "Bao@B", &routes, 61_000).into_string();
        assert_eq!(html.matches("<tr data-host=").count(), 2, "{html}");
        assert!(html.contains("round trip 42 ms") && html.contains("1 minute ago"), "{html}");
        assert!(html.contains("Needs your allow") && html.contains("/routes/allow"), "{html}");
        assert!(html.contains(r#"data-state="down""#) && html.contains("not used this way"), "{html}");
    }
}
