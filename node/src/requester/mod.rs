//! The side that asks: this node's questions to its partners.
//!
//! A coordinator's question arrives through [`crate::service::coordinator`]
//! and is answered here:
//! - [`case`]: the case query (which life domains have signals for these
//!   persons across the partnership);
//! - [`screen`]: bulk screening of every key this node holds;
//! - [`question`]: what both share (the coordinator's error, the purpose
//!   check, the question as logged);
//! - [`fanout`]: every partner at once, each under its own deadline, so a
//!   dead partner gives a partial answer that names it;
//! - [`batch`]: case queries to one partner merged while an exchange with it
//!   runs;
//! - [`exchange`]: one exchange with one partner (blind, Evaluate, GetTable,
//!   open), its steps made by the sans-IO core [`pluis_proto::exchange`];
//! - [`peers`]: one mutual-TLS channel per configured partner, pinned to
//!   its SPIFFE id.
//!
//! The answering side of the same exchange is [`crate::responder`].

pub(crate) mod batch;
pub(crate) mod case;
pub(crate) mod exchange;
pub(crate) mod fanout;
pub(crate) mod peers;
pub(crate) mod question;
pub(crate) mod screen;
