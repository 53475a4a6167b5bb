//! Checking an agreement someone hands you: a folder on this computer, or a zip. It holds if
//! every required side signed exactly this text; each seal is also matched against the seals
//! of your contacts (the files alone cannot say whose key is whose).

use std::sync::Arc;

use axum::Form;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use backchannel_client::Engine;
use backchannel_proto::agreement::{Agreement, VerifiedAgreement};
use maud::{Markup, html};

use crate::app::App;
use crate::layout::{self, Fields, Nav, Problem, Shown};
use crate::words::peer;

pub async fn show(State(app): State<Arc<App>>) -> Response {
    match super::engine(&app) {
        Ok(engine) => render(&engine, None, None),
        Err(r) => *r,
    }
}

/// What a check found: the agreement holds, or why it does not.
enum Outcome {
    Holds(VerifiedAgreement),
    Fails(String),
}

fn render(engine: &Engine, outcome: Option<Outcome>, problem: Option<&Problem>) -> Response {
    let shown = Shown(problem);
    let body = html! {
        h1 { "Check an agreement" }
        p.sub { "An agreement is a folder: the text, one signature per signatory, the list of their keys and a manifest. "
            "Anyone can check it, here or with OpenSSH's " code { "ssh-keygen -Y verify" } "." }
        @if let Some(outcome) = outcome { section #result aria-labelledby="result-h" { (result(engine, &outcome)) } }
        div.columns {
            section.card aria-labelledby="folder-h" {
                h2 #folder-h { "A folder on this computer" }
                form method="post" action="/agreements/verify" id="folder" {
                    (shown.error("folder"))
                    label for="dir" { "The folder's full path" }
                    input #dir name="dir" required value=(shown.value("folder", "dir")) placeholder="/home/you/agreement";
                    button type="submit" { "Check the folder" }
                }
            }
            section.card aria-labelledby="zip-h" {
                h2 #zip-h { "A zip file" }
                form method="post" action="/agreements/verify/zip" id="zip" data-upload="1" {
                    (shown.error("zip"))
                    label for="zipfile" { "The zip file" }
                    input #zipfile type="file" name="zip" accept=".zip,application/zip" required;
                    div.problem #zip-problem role="alert" hidden {}
                    button type="submit" { "Check the zip" }
                }
            }
        }
    };
    layout::answer(problem, layout::page("Check an agreement", Nav::Agreements, body))
}

fn result(engine: &Engine, outcome: &Outcome) -> Markup {
    match outcome {
        Outcome::Fails(why) => html! {
            div.problem.verdict role="alert" tabindex="-1" {
                h2 #result-h { "This agreement does NOT hold" }
                p { (why) }
            }
        },
        Outcome::Holds(v) => {
            let me = engine.me();
            let known = engine.seal_keys().unwrap_or_default();
            let id: String = v.proposal_id.iter().map(|b| format!("{b:02x}")).collect();
            html! {
                div.done.verdict role="status" tabindex="-1" {
                    h2 #result-h { "“" bdi { (peer(&v.title)) } "” holds" }
                    p { "Every required side signed exactly this text: " (v.required_sides.iter().map(|s| peer(s)).collect::<Vec<_>>().join(", ")) "." }
                    p.hint { "Text fingerprint (sha256) " code { (id) } }
                    ul {
                        @for s in &v.signatories {
                            li {
                                bdi { (peer(&s.name)) } " (" bdi { (peer(&s.side)) } "), key " code { (s.fingerprint) } ": "
                                @if s.seal_key == me.seal_key { strong { "your own seal" } }
                                @else if let Some((who, _)) = known.iter().find(|(_, k)| *k == s.seal_key) {
                                    strong { "the seal of your contact " bdi { (peer(who)) } }
                                } @else {
                                    span.badge.warn { "not one of your contacts: compare this key with them out of band" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn check(agreement: Result<Agreement, String>) -> Outcome {
    match agreement.and_then(|a| a.verify().map_err(|e| e.to_string())) {
        Ok(v) => Outcome::Holds(v),
        Err(why) => Outcome::Fails(format!("{}.", peer(&why))),
    }
}

pub async fn folder(State(app): State<Arc<App>>, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let engine = match super::engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let dir = std::path::PathBuf::from(fields.get("dir").trim());
    let agreement = match crate::archive::read_folder(&dir) {
        Ok(read) => Agreement::from_files(read).map_err(|e| e.to_string()),
        Err(why) => return render(&engine, None, Some(&Problem::new("folder", why, &fields))),
    };
    render(&engine, Some(check(agreement)), None)
}

pub async fn zip(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let engine = match super::engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let agreement = crate::archive::unzip(&body).and_then(|files| {
        Agreement::from_files(|name| files.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone()))
            .map_err(|e| e.to_string())
    });
    render(&engine, Some(check(agreement)), None)
}
