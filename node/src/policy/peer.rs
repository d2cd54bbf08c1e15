//! What one peer may ask of this node — purposes with their legal basis,
//! visible domains, granularity, budgets, the shortest prefix — and the
//! view of this node's signals that grants it.

use std::collections::{BTreeMap, BTreeSet};

use pluis_proto::taxonomy::LifeDomain;
use serde::{Deserialize, Serialize};

/// How much a peer may see of a matched person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// Which domains have signals.
    #[default]
    Domain,
    /// Which signals, with their registration month.
    Signal,
}

/// What one peer may ask of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPolicy {
    /// Purposes this peer may ask for, each with the legal basis this
    /// node's config binds to it (its `[[purposes]]` table): a request must
    /// claim exactly that basis (after trimming).
    pub purposes: BTreeMap<String, String>,
    /// This node's domains the peer may see.
    pub domains: BTreeSet<LifeDomain>,
    /// Domain or signal level.
    pub granularity: Granularity,
    /// Most keys in one `Evaluate`.
    pub max_keys_per_request: u64,
    /// Most keys evaluated per UTC day.
    pub max_keys_per_day: u64,
    /// Most keys of the probable tier's families per day (of those).
    pub max_probable_keys_per_day: u64,
    /// Most keys of the possible tier's weak families per day (of those):
    /// they are the cheapest to enumerate.
    pub max_possible_keys_per_day: u64,
    /// Most persons asked about per day (as [`pluis_proto::families::Charge`]
    /// counts them: the fewest persons a request's keys could be).
    pub max_persons_per_day: u64,
    /// Shortest tag prefix for `GetTable`; 0 allows the whole table.
    pub min_prefix_bits: u32,
}

impl Default for PeerPolicy {
    /// Nothing is shared until the config says so.
    fn default() -> Self {
        PeerPolicy {
            purposes: BTreeMap::new(),
            domains: BTreeSet::new(),
            granularity: Granularity::Domain,
            max_keys_per_request: 100,
            max_keys_per_day: 10_000,
            max_probable_keys_per_day: 10_000,
            max_possible_keys_per_day: 1_000,
            max_persons_per_day: 10_000,
            // Whole tables are safe to hand out (an entry opens only under
            // an evaluated key); it is the requester who needs buckets
            // large enough to hide in (its `min_bucket_entries`).
            min_prefix_bits: 0,
        }
    }
}

/// What a requester may see: which domains, and whether signals.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct View {
    /// Visible domains.
    pub domains: BTreeSet<LifeDomain>,
    /// Whether signal codes and months are included.
    pub signals: bool,
}

impl View {
    /// The view a peer's policy grants.
    pub fn of(policy: &PeerPolicy) -> View {
        View {
            domains: policy.domains.clone(),
            signals: policy.granularity == Granularity::Signal,
        }
    }

    /// Everything (this node's own coordinators looking at its own data).
    pub fn everything() -> View {
        View {
            domains: LifeDomain::ALL.into_iter().collect(),
            signals: true,
        }
    }
}
