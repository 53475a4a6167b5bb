//! Contacts: invite (the text to copy), accept (paste), safety numbers large and as a QR code
//! for comparing in person, verify.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use backchannel_client::{ContactView, Engine};
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
    render(&engine, None, None)
}

/// The contacts page, with a fresh invitation or a problem to show.
fn render(engine: &Engine, invitation: Option<&str>, problem: Option<&Problem>) -> Response {
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
                    thead { tr { th scope="col" { "Contact" } th scope="col" { "Safety number" } th scope="col" { "Checked" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for c in &contacts {
                            tr {
                                td { a href={ "/contacts/" (seg(&contact_ref(c))) } { (who(&c.name, &c.side)) } }
                                td { code.safety { (c.safety_number) } }
                                td { (verified_badge(c.verified)) }
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
            (invite_form(&contacts, invitation, &shown))
            (accept_form(&shown))
        }
    };
    layout::answer(problem, layout::page("Contacts", Nav::Contacts, body))
}

fn verified_badge(verified: bool) -> Markup {
    html! {
        @if verified { span.badge.good { "verified" } } @else { span.badge.warn { "not verified" } }
    }
}

fn invite_form(contacts: &[ContactView], invitation: Option<&str>, shown: &Shown<'_>) -> Markup {
    let relay = match shown.value("invite", "relay") {
        "" => contacts.first().map(|c| c.relay.clone()).unwrap_or_default(),
        typed => typed.to_owned(),
    };
    html! {
        section.card aria-labelledby="invite-h" {
            h2 #invite-h { "Invite someone" }
            @if let Some(text) = invitation {
                div.done role="status" {
                    p { "Your invitation is ready. Pass it to one person, over a channel you trust; it works once." }
                    label for="invitation" { "Invitation" }
                    textarea #invitation readonly rows="5" { (text) }
                    button type="button" data-copy="invitation" { "Copy the invitation" }
                }
            }
            form method="post" action="/contacts/invite" id="invite" {
                (shown.error("invite"))
                label for="relay" { "Relay address" }
                input #relay name="relay" required value=(relay) placeholder="bcr://relay.example.org:4443#…"
                    aria-describedby="relay-hint" data-draft="relay" spellcheck="false";
                p.hint #relay-hint { "The address of the relay you use, as whoever runs it gave it to you." }
                label for="expires" { "Valid for" }
                select #expires name="expires" {
                    option value="3600" { "1 hour" }
                    option value="86400" selected { "1 day" }
                    option value="604800" { "7 days" }
                }
                button type="submit" { "Make an invitation" }
            }
        }
    }
}

fn accept_form(shown: &Shown<'_>) -> Markup {
    html! {
        section.card aria-labelledby="accept-h" {
            h2 #accept-h { "Accept an invitation" }
            form method="post" action="/contacts/accept" id="accept" data-error=[shown.failed("accept")] {
                (shown.error("accept"))
                label for="text" { "Paste the invitation you were given" }
                textarea #text name="text" required rows="5" spellcheck="false" placeholder="backchannel:…" data-draft="accept" {
                    (shown.value("accept", "text"))
                }
                button type="submit" { "Accept" }
            }
        }
    }
}

pub async fn invite(State(app): State<Arc<App>>, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let relay: RelayAddress = match fields.get("relay").trim().parse() {
        Ok(r) => r,
        Err(_) => {
            let p = Problem::new(
                "invite",
                "That is not a relay address. It looks like bcr://HOST:PORT#FINGERPRINT; copy it whole from \
                 whoever runs the relay.",
                &fields,
            );
            return render(&engine, None, Some(&p));
        }
    };
    let ttl = fields.get("expires").parse::<u64>().unwrap_or(86_400).clamp(60, 30 * 86_400);
    match engine.invite(std::slice::from_ref(&relay), ttl).await {
        Ok(text) => render(&engine, Some(&text), None),
        Err(e) => render(&engine, None, Some(&Problem::engine("invite", &e, &fields))),
    }
}

pub async fn accept(State(app): State<Arc<App>>, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    match engine.accept(fields.get("text").trim(), &[]).await {
        Ok((contact, _)) => layout::see_other(&format!("/contacts/{}", seg(&contact_ref(&contact)))),
        Err(e) => render(&engine, None, Some(&Problem::engine("accept", &e, &fields))),
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
        p.sub { (verified_badge(contact.verified)) " · relay " code { (peer(&contact.relay)) } " · " a href={ "/talk/" (r) } { "Talk" } }
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
