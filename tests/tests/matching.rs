//! User story: partner nodes evaluate each other's blinded keys — only
//! for the purposes, and within the budgets, their policies allow.

use std::path::Path;

use pluis_client::consortium::{LocalConsortium, PURPOSE};
use pluis_proto::oprf::{blind, Blinded};
use pluis_proto::pb::partner_client::PartnerClient;
use pluis_proto::pb::{EvaluateRequest, ExchangeContext};
use pluis_proto::Role;
use pluis_tests::{channel_as, NodeProcess, TestConsortium};
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
    }
}

fn blinded(keys: &[&str]) -> Vec<Blinded> {
    keys.iter()
        .map(|k| blind(k.as_bytes(), &mut rand_core::OsRng).unwrap())
        .collect()
}

#[tokio::test]
async fn a_peer_gets_evaluations_that_unblind_to_one_output_per_key() {
    let c = TestConsortium::start("evaluate", &["police", "school"]).await;
    let keys = ["bsn:111222333", "bsn:123456782", "bsn:111222333"];
    let b = blinded(&keys);
    let response = c
        .partner("police", "school", Role::Node)
        .evaluate(request(PURPOSE, &b))
        .await
        .expect("evaluate")
        .into_inner();
    assert!(response.epoch > 0);
    assert_eq!(response.min_prefix_bits, 16);
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
    let c = TestConsortium::start("refuse", &["police", "school"]).await;
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
    let dir = tempfile::tempdir().unwrap();
    pluis_tests::install_crypto_provider();
    let mut c = LocalConsortium::create(
        &dir.path().join("nopolicy"),
        "nopolicy",
        &["police", "healthcare"],
    )
    .await
    .unwrap();
    // The police node keeps healthcare as a peer to call, but gives it no
    // purposes: the default policy shares nothing.
    let config = c.node("police").unwrap().config.clone();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!("purposes = [\"{PURPOSE}\"]\n"), "");
    std::fs::write(&config, text).unwrap();
    c.start_all().unwrap();
    let healthcare = c
        .tls_args("healthcare", Role::Node)
        .load(Role::Node)
        .unwrap();
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
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daily_key_budget_is_enforced_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    pluis_tests::install_crypto_provider();
    let c = LocalConsortium::create(&dir.path().join("budget"), "budget", &["police", "school"])
        .await
        .unwrap();
    // Run the police node as a process, with a budget of 5 keys a day for school.
    let police = c.node("police").unwrap();
    let text = std::fs::read_to_string(&police.config)
        .unwrap()
        .replace(&police.addr.to_string(), "127.0.0.1:0")
        .replace(
            "granularity = \"domain\"",
            "granularity = \"domain\"\nmax_keys_per_day = 5",
        );
    std::fs::write(&police.config, text).unwrap();
    let school = c.tls_args("school", Role::Node).load(Role::Node).unwrap();

    let mut node = NodeProcess::spawn(Path::new(NODE), &police.config);
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
    assert!(node.terminate().status.success());

    let mut node = NodeProcess::spawn(Path::new(NODE), &police.config);
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
    assert!(node.terminate().status.success());
}
