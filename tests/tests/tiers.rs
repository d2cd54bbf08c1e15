//! Typo-tolerant matching over real nodes: a child registered differently
//! by each partner is found — exactly, probably (with the reason) or
//! possibly (no flags, not counted) — and a twin never becomes more than
//! possible.

use pluis_client::dev::consortium::PURPOSE;
use pluis_proto::pb::{self, audit_entry::Kind, peer_outcome::State, MatchResponse, SubjectResult};
use pluis_proto::Role;
use pluis_tests::{channel_as, days_ago, Signal, TestConsortium};

const ORGS: [&str; 5] = [
    "police",
    "school",
    "youthcare",
    "municipality",
    "healthcare",
];

/// Amina Mehmedović (born 4 March 2012) as four partners registered her,
/// and her twin sister Sara at the health service.
async fn consortium(name: &str) -> TestConsortium {
    setup(name).start().await
}

fn setup(name: &str) -> pluis_tests::Setup {
    let date = days_ago(30);
    TestConsortium::setup(name, &ORGS)
        .signals(
            "school",
            [Signal::named(
                "Mehmedović",
                "Amina",
                "2012-03-04",
                "frequent_absence",
                &date,
            )],
        )
        .signals(
            "youthcare",
            // A Dutch transliteration.
            [Signal::named(
                "Mehmedovitsj",
                "Amina",
                "2012-03-04",
                "child_protection_measure",
                &date,
            )],
        )
        .signals(
            "municipality",
            // Day and month swapped, no diacritics.
            [Signal::named(
                "Mehmedovic",
                "Amina",
                "2012-04-03",
                "household_debts",
                &date,
            )],
        )
        .signals(
            "healthcare",
            // The twin: same surname and birth date, another initial.
            [Signal::named(
                "Mehmedović",
                "Sara",
                "2012-03-04",
                "unexplained_injuries",
                &date,
            )],
        )
}

async fn ask(c: &TestConsortium, key: &str) -> MatchResponse {
    let coordinator = c.identity("police", Role::Coordinator);
    let channel = channel_as(&c.node("police").unwrap().url, &coordinator);
    pb::coordinator_client::CoordinatorClient::new(channel)
        .r#match(pb::MatchRequest {
            purpose: PURPOSE.into(),
            subjects: vec![pb::Subject {
                label: "child".into(),
                keys: vec![key.into()],
            }],
        })
        .await
        .expect("match")
        .into_inner()
}

/// Per org that knows or may know the subject: (tier, reasons).
fn matches(s: &SubjectResult) -> Vec<(String, String, Vec<String>)> {
    s.matches
        .iter()
        .map(|m| (m.org.clone(), m.tier.clone(), m.reasons.clone()))
        .collect()
}

fn flagging_orgs(s: &SubjectResult) -> Vec<String> {
    let mut orgs: Vec<String> = s.domains.iter().flat_map(|d| d.orgs.clone()).collect();
    orgs.sort();
    orgs
}

#[tokio::test(flavor = "multi_thread")]
async fn spelling_variants_are_probable_and_a_twin_only_possible() {
    let mut c = consortium("tiers").await;
    let answer = ask(&c, "nd:Mehmedović,A,2012-03-04,Amina").await;
    assert!(
        answer.peers.iter().all(|p| p.state == 1),
        "{:?}",
        answer.peers
    );
    let amina = &answer.subjects[0];
    let found = matches(amina);
    let tier = |org: &str| {
        found
            .iter()
            .find(|(o, ..)| o == org)
            .map(|(_, t, r)| (t.as_str(), r.clone()))
    };
    assert_eq!(tier("school"), Some(("exact", vec!["exact".to_owned()])));
    let (youthcare, reasons) = tier("youthcare").expect("the transliteration is found");
    assert_eq!(youthcare, "probable", "{reasons:?}");
    assert!(reasons.contains(&"spelling".to_owned()), "{reasons:?}");
    assert_eq!(
        tier("municipality"),
        Some(("probable", vec!["day_month_swapped".to_owned()]))
    );
    // The twin at the health service: possible, without flags, uncounted.
    assert_eq!(
        tier("healthcare"),
        Some(("possible", vec!["no_initial".to_owned()]))
    );
    assert_eq!(
        flagging_orgs(amina),
        ["municipality", "school", "youthcare"],
        "{:?}",
        amina.domains
    );
    assert!(amina.domains.iter().all(|d| d.domain != "health"));
    assert_eq!(amina.domain_count, 3);
    assert_eq!((amina.exact_domains, amina.probable_domains), (1, 2));
    for d in &amina.domains {
        let probable = d.domain != "education";
        assert_eq!(!d.probable_orgs.is_empty(), probable, "{d:?}");
    }
    let why = &amina
        .matches
        .iter()
        .find(|m| m.org == "healthcare")
        .unwrap();
    assert!(
        why.explanation.contains("sibling or twin"),
        "{}",
        why.explanation
    );
    // As the coordinator reads it in a terminal, and in the JSON.
    let text = pluis_client::coordinator::matching::render(&answer);
    for expected in [
        "youthcare?",
        "municipality?",
        "3 (2 probable)",
        "probable matches (marked ?; check the identity before acting):",
        "child at municipality: day and month of birth swapped",
        "possible matches (no flags shown, not counted;",
        "child at healthcare: surname and birth date agree; could be a sibling or twin",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    let json = pluis_client::coordinator::matching::to_json(PURPOSE, &answer);
    let subject = &json["subjects"][0];
    assert_eq!(
        subject["matches"].as_array().map(Vec::len),
        Some(4),
        "{json}"
    );
    assert_eq!(subject["exact_domains"], 1);
    assert_eq!(subject["probable_domains"], 2);

    // Asked about the twin: the health service exactly; Amina's records
    // at most possibly — never exact, never probable, never her flags.
    let sara = ask(&c, "nd:Mehmedovic,S,2012-03-04,Sara").await;
    let sara = &sara.subjects[0];
    for (org, tier, reasons) in matches(sara) {
        match org.as_str() {
            "healthcare" => assert_eq!(tier, "exact"),
            _ => assert_eq!(tier, "possible", "{org}: {reasons:?}"),
        }
    }
    assert_eq!(flagging_orgs(sara), ["healthcare"]);
    assert_eq!(sara.domain_count, 1);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_question_with_exact_keys_only_names_no_families_and_answers_as_before() {
    let mut c = consortium("tiers-bsn").await;
    // An unknown BSN: exact family only, nothing found anywhere.
    let answer = ask(&c, "bsn:111222333").await;
    assert!(answer.subjects[0].matches.is_empty());
    assert!(answer.subjects[0].domains.is_empty());
    // A name key without a given name still finds the probable variants
    // that need none (spelling, sound), and not the ones that need one.
    let answer = ask(&c, "nd:Mehmedovich,A,2012-03-04").await;
    let found = matches(&answer.subjects[0]);
    assert!(
        found
            .iter()
            .any(|(o, t, _)| o == "school" && t == "probable"),
        "{found:?}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_weak_families_budget_refuses_past_its_limit_and_logs_it_but_keeps_the_exact_answer() {
    // Youth care lets its partners ask 2 weak-family keys a day; one
    // person with a given name asks 3 (no initial, given name, month).
    let mut c = setup("tiers-budget")
        .peer_policies("youthcare", |peer| {
            peer.max_possible_keys_per_day = Some(2);
        })
        .start()
        .await;
    // Spelt as youth care spells her: its record matches exactly.
    let answer = ask(&c, "nd:Mehmedovitsj,A,2012-03-04,Amina").await;
    let youthcare = answer.peers.iter().find(|p| p.org == "youthcare").unwrap();
    // The variants were refused; asked again with the exact keys only,
    // youth care answered.
    assert_eq!(youthcare.state(), State::Answered, "{youthcare:?}");
    assert!(
        youthcare.detail.contains("max_possible_keys_per_day")
            && youthcare.detail.contains("exact keys only"),
        "{}",
        youthcare.detail
    );
    let youth_care = answer.subjects[0]
        .domains
        .iter()
        .find(|d| d.domain == "youth_care")
        .expect("youth care's exact match is in the answer");
    assert_eq!(youth_care.orgs, ["youthcare"]);
    assert!(youth_care.probable_orgs.is_empty(), "an exact match");
    // The others answered as before.
    let school = answer.peers.iter().find(|p| p.org == "school").unwrap();
    assert_eq!(school.state(), State::Answered);
    assert!(school.detail.is_empty(), "{}", school.detail);
    // Youth care's log holds the refusal, naming the rule and the caller,
    // never a key; and then the exact question it served.
    let log = c.verified_log("youthcare", &c.url("youthcare")).await;
    let refusal = log
        .iter()
        .find(|e| {
            e.kind() == Kind::ExchangeDenied && e.detail.contains("max_possible_keys_per_day")
        })
        .expect("the refusal is logged");
    assert!(refusal.actor.contains("/org/police/"), "{refusal:?}");
    assert!(!refusal.detail.to_lowercase().contains("mehmedov"));
    let served: Vec<_> = log
        .iter()
        .filter(|e| e.kind() == Kind::ExchangeServed && e.budget_day != 0)
        .collect();
    assert_eq!(served.len(), 1, "the exact question: {served:?}");
    assert_eq!(
        (served[0].possible_keys_used, served[0].probable_keys_used),
        (0, 0),
        "no variant in it"
    );
    // What the school served is charged per tier, in the entries an
    // auditor reads.
    let school_log = c.verified_log("school", &c.url("school")).await;
    let charged = school_log
        .iter()
        .find(|e| e.kind() == Kind::ExchangeServed && e.budget_day != 0)
        .expect("the school served and charged");
    assert_eq!(charged.possible_keys_used, 3);
    assert_eq!(charged.persons_used, 1);
    assert!(charged.probable_keys_used > 0);
    assert_eq!(charged.budget_used, charged.keys_evaluated, "{charged:?}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_hold_min_bucket_entries_and_smaller_ones_are_not_fetched() {
    let date = days_ago(30);
    // 200 persons at the school: a 16-bit bucket would hold none of the
    // others; 200 / 2^2 = 50 ≥ 32.
    let pupils: Vec<Signal> = pluis_tests::valid_bsns(200)
        .iter()
        .map(|bsn| Signal::new(bsn, "frequent_absence", &date))
        .collect();
    let mut c = TestConsortium::setup("tiers-buckets", &["police", "school", "municipality"])
        .signals("school", pupils)
        .signals(
            "municipality",
            [Signal::new("240000006", "household_debts", &date)],
        )
        .peer_policies("municipality", |peer| peer.min_prefix_bits = Some(16))
        .start()
        .await;
    let answer = ask(&c, "bsn:111222333").await;
    let state = |org: &str| {
        let p = answer.peers.iter().find(|p| p.org == org).unwrap();
        (p.state(), p.detail.clone())
    };
    assert_eq!(state("school").0, State::Answered);
    let (municipality, why) = state("municipality");
    assert_eq!(municipality, State::Denied);
    assert!(why.contains("min_bucket_entries"), "{why}");
    let log = c.verified_log("police", &c.url("police")).await;
    let tables: Vec<(String, String)> = log
        .iter()
        .filter(|e| e.kind() == Kind::ExchangeRequested && e.detail.starts_with("table"))
        .map(|e| (e.counterparty.clone(), e.detail.clone()))
        .collect();
    assert_eq!(
        tables.len(),
        1,
        "only the school was asked for buckets: {tables:?}"
    );
    assert!(tables[0].0.contains("/org/school/"), "{tables:?}");
    assert!(
        tables[0].1.starts_with("table prefix_bits=2 buckets=1"),
        "{tables:?}"
    );
    c.stop().await;
}
