//! The serving node: what assembles the parts into one process.
//!
//! - [`node`]: [`Node`] — load and check everything, bind, then serve;
//! - [`router`]: the three network services behind the authoriser, with
//!   health and reflection; [`accept`]: TLS handshakes and connection
//!   slots; [`housekeeping`]: purges, refusal summaries, tables ahead,
//!   SIGHUP;
//! - [`state`]: [`NodeState`], what every service shares (store, log,
//!   tables, epochs, clock, metrics, the live policy). It is the one type
//!   every other folder may see: the node is assembled here.
//! - [`live`] and [`reload`]: the part that changes while serving (policy,
//!   peers, TLS material, CRLs) and how a reload swaps it in one step.
//! - [`connections`]: connection slots per identity and in all.
//! - [`error`]: why a node could not start, serve or reload.

mod accept;
pub(crate) mod connections;
pub(crate) mod error;
mod housekeeping;
pub(crate) mod live;
mod node;
pub(crate) mod reload;
mod router;
pub(crate) mod state;

pub use node::Node;
pub use state::{NodeError, NodeState};
