//! `pluis ui` in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) driven over WebDriver, against real nodes with
//! mutual TLS. Launch link → a family's question (typed, then as a case
//! file) → the answer → a screening → the answer on a phone-sized screen
//! and in English → a wrong Host refused → the used launch link gives
//! nothing. Every page is checked with axe-core's WCAG 2.0/2.1 A and AA
//! rules (vendored, `tests/vendor/axe-core`). Saves screenshots of the
//! answer, the screening and the phone-sized answer (`ui-*.png` in the
//! tests' target temp dir).
//!
//! Without chromium/chromedriver the test says so and passes, except
//! under `CI=true`, where it fails: CI installs them.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use pluis_tests::{start_ui, ui_family};

/// chromedriver on a free port, killed when dropped.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn driver() -> Option<Driver> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let driver = Driver(child, port);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(driver);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// axe-core, vendored (see `tests/vendor/axe-core/README.md`).
const AXE: &str = include_str!("../vendor/axe-core/axe.min.js");

/// The browser on the UI: each step as a coordinator takes it. Every
/// failure is the test's failure, so the steps unwrap.
struct Page {
    browser: fantoccini::Client,
    /// `http://127.0.0.1:PORT`.
    base: String,
}

impl Page {
    async fn goto(&self, url: &str) {
        self.browser.goto(url).await.unwrap();
    }

    /// A path of the UI.
    async fn open(&self, path: &str) {
        self.goto(&format!("{}{path}", self.base)).await;
    }

    /// Clicks the element `css` finds (waiting for it).
    async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.unwrap();
    }

    /// Types `text` into the field with id `id` (a path, for a file field).
    async fn type_into(&self, id: &str, text: &str) {
        self.browser
            .find(Locator::Id(id))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }

    /// The text of the element `css` finds, once there is one.
    async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap()
    }

    /// Waits (up to two minutes: a screening's page reloads itself until
    /// it is done) for an element `css` finds.
    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.browser
            .wait()
            .at_most(Duration::from_secs(120))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    async fn script(&self, script: &str) -> serde_json::Value {
        self.browser.execute(script, Vec::new()).await.unwrap()
    }

    /// Runs axe-core's WCAG 2.0/2.1 A and AA rules on the page shown, and
    /// fails naming every rule broken and where.
    async fn assert_accessible(&self, name: &str) {
        let result = self
            .script(&format!(
                "{AXE}\n;return axe.run(document, {{ runOnly: {{ type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }} }}).then(r => [r.passes.length, r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))]);"
            ))
            .await;
        let passes = result[0].as_u64().unwrap_or(0);
        let violations: Vec<&str> = result[1]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        assert!(passes > 0, "{name}: axe ran no check: {result}");
        assert!(
            violations.is_empty(),
            "{name}: WCAG 2.1 AA violations:\n{}",
            violations.join("\n")
        );
    }

    /// Saves what the browser shows as `name` in the tests' target temp dir.
    async fn screenshot(&self, name: &str) {
        let png = self.browser.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&shot, &png).unwrap();
        eprintln!("screenshot: {}", shot.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_family_question_from_launch_link_to_answer_in_headless_chromium() {
    let Some(driver) = driver() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromedriver did not start; CI must have chromium and chromium-driver"
        );
        eprintln!("skipped: no chromedriver (apt install chromium chromium-driver)");
        return;
    };
    let mut c = ui_family("browser").start().await;
    let ui = start_ui(&c, "police").await;
    let port = ui.addr.port();

    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,1100",
                // A name that resolves to this machine but is not the
                // page's own host: DNS rebinding, as a browser does it.
                "--host-resolver-rules=MAP rebind.example 127.0.0.1"
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = match ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
    {
        Ok(browser) => browser,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "headless chromium did not start: {e}"
            );
            eprintln!("skipped: chromium did not start: {e}");
            return;
        }
    };

    let page = Page {
        browser,
        base: format!("http://127.0.0.1:{port}"),
    };

    // The launch link: the overview, in Dutch, with the partners.
    page.goto(&ui.launch).await;
    let body = page.text("main").await;
    assert!(
        body.contains("Overzicht") && body.contains("school"),
        "{body}"
    );
    page.assert_accessible("overview").await;
    for (path, name) in [
        ("/uitleg", "explanation"),
        ("/vragen", "my questions, none yet"),
    ] {
        page.open(path).await;
        page.assert_accessible(name).await;
    }

    // An empty question: the error summary at the top, linking to the field.
    page.open("/vraag").await;
    page.assert_accessible("question form").await;
    page.click("main form button[type=submit]").await;
    page.text("div.errors a[href='#case']").await;
    page.screenshot("ui-question-errors.png").await;
    page.assert_accessible("question form with errors").await;

    // A family of three: two by BSN, one by name with another spelling.
    page.open("/vraag").await;
    for (field, value) in [
        ("case", "Z-2026-0418"),
        ("bsn-0", "111222333"),
        ("bsn-1", "123456782"),
        ("surname-2", "Mehmedovitsj"),
        ("given-2", "Amina"),
        ("birth-2", "04-03-2012"),
    ] {
        page.type_into(field, value).await;
    }
    page.click("main form button[type=submit]").await;
    let confirm = page.text("p.notice").await;
    assert!(confirm.contains("vastgelegd bij elke partner"), "{confirm}");
    page.assert_accessible("confirmation").await;
    page.click("form[action='/vraag/stel'] button").await;
    page.text("table.answer").await;
    let answer = page.text("main").await;
    for expected in [
        "Antwoord",
        "Z-2026-0418",
        "Veiligheid",
        "Onderwijs",
        "Gezondheid",
        "school",
        "healthcare",
        "Het hele gezin",
        "waarschijnlijk",
        "weapon_possession",
        "Geen antwoord is niet hetzelfde als geen signaal",
    ] {
        assert!(
            answer.contains(expected),
            "{expected} missing from:\n{answer}"
        );
    }
    assert!(
        !answer.contains("111222333"),
        "no identifier on the answer page"
    );
    page.screenshot("ui-answer.png").await;
    page.assert_accessible("answer").await;

    // The same family from a case file, chosen as a coordinator would.
    let file = c.scratch().join("gezin.csv");
    std::fs::write(
        &file,
        "label,key\nkind,bsn:111222333\nbroer,bsn:123456782\nzus,\"nd:Mehmedovitsj,,04-03-2012,Amina\"\n",
    )
    .unwrap();
    page.open("/vraag").await;
    page.type_into("case", "Z-2026-0419").await;
    page.type_into("casefile", &file.display().to_string())
        .await;
    page.click("main form button[type=submit]").await;
    let confirm = page.text("main dl").await;
    assert!(
        confirm.contains("Z-2026-0419") && confirm.trim_end().ends_with("\n3"),
        "{confirm}"
    );
    page.click("form[action='/vraag/stel'] button").await;
    let answer = page.text("table.answer").await;
    for expected in ["kind", "broer", "zus", "school", "healthcare"] {
        assert!(
            answer.contains(expected),
            "{expected} missing from:\n{answer}"
        );
    }

    // Screening, with its progress, then the police's own case.
    page.click("header a[href='/screening']").await;
    page.click("#min_domains option[value='2']").await;
    page.click("form[action='/screening'] button").await;
    let hits = page.text("main table caption").await;
    assert!(hits.ends_with(": 1"), "{hits}");
    let screening = page.text("main").await;
    assert!(
        screening.contains("PV-7") && screening.contains("Sleutels in de screening: 1"),
        "{screening}"
    );
    page.screenshot("ui-screening.png").await;
    page.assert_accessible("screening").await;

    // On a phone-sized screen the answer still reads: its table scrolls
    // on its own, the page does not.
    page.browser.set_window_size(390, 844).await.unwrap();
    page.open("/antwoord/0").await;
    page.text("table.answer").await;
    let fits = page
        .script("return document.documentElement.scrollWidth <= window.innerWidth;")
        .await;
    if fits != serde_json::Value::Bool(true) {
        let wide = page
            .script("return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth).map(e => e.tagName + '.' + e.className).slice(0, 12).join(' ');")
            .await;
        panic!("the page scrolls sideways; wider than the screen: {wide}");
    }
    page.screenshot("ui-answer-narrow.png").await;
    page.assert_accessible("answer on a phone").await;
    page.browser.set_window_size(1280, 1100).await.unwrap();

    // In English, one click away; and back.
    page.click("header a[href='/taal?lang=en']").await;
    page.open("/antwoord/0").await;
    let english = page.browser.source().await.unwrap();
    assert!(
        english.contains("lang=\"en\"")
            && english.contains("discuss in a multidisciplinary case meeting"),
        "{english}"
    );
    page.assert_accessible("answer in English").await;
    page.open("/taal?lang=nl").await;

    // DNS rebinding: the same page under another name gets nothing.
    page.goto(&format!("http://rebind.example:{port}/vragen"))
        .await;
    let refused = page.text("main").await;
    assert!(
        refused.contains("Geen toegang") && !refused.contains("Z-2026-0418"),
        "{refused}"
    );

    // The launch link again: nothing, however often.
    page.browser.delete_all_cookies().await.unwrap();
    page.goto(&ui.launch).await;
    let again = page.text("main").await;
    assert!(
        again.contains("Geen toegang") && !again.contains("school"),
        "{again}"
    );

    page.browser.close().await.unwrap();
    c.stop().await;
}
