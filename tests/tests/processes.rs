//! User story: an operator runs `pluis-node` and the `pluis` client as
//! real processes. Bad configs stop the node at once with a message naming
//! what is wrong; SIGTERM stops it cleanly; the demo runs to the end.

use std::path::Path;
use std::time::Duration;

use pluis_client::dev::consortium::{node_config, node_config_file, PeerEntry};
use pluis_proto::Role;
use pluis_tests::{run_to_end, NodeProcess, TestConsortium};

const NODE: &str = env!("CARGO_BIN_EXE_pluis-node-e2e");
const CLIENT: &str = env!("CARGO_BIN_EXE_pluis-e2e");
const DEADLINE: Duration = Duration::from_secs(60);

fn serve(config: &Path) -> (bool, String) {
    let config = config.to_str().unwrap();
    let (ok, _, stderr) = run_to_end(Path::new(NODE), &["serve", "--config", config], DEADLINE);
    (ok, stderr)
}

fn write_certs(dir: &Path, consortium: &str, orgs: &[&str]) {
    pluis_client::dev::certs::init(&pluis_client::dev::certs::InitOptions {
        out: dir.to_owned(),
        consortium: consortium.into(),
        orgs: orgs.iter().map(|o| o.to_string()).collect(),
        force: false,
    })
    .unwrap();
}

#[test]
fn a_config_with_an_unknown_key_stops_the_node_naming_key_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    // A misspelt key, as an operator's hand would add it after data_dir.
    let good = node_config("police", "127.0.0.1:0".parse().unwrap(), &[]);
    let after = good
        .lines()
        .position(|l| l.starts_with("data_dir"))
        .unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(after + 1, "max_peers = 3");
    std::fs::write(&config, lines.join("\n")).unwrap();
    let (ok, stderr) = serve(&config);
    assert!(!ok, "the node must exit non-zero");
    assert!(stderr.contains("unknown field `max_peers`"), "{stderr}");
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    assert!(stderr.contains(&format!("line {}", after + 2)), "{stderr}");
}

#[test]
fn a_missing_certificate_file_stops_the_node_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path(), "proc", &["police"]);
    let config = dir.path().join("police").join("node.toml");
    let mut file = node_config_file("police", "127.0.0.1:0".parse().unwrap(), &[]);
    file.tls.cert = "missing-node.pem".into();
    std::fs::write(&config, file.to_toml()).unwrap();
    let (ok, stderr) = serve(&config);
    assert!(!ok, "the node must exit non-zero");
    let missing = dir.path().join("police").join("missing-node.pem");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[test]
fn a_certificate_of_another_org_or_role_stops_the_node() {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path(), "proc", &["police", "school"]);
    let config = dir.path().join("police").join("node.toml");
    for (cert, key, expected) in [
        (
            "../school/node.pem",
            "../school/node.key",
            "certificate is for spiffe://proc/org/school/node, but the config says org = \"police\"",
        ),
        (
            "coordinator.pem",
            "coordinator.key",
            "this needs a node certificate",
        ),
        (
            "node.pem",
            "auditor.key",
            "police/auditor.key: keys may not be consistent: KeyMismatch",
        ),
    ] {
        let mut file = node_config_file("police", "127.0.0.1:0".parse().unwrap(), &[]);
        file.tls.cert = cert.into();
        file.tls.key = key.into();
        std::fs::write(&config, file.to_toml()).unwrap();
        let (ok, stderr) = serve(&config);
        assert!(!ok, "{cert}, {key}: the node must exit non-zero");
        assert!(stderr.contains(expected), "{cert}, {key}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_process_serves_on_the_port_it_reports_and_stops_cleanly_on_sigterm() {
    let mut c = TestConsortium::start("sigterm", &["police", "school"]).await;
    // A second police node, run as a process on port 0, whose config points
    // its "school" peer at the real school node.
    let config = c.dir().join("police").join("process.toml");
    let school: std::net::SocketAddr = c
        .url("school")
        .trim_start_matches("https://")
        .parse()
        .unwrap();
    let mut file = node_config_file(
        "police",
        "127.0.0.1:0".parse().unwrap(),
        &[PeerEntry::new("school", school)],
    );
    file.data_dir = "process-data".into();
    std::fs::write(&config, file.to_toml()).unwrap();
    let mut node = NodeProcess::spawn(Path::new(NODE), &config).expect("the node starts");
    assert!(!node.url.ends_with(":0"), "{}", node.url);

    let identity = c.identity("police", Role::Coordinator);
    let status = pluis_client::coordinator::status::fetch(&node.url, &identity)
        .await
        .unwrap();
    assert_eq!(status.org, "police");
    assert!(status.peers[0].reachable, "{:?}", status.peers[0]);

    let output = node.terminate().expect("the node stops");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        output.status
    );
    assert!(stderr.contains("SIGTERM: shutting down"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_url_that_leads_to_another_orgs_node_is_not_trusted() {
    let mut c = TestConsortium::start("pinning", &["police", "school", "healthcare"]).await;
    let healthcare: std::net::SocketAddr = c
        .url("healthcare")
        .trim_start_matches("https://")
        .parse()
        .unwrap();
    let config = c.dir().join("police").join("misrouted.toml");
    // "school" points at the healthcare node: its certificate is valid, from
    // the same CA, for localhost — but it is not the school's node.
    let mut file = node_config_file(
        "police",
        "127.0.0.1:0".parse().unwrap(),
        &[
            PeerEntry::new("school", healthcare),
            PeerEntry::new("healthcare", healthcare),
        ],
    );
    file.data_dir = "misrouted-data".into();
    std::fs::write(&config, file.to_toml()).unwrap();
    let mut node = NodeProcess::spawn(Path::new(NODE), &config).expect("the node starts");

    let identity = c.identity("police", Role::Coordinator);
    let status = pluis_client::coordinator::status::fetch(&node.url, &identity)
        .await
        .unwrap();
    let school = status.peers.iter().find(|p| p.org == "school").unwrap();
    let health = status.peers.iter().find(|p| p.org == "healthcare").unwrap();
    assert!(!school.reachable);
    assert!(
        school
            .detail
            .contains("spiffe://pinning/org/healthcare/node")
            && school.detail.contains("expected the node of org school"),
        "{}",
        school.detail
    );
    assert!(health.reachable, "{}", health.detail);
    assert!(node.terminate().expect("the node stops").status.success());
    c.stop().await;
}

#[test]
fn certs_init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pki");
    let out = out.to_str().unwrap();
    let args = [
        "certs",
        "init",
        "--out",
        out,
        "--consortium",
        "cli",
        "--org",
        "police",
        "--org",
        "school",
    ];
    let (ok, stdout, stderr) = run_to_end(Path::new(CLIENT), &args, DEADLINE);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("spiffe://cli/org/school/auditor"),
        "{stdout}"
    );
    let ca = std::fs::read(dir.path().join("pki/ca.pem")).unwrap();

    let (ok, _, stderr) = run_to_end(Path::new(CLIENT), &args, DEADLINE);
    assert!(!ok, "a second init must fail");
    assert!(
        stderr.contains("--force") && stderr.contains(out),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("pki/ca.pem")).unwrap(),
        ca,
        "nothing was replaced"
    );

    let mut forced = args.to_vec();
    forced.push("--force");
    let (ok, _, stderr) = run_to_end(Path::new(CLIENT), &forced, DEADLINE);
    assert!(ok, "{stderr}");
    assert_ne!(std::fs::read(dir.path().join("pki/ca.pem")).unwrap(), ca);
}

#[tokio::test(flavor = "multi_thread")]
async fn pluis_status_takes_its_identity_from_the_environment() {
    let mut c = TestConsortium::start("envstatus", &["police", "school"]).await;
    let tls = c.inner.tls_args("police", Role::Coordinator);
    let url = c.url("police");
    let run = |cert: &Path, key: &Path| {
        let output = std::process::Command::new(CLIENT)
            .args(["status", "--node", &url])
            .env("PLUIS_CA", &tls.ca)
            .env("PLUIS_CERT", cert)
            .env("PLUIS_KEY", key)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| run(&tls.cert, &tls.key));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("node police (consortium envstatus)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("peer school") && stdout.contains("reachable"),
        "{stdout}"
    );

    let auditor = c.inner.tls_args("police", Role::Auditor);
    let (ok, _, stderr) = tokio::task::block_in_place(|| run(&auditor.cert, &auditor.key));
    assert!(!ok);
    assert!(
        stderr.contains("this needs a coordinator certificate"),
        "{stderr}"
    );
    c.stop().await;
}

/// The demo runs four nodes that import, build tables and answer within
/// the case query's 5 s deadline: two demos at once on CI's two cores
/// (beside the other tests) can miss it, so the demo tests take turns.
static ONE_DEMO_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_demo_runs_from_start_to_end() {
    let _turn = ONE_DEMO_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("demo");
    let (ok, stdout, stderr) = run_to_end(
        Path::new(CLIENT),
        &["demo", "--keep", kept.to_str().unwrap()],
        DEADLINE,
    );
    assert!(ok, "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("no discrepancies"), "{stdout}");

    // The whole run's audit logs and report hold no value of the input:
    // no BSN, surname, birth date or case reference of any org's rows.
    let mut needles = std::collections::HashSet::new();
    for org in pluis_tests::DEMO_ORGS {
        let csv = std::fs::read_to_string(kept.join(org).join("signals.csv")).unwrap();
        for line in csv.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            for value in [f[0], f[3], f[6]] {
                if value.len() >= 5 {
                    needles.insert(value.to_lowercase());
                }
            }
            needles.extend(
                f[1].split(' ')
                    .filter(|w| w.len() >= 5)
                    .map(str::to_lowercase),
            );
        }
    }
    assert!(needles.len() > 10_000, "{}", needles.len());
    let mut haystack = std::fs::read_to_string(kept.join("audit/report.html")).unwrap();
    for org in pluis_tests::DEMO_ORGS {
        let path = kept.join("audit").join(format!("{org}.jsonl"));
        haystack.push_str(&std::fs::read_to_string(&path).unwrap());
        let bundle = pluis_client::auditor::read_bundle(&path).unwrap();
        for (_, entry) in bundle.entries {
            haystack.push('\n');
            haystack.push_str(&String::from_utf8_lossy(&entry));
        }
    }
    let found: Vec<&str> = haystack
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|token| needles.contains(&token.to_lowercase()))
        .collect();
    assert!(
        found.is_empty(),
        "{} input values in the audit output",
        found.len()
    );
    for org in pluis_tests::DEMO_ORGS {
        assert!(
            stdout.contains(&format!("node {org} (consortium demo)")),
            "{stdout}"
        );
    }
    assert!(!stdout.contains("UNREACHABLE"), "{stdout}");
    assert!(stdout.contains("Demo complete."), "{stdout}");
    // Kept: the paths shown are there after the demo.
    assert!(
        stdout.contains(&format!(
            "report for the privacy officer: {}",
            kept.join("audit/report.html").display()
        )),
        "{stdout}"
    );
}

/// The lines `child` prints, as they come, and the thread reading them.
fn stdout_lines(
    child: &mut std::process::Child,
) -> (
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    use std::io::BufRead;
    let (lines, seen) = std::sync::mpsc::channel();
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let reader = std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    (seen, reader)
}

/// Sends Ctrl-C's signal to `child`.
fn interrupt(child: &std::process::Child) {
    // SAFETY: a signal to a child this test spawned and still owns.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn pluis_ui_prints_its_launch_link_first_and_stops_on_ctrl_c() {
    let mut c = TestConsortium::start("uiprocess", &["police", "school"]).await;
    let tls = c.inner.tls_args("police", Role::Coordinator);
    let url = c.url("police");
    let spawn = |cert: &Path, key: &Path| {
        std::process::Command::new(CLIENT)
            .args(["ui", "--node", &url, "--idle-minutes", "5"])
            .env("PLUIS_CA", &tls.ca)
            .env("PLUIS_CERT", cert)
            .env("PLUIS_KEY", key)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("pluis ui starts")
    };
    let mut child = spawn(&tls.cert, &tls.key);
    let (seen, reader) = stdout_lines(&mut child);
    let first = tokio::task::block_in_place(|| seen.recv_timeout(DEADLINE)).expect("a first line");
    let link = first
        .strip_prefix("ui on ")
        .unwrap_or_else(|| panic!("the first line is the launch link: {first}"));
    assert!(
        link.starts_with("http://127.0.0.1:") && link.contains("/launch?token="),
        "{link}"
    );
    let (status, _) = tokio::task::block_in_place(|| pluis_tests::http_get(link));
    assert_eq!(status, 303, "the link opens a session");
    interrupt(&child);
    let output = tokio::task::block_in_place(|| pluis_tests::wait_with_deadline(child, DEADLINE));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    reader.join().expect("stdout read");

    // An auditor's certificate serves no page: a clear error, no link.
    let auditor = c.inner.tls_args("police", Role::Auditor);
    let mut child = spawn(&auditor.cert, &auditor.key);
    let (seen, reader) = stdout_lines(&mut child);
    let output = tokio::task::block_in_place(|| pluis_tests::wait_with_deadline(child, DEADLINE));
    reader.join().expect("stdout read");
    assert!(!output.status.success());
    assert_eq!(seen.try_iter().count(), 0, "nothing printed on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("this needs a coordinator certificate"),
        "{stderr}"
    );
    c.stop().await;
}

#[test]
fn the_demo_with_ui_keeps_the_consortium_running_for_the_page_until_ctrl_c() {
    let _turn = ONE_DEMO_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = std::process::Command::new(CLIENT)
        .args(["demo", "--ui"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the demo starts");
    let (seen, reader) = stdout_lines(&mut child);
    let mut printed = Vec::new();
    let link = loop {
        match seen.recv_timeout(Duration::from_secs(300)) {
            Ok(line) => {
                let link = line.strip_prefix("ui on ").map(str::to_owned);
                printed.push(line);
                if let Some(link) = link {
                    break link;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("no launch link printed:\n{}", printed.join("\n"));
            }
        }
    };
    assert!(
        printed.iter().any(|l| l.contains("no discrepancies")),
        "the demo's checks ran first:\n{}",
        printed.join("\n")
    );
    assert!(link.starts_with("http://127.0.0.1:"), "{link}");
    let (status, _) = pluis_tests::http_get(&link);
    assert_eq!(status, 303, "the launch link opens a session");
    let (status, body) = pluis_tests::http_get(&link);
    assert_eq!(status, 403, "and only once: {body}");

    // Ctrl-C: the page ends, the nodes stop cleanly, the demo completes.
    interrupt(&child);
    let output = pluis_tests::wait_with_deadline(child, DEADLINE);
    reader.join().expect("stdout read to its end");
    printed.extend(seen.try_iter());
    let printed = printed.join("\n");
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("stopped cleanly"), "{printed}");
    assert!(printed.ends_with("Demo complete."), "{printed}");
}
