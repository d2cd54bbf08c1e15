//! The node's gRPC router: the Partner, Coordinator and Audit services,
//! each behind the one authoriser ([`crate::service::auth`]) with its own
//! message size cap, gRPC health and reflection, and the edge layer.

use std::sync::Arc;

use pluis_proto::pb;
use pluis_proto::pb::audit_server::AuditServer;
use pluis_proto::pb::coordinator_server::CoordinatorServer;
use pluis_proto::pb::partner_server::PartnerServer;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Router;
use tonic::transport::Server;
use tower::layer::util::{Identity, Stack};

use crate::server::state::{NodeError, NodeState};
use crate::service::audit::AuditService;
use crate::service::auth::{Audience, Authorizer};
use crate::service::coordinator::CoordinatorService;
use crate::service::edge::EdgeLayer;
use crate::service::partner::PartnerService;

/// The largest request each service decodes: a partner's `Evaluate` of
/// the most elements the protocol allows (4096 × 34 bytes) and a context;
/// a coordinator's case query of 64 subjects of 16 keys; an auditor's
/// requests are a few numbers.
const MAX_PARTNER_MESSAGE: usize = 256 * 1024;
const MAX_COORDINATOR_MESSAGE: usize = 256 * 1024;
const MAX_AUDIT_MESSAGE: usize = 4 * 1024;

/// The router of the three network services behind their authoriser,
/// with gRPC health and reflection (of the network services only: the
/// admin service is on the admin socket), and the edge layer that logs
/// what tonic refuses before any handler runs.
pub(super) async fn router(
    state: &Arc<NodeState>,
) -> Result<Router<Stack<EdgeLayer, Identity>>, NodeError> {
    let auth = Authorizer::new(&state.id)
        .with_revocation_check(revocation_check(state))
        .with_refusal_log(refusal_log(state))
        .with_other_auditors(other_auditors(state));
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<PartnerServer<PartnerService>>().await;
    health
        .set_serving::<CoordinatorServer<CoordinatorService>>()
        .await;
    health.set_serving::<AuditServer<AuditService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::NETWORK_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(NodeError::Reflection)?;
    Ok(Server::builder()
        .layer(EdgeLayer::new(state))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(InterceptedService::new(
            PartnerServer::new(PartnerService::new(state.clone()))
                .max_decoding_message_size(MAX_PARTNER_MESSAGE),
            auth.interceptor(Audience::Partner),
        ))
        .add_service(InterceptedService::new(
            CoordinatorServer::new(CoordinatorService::new(state.clone()))
                .max_decoding_message_size(MAX_COORDINATOR_MESSAGE),
            auth.interceptor(Audience::Coordinator),
        ))
        .add_service(InterceptedService::new(
            AuditServer::new(AuditService::new(state.clone()))
                .max_decoding_message_size(MAX_AUDIT_MESSAGE),
            auth.interceptor(Audience::Audit),
        )))
}

/// Whether a caller's certificate is revoked by the CRLs in force now
/// (connections made before a reload are checked on every call).
fn revocation_check(state: &Arc<NodeState>) -> crate::service::auth::RevocationCheck {
    let state = Arc::downgrade(state);
    Arc::new(move |serial| {
        let Some(state) = state.upgrade() else {
            return false;
        };
        state.live().identity.revocations().is_revoked(serial)
    })
}

/// Whether the config in force lets auditors of `org` read this log.
fn other_auditors(state: &Arc<NodeState>) -> crate::service::auth::AuditorCheck {
    let state = Arc::downgrade(state);
    Arc::new(move |org| {
        state
            .upgrade()
            .is_some_and(|state| state.live().config.auditor_orgs.contains(org))
    })
}

/// Logs (and counts) every call the authoriser refuses. The entry is
/// appended at once and made durable on a task of its own: an interceptor
/// cannot wait.
fn refusal_log(state: &Arc<NodeState>) -> crate::service::auth::OnRefused {
    let state = Arc::downgrade(state);
    Arc::new(move |refusal| {
        let Some(state) = state.upgrade() else {
            return;
        };
        let logged = state.record_refusal(&refusal);
        if logged {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let audit = state.audit.clone();
                runtime.spawn(async move {
                    if let Err(e) = audit.durable().await {
                        tracing::error!(error = %e, "could not make a refusal's entry durable");
                    }
                });
            }
        }
    })
}
