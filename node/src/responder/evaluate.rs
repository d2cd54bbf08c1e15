//! `Evaluate`: the policy check (peer, purpose, legal basis, per-request
//! and daily key budgets), the blinded elements evaluated under the
//! requested epoch's key, the day's budget charged by logging the
//! exchange, the entry made durable and the receipt signed — in that
//! order, so that nothing leaves before it is on disk. Every refusal is
//! logged and counted; logs carry the exchange id, the peer, the purpose
//! and counts, never an element.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pluis_proto::exchange::{self, Epoch, ExchangeId};
use pluis_proto::families::Charge;
use pluis_proto::oprf::EpochKey;
use pluis_proto::pb::{self, audit_entry::Kind};
use pluis_proto::{OrgId, SpiffeId};
use rayon::prelude::*;

use super::call::{Call, RespondError};
use crate::clock::Stopwatch;
use crate::failure::Failure;
use crate::ops::metrics::Outcome;
use crate::policy::View;
use crate::policy::{decide_evaluate, Ask, Rule};
use crate::responder::tables::Announced;
use crate::server::state::NodeState;
use crate::store::{Charged, Counter};

/// Batches at least this large are evaluated on all cores; smaller ones
/// on one, where waking the others would cost more than it saves.
const PARALLEL_FROM: usize = 32;

/// Answers a partner's `Evaluate`.
pub async fn evaluate(
    state: &Arc<NodeState>,
    caller: &SpiffeId,
    request: pb::EvaluateRequest,
    ctx: &pb::ExchangeContext,
    exchange_id: ExchangeId,
) -> Result<pb::EvaluateResponse, RespondError> {
    let started = Stopwatch::start();
    let peer = caller.org().clone();
    let call = Call::new(state, "Partner/Evaluate", caller, ctx, &request);
    let keys = request.blinded.len() as u64;
    let today = state.clock.today();
    let policy = call.live.policies.get(&peer);
    let used_today = state
        .store
        .budget_used(&peer, today.to_julian_day())
        .map_err(Failure::store("budget"))?;
    let ask = Ask {
        peer: &peer,
        purpose: &ctx.purpose,
        legal_basis: &ctx.legal_basis,
        keys,
        used_today,
    };
    if let Err(denial) = decide_evaluate(policy, ask) {
        return Err(call.refuse(keys, denial.rule, denial.to_string()).await);
    }
    let asked = Epoch::asked(request.epoch);
    let (epoch, key, of) = call.epoch(asked, keys, &peer, exchange_id).await?;
    if let Err(unserved) = state.served.may_evaluate(of) {
        let message = format!("policy rule exchange: {unserved}");
        return Err(call.refuse(keys, Rule::Exchange, message).await);
    }
    let serving = Serving {
        state: state.clone(),
        peer: peer.clone(),
        key,
        epoch,
        today,
        view: policy.map(View::of),
        min_prefix_bits: policy.map_or(0, |p| p.min_prefix_bits),
        max_keys_per_request: policy.map_or(0, |p| {
            u32::try_from(p.max_keys_per_request).unwrap_or(u32::MAX)
        }),
        charge: Charge::of((0..request.blinded.len()).map(|i| exchange::family_of(&request, i))),
        limits: policy.map_or_else(Charge::default, |p| Charge {
            keys: p.max_keys_per_day,
            probable: p.max_probable_keys_per_day,
            possible: p.max_possible_keys_per_day,
            persons: p.max_persons_per_day,
        }),
        request,
        exchange_id: ctx.exchange_id.clone(),
        request_digest: call.request_digest,
        template: pb::AuditEntry {
            keys_asked: keys,
            keys_evaluated: keys,
            epoch: epoch.number(),
            detail: "evaluate".into(),
            ..call.entry(Kind::ExchangeServed)
        },
    };
    let (charge, limits) = (serving.charge, serving.limits);
    let (response, announced, charged) = tokio::task::spawn_blocking(move || serving.serve())
        .await
        .map_err(|_| Failure::Task("evaluation"))??;
    let index = match charged {
        Ok((_, index)) => index,
        Err((counter, used)) => {
            let (rule, message) = over_budget(counter, used, &charge, &limits, &peer);
            return Err(call.refuse(keys, rule, message).await);
        }
    };
    state
        .served
        .evaluated(of, keys, announced, state.clock.now_secs());
    state.exchanges.fetch_add(1, Ordering::Relaxed);
    call.count(Outcome::Served);
    state.metrics.evaluate.observe(started.elapsed());
    tracing::info!(
        epoch = epoch.number(),
        table_size = response.table_size,
        log_index = index,
        "exchange served"
    );
    Ok(response)
}

/// An admitted `Evaluate`, to be served off the async runtime in one go:
/// evaluate (in parallel when there are many), find this peer's table
/// view (built now if need be, so that the `GetTable` calls that follow
/// find it ready), charge the day's budget by logging the exchange (one
/// append), make it durable and sign the receipt. Only a request that
/// was served is charged; a concurrent request may have used the budget
/// up meanwhile.
struct Serving {
    state: Arc<NodeState>,
    peer: OrgId,
    key: Arc<EpochKey>,
    epoch: Epoch,
    today: time::Date,
    /// What the peer's policy grants: its view of the table (none: no
    /// table), the shortest prefix, its per-request and daily key limits.
    view: Option<View>,
    min_prefix_bits: u32,
    max_keys_per_request: u32,
    /// What this request costs: its keys by family.
    charge: Charge,
    /// The peer's daily budgets: keys, keys per tier, persons.
    limits: Charge,
    /// The request: its blinded elements and their families.
    request: pb::EvaluateRequest,
    exchange_id: Vec<u8>,
    request_digest: [u8; 32],
    template: pb::AuditEntry,
}

/// The answer, the table it announced (if the peer has a view), and the
/// day's totals and the log index of its entry or, if a daily budget ran
/// out, which one and how much of it was used.
type Served = (pb::EvaluateResponse, Option<Announced>, Charged);

impl Serving {
    fn serve(self) -> Result<Served, RespondError> {
        let state = &self.state;
        let evaluated = evaluate_all(&self.key, &self.request)?;
        let announced = match &self.view {
            Some(view) => Some(
                state
                    .tables
                    .current(&state.store, self.epoch, &self.key, view, self.today)
                    .map_err(Failure::store("table"))?,
            ),
            None => None,
        };
        let (table_size, table_digest) = announced.as_ref().map_or((0, Vec::new()), |a| {
            (a.table.len() as u64, a.table.digest().to_vec())
        });
        let mut response = pb::EvaluateResponse {
            epoch: self.epoch.number(),
            evaluated,
            table_size,
            min_prefix_bits: self.min_prefix_bits,
            receipt: None,
            table_digest,
            max_keys_per_request: self.max_keys_per_request,
        };
        let response_digest = exchange::request_digest(&response);
        let served = pb::AuditEntry {
            response_digest: response_digest.to_vec(),
            ..self.template
        };
        let day = self.today.to_julian_day();
        let charged = state
            .store
            .charge_budgets(&self.peer, day, &self.charge, &self.limits, &served)
            .map_err(Failure::store("budget"))?;
        // Served: durable (with whoever else is being served now), then
        // the receipt, still on this thread.
        if let Ok((_, index)) = charged {
            state.audit.durable_blocking()?;
            response.receipt = Some(state.audit.receipt(
                &self.exchange_id,
                &self.request_digest,
                &response_digest,
                index,
            )?);
        }
        Ok((response, announced, charged))
    }
}

/// The rule a daily budget refused under, and why: what was asked, what
/// was used, what `peer` may use.
fn over_budget(
    counter: Counter,
    used: u64,
    charge: &Charge,
    limits: &Charge,
    peer: &str,
) -> (Rule, String) {
    let (rule, what, asked, limit) = match counter {
        Counter::Keys => (Rule::MaxKeysPerDay, "keys", charge.keys, limits.keys),
        Counter::Probable => (
            Rule::MaxProbableKeysPerDay,
            "keys of probable-tier families",
            charge.probable,
            limits.probable,
        ),
        Counter::Possible => (
            Rule::MaxPossibleKeysPerDay,
            "keys of possible-tier (weak) families",
            charge.possible,
            limits.possible,
        ),
        Counter::Persons => (
            Rule::MaxPersonsPerDay,
            "persons",
            charge.persons,
            limits.persons,
        ),
    };
    let message = format!(
        "policy rule {rule}: {asked} {what} asked with {used} used today; {peer} allows {limit} per day"
    );
    (rule, message)
}

/// Every blinded element evaluated under its family's key, in order; one
/// that is not a group element is the caller's error, named by its place.
fn evaluate_all(
    key: &EpochKey,
    request: &pb::EvaluateRequest,
) -> Result<Vec<Vec<u8>>, RespondError> {
    let blinded = &request.blinded;
    let evaluate = |(i, b): (usize, &Vec<u8>)| {
        key.evaluate_blinded(exchange::family_of(request, i), b)
            .map(|e| e.to_vec())
            .map_err(|err| RespondError::invalid(format!("blinded[{i}]"), err))
    };
    if blinded.len() < PARALLEL_FROM {
        blinded.iter().enumerate().map(evaluate).collect()
    } else {
        blinded.par_iter().enumerate().map(evaluate).collect()
    }
}
