//! The gRPC services, one file each. Handlers are thin: they translate
//! between wire types and the node's domain, and leave authorisation to
//! [`crate::auth`], which has run before any handler is reached.

pub mod audit;
pub mod coordinator;
pub mod partner;

use tonic::Status;

/// The answer for an RPC whose implementation has not landed yet.
fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented by pluis-node {}",
        env!("CARGO_PKG_VERSION")
    ))
}
