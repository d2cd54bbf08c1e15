//! Bulk screening: every active key this node holds against every
//! partner's whole table (fetched once per epoch; a partner learns only
//! how many keys were asked), and this organisation's own case references
//! whose combined signals reach a number of life domains.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pluis_proto::pb;
use pluis_proto::table::Flags;
use tracing::Instrument;

use super::exchange::{Fetch, PeerAnswer};
use super::fanout::{ask_all, gather_reporting};
use super::question::{own_purpose, CaseDomains, Found, QueryError, Question};
use crate::failure::Failure;
use crate::policy::View;
use crate::policy::{Assessment, Denial, Rule};
use crate::responder::tables::add_flags;
use crate::server::state::NodeState;
use crate::store::StoreError;

/// How long one partner may take for a whole bulk screening.
const SCREEN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// Every active key this node holds, with its own flags and case references.
fn own_keys(
    state: &NodeState,
    today: time::Date,
) -> Result<BTreeMap<String, (Flags, BTreeSet<String>)>, StoreError> {
    let mut records = Vec::new();
    state.store.for_each_signal(|id, record| {
        if !record.expired_on(today) {
            records.push((*id, record.clone()));
        }
    })?;
    let mut keys: BTreeMap<String, (Flags, BTreeSet<String>)> = BTreeMap::new();
    for (id, record) in &records {
        let local_ref = state.store.open_local_ref(id, record)?;
        for stored in state.store.read_keys(id, record)? {
            // Screening asks with exact keys only: the variant families
            // would multiply a whole register's keys by some fifteen. A
            // key that no longer reads is asked as it was stored.
            let key = match stored.read {
                Some(key) => match key.exact_input() {
                    Some(input) => input,
                    None => continue,
                },
                None => stored.stored,
            };
            let entry = keys.entry(key).or_default();
            add_flags(&mut entry.0, record, &View::everything());
            entry.1.extend(local_ref.clone());
        }
    }
    Ok(keys)
}

/// Runs a bulk screening for `coordinator` (their SPIFFE id), telling
/// `progress` how far it is: once the keys are read, and each time a
/// partner is done.
pub async fn screen(
    state: &Arc<NodeState>,
    coordinator: String,
    request: pb::ScreenRequest,
    progress: impl Fn(pb::ScreenProgress),
) -> Result<pb::ScreenResponse, QueryError> {
    let live = state.live();
    let purpose = own_purpose(&live, &request.purpose)?;
    if !purpose.screening {
        return Err(QueryError::Denied(Denial {
            rule: Rule::Purposes,
            reason: "this node's coordinators may not screen in bulk for the purpose asked for (its [[purposes]] table has no screening = true)".into(),
        }));
    }
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
            .map_err(|_| Failure::Task("local scan"))?
            .map_err(Failure::store("local scan"))?
    };
    let keys: Vec<String> = own.keys().cloned().collect();
    let span =
        tracing::info_span!("screening", purpose = %purpose.name, keys = keys.len(), min_domains);
    async move {
        let asks = ask_all(
            live.partners(),
            &state.audit,
            &purpose,
            &keys,
            SCREEN_DEADLINE,
            Fetch::Whole,
        );
        let partners = asks.len();
        let report = |done: usize| {
            progress(pb::ScreenProgress {
                keys: keys.len() as u64,
                partners: u32::try_from(partners).unwrap_or(u32::MAX),
                partners_done: u32::try_from(done).unwrap_or(u32::MAX),
            })
        };
        report(0);
        let answers = gather_reporting(asks, report).await;
        let outcomes: Vec<pb::PeerOutcome> = answers.iter().map(|a| a.outcome.clone()).collect();
        let hits = hits(
            &state.id.org().to_string(),
            &own,
            &answers,
            min_domains,
            live.assessment(),
        );
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
            progress: None,
        })
    }
    .instrument(span)
    .await
}

/// This organisation's case references whose keys' flags, ours and
/// every partner's together, reach `min_domains` life domains.
fn hits(
    own_org: &str,
    own: &BTreeMap<String, (Flags, BTreeSet<String>)>,
    answers: &[PeerAnswer],
    min_domains: u32,
    assessment: &Assessment,
) -> Vec<pb::ScreenHit> {
    // Per case reference, the union over its keys of every partner's flags.
    let mut cases: BTreeMap<String, CaseDomains> = BTreeMap::new();
    for (i, (_, (flags, refs))) in own.iter().enumerate() {
        let mut domains = CaseDomains::new();
        domains.add(own_org, &Found::exact(flags));
        for answer in answers {
            if let Some(Some(f)) = answer.flags.get(i) {
                domains.add(&answer.outcome.org, &Found::exact(f));
            }
        }
        for local_ref in refs {
            cases
                .entry(local_ref.clone())
                .or_insert_with(CaseDomains::new)
                .merge(&domains);
        }
    }
    cases
        .into_iter()
        .filter(|(_, d)| d.domain_count() >= min_domains)
        .map(|(local_ref, d)| {
            let result = d.result(String::new(), assessment);
            pb::ScreenHit {
                local_ref,
                domains: result.domains,
                domain_count: result.domain_count,
            }
        })
        .collect()
}
