//! User story: partner nodes, coordinators and auditors reach each other
//! only over mutual TLS, and each only where its role allows.

use pluis_proto::pb::{self, GetCheckpointRequest, MatchRequest, StatusRequest};
use pluis_proto::Role;
use pluis_tests::{channel_as, channel_without_client_cert, TestConsortium};
use tonic::Code;

const ORGS: [&str; 3] = ["police", "school", "healthcare"];

#[tokio::test]
async fn a_coordinator_gets_its_nodes_status_with_every_peer_reachable() {
    let mut c = TestConsortium::start("status", &ORGS).await;
    let status = c
        .coordinator("police", "police", Role::Coordinator)
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.org, "police");
    assert_eq!(status.consortium, "status");
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    let mut peers: Vec<_> = status.peers.iter().map(|p| p.org.as_str()).collect();
    peers.sort_unstable();
    assert_eq!(peers, ["healthcare", "school"]);
    for peer in &status.peers {
        assert!(peer.reachable, "{} unreachable: {}", peer.org, peer.detail);
        assert_eq!(peer.url, c.url(&peer.org));
    }
    c.stop().await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_in_the_handshake() {
    let mut c = TestConsortium::start("nocert", &ORGS).await;
    let channel = channel_without_client_cert(&c.url("police"), &c.dir().join("ca.pem"));
    let err = pb::coordinator_client::CoordinatorClient::new(channel)
        .status(StatusRequest {})
        .await
        .expect_err("a client without a certificate must not get an answer");
    // The call never reached gRPC: the server ended the connection in TLS
    // with an alert, so this is a transport failure, not a status that a
    // handler or the authoriser chose.
    let detail = pluis_transport::status_detail(&err);
    assert_eq!(err.message(), "transport error", "{detail}");
    assert!(
        detail.contains("received fatal alert: CertificateRequired"),
        "{detail}"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_in_the_handshake() {
    let mut c = TestConsortium::start("realca", &ORGS).await;
    // A second consortium with the very same name and org names, but its
    // own CA: only the CA signature can tell them apart.
    let rogue = tempfile::tempdir().unwrap();
    pluis_client::dev::certs::init(&pluis_client::dev::certs::InitOptions {
        out: rogue.path().to_owned(),
        consortium: "realca".into(),
        orgs: vec!["police".into()],
        force: false,
    })
    .unwrap();
    let (cert, key) =
        pluis_client::dev::certs::identity_paths(rogue.path(), "police", Role::Coordinator);

    // The rogue client trusts the real CA (so it accepts the server), but
    // the server does not accept the rogue certificate.
    let rogue_identity = pluis_transport::tls::TlsIdentity::load(
        &c.dir().join("ca.pem"),
        &cert,
        &key,
        Role::Coordinator,
    )
    .unwrap();
    let err = pb::coordinator_client::CoordinatorClient::new(channel_as(
        &c.url("police"),
        &rogue_identity,
    ))
    .status(StatusRequest {})
    .await
    .expect_err("a certificate from another CA must be refused");
    // Same issuer name, wrong key: the server's chain check fails on the
    // signature and answers with a TLS alert.
    let detail = pluis_transport::status_detail(&err);
    assert_eq!(err.message(), "transport error", "{detail}");
    assert!(detail.contains("received fatal alert"), "{detail}");

    // And a client of the other CA does not accept the real server either.
    let own_ca = pluis_transport::tls::TlsIdentity::load(
        &rogue.path().join("ca.pem"),
        &cert,
        &key,
        Role::Coordinator,
    )
    .unwrap();
    let err = pb::coordinator_client::CoordinatorClient::new(channel_as(&c.url("police"), &own_ca))
        .status(StatusRequest {})
        .await
        .expect_err("the real node's certificate must not satisfy another CA");
    let detail = pluis_transport::status_detail(&err);
    // Same issuer name, other key: the signature check is what fails.
    assert!(
        detail.contains("invalid peer certificate: BadSignature"),
        "{detail}"
    );
    c.stop().await;
}

#[tokio::test]
async fn an_auditor_calling_match_is_denied_naming_both_roles() {
    let mut c = TestConsortium::start("roles", &ORGS).await;
    let err = c
        .coordinator("police", "police", Role::Auditor)
        .r#match(MatchRequest::default())
        .await
        .expect_err("auditors may not match");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message()
            .contains("requires role coordinator of org police"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("spiffe://roles/org/police/auditor"),
        "{}",
        err.message()
    );
    c.stop().await;
}

#[tokio::test]
async fn a_coordinator_is_offered_the_purposes_of_its_own_node_only() {
    let mut c = TestConsortium::start("purposes", &ORGS).await;
    let own = c.identity("police", Role::Coordinator);
    let purposes = pluis_client::coordinator::status::purposes(&c.url("police"), &own)
        .await
        .unwrap();
    let offered: Vec<(&str, &str)> = purposes
        .iter()
        .map(|p| (p.name.as_str(), p.legal_basis.as_str()))
        .collect();
    assert_eq!(
        offered,
        [(
            pluis_client::dev::consortium::PURPOSE,
            pluis_client::dev::consortium::LEGAL_BASIS
        )]
    );
    let err = c
        .coordinator("police", "school", Role::Coordinator)
        .purposes(pb::PurposesRequest {})
        .await
        .expect_err("a school coordinator is not offered the police node's purposes");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    c.stop().await;
}

#[tokio::test]
async fn another_orgs_coordinator_is_denied() {
    let mut c = TestConsortium::start("cross", &ORGS).await;
    let err = c
        .coordinator("police", "school", Role::Coordinator)
        .status(StatusRequest {})
        .await
        .expect_err("a school coordinator may not use the police node");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("of org police"), "{}", err.message());
    assert!(
        err.message()
            .contains("spiffe://cross/org/school/coordinator"),
        "{}",
        err.message()
    );
    c.stop().await;
}

#[tokio::test]
async fn each_service_admits_exactly_its_role() {
    let mut c = TestConsortium::start("matrix", &ORGS).await;
    for role in Role::ALL {
        let partner = c
            .partner("police", "school", role)
            .evaluate(pb::EvaluateRequest::default())
            .await
            .expect_err("an empty Evaluate request is refused");
        let audit = c
            .audit("police", "police", role)
            .get_checkpoint(GetCheckpointRequest {})
            .await;
        // An auditor gets the signed checkpoint; anyone else is refused.
        assert_eq!(audit.is_ok(), role == Role::Auditor, "Audit as {role}");
        let coordinator = c
            .coordinator("police", "police", role)
            .r#match(MatchRequest::default())
            .await
            .expect_err("an empty Match request is refused");
        // Past authorisation a call reaches its handler (which refuses the
        // empty request); before it, it is PERMISSION_DENIED naming the role.
        let check = |status: &tonic::Status, allowed: bool, service: &str| {
            if allowed {
                assert!(
                    status.code() != Code::Unauthenticated
                        && !status.message().contains("service requires role"),
                    "{service} as {role}: {status:?}"
                );
            } else {
                assert_eq!(status.code(), Code::PermissionDenied, "{service} as {role}");
                assert!(
                    status.message().contains("service requires role"),
                    "{status:?}"
                );
            }
        };
        check(&partner, role == Role::Node, "Partner");
        if let Err(status) = &audit {
            check(status, false, "Audit");
        }
        check(&coordinator, role == Role::Coordinator, "Coordinator");
    }
    c.stop().await;
}

#[tokio::test]
async fn health_and_reflection_are_served_over_mtls() {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let mut c = TestConsortium::start("health", &ORGS).await;
    let channel = c.channel("police", "police", Role::Auditor);
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "pluis.v1.Coordinator".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(
        health.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.next().await.expect("one response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response: {response:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in [
        "pluis.v1.Partner",
        "pluis.v1.Coordinator",
        "pluis.v1.Audit",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&service), "{service} missing from {names:?}");
    }
    assert!(
        !names.contains(&"pluis.v1.Admin"),
        "the Admin service is served only on the node's Unix socket: {names:?}"
    );
    c.stop().await;
}
