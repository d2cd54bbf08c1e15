//! This node's own failures while it answers a call — a partner's or a
//! coordinator's: its store, a blocking task, its audit log. Both the
//! responder's and the requester's errors carry one; none crosses to a
//! caller as text (the service edge answers with a reference to this
//! node's log: [`crate::service`]).

use crate::audit::AuditError;
use crate::store::StoreError;

/// What failed at this node.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The store or the tables built from it.
    #[error("{what}: {source}")]
    Store {
        /// What was being read or written.
        what: &'static str,
        /// The store's error.
        source: StoreError,
    },
    /// A blocking task ended without an answer.
    #[error("{0} task failed")]
    Task(&'static str),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl Failure {
    /// A store error, while reading or writing `what`.
    pub fn store(what: &'static str) -> impl FnOnce(StoreError) -> Failure {
        move |source| Failure::Store { what, source }
    }
}
