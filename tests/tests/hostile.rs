//! User story: a partner (or any holder of a consortium certificate) is
//! hostile. It sends hand-made protobuf the `pluis` client never would:
//! megabyte purposes, forged log lines, a legal basis it made up, table
//! calls outside any exchange, calls to services its role may not use.
//! Every such call is refused with a message naming the field or rule,
//! and every refusal is one bounded audit entry (never the offending
//! text) and a metric; a flood of them is summarised, so the log stays
//! small and exportable.

// Real node processes are waited for by the wall clock (a deadline for
// a port, a log line, a file), never to decide what a test asserts.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::Duration;

use pluis_client::dev::consortium::{LEGAL_BASIS, PURPOSE};
use pluis_node::config::ConfigFile;
use pluis_proto::pb::audit_entry::Kind;
use pluis_proto::pb::{self, EvaluateRequest, GetTableRequest};
use pluis_proto::Role;
use pluis_tests::{
    any_port, channel_as, evaluate_request, exchange_context, http_get, metric, NodeProcess,
    Signal, TestConsortium,
};
use tonic::Code;

const NODE: &str = env!("CARGO_BIN_EXE_pluis-node-e2e");

fn with_metrics(file: &mut ConfigFile) {
    file.metrics_listen = Some("127.0.0.1:0".into());
}

fn refused(log: &[pb::AuditEntry]) -> Vec<&pb::AuditEntry> {
    log.iter()
        .filter(|e| e.kind() == Kind::CallRefused || e.kind() == Kind::ExchangeDenied)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn megabyte_fields_are_refused_by_name_and_logged_as_small_entries() {
    let mut c = TestConsortium::setup("bounds", &["police", "school"])
        .config("police", with_metrics)
        .start()
        .await;
    let mut school = c.partner("police", "school", Role::Node);
    // A 200 kB purpose is refused by its field's bound; 900 kB and 1.5 MiB
    // ones (which made the log unexportable, or could not be logged at
    // all) by the message size Evaluate takes, before they are decoded.
    for size in [200_000, 900_000, 1_500_000, 200_000, 900_000, 900_000] {
        let huge = "p".repeat(size);
        let err = school
            .evaluate(evaluate_request(
                exchange_context(1, &huge, LEGAL_BASIS),
                &["bsn:111222333"],
            ))
            .await
            .unwrap_err();
        if size < 256 * 1024 {
            assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
            assert_eq!(
                err.message(),
                format!("context.purpose: {size} bytes; at most 128 allowed")
            );
        } else {
            assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
            assert!(
                err.message().contains("the limit is: 262144 bytes"),
                "{}",
                err.message()
            );
        }
    }
    let err = school
        .evaluate(evaluate_request(
            exchange_context(1, PURPOSE, &"b".repeat(300)),
            &["bsn:111222333"],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "context.legal_basis: 300 bytes; at most 256 allowed"
    );

    let log = c.verified_log("police", &c.url("police")).await;
    let refusals = refused(&log);
    assert_eq!(refusals.len(), 7, "one entry per refusal: {refusals:#?}");
    for entry in &refusals {
        assert_eq!(entry.kind, Kind::CallRefused as i32);
        assert!(entry.actor.ends_with("/org/school/node"), "{entry:?}");
        assert!(entry.detail.contains("rule input"), "{}", entry.detail);
        assert!(
            entry.detail.len() < 300 && !entry.detail.contains("ppp"),
            "{}",
            entry.detail
        );
        assert!(entry.purpose.is_empty() && entry.legal_basis.is_empty());
    }
    assert!(refusals[0].detail.contains("200000 bytes"));
    assert!(refusals[2]
        .detail
        .contains("the request was larger than this call takes"));
    let metrics = c.node("police").unwrap().metrics.unwrap();
    let page = http_get(&format!("http://{metrics}/metrics")).1;
    assert_eq!(
        metric(&page, "pluis_refused_total{reason=\"input\"}"),
        7.0,
        "{page}"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_flood_of_refusals_is_summarised_past_the_budget() {
    // The police node's clock is the test's: the whole flood falls in one
    // interval, and the interval ends when the test says.
    const START: u64 = 1_800_000_000;
    let clock = pluis_node::Clock::manual(START);
    let mut c = TestConsortium::setup("flood", &["police", "school"])
        .config("police", |file| {
            file.refusals_logged_per_interval = Some(3);
            file.refusal_interval = Some("60s".into());
        })
        .clock("police", clock.clone())
        .start()
        .await;
    let mut school = c.partner("police", "school", Role::Node);
    for _ in 0..10 {
        let err = school
            .evaluate(evaluate_request(
                exchange_context(2, "marketing", LEGAL_BASIS),
                &["bsn:111222333"],
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    // The summary is written once the interval is over.
    clock.set(START + 61);
    let start = std::time::Instant::now();
    let log = loop {
        let log = c.verified_log("police", &c.url("police")).await;
        if refused(&log).len() > 3 || start.elapsed() > Duration::from_secs(20) {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let refusals = refused(&log);
    assert_eq!(refusals.len(), 4, "3 one by one, then a summary");
    for denied in &refusals[..3] {
        assert_eq!(denied.kind, Kind::ExchangeDenied as i32);
        assert!(denied.detail.contains("rule purposes"), "{}", denied.detail);
        assert!(
            denied.purpose.is_empty(),
            "a purpose this node does not know is not recorded"
        );
    }
    let summary = refusals[3];
    assert_eq!(summary.kind, Kind::CallRefused as i32);
    assert_eq!(summary.refusals, 7);
    assert!(
        summary.detail.starts_with("summary: 7 more refusals")
            && summary.detail.contains("purposes 7"),
        "{}",
        summary.detail
    );
    c.stop().await;
}

#[tokio::test]
async fn a_legal_basis_other_than_the_agreed_one_is_refused() {
    let mut c = TestConsortium::start("legalbasis", &["police", "school"]).await;
    let mut school = c.partner("police", "school", Role::Node);
    for claimed in ["consent", " ", "partnership agreement, art. 5"] {
        let err = school
            .evaluate(evaluate_request(
                exchange_context(3, PURPOSE, claimed),
                &["bsn:111222333"],
            ))
            .await
            .unwrap_err();
        let expected = if claimed.trim().is_empty() {
            Code::InvalidArgument
        } else {
            Code::PermissionDenied
        };
        assert_eq!(err.code(), expected, "{claimed:?}: {err:?}");
        if expected == Code::PermissionDenied {
            assert!(
                err.message().contains("policy rule legal_basis"),
                "{}",
                err.message()
            );
        }
    }
    // The agreed text, with spaces around it, is served.
    let agreed = format!("  {LEGAL_BASIS} ");
    school
        .evaluate(evaluate_request(
            exchange_context(4, PURPOSE, &agreed),
            &["bsn:111222333"],
        ))
        .await
        .expect("the agreed legal basis is served");

    let log = c.verified_log("police", &c.url("police")).await;
    let denied: Vec<_> = log
        .iter()
        .filter(|e| e.kind() == Kind::ExchangeDenied)
        .collect();
    assert_eq!(denied.len(), 2);
    for entry in denied {
        assert_eq!(entry.purpose, PURPOSE);
        assert!(
            entry.legal_basis.is_empty(),
            "the claimed text is not recorded"
        );
        assert!(entry.detail.contains("legal_basis"), "{}", entry.detail);
    }
    c.stop().await;
}

#[tokio::test]
async fn table_buckets_are_served_only_inside_an_exchange_and_never_more_than_its_keys() {
    let mut c = TestConsortium::setup("buckets", &["police", "school"])
        .signals(
            "police",
            [Signal::new("111222333", "petty_theft_young_child", "2026-11-01").local_ref("p-1")],
        )
        .peer_policies("police", |peer| peer.min_prefix_bits = Some(16))
        .start()
        .await;
    let mut school = c.partner("police", "school", Role::Node);
    let epoch = school
        .evaluate(evaluate_request(
            exchange_context(9, PURPOSE, LEGAL_BASIS),
            &["bsn:123456782"],
        ))
        .await
        .expect("evaluate")
        .into_inner()
        .epoch;
    let table = |id: u8, prefixes: usize| GetTableRequest {
        context: Some(exchange_context(id, PURPOSE, LEGAL_BASIS)),
        epoch,
        prefix_bits: 16,
        prefix: vec![0, 0],
        more_prefixes: (1..prefixes)
            .map(|i| (i as u16).to_be_bytes().to_vec())
            .collect(),
    };
    // Without an Evaluate of its own, a table call gets nothing.
    let err = school.get_table(table(10, 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("policy rule exchange"),
        "{}",
        err.message()
    );
    // 1024 buckets for one evaluated key: refused.
    let err = school.get_table(table(9, 1024)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("policy rule buckets"),
        "{}",
        err.message()
    );
    // One bucket for one key: served, once.
    let mut stream = school.get_table(table(9, 1)).await.unwrap().into_inner();
    while stream.message().await.unwrap().is_some() {}
    let err = school.get_table(table(9, 1)).await.unwrap_err();
    assert!(
        err.message().contains("policy rule buckets"),
        "{}",
        err.message()
    );
    // The whole table is refused (min_prefix_bits 16), within the exchange too.
    let whole = GetTableRequest {
        prefix_bits: 0,
        prefix: Vec::new(),
        more_prefixes: Vec::new(),
        ..table(9, 1)
    };
    let err = school.get_table(whole).await.unwrap_err();
    assert!(
        err.message().contains("min_prefix_bits"),
        "{}",
        err.message()
    );
    c.stop().await;
}

#[tokio::test]
async fn refusals_by_role_are_logged_and_auditors_read_only_their_own_orgs_log() {
    let mut c = TestConsortium::setup("roles", &["police", "school", "healthcare"])
        .config("police", |file| {
            file.auditor_orgs = vec!["healthcare".into()]
        })
        .start()
        .await;
    // A coordinator calling the Partner service, a school auditor reading
    // the police log: refused, each logged.
    let err = c
        .partner("police", "school", Role::Coordinator)
        .evaluate(EvaluateRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c
        .audit("police", "school", Role::Auditor)
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("of org police"), "{}", err.message());
    // Healthcare's auditors are named in the police config.
    c.audit("police", "healthcare", Role::Auditor)
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .expect("a named other org's auditor reads the log");

    let log = c.verified_log("police", &c.url("police")).await;
    let refusals = refused(&log);
    let actors: Vec<&str> = refusals.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(
        actors,
        [
            "spiffe://roles/org/school/coordinator",
            "spiffe://roles/org/school/auditor"
        ]
    );
    assert!(refusals
        .iter()
        .all(|e| e.detail.contains("rule authorisation")));
    c.stop().await;
}

#[test]
fn a_forged_log_line_in_a_purpose_never_reaches_the_nodes_log() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let c = TestConsortium::setup("inject", &["police", "school"])
        .config("police", any_port)
        .for_processes(&runtime);
    let police = c.node("police").unwrap();
    let mut node = NodeProcess::spawn(Path::new(NODE), &police.config).expect("the node starts");
    let school = c.identity("school", Role::Node);
    runtime.block_on(async {
        let mut client =
            pluis_proto::pb::partner_client::PartnerClient::new(channel_as(&node.url, &school));
        for purpose in [
            "x\n2026-12-03T00:00:00Z  INFO FORGED: exchange served\u{1b}[2J\0".to_owned(),
            "y".repeat(1_000_000),
            "unknown-but-harmless".to_owned(),
        ] {
            let err = client
                .evaluate(evaluate_request(
                    exchange_context(5, &purpose, LEGAL_BASIS),
                    &["bsn:111222333"],
                ))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err.code(),
                    Code::InvalidArgument | Code::PermissionDenied | Code::OutOfRange
                ),
                "{err:?}"
            );
        }
    });
    let output = node.terminate().expect("the node stops");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("FORGED"), "{stderr}");
    assert!(!stderr.contains('\u{1b}') && !stderr.contains('\0'));
    assert!(
        !stderr.contains("yyyyyyyy"),
        "a megabyte purpose is not logged"
    );
    assert!(
        !stderr.contains("unknown-but-harmless"),
        "a purpose this node does not know is not logged"
    );
    assert!(stderr.len() < 20_000, "{} bytes of log", stderr.len());
}

/// `EvaluateRequest` as a foreign client may write it: its strings as
/// bytes, so that they need not be UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct RawContext {
    #[prost(bytes = "vec", tag = "1")]
    exchange_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    purpose: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    legal_basis: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawEvaluate {
    #[prost(message, optional, tag = "1")]
    context: Option<RawContext>,
    #[prost(uint64, tag = "2")]
    epoch: u64,
    #[prost(bytes = "vec", repeated, tag = "3")]
    blinded: Vec<Vec<u8>>,
}

#[tokio::test]
async fn undecodable_messages_and_unknown_methods_are_refused_as_the_senders_fault_and_logged() {
    let mut c = TestConsortium::start("decode", &["police", "school"]).await;
    let channel = c.channel("police", "school", Role::Node);
    let raw = RawEvaluate {
        context: Some(RawContext {
            exchange_id: vec![6; 16],
            purpose: b"exploitation-\xff\xfe".to_vec(),
            legal_basis: LEGAL_BASIS.as_bytes().to_vec(),
        }),
        epoch: 0,
        blinded: vec![vec![0; 32]],
    };
    let call = |path: &'static str| {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        let raw = raw.clone();
        async move {
            grpc.ready().await.unwrap();
            grpc.unary(
                tonic::Request::new(raw),
                http::uri::PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::<RawEvaluate, pb::EvaluateResponse>::default(),
            )
            .await
            .unwrap_err()
        }
    };
    let err = call("/pluis.v1.Partner/Evaluate").await;
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with("not a valid message") && err.message().contains("purpose"),
        "{}",
        err.message()
    );
    let err = call("/pluis.v1.Partner/Forge").await;
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");

    let log = c.verified_log("police", &c.url("police")).await;
    let details: Vec<(&str, &str)> = refused(&log)
        .iter()
        .map(|e| (e.actor.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(
        details,
        [
            (
                "spiffe://decode/org/school/node",
                "denied by policy rule input: the request did not decode as its message type"
            ),
            (
                "spiffe://decode/org/school/node",
                "denied by policy rule method: no such method is served here"
            ),
        ]
    );
    c.stop().await;
}

/// A mutual-TLS connection as `org`'s `role` that sends nothing at all
/// (not even the HTTP/2 preface).
async fn silent_connection(
    c: &TestConsortium,
    node_org: &str,
    org: &str,
    role: Role,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let identity = c.identity(org, role);
    let config = identity
        .client_config(pluis_transport::tls::ExpectedServer::AnyNode)
        .unwrap();
    let addr = c.url(node_org).trim_start_matches("https://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Whether the node closed `stream` within `wait`.
async fn closed_within(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    wait: Duration,
) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 64];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // Session tickets and the like: keep reading.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_capped_per_identity_and_in_all() {
    let mut c = TestConsortium::setup("conncap", &["police", "school", "healthcare"])
        .config("police", |file| {
            with_metrics(file);
            file.max_connections = Some(3);
            file.max_connections_per_identity = Some(2);
            file.first_request_timeout = Some("60s".into());
        })
        .start()
        .await;
    // In TLS 1.3 a client is done with its handshake before the node has
    // read the last message of it, so the node may count a later
    // connection first. Each connection is opened once the node has
    // counted the one before.
    let metrics = format!(
        "http://{}/metrics",
        c.node("police").unwrap().metrics.unwrap()
    );
    let counted = |n: f64| {
        let metrics = metrics.clone();
        tokio::task::block_in_place(move || {
            pluis_tests::wait_for_metrics(&metrics, "the node to count the connection", |page| {
                pluis_tests::try_metric(page, "pluis_connections_total").unwrap_or(0.0) >= n
            })
        });
    };
    let mut first = silent_connection(&c, "police", "school", Role::Node).await;
    counted(1.0);
    let mut second = silent_connection(&c, "police", "school", Role::Node).await;
    counted(2.0);
    let mut third = silent_connection(&c, "police", "school", Role::Node).await;
    assert!(
        closed_within(&mut third, Duration::from_secs(10)).await,
        "a third connection of one identity is closed"
    );
    let mut other = silent_connection(&c, "police", "healthcare", Role::Node).await;
    counted(3.0);
    let mut fourth = silent_connection(&c, "police", "police", Role::Coordinator).await;
    assert!(
        closed_within(&mut fourth, Duration::from_secs(10)).await,
        "a fourth connection in all is closed"
    );
    for held in [&mut first, &mut second, &mut other] {
        assert!(
            !closed_within(held, Duration::from_millis(300)).await,
            "connections within the caps stay open"
        );
    }
    drop((first, second, other));
    // Slots come back when connections close: the coordinator gets in.
    let start = std::time::Instant::now();
    loop {
        let status = c
            .coordinator("police", "police", Role::Coordinator)
            .status(pb::StatusRequest {})
            .await;
        if status.is_ok() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = c.verified_log("police", &c.url("police")).await;
    let refusals: Vec<(&str, &str)> = refused(&log)
        .iter()
        .map(|e| (e.actor.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(
        refusals,
        [
            (
                "spiffe://conncap/org/school/node",
                "denied by policy rule connections: 2 connections open for this identity, at most max_connections_per_identity = 2"
            ),
            (
                "spiffe://conncap/org/police/coordinator",
                "denied by policy rule connections: 3 connections open, at most max_connections = 3"
            ),
        ]
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_connections_are_closed_and_callers_carry_on() {
    let mut c = TestConsortium::setup("connidle", &["police", "school"])
        .config("police", |file| {
            file.first_request_timeout = Some("1s".into());
            file.idle_timeout = Some("2s".into());
        })
        .start()
        .await;
    let mut silent = silent_connection(&c, "police", "school", Role::Node).await;
    assert!(
        closed_within(&mut silent, Duration::from_secs(10)).await,
        "a connection that never sends its first request is closed"
    );
    // A real client's connection goes idle and is closed; its next call
    // connects again.
    let mut coordinator = c.coordinator("police", "police", Role::Coordinator);
    coordinator.status(pb::StatusRequest {}).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = std::time::Instant::now();
    loop {
        match coordinator.status(pb::StatusRequest {}).await {
            Ok(_) => break,
            // The first call after the close may see it.
            Err(e) => assert!(start.elapsed() < Duration::from_secs(10), "{e:?}"),
        }
    }
    c.stop().await;
}

/// A partner that announces a table of 10 entries and then streams
/// random entries without end.
struct BalloonPartner;

#[tonic::async_trait]
impl pb::partner_server::Partner for BalloonPartner {
    async fn evaluate(
        &self,
        request: tonic::Request<EvaluateRequest>,
    ) -> Result<tonic::Response<pb::EvaluateResponse>, tonic::Status> {
        let request = request.into_inner();
        Ok(tonic::Response::new(pb::EvaluateResponse {
            epoch: 1,
            // Valid points: the blinded elements themselves.
            evaluated: request.blinded,
            table_size: 10,
            min_prefix_bits: 0,
            receipt: None,
            table_digest: vec![0; 32],
            max_keys_per_request: 100,
        }))
    }

    type GetTableStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<pb::TableChunk, tonic::Status>> + Send>,
    >;

    async fn get_table(
        &self,
        _request: tonic::Request<GetTableRequest>,
    ) -> Result<tonic::Response<Self::GetTableStream>, tonic::Status> {
        let chunk = pb::TableChunk {
            epoch: 1,
            entries: (0..8192u32)
                .map(|i| pb::TableEntry {
                    tag: [i.to_be_bytes().to_vec(), vec![7; 12]].concat(),
                    label: vec![9; 60],
                })
                .collect(),
            receipt: None,
        };
        // About 3 GB if read to the end.
        let chunks = std::iter::repeat_n(chunk, 6_000).map(Ok);
        Ok(tonic::Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_streaming_more_than_it_announced_is_abandoned_and_named() {
    let mut c = TestConsortium::setup("balloon", &["police", "school"])
        .create()
        .await;
    c.inner.release_listeners();
    c.inner.restart("police").await.unwrap();
    // The school's address answers with a node of its own making, on the
    // school's real certificate.
    let school = c.identity("school", Role::Node);
    let acceptor = tokio_rustls::TlsAcceptor::from(school.server_config(None).unwrap());
    let listener = tokio::net::TcpListener::bind(c.node("school").unwrap().addr)
        .await
        .unwrap();
    let incoming = async_stream_of(listener, acceptor);
    let fake = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::partner_server::PartnerServer::new(BalloonPartner))
            .serve_with_incoming(incoming),
    );
    let answer = c
        .coordinator("police", "police", Role::Coordinator)
        .r#match(pb::MatchRequest {
            purpose: PURPOSE.into(),
            subjects: vec![pb::Subject {
                label: "child".into(),
                keys: vec!["bsn:111222333".into()],
            }],
        })
        .await
        .expect("the case query is answered")
        .into_inner();
    let school = &answer.peers[0];
    assert_eq!(school.org, "school");
    assert_eq!(
        school.state,
        pb::peer_outcome::State::Failed as i32,
        "{school:?}"
    );
    assert!(
        school.detail.contains("more table entries than 1039,"),
        "{}",
        school.detail
    );
    fake.abort();
    let log = c.verified_log("police", &c.url("police")).await;
    assert!(log.iter().any(|e| e.kind() == Kind::ExchangeRequested
        && e.detail.contains("more table entries than 1039,")));
    c.stop().await;
}

/// TLS connections accepted on `listener`, as tonic's incoming stream.
fn async_stream_of(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> impl tokio_stream::Stream<Item = Result<pluis_transport::tls::MtlsStream, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(tls) = acceptor.accept(tcp).await {
                if tx
                    .send(Ok(pluis_transport::tls::MtlsStream::new(tls)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[tokio::test]
async fn a_coordinators_overlong_key_is_the_coordinators_error_not_a_partners() {
    let mut c = TestConsortium::start("longkey", &["police", "school"]).await;
    let err = c
        .coordinator("police", "police", Role::Coordinator)
        .r#match(pb::MatchRequest {
            purpose: PURPOSE.into(),
            subjects: vec![pb::Subject {
                label: "child".into(),
                keys: vec![format!("nd:{},J,2012-03-04", "Jansen".repeat(40))],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        err.message(),
        "subjects[0].keys[0]: 256 bytes; at most 160 allowed"
    );
    // No partner was asked.
    let log = c.verified_log("school", &c.url("school")).await;
    assert!(log
        .iter()
        .all(|e| e.kind() != Kind::ExchangeServed && e.kind() != Kind::ExchangeDenied));
    c.stop().await;
}
