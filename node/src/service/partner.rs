//! `pluis.v1.Partner`: node-to-node matching (labelled OPRF-PSI).
//!
//! `Evaluate` runs the policy check (peer, purpose, per-request and daily
//! key budgets), evaluates the blinded elements under the requested epoch's
//! key in parallel, and charges the daily budget durably. Logs carry the
//! exchange id, the peer, the purpose and counts — never an element.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pluis_proto::exchange;
use pluis_proto::pb;
use pluis_proto::pb::audit_entry::Kind;
use rayon::prelude::*;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::auth::Caller;
use crate::live::Live;
use crate::metrics::{Metrics, Outcome};
use crate::policy::{decide_evaluate, decide_table, Ask};
use crate::state::NodeState;
use crate::tables::View;
use pluis_proto::table::{Prefix, TableEntry};

/// Table entries per streamed chunk: about 0.5 MiB, well under gRPC's
/// 4 MiB message limit.
const TABLE_CHUNK: usize = 8 * 1024;

/// Batches at least this large are evaluated on all cores; smaller ones
/// on one, where waking the others would cost more than it saves.
const PARALLEL_FROM: usize = 32;

/// Most bucket prefixes in one `GetTable` call.
const MAX_PREFIXES: usize = 1024;

/// Serves other nodes' `Evaluate` and `GetTable` calls.
#[derive(Debug)]
pub struct PartnerService {
    state: Arc<NodeState>,
}

impl PartnerService {
    /// A service over the node's shared state.
    pub fn new(state: Arc<NodeState>) -> Self {
        PartnerService { state }
    }

    fn deny(&self, message: String) -> Status {
        self.state.denials.fetch_add(1, Ordering::Relaxed);
        Status::permission_denied(message)
    }

    /// Counts an exchange for the metrics page, labelled only with names
    /// from this node's own config.
    fn count(&self, live: &Live, peer: &str, purpose: &str, outcome: Outcome) {
        let peer = Metrics::known(peer, live.policies.keys().map(String::as_str));
        let purpose = Metrics::known(purpose, live.purposes().iter().map(|p| p.name.as_str()));
        self.state.metrics.exchange(peer, purpose, outcome);
    }
}

fn caller<T>(request: &Request<T>) -> Result<pluis_proto::SpiffeId, Status> {
    request
        .extensions()
        .get::<Caller>()
        .map(|c| c.0.clone())
        .ok_or_else(|| Status::internal("caller identity missing"))
}

fn context(context: Option<pb::ExchangeContext>) -> Result<(pb::ExchangeContext, String), Status> {
    let context = context.ok_or_else(|| Status::invalid_argument("context: missing"))?;
    if context.exchange_id.len() != 16 {
        return Err(Status::invalid_argument(
            "context.exchange_id: must be 16 bytes",
        ));
    }
    if context.purpose.trim().is_empty() {
        return Err(Status::invalid_argument("context.purpose: missing"));
    }
    let id = pluis_proto::hex(&context.exchange_id);
    Ok((context, id))
}

impl PartnerService {
    /// Logs a refusal (durably), counts it and makes its status.
    #[allow(clippy::too_many_arguments)]
    async fn refuse(
        &self,
        live: &Live,
        caller: &pluis_proto::SpiffeId,
        ctx: &pb::ExchangeContext,
        keys: u64,
        request_digest: &[u8; 32],
        rule: &str,
        message: String,
    ) -> Status {
        tracing::warn!(rule, "exchange denied");
        self.count(live, caller.org(), &ctx.purpose, Outcome::Denied);
        let entry = pb::AuditEntry {
            keys_asked: keys,
            detail: format!("denied by policy rule {rule}"),
            ..exchange_entry(
                &self.state,
                Kind::ExchangeDenied,
                caller,
                ctx,
                request_digest,
            )
        };
        if let Err(e) = self.state.audit.record(&entry).await {
            // Refuse all the same; the failure itself is what gets logged.
            tracing::error!(error = %e, "could not log a denial");
        }
        self.deny(message)
    }
}

/// The audit entry of an exchange `caller` asked for: who, which
/// exchange, purpose, legal basis and the request's digest.
fn exchange_entry(
    state: &NodeState,
    kind: Kind,
    caller: &pluis_proto::SpiffeId,
    ctx: &pb::ExchangeContext,
    request_digest: &[u8; 32],
) -> pb::AuditEntry {
    pb::AuditEntry {
        actor: caller.to_string(),
        counterparty: state.id.to_string(),
        exchange_id: ctx.exchange_id.clone(),
        purpose: ctx.purpose.clone(),
        legal_basis: ctx.legal_basis.clone(),
        request_digest: request_digest.to_vec(),
        ..state.audit.entry(kind)
    }
}

#[tonic::async_trait]
impl pb::partner_server::Partner for PartnerService {
    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let caller = caller(&request)?;
        let peer = caller.org().to_owned();
        let request = request.into_inner();
        let request_digest = exchange::request_digest(&request);
        let (ctx, exchange) = context(request.context)?;
        let keys = request.blinded.len() as u64;
        let span = tracing::info_span!("evaluate", %exchange, %peer, purpose = %ctx.purpose, keys);
        let started = std::time::Instant::now();
        async move {
            let state = &self.state;
            // The policy in force when the request came; a reload during
            // it changes the next request, not this one.
            let live = state.live();
            let policy = live.policies.get(&peer);
            let today = self.state.clock.today();
            let day = today.to_julian_day();
            let used_today = state
                .store
                .budget_used(&peer, day)
                .map_err(|e| Status::internal(format!("budget: {e}")))?;
            let ask = Ask {
                peer: &peer,
                purpose: &ctx.purpose,
                keys,
                used_today,
            };
            if let Err(denial) = decide_evaluate(policy, ask) {
                return Err(self
                    .refuse(&live, &caller, &ctx, keys, &request_digest, denial.rule, denial.to_string())
                    .await);
            }
            let (epoch, key) = state
                .epochs
                .key(request.epoch, self.state.clock.now_secs())
                .map_err(|e| Status::failed_precondition(e.to_string()))?;

            // Off the async runtime, in one go: evaluate (in parallel when
            // there are many), find this peer's table view (built now if
            // need be, so that the GetTable calls that follow find it
            // ready), charge the day's budget by logging the exchange (one
            // append), make it durable and sign the receipt. Only a request
            // that was served is charged; a concurrent request may have
            // used the budget up meanwhile.
            let limit = policy.map_or(0, |p| p.max_keys_per_day);
            let template = pb::AuditEntry {
                keys_asked: keys,
                keys_evaluated: keys,
                epoch,
                detail: "evaluate".into(),
                ..exchange_entry(state, Kind::ExchangeServed, &caller, &ctx, &request_digest)
            };
            let view = policy.map(View::of);
            let min_prefix_bits = policy.map_or(0, |p| p.min_prefix_bits);
            let max_keys_per_request = policy.map_or(0, |p| {
                u32::try_from(p.max_keys_per_request).unwrap_or(u32::MAX)
            });
            let blinded = request.blinded;
            let work = {
                let state = self.state.clone();
                let peer = peer.clone();
                let exchange_id = ctx.exchange_id.clone();
                tokio::task::spawn_blocking(move || {
                    let evaluate = |(i, b): (usize, &Vec<u8>)| {
                        key.evaluate_blinded(b)
                            .map(|e| e.to_vec())
                            .map_err(|err| Status::invalid_argument(format!("blinded[{i}]: {err}")))
                    };
                    let evaluated = if blinded.len() < PARALLEL_FROM {
                        blinded.iter().enumerate().map(evaluate).collect::<Result<Vec<_>, _>>()?
                    } else {
                        blinded.par_iter().enumerate().map(evaluate).collect::<Result<Vec<_>, _>>()?
                    };
                    let (table_size, table_digest) = match view {
                        Some(view) => {
                            let table = state
                                .tables
                                .get(&state.store, epoch, &key, &view, today)
                                .map_err(|e| Status::internal(format!("table: {e}")))?;
                            (table.len() as u64, table.digest().to_vec())
                        }
                        None => (0, Vec::new()),
                    };
                    let mut response = pb::EvaluateResponse {
                        epoch,
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
                        .map_err(|e| Status::internal(format!("budget: {e}")))?;
                    // Served: durable (with whoever else is being served
                    // now), then the receipt, still on this thread.
                    if let Ok((_, index)) = charged {
                        state.audit.durable_blocking().map_err(super::audit_failed)?;
                        response.receipt = Some(
                            state
                                .audit
                                .receipt(&exchange_id, &request_digest, &response_digest, index)
                                .map_err(super::audit_failed)?,
                        );
                    }
                    Ok::<_, Status>((response, charged))
                })
            };
            let (response, charged) = work
                .await
                .map_err(|_| Status::internal("evaluation task failed"))??;
            let index = match charged {
                Ok((_, index)) => index,
                Err(used) => {
                    return Err(self
                        .refuse(
                            &live,
                            &caller,
                            &ctx,
                            keys,
                            &request_digest,
                            "max_keys_per_day",
                            format!(
                                "policy rule max_keys_per_day: {keys} keys asked with {used} used today; {peer} allows {limit} per day"
                            ),
                        )
                        .await);
                }
            };
            let table_size = response.table_size;
            state.exchanges.fetch_add(1, Ordering::Relaxed);
            self.count(&live, &peer, &ctx.purpose, Outcome::Served);
            state.metrics.evaluate.observe(started.elapsed());
            tracing::info!(epoch, table_size, log_index = index, "exchange served");
            Ok(Response::new(response))
        }
        .instrument(span)
        .await
    }

    type GetTableStream = Pin<Box<dyn Stream<Item = Result<pb::TableChunk, Status>> + Send>>;

    async fn get_table(
        &self,
        request: Request<pb::GetTableRequest>,
    ) -> Result<Response<Self::GetTableStream>, Status> {
        let caller = caller(&request)?;
        let peer = caller.org().to_owned();
        let request = request.into_inner();
        let request_digest = exchange::request_digest(&request);
        let (ctx, exchange) = context(request.context)?;
        let span = tracing::info_span!("get_table", %exchange, %peer, purpose = %ctx.purpose, prefix_bits = request.prefix_bits);
        async move {
            let state = self.state.clone();
            let live = state.live();
            let policy = match decide_table(
                live.policies.get(&peer),
                &peer,
                &ctx.purpose,
                request.prefix_bits,
            ) {
                Ok(policy) => policy.clone(),
                Err(denial) => {
                    return Err(self
                        .refuse(
                            &live,
                            &caller,
                            &ctx,
                            0,
                            &request_digest,
                            denial.rule,
                            denial.to_string(),
                        )
                        .await);
                }
            };
            if request.more_prefixes.len() >= MAX_PREFIXES {
                return Err(Status::invalid_argument(format!(
                    "more_prefixes: at most {} prefixes in one call",
                    MAX_PREFIXES
                )));
            }
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
                        .map_err(|e| Status::invalid_argument(format!("{field}: {e}")))?,
                );
            }
            prefixes.sort_by(|a, b| a.bytes().cmp(b.bytes()));
            prefixes.dedup_by(|a, b| a.bytes() == b.bytes());
            let (epoch, key) = state
                .epochs
                .key(request.epoch, self.state.clock.now_secs())
                .map_err(|e| Status::failed_precondition(e.to_string()))?;
            let view = View::of(&policy);
            let today = self.state.clock.today();
            let template = pb::AuditEntry {
                epoch,
                detail: format!(
                    "table prefix_bits={} buckets={}",
                    request.prefix_bits,
                    prefixes.len()
                ),
                ..exchange_entry(&state, Kind::ExchangeServed, &caller, &ctx, &request_digest)
            };
            // The buckets and the log entry, off the async runtime. The
            // entry is appended, not waited for: the exchange's receipt
            // rides on its Evaluate, and the next group flush makes this
            // entry durable too.
            let (chunks, served, index) = {
                let state = state.clone();
                tokio::task::spawn_blocking(move || {
                    let table = state
                        .tables
                        .get(&state.store, epoch, &key, &view, today)
                        .map_err(|e| Status::internal(format!("table: {e}")))?;
                    let bucket: Vec<&TableEntry> = prefixes
                        .iter()
                        .flat_map(|p| table.bucket(p).iter())
                        .collect();
                    let chunks: Vec<pb::TableChunk> = bucket
                        .chunks(TABLE_CHUNK)
                        .map(|chunk| pb::TableChunk {
                            epoch,
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
                        .map_err(|e| Status::internal(format!("audit log: {e}")))?;
                    Ok::<_, Status>((chunks, bucket.len(), index))
                })
                .await
                .map_err(|_| Status::internal("table task failed"))??
            };
            tracing::info!(entries = served, log_index = index, "table entries served");
            let stream: Self::GetTableStream =
                Box::pin(tokio_stream::iter(chunks.into_iter().map(Ok)));
            Ok(Response::new(stream))
        }
        .instrument(span)
        .await
    }
}
