//! A channel's phase: where it is and what that allows, a move proposed and who consented.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use backchannel_client::{Engine, Phase, Role};
use maud::html;

use super::{Tab, channel_head, engine, failure};
use crate::app::App;
use crate::layout::{self, Fields, Nav, Problem, Shown, seg};
use crate::words::{self, peer};

pub async fn show(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    match engine(&app) {
        Ok(engine) => render(&engine, &name, None),
        Err(r) => *r,
    }
}

fn render(engine: &Engine, name: &str, problem: Option<&Problem>) -> Response {
    let view = match engine.channel(name) {
        Ok(v) => v,
        Err(e) => return failure("Phase", Nav::Channels, &e),
    };
    let shown = Shown(problem);
    let mut sides: Vec<&str> =
        view.members.iter().filter(|m| m.role == Role::Principal).map(|m| m.side.as_str()).collect();
    sides.dedup();
    let next = view.phase.next();
    let body = html! {
        (channel_head(name, &view, Tab::Phase))
        section #live.card data-src={ "/channels/" (seg(name)) "/phase" } aria-labelledby="now-h" {
            h2 #now-h { "Now: " (words::phase(view.phase)) }
            p { "In this phase " (words::policy(&view.policy)) "." }
            ol.phases aria-label="The phases, in order" {
                @for p in Phase::ALL {
                    li aria-current=[(p == view.phase).then_some("step")] { (words::phase(p)) }
                }
            }
            @match &view.proposed_phase {
                Some((p, missing)) => {
                    h3 { "Proposed: move to " (words::phase(*p)) }
                    p { "Every side must consent before the channel moves." }
                    ul {
                        @for side in &sides {
                            li { bdi { (peer(side)) } ": "
                                @if missing.iter().any(|m| m == side) { span.badge.warn { "has not consented yet" } }
                                @else { span.badge.good { "consented" } } }
                        }
                    }
                    @if missing.is_empty() { p { "Every side consented: the channel moves as soon as its creator's app takes it in." } }
                }
                None => { p { "No move is proposed." } }
            }
        }
        section.card aria-labelledby="act-h" {
            h2 #act-h { "Move on" }
            form method="post" action={ "/channels/" (seg(name)) "/phase" } id="phase" {
                (shown.error("phase"))
                @match (&view.proposed_phase, next) {
                    (Some((p, _)), _) => {
                        input type="hidden" name="consent" value="1";
                        p { "Your side consents to moving to " strong { (words::phase(*p)) } "." }
                        button type="submit" { "Consent to " (words::phase(*p)) }
                    }
                    (None, Some(n)) => {
                        input type="hidden" name="phase" value=(n.name());
                        p { "Proposing counts as your side's consent." }
                        button type="submit" { "Propose moving to " (words::phase(n)) }
                    }
                    (None, None) => { p { "This is the last phase." } }
                }
            }
        }
    };
    layout::answer(problem, layout::page("Phase", Nav::Channels, body))
}

pub async fn consent(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let phase = fields.get("phase").parse::<Phase>().ok();
    match engine.phase_consent(&name, phase).await {
        Ok(_) => layout::see_other(&format!("/channels/{}/phase", seg(&name))),
        Err(e) => render(&engine, &name, Some(&Problem::engine("phase", &e, &fields))),
    }
}
