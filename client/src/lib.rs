//! # pluis-client — the `pluis` command
//!
//! What people other than a node's operator use: case coordinators
//! (`pluis status`, `pluis match`, `pluis screen`), auditors (`pluis
//! audit`), and everyone trying Pluis out (`pluis certs init`, `pluis
//! demo`). Each subcommand is one module; `main.rs` only parses arguments.

pub mod audit;
pub mod certs;
pub mod connect;
pub mod consortium;
pub mod demo;
pub mod matching;
pub mod report;
pub mod screen;
pub mod status;
