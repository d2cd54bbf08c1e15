//! Generated protobuf and gRPC types for package `pluis.v1`.
//!
//! Kept apart so the rest of the crate reads as domain code; handlers convert
//! between these wire types and domain types at the service edge.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/pluis.v1.rs"));

/// The encoded `FileDescriptorSet` of `pluis.proto`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pluis_descriptor.bin"));

/// [`FILE_DESCRIPTOR_SET`] without the `Admin` service: what gRPC
/// reflection on a node's network port shows (Admin is served only on the
/// node's own Unix socket).
pub const NETWORK_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pluis_network_descriptor.bin"));
