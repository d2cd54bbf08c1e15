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

/// Runs axe-core's WCAG 2.0/2.1 A and AA rules on the page the browser
/// shows, and fails naming every rule broken and where.
async fn assert_accessible(browser: &fantoccini::Client, page: &str) {
    let script = format!(
        "{AXE}\n;return axe.run(document, {{ runOnly: {{ type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }} }}).then(r => [r.passes.length, r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))]);"
    );
    let result = browser.execute(&script, Vec::new()).await.unwrap();
    let passes = result[0].as_u64().unwrap_or(0);
    let violations: Vec<&str> = result[1]
        .as_array()
        .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    assert!(passes > 0, "{page}: axe ran no check: {result}");
    assert!(
        violations.is_empty(),
        "{page}: WCAG 2.1 AA violations:\n{}",
        violations.join("\n")
    );
}

/// Saves what the browser shows as `name` in the tests' target temp dir.
async fn save_screenshot(browser: &fantoccini::Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot: {}", shot.display());
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

    // The launch link: the overview, in Dutch, with the partners.
    browser.goto(&ui.launch).await.unwrap();
    let body = browser
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("Overzicht") && body.contains("school"),
        "{body}"
    );
    assert_accessible(&browser, "overview").await;
    for (path, page) in [
        ("/uitleg", "explanation"),
        ("/vragen", "my questions, none yet"),
    ] {
        browser
            .goto(&format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap();
        assert_accessible(&browser, page).await;
    }

    // An empty question: the error summary at the top, linking to the field.
    browser
        .goto(&format!("http://127.0.0.1:{port}/vraag"))
        .await
        .unwrap();
    assert_accessible(&browser, "question form").await;
    browser
        .find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("div.errors a[href='#case']"))
        .await
        .unwrap();
    assert_accessible(&browser, "question form with errors").await;

    // A family of three: two by BSN, one by name with another spelling.
    browser
        .goto(&format!("http://127.0.0.1:{port}/vraag"))
        .await
        .unwrap();
    for (field, value) in [
        ("case", "Z-2026-0418"),
        ("bsn-0", "111222333"),
        ("bsn-1", "123456782"),
        ("surname-2", "Mehmedovitsj"),
        ("given-2", "Amina"),
        ("birth-2", "04-03-2012"),
    ] {
        browser
            .find(Locator::Id(field))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
    browser
        .find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let confirm = browser
        .wait()
        .for_element(Locator::Css("p.notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("vastgelegd bij elke partner"), "{confirm}");
    assert_accessible(&browser, "confirmation").await;
    browser
        .find(Locator::Css("form[action='/vraag/stel'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    browser
        .wait()
        .for_element(Locator::Css("table.answer"))
        .await
        .unwrap();
    let answer = browser
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    save_screenshot(&browser, "ui-answer.png").await;
    assert_accessible(&browser, "answer").await;

    // The same family from a case file, chosen as a coordinator would.
    let file = c.scratch().join("gezin.csv");
    std::fs::write(
        &file,
        "label,key\nkind,bsn:111222333\nbroer,bsn:123456782\nzus,\"nd:Mehmedovitsj,,04-03-2012,Amina\"\n",
    )
    .unwrap();
    browser
        .goto(&format!("http://127.0.0.1:{port}/vraag"))
        .await
        .unwrap();
    browser
        .find(Locator::Id("case"))
        .await
        .unwrap()
        .send_keys("Z-2026-0419")
        .await
        .unwrap();
    browser
        .find(Locator::Id("casefile"))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    browser
        .find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let confirm = browser
        .wait()
        .for_element(Locator::Css("main dl"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        confirm.contains("Z-2026-0419") && confirm.trim_end().ends_with("\n3"),
        "{confirm}"
    );
    browser
        .find(Locator::Css("form[action='/vraag/stel'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let answer = browser
        .wait()
        .for_element(Locator::Css("table.answer"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in ["kind", "broer", "zus", "school", "healthcare"] {
        assert!(
            answer.contains(expected),
            "{expected} missing from:\n{answer}"
        );
    }

    // Screening, with its progress, then the police's own case.
    browser
        .find(Locator::LinkText("Screening"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .find(Locator::Css("#min_domains option[value='2']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .find(Locator::Css("form[action='/screening'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let hits = browser
        .wait()
        .at_most(Duration::from_secs(120))
        .for_element(Locator::Css("main table caption"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(hits.ends_with(": 1"), "{hits}");
    let page = browser
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("PV-7") && page.contains("Sleutels in de screening: 1"),
        "{page}"
    );
    save_screenshot(&browser, "ui-screening.png").await;
    assert_accessible(&browser, "screening").await;

    // On a phone-sized screen the answer still reads: its table scrolls
    // on its own, the page does not.
    browser.set_window_size(390, 844).await.unwrap();
    browser
        .goto(&format!("http://127.0.0.1:{port}/antwoord/0"))
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("table.answer"))
        .await
        .unwrap();
    let fits = browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            Vec::new(),
        )
        .await
        .unwrap();
    if fits != serde_json::Value::Bool(true) {
        let wide = browser
            .execute(
                "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth).map(e => e.tagName + '.' + e.className).slice(0, 12).join(' ');",
                Vec::new(),
            )
            .await
            .unwrap();
        panic!("the page scrolls sideways; wider than the screen: {wide}");
    }
    save_screenshot(&browser, "ui-answer-narrow.png").await;
    assert_accessible(&browser, "answer on a phone").await;
    browser.set_window_size(1280, 1100).await.unwrap();

    // In English, one click away; and back.
    browser
        .find(Locator::LinkText("English"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .goto(&format!("http://127.0.0.1:{port}/antwoord/0"))
        .await
        .unwrap();
    let english = browser.source().await.unwrap();
    assert!(
        english.contains("lang=\"en\"")
            && english.contains("discuss in a multidisciplinary case meeting"),
        "{english}"
    );
    assert_accessible(&browser, "answer in English").await;
    browser
        .goto(&format!("http://127.0.0.1:{port}/taal?lang=nl"))
        .await
        .unwrap();

    // DNS rebinding: the same page under another name gets nothing.
    browser
        .goto(&format!("http://rebind.example:{port}/vragen"))
        .await
        .unwrap();
    let refused = browser.source().await.unwrap();
    assert!(
        refused.contains("Geen toegang") && !refused.contains("Z-2026-0418"),
        "{refused}"
    );

    // The launch link again: nothing, however often.
    browser.delete_all_cookies().await.unwrap();
    browser.goto(&ui.launch).await.unwrap();
    let again = browser.source().await.unwrap();
    assert!(
        again.contains("Geen toegang") && !again.contains("school"),
        "{again}"
    );

    browser.close().await.unwrap();
    c.stop().await;
}
