//! # pluis-node — a partner organisation's Pluis node
//!
//! The node holds one organisation's signals and answers its partners'
//! matching requests, its own coordinators' case queries and auditors'
//! log requests, all as gRPC over mutual TLS. The protocol itself lives in
//! `pluis-proto`; this crate does configuration ([`config`]), TLS
//! ([`tls`]), authorisation ([`auth`]), the services ([`service`]) and the
//! serving loop ([`node`]). `main.rs` only parses arguments and calls
//! [`cli::run`].

pub mod admin;
pub mod audit;
pub mod auth;
pub mod background;
pub mod batch;
pub mod cli;
pub mod config;
pub mod epochs;
pub mod gendata;
pub mod import;
pub mod live;
pub mod matching;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod policy;
pub mod private_files;
pub mod service;
pub mod store;
pub mod tables;
pub mod tls;
pub mod vault;

pub use config::Config;
pub use node::{Node, NodeError};

/// An error and all its causes on one line, `a: b: c`, leaving out a cause
/// whose text is already there (wrappers often repeat their source).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    append_causes(&mut text, error.source());
    text
}

fn append_causes(text: &mut String, mut source: Option<&dyn std::error::Error>) {
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) && cause_text != "transport error" {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
}

/// A gRPC status as one line a person can act on: code, message, causes.
pub fn status_detail(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    append_causes(&mut text, std::error::Error::source(status));
    text
}

/// Locks `mutex`, carrying on after a panic elsewhere: every value kept
/// under a lock here is whole between statements (caches, counters).
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
