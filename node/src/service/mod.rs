//! The gRPC services, one file each. Handlers are thin: they translate
//! between wire types and the node's domain, and leave authorisation to
//! [`crate::auth`], which has run before any handler is reached.

pub mod admin;
pub mod audit;
pub mod coordinator;
pub mod partner;

/// A failure of this node's own audit log, as the caller sees it.
fn audit_failed(e: crate::audit::AuditError) -> tonic::Status {
    tonic::Status::internal(format!("audit log: {e}"))
}
