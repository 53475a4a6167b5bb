//! Channels: the list, creating one (direct or shuttle), members with roles and verification,
//! adding and removing them.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use backchannel_client::{ChannelView, Direction, Engine, Hotline, Mode, Role};
use maud::{Markup, html};

use super::contacts::contact_ref;
use super::{Tab, channel_head, engine, failure, we_created, who};
use crate::app::App;
use crate::layout::{self, Fields, Nav, Problem, Shown, seg};
use crate::words::{self, peer};

/// How a channel is named in addresses: its name, or NAME@CREATOR when several share it.
pub fn channel_ref(view: &ChannelView, all: &[ChannelView]) -> String {
    let same = all.iter().filter(|c| c.name.eq_ignore_ascii_case(&view.name)).count();
    match view.members.iter().find(|m| m.creator) {
        Some(creator) if same > 1 => format!("{}@{}", view.name, creator.name),
        _ => view.name.clone(),
    }
}

pub async fn list(State(app): State<Arc<App>>) -> Response {
    match engine(&app) {
        Ok(engine) => render_list(&engine, None),
        Err(r) => *r,
    }
}

fn render_list(engine: &Engine, problem: Option<&Problem>) -> Response {
    let all = match engine.channels() {
        Ok(c) => c,
        Err(e) => return failure("Channels", Nav::Channels, &e),
    };
    let shown = Shown(problem);
    let body = html! {
        h1 { "Channels" }
        section #live data-src="/channels" aria-labelledby="list-h" {
            h2 #list-h { "Your channels" }
            @if all.is_empty() {
                p { "No channels yet. Create one below, then add your contacts to it." }
            } @else {
                ul.channels {
                    @for c in &all {
                        li {
                            a href={ "/talk/" (seg(&channel_ref(c, &all))) } { bdi { (peer(&c.name)) } }
                            " — " (words::mode(c.mode)) ", phase " (words::phase(c.phase)) ", "
                            (c.members.len()) " members"
                            @if engine.channel_hotline(&channel_ref(c, &all)).ok().flatten().is_some() { " — " span.badge.hot { "hotline" } }
                            @if c.removed { " — " strong { "you were removed" } }
                        }
                    }
                }
            }
        }
        (create_form(&shown))
    };
    layout::answer(problem, layout::page("Channels", Nav::Channels, body))
}

fn create_form(shown: &Shown<'_>) -> Markup {
    let v = |f: &'static str| shown.value("create", f);
    let checked = |f: &'static str, value: &str, default: bool| {
        let typed = v(f);
        if typed.is_empty() { default } else { typed == value }
    };
    html! {
        section.card aria-labelledby="create-h" {
            h2 #create-h { "Create a channel" }
            form method="post" action="/channels" id="create" {
                (shown.error("create"))
                label for="name" { "Name" }
                input #name name="name" required maxlength="64" value=(v("name"));
                fieldset {
                    legend { "Kind" }
                    label.choice { input type="radio" name="mode" value="direct" checked[checked("mode", "direct", true)];
                        " Direct: every member reads every note" }
                    label.choice { input type="radio" name="mode" value="shuttle" checked[checked("mode", "shuttle", false)];
                        " Shuttle: you are the intermediary; each side talks to you only, and you pass notes on" }
                }
                label for="role" { "Your role (in a direct channel)" }
                select #role name="role" {
                    option value="principal" selected[checked("role", "principal", true)] { "Principal: you speak for your side" }
                    option value="observer" selected[checked("role", "observer", false)] { "Observer: you read only" }
                    option value="intermediary" selected[checked("role", "intermediary", false)] { "Intermediary" }
                }
                label for="retention" { "Keep exploratory notes for (days, empty for the default of 14)" }
                input #retention name="retention" inputmode="numeric" pattern="[0-9]*" value=(v("retention"));
                fieldset.hotline {
                    legend { "Crisis hotline" }
                    label.choice { input #hotline type="checkbox" name="hotline" value="1" checked[v("hotline") == "1"] aria-describedby="hotline-hint";
                        " Make this channel a hotline" }
                    p.hint #hotline-hint { "Every member's device sends a heartbeat on every host, so everyone sees at once "
                        "when a host or a member goes silent; every host is tested end to end now and then; notes go "
                        "before anything else and are sent again until their receipt comes back. Hosts see when your "
                        "device is on. Fixed when the channel is made." }
                    label for="heartbeat" { "Heartbeat every (seconds)" }
                    input #heartbeat name="heartbeat" inputmode="numeric" pattern="[0-9]*"
                        value=(match v("heartbeat") { "" => Hotline::DEFAULT.heartbeat_secs.to_string(), t => t.to_owned() });
                    label for="path_test" { "Test every host end to end every (minutes)" }
                    input #path_test name="path_test" inputmode="numeric" pattern="[0-9]*"
                        value=(match v("path_test") { "" => (Hotline::DEFAULT.path_test_secs / 60).to_string(), t => t.to_owned() });
                }
                button type="submit" { "Create" }
            }
        }
    }
}

pub async fn create(State(app): State<Arc<App>>, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let mode = if fields.get("mode") == "shuttle" { Mode::Shuttle } else { Mode::Direct };
    let role = match (mode, fields.get("role")) {
        (Mode::Shuttle, _) => Role::Intermediary,
        (_, "observer") => Role::Observer,
        (_, "intermediary") => Role::Intermediary,
        _ => Role::Principal,
    };
    let retention = match fields.get("retention").trim() {
        "" => None,
        days => match days.parse::<u64>() {
            Ok(d) if d > 0 => Some(d.saturating_mul(86_400)),
            _ => {
                let p = Problem::new(
                    "create",
                    "Write the number of days as a whole number above 0, or leave it empty.",
                    &fields,
                );
                return render_list(&engine, Some(&p));
            }
        },
    };
    let hotline = match fields.get("hotline") {
        "1" => {
            let number = |f: &str| fields.get(f).trim().parse::<u32>().ok().filter(|n| *n > 0);
            match (number("heartbeat"), number("path_test")) {
                (Some(heartbeat_secs), Some(minutes)) => {
                    Some(Hotline { heartbeat_secs, path_test_secs: minutes.saturating_mul(60) })
                }
                _ => {
                    let p = Problem::new(
                        "create",
                        "Write the heartbeat (seconds) and the path test (minutes) as whole numbers above 0.",
                        &fields,
                    );
                    return render_list(&engine, Some(&p));
                }
            }
        }
        _ => None,
    };
    let name = fields.get("name").trim().to_owned();
    match engine.channel_create(&name, mode, role, retention, hotline) {
        Ok(_) => layout::see_other(&format!("/channels/{}/members", seg(&name))),
        Err(e) => render_list(&engine, Some(&Problem::engine("create", &e, &fields))),
    }
}

pub async fn members(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    match engine(&app) {
        Ok(engine) => render_members(&engine, &name, None),
        Err(r) => *r,
    }
}

fn link_state(connected: bool, verified: bool) -> Markup {
    match (connected, verified) {
        (false, _) => html! { span.badge.warn { "introduction under way" } },
        (true, false) => html! { span.badge.warn { "not verified" } },
        (true, true) => html! { span.badge.good { "verified" } },
    }
}

/// A member's hosts, each with its state (both ways), linking to the contact's hosts page.
fn member_hosts(contacts: &[backchannel_client::ContactView], name: &str, side: &str) -> Markup {
    let Some(c) = contacts.iter().find(|c| c.name == name && c.side == side) else {
        return html! {};
    };
    let mut hosts: Vec<&str> = Vec::new();
    for r in &c.routes {
        if !hosts.contains(&r.relay.as_str()) {
            hosts.push(&r.relay);
        }
    }
    html! {
        ul.hosts {
            @for h in &hosts {
                li {
                    code { (words::host(h)) } " "
                    @for r in [Direction::Out, Direction::In].iter().filter_map(|d| super::routes::pick(&c.routes, h, *d)) {
                        (super::routes::way_badge(r, &c.name))
                    }
                }
            }
        }
        a href={ "/contacts/" (seg(&contact_ref(c))) "/routes" } { "Hosts" span.visually-hidden { " of " (peer(&c.name)) } }
    }
}

fn render_members(engine: &Engine, name: &str, problem: Option<&Problem>) -> Response {
    let view = match engine.channel(name) {
        Ok(v) => v,
        Err(e) => return failure("Channel", Nav::Channels, &e),
    };
    let contacts = engine.contacts().unwrap_or_default();
    let hotline = engine.channel_hotline(name).ok().flatten();
    let shown = Shown(problem);
    let s = seg(name);
    let creator = we_created(&view);
    let outside: Vec<_> = contacts
        .iter()
        .filter(|c| !view.members.iter().any(|m| m.name == c.name && m.side == c.side))
        .collect();
    let body = html! {
        (channel_head(name, &view, Tab::Members))
        section #live data-src={ "/channels/" (s) "/members" } aria-labelledby="members-h" {
            @if let Some(h) = &hotline { (super::routes::line(engine, &view, h)) }
            h2 #members-h { "Members" }
            (shown.error("remove"))
            table {
                thead { tr { th scope="col" { "Member" } th scope="col" { "Role" } th scope="col" { "Safety number" } th scope="col" { "State" } th scope="col" { "Hosts" }
                    @if creator { th scope="col" { span.visually-hidden { "Actions" } } } } }
                tbody {
                    @for m in &view.members {
                        tr {
                            td { (who(&m.name, &m.side)) @if m.you { " — you" } @if m.creator { " — creator" } }
                            td { (words::role(m.role)) }
                            td { @if let Some(sn) = &m.safety_number { code.safety { (sn) } } }
                            td { @if !m.you { (link_state(m.connected, m.verified)) } }
                            td { @if !m.you { (member_hosts(&contacts, &m.name, &m.side)) } }
                            @if creator {
                                td { @if !m.creator {
                                    form method="post" action={ "/channels/" (s) "/members/remove" } {
                                        input type="hidden" name="member" value={ (m.name) "@" (m.side) };
                                        button.secondary type="submit" { "Remove " span.visually-hidden { (peer(&m.name)) } }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        }
        @if creator {
            section.card aria-labelledby="add-h" {
                h2 #add-h { "Add a member" }
                @if outside.is_empty() {
                    p { "Every contact of yours is a member already. " a href="/contacts" { "Invite someone" } " first." }
                } @else {
                    form method="post" action={ "/channels/" (s) "/members" } id="add" {
                        (shown.error("add"))
                        label for="contact" { "Contact" }
                        select #contact name="contact" {
                            @for c in &outside { option value=(contact_ref(c)) { (peer(&c.name)) " (" (peer(&c.side)) ")" } }
                        }
                        label for="role" { "Role" }
                        select #role name="role" {
                            option value="principal" { "Principal: speaks for a side" }
                            option value="intermediary" { "Intermediary" }
                            option value="observer" { "Observer: reads only" }
                        }
                        button type="submit" { "Add" }
                    }
                }
            }
        } @else {
            p.hint { "Only the channel's creator adds and removes members." }
        }
    };
    layout::answer(problem, layout::page("Members", Nav::Channels, body))
}

fn parse_role(text: &str) -> Role {
    match text {
        "intermediary" => Role::Intermediary,
        "observer" => Role::Observer,
        _ => Role::Principal,
    }
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
    match engine.channel_add(&name, fields.get("contact"), parse_role(fields.get("role"))).await {
        Ok(_) => layout::see_other(&format!("/channels/{}/members", seg(&name))),
        Err(e) => render_members(&engine, &name, Some(&Problem::engine("add", &e, &fields))),
    }
}

pub async fn remove(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    match engine.channel_remove(&name, fields.get("member")).await {
        Ok(_) => layout::see_other(&format!("/channels/{}/members", seg(&name))),
        Err(e) => render_members(&engine, &name, Some(&Problem::engine("remove", &e, &fields))),
    }
}
