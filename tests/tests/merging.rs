//! Case queries that arrive while an exchange with a partner runs go to
//! it together in the next exchange: each gets exactly its own answer,
//! both logs show one exchange, and a merged exchange the partner refuses
//! is asked again per query, so merging never turns a query away.
//!
//! The partner is a real node process, held still with SIGSTOP while the
//! first exchange is in flight, so that the next queries must wait.

use std::path::Path;
use std::sync::Arc;

use pluis_client::coordinator::matching::{query, subjects_from_args};
use pluis_client::dev::consortium::PURPOSE;
use pluis_proto::pb::audit_entry::Kind;
use pluis_proto::pb::peer_outcome::State;
use pluis_proto::pb::MatchResponse;
use pluis_proto::Role;
use pluis_tests::{days_ago, try_metric, wait_for_metrics, NodeProcess, Signal, TestConsortium};
use tokio::task::JoinHandle;

const NODE: &str = env!("CARGO_BIN_EXE_pluis-node-e2e");

/// Keys the school holds a signal about, and one it does not.
const K1: &str = "bsn:111222333";
const K2: &str = "bsn:222333443";
const K3: &str = "bsn:123456782";
const K4: &str = "bsn:222333455";

/// Whether the school flagged the query's `i`th subject.
fn flagged(answer: &MatchResponse, i: usize) -> bool {
    answer.subjects[i]
        .domains
        .iter()
        .any(|d| d.orgs.iter().any(|o| o == "school"))
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_waiting_for_a_partner_share_its_next_exchange() {
    let date = days_ago(3);
    // The school allows the police 8 keys a day.
    let mut c = TestConsortium::setup("merge", &["police", "school"])
        .signals(
            "school",
            [
                Signal::new("111222333", "frequent_absence", &date).local_ref("LL-1"),
                Signal::new("123456782", "frequent_absence", &date).local_ref("LL-3"),
                Signal::new("222333455", "frequent_absence", &date).local_ref("LL-4"),
            ],
        )
        .peer_policies("school", |peer| peer.max_keys_per_day = Some(8))
        .config("police", |file| {
            file.metrics_listen = Some("127.0.0.1:0".into())
        })
        .create()
        .await;
    let school_config = c.node("school").unwrap().config.clone();
    // Both nodes as processes of their own, on the ports in their configs.
    c.release_listeners();
    let police = NodeProcess::spawn(Path::new(NODE), &c.node("police").unwrap().config)
        .expect("the node starts");
    let school = NodeProcess::spawn(Path::new(NODE), &school_config).expect("the node starts");
    let coordinator = Arc::new(c.identity("police", Role::Coordinator));
    let ask = |keys: &[&str]| -> JoinHandle<MatchResponse> {
        let (url, coordinator) = (police.url.clone(), coordinator.clone());
        let subjects = subjects_from_args(&keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
        tokio::spawn(async move { query(&url, &coordinator, PURPOSE, subjects).await.unwrap() })
    };
    // What the police node has in hand for the school: exchanges
    // running, case queries waiting for the next one. The test waits for
    // these, not for time to pass.
    let metrics = police
        .metrics_url
        .clone()
        .expect("the police node serves metrics");
    let load = |running: u64, waiting: u64| {
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            wait_for_metrics(&metrics, "the police node's queue", |page| {
                let at = |name: &str| try_metric(page, &format!("{name}{{peer=\"school\"}}"));
                at("pluis_case_query_exchanges_running") == Some(running as f64)
                    && at("pluis_case_queries_waiting") == Some(waiting as f64)
            })
        })
    };

    // A first query alone: the police node learns the school's limits.
    let first = ask(&[K4]).await.unwrap();
    assert_eq!(first.peers[0].state, State::Answered as i32);
    assert!(flagged(&first, 0));

    // An exchange in flight to a school that stands still; two queries
    // arrive meanwhile, one after the other, and wait.
    school.signal("STOP").expect("kill");
    let running = ask(&[K4]);
    load(1, 0).await.unwrap();
    let b = ask(&[K1, K2]);
    load(1, 1).await.unwrap();
    let c2 = ask(&[K2, K3]);
    load(1, 2).await.unwrap();
    school.signal("CONT").expect("kill");
    let (running, b, c2) = (running.await.unwrap(), b.await.unwrap(), c2.await.unwrap());
    for answer in [&running, &b, &c2] {
        assert_eq!(answer.peers[0].state, State::Answered as i32, "{answer:?}");
    }
    // One exchange for both, not the one that was running.
    assert_eq!(b.peers[0].exchange_id, c2.peers[0].exchange_id);
    assert_ne!(b.peers[0].exchange_id, running.peers[0].exchange_id);
    // Each got its own keys' answers: K1 and K3 flagged, K2 not.
    assert_eq!((flagged(&b, 0), flagged(&b, 1)), (true, false));
    assert_eq!((flagged(&c2, 0), flagged(&c2, 1)), (false, true));
    let merged = pluis_proto::hex(&b.peers[0].exchange_id);
    // 1 + 1 + 3 distinct keys of the 8 used.

    // Again, but merged the queries would pass the budget: 6 used, and
    // 1 + 2 more asked together. Asked again one by one, in the order
    // they came, the first fits.
    school.signal("STOP").expect("kill");
    let running = ask(&[K4]);
    load(1, 0).await.unwrap();
    let b = ask(&[K1]);
    load(1, 1).await.unwrap();
    let c2 = ask(&[K2, K3]);
    load(1, 2).await.unwrap();
    school.signal("CONT").expect("kill");
    let (running, b, c2) = (running.await.unwrap(), b.await.unwrap(), c2.await.unwrap());
    assert_eq!(running.peers[0].state, State::Answered as i32);
    assert_eq!(b.peers[0].state, State::Answered as i32, "{b:?}");
    assert!(flagged(&b, 0));
    assert_eq!(c2.peers[0].state, State::Denied as i32, "{c2:?}");
    assert!(c2.peers[0].detail.contains("max_keys_per_day"), "{c2:?}");

    // The school's log: the merged exchange of three keys served once,
    // the merged exchange refused, then each query on its own.
    let school_log = c.verified_log("school", &school.url).await;
    let evaluations: Vec<(Kind, u64)> = school_log
        .iter()
        .filter(|e| e.detail.starts_with("evaluate") || e.kind() == Kind::ExchangeDenied)
        .map(|e| (Kind::try_from(e.kind).unwrap(), e.keys_asked))
        .collect();
    assert_eq!(
        evaluations,
        [
            (Kind::ExchangeServed, 1),
            (Kind::ExchangeServed, 1),
            (Kind::ExchangeServed, 3),
            (Kind::ExchangeServed, 1),
            (Kind::ExchangeDenied, 3),
            (Kind::ExchangeServed, 1),
            (Kind::ExchangeDenied, 2),
        ]
    );
    // The police's case-query entries name the exchange each rode on.
    let police_log = c.verified_log("police", &police.url).await;
    let riding = police_log
        .iter()
        .filter(|e| e.kind() == Kind::CaseQuery)
        .filter(|e| e.detail.contains(&format!("school:{merged}")))
        .count();
    assert_eq!(riding, 2);
}
