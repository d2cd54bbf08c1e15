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
pub mod clock;
pub mod config;
pub mod connections;
pub mod epochs;
pub mod error;
pub mod fanout;
pub mod gendata;
pub mod import;
pub mod live;
pub mod matching;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod policy;
pub mod query;
pub mod refusals;
pub mod reload;
pub mod respond;
pub mod served;
pub mod service;
pub mod state;
pub mod store;
pub mod tables;
pub mod vault;

pub use config::Config;
pub use node::{Node, NodeError};
pub use pluis_transport::{error_chain, private_files, status_detail, tls};

/// Locks `mutex`, carrying on after a panic elsewhere: every value kept
/// under a lock here is whole between statements (caches, counters).
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
