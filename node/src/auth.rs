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

use pluis_proto::{Role, SpiffeId};
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

/// Checks callers against this node's consortium and org.
#[derive(Debug, Clone)]
pub struct Authorizer {
    consortium: String,
    org: String,
}

impl Authorizer {
    /// An authoriser for the node whose own identity is `node`.
    pub fn new(node: &SpiffeId) -> Self {
        Authorizer {
            consortium: node.consortium().to_owned(),
            org: node.org().to_owned(),
        }
    }

    /// The caller's identity, if it may call `audience`; otherwise the
    /// status to answer with.
    pub fn authorise<T>(
        &self,
        audience: Audience,
        request: &Request<T>,
    ) -> Result<SpiffeId, Status> {
        let caller = request
            .extensions()
            .get::<PeerIdentity>()
            .ok_or_else(|| Status::unauthenticated("not a mutual-TLS connection"))?
            .id
            .clone()
            .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
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
