//! `pluis ui` over HTTP as a browser speaks it, against a real node with
//! mutual TLS: the launch link, the session cookie, the Host and Origin
//! checks, the security headers, a family's question from form to
//! answer, and the stop button.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use pluis_client::dev::consortium::PURPOSE;
use pluis_tests::{start_ui, ui_family};

/// One HTTP/1.1 exchange: (status, headers lower-cased, body). Blocking,
/// off the runtime's worker (the UI and the nodes run on it).
fn http(addr: SocketAddr, request: &[u8]) -> (u16, Vec<(String, String)>, String) {
    tokio::task::block_in_place(|| exchange(addr, request))
}

fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, Vec<(String, String)>, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// `value` as a form field's value (application/x-www-form-urlencoded).
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

struct Page {
    addr: SocketAddr,
    host: String,
    cookie: Option<String>,
}

impl Page {
    fn get(&self, path: &str) -> (u16, Vec<(String, String)>, String) {
        self.get_as(&self.host, path)
    }

    fn get_as(&self, host: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
        let cookie = self
            .cookie
            .as_ref()
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        http(
            self.addr,
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n")
                .as_bytes(),
        )
    }

    fn post(
        &self,
        path: &str,
        origin: Option<&str>,
        form: &str,
    ) -> (u16, Vec<(String, String)>, String) {
        self.post_as(
            path,
            origin,
            "application/x-www-form-urlencoded",
            form.as_bytes(),
        )
    }

    /// The question form as a browser posts it (multipart), with its
    /// fields from `form` (urlencoded, simple values) and a case file.
    fn post_question(
        &self,
        origin: Option<&str>,
        form: &str,
        file: &[u8],
    ) -> (u16, Vec<(String, String)>, String) {
        const BOUNDARY: &str = "----pluis-test-boundary";
        let mut body = Vec::new();
        for (name, value) in form.split('&').filter_map(|kv| kv.split_once('=')) {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"casefile\"; filename=\"case.csv\"\r\nContent-Type: text/csv\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        self.post_as(
            "/vraag",
            origin,
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            &body,
        )
    }

    fn post_as(
        &self,
        path: &str,
        origin: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, String) {
        let cookie = self
            .cookie
            .as_ref()
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{cookie}{origin}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        http(self.addr, &request)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_asks_a_familys_question_in_the_browser_and_nothing_else_gets_in() {
    let mut c = ui_family("ui").start().await;
    let ui = start_ui(&c, "police").await;
    let addr = ui.addr;
    let host = format!("127.0.0.1:{}", addr.port());
    let launch_path = ui
        .launch
        .strip_prefix(&format!("http://{host}"))
        .unwrap()
        .to_owned();
    let mut page = Page {
        addr,
        host: host.clone(),
        cookie: None,
    };
    let (status, _, body) = page.get("/");
    assert_eq!(status, 403, "no session, no page");
    assert!(!body.contains("school"));

    // The launch link: a cookie, once.
    let (status, headers, _) = page.get(&launch_path);
    assert_eq!(status, 303);
    let set_cookie = header(&headers, "set-cookie")
        .expect("a session cookie")
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let (status, _, body) = page.get(&launch_path);
    assert_eq!(status, 403, "a reused launch link gets nothing");
    assert!(!body.contains("school"));
    page.cookie = set_cookie.split(';').next().map(str::to_owned);

    // Every response carries the security headers.
    let (status, headers, body) = page.get("/");
    assert_eq!(status, 200, "{body}");
    for (name, expected) in [
        ("content-security-policy", "frame-ancestors 'none'"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ] {
        let value = header(&headers, name).unwrap_or_default();
        assert!(value.contains(expected), "{name}: {value:?}");
    }
    assert!(!header(&headers, "content-security-policy")
        .unwrap_or_default()
        .contains("unsafe-inline"));
    assert!(body.contains("lang=\"nl\"") && body.contains("school") && body.contains("healthcare"));

    // DNS rebinding: another Host is refused, even with the cookie.
    let (status, _, body) = page.get_as(&format!("evil.example:{}", addr.port()), "/");
    assert_eq!(status, 421);
    assert!(!body.contains("school"));
    let (status, _, _) = page.get_as(&format!("localhost:{}", addr.port()), "/");
    assert_eq!(status, 200);

    // The form lists the node's purposes with their legal basis.
    let (_, _, form) = page.get("/vraag");
    assert!(
        form.contains(PURPOSE) && form.contains("Grondslag"),
        "{form}"
    );

    // Cross-site POSTs are refused.
    let question = format!("case=Z-17&purpose={PURPOSE}&bsn-0=111222333&bsn-1=123456782&surname-2=Jansen&initial-2=J&birth-2=04-03-2012");
    let origin = format!("http://{host}");
    assert_eq!(page.post_question(None, &question, b"").0, 403);
    assert_eq!(
        page.post_question(Some("http://evil.example"), &question, b"")
            .0,
        403
    );

    // A bad field: the summary links to it and does not repeat it.
    let (status, _, body) = page.post_question(
        Some(&origin),
        &format!("case=Z-17&purpose={PURPOSE}&bsn-0=123456789"),
        b"",
    );
    assert_eq!(status, 422);
    assert!(
        body.contains("href=\"#bsn-0\"") && body.contains("elfproef"),
        "{body}"
    );
    assert!(
        body.contains("id=\"bsn-0-error\"")
            && body.contains("aria-invalid=\"true\" aria-describedby=\"bsn-0-error\""),
        "the message at its field too: {body}"
    );
    assert_eq!(
        body.matches("123456789").count(),
        1,
        "the value stays in its field to be mended, and is in no message"
    );

    // Confirm, ask, read the answer.
    let (status, _, body) = page.post_question(Some(&origin), &question, b"");
    assert_eq!(status, 200);
    assert!(body.contains("vastgelegd bij elke partner"), "{body}");
    let (status, headers, _) = page.post("/vraag/stel", Some(&origin), &question);
    assert_eq!(status, 303);
    let answer_path = header(&headers, "location").unwrap().to_owned();
    let (status, _, answer) = page.get(&answer_path);
    assert_eq!(status, 200);
    for expected in [
        "Veiligheid",
        "Onderwijs",
        "Gezondheid",
        "school",
        "healthcare",
        "Het hele gezin",
        "Geen antwoord is niet hetzelfde als geen signaal",
        "bespreken in een multidisciplinair casusoverleg",
    ] {
        assert!(answer.contains(expected), "{expected} missing:\n{answer}");
    }
    assert!(!answer.contains("discuss in"), "the advice in Dutch too");
    assert!(
        !answer.contains("111222333") && !answer.contains("Jansen"),
        "no identifier on the answer page"
    );
    let (_, _, mine) = page.get("/vragen");
    assert!(mine.contains("Z-17") && !mine.contains("111222333"));

    // The same family as a case file (the `pluis match --case` format).
    let family =
        "label,key\nkind,bsn:111222333\nbroer,bsn:123456782\nmoeder,\"nd:Jansen,J,04-03-2012\"\n";
    let by_file = format!("case=Z-18&purpose={PURPOSE}");
    let (status, _, body) = page.post_question(Some(&origin), &by_file, family.as_bytes());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<dd>3</dd>"), "three persons: {body}");
    assert!(body.contains("type=\"hidden\" name=\"casetext\""), "{body}");
    assert_eq!(
        body.matches("111222333").count(),
        body.matches("type=\"hidden\" name=\"casetext\"").count(),
        "the file is carried to the next step in hidden fields, not shown"
    );
    let carried = format!("{by_file}&casetext={}", form_encode(family));
    let (status, headers, _) = page.post("/vraag/stel", Some(&origin), &carried);
    assert_eq!(status, 303);
    let (_, _, answer) = page.get(header(&headers, "location").unwrap());
    for expected in [
        "kind",
        "broer",
        "moeder",
        "school",
        "healthcare",
        "Het hele gezin",
    ] {
        assert!(answer.contains(expected), "{expected} missing:\n{answer}");
    }
    // A bad case file: its line is named, its values are not repeated.
    let bad = "label,key\nkind,bsn:111222333\nbroer,bsn:123456789\n";
    let (status, _, body) = page.post_question(Some(&origin), &by_file, bad.as_bytes());
    assert_eq!(status, 422);
    assert!(
        body.contains("href=\"#casefile\"") && body.contains("Zaakbestand, regel 3: sleutel: bsn"),
        "{body}"
    );
    assert!(!body.contains("123456789"), "the bad value is not repeated");
    let (status, _, body) =
        page.post_question(Some(&origin), &by_file, b"label,key\n\xff\xfe,bsn:1\n");
    assert_eq!(status, 422);
    assert!(body.contains("geen CSV-tekstbestand"), "{body}");
    let (status, _, body) = page.post_question(Some(&origin), &by_file, &vec![b'a'; 70_000]);
    assert_eq!(status, 422);
    assert!(body.contains("groter dan 64 kB"), "{body}");

    // Screening: its page reloads itself while it runs, then shows the
    // police's own cases that reach the threshold, and every partner.
    let bad = format!("purpose={PURPOSE}&min_domains=9");
    assert_eq!(page.post("/screening", Some(&origin), &bad).0, 422);
    let screening = format!("purpose={PURPOSE}&min_domains=2");
    assert_eq!(
        page.post("/screening", Some("http://evil.example"), &screening)
            .0,
        403
    );
    let (status, headers, _) = page.post("/screening", Some(&origin), &screening);
    assert_eq!(status, 303);
    assert_eq!(header(&headers, "location"), Some("/screening"));
    // Up to two minutes, in tenths of a second.
    let mut done = None;
    for _ in 0..1200 {
        let (status, _, body) = page.get("/screening");
        assert_eq!(status, 200);
        if !body.contains("http-equiv=\"refresh\"") {
            done = Some(body);
            break;
        }
        assert!(
            body.contains("Partners klaar") && body.contains("<progress"),
            "{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let done = done.expect("the screening ends");
    for expected in [
        "Zaken die de drempel halen: 1",
        "PV-7",
        "Sleutels in de screening: 1",
        "school",
        "healthcare",
    ] {
        assert!(done.contains(expected), "{expected} missing:\n{done}");
    }
    assert!(
        !done.contains("111222333"),
        "no identifier on the screening page"
    );

    // Stop: the session and its answers are gone, and so is the page.
    let (status, _, body) = page.post("/stop", Some(&origin), "");
    assert_eq!(status, 200);
    assert!(body.contains("gestopt"));
    tokio::time::timeout(Duration::from_secs(10), ui.serving)
        .await
        .expect("the UI exits after stop")
        .unwrap()
        .unwrap();
    c.stop().await;
}
