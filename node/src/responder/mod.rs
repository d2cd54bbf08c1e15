//! The side that answers: what a partner's `Evaluate` and `GetTable` get
//! from this node, within its policy.
//!
//! - [`mod@evaluate`]: the policy check, the OPRF evaluation under the
//!   epoch's key, the durable log entry and the signed receipt — in that
//!   order;
//! - [`get_table`]: the buckets of the peer's view, inside an exchange;
//! - [`call`]: what both share — the error, the context, the refusal;
//! - [`served`]: the exchanges evaluated, so that a table is served only
//!   inside one and never beyond its keys;
//! - [`epochs`]: the OPRF key of each epoch and their rotation;
//! - [`tables`]: the labelled tables, one per (epoch, policy view), built
//!   ahead of an epoch's change and kept in files.
//!
//! The asking side of the same exchange is [`crate::requester`]; the gRPC
//! service in front of this folder is [`crate::service::partner`].

mod call;
pub(crate) mod epochs;
mod evaluate;
mod get_table;
pub(crate) mod served;
pub(crate) mod tables;

pub(crate) use call::{context, RespondError};
pub(crate) use evaluate::evaluate;
pub(crate) use get_table::table;
