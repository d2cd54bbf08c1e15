//! Generated protobuf and gRPC types for package `pluis.v1`.
//!
//! Kept apart so the rest of the crate reads as domain code; handlers convert
//! between these wire types and domain types at the service edge.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/pluis.v1.rs"));

/// The encoded `FileDescriptorSet` of `pluis.proto`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pluis_descriptor.bin"));
