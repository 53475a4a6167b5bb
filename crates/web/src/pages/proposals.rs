//! Proposals: put a text to ratification, read it, ratify it behind a deliberate confirmation
//! (this is the one thing Backchannel signs), see who has, and export the agreement as a zip
//! or into a folder.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use backchannel_client::{ChannelView, Engine, ProposalView, Role};
use maud::{Markup, html};

use super::{Tab, channel_head, engine, failure};
use crate::app::App;
use crate::layout::{self, Fields, Nav, Problem, Shown, seg};
use crate::words::{peer, peer_block};

pub async fn list(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    match engine(&app) {
        Ok(engine) => render(&engine, &name, None, None),
        Err(r) => *r,
    }
}

fn render(engine: &Engine, name: &str, problem: Option<&Problem>, done: Option<&str>) -> Response {
    let (view, proposals) = match (engine.channel(name), engine.proposals(name)) {
        (Ok(v), Ok(p)) => (v, p),
        (Err(e), _) | (_, Err(e)) => return failure("Proposals", Nav::Channels, &e),
    };
    let shown = Shown(problem);
    let body = html! {
        (channel_head(name, &view, Tab::Proposals))
        p.sub { "A proposal is a text put to the sides that must sign it. Ratifying signs it with your seal: "
            "unlike notes, a ratification can be checked by anyone, and cannot be denied later." }
        @if let Some(done) = done { div.done role="status" { (done) } }
        section #live data-src={ "/channels/" (seg(name)) "/proposals" } aria-labelledby="proposals-h" {
            h2 #proposals-h { "Proposals" }
            @if proposals.is_empty() { p { "No proposals yet." } }
            @for p in &proposals { (proposal(engine, name, p, &shown)) }
        }
        (propose_form(name, &view, &shown))
    };
    layout::answer(problem, layout::page("Proposals", Nav::Channels, body))
}

fn proposal(engine: &Engine, name: &str, p: &ProposalView, shown: &Shown<'_>) -> Markup {
    let short = &p.id[..12.min(p.id.len())];
    let base = format!("/channels/{}/proposals/{}", seg(name), p.id);
    let text = engine.agreement(name, &p.id).ok().map(|a| String::from_utf8_lossy(&a.text).into_owned());
    let ratify_form = format!("ratify-{short}");
    let export_form = format!("export-{short}");
    html! {
        article.card.proposal id={ "proposal-" (short) } {
            h3 { bdi { (peer(&p.title)) } }
            p.hint { "Text fingerprint (sha256) " code { (short) "…" } }
            p { "To be signed by: " (p.signatories.iter().map(|s| peer(s)).collect::<Vec<_>>().join(", ")) "." }
            @if p.missing.is_empty() {
                p.status { span.badge.good { "ratified by every side" } }
            } @else {
                p.status { "Ratified by: " @if p.ratified_by.is_empty() { "nobody yet" } @else { (p.ratified_by.iter().map(|s| peer(s)).collect::<Vec<_>>().join(", ")) }
                    ". Still to ratify: " span.missing { (p.missing.iter().map(|s| peer(s)).collect::<Vec<_>>().join(", ")) } "." }
            }
            @if !p.unconfirmed.is_empty() {
                p { "Signed under a key you know only through the intermediary (not counted): "
                    (p.unconfirmed.iter().map(|s| peer(s)).collect::<Vec<_>>().join(", ")) "." }
            }
            @if let Some(text) = &text {
                details {
                    summary { "Read the text" }
                    pre.paper { (peer_block(text)) }
                }
            }
            form.ratify method="post" action={ (base) "/ratify" } id=(ratify_form) {
                (shown.error(&ratify_form))
                label.choice {
                    input type="checkbox" name="understood" value="yes" required;
                    " I have read the text. " strong { "This signs; it cannot be denied later." }
                }
                button.danger type="submit" { "Ratify “" (peer(&p.title)) "”" }
            }
            @if p.missing.is_empty() {
                div.export {
                    a.button href={ (base) "/agreement.zip" } download { "Download the agreement (zip)" }
                    form method="post" action={ (base) "/export" } id=(export_form) {
                        (shown.error(&export_form))
                        label for={ "dir-" (short) } { "Or save it into a new folder on this computer" }
                        input id={ "dir-" (short) } name="dir" required placeholder="/home/you/agreement" value=(shown.value(&export_form, "dir"));
                        button.secondary type="submit" { "Save into the folder" }
                    }
                }
            }
        }
    }
}

fn propose_form(name: &str, view: &ChannelView, shown: &Shown<'_>) -> Markup {
    let mut sides: Vec<&str> = Vec::new();
    for m in view.members.iter().filter(|m| m.role == Role::Principal) {
        if !sides.contains(&m.side.as_str()) {
            sides.push(&m.side);
        }
    }
    html! {
        section.card aria-labelledby="propose-h" {
            h2 #propose-h { "Propose a text" }
            form method="post" action={ "/channels/" (seg(name)) "/proposals" } id="propose" data-error=[shown.failed("propose")] {
                (shown.error("propose"))
                label for="title" { "Title" }
                input #title name="title" required value=(shown.value("propose", "title")) data-draft={ "proposal-title:" (name) };
                fieldset {
                    legend { "Sides that must sign" }
                    @for s in &sides {
                        label.choice { input type="checkbox" name="signatories" value=(s) checked; " " bdi { (peer(s)) } }
                    }
                }
                label for="file" { "Read the text from a file (optional)" }
                input #file type="file" accept=".txt,.md,text/plain" data-into="proposal-text";
                label for="proposal-text" { "Text" }
                textarea #proposal-text name="text" rows="10" required data-draft={ "proposal:" (name) } { (shown.value("propose", "text")) }
                button type="submit" { "Propose for ratification" }
            }
        }
    }
}

pub async fn propose(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let text = fields.get("text").replace("\r\n", "\n");
    match engine.propose(&name, fields.get("title").trim(), &text, &fields.all("signatories")).await {
        Ok(_) => layout::see_other(&format!("/channels/{}/proposals", seg(&name))),
        Err(e) => render(&engine, &name, Some(&Problem::engine("propose", &e, &fields)), None),
    }
}

pub async fn ratify(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let form = format!("ratify-{}", &id[..12.min(id.len())]);
    if fields.get("understood") != "yes" {
        let p = Problem::new(form, "Tick the box first: ratifying signs the text for good.", &fields);
        return render(&engine, &name, Some(&p), None);
    }
    match engine.ratify(&name, &id).await {
        Ok(_) => layout::see_other(&format!("/channels/{}/proposals", seg(&name))),
        Err(e) => render(&engine, &name, Some(&Problem::engine(form, &e, &fields)), None),
    }
}

/// The export's file name: the title in plain letters.
fn file_stem(title: &str) -> String {
    let stem: String = title
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if stem.is_empty() { "agreement".into() } else { stem }
}

pub async fn zip(State(app): State<Arc<App>>, Path((name, id)): Path<(String, String)>) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let agreement = match engine.agreement(&name, &id) {
        Ok(a) => a,
        Err(e) => return failure("Export", Nav::Channels, &e),
    };
    let bytes = agreement.files().map_err(|e| e.to_string()).and_then(|files| crate::archive::zip(&files));
    match bytes {
        Ok(bytes) => {
            let disposition = format!("attachment; filename=\"{}.zip\"", file_stem(&agreement.title));
            (
                [
                    (header::CONTENT_TYPE, "application/zip".to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                bytes,
            )
                .into_response()
        }
        Err(why) => {
            let e = backchannel_client::ClientError::Agreement { why };
            failure("Export", Nav::Channels, &e)
        }
    }
}

pub async fn folder(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let form = format!("export-{}", &id[..12.min(id.len())]);
    let files = match engine.agreement(&name, &id).and_then(|a| Ok(a.files()?)) {
        Ok(f) => f,
        Err(e) => return render(&engine, &name, Some(&Problem::engine(form, &e, &fields)), None),
    };
    let dir = std::path::PathBuf::from(fields.get("dir").trim());
    match crate::archive::write_folder(&dir, &files) {
        Ok(()) => {
            let done = format!(
                "Saved into {}. Anyone can check it there with “Check an agreement”, or with ssh-keygen -Y verify.",
                dir.display()
            );
            render(&engine, &name, None, Some(&done))
        }
        Err(why) => render(&engine, &name, Some(&Problem::new(form, why, &fields)), None),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_names_are_plain() {
        assert_eq!(super::file_stem("Framework for talks!"), "framework-for-talks");
        assert_eq!(super::file_stem("../"), "agreement");
    }
}
