//! User story: partner nodes evaluate each other's blinded keys — only
//! for the purposes, and within the budgets, their policies allow.

// Real node processes are waited for by the wall clock (a deadline for
// a port, a log line, a file), never to decide what a test asserts.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use pluis_client::dev::consortium::PURPOSE;
use pluis_node::config::ConfigFile;
use pluis_node::AssessmentStep;
use pluis_proto::oprf::{blind, Blinded};
use pluis_proto::pb::audit_entry::Kind;
use pluis_proto::pb::partner_client::PartnerClient;
use pluis_proto::pb::{EvaluateRequest, ExchangeContext};
use pluis_proto::taxonomy::LifeDomain;
use pluis_proto::Role;
use pluis_tests::{any_port, channel_as, days_ago, NodeProcess, Signal, TestConsortium};
use tonic::Code;

const NODE: &str = env!("CARGO_BIN_EXE_pluis-node-e2e");

fn request(purpose: &str, blinded: &[Blinded]) -> EvaluateRequest {
    EvaluateRequest {
        context: Some(ExchangeContext {
            exchange_id: vec![7; 16],
            purpose: purpose.into(),
            legal_basis: "partnership agreement, art. 4".into(),
        }),
        epoch: 0,
        blinded: blinded.iter().map(|b| b.element.to_vec()).collect(),
        families: Vec::new(),
    }
}

fn blinded(keys: &[&str]) -> Vec<Blinded> {
    keys.iter()
        .map(|k| blind(k.as_bytes(), &mut rand_core::OsRng).unwrap())
        .collect()
}

#[tokio::test]
async fn a_peer_gets_evaluations_that_unblind_to_one_output_per_key() {
    let mut c = TestConsortium::start("evaluate", &["police", "school"]).await;
    let keys = ["bsn:111222333", "bsn:123456782", "bsn:111222333"];
    let b = blinded(&keys);
    let response = c
        .partner("police", "school", Role::Node)
        .evaluate(request(PURPOSE, &b))
        .await
        .expect("evaluate")
        .into_inner();
    assert!(response.epoch > 0);
    // Whole tables by default: an entry opens only under an evaluated key.
    assert_eq!(response.min_prefix_bits, 0);
    let outputs: Vec<_> = b
        .iter()
        .zip(&keys)
        .zip(&response.evaluated)
        .map(|((b, k), e)| b.finalize(k.as_bytes(), e).unwrap())
        .collect();
    assert_eq!(
        outputs[0], outputs[2],
        "same key, same output, whatever the blind"
    );
    assert_ne!(outputs[0], outputs[1]);
    assert_ne!(
        b[0].element, b[2].element,
        "the responder saw two different elements"
    );
    c.stop().await;
}

#[tokio::test]
async fn unlisted_purposes_and_bad_points_are_refused() {
    let mut c = TestConsortium::start("refuse", &["police", "school"]).await;
    let mut school = c.partner("police", "school", Role::Node);
    let err = school
        .evaluate(request("marketing", &blinded(&["bsn:111222333"])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("policy rule purposes"),
        "{}",
        err.message()
    );

    let mut bad = request(PURPOSE, &blinded(&["bsn:111222333", "bsn:123456782"]));
    bad.blinded[1] = vec![0xff; 32];
    let err = school.evaluate(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with("blinded[1]: "),
        "{}",
        err.message()
    );
    let mut identity = request(PURPOSE, &blinded(&["bsn:111222333"]));
    identity.blinded[0] = vec![0; 32];
    assert_eq!(
        school.evaluate(identity).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    c.stop().await;
}

#[tokio::test]
async fn a_member_without_a_policy_entry_is_answered_with_nothing() {
    // The police node keeps healthcare as a peer to call, but gives it no
    // purposes: the default policy shares nothing.
    let mut c = TestConsortium::setup("nopolicy", &["police", "healthcare"])
        .peer_policies("police", |peer| peer.purposes.clear())
        .start()
        .await;
    let healthcare = c.identity("healthcare", Role::Node);
    let err = PartnerClient::new(channel_as(&c.node("police").unwrap().url, &healthcare))
        .evaluate(request(PURPOSE, &blinded(&["bsn:111222333"])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("policy rule purposes"),
        "{}",
        err.message()
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daily_key_budget_is_enforced_and_survives_a_restart() {
    // Run the police node as a process, with a budget of 5 keys a day for school.
    let c = TestConsortium::setup("budget", &["police", "school"])
        .config("police", any_port)
        .peer_policies("police", |peer| peer.max_keys_per_day = Some(5))
        .create()
        .await;
    let police = c.node("police").unwrap();
    let school = c.identity("school", Role::Node);

    let mut node = NodeProcess::spawn(Path::new(NODE), &police.config).expect("the node starts");
    let mut client = PartnerClient::new(channel_as(&node.url, &school));
    let three = blinded(&["bsn:111222333", "bsn:123456782", "bsn:010000008"]);
    assert!(client.evaluate(request(PURPOSE, &three)).await.is_ok());
    let err = client.evaluate(request(PURPOSE, &three)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("max_keys_per_day"),
        "{}",
        err.message()
    );
    assert!(
        client.evaluate(request(PURPOSE, &three[..2])).await.is_ok(),
        "5 of 5"
    );
    assert!(node.terminate().expect("the node stops").status.success());

    let mut node = NodeProcess::spawn(Path::new(NODE), &police.config).expect("the node starts");
    let mut client = PartnerClient::new(channel_as(&node.url, &school));
    let err = client
        .evaluate(request(PURPOSE, &three[..1]))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("max_keys_per_day") && err.message().contains("5 used today"),
        "{}",
        err.message()
    );
    assert!(node.terminate().expect("the node stops").status.success());
}

fn subject(label: &str, key: &str) -> pluis_proto::pb::Subject {
    pluis_proto::pb::Subject {
        label: label.into(),
        keys: vec![key.into()],
    }
}

fn domains(result: &pluis_proto::pb::SubjectResult) -> Vec<(String, Vec<String>)> {
    result
        .domains
        .iter()
        .map(|d| (d.domain.clone(), d.orgs.clone()))
        .collect()
}

const FAMILY_ORGS: [&str; 4] = ["police", "municipality", "school", "healthcare"];

/// A family the police, school and healthcare know of (and someone the
/// municipality knows), nodes started; `healthcare` may change the
/// healthcare node's config first.
async fn family_consortium(
    name: &str,
    healthcare: impl FnOnce(&mut ConfigFile) + Send + 'static,
) -> TestConsortium {
    family_setup(name)
        .config("healthcare", healthcare)
        .start()
        .await
}

/// [`family_consortium`], not yet started.
fn family_setup(name: &str) -> pluis_tests::Setup {
    let date = days_ago(30);
    TestConsortium::setup(name, &FAMILY_ORGS)
        .signals(
            "police",
            [Signal::new("111222333", "weapon_possession", &date)],
        )
        .signals(
            "school",
            [Signal::new("111222333", "frequent_absence", &date)],
        )
        .signals(
            "healthcare",
            [Signal::new("123456782", "unexplained_injuries", &date)],
        )
        // Someone else, at the municipality only, so no table is empty.
        .signals(
            "municipality",
            [Signal::new("240000006", "household_debts", &date)],
        )
}

/// [`family_setup`] where every node refuses prefixes shorter than 16
/// bits to its partners (so no whole tables), started.
async fn family_without_whole_tables(name: &str) -> TestConsortium {
    let mut setup = family_setup(name);
    for org in FAMILY_ORGS {
        setup = setup.peer_policies(org, |peer| peer.min_prefix_bits = Some(16));
    }
    setup.start().await
}

async fn case_query(
    c: &TestConsortium,
    subjects: Vec<pluis_proto::pb::Subject>,
) -> pluis_proto::pb::MatchResponse {
    let coordinator = c.identity("police", Role::Coordinator);
    let channel = channel_as(&c.node("police").unwrap().url, &coordinator);
    pluis_proto::pb::coordinator_client::CoordinatorClient::new(channel)
        .r#match(pluis_proto::pb::MatchRequest {
            purpose: PURPOSE.into(),
            subjects,
        })
        .await
        .expect("match")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_family_with_signals_at_three_partners_gets_exactly_those_domains() {
    let c = family_consortium("family", |_| ()).await;
    let response = case_query(
        &c,
        vec![
            subject("child 1", "bsn:111-222-333"),
            subject("child 2", "bsn:123456782"),
        ],
    )
    .await;
    assert_eq!(
        domains(&response.subjects[0]),
        [
            ("safety".to_owned(), vec!["police".to_owned()]),
            ("education".to_owned(), vec!["school".to_owned()]),
        ]
    );
    assert_eq!(response.subjects[0].assessment, "watch");
    assert_eq!(
        domains(&response.subjects[1]),
        [("health".to_owned(), vec!["healthcare".to_owned()])]
    );
    let case = response.case_total.unwrap();
    assert_eq!(case.domain_count, 3);
    assert_eq!(
        case.assessment,
        "discuss in a multidisciplinary case meeting"
    );
    assert_eq!(response.peers.len(), 3);
    assert!(
        response.peers.iter().all(|p| p.state == 1),
        "{:?}",
        response.peers
    );

    let nobody = case_query(&c, vec![subject("unknown", "bsn:010000008")]).await;
    assert!(nobody.subjects[0].domains.is_empty());
    assert_eq!(nobody.subjects[0].assessment, "no combined signal");

    // The coordinator's node sets its own assessment rule.
    let mut c = c;
    c.edit_config("police", |file| {
        file.assessment.push(AssessmentStep {
            min_domains: 2,
            advice: "plan a case meeting".into(),
        })
    })
    .unwrap();
    c.restart("police").await.unwrap();
    let again = case_query(&c, vec![subject("child 1", "bsn:111222333")]).await;
    assert_eq!(again.subjects[0].assessment, "plan a case meeting");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_whose_policy_excludes_health_never_reveals_health() {
    let mut c = family_consortium("family", |file| {
        // healthcare shows police everything but health.
        for peer in file.peers.iter_mut().filter(|p| p.org == "police") {
            peer.domains.retain(|d| *d != LifeDomain::Health);
        }
    })
    .await;
    let response = case_query(&c, vec![subject("child 2", "bsn:123456782")]).await;
    assert!(
        response.subjects[0].domains.is_empty(),
        "{:?}",
        response.subjects[0]
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_partner_gives_a_partial_answer_naming_it_within_the_deadline() {
    let mut c = family_consortium("family", |_| ()).await;
    let school = c.nodes.iter_mut().find(|n| n.org == "school").unwrap();
    school.stop().await.unwrap();
    let started = std::time::Instant::now();
    let response = case_query(&c, vec![subject("child 1", "bsn:111222333")]).await;
    assert!(started.elapsed() < pluis_node::PEER_DEADLINE + std::time::Duration::from_secs(2));
    let school = response.peers.iter().find(|p| p.org == "school").unwrap();
    assert_ne!(school.state, 1, "{school:?}");
    assert!(!school.detail.is_empty());
    assert_eq!(
        domains(&response.subjects[0]),
        [("safety".to_owned(), vec!["police".to_owned()])]
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_a_responder_sends_holds_an_identifier_or_a_reference() {
    use prost::Message;
    let mut c = family_without_whole_tables("family").await;
    // Act as the school's node towards the police node, as ask_peer does,
    // and keep every byte the police node answers with.
    let school = c.identity("school", Role::Node);
    let mut client = PartnerClient::new(channel_as(&c.node("police").unwrap().url, &school));
    let keys = ["bsn:111222333", "bsn:123456782"];
    let b = blinded(&keys);
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let response = client
        .evaluate(request(PURPOSE, &b))
        .await
        .unwrap()
        .into_inner();
    sent.push(response.encode_to_vec());
    for ((bl, k), evaluated) in b.iter().zip(keys).zip(&response.evaluated) {
        let output = bl.finalize(k.as_bytes(), evaluated).unwrap();
        let prefix = pluis_proto::table::Prefix::of(&pluis_proto::table::tag(&output), 16);
        let mut req = pluis_proto::pb::GetTableRequest {
            context: request(PURPOSE, &b).context,
            epoch: response.epoch,
            prefix_bits: 16,
            prefix: prefix.bytes().to_vec(),
            more_prefixes: Vec::new(),
        };
        let mut stream = client.get_table(req.clone()).await.unwrap().into_inner();
        while let Some(chunk) = tokio_stream::StreamExt::next(&mut stream).await {
            sent.push(chunk.unwrap().encode_to_vec());
        }
        // Denials and errors are messages too.
        req.prefix_bits = 0;
        req.prefix.clear();
        sent.push(
            client
                .get_table(req)
                .await
                .err()
                .unwrap()
                .message()
                .as_bytes()
                .to_vec(),
        );
    }
    let mut bad = request(PURPOSE, &b);
    bad.blinded[0] = vec![0xff; 32];
    sent.push(
        client
            .evaluate(bad)
            .await
            .unwrap_err()
            .message()
            .as_bytes()
            .to_vec(),
    );
    let raw: [&[u8]; 7] = [
        b"111222333",
        b"123456782",
        b"240000006",
        b"PV-2026-0001",
        b"LL-4711",
        b"ZD-1234",
        b"GEM-77",
    ];
    for message in &sent {
        for needle in raw {
            assert!(
                !message.windows(needle.len()).any(|w| w == needle),
                "a responder message holds {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
    assert!(sent.len() >= 4);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_coordinators_json_follows_the_documented_schema() {
    let mut c = family_consortium("family", |_| ()).await;
    let response = case_query(&c, vec![subject("child 1", "bsn:111222333")]).await;
    let json = pluis_client::coordinator::matching::to_json(PURPOSE, &response);
    assert_eq!(json["purpose"], PURPOSE);
    assert_eq!(json["subjects"][0]["label"], "child 1");
    assert_eq!(json["subjects"][0]["domain_count"], 2);
    assert_eq!(json["subjects"][0]["domains"][0]["domain"], "safety");
    assert_eq!(json["subjects"][0]["domains"][0]["orgs"][0], "police");
    assert_eq!(json["case"]["assessment"], "watch");
    let partners = json["partners"].as_array().unwrap();
    assert_eq!(partners.len(), 3);
    assert!(partners.iter().all(|p| p["state"] == "answered"
        && p["exchange_id"].as_str().unwrap().len() == 32
        && p["table_size"].as_u64().unwrap() >= 1));
    let text = pluis_client::coordinator::matching::render(&response);
    assert!(text.contains("partners answered: 3 of 3"), "{text}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_rotation_still_answers_the_previous_epoch_within_its_grace() {
    use pluis_proto::table::{open_label, tag, Prefix};
    // The police node's clock is the test's: 30 s epochs, 20 s of grace,
    // and time moved by hand, not waited for.
    let clock = pluis_node::Clock::manual(1_800_000_000);
    let mut c = TestConsortium::setup("rotation", &["police", "school"])
        .signals(
            "police",
            [Signal::new("111222333", "weapon_possession", &days_ago(3)).local_ref("PV-1")],
        )
        .config("police", |file| {
            file.epoch_length = Some("30s".into());
            file.epoch_grace = Some("20s".into());
        })
        .clock("police", clock.clone())
        .start()
        .await;

    let school = c.identity("school", Role::Node);
    let mut client = PartnerClient::new(channel_as(&c.node("police").unwrap().url, &school));
    let key = "bsn:111222333";
    let b = blinded(&[key]);
    let response = client
        .evaluate(request(PURPOSE, &b))
        .await
        .unwrap()
        .into_inner();
    let output = b[0]
        .finalize(key.as_bytes(), &response.evaluated[0])
        .unwrap();
    let prefix = Prefix::of(&tag(&output), 16);
    let table_request = |epoch| pluis_proto::pb::GetTableRequest {
        context: request(PURPOSE, &b).context,
        epoch,
        prefix_bits: 16,
        prefix: prefix.bytes().to_vec(),
        more_prefixes: Vec::new(),
    };
    // Epoch E covers [(E-1)·30 s, E·30 s); the next one starts at E·30 s.
    let next_epoch_starts = response.epoch * 30;
    assert_eq!(
        next_epoch_starts,
        1_800_000_000 + 30,
        "the node reads the test's clock"
    );
    clock.set(next_epoch_starts + 1);
    let mut stream = client
        .get_table(table_request(response.epoch))
        .await
        .expect("within grace")
        .into_inner();
    let mut opened = false;
    while let Some(chunk) = tokio_stream::StreamExt::next(&mut stream).await {
        for entry in chunk.unwrap().entries {
            opened |= entry.tag == tag(&output) && open_label(&output, &entry.label).is_ok();
        }
    }
    assert!(
        opened,
        "the previous epoch's table still answers during the grace period"
    );

    clock.set(next_epoch_starts + 20);
    let err = client
        .get_table(table_request(response.epoch))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("is not served"), "{}", err.message());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_screening_lists_own_cases_that_reach_the_threshold() {
    let date = days_ago(30);
    let mut setup = TestConsortium::setup("screen", &FAMILY_ORGS)
        .signals(
            "police",
            [
                Signal::new("111222333", "weapon_possession", &date).local_ref("PV-1"),
                Signal::new("123456782", "petty_theft_young_child", &date).local_ref("PV-2"),
            ],
        )
        .signals(
            "school",
            [Signal::new("111222333", "frequent_absence", &date).local_ref("LL-1")],
        )
        .signals(
            "healthcare",
            [Signal::new("111222333", "unexplained_injuries", &date).local_ref("ZD-1")],
        )
        .signals(
            "municipality",
            [Signal::new("240000006", "household_debts", &date).local_ref("GEM-1")],
        );
    // Bulk screening fetches whole tables: the partners allow that.
    for org in FAMILY_ORGS {
        setup = setup.peer_policies(org, |peer| peer.min_prefix_bits = Some(0));
    }
    let mut c = setup.start().await;
    let coordinator = c.identity("police", Role::Coordinator);
    let url = c.node("police").unwrap().url.clone();
    let mut progress = Vec::new();
    let response =
        pluis_client::coordinator::screen::run_reporting(&url, &coordinator, PURPOSE, 3, |p| {
            progress.push((p.keys, p.partners_done, p.partners))
        })
        .await
        .unwrap();
    assert_eq!(response.keys_screened, 2);
    assert_eq!(
        progress,
        [(2, 0, 3), (2, 1, 3), (2, 2, 3), (2, 3, 3)],
        "how far it is, while it runs"
    );
    let refs: Vec<&str> = response.hits.iter().map(|h| h.local_ref.as_str()).collect();
    assert_eq!(refs, ["PV-1"], "{response:?}");
    assert_eq!(response.hits[0].domain_count, 3);
    assert!(
        response.peers.iter().all(|p| p.state == 1),
        "{:?}",
        response.peers
    );
    assert!(response.peers.iter().all(|p| !p.table_from_cache));
    let sizes: Vec<u64> = response.peers.iter().map(|p| p.table_size).collect();
    assert_eq!(sizes, [1, 1, 1], "healthcare, municipality, school");

    // Again: every partner's whole table is reused, not fetched.
    let all = pluis_client::coordinator::screen::run(&url, &coordinator, PURPOSE, 1)
        .await
        .unwrap();
    assert_eq!(all.hits.len(), 2);
    assert!(
        all.peers.iter().all(|p| p.table_from_cache),
        "{:?}",
        all.peers
    );

    // A partner restarted serves the very table it stored (same digest),
    // so the cached copy still holds.
    c.restart("school").await.unwrap();
    let after = pluis_client::coordinator::screen::run(&url, &coordinator, PURPOSE, 3)
        .await
        .unwrap();
    assert_eq!(after.hits.len(), 1);
    assert!(
        after.peers.iter().all(|p| p.table_from_cache),
        "{:?}",
        after.peers
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_screening_is_denied_where_whole_tables_are_not_allowed() {
    let mut c = family_without_whole_tables("family").await;
    let coordinator = c.identity("police", Role::Coordinator);
    let url = c.node("police").unwrap().url.clone();
    let response = pluis_client::coordinator::screen::run(&url, &coordinator, PURPOSE, 3)
        .await
        .unwrap();
    assert!(
        response.peers.iter().all(|p| p.state == 2),
        "{:?}",
        response.peers
    );
    assert!(
        response.peers[0].detail.contains("min_prefix_bits"),
        "{}",
        response.peers[0].detail
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_screening_needs_a_purpose_that_allows_it_at_the_coordinators_own_node() {
    let mut c = TestConsortium::setup("noscreen", &["police", "school"])
        .config("police", |file| file.purposes[0].screening = false)
        .start()
        .await;
    let coordinator = c.identity("police", Role::Coordinator);
    let url = c.node("police").unwrap().url.clone();
    let err = pluis_client::coordinator::screen::run(&url, &coordinator, PURPOSE, 3)
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("policy rule purposes") && text.contains("screening = true"),
        "{text}"
    );
    // Nothing was asked of the school; the refusal is in the police log.
    let school = c.verified_log("school", &c.url("school")).await;
    assert!(
        !school.iter().any(|e| e.kind() == Kind::ExchangeServed),
        "the school was not asked"
    );
    let police = c.verified_log("police", &c.url("police")).await;
    assert!(
        police
            .iter()
            .any(|e| e.kind() == Kind::CallRefused && e.detail.contains("screening = true")),
        "the refusal is logged"
    );
    // Case queries for the purpose still work.
    let answer = pluis_client::coordinator::matching::query(
        &url,
        &coordinator,
        PURPOSE,
        pluis_client::coordinator::matching::subjects_from_args(&["bsn:111222333".into()]),
    )
    .await
    .unwrap();
    assert_eq!(answer.peers.len(), 1);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_screening_with_more_hits_than_one_message_holds_comes_in_pages() {
    // 90,000 children known at both: their hits are more than gRPC's 4 MiB
    // message limit, and more than one page (5,000) each.
    let date = days_ago(30);
    let bsns: Vec<String> = (0..)
        .filter_map(|n: u32| {
            let prefix = 20_000_000 + n;
            pluis_proto::identifier::elfproef_check_digit(prefix).map(|d| format!("{prefix}{d}"))
        })
        .take(90_000)
        .collect();
    let rows = |signal: &str, prefix: &str| -> Vec<Signal> {
        bsns.iter()
            .enumerate()
            .map(|(i, bsn)| Signal::new(bsn, signal, &date).local_ref(&format!("{prefix}-{i}")))
            .collect()
    };
    let mut c = TestConsortium::setup("pages", &["police", "school"])
        .signals("police", rows("weapon_possession", "PV"))
        .signals("school", rows("frequent_absence", "LL"))
        .peer_policies("school", |peer| {
            peer.min_prefix_bits = Some(0);
            peer.max_keys_per_day = Some(1_000_000);
        })
        .start()
        .await;
    let coordinator = c.identity("police", Role::Coordinator);
    let url = c.node("police").unwrap().url.clone();
    let response = pluis_client::coordinator::screen::run(&url, &coordinator, PURPOSE, 2)
        .await
        .unwrap();
    assert_eq!(response.keys_screened, 90_000);
    assert_eq!(response.hits.len(), 90_000);
    assert!(response.hits.iter().all(|h| h.domain_count == 2));
    assert!(response.last);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_next_epochs_tables_are_built_before_it_starts() {
    const LENGTH: u64 = 24;
    // The police node's clock is the test's, at the start of an epoch
    // (and far from midnight): the next epoch begins 24 s on, and the
    // node starts its tables 6 s (a quarter epoch) before that.
    const START: u64 = 1_800_000_000;
    assert_eq!(START % LENGTH, 0);
    let clock = pluis_node::Clock::manual(START);
    let mut c = TestConsortium::setup("ahead", &["police", "school"])
        .signals(
            "police",
            [Signal::new("111222333", "weapon_possession", &days_ago(3)).local_ref("PV-1")],
        )
        .config("police", |file| {
            file.epoch_length = Some(format!("{LENGTH}s"));
            file.epoch_grace = Some("2s".into());
        })
        .clock("police", clock.clone())
        .start()
        .await;
    let config = pluis_node::Config::load(&c.node("police").unwrap().config).unwrap();
    let tables = config.data_dir.join("tables");
    let next_epoch = (START + LENGTH) / LENGTH + 1;
    let ahead = || -> Vec<String> {
        std::fs::read_dir(&tables)
            .map(|dir| {
                dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|name| name.starts_with(&format!("e{next_epoch}-")))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Before the lead time nothing is built for the next epoch.
    clock.set(START + LENGTH - 7);
    assert!(ahead().is_empty(), "{:?}", ahead());
    // Within it, the node builds on its background threads: wait for the
    // file it writes, not for time to pass. (A node that waited on the
    // wall clock would build 18 s from now: past this deadline.)
    clock.set(START + LENGTH - 5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ahead().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        ahead().len(),
        1,
        "the school's view of epoch {next_epoch} is ready before it starts"
    );
    c.stop().await;
}
