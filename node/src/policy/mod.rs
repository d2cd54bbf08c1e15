//! Policy: what this node answers, to whom, for what — "within legal limits".
//!
//! The node's config lists the purposes its own coordinators may ask for
//! (`[[purposes]]`, each with its legal basis) and, per peer, what that
//! peer may ask of this node: purposes, visible domains, granularity,
//! request and daily budgets, and the shortest tag prefix it may fetch. A
//! peer without an entry, or with no purposes, is answered with nothing.
//! Every refusal names the rule that refused.
//!
//! - [`purpose`]: the purposes this node's coordinators may ask for;
//! - [`peer`]: what one peer may ask, and the [`View`] that grants it;
//! - [`decide`]: the decisions on a partner's calls, a [`Denial`] naming
//!   its [`Rule`] ([`rule`]) when they refuse;
//! - [`assessment`]: how many life domains make which advice.

mod assessment;
mod decide;
mod peer;
mod purpose;
mod rule;

pub use assessment::{Assessment, AssessmentStep};
pub use decide::{decide_evaluate, decide_table, Ask, Denial};
pub use peer::{Granularity, PeerPolicy, View};
pub use purpose::Purpose;
pub use rule::Rule;
