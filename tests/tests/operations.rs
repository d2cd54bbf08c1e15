//! User story: an organisation runs its node around the clock. Its
//! operator loads the nightly export into the running node, changes the
//! policy, locks out a stolen laptop or a partner that left, rotates the
//! node's certificate and watches the node — all without stopping it.
//!
//! Real nodes on loopback with real mutual TLS (in this process, or as
//! `pluis-node serve` processes where signals and kills are needed), the
//! operator's own `pluis-node` commands, certificates from `pluis certs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;

use pluis_client::coordinator::matching::{query, subjects_from_args};
use pluis_client::dev::certs::{self, IssueOptions, Reason, RevokeOptions};
use pluis_client::dev::consortium::{LEGAL_BASIS, PURPOSE};
use pluis_node::config::ConfigFile;
use pluis_proto::pb::audit_entry::Kind;
use pluis_proto::pb::partner_client::PartnerClient;
use pluis_proto::pb::peer_outcome::State;
use pluis_proto::pb::{AuditEntry, EvaluateResponse, GetTableRequest, MatchResponse};
use pluis_proto::table::{LabelledTable, TableEntry};
use pluis_proto::taxonomy::LifeDomain;
use pluis_proto::Role;
use pluis_tests::{
    days_ago, evaluate_request, exchange_context, gen_data, http_get, metric, run_to_end,
    try_metric, wait_for_metrics, NodeProcess, Setup, Signal, TestConsortium,
};

const NODE: &str = env!("CARGO_BIN_EXE_pluis-node-e2e");
const DEADLINE: Duration = Duration::from_secs(300);

fn node_cmd(args: &[&str]) -> (bool, String, String) {
    run_to_end(Path::new(NODE), args, DEADLINE)
}

fn config_arg(c: &TestConsortium, org: &str) -> String {
    c.node(org).unwrap().config.display().to_string()
}

/// Signals `org`'s node holds (through the admin socket when it runs).
fn stored(c: &TestConsortium, org: &str) -> u64 {
    pluis_tests::stored_signals(Path::new(NODE), &c.node(org).unwrap().config)
}

/// `rows` synthetic import rows for `org` (seed 31), plus `extra` lines.
fn generated(dir: &Path, org: &str, rows: u64, extra: &str) -> PathBuf {
    let file = dir.join(format!("{org}-{rows}.csv"));
    gen_data(Path::new(NODE), &file, org, rows, 31, None);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(extra);
    std::fs::write(&file, text).unwrap();
    file
}

/// A query about one person with one key.
fn one_subject(key: &str) -> Vec<pluis_proto::pb::Subject> {
    subjects_from_args(&[key.to_owned()])
}

/// Which partners flagged which domains for the query's first subject.
fn domains_of(answer: &MatchResponse, org: &str) -> Vec<String> {
    answer.subjects[0]
        .domains
        .iter()
        .filter(|d| d.orgs.iter().any(|o| o == org))
        .map(|d| d.domain.clone())
        .collect()
}

/// Metrics on a port the node picks.
fn with_metrics(file: &mut ConfigFile) {
    file.metrics_listen = Some("127.0.0.1:0".into());
}

/// The police and the school, with the school's signals, made for node
/// processes; and a runtime for the test's own async calls.
fn police_and_school(
    name: &str,
    school_rows: Vec<Signal>,
    edit: impl FnOnce(Setup) -> Setup,
) -> (tokio::runtime::Runtime, TestConsortium) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut setup = TestConsortium::setup(name, &["police", "school"]);
    if !school_rows.is_empty() {
        setup = setup.signals("school", school_rows);
    }
    let c = edit(setup).for_processes(&runtime);
    (runtime, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn case_queries_keep_being_answered_while_a_live_import_lands() {
    let mut c = TestConsortium::setup("live", &["police", "school"])
        .signals(
            "school",
            [Signal::new("111222333", "frequent_absence", &days_ago(5)).local_ref("S-1")],
        )
        // Eight clients asking as fast as they can for as long as the
        // import (and its tables' build) takes: a budget that lasts.
        .peer_policies("school", |peer| peer.max_keys_per_day = Some(10_000_000))
        .start()
        .await;
    let coordinator = Arc::new(c.identity("police", Role::Coordinator));
    let police = c.node("police").unwrap().url.clone();
    // The nightly export: 100,000 rows, and one new signal about a child
    // the school did not know before.
    let file = generated(
        c.scratch(),
        "school",
        100_000,
        &format!("123456782,,,,frequent_absence,{},S-NEW\n", days_ago(2)),
    );
    let before = query(&police, &coordinator, PURPOSE, one_subject("bsn:123456782"))
        .await
        .unwrap();
    assert!(domains_of(&before, "school").is_empty());

    let importing = Arc::new(AtomicBool::new(true));
    let during = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..8u64 {
        let (police, coordinator) = (police.clone(), coordinator.clone());
        let (importing, during) = (importing.clone(), during.clone());
        clients.spawn(async move {
            let mut asked = 0u64;
            while importing.load(Ordering::Acquire) {
                let answer = query(&police, &coordinator, PURPOSE, one_subject("bsn:111222333"))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("client {client}: a query failed during the import: {e:#}")
                    });
                assert!(
                    answer.peers.iter().all(|p| p.state() == State::Answered),
                    "client {client}: a partner did not answer during the import: {:?}",
                    answer.peers
                );
                assert_eq!(
                    domains_of(&answer, "school"),
                    ["education"],
                    "the old signal is still seen"
                );
                asked += 1;
                during.fetch_add(1, Ordering::Relaxed);
            }
            asked
        });
    }
    let config = config_arg(&c, "school");
    let path = file.display().to_string();
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || node_cmd(&["import", "--config", &config, &path]))
            .await
            .unwrap();
    importing.store(false, Ordering::Release);
    assert!(ok, "live import failed: {stderr}");
    assert!(
        stderr.contains("handing"),
        "it went to the running node: {stderr}"
    );
    assert!(stdout.contains("100001 rows"), "{stdout}");
    while let Some(done) = clients.join_next().await {
        assert!(
            done.unwrap() > 0,
            "every client was answered during the import"
        );
    }
    assert!(
        during.load(Ordering::Relaxed) >= 8,
        "queries ran while the import landed"
    );

    let after = query(&police, &coordinator, PURPOSE, one_subject("bsn:123456782"))
        .await
        .unwrap();
    assert_eq!(
        domains_of(&after, "school"),
        ["education"],
        "the new signal matches"
    );
    let school = c
        .verified_log("school", &c.node("school").unwrap().url)
        .await;
    let imports: Vec<&AuditEntry> = school.iter().filter(|e| e.kind() == Kind::Import).collect();
    assert_eq!(imports.len(), 2, "the offline import and the live one");
    assert!(
        imports[1].actor.contains("admin socket"),
        "{}",
        imports[1].actor
    );
    c.stop().await;
}

/// Evaluates one key in exchange `[id; 16]` as `partner` would.
async fn announce(partner: &mut PartnerClient<Channel>, id: u8) -> EvaluateResponse {
    let request = evaluate_request(
        exchange_context(id, PURPOSE, LEGAL_BASIS),
        &["bsn:111222333"],
    );
    partner
        .evaluate(request)
        .await
        .expect("evaluate")
        .into_inner()
}

/// The whole table fetched in exchange `[id; 16]`, as a table.
async fn whole_table(partner: &mut PartnerClient<Channel>, id: u8, epoch: u64) -> LabelledTable {
    let request = GetTableRequest {
        context: Some(exchange_context(id, PURPOSE, LEGAL_BASIS)),
        epoch,
        prefix_bits: 0,
        prefix: Vec::new(),
        more_prefixes: Vec::new(),
    };
    let mut stream = partner
        .get_table(request)
        .await
        .expect("table")
        .into_inner();
    let mut entries = Vec::new();
    while let Some(chunk) = stream.message().await.expect("table chunk") {
        entries.extend(chunk.entries.into_iter().map(|e| TableEntry {
            tag: e.tag.try_into().expect("a whole tag"),
            label: e.label,
        }));
    }
    LabelledTable::new(entries)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exchange_reads_the_table_its_evaluate_announced_but_never_an_erased_signal() {
    let mut c = TestConsortium::setup("announced", &["police", "school"])
        .signals(
            "school",
            [Signal::new("111222333", "frequent_absence", &days_ago(5)).local_ref("S-1")],
        )
        .start()
        .await;
    let mut police = c.partner("school", "police", Role::Node);
    let config = config_arg(&c, "school");
    let a = announce(&mut police, 1).await;
    assert_eq!(a.table_size, 1);

    // A live import lands between the exchange's Evaluate and its table
    // call: the exchange reads the very table it was announced.
    let file = c.scratch().join("one-more.csv");
    std::fs::write(
        &file,
        format!(
            "bsn,signal,registered_on,local_ref\n123456782,frequent_absence,{},S-2\n",
            days_ago(2)
        ),
    )
    .unwrap();
    let path = file.display().to_string();
    let import = config.clone();
    let (ok, _, stderr) =
        tokio::task::spawn_blocking(move || node_cmd(&["import", "--config", &import, &path]))
            .await
            .unwrap();
    assert!(ok && stderr.contains("handing"), "a live import: {stderr}");
    let table = whole_table(&mut police, 1, a.epoch).await;
    assert_eq!(
        (table.len() as u64, table.digest().to_vec()),
        (a.table_size, a.table_digest),
        "the table announced, not the one imported since"
    );
    let b = announce(&mut police, 2).await;
    assert_eq!(b.table_size, 2, "a new exchange is announced the new table");

    // An erasure in between is not undone for an exchange under way.
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        node_cmd(&["forget", "--config", &config, "--bsn", "123-456-782"])
    })
    .await
    .unwrap();
    assert!(
        ok && stdout.contains("erased 1 signals"),
        "{stdout}{stderr}"
    );
    let table = whole_table(&mut police, 2, b.epoch).await;
    assert_eq!(table.len(), 1, "the erased signal is not served");
    assert_ne!(table.digest().to_vec(), b.table_digest);
    assert_eq!(announce(&mut police, 3).await.table_size, 1);
    c.stop().await;
}

#[test]
fn a_bad_live_import_stores_nothing_and_a_killed_one_leaves_the_old_or_the_new_state() {
    let (runtime, c) = police_and_school("kill", Vec::new(), |setup| {
        setup.config("police", with_metrics)
    });
    let config = c.node("police").unwrap().config.clone();
    let mut police = NodeProcess::spawn(Path::new(NODE), &config).expect("the node starts");
    let mut metrics_url = police.metrics_url.clone().unwrap();
    let c_arg = config.display().to_string();

    let good = c.scratch().join("good.csv");
    std::fs::write(
        &good,
        format!(
            "bsn,signal,registered_on,local_ref\n111222333,weapon_possession,{d},P-1\n123456782,weapon_possession,{d},P-2\n",
            d = days_ago(3)
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = node_cmd(&["import", "--config", &c_arg, good.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("2 new signals"), "{stdout}");
    assert_eq!(stored(&c, "police"), 2);

    // Three bad rows: nothing stored, exactly those lines named, no values.
    let bad = c.scratch().join("bad.csv");
    let mut csv =
        String::from("bsn,surname,initial,birth_date,signal,registered_on,expires_on,local_ref\n");
    for line in 2..=12 {
        csv.push_str(&match line {
            4 => "123456789,,,,weapon_possession,2026-03-01,,r4\n".to_owned(),
            7 => "240000006,,,,skipping_class,2026-03-01,,r7\n".to_owned(),
            11 => ",Jansen,J,2011-02-30,weapon_possession,2026-03-01,,r11\n".to_owned(),
            _ => format!(
                "{},,,,weapon_possession,2026-03-01,,r{line}\n",
                pluis_proto::identifier::elfproef_check_digit(10_000_000 + line)
                    .map(|d| format!("{}{d}", 10_000_000 + line))
                    .unwrap_or_else(|| "240000006".into())
            ),
        });
    }
    std::fs::write(&bad, csv).unwrap();
    let (ok, _, stderr) = node_cmd(&["import", "--config", &c_arg, bad.to_str().unwrap()]);
    assert!(!ok, "an import with bad rows fails");
    let path = bad.display().to_string();
    let reported: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{path}:")))
        .collect();
    assert_eq!(
        reported,
        [
            format!("{path}:4: bsn: fails the elfproef (11-check)"),
            format!("{path}:7: signal: unknown signal code \"skipping_class\" (see `pluis-node taxonomy`)"),
            format!("{path}:11: birth_date: no such date"),
        ]
    );
    assert!(
        stderr.contains("3 invalid rows; nothing was stored"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("123456789") && !stderr.contains("Jansen"),
        "{stderr}"
    );
    assert_eq!(
        stored(&c, "police"),
        2,
        "nothing of the bad file was stored"
    );
    let page = http_get(&metrics_url).1;
    assert_eq!(
        metric(&page, "pluis_imports_total{outcome=\"refused\"}"),
        1.0,
        "{page}"
    );

    // Erasure through the running node.
    let (ok, stdout, stderr) = node_cmd(&["forget", "--config", &c_arg, "--bsn", "123-456-782"]);
    assert!(
        ok && stdout.contains("erased 1 signals"),
        "{stdout}{stderr}"
    );
    assert_eq!(stored(&c, "police"), 1);

    // A big import, the node killed while it runs: once while the rows
    // come in, once after they all came (staging, tables, publishing).
    let big = generated(c.scratch(), "police", 150_000, "");
    for kill_when_all_received in [false, true] {
        let before = stored(&c, "police");
        let child = std::process::Command::new(NODE)
            .args(["import", "--config", &c_arg, big.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_metrics(&metrics_url, "the import to be under way", |page| {
            let received = try_metric(page, "pluis_import_rows_received").unwrap_or(0.0);
            try_metric(page, "pluis_imports_running") == Some(1.0)
                && if kill_when_all_received {
                    received >= 150_000.0
                } else {
                    received > 0.0
                }
        });
        police.kill();
        let output = pluis_tests::wait_with_deadline(child, DEADLINE);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "the import cannot have finished: {stderr}"
        );
        assert!(
            stderr.contains("pluis-node: error:"),
            "a clear error, not a panic: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        // Offline now: the old state, or the whole new one.
        let after = stored(&c, "police");
        police = NodeProcess::spawn(Path::new(NODE), &config).expect("the node starts");
        metrics_url = police.metrics_url.clone().unwrap();
        // The whole import, again: it stores what the killed one did not.
        let (ok, _, stderr) = node_cmd(&["import", "--config", &c_arg, big.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        let full_count = stored(&c, "police");
        assert!(
            after == before || after == full_count,
            "after the kill: {after} signals; before {before}, whole import {full_count}"
        );
        let entries = runtime.block_on(c.verified_log("police", &police.url));
        assert!(entries.iter().any(|e| e.kind() == Kind::Import));
        // Forget the big import again for the next round (replace with the small file).
        let (ok, _, stderr) = node_cmd(&[
            "import",
            "--replace",
            "--config",
            &c_arg,
            good.to_str().unwrap(),
        ]);
        assert!(ok, "{stderr}");
    }
    let output = police.terminate().expect("the node stops");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for value in ["123456789", "240000006", "111222333", "Jansen"] {
        assert!(
            !stderr.contains(value),
            "{value} in the node's log:\n{stderr}"
        );
    }
}

#[test]
fn sighup_keeps_the_old_policy_for_a_broken_file_and_puts_a_good_one_in_force() {
    let d = days_ago(4);
    let (runtime, c) = police_and_school(
        "hup",
        vec![
            Signal::new("111222333", "frequent_absence", &d).local_ref("S-1"),
            Signal::new("111222333", "exhaustion", &d).local_ref("S-1"),
        ],
        |setup| setup.config("school", with_metrics),
    );
    let school_config = c.node("school").unwrap().config.clone();
    let _police = NodeProcess::spawn(Path::new(NODE), &c.node("police").unwrap().config)
        .expect("the node starts");
    let mut school = NodeProcess::spawn(Path::new(NODE), &school_config).expect("the node starts");
    let metrics_url = school.metrics_url.clone().unwrap();
    let coordinator = c.identity("police", Role::Coordinator);
    let police_url = format!("https://{}", c.node("police").unwrap().addr);
    let ask = || {
        let answer = runtime
            .block_on(query(
                &police_url,
                &coordinator,
                PURPOSE,
                one_subject("bsn:111222333"),
            ))
            .unwrap();
        domains_of(&answer, "school")
    };
    let mut seen = ask();
    seen.sort();
    assert_eq!(seen, ["education", "health"]);

    // A broken file (a misspelt key, as a hand adds it): refused, named,
    // the old policy stays.
    let good_text = std::fs::read_to_string(&school_config).unwrap();
    let good: ConfigFile = toml::from_str(&good_text).unwrap();
    let broken = good_text.replacen(
        "granularity = \"domain\"",
        "granularity = \"domain\"\nmax_keys_per_dya = 5",
        1,
    );
    std::fs::write(&school_config, &broken).unwrap();
    school.signal("HUP").expect("kill");
    wait_for_metrics(&metrics_url, "the broken reload to be refused", |page| {
        try_metric(page, "pluis_policy_reloads_total{outcome=\"refused\"}") == Some(1.0)
    });
    let mut seen = ask();
    seen.sort();
    assert_eq!(
        seen,
        ["education", "health"],
        "the old policy is still in force"
    );

    // Changing what a running node cannot change is refused by name.
    let moved = ConfigFile {
        listen: "127.0.0.1:1".into(),
        ..good.clone()
    };
    std::fs::write(&school_config, moved.to_toml()).unwrap();
    let (ok, _, stderr) = node_cmd(&["reload", "--config", school_config.to_str().unwrap()]);
    assert!(!ok, "a new listen address is refused");
    assert!(
        stderr.contains("listen: changed from") && stderr.contains("restart"),
        "{stderr}"
    );

    // A good file: the police may no longer see the school's health signals.
    let mut narrower = good.clone();
    for peer in narrower.peers.iter_mut().filter(|p| p.org == "police") {
        peer.domains = vec![LifeDomain::Safety, LifeDomain::Education];
    }
    let fixed = narrower.to_toml();
    std::fs::write(&school_config, &fixed).unwrap();
    school.signal("HUP").expect("kill");
    wait_for_metrics(&metrics_url, "the good reload to be in force", |page| {
        try_metric(page, "pluis_policy_reloads_total{outcome=\"loaded\"}") == Some(1.0)
    });
    assert_eq!(
        ask(),
        ["education"],
        "the newly excluded domain is no longer revealed"
    );

    let entries = runtime.block_on(c.verified_log("school", &school.url));
    let policies: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.kind() == Kind::PolicyLoaded)
        .collect();
    assert_eq!(policies.len(), 2, "at start and at the good reload only");
    assert_eq!(
        policies[1].request_digest,
        pluis_proto::log::digest(fixed.as_bytes())
    );
    assert!(
        policies[1].detail.contains("reload"),
        "{}",
        policies[1].detail
    );
    let output = school.terminate().expect("the node stops");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("max_keys_per_dya") && stderr.contains("line"),
        "the refusal names the key and line: {stderr}"
    );
}

/// The police and the school, each with a signal about one child and a
/// metrics page, serving: the stage of the revocation stories.
async fn revocation_consortium(name: &str) -> TestConsortium {
    TestConsortium::setup(name, &["police", "school"])
        .signals(
            "school",
            [Signal::new("111222333", "frequent_absence", &days_ago(5)).local_ref("S-1")],
        )
        .signals(
            "police",
            [Signal::new("111222333", "weapon_possession", &days_ago(5)).local_ref("P-1")],
        )
        .config("police", with_metrics)
        .config("school", with_metrics)
        .start()
        .await
}

/// `pluis-node reload` of `org`'s node; what it printed.
fn reload(c: &TestConsortium, org: &str) -> String {
    let (ok, stdout, stderr) = node_cmd(&["reload", "--config", &config_arg(c, org)]);
    assert!(ok, "reload of {org}: {stderr}");
    stdout
}

/// Revokes the certificate in `cert` in the dev PKI's CRL.
fn revoke(c: &TestConsortium, cert: &Path, reason: Reason) -> usize {
    certs::revoke(&RevokeOptions {
        dir: c.dir.clone(),
        serials: Vec::new(),
        certs: vec![cert.to_owned()],
        reason,
        crl: None,
    })
    .unwrap()
    .total
}

/// How `org` answered in `answer`.
fn state_of(answer: &MatchResponse, org: &str) -> State {
    answer
        .peers
        .iter()
        .find(|p| p.org == org)
        .map(|p| p.state())
        .unwrap()
}

/// A sample of `org`'s metrics page, if the page has it.
fn sample(c: &TestConsortium, org: &str, name: &str) -> Option<f64> {
    let url = format!("http://{}/metrics", c.node(org).unwrap().metrics.unwrap());
    try_metric(&http_get(&url).1, name)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stolen_laptops_certificate_is_refused_after_a_reload_even_on_a_held_connection() {
    let mut c = revocation_consortium("laptop").await;
    let police = c.node("police").unwrap().url.clone();
    let subject = || one_subject("bsn:111222333");
    // A second coordinator certificate: the laptop that will be stolen.
    let laptop_files = certs::issue(&IssueOptions {
        dir: c.dir.clone(),
        org: "police".into(),
        role: Role::Coordinator,
        out: Some(c.dir.join("police/laptop")),
    })
    .unwrap();
    let laptop = pluis_transport::tls::TlsIdentity::load(
        &c.dir.join("ca.pem"),
        &laptop_files.cert,
        &laptop_files.key,
        Role::Coordinator,
    )
    .unwrap();
    let answer = query(&police, &laptop, PURPOSE, subject()).await.unwrap();
    assert_eq!(state_of(&answer, "school"), State::Answered);
    // A connection the laptop holds open across the revocation.
    let mut open = pluis_proto::pb::coordinator_client::CoordinatorClient::new(
        pluis_client::connect::channel(&police, &laptop).unwrap(),
    );
    open.status(pluis_proto::pb::StatusRequest {})
        .await
        .unwrap();

    assert_eq!(revoke(&c, &laptop_files.cert, Reason::KeyCompromise), 1);
    assert!(reload(&c, "police").contains("revoked=1"));
    let revoked_refusals = || sample(&c, "police", "pluis_refused_total{reason=\"revoked\"}");
    assert_eq!(revoked_refusals(), None, "nothing refused as revoked yet");
    // Refused at the handshake: the client hears the alert, or (when the
    // node closed first) a reset; the node counts it as a revocation.
    query(&police, &laptop, PURPOSE, subject())
        .await
        .expect_err("a revoked certificate is refused");
    assert_eq!(
        revoked_refusals(),
        Some(1.0),
        "refused because it is revoked"
    );
    let status = open
        .status(pluis_proto::pb::StatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("revoked"), "{status:?}");
    assert_eq!(
        revoked_refusals(),
        Some(2.0),
        "the held connection's call too"
    );
    let desk = c.identity("police", Role::Coordinator);
    let answer = query(&police, &desk, PURPOSE, subject()).await.unwrap();
    assert_eq!(
        state_of(&answer, "school"),
        State::Answered,
        "the desk's certificate still works"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_whose_node_certificate_is_revoked_is_neither_trusted_nor_answered() {
    let mut c = revocation_consortium("leaves").await;
    let (police, school) = (
        c.node("police").unwrap().url.clone(),
        c.node("school").unwrap().url.clone(),
    );
    let subject = || one_subject("bsn:111222333");
    // The school leaves the consortium: its node certificate is revoked.
    revoke(
        &c,
        &c.dir.join("school/node.pem"),
        Reason::AffiliationChanged,
    );
    assert!(reload(&c, "police").contains("revoked=1"));
    let desk = c.identity("police", Role::Coordinator);
    let answer = query(&police, &desk, PURPOSE, subject()).await.unwrap();
    assert_ne!(
        state_of(&answer, "school"),
        State::Answered,
        "the police no longer trust the school: {:?}",
        answer.peers
    );
    let school_desk = c.identity("school", Role::Coordinator);
    let answer = query(&school, &school_desk, PURPOSE, subject())
        .await
        .unwrap();
    assert_ne!(
        state_of(&answer, "police"),
        State::Answered,
        "the police refuse the school's node: {:?}",
        answer.peers
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_node_certificate_keeps_connections_in_flight_and_restores_trust() {
    let mut c = revocation_consortium("rotation").await;
    let (police, school) = (
        c.node("police").unwrap().url.clone(),
        c.node("school").unwrap().url.clone(),
    );
    let subject = || one_subject("bsn:111222333");
    revoke(&c, &c.dir.join("school/node.pem"), Reason::KeyCompromise);
    assert!(reload(&c, "police").contains("revoked=1"));
    // The school's node gets a new certificate and reloads: a connection
    // held open across it still works, and the police talk to the school
    // again.
    let school_auditor = c.identity("school", Role::Auditor);
    let mut held = pluis_proto::pb::audit_client::AuditClient::new(
        pluis_client::connect::channel(&school, &school_auditor).unwrap(),
    );
    held.get_checkpoint(pluis_proto::pb::GetCheckpointRequest {})
        .await
        .unwrap();
    let connections = || sample(&c, "school", "pluis_connections_total");
    let before = connections();
    assert!(before.is_some(), "the school counts its connections");
    certs::issue(&IssueOptions {
        dir: c.dir.clone(),
        org: "school".into(),
        role: Role::Node,
        out: None,
    })
    .unwrap();
    assert!(reload(&c, "school").contains("revoked=1"));
    held.get_checkpoint(pluis_proto::pb::GetCheckpointRequest {})
        .await
        .expect("a connection in flight survives the rotation");
    assert_eq!(
        connections(),
        before,
        "it was the same connection, not a new one"
    );
    let desk = c.identity("police", Role::Coordinator);
    let answer = query(&police, &desk, PURPOSE, subject()).await.unwrap();
    assert_eq!(
        state_of(&answer, "school"),
        State::Answered,
        "{:?}",
        answer.peers
    );
    let school_desk = c.identity("school", Role::Coordinator);
    let answer = query(&school, &school_desk, PURPOSE, subject())
        .await
        .unwrap();
    assert_eq!(
        state_of(&answer, "police"),
        State::Answered,
        "{:?}",
        answer.peers
    );
    c.stop().await;
}

#[test]
fn the_metrics_endpoint_is_plain_http_and_its_counters_move() {
    let (runtime, c) = police_and_school(
        "metrics",
        vec![Signal::new("111222333", "frequent_absence", &days_ago(5)).local_ref("S-1")],
        |setup| setup.config("school", with_metrics),
    );
    let school_config = c.node("school").unwrap().config.clone();
    let _police = NodeProcess::spawn(Path::new(NODE), &c.node("police").unwrap().config)
        .expect("the node starts");
    let school = NodeProcess::spawn(Path::new(NODE), &school_config).expect("the node starts");
    let url = school.metrics_url.clone().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let (status, before) = http_get(&url);
    assert_eq!(status, 200);
    assert_eq!(http_get(&url.replace("/metrics", "/other")).0, 404);
    let served = "pluis_exchanges_total{peer=\"police\",purpose=\"exploitation-assessment\",outcome=\"served\"}";
    assert_eq!(
        try_metric(&before, served),
        None,
        "no exchange is counted before one is served"
    );

    let coordinator = c.identity("police", Role::Coordinator);
    let police_url = format!("https://{}", c.node("police").unwrap().addr);
    for _ in 0..3 {
        runtime
            .block_on(query(
                &police_url,
                &coordinator,
                PURPOSE,
                subjects_from_args(&["bsn:111222333".into(), "bsn:123456782".into()]),
            ))
            .unwrap();
    }
    let (_, after) = http_get(&url);
    assert_eq!(metric(&after, served), 3.0, "{after}");
    assert_eq!(metric(&after, "pluis_evaluate_duration_seconds_count"), 3.0);
    assert_eq!(
        metric(&after, "pluis_budget_used_keys{peer=\"police\"}"),
        6.0
    );
    assert_eq!(
        metric(&after, "pluis_budget_limit_keys{peer=\"police\"}"),
        10_000.0
    );
    assert!(metric(&after, "pluis_audit_log_entries") > metric(&before, "pluis_audit_log_entries"));
    assert!(metric(&after, "pluis_audit_log_bytes") > metric(&before, "pluis_audit_log_bytes"));
    assert!(metric(&after, "pluis_table_build_duration_seconds_count") >= 1.0);
    assert_eq!(metric(&after, "pluis_signals_stored"), 1.0);

    // A live import moves the import counters.
    let file = c.scratch().join("more.csv");
    std::fs::write(
        &file,
        format!(
            "bsn,signal,registered_on\n123456782,frequent_absence,{}\n",
            days_ago(1)
        ),
    )
    .unwrap();
    let (ok, _, stderr) = node_cmd(&[
        "import",
        "--config",
        school_config.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let (_, imported) = http_get(&url);
    assert_eq!(
        metric(&imported, "pluis_imports_total{outcome=\"committed\"}"),
        1.0
    );
    assert_eq!(metric(&imported, "pluis_import_rows_total"), 1.0);
    assert_eq!(metric(&imported, "pluis_import_signals_added_total"), 1.0);
    assert_eq!(metric(&imported, "pluis_signals_stored"), 2.0);
    for value in ["111222333", "123456782"] {
        assert!(!imported.contains(value), "no identifiers on the page");
    }
}
