//! # pluis-client — the `pluis` command
//!
//! What people other than a node's operator use, one folder per role:
//!
//! | module | who | commands |
//! | --- | --- | --- |
//! | [`coordinator`] | case coordinators | `pluis status`, `match`, `screen` |
//! | [`auditor`] | auditors and privacy officers | `pluis audit checkpoint`, `export`, `verify`, `show`, `cross-check`, `report` |
//! | [`dev`] | everyone trying Pluis out, the tests and benches | `pluis certs init`, `issue`, `revoke`; `pluis demo`; the local consortium |
//!
//! [`cli`] holds one `Args` struct per subcommand; [`connect`] the mutual
//! TLS identity every role presents (`--ca --cert --key` or `PLUIS_*`).
//! `main.rs` only parses and dispatches.

pub mod auditor;
pub mod cli;
pub mod clock;
pub mod connect;
pub mod coordinator;
pub mod dev;
pub mod ui;
