//! Probes: propose one (a single value, or packages) with a plain statement of what each side
//! will learn and of the budget left; accept or decline; enter the private input (posted to
//! the engine, kept in its encrypted store, never shown again); status and log.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use backchannel_client::{
    Asker, ChannelView, DEFAULT_BUDGET, Engine, ProbeBudget, ProbeInputSpec, ProbeRequest, ProbeSpec,
    ProbeStatus, ProbeView, ProbesView, Role,
};
use backchannel_redline::ProbeKind;
use maud::{Markup, html};

use super::{Tab, channel_head, engine, failure, me, who};
use crate::app::App;
use crate::layout::{self, Fields, Nav, Problem, Shown, seg, time};
use crate::words::{self, peer};

pub async fn show(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    match engine(&app) {
        Ok(engine) => render(&engine, &name, None),
        Err(r) => *r,
    }
}

fn render(engine: &Engine, name: &str, problem: Option<&Problem>) -> Response {
    let (view, probes) = match (engine.channel(name), engine.probes(name)) {
        (Ok(v), Ok(p)) => (v, p),
        (Err(e), _) | (_, Err(e)) => return failure("Probes", Nav::Channels, &e),
    };
    let shown = Shown(problem);
    let body = html! {
        (channel_head(name, &view, Tab::Probes))
        p.sub { "A probe tells both sides whether their private positions overlap, and nothing more. "
            "Each side's number or list stays on its own computer." }
        section #live data-src={ "/channels/" (seg(name)) "/probes" } aria-labelledby="budget-h" {
            h2 #budget-h { "Budget" }
            (budget(&probes))
            h2 { "Probes" }
            (shown.error("probe"))
            @if probes.probes.is_empty() { p { "No probes yet." } }
            @for p in probes.probes.iter().rev() { (probe(name, p, &shown)) }
        }
        @if probes.probes_allowed { (propose_form(name, &view, &probes, &shown)) }
    };
    layout::answer(problem, layout::page("Probes", Nav::Channels, body))
}

fn budget(v: &ProbesView) -> Markup {
    html! {
        @if !v.probes_allowed {
            p { strong { "Probes are not allowed in the " (peer(&v.phase)) " phase." } }
        }
        @match v.budget {
            Some(b) => {
                p { "Agreed budget: " (b.per_issue) " probes per issue and " (b.per_phase) " per phase. "
                    "Used in the " (peer(&v.phase)) " phase: " (v.used_in_phase) " of " (b.per_phase)
                    ", so " strong { (b.per_phase.saturating_sub(v.used_in_phase)) " left" } "." }
                @if !v.issues.is_empty() {
                    ul { @for i in &v.issues { li { "On “" (peer(&i.issue)) "”: " (i.used) " used, " (i.left) " left." } } }
                }
            }
            None => {
                p { "No budget is agreed yet: the first probe that is accepted fixes it for the channel (by default "
                    (DEFAULT_BUDGET.per_issue) " per issue and " (DEFAULT_BUDGET.per_phase) " per phase). "
                    "A budget stops either side from narrowing in on the other's bottom line one probe at a time." }
            }
        }
    }
}

fn probe(name: &str, p: &ProbeView, shown: &Shown<'_>) -> Markup {
    let short = &p.id[..8.min(p.id.len())];
    let base = format!("/channels/{}/probes/{}", seg(name), p.id);
    let wants_input = !p.input_given && matches!(p.status, ProbeStatus::Accepted | ProbeStatus::Running)
        || (!p.input_given && p.proposed_by_you && p.status == ProbeStatus::Proposed);
    let answerable = p.status == ProbeStatus::Proposed && !p.proposed_by_you;
    html! {
        article.card.probe id={ "probe-" (short) } data-status=(p.status.name()) {
            h3 { "Probe " code { (short) } " with " (who(&p.with, &p.with_side)) }
            p { (words::question(&p.terms)) }
            ul.learns { @for line in words::learns(&p.terms) { li { (line) } } }
            p.status { strong { (p.status.name()) } ": " span.detail { (words::probe_status(p)) } }
            p.hint { @if p.proposed_by_you { "Proposed by you" } @else { "Proposed by them" } " · "
                @if p.you_ask { "you ask" } @else { "they ask" } " · phase " (peer(&p.phase)) " · " (time(p.at)) }
            @if answerable {
                form.inline method="post" action={ (base) "/answer" } {
                    button type="submit" name="answer" value="accept" { "Accept" }
                    " "
                    button.secondary type="submit" name="answer" value="decline" { "Decline" }
                }
            }
            @if wants_input { (input_form(&base, short, p, shown)) }
            @if p.input_given && !matches!(p.status, ProbeStatus::Done { .. }) {
                p.hint { "Your private input is in your encrypted store; it is never sent and never shown." }
            }
        }
    }
}

fn input_form(base: &str, short: &str, p: &ProbeView, shown: &Shown<'_>) -> Markup {
    let form = format!("input-{short}");
    html! {
        form method="post" action={ (base) "/input" } id=(form) autocomplete="off" {
            (shown.error(&form))
            @match &p.terms.kind {
                ProbeKind::Single(s) => {
                    label for={ "value-" (short) } { "Your number, from 0 to " (s.max) " (private: it never leaves this computer)" }
                    input id={ "value-" (short) } name="value" type="password" inputmode="numeric" required autocomplete="off";
                }
                ProbeKind::Package(k) => {
                    label for={ "packages-" (short) } { "Your acceptable packages, one per line, at most " (k.cap)
                        " (private). Options in the order: "
                        (k.space.issues.iter().map(|i| peer(&i.issue)).collect::<Vec<_>>().join(", ")) }
                    textarea id={ "packages-" (short) } name="packages" rows="4" required autocomplete="off" spellcheck="false" {}
                }
            }
            button type="submit" { "Enter my private input" }
        }
    }
}

fn propose_form(name: &str, view: &ChannelView, probes: &ProbesView, shown: &Shown<'_>) -> Markup {
    let my_side = me(view).map(|m| m.side.clone()).unwrap_or_default();
    let others: Vec<_> =
        view.members.iter().filter(|m| !m.you && m.side != my_side && m.role != Role::Observer).collect();
    let v = |f| shown.value("propose", f);
    let kind_is = |k: &str| if v("kind").is_empty() { k == "single" } else { v("kind") == k };
    html! {
        section.card aria-labelledby="propose-h" {
            h2 #propose-h { "Propose a probe" }
            @if others.is_empty() {
                p { "A probe runs between two sides; nobody of another side is a member here yet." }
            } @else {
                form method="post" action={ "/channels/" (seg(name)) "/probes" } id="propose" {
                    (shown.error("propose"))
                    label for="with" { "With" }
                    select #with name="with" {
                        @for m in &others { option value={ (m.name) "@" (m.side) } { (peer(&m.name)) " (" (peer(&m.side)) ")" } }
                    }
                    fieldset {
                        legend { "Kind" }
                        label.choice { input type="radio" name="kind" value="single" checked[kind_is("single")];
                            " One number: is there a zone of agreement? Both sides learn yes or no, and nothing else." }
                        label.choice { input type="radio" name="kind" value="packages" checked[kind_is("packages")];
                            " Packages: which combinations are acceptable to both? Both sides learn the packages on both lists, and nothing about the rest." }
                    }
                    fieldset {
                        legend { "One number" }
                        label for="issue" { "Issue" }
                        input #issue name="issue" value=(v("issue")) placeholder="months until withdrawal";
                        label for="max" { "Largest possible value" }
                        input #max name="max" inputmode="numeric" value=(v("max")) placeholder="120";
                        label for="gives" { "Whose number is the most they can give" }
                        select #gives name="gives" { option value="me" { "mine" } option value="them" { "theirs" } }
                        p.hint { "The other side's number is then the least it can take." }
                    }
                    fieldset {
                        legend { "Packages" }
                        label for="issues" { "Issues and their options, one issue per line: issue = option, option, …" }
                        textarea #issues name="issues" rows="3" placeholder="monitor = UN, OSCE, joint" data-draft={ "probe-issues:" (name) } { (v("issues")) }
                        label for="cap" { "How many packages each side may list (fewer than all the combinations)" }
                        input #cap name="cap" inputmode="numeric" value=(v("cap"));
                    }
                    label for="asker" { "Who asks (learns the answer first, then tells the other side)" }
                    select #asker name="asker" {
                        option value="me" { "me" } option value="them" { "them" } option value="either" { "either side" }
                    }
                    @if probes.budget.is_none() {
                        fieldset {
                            legend { "Budget for the channel (fixed by the first accepted probe)" }
                            label for="per_issue" { "Probes per issue" }
                            input #per_issue name="per_issue" inputmode="numeric" value=(DEFAULT_BUDGET.per_issue);
                            label for="per_phase" { "Probes per phase" }
                            input #per_phase name="per_phase" inputmode="numeric" value=(DEFAULT_BUDGET.per_phase);
                        }
                    }
                    button type="submit" { "Propose" }
                }
            }
        }
    }
}

/// The request the form describes, or what is missing from it.
fn request(fields: &Fields) -> Result<ProbeRequest, &'static str> {
    let spec = if fields.get("kind") == "packages" {
        let mut issues = Vec::new();
        for line in fields.get("issues").lines().filter(|l| !l.trim().is_empty()) {
            let (issue, options) =
                line.split_once('=').ok_or("Write each issue as: issue = option, option, …")?;
            let options: Vec<String> =
                options.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect();
            issues.push((issue.trim().to_owned(), options));
        }
        let cap =
            fields.get("cap").trim().parse().map_err(|_| "Say how many packages each side may list.")?;
        ProbeSpec::Package { issues, cap }
    } else {
        let max = fields
            .get("max")
            .trim()
            .parse()
            .map_err(|_| "Give the largest possible value as a whole number.")?;
        let gives = if fields.get("gives") == "them" { "them" } else { "me" };
        let takes = if gives == "me" { "them" } else { "me" };
        ProbeSpec::Single {
            issue: fields.get("issue").trim().to_owned(),
            max,
            gives: gives.into(),
            takes: takes.into(),
        }
    };
    let asker = match fields.get("asker") {
        "them" => Asker::Them,
        "either" => Asker::Either,
        _ => Asker::Me,
    };
    let budget = match (fields.get("per_issue").trim(), fields.get("per_phase").trim()) {
        ("", "") => None,
        (i, p) => Some(ProbeBudget {
            per_issue: i.parse().map_err(|_| "The budget is two whole numbers.")?,
            per_phase: p.parse().map_err(|_| "The budget is two whole numbers.")?,
        }),
    };
    Ok(ProbeRequest { with: fields.get("with").to_owned(), spec, asker, budget })
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
    let req = match request(&fields) {
        Ok(r) => r,
        Err(why) => return render(&engine, &name, Some(&Problem::new("propose", why, &fields))),
    };
    match engine.probe_propose(&name, &req).await {
        Ok(_) => layout::see_other(&format!("/channels/{}/probes", seg(&name))),
        Err(e) => render(&engine, &name, Some(&Problem::engine("propose", &e, &fields))),
    }
}

pub async fn answer(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let result = match fields.get("answer") {
        "decline" => engine.probe_decline(&name, &id).await,
        _ => engine.probe_accept(&name, &id).await,
    };
    match result {
        Ok(_) => layout::see_other(&format!("/channels/{}/probes", seg(&name))),
        Err(e) => render(&engine, &name, Some(&Problem::engine("probe", &e, &fields))),
    }
}

pub async fn input(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let engine = match engine(&app) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let fields = Fields(fields);
    let form = format!("input-{}", &id[..8.min(id.len())]);
    let spec = if fields.has("packages") {
        ProbeInputSpec::Packages(
            fields
                .get("packages")
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.split(',').map(|o| o.trim().to_owned()).collect())
                .collect(),
        )
    } else {
        match fields.get("value").trim().parse() {
            Ok(v) => ProbeInputSpec::Value(v),
            Err(_) => {
                let p = Problem::new(form, "Your input is a whole number within the probe's range.", &fields);
                return render(&engine, &name, Some(&p));
            }
        }
    };
    match engine.probe_input(&name, &id, &spec).await {
        Ok(_) => layout::see_other(&format!("/channels/{}/probes", seg(&name))),
        Err(e) => render(&engine, &name, Some(&Problem::engine(form, &e, &fields))),
    }
}
