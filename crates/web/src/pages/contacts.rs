//! Contacts: invite (the text to copy), accept (paste), safety numbers large and as a QR code
//! for comparing in person, verify.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use backchannel_client::{ContactView, Direction, Engine};
use backchannel_wire::RelayAddress;
use maud::{Markup, html};

use super::{engine, failure, who};
use crate::app::App;
use crate::layout::{self, Fields, Nav, Problem, Shown, seg};
use crate::words::peer;

/// How a contact is named in addresses: NAME@SIDE, which tells apart two contacts of one name.
pub fn contact_ref(c: &ContactView) -> String {
    format!("{}@{}", c.name, c.side)
}

pub async fn list(State(app): State<Arc<App>>) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    render(&engine, None, None, None)
}

/// A form drawn again with one more host field (its "Add another host" button).
pub struct More<'a> {
    form: &'static str,
    hosts: Vec<String>,
    fields: &'a Fields,
}

/// The host fields of `form` (`invite` or `accept`): one per host typed, and one more when
/// asked; the last one asked for takes the focus.
fn host_fields(form: &'static str, values: &[String], more: bool, hint: &str) -> Markup {
    let mut values: Vec<String> = values.to_vec();
    if values.is_empty() || more {
        values.push(String::new());
    }
    values.truncate(super::routes::MAX_HOSTS);
    let id = |i: usize| match (form, i) {
        ("invite", 0) => "relay".to_owned(),
        _ => format!("{form}-relay-{}", i + 1),
    };
    let hint_id = format!("{form}-hosts-hint");
    html! {
        fieldset.hosts {
            legend { @if form == "invite" { "Hosts" } @else { "Your hosts (optional)" } }
            p.hint id=(hint_id) { (hint) }
            @for (i, v) in values.iter().enumerate() {
                label for=(id(i)) { "Host " (i + 1) " address" }
                input id=(id(i)) name="relay" value=(v) spellcheck="false" placeholder="bcr://relay.example.org:4443#…"
                    required[form == "invite" && i == 0] aria-describedby=(hint_id)
                    autofocus[more && i + 1 == values.len()];
            }
        }
    }
}

fn more_button(values: usize) -> Markup {
    html! {
        @if values < super::routes::MAX_HOSTS {
            " " button.secondary type="submit" name="more" value="1" formnovalidate { "Add another host" }
        }
    }
}

/// The contacts page, with a fresh invitation or a problem to show.
fn render(
    engine: &Engine,
    invitation: Option<(&str, &[String])>,
    problem: Option<&Problem>,
    more: Option<&More<'_>>,
) -> Response {
    let contacts = match engine.contacts() {
        Ok(c) => c,
        Err(e) => return failure("Contacts", Nav::Contacts, &e),
    };
    let pending = engine.pending_invitations().map(|p| p.len()).unwrap_or_default();
    let shown = Shown(problem);
    let me = engine.me();
    let body = html! {
        h1 { "Contacts" }
        p.sub { "You are " (who(&me.name, &me.side)) "." }
        section #live data-src="/contacts" aria-labelledby="contacts-h" {
            h2 #contacts-h { "Your contacts" }
            @if contacts.is_empty() {
                p { "No contacts yet. Invite someone below, or accept an invitation you were given." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Contact" } th scope="col" { "Safety number" } th scope="col" { "Checked" } th scope="col" { "Hosts" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for c in &contacts {
                            tr {
                                td { a href={ "/contacts/" (seg(&contact_ref(c))) } { (who(&c.name, &c.side)) } }
                                td { code.safety { (c.safety_number) } }
                                td { (verified_badge(c.verified)) }
                                td { a href={ "/contacts/" (seg(&contact_ref(c))) "/routes" } { (routes_summary(c)) span.visually-hidden { " of " (peer(&c.name)) } } }
                                td { a href={ "/talk/" (seg(&contact_ref(c))) } { "Talk" } }
                            }
                        }
                    }
                }
            }
            @if pending > 0 {
                p { (pending) " invitation(s) of yours wait for an answer." }
            }
        }
        div.columns {
            (invite_form(&contacts, invitation, &shown, more.filter(|m| m.form == "invite")))
            (accept_form(&shown, more.filter(|m| m.form == "accept")))
        }
    };
    layout::answer(problem, layout::page("Contacts", Nav::Contacts, body))
}

/// `2 hosts, all up` or `2 hosts, 1 down`.
fn routes_summary(c: &ContactView) -> String {
    let mut hosts: Vec<&str> = c.routes.iter().map(|r| r.relay.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let down = hosts
        .iter()
        .filter(|h| {
            c.routes.iter().any(|r| r.relay == **h && r.state == backchannel_client::RouteState::Down)
        })
        .count();
    let n = match hosts.len() {
        1 => "1 host".to_owned(),
        n => format!("{n} hosts"),
    };
    match down {
        0 => n,
        d => format!("{n}, {d} down"),
    }
}

fn verified_badge(verified: bool) -> Markup {
    html! {
        @if verified { span.badge.good { "verified" } } @else { span.badge.warn { "not verified" } }
    }
}

fn invite_form(
    contacts: &[ContactView],
    invitation: Option<(&str, &[String])>,
    shown: &Shown<'_>,
    more: Option<&More<'_>>,
) -> Markup {
    let typed = shown.0.filter(|p| p.form == "invite").map(|p| p.values.all("relay"));
    // What was typed, else the hosts just used, else the hosts our mailboxes are on already.
    let ours = || {
        let mut hosts: Vec<String> = Vec::new();
        for r in contacts.iter().flat_map(|c| &c.routes).filter(|r| r.direction == Direction::In) {
            if !hosts.contains(&r.relay) {
                hosts.push(r.relay.clone());
            }
        }
        hosts
    };
    let hosts = match (more, typed, invitation) {
        (Some(m), _, _) => m.hosts.clone(),
        (None, Some(t), _) if !t.is_empty() => t,
        (None, _, Some((_, used))) => used.to_vec(),
        _ => ours(),
    };
    let expires = more.map_or("86400", |m| m.fields.get("expires"));
    let shown_count = hosts.len().max(1) + usize::from(more.is_some());
    html! {
        section.card aria-labelledby="invite-h" {
            h2 #invite-h { "Invite someone" }
            @if let Some((text, _)) = invitation {
                div.done role="status" {
                    p { "Your invitation is ready. Pass it to one person, over a channel you trust; it works once." }
                    label for="invitation" { "Invitation" }
                    textarea #invitation readonly rows="5" { (text) }
                    button type="button" data-copy="invitation" { "Copy the invitation" }
                }
            }
            form method="post" action="/contacts/invite" id="invite" {
                (shown.error("invite"))
                (host_fields("invite", &hosts, more.is_some(),
                    "The relays you use, as whoever runs them gave you their addresses. With two or more, every \
                     note goes over all of them at once: losing one host loses nothing."))
                label for="expires" { "Valid for" }
                select #expires name="expires" {
                    option value="3600" selected[expires == "3600"] { "1 hour" }
                    option value="86400" selected[expires != "3600" && expires != "604800"] { "1 day" }
                    option value="604800" selected[expires == "604800"] { "7 days" }
                }
                button type="submit" { "Make an invitation" }
                (more_button(shown_count))
            }
        }
    }
}

fn accept_form(shown: &Shown<'_>, more: Option<&More<'_>>) -> Markup {
    let typed = shown.0.filter(|p| p.form == "accept").map(|p| p.values.all("relay")).unwrap_or_default();
    let hosts = more.map_or(typed, |m| m.hosts.clone());
    let text = more.map_or_else(|| shown.value("accept", "text"), |m| m.fields.get("text"));
    let shown_count = hosts.len().max(1) + usize::from(more.is_some());
    html! {
        section.card aria-labelledby="accept-h" {
            h2 #accept-h { "Accept an invitation" }
            form method="post" action="/contacts/accept" id="accept" data-error=[shown.failed("accept").or(more.map(|_| "1"))] {
                (shown.error("accept"))
                label for="text" { "Paste the invitation you were given" }
                textarea #text name="text" required rows="5" spellcheck="false" placeholder="backchannel:…" data-draft="accept" {
                    (text)
                }
                (host_fields("accept", &hosts, more.is_some(),
                    "Leave empty to answer over the hosts the invitation names. Or name the relays you want to \
                     be reached at: your mailboxes for this contact are made there."))
                button type="submit" { "Accept" }
                (more_button(shown_count))
            }
        }
    }
}

fn hosts_of(fields: &Fields) -> Result<Vec<RelayAddress>, String> {
    fields
        .all("relay")
        .iter()
        .map(|r| {
            r.trim().parse::<RelayAddress>().map_err(|_| {
                format!(
                    "“{}” is not a relay address. It looks like bcr://HOST:PORT#FINGERPRINT; copy it whole \
                     from whoever runs the relay.",
                    peer(r.trim())
                )
            })
        })
        .collect()
}

pub async fn invite(State(app): State<Arc<App>>, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    if fields.has("more") {
        let more = More { form: "invite", hosts: fields.all("relay"), fields: &fields };
        return render(&engine, None, None, Some(&more));
    }
    let relays = match hosts_of(&fields) {
        Ok(r) if r.is_empty() => {
            let p = Problem::new("invite", "Give the address of at least one relay you use.", &fields);
            return render(&engine, None, Some(&p), None);
        }
        Ok(r) => r,
        Err(why) => return render(&engine, None, Some(&Problem::new("invite", why, &fields)), None),
    };
    let ttl = fields.get("expires").parse::<u64>().unwrap_or(86_400).clamp(60, 30 * 86_400);
    match engine.invite(&relays, ttl).await {
        Ok(text) => render(&engine, Some((&text, &fields.all("relay"))), None, None),
        Err(e) => render(&engine, None, Some(&Problem::engine("invite", &e, &fields)), None),
    }
}

pub async fn accept(State(app): State<Arc<App>>, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    if fields.has("more") {
        let more = More { form: "accept", hosts: fields.all("relay"), fields: &fields };
        return render(&engine, None, None, Some(&more));
    }
    let relays = match hosts_of(&fields) {
        Ok(r) => r,
        Err(why) => return render(&engine, None, Some(&Problem::new("accept", why, &fields)), None),
    };
    match engine.accept(fields.get("text").trim(), &relays).await {
        Ok((contact, _)) => layout::see_other(&format!("/contacts/{}", seg(&contact_ref(&contact)))),
        Err(e) => render(&engine, None, Some(&Problem::engine("accept", &e, &fields)), None),
    }
}

fn find(engine: &Engine, name: &str) -> Result<Option<ContactView>, backchannel_client::ClientError> {
    Ok(engine.contacts()?.into_iter().find(|c| contact_ref(c) == name))
}

pub async fn show(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    one(&engine, &name, None)
}

fn one(engine: &Engine, name: &str, problem: Option<&Problem>) -> Response {
    let contact = match find(engine, name) {
        Ok(Some(c)) => c,
        Ok(None) => {
            let e = backchannel_client::ClientError::UnknownContact { name: name.to_owned() };
            return failure("Contact", Nav::Contacts, &e);
        }
        Err(e) => return failure("Contact", Nav::Contacts, &e),
    };
    let shown = Shown(problem);
    let r = seg(&contact_ref(&contact));
    let groups: Vec<&str> = contact.safety_number.split(' ').collect();
    let body = html! {
        h1 { (who(&contact.name, &contact.side)) }
        p.sub { (verified_badge(contact.verified)) " · " (routes_summary(&contact)) " · "
            a href={ "/contacts/" (r) "/routes" } { "Hosts" } " · " a href={ "/talk/" (r) } { "Talk" } }
        section #live.card data-src={ "/contacts/" (r) } aria-labelledby="sn-h" {
            h2 #sn-h { "Safety number" }
            p { "Compare this number with " bdi { (peer(&contact.name)) } " by phone or in person: if theirs "
                "shows the same digits, nobody stands between you. In person, one of you can scan the other's code." }
            p.safety-large aria-label={ "Safety number: " (contact.safety_number) } {
                @for g in &groups { span { (g) } " " }
            }
            img.qr src={ "/contacts/" (r) "/qr.svg" } width="240" height="240"
                alt={ "QR code of the safety number " (contact.safety_number) };
            @if contact.verified {
                p { "You marked this contact verified." }
            } @else {
                form method="post" action={ "/contacts/" (r) "/verify" } id="verify" {
                    (shown.error("verify"))
                    button type="submit" { "The numbers match: mark verified" }
                }
            }
        }
    };
    layout::answer(problem, layout::page("Contact", Nav::Contacts, body))
}

pub async fn verify(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    match engine.verify(&name) {
        Ok(_) => layout::see_other(&format!("/contacts/{}", seg(&name))),
        Err(e) => one(&engine, &name, Some(&Problem::engine("verify", &e, &Fields::default()))),
    }
}

pub async fn qr(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    match find(&engine, &name) {
        Ok(Some(c)) => match crate::qr::svg(&c.safety_number) {
            Some(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
            None => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        _ => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}
