//! The page shell (navigation, status line, skip link), form helpers and the problems shown
//! beside the form that caused them. Every value is spliced in by maud, which escapes it.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// A form's fields as posted (repeated names kept, e.g. several recipients).
#[derive(Debug, Default, Clone)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, v)| k == name && !v.trim().is_empty()).map(|(_, v)| v.clone()).collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The fields a page may show again (never a secret).
    fn shown(&self) -> Self {
        Fields(self.0.iter().filter(|(k, _)| !SECRET_FIELDS.contains(&k.as_str())).cloned().collect())
    }
}

/// Fields that never go back to the page.
const SECRET_FIELDS: [&str; 4] = ["passphrase", "again", "value", "packages"];

/// What went wrong with a form, shown beside it, with what was typed (secrets left out).
#[derive(Debug, Clone)]
pub struct Problem {
    pub form: String,
    pub message: String,
    pub values: Fields,
    pub status: StatusCode,
}

impl Problem {
    pub fn new(form: impl Into<String>, message: impl Into<String>, fields: &Fields) -> Self {
        Self {
            form: form.into(),
            message: message.into(),
            values: fields.shown(),
            status: StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    pub fn engine(form: impl Into<String>, error: &backchannel_client::ClientError, fields: &Fields) -> Self {
        let mut p = Self::new(form, crate::words::error(error), fields);
        p.status = crate::words::status(error);
        p
    }
}

/// Lookups a form does on the problem of the page, if it is its own.
pub struct Shown<'a>(pub Option<&'a Problem>);

impl<'a> Shown<'a> {
    fn mine(&self, form: &str) -> Option<&'a Problem> {
        self.0.filter(|p| p.form == form)
    }

    /// What the user typed in `field` of `form` (empty unless that form failed).
    pub fn value(&self, form: &str, field: &str) -> &'a str {
        self.mine(form).map_or("", |p| p.values.get(field))
    }

    /// The error box of `form`, if it failed.
    pub fn error(&self, form: &str) -> Markup {
        match self.mine(form) {
            Some(p) => html! {
                div.problem id={ "problem-" (form) } role="alert" tabindex="-1" { (p.message) }
            },
            None => html! {},
        }
    }

    /// `data-error` on a failed form keeps its draft (the script clears drafts of forms sent).
    pub fn failed(&self, form: &str) -> Option<&'static str> {
        self.mine(form).map(|_| "1")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Setup,
    Contacts,
    Channels,
    Agreements,
}

/// A whole page.
pub fn page(title: &str, nav: Nav, body: Markup) -> Markup {
    let link = |href: &str, label: &str, this: Nav| {
        html! { a href=(href) aria-current=[(nav == this).then_some("page")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Backchannel" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header.top {
                    span.brand { "Backchannel" }
                    @if nav != Nav::Setup {
                        nav aria-label="Main" {
                            (link("/contacts", "Contacts", Nav::Contacts))
                            (link("/channels", "Channels", Nav::Channels))
                            (link("/agreements/verify", "Check an agreement", Nav::Agreements))
                        }
                    }
                    p #connection role="status" aria-live="polite" {}
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

pub fn ok(markup: Markup) -> Response {
    respond(StatusCode::OK, markup)
}

/// The status a page with `problem` is answered with.
pub fn answer(problem: Option<&Problem>, markup: Markup) -> Response {
    respond(problem.map_or(StatusCode::OK, |p| p.status), markup)
}

/// After a successful form: back to `to` (a GET, so a reload does not send it again).
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(axum::http::header::LOCATION, to.to_owned())]).into_response()
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A timestamp as UTC text; the script rewrites it in the reader's own time zone.
pub fn time(ms: u64) -> Markup {
    let iso = crate::words::iso_time(ms);
    html! { time datetime=(iso) { (crate::words::time(ms)) } }
}

pub fn unauthorized() -> Response {
    let body = html! {
        h1 { "Open the app from its address" }
        p { "This page needs the address that " code { "backchannel ui" } " printed when it started "
            "(it begins with " code { "http://127.0.0.1" } " and carries a " code { "token" } "). "
            "Copy that whole line into the address bar." }
    };
    respond(StatusCode::UNAUTHORIZED, page("Not signed in", Nav::Setup, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("Delegation A/x?"), "Delegation%20A%2Fx%3F");
        assert_eq!(seg("é"), "%C3%A9");
    }

    #[test]
    fn secrets_never_go_back() {
        let fields = Fields(vec![("passphrase".into(), "s3cret".into()), ("name".into(), "Alice".into())]);
        let p = Problem::new("setup", "no", &fields);
        assert_eq!(p.values.get("passphrase"), "");
        assert_eq!(p.values.get("name"), "Alice");
    }
}
