//! The gRPC services, one file each. Handlers are thin: they translate
//! between wire types and the node's domain, and leave authorisation to
//! [`crate::auth`], which has run before any handler is reached.

pub mod audit;
pub mod coordinator;
pub mod partner;
