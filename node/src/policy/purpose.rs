//! The purposes this node's coordinators may ask for, each with the legal
//! basis every exchange for it records.

use serde::{Deserialize, Serialize};

/// A purpose this node's coordinators may ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    /// Its name, the same in every partner's config.
    pub name: String,
    /// The legal basis recorded with every exchange for it.
    pub legal_basis: String,
}
