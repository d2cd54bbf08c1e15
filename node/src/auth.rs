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
//! | `Audit`       | an `auditor` of this consortium        |
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

/// Checks callers against this node's consortium and org.
#[derive(Clone)]
pub struct Authorizer {
    consortium: String,
    org: String,
    revoked: Option<RevocationCheck>,
}

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
        }
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
        let peer = request
            .extensions()
            .get::<PeerIdentity>()
            .ok_or_else(|| Status::unauthenticated("not a mutual-TLS connection"))?;
        let caller = peer
            .id
            .clone()
            .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
        if let (Some(revoked), Some(serial)) = (&self.revoked, &peer.serial) {
            if revoked(serial) {
                tracing::warn!(spiffe_id = %caller, serial = %serial, "call refused: certificate revoked");
                return Err(Status::unauthenticated(format!(
                    "client certificate {caller} (serial {serial}) is revoked"
                )));
            }
        }
        let required = audience.role();
        let allowed = caller.consortium() == self.consortium
            && caller.role() == required
            && (audience != Audience::Coordinator || caller.org() == self.org);
        if allowed {
            return Ok(caller);
        }
        let needed = match audience {
            Audience::Coordinator => format!("role {required} of org {}", self.org),
            _ => format!("role {required} of consortium {}", self.consortium),
        };
        Err(Status::permission_denied(format!(
            "{} service requires {needed}; caller presented {caller} (role {})",
            audience.service(),
            caller.role()
        )))
    }

    /// A tonic interceptor that authorises every call to `audience` and
    /// records the [`Caller`].
    pub fn interceptor(
        &self,
        audience: Audience,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
        let this = self.clone();
        move |mut request: Request<()>| {
            let caller = this.authorise(audience, &request).inspect_err(|status| {
                tracing::warn!(
                    service = audience.service(),
                    reason = status.message(),
                    "call refused"
                );
            })?;
            request.extensions_mut().insert(Caller(caller));
            Ok(request)
        }
    }
}
