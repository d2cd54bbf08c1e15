//! # pluis-node — a partner organisation's Pluis node
//!
//! The node holds one organisation's signals and answers its partners'
//! matching requests, its own coordinators' case queries and auditors'
//! log requests, all as gRPC over mutual TLS. The protocol itself lives in
//! `pluis-proto`; this crate does configuration ([`config`]), TLS
//! ([`tls`]), authorisation ([`auth`]), the services ([`service`]) and the
//! serving loop ([`node`]). `main.rs` only parses arguments and calls
//! [`cli::run`].

pub mod auth;
pub mod cli;
pub mod config;
pub mod node;
pub mod peers;
pub mod service;
pub mod tls;

pub use config::Config;
pub use node::{Node, NodeError};

/// An error and all its causes on one line, `a: b: c`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A gRPC status as one line a person can act on: code, message, causes.
pub fn status_detail(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), error_chain(status))
}
