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
    /// Whether coordinators may also screen the whole register for it
    /// (`pluis screen`): a heavier step than a case query, which its
    /// legal basis must cover. Off unless the config says `screening =
    /// true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub screening: bool,
}
