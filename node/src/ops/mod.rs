//! What an operator does to a node, and what the node reports back.
//!
//! - [`admin`]: the admin socket (a Unix socket in `data_dir`): how
//!   `pluis-node import`, `reload`, `signals` and `forget` reach a node that
//!   is serving; the server side and the client side;
//! - [`import`]: signals from CSV or JSON Lines into the store, all or
//!   nothing — offline, or live through the admin socket;
//! - [`background`]: the low-priority thread pool a live import and the
//!   tables of a change not yet published run on;
//! - [`metrics`]: Prometheus text over plain HTTP.

pub mod admin;
pub(crate) mod background;
pub(crate) mod import;
pub(crate) mod metrics;
