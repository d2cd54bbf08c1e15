//! The pages, as maud templates compiled into the binary: plain HTML
//! forms, no script, one stylesheet; labels above fields, an error
//! summary that links to each field, table headers marked up, and never
//! colour alone (a probable match says so in words, not only in tint).

use maud::{html, Markup, DOCTYPE};
use pluis_proto::pb::{peer_outcome::State, MatchResponse, PurposeInfo, StatusResponse};
use pluis_proto::taxonomy::LifeDomain;

use super::form::{Form, PERSON_ROWS};
use super::session::{Asked, Screening};
use super::text::Lang;

/// A whole page: head, navigation, `body`.
pub fn page(lang: Lang, heading: &str, body: Markup) -> String {
    page_refreshing(lang, heading, body, None)
}

/// [`page`], reloaded by the browser every `refresh` seconds (while a
/// screening runs: no script needed).
fn page_refreshing(lang: Lang, heading: &str, body: Markup, refresh: Option<u32>) -> String {
    let t = |k| lang.t(k);
    let other = match lang {
        Lang::Nl => "en",
        Lang::En => "nl",
    };
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (heading) " — " (t("title")) }
                link rel="stylesheet" href="/static/pluis.css";
            }
            body {
                header {
                    nav aria-label=(t("title")) {
                        ul {
                            li { a href="/" { (t("nav.status")) } }
                            li { a href="/vraag" { (t("nav.question")) } }
                            li { a href="/vragen" { (t("nav.mine")) } }
                            li { a href="/screening" { (t("nav.screening")) } }
                            li { a href="/uitleg" { (t("nav.about")) } }
                            li { a href={ "/taal?lang=" (other) } { (t("nav.lang")) } }
                        }
                        form method="post" action="/stop" {
                            button type="submit" { (t("nav.stop")) }
                        }
                    }
                }
                main {
                    h1 { (heading) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

/// A page that shows nothing but a message (no session, stopped).
pub fn message(lang: Lang, text: &str) -> String {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                title { (lang.t("title")) }
                link rel="stylesheet" href="/static/pluis.css";
            }
            body { main { p { (text) } } }
        }
    }
    .into_string()
}

/// The overview: this node and whether each partner is reachable now.
pub fn status(lang: Lang, status: &StatusResponse) -> String {
    let t = |k| lang.t(k);
    let body = html! {
        p { (t("status.node")) ": " strong { (status.org) } }
        h2 { (t("status.partners")) }
        @if status.peers.is_empty() {
            p { (t("status.none")) }
        } @else {
            table {
                thead { tr { th scope="col" { (t("status.partner")) } th scope="col" { (t("status.reachable")) } } }
                tbody {
                    @for peer in &status.peers {
                        tr {
                            th scope="row" { (peer.org) }
                            td { @if peer.reachable { (t("status.yes")) } @else { (t("status.no")) } }
                        }
                    }
                }
            }
        }
    };
    page(lang, t("status.heading"), body)
}

/// The new question's form, with `errors` (field id, message) in a
/// summary at the top.
pub fn question(
    lang: Lang,
    purposes: &[PurposeInfo],
    form: &Form,
    errors: &[(String, String)],
) -> String {
    let t = |k| lang.t(k);
    let file_persons = (!form.case_file.is_empty())
        .then(|| form.file_persons(crate::clock::now_utc().date()))
        .flatten();
    // A field's message, shown at the field as well as in the summary.
    let error_of = |id: &str| {
        errors
            .iter()
            .find(|(field, _)| field == id)
            .map(|(_, m)| m.as_str())
    };
    let described = |id: &str, hint: Option<&str>| {
        let ids: Vec<String> = hint
            .map(str::to_owned)
            .into_iter()
            .chain(error_of(id).map(|_| format!("{id}-error")))
            .collect();
        (!ids.is_empty()).then(|| ids.join(" "))
    };
    let body = html! {
        @if !errors.is_empty() {
            div class="errors" role="alert" aria-labelledby="error-summary" {
                h2 id="error-summary" { (t("question.errors")) }
                ul { @for (field, message) in errors { li { a href={ "#" (field) } { (message) } } } }
            }
        }
        p { (t("question.intro")) }
        form method="post" action="/vraag" enctype="multipart/form-data" {
            div class="field" {
                label for="case" { (t("question.case")) }
                span class="hint" id="case-hint" { (t("question.case.hint")) }
                (field_error("case", error_of("case")))
                input id="case" name="case" type="text" maxlength="64" value=(form.case)
                    aria-invalid=[error_of("case").map(|_| "true")]
                    aria-describedby=[described("case", Some("case-hint"))];
            }
            fieldset {
                legend { (t("question.purpose")) }
                (field_error("purpose-0", error_of("purpose-0")))
                @for (i, p) in purposes.iter().enumerate() {
                    div class="choice" {
                        input type="radio" id={ "purpose-" (i) } name="purpose" value=(p.name)
                            checked[form.purpose == p.name || (form.purpose.is_empty() && purposes.len() == 1)];
                        label for={ "purpose-" (i) } {
                            (p.name) " — " (t("question.basis")) ": " (p.legal_basis)
                        }
                    }
                }
            }
            @for row in 0..PERSON_ROWS {
                @let person = form.persons.get(row).cloned().unwrap_or_default();
                fieldset class="person" {
                    legend { (t("question.person")) " " (row + 1) }
                    @for (key, name, value, width) in [
                        ("question.bsn", "bsn", &person.bsn, "12"),
                        ("question.surname", "surname", &person.surname, "40"),
                        ("question.initial", "initial", &person.initial, "3"),
                        ("question.birth", "birth", &person.birth, "12"),
                        ("question.given", "given", &person.given, "30"),
                    ] {
                        @let id = format!("{name}-{row}");
                        div class="field" {
                            label for=(id) { (t(key)) }
                            (field_error(&id, error_of(&id)))
                            input id=(id) name=(id) type="text"
                                size=(width) maxlength="100" value=(value) autocomplete="off"
                                aria-invalid=[error_of(&id).map(|_| "true")]
                                aria-describedby=[described(&id, None)];
                        }
                    }
                }
            }
            div class="field" {
                label for="casefile" { (t("question.file")) }
                span class="hint" id="casefile-hint" { (t("question.file.hint")) }
                @if let Some(persons) = file_persons {
                    p class="notice" { (t("question.file.loaded")) ": " (persons) }
                    input type="hidden" name="casetext" value=(form.case_file);
                    div class="choice" {
                        input type="checkbox" id="casedrop" name="casedrop" value="1";
                        label for="casedrop" { (t("question.file.drop")) }
                    }
                }
                (field_error("casefile", error_of("casefile")))
                input id="casefile" name="casefile" type="file" accept=".csv,text/csv"
                    aria-invalid=[error_of("casefile").map(|_| "true")]
                    aria-describedby=[described("casefile", Some("casefile-hint"))];
            }
            button type="submit" { (t("question.next")) }
        }
    };
    page(lang, t("question.heading"), body)
}

/// A field's error message at the field (`ID-error`, which the field's
/// `aria-describedby` names), if it has one.
fn field_error(id: &str, message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            span class="field-error" id={ (id) "-error" } { (message) }
        }
    }
}

/// The confirmation step: the question is logged at every partner asked.
pub fn confirm(lang: Lang, form: &Form, persons: usize) -> String {
    let t = |k| lang.t(k);
    let body = html! {
        p class="notice" { (t("confirm.logged")) }
        dl {
            dt { (t("question.case")) } dd { (form.case) }
            dt { (t("question.purpose")) } dd { (form.purpose) }
            dt { (t("confirm.persons")) } dd { (persons) }
        }
        form method="post" action="/vraag/stel" {
            (form.hidden())
            button type="submit" { (t("confirm.send")) }
        }
        form method="post" action="/vraag/terug" {
            (form.hidden())
            button type="submit" class="secondary" { (t("confirm.back")) }
        }
    };
    page(lang, t("confirm.heading"), body)
}

fn state_key(state: i32) -> &'static str {
    match State::try_from(state) {
        Ok(State::Answered) => "state.answered",
        Ok(State::Denied) => "state.denied",
        Ok(State::Unreachable) => "state.unreachable",
        Ok(State::TimedOut) => "state.timed_out",
        _ => "state.failed",
    }
}

/// The answer: persons and the whole family against the life domains,
/// which partner flags what, the advice, each partner's state.
pub fn answer(lang: Lang, asked: &Asked) -> String {
    let t = |k| lang.t(k);
    let response: &MatchResponse = &asked.answer;
    let rows: Vec<_> = response
        .subjects
        .iter()
        .map(|s| (s.label.clone(), s))
        .chain(
            response
                .case_total
                .iter()
                .map(|s| (t("answer.family").to_owned(), s)),
        )
        .collect();
    let tiers: Vec<(String, String, String)> = response
        .subjects
        .iter()
        .flat_map(|s| {
            s.matches
                .iter()
                .filter(|m| m.tier != "exact")
                .map(move |m| (s.label.clone(), m.org.clone(), m.tier.clone()))
        })
        .collect();
    let body = html! {
        p { (t("question.case")) ": " strong { (asked.case) } " · " (t("question.purpose")) ": " (asked.purpose) }
        div class="wide" role="region" aria-label=(t("answer.table")) tabindex="0" { table class="answer" {
            thead {
                tr {
                    th scope="col" { (t("answer.person")) }
                    th scope="col" { (t("answer.domains")) }
                    th scope="col" { (t("answer.advice")) }
                    @for d in LifeDomain::ALL { th scope="col" { (t(domain_key(d))) } }
                }
            }
            tbody {
                @for (label, s) in &rows {
                    tr {
                        th scope="row" { (label) }
                        td { (s.domain_count) }
                        td class="advice" { (advice(lang, &s.assessment)) }
                        @for d in LifeDomain::ALL {
                            td {
                                @if let Some(hit) = s.domains.iter().find(|h| h.domain == d.code()) {
                                    ul {
                                        @for org in &hit.orgs {
                                            @if hit.probable_orgs.contains(org) {
                                                li class="probable" { (org) " (" (t("answer.probable.mark")) ")" }
                                            } @else {
                                                li { (org) }
                                            }
                                        }
                                    }
                                    @if !hit.signals.is_empty() {
                                        small { (signal_codes(&hit.signals)) }
                                    }
                                } @else {
                                    (nothing(lang))
                                }
                            }
                        }
                    }
                }
            }
        } }
        @if !tiers.is_empty() {
            h2 { (t("answer.tiers")) }
            ul class="tiers" {
                @for (label, org, tier) in &tiers {
                    li class=(tier) {
                        (label) " — " (org) ": "
                        @if tier == "probable" { (t("answer.probable")) } @else { (t("answer.possible")) }
                    }
                }
            }
        }
        (partner_states(lang, &response.peers))
        p class="notice" { (t("answer.no_answer")) }
        p class="print-hint" { (t("answer.print")) }
    };
    page(lang, t("answer.heading"), body)
}

fn domain_key(domain: LifeDomain) -> &'static str {
    match domain {
        LifeDomain::Safety => "domain.safety",
        LifeDomain::Education => "domain.education",
        LifeDomain::Health => "domain.health",
        LifeDomain::Social => "domain.social",
        LifeDomain::Finances => "domain.finances",
        LifeDomain::Housing => "domain.housing",
        LifeDomain::YouthCare => "domain.youth_care",
    }
}

/// This session's questions, without identifiers.
pub fn mine(lang: Lang, asked: &[Asked]) -> String {
    let t = |k| lang.t(k);
    let body = html! {
        @if asked.is_empty() {
            p { (t("mine.none")) }
        } @else {
            table {
                thead { tr {
                    th scope="col" { (t("mine.time")) }
                    th scope="col" { (t("mine.case")) }
                    th scope="col" { (t("mine.purpose")) }
                    th scope="col" { (t("confirm.persons")) }
                    th scope="col" { span class="visually-hidden" { (t("mine.open")) } }
                } }
                tbody {
                    @for (i, a) in asked.iter().enumerate().rev() {
                        tr {
                            td { (time_of(a.at_ms)) }
                            th scope="row" { (a.case) }
                            td { (a.purpose) }
                            td { (a.persons) }
                            td { a href={ "/antwoord/" (i) } { (t("mine.open")) } }
                        }
                    }
                }
            }
        }
    };
    page(lang, t("mine.heading"), body)
}

fn time_of(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000).map_or_else(
        |_| String::new(),
        |t| format!("{:02}:{:02}:{:02} UTC", t.hour(), t.minute(), t.second()),
    )
}

/// Hits shown on the screening page; the rest are counted.
const SCREEN_SHOWN: usize = 500;

/// Screening: this organisation's own cases whose signals, with every
/// partner's, reach a number of life domains; its progress while it
/// runs (the page reloads itself), then its answer.
pub fn screening(
    lang: Lang,
    purposes: &[PurposeInfo],
    current: Option<&Screening>,
    busy: bool,
) -> String {
    let t = |k| lang.t(k);
    let running = current.is_some_and(|s| s.outcome.is_none());
    // Only the purposes this node lets its coordinators screen for.
    let purposes: Vec<&PurposeInfo> = purposes.iter().filter(|p| p.screening).collect();
    let body = html! {
        p { (t("screening.intro")) }
        @if busy {
            p class="errors" role="alert" { (t("screening.busy")) }
        }
        @if let Some(s) = current {
            section aria-labelledby="screening-now" {
                h2 id="screening-now" {
                    @if running { (t("screening.running")) } @else { (t("screening.done")) }
                }
                p { (t("question.purpose")) ": " (s.purpose) " · " (t("screening.min")) ": " (s.min_domains) " · " (time_of(s.at_ms)) }
                @if running {
                    @let (done, partners) = s.progress.as_ref().map_or((0, 0), |p| (p.partners_done, p.partners));
                    div role="status" {
                        label for="screening-progress" {
                            (t("screening.partners_done")) ": " (done) " " (t("screening.of")) " " (partners)
                        }
                        progress id="screening-progress" max=(partners.max(1)) value=(done) { (done) "/" (partners) }
                        @if let Some(p) = &s.progress {
                            p { (t("screening.keys")) ": " (p.keys) }
                        }
                        p class="hint" { (t("screening.wait")) }
                    }
                }
                @match &s.outcome {
                    Some(Ok(answer)) => {
                        p { (t("screening.keys")) ": " (answer.keys_screened) }
                        @if answer.hits.is_empty() {
                            p { (t("screening.none")) }
                        } @else {
                            div class="wide" role="region" aria-label=(t("screening.hits")) tabindex="0" {
                                table {
                                    caption { (t("screening.hits")) ": " (answer.hits.len()) }
                                    thead { tr {
                                        th scope="col" { (t("screening.ref")) }
                                        th scope="col" { (t("answer.domains")) }
                                        @for d in LifeDomain::ALL { th scope="col" { (t(domain_key(d))) } }
                                    } }
                                    tbody {
                                        @for hit in answer.hits.iter().take(SCREEN_SHOWN) {
                                            tr {
                                                th scope="row" { (hit.local_ref) }
                                                td { (hit.domain_count) }
                                                @for d in LifeDomain::ALL {
                                                    td {
                                                        @match hit.domains.iter().find(|h| h.domain == d.code()) {
                                                            Some(h) => { (h.orgs.join(", ")) }
                                                            None => { (nothing(lang)) }
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                            @if answer.hits.len() > SCREEN_SHOWN {
                                p { (t("screening.more")) }
                            }
                        }
                        (partner_states(lang, &answer.peers))
                    }
                    Some(Err(error)) => {
                        p class="errors" { (t("screening.failed")) ": " (error) }
                    }
                    None => {}
                }
            }
        }
        @if purposes.is_empty() {
            p class="notice" { (t("screening.off")) }
        } @else if !running {
            form method="post" action="/screening" {
                fieldset {
                    legend { (t("question.purpose")) }
                    @for (i, p) in purposes.iter().enumerate() {
                        div class="choice" {
                            input type="radio" id={ "purpose-" (i) } name="purpose" value=(p.name) checked[i == 0];
                            label for={ "purpose-" (i) } {
                                (p.name) " — " (t("question.basis")) ": " (p.legal_basis)
                            }
                        }
                    }
                }
                div class="field" {
                    label for="min_domains" { (t("screening.min")) }
                    select id="min_domains" name="min_domains" {
                        @for n in 1..=LifeDomain::ALL.len() {
                            option value=(n) selected[n == 3] { (n) }
                        }
                    }
                }
                p class="notice" { (t("screening.logged")) }
                button type="submit" { (t("screening.start")) }
            }
        }
    };
    page_refreshing(lang, t("screening.heading"), body, running.then_some(2))
}

/// The node's advice in the page's language: the default rule's steps
/// are translated; advice an organisation configured itself is shown as
/// it wrote it.
fn advice(lang: Lang, text: &str) -> &str {
    let key = match text {
        "discuss in a multidisciplinary case meeting" => "advice.discuss",
        "watch" => "advice.watch",
        "no combined signal" => "advice.none",
        _ => return text,
    };
    lang.t(key)
}

/// Signal codes, comma-separated, each allowed to break after its
/// underscores (`picked_up_by_unrelated_adult` would widen its column).
fn signal_codes(codes: &[String]) -> Markup {
    html! {
        @for (i, code) in codes.iter().enumerate() {
            @if i > 0 { ", " }
            @for (j, part) in code.split('_').enumerate() {
                @if j > 0 { "_" wbr; }
                (part)
            }
        }
    }
}

/// An empty cell: a dash to see, words to hear.
fn nothing(lang: Lang) -> Markup {
    html! {
        span class="none" aria-hidden="true" { "—" }
        span class="visually-hidden" { (lang.t("answer.nothing")) }
    }
}

/// Each partner's state, as a table, with why where it matters to the
/// reader: a refusal (the partner's own words: a policy rule), or an
/// answer to the exact keys only.
fn partner_states(lang: Lang, peers: &[pluis_proto::pb::PeerOutcome]) -> Markup {
    let t = |k| lang.t(k);
    let why = |p: &pluis_proto::pb::PeerOutcome| match State::try_from(p.state) {
        Ok(State::Answered) if p.detail.starts_with("exact keys only") => {
            Some(t("answer.exact_only").to_owned())
        }
        Ok(State::Denied) if !p.detail.is_empty() => Some(p.detail.clone()),
        _ => None,
    };
    html! {
        h2 { (t("answer.partners")) }
        table {
            thead { tr {
                th scope="col" { (t("status.partner")) }
                th scope="col" { (t("answer.state")) }
                th scope="col" { (t("answer.why")) }
            } }
            tbody {
                @for p in peers {
                    tr {
                        th scope="row" { (p.org) }
                        td { (t(state_key(p.state))) }
                        td { @if let Some(why) = why(p) { (why) } }
                    }
                }
            }
        }
    }
}

/// What Pluis shares and what it does not.
pub fn about(lang: Lang) -> String {
    let body = html! { p { (lang.t("about.body")) } };
    page(lang, lang.t("about.heading"), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pluis_proto::pb::PeerOutcome;

    #[test]
    fn a_partners_refusal_and_an_exact_only_answer_say_why_and_an_answer_says_nothing() {
        let peer = |org: &str, state: State, detail: &str| PeerOutcome {
            org: org.into(),
            state: state as i32,
            detail: detail.into(),
            ..Default::default()
        };
        let html = partner_states(
            Lang::Nl,
            &[
                peer("school", State::Answered, ""),
                peer(
                    "youthcare",
                    State::Answered,
                    "exact keys only: the partner's policy rule max_possible_keys_per_day refused the spelling variants today",
                ),
                peer("police", State::Denied, "policy rule purposes: not allowed"),
                peer("healthcare", State::Unreachable, "transport error: connection refused"),
            ],
        )
        .into_string();
        assert!(html.contains("Alleen precies gelijke gegevens"), "{html}");
        assert!(html.contains("policy rule purposes"), "{html}");
        assert!(
            !html.contains("transport error"),
            "no technical detail: {html}"
        );
        assert!(
            !html.contains("max_possible"),
            "the Dutch words, not the rule: {html}"
        );
    }

    #[test]
    fn screening_is_offered_only_for_purposes_the_node_allows_it_for() {
        let purpose = |name: &str, screening| PurposeInfo {
            name: name.into(),
            legal_basis: "art. 4".into(),
            screening,
        };
        let off = screening(Lang::Nl, &[purpose("case-only", false)], None, false);
        assert!(
            off.contains("geen enkel doel") && !off.contains("action=\"/screening\""),
            "{off}"
        );
        let on = screening(
            Lang::Nl,
            &[purpose("case-only", false), purpose("screen-too", true)],
            None,
            false,
        );
        assert!(
            on.contains("value=\"screen-too\"") && !on.contains("value=\"case-only\""),
            "{on}"
        );
    }
}
