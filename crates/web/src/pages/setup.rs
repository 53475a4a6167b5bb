//! The first screen: create the party (name, side, passphrase) or unlock it. The passphrase
//! goes to the engine and never back to the page.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::response::Response;
use backchannel_client::Passphrase;
use maud::{Markup, html};
use serde::Deserialize;

use crate::app::App;
use crate::layout::{self, Fields, Nav, Problem, Shown};

#[derive(Deserialize, Default)]
pub struct Next {
    next: Option<String>,
}

/// Only a path of this app (never another site) is followed after unlocking.
fn next_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/contacts".to_owned(),
    }
}

pub async fn show(State(app): State<Arc<App>>, Query(next): Query<Next>) -> Response {
    if app.engine().is_ok() {
        return layout::see_other(&next_path(next.next.as_deref()));
    }
    render(&app, next.next.as_deref(), None)
}

fn render(app: &App, next: Option<&str>, problem: Option<&Problem>) -> Response {
    let shown = Shown(problem);
    let body = if app.exists() { unlock_form(app, next, &shown) } else { create_form(next, &shown) };
    layout::answer(problem, layout::page("Start", Nav::Setup, body))
}

fn unlock_form(app: &App, next: Option<&str>, shown: &Shown<'_>) -> Markup {
    html! {
        h1 { "Unlock your party" }
        p { "Your keys and conversations are kept encrypted in " code { (app.home.display().to_string()) } "." }
        form.card method="post" action="/setup/unlock" id="unlock" {
            (shown.error("unlock"))
            input type="hidden" name="next" value=(next.unwrap_or_default());
            label for="passphrase" { "Passphrase" }
            input #passphrase type="password" name="passphrase" required autocomplete="current-password" autofocus;
            button type="submit" { "Unlock" }
        }
    }
}

fn create_form(next: Option<&str>, shown: &Shown<'_>) -> Markup {
    let v = |field| shown.value("create", field);
    html! {
        h1 { "Create your party" }
        p { "A party is you, on this computer: your name and the side you speak for, and keys that never leave "
            "this machine. Everything is kept encrypted under a passphrase only you know." }
        form.card method="post" action="/setup/create" id="create" {
            (shown.error("create"))
            input type="hidden" name="next" value=(next.unwrap_or_default());
            label for="name" { "Your name, as your contacts will see it" }
            input #name name="name" required maxlength="64" value=(v("name")) autocomplete="name" autofocus;
            label for="side" { "The side you speak for" }
            input #side name="side" required maxlength="64" value=(v("side")) placeholder="Delegation A" aria-describedby="side-hint";
            p.hint #side-hint { "For example “Delegation A”, or “Mediator” if you are an intermediary." }
            label for="passphrase" { "Passphrase" }
            input #passphrase type="password" name="passphrase" required autocomplete="new-password"
                aria-describedby="strength" data-strength="strength";
            p.hint #strength aria-live="polite" {
                "Use four or more words that do not belong together, or twenty characters or more. "
                "Nobody can recover it for you."
            }
            label for="again" { "The same passphrase again" }
            input #again type="password" name="again" required autocomplete="new-password";
            button type="submit" { "Create" }
        }
    }
}

pub async fn create(State(app): State<Arc<App>>, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let fields = Fields(fields);
    let next = fields.get("next").to_owned();
    let (name, side, pass) = (fields.get("name").trim(), fields.get("side").trim(), fields.get("passphrase"));
    let problem = |message: &str| Problem::new("create", message, &fields);
    if pass.is_empty() {
        return render(
            &app,
            Some(&next),
            Some(&problem("An empty passphrase would leave your keys unprotected.")),
        );
    }
    if pass != fields.get("again") {
        return render(
            &app,
            Some(&next),
            Some(&problem("The two passphrases differ; type the same one twice.")),
        );
    }
    match app.create(Passphrase::new(pass.to_owned()), name.to_owned(), side.to_owned()).await {
        Ok(()) => layout::see_other(&next_path(Some(&next))),
        Err(e) => render(&app, Some(&next), Some(&Problem::engine("create", &e, &fields))),
    }
}

pub async fn unlock(State(app): State<Arc<App>>, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let fields = Fields(fields);
    let next = fields.get("next").to_owned();
    match app.unlock(Passphrase::new(fields.get("passphrase").to_owned())).await {
        Ok(()) => layout::see_other(&next_path(Some(&next))),
        Err(e) => render(&app, Some(&next), Some(&Problem::engine("unlock", &e, &fields))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_our_own_paths_are_followed() {
        assert_eq!(super::next_path(Some("/talk/Bao")), "/talk/Bao");
        assert_eq!(super::next_path(Some("//evil.example")), "/contacts");
        assert_eq!(super::next_path(Some("https://evil.example")), "/contacts");
        assert_eq!(super::next_path(None), "/contacts");
    }
}
