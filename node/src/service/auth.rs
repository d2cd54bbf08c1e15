//! Authorisation: one check, in one place, before any handler runs.
//!
//! TLS has already proved that the caller holds a certificate of this
//! consortium's CA. Here the caller's SPIFFE id is read from that
//! certificate and matched against what the called service needs:
//!
//! | service       | caller must be                         |
//! |---------------|----------------------------------------|
//! | `Partner`     | a `node` of this consortium            |
//! | `Coordinator` | a `coordinator` of this node's own org |
//! | `Audit`       | an `auditor` of this node's own org, or of an org its config's `auditor_orgs` names |
//!
//! The caller's identity is then left in the request's extensions as a
//! [`Caller`] for handlers and logs.
//!
//! A certificate revoked after its connection was made (a CRL loaded by a
//! reload) is refused here on the connection's next call, so revoking
//! does not wait for the caller to reconnect.

use std::sync::Arc;

use pluis_proto::{Role, Serial, SpiffeId};
use tonic::{Request, Status};

use crate::policy::Rule;
use crate::tls::PeerIdentity;

/// Which service is being called, and so which identity it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Node-to-node matching.
    Partner,
    /// A coordinator's queries to its own node.
    Coordinator,
    /// The auditor's view of the log.
    Audit,
}

impl Audience {
    fn role(self) -> Role {
        match self {
            Audience::Partner => Role::Node,
            Audience::Coordinator => Role::Coordinator,
            Audience::Audit => Role::Auditor,
        }
    }

    fn service(self) -> &'static str {
        match self {
            Audience::Partner => "Partner",
            Audience::Coordinator => "Coordinator",
            Audience::Audit => "Audit",
        }
    }
}

/// The authenticated caller of a request, put there by [`Authorizer`].
#[derive(Debug, Clone)]
pub struct Caller(pub SpiffeId);

/// Whether a certificate serial is revoked by the CRLs in force now.
pub type RevocationCheck = Arc<dyn Fn(&Serial) -> bool + Send + Sync>;

/// Hears of every call refused here: the caller as its certificate shows
/// it, the service, and the rule (for the audit log and the metrics).
pub type OnRefused = Arc<dyn Fn(crate::audit::refusals::Refusal) + Send + Sync>;

/// Checks callers against this node's consortium and org.
#[derive(Clone)]
pub struct Authorizer {
    consortium: String,
    org: pluis_proto::OrgId,
    revoked: Option<RevocationCheck>,
    on_refused: Option<OnRefused>,
    other_auditors: Option<AuditorCheck>,
}

/// Whether auditors of another org may read this node's log (the
/// config's `auditor_orgs`, as reloaded).
pub type AuditorCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("consortium", &self.consortium)
            .field("org", &self.org)
            .finish()
    }
}

impl Authorizer {
    /// An authoriser for the node whose own identity is `node`.
    pub fn new(node: &SpiffeId) -> Self {
        Authorizer {
            consortium: node.consortium().to_owned(),
            org: node.org().to_owned(),
            revoked: None,
            on_refused: None,
            other_auditors: None,
        }
    }

    /// Also admits auditors of the orgs `other_auditors` accepts.
    pub fn with_other_auditors(mut self, other_auditors: AuditorCheck) -> Self {
        self.other_auditors = Some(other_auditors);
        self
    }

    /// Also tells `on_refused` of every call refused.
    pub fn with_refusal_log(mut self, on_refused: OnRefused) -> Self {
        self.on_refused = Some(on_refused);
        self
    }

    /// Also refuses callers whose certificate `revoked` says is revoked.
    pub fn with_revocation_check(mut self, revoked: RevocationCheck) -> Self {
        self.revoked = Some(revoked);
        self
    }

    /// The caller's identity, if it may call `audience`; otherwise the
    /// status to answer with.
    pub fn authorise<T>(
        &self,
        audience: Audience,
        request: &Request<T>,
    ) -> Result<SpiffeId, Status> {
        self.check(audience, request)
            .map_err(|(actor, rule, status)| {
                if let Some(on_refused) = &self.on_refused {
                    on_refused(crate::audit::refusals::Refusal {
                        actor,
                        call: audience.service(),
                        rule,
                        detail: status.message().to_owned(),
                        ..Default::default()
                    });
                }
                status
            })
    }

    /// [`Authorizer::authorise`], with the caller and rule of a refusal.
    fn check<T>(
        &self,
        audience: Audience,
        request: &Request<T>,
    ) -> Result<SpiffeId, (String, Rule, Status)> {
        let peer = request.extensions().get::<PeerIdentity>();
        let Some(peer) = peer else {
            return Err((
                crate::audit::refusals::actor_of(peer),
                Rule::Authorisation,
                Status::unauthenticated("not a mutual-TLS connection"),
            ));
        };
        // What the certificate says instead is not repeated: it may be
        // any text its holder had signed.
        let caller = peer.id.clone().map_err(|_| {
            (
                crate::audit::refusals::actor_of(Some(peer)),
                Rule::Authorisation,
                Status::unauthenticated(
                    "client certificate: no usable SPIFFE id (exactly one URI SAN spiffe://CONSORTIUM/org/ORG/ROLE is needed)",
                ),
            )
        })?;
        if let (Some(revoked), Some(serial)) = (&self.revoked, &peer.serial) {
            if revoked(serial) {
                tracing::warn!(spiffe_id = %caller, serial = %serial, "call refused: certificate revoked");
                return Err((
                    caller.to_string(),
                    Rule::Revoked,
                    Status::unauthenticated(format!(
                        "client certificate {caller} (serial {serial}) is revoked"
                    )),
                ));
            }
        }
        let required = audience.role();
        let own_org = *caller.org() == self.org;
        let org_allowed = match audience {
            Audience::Partner => true,
            Audience::Coordinator => own_org,
            Audience::Audit => {
                own_org
                    || self
                        .other_auditors
                        .as_ref()
                        .is_some_and(|admits| admits(caller.org()))
            }
        };
        let allowed =
            caller.consortium() == self.consortium && caller.role() == required && org_allowed;
        if allowed {
            return Ok(caller);
        }
        let needed = match audience {
            Audience::Coordinator => format!("role {required} of org {}", self.org),
            Audience::Audit => format!(
                "role {required} of org {} (or of an org its auditor_orgs names)",
                self.org
            ),
            Audience::Partner => format!("role {required} of consortium {}", self.consortium),
        };
        Err((
            caller.to_string(),
            Rule::Authorisation,
            Status::permission_denied(format!(
                "{} service requires {needed}; caller presented {caller} (role {})",
                audience.service(),
                caller.role()
            )),
        ))
    }

    /// A tonic interceptor that authorises every call to `audience` and
    /// records the [`Caller`].
    pub fn interceptor(
        &self,
        audience: Audience,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
        let this = self.clone();
        move |mut request: Request<()>| {
            let caller = this.authorise(audience, &request)?;
            request.extensions_mut().insert(Caller(caller));
            Ok(request)
        }
    }
}
