//! Non-papers: versioned, unattributed drafts; a version's text, the changes between two
//! versions side by side or inline, and a new version from the page or a file.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use backchannel_client::{Engine, PaperVersion};
use maud::{Markup, html};
use serde::Deserialize;
use similar::{ChangeTag, TextDiff};

use super::{Tab, channel_head, engine, failure};
use crate::app::App;
use crate::layout::{self, Fields, Nav, Problem, Shown, seg, time};
use crate::words::{peer, peer_block};

/// Versions by title, in the order the engine lists them.
fn by_title(papers: Vec<PaperVersion>) -> BTreeMap<String, Vec<PaperVersion>> {
    let mut out: BTreeMap<String, Vec<PaperVersion>> = BTreeMap::new();
    for p in papers {
        out.entry(p.title.clone()).or_default().push(p);
    }
    out
}

pub async fn list(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    match engine(&app) {
        Ok(engine) => render_list(&engine, &name, None),
        Err(r) => *r,
    }
}

fn render_list(engine: &Engine, name: &str, problem: Option<&Problem>) -> Response {
    let (view, papers) = match (engine.channel(name), engine.nonpapers(name)) {
        (Ok(v), Ok(p)) => (v, p),
        (Err(e), _) | (_, Err(e)) => return failure("Non-papers", Nav::Channels, &e),
    };
    let shown = Shown(problem);
    let titles = by_title(papers);
    let s = seg(name);
    let body = html! {
        (channel_head(name, &view, Tab::Papers))
        p.sub { "A non-paper is a draft nobody signs and nobody is named on: each version shows what changed, not who changed it." }
        section #live data-src={ "/channels/" (s) "/papers" } aria-labelledby="papers-h" {
            h2 #papers-h { "Drafts" }
            @if titles.is_empty() { p { "No non-papers yet." } }
            @for (title, versions) in &titles {
                h3 { bdi { (peer(title)) } }
                ul {
                    @for v in versions {
                        li { a href={ "/channels/" (s) "/papers/" (seg(title)) "?v=" (v.version) } { "Version " (v.version) }
                            " · " (v.bytes) " bytes · " (time(v.at)) }
                    }
                }
                @if versions.len() > 1 {
                    @let last = versions.len();
                    p { a href={ "/channels/" (s) "/papers/" (seg(title)) "?from=" (last - 1) "&to=" (last) } {
                        "What changed from version " (last - 1) " to " (last) } }
                }
            }
        }
        (put_form(name, &titles, &shown))
    };
    layout::answer(problem, layout::page("Non-papers", Nav::Channels, body))
}

fn put_form(name: &str, titles: &BTreeMap<String, Vec<PaperVersion>>, shown: &Shown<'_>) -> Markup {
    html! {
        section.card aria-labelledby="put-h" {
            h2 #put-h { "Put a draft, or a new version" }
            form method="post" action={ "/channels/" (seg(name)) "/papers" } id="put" data-error=[shown.failed("put")] {
                (shown.error("put"))
                label for="title" { "Title (an existing title makes a new version)" }
                input #title name="title" required list="titles" value=(shown.value("put", "title")) data-draft={ "paper-title:" (name) };
                datalist #titles { @for t in titles.keys() { option value=(t) {} } }
                label for="file" { "Read the text from a file (optional)" }
                input #file type="file" accept=".txt,.md,text/plain" data-into="paper-text";
                label for="paper-text" { "Text" }
                textarea #paper-text name="text" rows="12" required data-draft={ "paper:" (name) } { (shown.value("put", "text")) }
                button type="submit" { "Put this version" }
            }
        }
    }
}

pub async fn put(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let title = fields.get("title").trim().to_owned();
    // Browsers send line breaks as CR LF; the draft is kept as the author's lines.
    let text = fields.get("text").replace("\r\n", "\n");
    match engine.nonpaper_put(&name, &title, &text).await {
        Ok((version, _, _)) => {
            let to = if version > 1 {
                format!("/channels/{}/papers/{}?from={}&to={version}", seg(&name), seg(&title), version - 1)
            } else {
                format!("/channels/{}/papers/{}?v={version}", seg(&name), seg(&title))
            };
            layout::see_other(&to)
        }
        Err(e) => render_list(&engine, &name, Some(&Problem::engine("put", &e, &fields))),
    }
}

#[derive(Deserialize)]
pub struct Which {
    v: Option<u32>,
    from: Option<u32>,
    to: Option<u32>,
}

pub async fn show(
    State(app): State<Arc<App>>,
    Path((name, title)): Path<(String, String)>,
    Query(which): Query<Which>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let view = match engine.channel(&name) {
        Ok(v) => v,
        Err(e) => return failure("Non-paper", Nav::Channels, &e),
    };
    let content = match (which.from, which.to) {
        (Some(a), Some(b)) => diff_page(&engine, &name, &title, a, b),
        _ => version_page(&engine, &name, &title, which.v),
    };
    let content = match content {
        Ok(c) => c,
        Err(e) => return failure("Non-paper", Nav::Channels, &e),
    };
    let body = html! {
        (channel_head(&name, &view, Tab::Papers))
        p { a href={ "/channels/" (seg(&name)) "/papers" } { "All non-papers" } }
        (content)
    };
    layout::ok(layout::page("Non-paper", Nav::Channels, body))
}

fn version_page(
    engine: &Engine,
    name: &str,
    title: &str,
    v: Option<u32>,
) -> Result<Markup, backchannel_client::ClientError> {
    let (version, text) = engine.nonpaper(name, title, v)?;
    Ok(html! {
        h2 { bdi { (peer(title)) } ", version " (version) }
        @if version > 1 {
            p { a href={ "/channels/" (seg(name)) "/papers/" (seg(title)) "?from=" (version - 1) "&to=" (version) } {
                "What changed from version " (version - 1) } }
        }
        pre.paper { (peer_block(&text)) }
    })
}

fn diff_page(
    engine: &Engine,
    name: &str,
    title: &str,
    a: u32,
    b: u32,
) -> Result<Markup, backchannel_client::ClientError> {
    let (_, old) = engine.nonpaper(name, title, Some(a))?;
    let (_, new) = engine.nonpaper(name, title, Some(b))?;
    let diff = TextDiff::from_lines(&old, &new);
    let changes: Vec<(ChangeTag, String)> =
        diff.iter_all_changes().map(|c| (c.tag(), c.value().trim_end_matches('\n').to_owned())).collect();
    let same = changes.iter().all(|(t, _)| *t == ChangeTag::Equal);
    Ok(html! {
        h2 { bdi { (peer(title)) } ": version " (a) " → version " (b) }
        @if same { p { "The two versions are the same." } }
        p.legend { span.del-mark { "− removed" } " " span.ins-mark { "+ added" } }
        h3 { "Side by side" }
        (side_by_side(&changes, a, b))
        h3 { "Inline" }
        (inline(&changes))
    })
}

/// One side of a row: a line and whether it was removed, added or kept (or nothing).
type Half<'a> = Option<(ChangeTag, &'a str)>;

/// Rows of (old line, new line): removals and additions of one change sit side by side.
fn rows(changes: &[(ChangeTag, String)]) -> Vec<(Half<'_>, Half<'_>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < changes.len() {
        if changes[i].0 == ChangeTag::Equal {
            let line = changes[i].1.as_str();
            out.push((Some((ChangeTag::Equal, line)), Some((ChangeTag::Equal, line))));
            i += 1;
            continue;
        }
        let dels: Vec<&str> = changes[i..]
            .iter()
            .take_while(|(t, _)| *t == ChangeTag::Delete)
            .map(|(_, l)| l.as_str())
            .collect();
        i += dels.len();
        let ins: Vec<&str> = changes[i..]
            .iter()
            .take_while(|(t, _)| *t == ChangeTag::Insert)
            .map(|(_, l)| l.as_str())
            .collect();
        i += ins.len();
        for k in 0..dels.len().max(ins.len()) {
            out.push((
                dels.get(k).map(|l| (ChangeTag::Delete, *l)),
                ins.get(k).map(|l| (ChangeTag::Insert, *l)),
            ));
        }
    }
    out
}

fn cell(side: Half<'_>) -> Markup {
    match side {
        Some((ChangeTag::Delete, l)) => html! { td.del { del { (peer(l)) } } },
        Some((ChangeTag::Insert, l)) => html! { td.ins { ins { (peer(l)) } } },
        Some((_, l)) => html! { td { (peer(l)) } },
        None => html! { td.none {} },
    }
}

fn side_by_side(changes: &[(ChangeTag, String)], a: u32, b: u32) -> Markup {
    html! {
        table.diff.side {
            thead { tr { th scope="col" { "Version " (a) } th scope="col" { "Version " (b) } } }
            tbody { @for (old, new) in rows(changes) { tr { (cell(old)) (cell(new)) } } }
        }
    }
}

fn inline(changes: &[(ChangeTag, String)]) -> Markup {
    html! {
        div.diff.inline {
            @for (tag, line) in changes {
                @match tag {
                    ChangeTag::Delete => { div.del { span.visually-hidden { "removed: " } del { "− " (peer(line)) } } }
                    ChangeTag::Insert => { div.ins { span.visually-hidden { "added: " } ins { "+ " (peer(line)) } } }
                    ChangeTag::Equal => { div { "  " (peer(line)) } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lines_pair_up_side_by_side() {
        let changes = vec![
            (ChangeTag::Equal, "a".to_owned()),
            (ChangeTag::Delete, "b".to_owned()),
            (ChangeTag::Insert, "B".to_owned()),
            (ChangeTag::Insert, "C".to_owned()),
        ];
        let r = rows(&changes);
        assert_eq!(r.len(), 3);
        assert_eq!(r[1], (Some((ChangeTag::Delete, "b")), Some((ChangeTag::Insert, "B"))));
        assert_eq!(r[2], (None, Some((ChangeTag::Insert, "C"))));
    }
}
