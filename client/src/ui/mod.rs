//! `pluis ui`: the case coordinator's questions in a browser, served on
//! the coordinator's own machine (127.0.0.1, a random port) and asked of
//! their node over mutual TLS with their certificate, exactly as `pluis
//! match` does: the node's trust model does not change, and the key
//! never enters a browser.
//!
//! The usual attacks on a local web page, and what stops each:
//! * another local user or page guessing its way in: a single-use launch
//!   link (valid [`session::LAUNCH_VALID`]) exchanged for an `HttpOnly`,
//!   `SameSite=Strict` session cookie; without it, no page with data;
//! * DNS rebinding: every request whose `Host` is not exactly
//!   `127.0.0.1:PORT` or `localhost:PORT` is refused;
//! * cross-site requests: every POST must come with this page's `Origin`;
//! * injected script, framing, caching, leaking referrers: a
//!   Content-Security-Policy without inline script or style, frame
//!   ancestors none, `Cache-Control: no-store`, `Referrer-Policy:
//!   no-referrer`, `X-Content-Type-Options: nosniff` on every response;
//! * answers left behind: results live in memory only; the stop button
//!   or an idle timeout ends the session and the program.
//!
//! The UI is its own module over three calls of the Coordinator service
//! (status, purposes, match), so a node could host it later behind an
//! organisation's own login.

mod form;
mod pages;
mod session;
pub mod text;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form as Posted, Router};
use pluis_proto::pb::Subject;
use pluis_transport::tls::TlsIdentity;

use form::Form;
use session::{Access, Asked, Sessions, COOKIE};
use text::Lang;

/// The largest request body: a case file and the form around it.
const MAX_BODY: usize = 4 * form::MAX_CASE_FILE;

/// Minutes a launch link is valid.
pub const LAUNCH_MINUTES: u64 = session::LAUNCH_VALID.as_secs() / 60;

/// What the UI serves and whom it asks.
pub struct UiOptions {
    /// The coordinator's own node.
    pub node: String,
    /// The coordinator's identity.
    pub identity: TlsIdentity,
    /// How long a session may sit idle.
    pub idle: Duration,
}

/// A started UI.
pub struct Started {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The one-time launch link.
    pub launch: String,
    /// Serves until the session ends.
    pub serving: tokio::task::JoinHandle<anyhow::Result<()>>,
}

struct Ui {
    node: String,
    identity: TlsIdentity,
    sessions: Sessions,
    /// `127.0.0.1:PORT` and `localhost:PORT`.
    hosts: [String; 2],
    stop: tokio::sync::Notify,
}

type Shared = Arc<Ui>;

/// The security headers every response carries.
const HEADERS: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Binds 127.0.0.1 on a random port and serves the UI until the session
/// ends (stop button, idle timeout, or a launch link left unused).
pub async fn start(options: UiOptions) -> anyhow::Result<Started> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (sessions, token) = Sessions::new(options.idle)?;
    let ui = Arc::new(Ui {
        node: options.node,
        identity: options.identity,
        sessions,
        hosts: [
            format!("127.0.0.1:{}", addr.port()),
            format!("localhost:{}", addr.port()),
        ],
        stop: tokio::sync::Notify::new(),
    });
    let app = Router::new()
        .route("/launch", get(launch))
        .route("/", get(overview))
        .route("/vraag", get(new_question).post(check_question))
        .route("/vraag/terug", post(back_to_question))
        .route("/vraag/stel", post(ask))
        .route("/antwoord/{n}", get(show_answer))
        .route("/vragen", get(mine))
        .route("/uitleg", get(about))
        .route("/screening", get(screening_page).post(start_screening))
        .route("/taal", get(language))
        .route("/stop", post(stop))
        .route("/static/pluis.css", get(stylesheet))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(ui.clone(), guard))
        .with_state(ui.clone());
    let until = ui.clone();
    let serving = tokio::spawn(async move {
        let ended = async move {
            loop {
                tokio::select! {
                    () = until.stop.notified() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        if until.sessions.ended() {
                            return;
                        }
                    }
                }
            }
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(ended)
            .await?;
        Ok(())
    });
    Ok(Started {
        addr,
        launch: format!("http://127.0.0.1:{}/launch?token={token}", addr.port()),
        serving,
    })
}

/// `pluis ui`: serves the UI, prints its launch link first, and runs
/// until the session ends.
pub async fn run(args: crate::cli::UiArgs) -> anyhow::Result<()> {
    let identity = args.tls.load(pluis_proto::Role::Coordinator)?;
    let options = UiOptions {
        node: args.node,
        identity,
        idle: Duration::from_secs(args.idle_minutes.saturating_mul(60)),
    };
    let then = format!(
        "open this link once, within {LAUNCH_MINUTES} minutes; the page stops with its stop button, after {} idle minutes, or with Ctrl-C",
        args.idle_minutes
    );
    serve_until_stopped(options, &[then], args.open).await
}

/// Starts the UI, prints `ui on LINK` (Ctrl-C's and SIGTERM's handlers
/// installed before, so a stop right after the line is a clean one), then
/// the lines `then`; opens the link in the system's browser if `open`;
/// serves until the session ends or a stop is asked for.
pub async fn serve_until_stopped(
    options: UiOptions,
    then: &[String],
    open: bool,
) -> anyhow::Result<()> {
    let started = start(options).await?;
    let stop = pluis_transport::process::stop_requested()?;
    println!("ui on {}", started.launch);
    for line in then {
        println!("{line}");
    }
    if open && !open_browser(&started.launch) {
        println!("could not open a browser; open the link above yourself");
    }
    tokio::select! {
        served = started.serving => served.context("the page")??,
        _ = stop => {}
    }
    Ok(())
}

/// Opens `link` in the system's browser (`open` on macOS, `start` on
/// Windows, else `xdg-open`); whether one could be started. The printed
/// link serves if not.
fn open_browser(link: &str) -> bool {
    let (program, args): (&str, &[&str]) = if cfg!(target_os = "macos") {
        ("open", &[])
    } else if cfg!(windows) {
        // `start`'s first quoted argument is a window title.
        ("cmd", &["/C", "start", ""])
    } else {
        ("xdg-open", &[])
    };
    std::process::Command::new(program)
        .args(args)
        .arg(link)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// A page with nothing in it but `text`, with `status`.
fn refused(status: StatusCode, lang: Lang, text: &str) -> Response {
    (status, Html(pages::message(lang, text))).into_response()
}

/// Every request: the Host check, the Origin check for POSTs, the
/// session (except the launch link and the stylesheet), and the security
/// headers on whatever goes out.
async fn guard(
    State(ui): State<Shared>,
    request: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let lang = ui.sessions.lang();
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let mut response = if !host.is_some_and(|h| ui.hosts.iter().any(|allowed| allowed == h)) {
        refused(StatusCode::MISDIRECTED_REQUEST, lang, lang.t("denied"))
    } else if request.method() == Method::POST && !same_origin(&ui, headers) {
        refused(StatusCode::FORBIDDEN, lang, lang.t("denied"))
    } else {
        let path = request.uri().path();
        let open = path == "/launch" || path == "/static/pluis.css";
        if open || ui.sessions.check(cookie(headers).as_deref()) == Access::Granted {
            next.run(request).await
        } else {
            refused(StatusCode::FORBIDDEN, lang, lang.t("denied"))
        }
    };
    for (name, value) in HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Whether a POST comes from this page: its `Origin` names this page, or
/// — since `Referrer-Policy: no-referrer` makes a browser send `Origin:
/// null` with a form — it says `null` and the browser's own fetch
/// metadata (`Sec-Fetch-Site`, which no page can set) says same-origin.
fn same_origin(ui: &Ui, headers: &HeaderMap) -> bool {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    match value(header::ORIGIN) {
        Some("null") => {
            value(header::HeaderName::from_static("sec-fetch-site")) == Some("same-origin")
        }
        Some(origin) => origin
            .strip_prefix("http://")
            .is_some_and(|o| ui.hosts.iter().any(|h| h == o)),
        None => false,
    }
}

/// The session cookie's value, if sent.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

async fn launch(
    State(ui): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let lang = ui.sessions.lang();
    let token = query.get("token").map(String::as_str).unwrap_or("");
    match ui.sessions.launch(token) {
        Some(session) => {
            let cookie = format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/");
            let mut response = Redirect::to("/").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        None => refused(StatusCode::FORBIDDEN, lang, lang.t("denied")),
    }
}

/// The node's error, in a page (the node's own words: never a value the
/// coordinator typed, which the node does not repeat).
fn node_error(lang: Lang, error: &anyhow::Error) -> Response {
    let text = format!("{error:#}");
    (
        StatusCode::BAD_GATEWAY,
        Html(pages::page(
            lang,
            lang.t("title"),
            maud::html! { p class="errors" { (text) } },
        )),
    )
        .into_response()
}

async fn overview(State(ui): State<Shared>) -> Response {
    let lang = ui.sessions.lang();
    match crate::coordinator::status::fetch(&ui.node, &ui.identity).await {
        Ok(status) => Html(pages::status(lang, &status)).into_response(),
        Err(e) => node_error(lang, &e),
    }
}

async fn purposes(ui: &Ui) -> anyhow::Result<Vec<pluis_proto::pb::PurposeInfo>> {
    crate::coordinator::status::purposes(&ui.node, &ui.identity).await
}

/// The page `page` makes of the node's purposes (asked now: a policy
/// reload shows at once), or the node's error.
async fn with_purposes(
    ui: &Ui,
    page: impl FnOnce(Lang, &[pluis_proto::pb::PurposeInfo]) -> String,
) -> Response {
    let lang = ui.sessions.lang();
    match purposes(ui).await {
        Ok(list) => Html(page(lang, &list)).into_response(),
        Err(e) => node_error(lang, &e),
    }
}

async fn new_question(State(ui): State<Shared>) -> Response {
    with_purposes(&ui, |lang, list| {
        pages::question(lang, list, &Form::default(), &[])
    })
    .await
}

/// The posted form and the subjects it asks about; or the form again
/// with its error summary (422), or the node's error.
async fn checked(
    ui: &Ui,
    fields: &HashMap<String, String>,
) -> Result<(Form, Vec<Subject>), Response> {
    let lang = ui.sessions.lang();
    let form = Form::from_fields(fields);
    let list = purposes(ui).await.map_err(|e| node_error(lang, &e))?;
    let names: Vec<String> = list.iter().map(|p| p.name.clone()).collect();
    match form.subjects(&names, lang, crate::clock::now_utc().date()) {
        Ok(subjects) => Ok((form, subjects)),
        Err(errors) => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(pages::question(lang, &list, &form, &errors)),
        )
            .into_response()),
    }
}

/// Checks the form: back to it with an error summary, or on to the
/// confirmation step.
async fn check_question(State(ui): State<Shared>, posted: Multipart) -> Response {
    let lang = ui.sessions.lang();
    let fields = match Form::read_multipart(posted).await {
        Ok(fields) => fields,
        Err(_) => return refused(StatusCode::BAD_REQUEST, lang, lang.t("bad_form")),
    };
    match checked(&ui, &fields).await {
        Ok((form, subjects)) => Html(pages::confirm(lang, &form, subjects.len())).into_response(),
        Err(page) => page,
    }
}

async fn back_to_question(
    State(ui): State<Shared>,
    Posted(fields): Posted<HashMap<String, String>>,
) -> Response {
    with_purposes(&ui, |lang, list| {
        pages::question(lang, list, &Form::from_fields(&fields), &[])
    })
    .await
}

/// Asks the node; keeps the answer in memory; shows it.
async fn ask(
    State(ui): State<Shared>,
    Posted(fields): Posted<HashMap<String, String>>,
) -> Response {
    let lang = ui.sessions.lang();
    let (form, subjects) = match checked(&ui, &fields).await {
        Ok(checked) => checked,
        Err(page) => return page,
    };
    let persons = subjects.len();
    match crate::coordinator::matching::query(&ui.node, &ui.identity, &form.purpose, subjects).await
    {
        Ok(answer) => {
            let n = ui.sessions.keep(Asked {
                at_ms: crate::clock::now_ms(),
                case: form.case.clone(),
                purpose: form.purpose.clone(),
                persons,
                answer,
            });
            Redirect::to(&format!("/antwoord/{n}")).into_response()
        }
        Err(e) => node_error(lang, &e),
    }
}

async fn show_answer(State(ui): State<Shared>, Path(n): Path<usize>) -> Response {
    let lang = ui.sessions.lang();
    match ui.sessions.asked_at(n) {
        Some(asked) => Html(pages::answer(lang, &asked)).into_response(),
        None => refused(StatusCode::NOT_FOUND, lang, lang.t("mine.none")),
    }
}

async fn mine(State(ui): State<Shared>) -> Html<String> {
    Html(pages::mine(ui.sessions.lang(), &ui.sessions.asked()))
}

async fn screening_page(State(ui): State<Shared>) -> Response {
    screening_shown(&ui, false).await
}

/// The screening page, as it is now; `busy`: a start was refused because
/// one is still running.
async fn screening_shown(ui: &Ui, busy: bool) -> Response {
    with_purposes(ui, |lang, list| {
        pages::screening(lang, list, ui.sessions.screening().as_ref(), busy)
    })
    .await
}

/// Starts a screening on its own task (one at a time); the page then
/// shows its progress and, once done, its answer.
async fn start_screening(
    State(ui): State<Shared>,
    Posted(fields): Posted<HashMap<String, String>>,
) -> Response {
    let lang = ui.sessions.lang();
    let list = match purposes(&ui).await {
        Ok(list) => list,
        Err(e) => return node_error(lang, &e),
    };
    let purpose = fields.get("purpose").cloned().unwrap_or_default();
    let min_domains = fields
        .get("min_domains")
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| (1..=pluis_proto::taxonomy::LifeDomain::ALL.len() as u32).contains(n));
    let allowed = list.iter().any(|p| p.name == purpose && p.screening);
    let (true, Some(min_domains)) = (allowed, min_domains) else {
        return refused(StatusCode::UNPROCESSABLE_ENTITY, lang, lang.t("bad_form"));
    };
    let started = ui.sessions.start_screening(session::Screening {
        at_ms: crate::clock::now_ms(),
        purpose: purpose.clone(),
        min_domains,
        progress: None,
        outcome: None,
    });
    if !started {
        return screening_shown(&ui, true).await;
    }
    let running = ui.clone();
    tokio::spawn(async move {
        let ui = &running;
        let outcome = crate::coordinator::screen::run_reporting(
            &ui.node,
            &ui.identity,
            &purpose,
            min_domains,
            |p| ui.sessions.screening_progress(p),
        )
        .await;
        ui.sessions
            .screening_done(outcome.map_err(|e| format!("{e:#}")));
    });
    Redirect::to("/screening").into_response()
}

async fn about(State(ui): State<Shared>) -> Html<String> {
    Html(pages::about(ui.sessions.lang()))
}

async fn language(
    State(ui): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Redirect {
    let lang = match query.get("lang").map(String::as_str) {
        Some("en") => Lang::En,
        _ => Lang::Nl,
    };
    ui.sessions.set_lang(lang);
    Redirect::to("/")
}

async fn stop(State(ui): State<Shared>) -> Response {
    let lang = ui.sessions.lang();
    ui.sessions.end();
    ui.stop.notify_one();
    refused(StatusCode::OK, lang, lang.t("stopped"))
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("pluis.css"),
    )
        .into_response()
}
