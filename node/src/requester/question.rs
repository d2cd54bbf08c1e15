//! What a case query and a screening share: the error a coordinator
//! gets, the purpose check, the question as logged, and the domains
//! flagged for a person or a case.

use std::collections::{BTreeMap, BTreeSet};

use pluis_proto::families::{Reason, Tier};
use pluis_proto::identifier::IdentifierError;
use pluis_proto::pb::{self, audit_entry::Kind};
use pluis_proto::table::Flags;
use pluis_proto::taxonomy::LifeDomain;

use crate::failure::Failure;
use crate::policy::{Assessment, Denial, Purpose, Rule};
use crate::server::live::Live;
use crate::server::state::NodeState;

/// Why a coordinator's question was not answered. Messages name the field
/// or the rule, never a value. The first two are the coordinator's doing;
/// the rest are this node's (a partner's failure is never one of these:
/// it is that partner's state in the answer).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A field of the question is not what it must be (the field named).
    #[error("{field}: {problem}")]
    Invalid {
        /// The field, as a path into the request.
        field: String,
        /// What is wrong with it.
        problem: BadField,
    },
    /// This node's policy does not allow it.
    #[error(transparent)]
    Denied(Denial),
    /// This node failed: its store, a task or its audit log.
    #[error(transparent)]
    Failed(#[from] Failure),
}

/// How a field of a coordinator's question is wrong.
#[derive(Debug, thiserror::Error)]
pub enum BadField {
    /// Empty where at least one is needed.
    #[error("at least one is needed")]
    NoneAtAll,
    /// A person with no keys.
    #[error("none given")]
    NoKeys,
    /// A key that does not parse (the reason names no value).
    #[error(transparent)]
    Key(#[from] IdentifierError),
}

impl QueryError {
    pub(super) fn invalid(field: impl Into<String>, problem: impl Into<BadField>) -> Self {
        QueryError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The purpose, if this node's coordinators may ask for it.
pub(super) fn own_purpose(live: &Live, name: &str) -> Result<Purpose, QueryError> {
    live.purposes()
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| {
            QueryError::Denied(Denial {
                rule: Rule::Purposes,
                reason: "the purpose asked for is not one this node's coordinators may ask for"
                    .into(),
            })
        })
}

/// A coordinator's question (case query or bulk screening), as logged.
pub(super) struct Question<'a> {
    /// The coordinator's SPIFFE id.
    pub coordinator: String,
    pub purpose: &'a Purpose,
    /// The query id; none for a screening.
    pub exchange_id: Vec<u8>,
    pub keys: usize,
}

impl Question<'_> {
    /// Appends the question's entry and waits until it (and the partner
    /// calls logged before it) is durable.
    pub async fn record(self, state: &NodeState, detail: String) -> Result<(), QueryError> {
        let entry = pb::AuditEntry {
            actor: self.coordinator,
            exchange_id: self.exchange_id,
            purpose: self.purpose.name.clone(),
            legal_basis: self.purpose.legal_basis.clone(),
            keys_asked: self.keys as u64,
            detail,
            ..state.audit.entry(Kind::CaseQuery)
        };
        state
            .audit
            .record(&entry)
            .await
            .map(|_| ())
            .map_err(|e| QueryError::Failed(Failure::Audit(e)))
    }
}

/// One domain of a subject or a case: which orgs flag it, through which
/// tier, with which signals.
#[derive(Default)]
struct DomainEntry {
    exact: BTreeSet<String>,
    probable: BTreeSet<String>,
    signals: BTreeSet<String>,
}

/// Domains flagged for a subject or a case: which orgs, which signals, and
/// which organisations know or may know the person, how surely.
pub(super) struct CaseDomains {
    domains: BTreeMap<LifeDomain, DomainEntry>,
    matches: BTreeMap<String, (Tier, BTreeSet<Reason>)>,
}

impl CaseDomains {
    pub fn new() -> Self {
        CaseDomains {
            domains: BTreeMap::new(),
            matches: BTreeMap::new(),
        }
    }

    /// Adds what `org` holds about a person, found through `tier` for
    /// `reasons`. Possible matches add no flags.
    pub fn add(&mut self, org: &str, found: &Found) {
        self.note(org, found.tier, &found.reasons);
        if found.tier == Tier::Possible {
            return;
        }
        for domain in &found.flags.domains {
            let entry = self.domains.entry(*domain).or_default();
            match found.tier {
                Tier::Exact => entry.exact.insert(org.to_owned()),
                _ => entry.probable.insert(org.to_owned()),
            };
        }
        for signal in &found.flags.signals {
            self.domains
                .entry(signal.domain)
                .or_default()
                .signals
                .insert(signal.code.clone());
        }
    }

    /// How many life domains are flagged (exact and probable).
    pub fn domain_count(&self) -> u32 {
        u32::try_from(self.domains.len()).unwrap_or(u32::MAX)
    }

    /// Adds everything `other` holds.
    pub fn merge(&mut self, other: &CaseDomains) {
        for (domain, entry) in &other.domains {
            let into = self.domains.entry(*domain).or_default();
            into.exact.extend(entry.exact.iter().cloned());
            into.probable.extend(entry.probable.iter().cloned());
            into.signals.extend(entry.signals.iter().cloned());
        }
        for (org, (tier, reasons)) in &other.matches {
            self.note(org, *tier, reasons);
        }
    }

    /// Notes that `org` knows or may know the person through `tier` for
    /// `reasons`, keeping the best tier and its reasons.
    fn note(&mut self, org: &str, tier: Tier, reasons: &BTreeSet<Reason>) {
        let seen = self
            .matches
            .entry(org.to_owned())
            .or_insert((tier, BTreeSet::new()));
        if tier < seen.0 {
            *seen = (tier, BTreeSet::new());
        }
        if tier == seen.0 {
            seen.1.extend(reasons.iter().copied());
        }
    }

    pub fn result(self, label: String, assessment: &Assessment) -> pb::SubjectResult {
        let count = self.domains.len() as u32;
        let exact = self
            .domains
            .values()
            .filter(|d| !d.exact.is_empty())
            .count() as u32;
        pb::SubjectResult {
            label,
            domains: self
                .domains
                .into_iter()
                .map(|(domain, entry)| {
                    let probable_orgs: Vec<String> =
                        entry.probable.difference(&entry.exact).cloned().collect();
                    let mut orgs = entry.exact;
                    orgs.extend(probable_orgs.iter().cloned());
                    pb::DomainHit {
                        domain: domain.code().to_owned(),
                        orgs: orgs.into_iter().collect(),
                        signals: entry.signals.into_iter().collect(),
                        probable_orgs,
                    }
                })
                .collect(),
            domain_count: count,
            assessment: assessment.advice(count).to_owned(),
            exact_domains: exact,
            probable_domains: count - exact,
            matches: self
                .matches
                .into_iter()
                .map(|(org, (tier, reasons))| pb::OrgMatch {
                    org,
                    tier: tier.code().to_owned(),
                    explanation: reasons
                        .iter()
                        .map(|r| r.explain())
                        .collect::<Vec<_>>()
                        .join("; "),
                    reasons: reasons.iter().map(|r| r.code().to_owned()).collect(),
                })
                .collect(),
        }
    }
}

/// What one organisation holds about one person: its best tier's flags,
/// and why they matched.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub tier: Tier,
    pub reasons: BTreeSet<Reason>,
    pub flags: Flags,
}

impl Found {
    /// An exact match holding `flags`.
    pub fn exact(flags: &Flags) -> Found {
        Found {
            tier: Tier::Exact,
            reasons: BTreeSet::from([Reason::Exact]),
            flags: flags.clone(),
        }
    }

    /// The best tier among `hits` (a person's matched inputs, each with
    /// why and what it opened), with the flags of that tier only: one
    /// record found twice — exactly and through a variant — counts once.
    pub fn best<'a>(hits: impl IntoIterator<Item = (Reason, &'a Flags)>) -> Option<Found> {
        let mut best: Option<Found> = None;
        for (reason, flags) in hits {
            let tier = reason.tier();
            match &mut best {
                Some(found) if found.tier < tier => {}
                Some(found) if found.tier == tier => {
                    found.reasons.insert(reason);
                    found.flags.merge(flags);
                }
                _ => {
                    best = Some(Found {
                        tier,
                        reasons: BTreeSet::from([reason]),
                        flags: flags.clone(),
                    })
                }
            }
        }
        best
    }
}
