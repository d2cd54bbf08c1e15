//! The auditor's story: every exchange is logged on both sides, the logs
//! verify and cross-check, tampering is caught and named, a node whose
//! stored log was altered refuses to run, a rewritten history is caught by
//! a saved checkpoint, and a node killed mid-burst restarts with a log
//! that verifies and is consistent with what it signed before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use pluis_client::auditor::{self as audit, Bundle};
use pluis_client::dev::consortium::{LEGAL_BASIS, PURPOSE};
use pluis_proto::log::NoteVerifier;
use pluis_proto::pb::audit_entry::Kind;
use pluis_proto::pb::partner_client::PartnerClient;
use pluis_proto::pb::{EvaluateRequest, ExchangeContext};
use pluis_proto::Role;
use pluis_tests::{
    any_port, channel_as, days_ago, run_to_end, NodeProcess, Signal, TestConsortium,
};

const NODE: &str = env!("CARGO_BIN_EXE_pluis-node-e2e");
const CLIENT: &str = env!("CARGO_BIN_EXE_pluis-e2e");
const ORGS: [&str; 3] = ["police", "school", "healthcare"];

/// Three orgs with signals about one child, nodes started.
async fn consortium() -> TestConsortium {
    let date = days_ago(30);
    TestConsortium::setup("audit", &ORGS)
        .signals(
            "police",
            [Signal::new("111222333", "weapon_possession", &date).local_ref("PV-2026-001")],
        )
        .signals(
            "school",
            [Signal::new("111222333", "frequent_absence", &date).local_ref("LL-0042")],
        )
        .signals(
            "healthcare",
            [Signal::new("123456782", "unexplained_injuries", &date).local_ref("ZD-77")],
        )
        .start()
        .await
}

async fn case_query(c: &TestConsortium) {
    let coordinator = c.identity("police", Role::Coordinator);
    let subjects = pluis_client::coordinator::matching::subjects_from_args(&[
        "bsn:111222333".into(),
        "bsn:123456782;nd:Jansen,J,2012-03-04".into(),
    ]);
    let answer = pluis_client::coordinator::matching::query(
        &c.node("police").unwrap().url,
        &coordinator,
        PURPOSE,
        subjects,
    )
    .await
    .unwrap();
    assert!(
        answer.peers.iter().all(|p| p.state == 1),
        "{:?}",
        answer.peers
    );
}

/// Exports `org`'s log and verifies it against the key its partners pin.
async fn export(c: &TestConsortium, org: &str, out: &Path) -> (Bundle, NoteVerifier) {
    let auditor = c.tls_args(org, Role::Auditor).load(Role::Auditor).unwrap();
    audit::export(&c.node(org).unwrap().url, &auditor, out)
        .await
        .unwrap();
    let bundle = audit::read_bundle(out).unwrap();
    (bundle, c.pinned_key(org))
}

fn kinds(log: &pluis_proto::log::VerifiedLog) -> Vec<Kind> {
    log.entries
        .iter()
        .map(|e| Kind::try_from(e.kind).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_exchange_is_logged_on_both_sides_and_the_logs_cross_check() {
    let mut c = consortium().await;
    case_query(&c).await;
    let (police_bundle, police_key) = export(&c, "police", &c.scratch().join("police.jsonl")).await;
    let (school_bundle, school_key) = export(&c, "school", &c.scratch().join("school.jsonl")).await;
    let police = audit::verify(&police_bundle, Some(&police_key.to_string())).unwrap();
    let school = audit::verify(&school_bundle, Some(&school_key.to_string())).unwrap();

    let police_kinds = kinds(&police);
    for kind in [
        Kind::Import,
        Kind::NodeStart,
        Kind::PolicyLoaded,
        Kind::KeyRotation,
        Kind::CaseQuery,
        Kind::ExchangeRequested,
    ] {
        assert!(
            police_kinds.contains(&kind),
            "{kind:?} missing from {police_kinds:?}"
        );
    }
    // The case query names the coordinator, from its certificate.
    let query = police
        .entries
        .iter()
        .find(|e| e.kind() == Kind::CaseQuery)
        .unwrap();
    assert_eq!(query.actor, "spiffe://audit/org/police/coordinator");
    assert_eq!((query.purpose.as_str(), query.keys_asked), (PURPOSE, 3));
    assert!(!query.legal_basis.is_empty());
    // Every request to the school carries a receipt that checked out.
    let to_school: Vec<_> = police
        .entries
        .iter()
        .filter(|e| e.kind() == Kind::ExchangeRequested && e.counterparty.contains("/org/school/"))
        .collect();
    assert_eq!(to_school.len(), 2, "an Evaluate and one table call");
    for e in &to_school {
        // The exchange's receipt rides on its Evaluate, and checked out.
        assert_eq!(e.receipt.is_some(), e.keys_asked > 0, "{e:?}");
        assert!(!e.detail.contains("receipt"), "{e:?}");
    }
    // The school logged them as served to the police node.
    let served: Vec<_> = school
        .entries
        .iter()
        .filter(|e| e.kind() == Kind::ExchangeServed)
        .collect();
    assert_eq!(served.len(), to_school.len());
    assert!(served
        .iter()
        .all(|e| e.actor == "spiffe://audit/org/police/node" && e.request_digest.len() == 32));

    let crossed = audit::cross_check((&police, &police_key), (&school, &school_key));
    assert_eq!(crossed.matched, to_school.len());
    assert!(
        crossed.discrepancies.is_empty(),
        "{:?}",
        crossed.discrepancies
    );

    // No identifier, name or case reference anywhere in either log.
    for (bundle, path) in [
        (&police_bundle, "police.jsonl"),
        (&school_bundle, "school.jsonl"),
    ] {
        let text = std::fs::read_to_string(c.scratch().join(path)).unwrap();
        let mut haystack = text.clone().into_bytes();
        for (_, entry) in &bundle.entries {
            haystack.extend_from_slice(entry);
        }
        let haystack = String::from_utf8_lossy(&haystack).to_lowercase();
        for needle in [
            "111222333",
            "123456782",
            "jansen",
            "2012-03-04",
            "pv-2026-001",
            "ll-0042",
            "zd-77",
        ] {
            assert!(!haystack.contains(needle), "{needle} found in {path}");
        }
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_check_finds_an_exchange_only_one_side_logged() {
    let mut c = consortium().await;
    case_query(&c).await;
    // The police node's key, used from outside the police node: the
    // school serves and logs it, the police log has no such request.
    let police_node = c.identity("police", Role::Node);
    let mut school = PartnerClient::new(channel_as(&c.node("school").unwrap().url, &police_node));
    let blinded = pluis_proto::oprf::blind(b"bsn:111222333", &mut rand_core::OsRng).unwrap();
    school
        .evaluate(EvaluateRequest {
            context: Some(ExchangeContext {
                exchange_id: vec![0xab; 16],
                purpose: PURPOSE.into(),
                legal_basis: LEGAL_BASIS.into(),
            }),
            epoch: 0,
            blinded: vec![blinded.element.to_vec()],
            families: Vec::new(),
        })
        .await
        .unwrap();
    let (police_bundle, police_key) = export(&c, "police", &c.scratch().join("p.jsonl")).await;
    let (school_bundle, school_key) = export(&c, "school", &c.scratch().join("s.jsonl")).await;
    let police = audit::verify(&police_bundle, None).unwrap();
    let school = audit::verify(&school_bundle, None).unwrap();
    let crossed = audit::cross_check((&police, &police_key), (&school, &school_key));
    assert_eq!(
        crossed.discrepancies.len(),
        1,
        "{:?}",
        crossed.discrepancies
    );
    let d = &crossed.discrepancies[0];
    assert_eq!(d.exchange, "ab".repeat(16));
    assert!(d.what.contains("police logged no such request"), "{d:?}");
    assert!(d.place.starts_with("school entry "), "{d:?}");
    // The CLI says so too, and fails.
    let (ok, stdout, _) = run_to_end(
        Path::new(CLIENT),
        &[
            "audit",
            "cross-check",
            &path_str(&c.scratch().join("p.jsonl")),
            &path_str(&c.scratch().join("s.jsonl")),
        ],
        Duration::from_secs(30),
    );
    assert!(!ok);
    assert!(
        stdout.contains("1 discrepancies") && stdout.contains("police logged no such request"),
        "{stdout}"
    );
    c.stop().await;
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Rewrites a bundle file line by line.
fn rewrite(from: &Path, to: &Path, edit: impl Fn(Vec<String>) -> Vec<String>) -> PathBuf {
    let lines: Vec<String> = std::fs::read_to_string(from)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    std::fs::write(to, edit(lines).join("\n") + "\n").unwrap();
    to.to_owned()
}

fn entry_line(index: u64, bytes: &[u8]) -> String {
    serde_json::json!({"index": index, "entry": B64.encode(bytes)}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_bundle_is_caught_naming_what_and_where() {
    let mut c = consortium().await;
    case_query(&c).await;
    let good = c.scratch().join("police.jsonl");
    let (bundle, key) = export(&c, "police", &good).await;
    c.stop().await;
    let key = key.to_string();
    let n = bundle.entries.len();
    assert!(n >= 8, "{n}");
    let first_entry_line = 1 + bundle.checkpoints.len();
    let verify = |path: &Path| {
        run_to_end(
            Path::new(CLIENT),
            &["audit", "verify", &path_str(path), "--pubkey", &key],
            Duration::from_secs(30),
        )
    };
    let (ok, stdout, _) = verify(&good);
    assert!(ok && stdout.contains("verified"), "{stdout}");

    // One byte of entry 6 flipped (its bytes still decode).
    let flipped = rewrite(&good, &c.scratch().join("flipped.jsonl"), |mut lines| {
        let mut bytes = bundle.entries[6].1.clone();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        lines[first_entry_line + 6] = entry_line(6, &bytes);
        lines
    });
    // Entry 4 deleted.
    let deleted = rewrite(&good, &c.scratch().join("deleted.jsonl"), |mut lines| {
        lines.remove(first_entry_line + 4);
        lines
    });
    // Entries 2 and 3 swapped, their indexes rewritten to look in order.
    let swapped = rewrite(&good, &c.scratch().join("swapped.jsonl"), |mut lines| {
        lines[first_entry_line + 2] = entry_line(2, &bundle.entries[3].1);
        lines[first_entry_line + 3] = entry_line(3, &bundle.entries[2].1);
        lines
    });
    // The last three entries cut off.
    let truncated = rewrite(&good, &c.scratch().join("truncated.jsonl"), |mut lines| {
        lines.truncate(lines.len() - 3);
        lines
    });
    // The checkpoint re-signed with another key of the same name.
    let forged = rewrite(&good, &c.scratch().join("forged.jsonl"), |mut lines| {
        let verifier: NoteVerifier = key.parse().unwrap();
        let forger = pluis_proto::log::NoteSigner::from_seed(verifier.name(), &[0x66; 32]).unwrap();
        let note: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        let text = verifier.open(note["checkpoint"].as_str().unwrap()).unwrap();
        lines[1] = serde_json::json!({"checkpoint": forger.sign(text).unwrap()}).to_string();
        lines
    });
    for (path, expected) in [
        (&flipped, "do not hash to the root signed at size"),
        (&deleted, "entry 4: index: is 5"),
        (&swapped, "entry 2: sequence: is 3"),
        (&truncated, "it was truncated"),
        (&forged, "checkpoint 0: note: no valid signature"),
    ] {
        let (ok, _, stderr) = verify(path);
        assert!(!ok, "{} verified", path.display());
        assert!(
            stderr.contains("verification FAILED") && stderr.contains(expected),
            "{}: {stderr}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_stored_log_was_altered_refuses_to_start() {
    let mut c = consortium().await;
    case_query(&c).await;
    let config = pluis_node::Config::load(&c.node("school").unwrap().config).unwrap();
    c.stop().await;
    {
        let store = pluis_node::Store::open(&config.data_dir).unwrap();
        let (index, mut bytes) = store.audit_entries(3, 1).unwrap().remove(0);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        store
            .overwrite_audit_entry_for_tamper_tests(index, &bytes)
            .unwrap();
    }
    let err = pluis_node::Node::new(config).unwrap_err().to_string();
    assert!(
        err.contains("audit log")
            && err.contains("entries do not match the checkpoint signed over them")
            && err.contains("refusing"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_stored_checkpoint_signature_was_altered_refuses_to_start() {
    let mut c = consortium().await;
    case_query(&c).await;
    case_query(&c).await;
    let config = pluis_node::Config::load(&c.node("school").unwrap().config).unwrap();
    c.stop().await;
    // Frames of `size (8 bytes) ‖ length (4) ‖ note`. The first stored
    // checkpoint, not the latest (which was always checked), gets one
    // letter of its signature line changed, as with disk access.
    let path = config.data_dir.join("audit/checkpoints");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut frames = 0;
    let mut at = 0;
    while at + 12 <= bytes.len() {
        at += 12 + u32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        frames += 1;
    }
    assert!(frames >= 2, "{frames} checkpoints stored");
    let len = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let at = 12 + len - 6;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&path, bytes).unwrap();
    let err = pluis_node::Node::new(config).unwrap_err().to_string();
    assert!(
        err.contains("the stored checkpoint at size") && err.contains("refusing"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_checkpoint_proves_the_history_unchanged_and_catches_a_rewrite() {
    let mut c = consortium().await;
    let auditor = c.identity("police", Role::Auditor);
    let url = c.node("police").unwrap().url.clone();
    let saved = c.scratch().join("police.checkpoint");

    // A copy of the police data as it is now, for a forged history later.
    for node in &mut c.nodes {
        node.stop().await.unwrap();
    }
    let data = c.dir.join("police/data");
    let copy = c.scratch().join("police-data-copy");
    copy_dir(&data, &copy);
    c.restart("school").await.unwrap();
    c.restart("healthcare").await.unwrap();
    c.restart("police").await.unwrap();

    case_query(&c).await;
    let first = audit::checkpoint(&url, &auditor, None, None).await.unwrap();
    audit::save_checkpoint(&saved, &first).unwrap();
    case_query(&c).await;
    let later = audit::checkpoint(&url, &auditor, None, Some(&saved))
        .await
        .unwrap();
    assert!(later.checkpoint.size > first.checkpoint.size);
    assert_eq!(
        later.consistent_with.as_ref().map(|c| c.size),
        Some(first.checkpoint.size)
    );
    assert!(audit::render_checkpoint(&later).contains("history unchanged"));

    // The police node's data put back to the copy: another history, grown
    // past the saved size. Its own signatures are valid; it is not the
    // history the auditor saw.
    let police = c.nodes.iter_mut().find(|n| n.org == "police").unwrap();
    police.stop().await.unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&copy, &data);
    c.restart("police").await.unwrap();
    for _ in 0..3 {
        case_query(&c).await;
    }
    let err = audit::checkpoint(&url, &auditor, None, Some(&saved))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("rewrote history"), "{err}");
    c.stop().await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_during_a_burst_restarts_with_a_log_that_verifies() {
    // The school as a process of its own, on a port it picks, with a
    // budget for the burst.
    let c = TestConsortium::setup("crash", &["police", "school"])
        .signals(
            "school",
            [Signal::new("111222333", "frequent_absence", &days_ago(3)).local_ref("LL-1")],
        )
        .config("school", any_port)
        .peer_policies("school", |peer| peer.max_keys_per_day = Some(1_000_000))
        .create()
        .await;
    let school = c.node("school").unwrap();
    let mut node = NodeProcess::spawn(Path::new(NODE), &school.config).expect("the node starts");
    let auditor = c.identity("school", Role::Auditor);
    let police = c.identity("police", Role::Node);

    let burst = |url: String| {
        let police = police.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for t in 0..8u8 {
                let mut client = PartnerClient::new(channel_as(&url, &police));
                tasks.spawn(async move {
                    // Until the node is gone.
                    for i in (0..=255u8).cycle() {
                        let b = pluis_proto::oprf::blind(b"bsn:111222333", &mut rand_core::OsRng)
                            .unwrap();
                        let request = EvaluateRequest {
                            context: Some(ExchangeContext {
                                exchange_id: vec![t, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                                purpose: PURPOSE.into(),
                                legal_basis: LEGAL_BASIS.into(),
                            }),
                            epoch: 0,
                            blinded: vec![b.element.to_vec()],
                            families: Vec::new(),
                        };
                        if client.evaluate(request).await.is_err() {
                            return;
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    };
    // Some exchanges, a checkpoint the auditor keeps, then a burst killed
    // in the middle.
    let url = node.url.clone();
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut client = PartnerClient::new(channel_as(&url, &police));
        let b = pluis_proto::oprf::blind(b"bsn:111222333", &mut rand_core::OsRng).unwrap();
        client
            .evaluate(EvaluateRequest {
                context: Some(ExchangeContext {
                    exchange_id: vec![9; 16],
                    purpose: PURPOSE.into(),
                    legal_basis: LEGAL_BASIS.into(),
                }),
                epoch: 0,
                blinded: vec![b.element.to_vec()],
                families: Vec::new(),
            })
            .await
            .unwrap();
    })
    .await
    .unwrap();
    let before = audit::checkpoint(&url, &auditor, None, None).await.unwrap();
    let saved = c.scratch().join("school.checkpoint");
    audit::save_checkpoint(&saved, &before).unwrap();
    let running = tokio::spawn(burst(url.clone()));
    // Killed once the burst is well under way.
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let now = audit::checkpoint(&url, &auditor, None, None).await.unwrap();
            if now.checkpoint.size >= before.checkpoint.size + 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    node.kill();
    let _ = tokio::time::timeout(Duration::from_secs(30), running).await;

    let node = NodeProcess::spawn(Path::new(NODE), &school.config).expect("the node starts");
    let after = audit::checkpoint(&node.url, &auditor, None, Some(&saved))
        .await
        .unwrap();
    assert!(
        after.checkpoint.size >= before.checkpoint.size + 100,
        "the burst left entries"
    );
    let out = c.scratch().join("school.jsonl");
    audit::export(&node.url, &auditor, &out).await.unwrap();
    let key = c.pinned_key("school").to_string();
    let verified = audit::verify(&audit::read_bundle(&out).unwrap(), Some(&key)).unwrap();
    let starts = kinds(&verified)
        .iter()
        .filter(|k| **k == Kind::NodeStart)
        .count();
    assert_eq!(starts, 2);
    drop(node);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auditor_reads_a_nodes_log_as_a_table_or_json() {
    let mut c = consortium().await;
    case_query(&c).await;
    let url = c.node("police").unwrap().url.clone();
    // `pluis audit show --node` as `role` of the police, with `extra`.
    let run = |role: Role, extra: &[&str]| {
        let tls = c.tls_args("police", role);
        let mut args: Vec<String> = vec![
            "audit".into(),
            "show".into(),
            "--node".into(),
            url.clone(),
            "--ca".into(),
            path_str(&tls.ca),
            "--cert".into(),
            path_str(&tls.cert),
            "--key".into(),
            path_str(&tls.key),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tokio::task::block_in_place(|| {
            run_to_end(Path::new(CLIENT), &args, Duration::from_secs(30))
        })
    };
    let (ok, table, stderr) = run(Role::Auditor, &[]);
    assert!(ok, "{stderr}");
    for kind in [
        "node start",
        "policy loaded",
        "case query",
        "exchange requested",
    ] {
        assert!(table.contains(kind), "{kind} missing:\n{table}");
    }
    let (ok, json, stderr) = run(Role::Auditor, &["--peer", "school", "--json"]);
    assert!(ok, "{stderr}");
    let entries: serde_json::Value = serde_json::from_str(&json).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{json}");
    assert!(entries
        .iter()
        .all(|e| e["counterparty"].as_str().unwrap().contains("/org/school/")));
    // A coordinator is not an auditor.
    let (ok, _, stderr) = run(Role::Coordinator, &[]);
    assert!(!ok && stderr.contains("auditor"), "{stderr}");
    c.stop().await;
}
