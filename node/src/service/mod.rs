//! The gRPC services, one file each. Handlers are thin: they translate
//! between wire types and the node's domain, and leave authorisation to
//! [`crate::auth`], which has run before any handler is reached.

pub mod admin;
pub mod audit;
pub mod coordinator;
pub mod partner;

use tonic::Status;

use crate::query::QueryError;
use crate::respond::RespondError;

/// A failure of this node's own audit log, as the caller sees it.
fn audit_failed(e: crate::audit::AuditError) -> Status {
    Status::internal(format!("audit log: {e}"))
}

/// The one place a partner's refused or failed call becomes a status.
impl From<RespondError> for Status {
    fn from(e: RespondError) -> Status {
        match e {
            RespondError::Invalid(message) => Status::invalid_argument(message),
            RespondError::Denied(message) => Status::permission_denied(message),
            RespondError::Epoch(e) => Status::failed_precondition(e.to_string()),
            RespondError::Internal(message) => Status::internal(message),
            RespondError::Audit(e) => audit_failed(e),
        }
    }
}

/// The one place a coordinator's refused or failed question becomes a status.
impl From<QueryError> for Status {
    fn from(e: QueryError) -> Status {
        match e {
            QueryError::Invalid(message) => Status::invalid_argument(message),
            QueryError::Denied(message) => Status::permission_denied(message),
            QueryError::Internal(message) => Status::internal(message),
            QueryError::Audit(e) => audit_failed(e),
        }
    }
}

/// The authenticated caller of a request (put there by [`crate::auth`]).
fn caller<T>(request: &tonic::Request<T>) -> Result<pluis_proto::SpiffeId, Status> {
    request
        .extensions()
        .get::<crate::auth::Caller>()
        .map(|c| c.0.clone())
        .ok_or_else(|| Status::internal("caller identity missing"))
}
