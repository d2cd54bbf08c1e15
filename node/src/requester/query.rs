//! A coordinator's questions to their own node: the case query (which
//! life domains have signals for these persons, across the partnership)
//! and bulk screening (which of our own cases reach a number of domains).
//! Both ask every partner at once ([`crate::requester::fanout`]), add this node's own
//! signals from one snapshot, apply the assessment rule, and log the
//! question. The gRPC service ([`crate::service::coordinator`]) only
//! translates.

use std::sync::Arc;

use std::collections::{BTreeMap, BTreeSet};

use pluis_proto::identifier::SubjectKey;
use pluis_proto::pb::audit_entry::Kind;
use pluis_proto::pb::{self, peer_outcome::State};
use pluis_proto::table::Flags;
use pluis_proto::taxonomy::LifeDomain;

use crate::policy::{Assessment, Purpose};
use crate::requester::exchange::{exchange_id, Fetch, PEER_DEADLINE};
use crate::requester::fanout::{ask_all, gather};
use crate::responder::tables::{add_flags, View};
use crate::server::live::Live;
use tracing::Instrument;

use crate::server::state::NodeState;

/// Why a coordinator's question was not answered. Messages name the field
/// or the rule, never a value.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The question is malformed (a field named).
    #[error("{0}")]
    Invalid(String),
    /// This node's policy does not allow it.
    #[error("{0}")]
    Denied(String),
    /// This node failed.
    #[error("{0}")]
    Internal(String),
    /// This node's audit log failed.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

impl QueryError {
    fn invalid(message: impl Into<String>) -> Self {
        QueryError::Invalid(message.into())
    }

    fn denied(message: impl Into<String>) -> Self {
        QueryError::Denied(message.into())
    }

    fn internal(message: impl Into<String>) -> Self {
        QueryError::Internal(message.into())
    }
}

/// The purpose, if this node's coordinators may ask for it.
fn own_purpose(live: &Live, name: &str) -> Result<Purpose, QueryError> {
    live.purposes()
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| {
            QueryError::denied(
                "policy rule purposes: the purpose asked for is not one this node's coordinators may ask for",
            )
        })
}

/// A coordinator's question (case query or bulk screening), as logged.
struct Question<'a> {
    /// The coordinator's SPIFFE id.
    coordinator: String,
    purpose: &'a Purpose,
    /// The query id; none for a screening.
    exchange_id: Vec<u8>,
    keys: usize,
}

impl Question<'_> {
    /// Appends the question's entry and waits until it (and the partner
    /// calls logged before it) is durable.
    async fn record(self, state: &NodeState, detail: String) -> Result<(), QueryError> {
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
            .map_err(QueryError::Audit)
    }
}

/// How long one partner may take for a whole bulk screening.
const SCREEN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// Every active key this node holds, with its own flags and case references.
fn own_keys(
    state: &NodeState,
    today: time::Date,
) -> Result<BTreeMap<String, (Flags, BTreeSet<String>)>, String> {
    let mut records = Vec::new();
    state
        .store
        .for_each_signal(|id, record| {
            if !record.expired_on(today) {
                records.push((*id, record.clone()));
            }
        })
        .map_err(|e| e.to_string())?;
    let mut keys: BTreeMap<String, (Flags, BTreeSet<String>)> = BTreeMap::new();
    for (id, record) in &records {
        let local_ref = state
            .store
            .open_local_ref(id, record)
            .map_err(|e| e.to_string())?;
        for key in state
            .store
            .open_keys(id, record)
            .map_err(|e| e.to_string())?
        {
            let entry = keys.entry(key).or_default();
            add_flags(&mut entry.0, record, &View::everything());
            entry.1.extend(local_ref.clone());
        }
    }
    Ok(keys)
}

/// Domains flagged for a subject or a case: which orgs, which signals.
struct CaseDomains(BTreeMap<LifeDomain, (BTreeSet<String>, BTreeSet<String>)>);

impl CaseDomains {
    fn new() -> Self {
        CaseDomains(BTreeMap::new())
    }

    fn add(&mut self, org: &str, flags: &Flags) {
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

    /// Adds everything `other` holds.
    fn merge(&mut self, other: &CaseDomains) {
        for (domain, (orgs, signals)) in &other.0 {
            let entry = self.0.entry(*domain).or_default();
            entry.0.extend(orgs.iter().cloned());
            entry.1.extend(signals.iter().cloned());
        }
    }

    fn result(self, label: String, assessment: &Assessment) -> pb::SubjectResult {
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

/// Answers a case query from `coordinator` (their SPIFFE id).
pub async fn case_query(
    state: &Arc<NodeState>,
    coordinator: String,
    request: pb::MatchRequest,
) -> Result<pb::MatchResponse, QueryError> {
    let state = state.clone();
    let live = state.live();
    let purpose = own_purpose(&live, &request.purpose)?;
    state.metrics.case_query();
    if request.subjects.is_empty() {
        return Err(QueryError::invalid("subjects: at least one is needed"));
    }
    // Parse every key; errors name the place, never the value.
    let today = state.clock.today();
    let mut keys: Vec<String> = Vec::new();
    let mut subject_keys: Vec<Vec<usize>> = Vec::new();
    for (i, subject) in request.subjects.iter().enumerate() {
        if subject.keys.is_empty() {
            return Err(QueryError::invalid(format!(
                "subjects[{i}].keys: none given"
            )));
        }
        let mut indexes = Vec::new();
        for (j, text) in subject.keys.iter().enumerate() {
            let key = SubjectKey::parse(text, today)
                .map_err(|e| QueryError::invalid(format!("subjects[{i}].keys[{j}]: {e}")))?;
            let canonical = key.canonical();
            let index = keys
                .iter()
                .position(|k| *k == canonical)
                .unwrap_or_else(|| {
                    keys.push(canonical);
                    keys.len() - 1
                });
            indexes.push(index);
        }
        subject_keys.push(indexes);
    }
    let query_id = exchange_id();
    let span = tracing::info_span!(
        "case_query",
        query = %pluis_proto::hex(&query_id),
        purpose = %purpose.name,
        subjects = request.subjects.len(),
        keys = keys.len()
    );
    async move {
        // Every partner at once, each under its own deadline.
        let asks = ask_all(
            live.partners(),
            &state.audit,
            &purpose,
            &keys,
            PEER_DEADLINE,
            Fetch::Buckets,
        );
        // Our own signals, meanwhile.
        let own = {
            let state = state.clone();
            let keys = keys.clone();
            tokio::task::spawn_blocking(move || -> Result<Vec<Option<Flags>>, String> {
                // One snapshot for every key: an import published
                // meanwhile is seen for all of them or for none.
                let snapshot = state.store.snapshot();
                let mut flags = Vec::with_capacity(keys.len());
                for k in &keys {
                    let key = SubjectKey::parse(k, today).map_err(|e| e.to_string())?;
                    let mut found: Option<Flags> = None;
                    for record in state
                        .store
                        .records_for_key_in(&snapshot, &key)
                        .map_err(|e| e.to_string())?
                    {
                        if !record.expired_on(today) {
                            add_flags(
                                found.get_or_insert_with(Flags::default),
                                &record,
                                &View::everything(),
                            );
                        }
                    }
                    flags.push(found);
                }
                Ok(flags)
            })
        };
        let own = own
            .await
            .map_err(|_| QueryError::internal("local lookup failed"))?
            .map_err(|e| QueryError::internal(format!("local lookup: {e}")))?;
        let mut answers: Vec<(String, Vec<Option<Flags>>)> = vec![(state.id.org().to_owned(), own)];
        let mut outcomes = Vec::new();
        for answer in gather(asks).await {
            answers.push((answer.outcome.org.clone(), answer.flags));
            outcomes.push(answer.outcome);
        }

        let mut subjects = Vec::new();
        let mut total = CaseDomains::new();
        for (i, subject) in request.subjects.iter().enumerate() {
            let mut domains = CaseDomains::new();
            for (org, flags) in &answers {
                for &k in &subject_keys[i] {
                    if let Some(Some(f)) = flags.get(k) {
                        domains.add(org, f);
                        total.add(org, f);
                    }
                }
            }
            let label = if subject.label.is_empty() {
                format!("subject {}", i + 1)
            } else {
                subject.label.clone()
            };
            subjects.push(domains.result(label, live.assessment()));
        }
        let served = outcomes
            .iter()
            .filter(|o| o.state == State::Answered as i32)
            .count();
        tracing::info!(
            partners = outcomes.len(),
            answered = served,
            "case query answered"
        );
        let question = Question {
            coordinator,
            purpose: &purpose,
            exchange_id: query_id.to_vec(),
            keys: keys.len(),
        };
        // The partner exchanges it rode on (shared with other
        // queries when they were merged), to find them in the logs.
        let exchanges: Vec<String> = outcomes
            .iter()
            .map(|o| format!("{}:{}", o.org, pluis_proto::hex(&o.exchange_id)))
            .collect();
        let detail = format!(
            "case query: subjects={} partners answered={served}/{} exchanges={}",
            request.subjects.len(),
            outcomes.len(),
            exchanges.join(",")
        );
        question.record(&state, detail).await?;
        Ok(pb::MatchResponse {
            query_id: query_id.to_vec(),
            subjects,
            case_total: Some(total.result("case (all subjects)".into(), live.assessment())),
            peers: outcomes,
        })
    }
    .instrument(span)
    .await
}

/// Runs a bulk screening for `coordinator` (their SPIFFE id).
pub async fn screen(
    state: &Arc<NodeState>,
    coordinator: String,
    request: pb::ScreenRequest,
) -> Result<pb::ScreenResponse, QueryError> {
    let live = state.live();
    let purpose = own_purpose(&live, &request.purpose)?;
    let min_domains = if request.min_domains == 0 {
        3
    } else {
        request.min_domains
    };
    let state = state.clone();
    let today = state.clock.today();
    let own = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || own_keys(&state, today))
            .await
            .map_err(|_| QueryError::internal("local scan failed"))?
            .map_err(|e| QueryError::internal(format!("local scan: {e}")))?
    };
    let keys: Vec<String> = own.keys().cloned().collect();
    let span =
        tracing::info_span!("screening", purpose = %purpose.name, keys = keys.len(), min_domains);
    async move {
        let answers = gather(ask_all(
            live.partners(),
            &state.audit,
            &purpose,
            &keys,
            SCREEN_DEADLINE,
            Fetch::Whole,
        ))
        .await;
        let outcomes: Vec<pb::PeerOutcome> = answers.iter().map(|a| a.outcome.clone()).collect();
        // Per case reference, the union over its keys of every partner's flags.
        let own_org = state.id.org().to_owned();
        let mut cases: BTreeMap<String, CaseDomains> = BTreeMap::new();
        for (i, (_, (flags, refs))) in own.iter().enumerate() {
            let mut domains = CaseDomains::new();
            domains.add(&own_org, flags);
            for answer in &answers {
                if let Some(Some(f)) = answer.flags.get(i) {
                    domains.add(&answer.outcome.org, f);
                }
            }
            for local_ref in refs {
                cases
                    .entry(local_ref.clone())
                    .or_insert_with(CaseDomains::new)
                    .merge(&domains);
            }
        }
        let hits: Vec<pb::ScreenHit> = cases
            .into_iter()
            .filter(|(_, d)| d.0.len() as u32 >= min_domains)
            .map(|(local_ref, d)| {
                let result = d.result(String::new(), live.assessment());
                pb::ScreenHit {
                    local_ref,
                    domains: result.domains,
                    domain_count: result.domain_count,
                }
            })
            .collect();
        tracing::info!(
            hits = hits.len(),
            partners = outcomes.len(),
            "screening done"
        );
        let question = Question {
            coordinator,
            purpose: &purpose,
            exchange_id: Vec::new(),
            keys: keys.len(),
        };
        let detail = format!(
            "bulk screening: min_domains={min_domains} hits={} partners={}",
            hits.len(),
            outcomes.len()
        );
        question.record(&state, detail).await?;
        Ok(pb::ScreenResponse {
            hits,
            peers: outcomes,
            keys_screened: keys.len() as u64,
            last: true,
        })
    }
    .instrument(span)
    .await
}
