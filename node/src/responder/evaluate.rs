//! The responder's side of matching: what a partner's `Evaluate` and
//! `GetTable` get from this node, within its policy.
//!
//! `Evaluate` runs the policy check (peer, purpose, per-request and daily
//! key budgets), evaluates the blinded elements under the requested
//! epoch's key, charges the day's budget by logging the exchange, makes
//! it durable and signs the receipt — in that order, so that nothing
//! leaves before it is on disk. `GetTable` serves the buckets of the
//! peer's view. Every refusal is logged (durably) and counted. Logs carry
//! the exchange id, the peer, the purpose and counts, never an element.
//! The gRPC service ([`crate::service::partner`]) only translates.

use std::sync::atomic::Ordering;

use pluis_proto::exchange::{self, Epoch, ExchangeId};
use pluis_proto::oprf::EpochKey;
use pluis_proto::pb::{self, audit_entry::Kind};
use pluis_proto::table::{Prefix, TableEntry};
use pluis_proto::{OrgId, SpiffeId};
use rayon::prelude::*;

use crate::audit::AuditError;
use crate::ops::metrics::{Metrics, Outcome};
use crate::policy::{decide_evaluate, decide_table, Ask, Rule};
use crate::responder::epochs::EpochError;
use crate::responder::served::{ExchangeOf, Unserved};
use crate::responder::tables::View;
use crate::server::clock::Stopwatch;
use crate::server::live::Live;
use crate::server::state::NodeState;
use crate::service::refusals::Refusal;
use crate::store::StoreError;

/// Table entries per streamed chunk: about 0.5 MiB, well under gRPC's
/// 4 MiB message limit.
const TABLE_CHUNK: usize = 8 * 1024;

/// Batches at least this large are evaluated on all cores; smaller ones
/// on one, where waking the others would cost more than it saves.
const PARALLEL_FROM: usize = 32;

/// Why a partner's call was not answered. Messages name the field or the
/// policy rule, never a value. The first three are the caller's doing;
/// the rest are this node's, and cross to the caller only as a reference
/// ([`crate::service`]).
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    /// A field is not what the protocol allows (the field named).
    #[error("{field}: {problem}")]
    Invalid {
        /// The field, as a path into the request.
        field: String,
        /// What is wrong with it.
        problem: Malformed,
    },
    /// A rule refuses it (the refusal is logged): the rule, and the
    /// message the caller gets.
    #[error("{message}")]
    Denied {
        /// The rule that refused.
        rule: Rule,
        /// The caller's message: the rule and our own words.
        message: String,
    },
    /// The epoch asked for is not served.
    #[error(transparent)]
    Epoch(#[from] EpochError),
    /// This node's store or tables failed.
    #[error("{what}: {source}")]
    Store {
        /// What was being read or written.
        what: &'static str,
        /// The store's error.
        source: StoreError,
    },
    /// A blocking task of this call ended without an answer.
    #[error("{0} task failed")]
    Task(&'static str),
    /// This node's audit log failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// How a field of a partner's request is malformed.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    /// Absent where the call needs it.
    #[error("missing")]
    Missing,
    /// Not of the length the protocol fixes.
    #[error("must be {0} bytes")]
    Length(usize),
    /// A blinded element that is not a group element.
    #[error(transparent)]
    Element(#[from] pluis_proto::oprf::OprfError),
    /// A bucket prefix that does not fit its bit length.
    #[error(transparent)]
    Prefix(#[from] pluis_proto::table::TableError),
}

impl RespondError {
    fn invalid(field: impl Into<String>, problem: impl Into<Malformed>) -> Self {
        RespondError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    fn store(what: &'static str) -> impl FnOnce(StoreError) -> Self {
        move |source| RespondError::Store { what, source }
    }
}

/// An exchange's context, whose bounds [`pluis_proto::limits::context`]
/// checked at the service edge; with its id.
pub fn context(
    context: Option<pb::ExchangeContext>,
) -> Result<(pb::ExchangeContext, ExchangeId), RespondError> {
    let context = context.ok_or_else(|| RespondError::invalid("context", Malformed::Missing))?;
    let id = ExchangeId::from_wire(&context.exchange_id).ok_or_else(|| {
        RespondError::invalid("context.exchange_id", Malformed::Length(ExchangeId::LEN))
    })?;
    Ok((context, id))
}

/// One partner's call, as this node answers it: who, the policy in force
/// when it came (a reload during it changes the next call, not this one),
/// the exchange, the request's digest.
struct Call<'a> {
    state: &'a NodeState,
    call: &'static str,
    live: std::sync::Arc<Live>,
    caller: &'a SpiffeId,
    ctx: &'a pb::ExchangeContext,
    request_digest: [u8; 32],
}

impl<'a> Call<'a> {
    /// A call with `request` from `caller`, under the policy in force now.
    fn new(
        state: &'a NodeState,
        call: &'static str,
        caller: &'a SpiffeId,
        ctx: &'a pb::ExchangeContext,
        request: &impl prost::Message,
    ) -> Self {
        Call {
            state,
            call,
            live: state.live(),
            caller,
            ctx,
            request_digest: exchange::request_digest(request),
        }
    }

    /// The audit entry of this exchange: who, which exchange, purpose,
    /// legal basis and the request's digest.
    fn entry(&self, kind: Kind) -> pb::AuditEntry {
        pb::AuditEntry {
            actor: self.caller.to_string(),
            counterparty: self.state.id.to_string(),
            exchange_id: self.ctx.exchange_id.clone(),
            purpose: self.ctx.purpose.clone(),
            legal_basis: self.ctx.legal_basis.clone(),
            request_digest: self.request_digest.to_vec(),
            ..self.state.audit.entry(kind)
        }
    }

    /// The key of the epoch asked for (`None`: the current one), and the
    /// exchange as [`crate::responder::served`] knows it; an epoch not served is a
    /// refusal, logged.
    async fn epoch<'p>(
        &'p self,
        requested: Option<Epoch>,
        keys: u64,
        peer: &'p str,
        id: ExchangeId,
    ) -> Result<(Epoch, std::sync::Arc<EpochKey>, ExchangeOf<'p>), RespondError> {
        match self
            .state
            .epochs
            .key(requested, self.state.clock.now_secs())
        {
            Ok((epoch, key)) => {
                let of = ExchangeOf {
                    peer,
                    id,
                    purpose: &self.ctx.purpose,
                    epoch,
                };
                Ok((epoch, key, of))
            }
            Err(e) => {
                self.refuse(keys, Rule::Epoch, e.to_string()).await;
                Err(e.into())
            }
        }
    }

    /// Counts the exchange for the metrics page, labelled only with names
    /// from this node's own config.
    fn count(&self, outcome: Outcome) {
        let live = &self.live;
        let peer = Metrics::known(self.caller.org(), live.policies.keys().map(OrgId::as_str));
        let purpose = Metrics::known(
            &self.ctx.purpose,
            live.purposes().iter().map(|p| p.name.as_str()),
        );
        self.state.metrics.exchange(peer, purpose, outcome);
    }

    /// Logs a refusal (one bounded entry, durably, or a count towards the
    /// caller's summary), counts it, and makes its error. The purpose and
    /// legal basis go into the entry only where this node's own config
    /// names them for this peer: a refused text is the caller's.
    async fn refuse(&self, keys: u64, rule: Rule, message: String) -> RespondError {
        self.count(Outcome::Denied);
        let bound = self
            .live
            .policies
            .get(self.caller.org())
            .and_then(|p| p.purposes.get(&self.ctx.purpose));
        let legal_basis = match bound {
            Some(basis) if basis.trim() == self.ctx.legal_basis.trim() => basis.clone(),
            _ => String::new(),
        };
        let claimed = |field: &str, text: &str| {
            format!(
                "{field} {} bytes sha256 {}",
                text.len(),
                pluis_proto::hex(&pluis_proto::log::digest(text.as_bytes())[..8])
            )
        };
        let refusal = Refusal {
            actor: self.caller.to_string(),
            call: self.call,
            rule,
            exchange: true,
            exchange_id: self.ctx.exchange_id.clone(),
            purpose: bound.map_or_else(String::new, |_| self.ctx.purpose.clone()),
            legal_basis,
            keys,
            request_digest: self.request_digest.to_vec(),
            detail: format!(
                "{message} ({}, {})",
                claimed("purpose", &self.ctx.purpose),
                claimed("legal_basis", &self.ctx.legal_basis)
            ),
        };
        self.state.refuse(refusal).await;
        RespondError::Denied { rule, message }
    }
}

/// Answers a partner's `Evaluate`.
pub async fn evaluate(
    state: &std::sync::Arc<NodeState>,
    caller: &SpiffeId,
    request: pb::EvaluateRequest,
    ctx: &pb::ExchangeContext,
    exchange_id: ExchangeId,
) -> Result<pb::EvaluateResponse, RespondError> {
    let started = Stopwatch::start();
    let peer = caller.org().to_owned();
    let call = Call::new(state, "Partner/Evaluate", caller, ctx, &request);
    let keys = request.blinded.len() as u64;
    let policy = call.live.policies.get(&peer);
    let today = state.clock.today();
    let day = today.to_julian_day();
    let used_today = state
        .store
        .budget_used(&peer, day)
        .map_err(RespondError::store("budget"))?;
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

    // Off the async runtime, in one go: evaluate (in parallel when there
    // are many), find this peer's table view (built now if need be, so
    // that the GetTable calls that follow find it ready), charge the day's
    // budget by logging the exchange (one append), make it durable and
    // sign the receipt. Only a request that was served is charged; a
    // concurrent request may have used the budget up meanwhile.
    let limit = policy.map_or(0, |p| p.max_keys_per_day);
    let template = pb::AuditEntry {
        keys_asked: keys,
        keys_evaluated: keys,
        epoch: epoch.number(),
        detail: "evaluate".into(),
        ..call.entry(Kind::ExchangeServed)
    };
    let view = policy.map(View::of);
    let min_prefix_bits = policy.map_or(0, |p| p.min_prefix_bits);
    let max_keys_per_request = policy.map_or(0, |p| {
        u32::try_from(p.max_keys_per_request).unwrap_or(u32::MAX)
    });
    let blinded = request.blinded;
    let work = {
        let state = state.clone();
        let peer = peer.clone();
        let exchange_id = ctx.exchange_id.clone();
        let request_digest = call.request_digest;
        tokio::task::spawn_blocking(move || {
            let evaluate = |(i, b): (usize, &Vec<u8>)| {
                key.evaluate_blinded(b)
                    .map(|e| e.to_vec())
                    .map_err(|err| RespondError::invalid(format!("blinded[{i}]"), err))
            };
            let evaluated = if blinded.len() < PARALLEL_FROM {
                blinded
                    .iter()
                    .enumerate()
                    .map(evaluate)
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                blinded
                    .par_iter()
                    .enumerate()
                    .map(evaluate)
                    .collect::<Result<Vec<_>, _>>()?
            };
            let (table_size, table_digest) = match view {
                Some(view) => {
                    let table = state
                        .tables
                        .get(&state.store, epoch, &key, &view, today)
                        .map_err(RespondError::store("table"))?;
                    (table.len() as u64, table.digest().to_vec())
                }
                None => (0, Vec::new()),
            };
            let mut response = pb::EvaluateResponse {
                epoch: epoch.number(),
                evaluated,
                table_size,
                min_prefix_bits,
                receipt: None,
                table_digest,
                max_keys_per_request,
            };
            let response_digest = exchange::request_digest(&response);
            let served = pb::AuditEntry {
                response_digest: response_digest.to_vec(),
                ..template
            };
            let charged = state
                .store
                .charge_budget(&peer, day, keys, limit, &served)
                .map_err(RespondError::store("budget"))?;
            // Served: durable (with whoever else is being served now),
            // then the receipt, still on this thread.
            if let Ok((_, index)) = charged {
                state.audit.durable_blocking()?;
                response.receipt = Some(state.audit.receipt(
                    &exchange_id,
                    &request_digest,
                    &response_digest,
                    index,
                )?);
            }
            Ok::<_, RespondError>((response, charged))
        })
    };
    let (response, charged) = work.await.map_err(|_| RespondError::Task("evaluation"))??;
    let index = match charged {
        Ok((_, index)) => index,
        Err(used) => {
            let message = format!(
                "policy rule max_keys_per_day: {keys} keys asked with {used} used today; {peer} allows {limit} per day"
            );
            return Err(call.refuse(keys, Rule::MaxKeysPerDay, message).await);
        }
    };
    state.served.evaluated(of, keys, state.clock.now_secs());
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

/// The bucket prefixes a `GetTable` asks for, checked, sorted, each once.
fn prefixes(request: &pb::GetTableRequest) -> Result<Vec<Prefix>, RespondError> {
    let mut prefixes = Vec::with_capacity(1 + request.more_prefixes.len());
    for (i, bytes) in std::iter::once(&request.prefix)
        .chain(&request.more_prefixes)
        .enumerate()
    {
        let field = if i == 0 {
            "prefix".to_owned()
        } else {
            format!("more_prefixes[{}]", i - 1)
        };
        prefixes.push(
            Prefix::parse(request.prefix_bits, bytes)
                .map_err(|e| RespondError::invalid(field, e))?,
        );
    }
    prefixes.sort_by(|a, b| a.bytes().cmp(b.bytes()));
    prefixes.dedup_by(|a, b| a.bytes() == b.bytes());
    Ok(prefixes)
}

/// Answers a partner's `GetTable`: the chunks to stream. Only inside an
/// exchange whose keys this node evaluated, for no more buckets than its
/// keys ([`crate::responder::served`]).
pub async fn table(
    state: &std::sync::Arc<NodeState>,
    caller: &SpiffeId,
    request: pb::GetTableRequest,
    ctx: &pb::ExchangeContext,
    exchange_id: ExchangeId,
) -> Result<Vec<pb::TableChunk>, RespondError> {
    let peer = caller.org().to_owned();
    let call = Call::new(state, "Partner/GetTable", caller, ctx, &request);
    let ask = Ask {
        peer: &peer,
        purpose: &ctx.purpose,
        legal_basis: &ctx.legal_basis,
        keys: 0,
        used_today: 0,
    };
    let policy = match decide_table(call.live.policies.get(&peer), ask, request.prefix_bits) {
        Ok(policy) => policy.clone(),
        Err(denial) => return Err(call.refuse(0, denial.rule, denial.to_string()).await),
    };
    let prefixes = prefixes(&request)?;
    let asked = Epoch::asked(request.epoch);
    let (epoch, key, of) = call.epoch(asked, 0, &peer, exchange_id).await?;
    let whole = request.prefix_bits == 0;
    let buckets = prefixes.len() as u64;
    if let Err(unserved) = state
        .served
        .take(of, buckets, whole, state.clock.now_secs())
    {
        let rule = match unserved {
            Unserved::TooManyBuckets { .. } => Rule::Buckets,
            _ => Rule::Exchange,
        };
        let message = format!("policy rule {rule}: {unserved}");
        return Err(call.refuse(0, rule, message).await);
    }
    let view = View::of(&policy);
    let today = state.clock.today();
    let template = pb::AuditEntry {
        epoch: epoch.number(),
        detail: format!(
            "table prefix_bits={} buckets={}",
            request.prefix_bits,
            prefixes.len()
        ),
        ..call.entry(Kind::ExchangeServed)
    };
    // The buckets and the log entry, off the async runtime. The entry is
    // appended, not waited for: the exchange's receipt rides on its
    // Evaluate, and the next group flush makes this entry durable too.
    let state = state.clone();
    let (chunks, served, index) = tokio::task::spawn_blocking(move || {
        let table = state
            .tables
            .get(&state.store, epoch, &key, &view, today)
            .map_err(RespondError::store("table"))?;
        let bucket: Vec<&TableEntry> = prefixes
            .iter()
            .flat_map(|p| table.bucket(p).iter())
            .collect();
        let chunks: Vec<pb::TableChunk> = bucket
            .chunks(TABLE_CHUNK)
            .map(|chunk| pb::TableChunk {
                epoch: epoch.number(),
                entries: chunk
                    .iter()
                    .map(|e| pb::TableEntry {
                        tag: e.tag.to_vec(),
                        label: e.label.clone(),
                    })
                    .collect(),
                receipt: None,
            })
            .collect();
        let entry = pb::AuditEntry {
            entries_served: bucket.len() as u64,
            response_digest: exchange::table_response_digest(&chunks).to_vec(),
            ..template
        };
        let index = state
            .store
            .append_audit(&entry)
            .map_err(RespondError::store("audit log"))?;
        Ok::<_, RespondError>((chunks, bucket.len(), index))
    })
    .await
    .map_err(|_| RespondError::Task("table"))??;
    tracing::info!(entries = served, log_index = index, "table entries served");
    Ok(chunks)
}
