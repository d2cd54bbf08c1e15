//! # pluis-node — a partner organisation's Pluis node
//!
//! The node holds one organisation's signals and answers its partners'
//! matching requests, its own coordinators' case queries and auditors'
//! log requests, all as gRPC over mutual TLS. The protocol itself (what is
//! blinded, evaluated, sealed and signed) lives in `pluis-proto`; TLS and
//! SPIFFE ids in `pluis-transport`. This crate is the node around them,
//! one folder per part, in the direction of traffic:
//!
//! | folder | what it holds | may use |
//! | --- | --- | --- |
//! | [`server`] | [`Node`]: load, bind, serve; the router, the accept loop, housekeeping; [`NodeState`], the one type that assembles the parts, and the `Live` policy a reload swaps; connection slots | everything below |
//! | `service/` | the gRPC edge: the caller's identity (`auth`), every `Status` made from a domain error; one file per service (partner, coordinator, audit, admin) and the edge layer for what tonic refuses itself | `responder`, `requester`, `policy`, `audit`, `ops`, the state |
//! | `responder/` | the side that answers a partner: `Evaluate` and `GetTable` within policy, the epochs' OPRF keys, the labelled tables, the exchanges served | `policy`, `store`, `audit`, `ops` (metrics), the state |
//! | `requester/` | the side that asks: a coordinator's case query and screening, asking every partner at once, batching, one exchange with one partner, the partners' channels | `policy`, `audit`, `store`, `responder` (a record's flags through a view), the state |
//! | `policy/` | purposes, peer policy and the view it grants, the assessment rule; decisions return a `Denial` naming its `Rule` | nothing of the node |
//! | `audit/` | the signed exchange log (appends made durable in groups, checkpoints, receipts), and refusals as bounded entries and summaries | `store`, `config`, `policy`, `ops` (metrics) |
//! | [`config`] | the TOML file in, a checked [`Config`] out, with its limits | `policy` |
//! | `store/` | the one sled database, the audit log's files, budgets, epoch seeds, the storage secrets | the clock |
//! | `ops/` | the admin socket (server and client), imports, the background pool, metrics | `store`, `policy` |
//! | [`cli`] | `pluis-node`'s subcommands, one file per group, and `gen-data` | anything |
//! | `clock` | the one clock every timestamp and timer reads (a test's, in tests), and the stopwatch | nothing |
//! | `failure` | this node's own failures while answering a call (store, task, audit log), which the responder's and the requester's errors share and no caller sees as text | `store`, `audit` |
//!
//! No folder imports from another that imports from it, except through
//! the state that assembles the node (`server::state`, and the `Live`
//! part of it a reload swaps): the services, the responder and the
//! requester are given a [`NodeState`], and it holds them.

//! The two halves of one exchange meet only in `pluis_proto::exchange`
//! (the sans-IO steps both sides run) and on the wire. `main.rs` only
//! parses arguments and calls [`cli::run`].
//!
//! Modules are private; what other crates use (the client's local
//! consortium and demo, the end-to-end tests, the benches) is the list
//! below.
//! The map links into the private modules: read it with `cargo doc
//! -p pluis-node --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]

mod audit;
pub mod cli;
mod clock;
pub mod config;
mod failure;
mod ops;
mod policy;
mod requester;
mod responder;
pub mod server;
mod service;
mod store;

pub use audit::{log_verifier, signer, AuditError, AuditLog};
pub use cli::gendata;
pub use clock::Clock;
pub use config::Config;
pub use ops::admin;
pub use ops::import::{import, ImportOptions, Quiet};
pub use policy::View;
pub use policy::{AssessmentStep, Granularity, Purpose};
pub use requester::exchange::{exchange_id, PEER_DEADLINE};
pub use responder::tables::{build, flags_per_key, seal_entries};
pub use server::{Node, NodeError, NodeState};
pub use store::Store;

pub(crate) use pluis_transport::{error_chain, private_files, status_detail, tls};

/// Locks `mutex`, carrying on after a panic elsewhere: every value kept
/// under a lock here is whole between statements (caches, counters).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
