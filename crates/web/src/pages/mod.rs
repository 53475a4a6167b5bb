//! The screens, one file each, and the router that serves them behind [`crate::guard`].
//! Every handler asks the engine, renders what it answers, and puts any error beside the form
//! that caused it; none holds a rule.

mod agreements;
mod channels;
mod contacts;
mod papers;
mod phase;
mod probes;
mod proposals;
pub(crate) mod routes;
mod setup;
pub(crate) mod talk;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::routing::{get, post};
use backchannel_client::{ChannelView, ClientError, Engine, MemberView};
use maud::{Markup, html};

use crate::app::App;
use crate::layout::{self, seg};

/// Largest form the app takes: a non-paper or a proposal of several MiB, or an agreement's zip.
const MAX_BODY: usize = 24 * 1024 * 1024;

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(setup::show))
        .route("/setup/create", post(setup::create))
        .route("/setup/unlock", post(setup::unlock))
        .route("/contacts", get(contacts::list))
        .route("/contacts/invite", post(contacts::invite))
        .route("/contacts/accept", post(contacts::accept))
        .route("/contacts/{name}", get(contacts::show))
        .route("/contacts/{name}/verify", post(contacts::verify))
        .route("/contacts/{name}/qr.svg", get(contacts::qr))
        .route("/contacts/{name}/routes", get(routes::show))
        .route("/contacts/{name}/routes/add", post(routes::add))
        .route("/contacts/{name}/routes/drop", post(routes::leave))
        .route("/contacts/{name}/routes/allow", post(routes::allow))
        .route("/channels", get(channels::list).post(channels::create))
        .route("/channels/{name}/members", get(channels::members).post(channels::add))
        .route("/channels/{name}/members/remove", post(channels::remove))
        .route("/talk/{name}", get(talk::show))
        .route("/talk/{name}/send", post(talk::send))
        .route("/channels/{name}/forward", post(talk::forward))
        .route("/channels/{name}/phase", get(phase::show).post(phase::consent))
        .route("/channels/{name}/papers", get(papers::list).post(papers::put))
        .route("/channels/{name}/papers/{title}", get(papers::show))
        .route("/channels/{name}/probes", get(probes::show).post(probes::propose))
        .route("/channels/{name}/probes/{id}/answer", post(probes::answer))
        .route("/channels/{name}/probes/{id}/input", post(probes::input))
        .route("/channels/{name}/proposals", get(proposals::list).post(proposals::propose))
        .route("/channels/{name}/proposals/{id}/ratify", post(proposals::ratify))
        .route("/channels/{name}/proposals/{id}/agreement.zip", get(proposals::zip))
        .route("/channels/{name}/proposals/{id}/export", post(proposals::folder))
        .route("/agreements/verify", get(agreements::show).post(agreements::folder))
        .route("/agreements/verify/zip", post(agreements::zip))
        .route("/events", get(crate::live::events))
        .route("/assets/{file}", get(crate::assets::serve))
        .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT }))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(app.clone(), crate::guard::guard))
        .with_state(app)
}

async fn not_found() -> Response {
    let body = html! {
        h1 { "Nothing here" }
        p { a href="/contacts" { "Back to your contacts" } }
    };
    layout::respond(axum::http::StatusCode::NOT_FOUND, layout::page("Not found", layout::Nav::Contacts, body))
}

/// The engine, or (while the party is locked) a redirect to the screen that unlocks it.
pub(crate) fn engine(app: &App) -> Result<Engine, Box<Response>> {
    app.engine().map_err(|_| Box::new(layout::see_other("/")))
}

/// A page that could not be drawn at all (the name is unknown, the store failed).
pub(crate) fn failure(title: &str, nav: layout::Nav, e: &ClientError) -> Response {
    let body = html! {
        h1 { (title) }
        div.problem role="alert" { (crate::words::error(e)) }
        p { a href="/channels" { "Your channels" } " · " a href="/contacts" { "Your contacts" } }
    };
    layout::respond(crate::words::status(e), layout::page(title, nav, body))
}

/// The member that is us.
pub(crate) fn me(view: &ChannelView) -> Option<&MemberView> {
    view.members.iter().find(|m| m.you)
}

/// Whether we created the channel (only the creator changes its members).
pub(crate) fn we_created(view: &ChannelView) -> bool {
    me(view).is_some_and(|m| m.creator)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    Talk,
    Members,
    Phase,
    Papers,
    Probes,
    Proposals,
}

/// A channel's heading and the tabs between its screens.
pub(crate) fn channel_head(name: &str, view: &ChannelView, tab: Tab) -> Markup {
    let s = seg(name);
    let tabs = [
        (Tab::Talk, format!("/talk/{s}"), "Conversation"),
        (Tab::Members, format!("/channels/{s}/members"), "Members"),
        (Tab::Phase, format!("/channels/{s}/phase"), "Phase"),
        (Tab::Papers, format!("/channels/{s}/papers"), "Non-papers"),
        (Tab::Probes, format!("/channels/{s}/probes"), "Probes"),
        (Tab::Proposals, format!("/channels/{s}/proposals"), "Proposals"),
    ];
    html! {
        h1 { bdi { (crate::words::peer(&view.name)) } }
        p.sub #channel-state data-live {
            (crate::words::mode(view.mode)) " channel · phase " strong { (crate::words::phase(view.phase)) }
            " · " (view.members.len()) " members"
            @if view.removed { " · " strong { "you were removed" } }
        }
        @if let Some((member, version)) = &view.behind {
            p.problem role="status" {
                (crate::words::behind(member, *version))
            }
        }
        nav.tabs aria-label="Channel" {
            @for (t, href, label) in &tabs {
                a href=(href) aria-current=[(*t == tab).then_some("page")] { (label) }
            }
        }
    }
}

/// `NAME (SIDE)`, with both isolated so neither can reorder the other.
pub(crate) fn who(name: &str, side: &str) -> Markup {
    html! { bdi { (crate::words::peer(name)) } " (" bdi { (crate::words::peer(side)) } ")" }
}
