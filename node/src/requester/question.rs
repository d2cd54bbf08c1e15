//! What a case query and a screening share: the error a coordinator
//! gets, the purpose check, the question as logged, and the domains
//! flagged for a person or a case.

use std::collections::{BTreeMap, BTreeSet};

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

/// Domains flagged for a subject or a case: which orgs, which signals.
pub(super) struct CaseDomains(BTreeMap<LifeDomain, (BTreeSet<String>, BTreeSet<String>)>);

impl CaseDomains {
    pub fn new() -> Self {
        CaseDomains(BTreeMap::new())
    }

    pub fn add(&mut self, org: &str, flags: &Flags) {
        for domain in &flags.domains {
            self.0.entry(*domain).or_default().0.insert(org.to_owned());
        }
        for signal in &flags.signals {
            self.0
                .entry(signal.domain)
                .or_default()
                .1
                .insert(signal.code.clone());
        }
    }

    /// How many life domains are flagged.
    pub fn domain_count(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }

    /// Adds everything `other` holds.
    pub fn merge(&mut self, other: &CaseDomains) {
        for (domain, (orgs, signals)) in &other.0 {
            let entry = self.0.entry(*domain).or_default();
            entry.0.extend(orgs.iter().cloned());
            entry.1.extend(signals.iter().cloned());
        }
    }

    pub fn result(self, label: String, assessment: &Assessment) -> pb::SubjectResult {
        let count = self.0.len() as u32;
        pb::SubjectResult {
            label,
            domains: self
                .0
                .into_iter()
                .map(|(domain, (orgs, signals))| pb::DomainHit {
                    domain: domain.code().to_owned(),
                    orgs: orgs.into_iter().collect(),
                    signals: signals.into_iter().collect(),
                })
                .collect(),
            domain_count: count,
            assessment: assessment.advice(count).to_owned(),
        }
    }
}
