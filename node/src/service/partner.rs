//! `pluis.v1.Partner`: node-to-node matching (labelled OPRF-PSI).
//!
//! `Evaluate` runs the policy check (peer, purpose, per-request and daily
//! key budgets), evaluates the blinded elements under the requested epoch's
//! key in parallel, and charges the daily budget durably. Logs carry the
//! exchange id, the peer, the purpose and counts — never an element.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pluis_proto::pb;
use pluis_proto::pb::audit_entry::Kind;
use prost::Message;
use rayon::prelude::*;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::auth::Caller;
use crate::epochs::now_secs;
use crate::node::NodeState;
use crate::policy::{decide_evaluate, decide_table, Ask};
use crate::tables::View;
use pluis_proto::table::Prefix;

/// Table entries per streamed chunk: about 0.5 MiB, well under gRPC's
/// 4 MiB message limit.
const TABLE_CHUNK: usize = 8 * 1024;

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
}

/// Hex of an exchange id, for logs.
pub fn exchange_hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
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
    let id = exchange_hex(&context.exchange_id);
    Ok((context, id))
}

impl PartnerService {
    /// Logs a refusal (durably) and makes its status.
    async fn refuse(
        &self,
        caller: &pluis_proto::SpiffeId,
        ctx: &pb::ExchangeContext,
        keys: u64,
        request_digest: &[u8; 32],
        rule: &str,
        message: String,
    ) -> Status {
        tracing::warn!(rule, "exchange denied");
        let entry = pb::AuditEntry {
            counterparty: self.state.id.to_string(),
            exchange_id: ctx.exchange_id.clone(),
            purpose: ctx.purpose.clone(),
            legal_basis: ctx.legal_basis.clone(),
            keys_asked: keys,
            request_digest: request_digest.to_vec(),
            detail: format!("denied by policy rule {rule}"),
            actor: caller.to_string(),
            ..self.state.audit.entry(Kind::ExchangeDenied)
        };
        if let Err(e) = self.state.audit.record(&entry).await {
            // Refuse all the same; the failure itself is what gets logged.
            tracing::error!(error = %e, "could not log a denial");
        }
        self.deny(message)
    }
}

/// A request's digest, as both sides compute it: SHA-256 of its encoding.
fn digest_of(message: &impl Message) -> [u8; 32] {
    pluis_proto::log::digest(&message.encode_to_vec())
}

fn audit_failed(e: crate::audit::AuditError) -> Status {
    Status::internal(format!("audit log: {e}"))
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
        let request_digest = digest_of(&request);
        let (ctx, exchange) = context(request.context)?;
        let keys = request.blinded.len() as u64;
        let span = tracing::info_span!("evaluate", %exchange, %peer, purpose = %ctx.purpose, keys);
        async move {
            let state = &self.state;
            let policy = state.policies.get(&peer);
            let day = crate::cli::today().to_julian_day();
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
                    .refuse(&caller, &ctx, keys, &request_digest, denial.rule, denial.to_string())
                    .await);
            }
            let (epoch, key) = state
                .epochs
                .key(request.epoch, now_secs())
                .map_err(|e| Status::failed_precondition(e.to_string()))?;

            // Parallel evaluation, off the async runtime's threads.
            let blinded = request.blinded;
            let evaluated = tokio::task::spawn_blocking(move || {
                blinded
                    .par_iter()
                    .enumerate()
                    .map(|(i, b)| {
                        key.evaluate_blinded(b)
                            .map(|e| e.to_vec())
                            .map_err(|err| Status::invalid_argument(format!("blinded[{i}]: {err}")))
                    })
                    .collect::<Result<Vec<_>, Status>>()
            })
            .await
            .map_err(|_| Status::internal("evaluation task failed"))??;

            // The size of this peer's table view, built now if need be so
            // that the GetTable calls that follow find it ready.
            let (table_size, table_digest) = match policy {
                Some(policy) => {
                    let state = self.state.clone();
                    let view = View::of(policy);
                    let (_, key) = state
                        .epochs
                        .key(epoch, now_secs())
                        .map_err(|e| Status::failed_precondition(e.to_string()))?;
                    let today = crate::cli::today();
                    tokio::task::spawn_blocking(move || {
                        state.tables.get(&state.store, epoch, &key, &view, today)
                    })
                    .await
                    .map_err(|_| Status::internal("table task failed"))?
                    .map_err(|e| Status::internal(format!("table: {e}")))
                    .map(|table| (table.len() as u64, table.digest().to_vec()))?
                }
                None => (0, Vec::new()),
            };
            let mut response = pb::EvaluateResponse {
                epoch,
                evaluated,
                table_size,
                min_prefix_bits: policy.map_or(0, |p| p.min_prefix_bits),
                receipt: None,
                table_digest,
                max_keys_per_request: policy.map_or(0, |p| {
                    u32::try_from(p.max_keys_per_request).unwrap_or(u32::MAX)
                }),
            };
            let response_digest = digest_of(&response);

            // Charge the day's budget and log the exchange in one step, only
            // for a request that was served; a concurrent request may have
            // used the budget up meanwhile.
            let limit = policy.map_or(0, |p| p.max_keys_per_day);
            let served = pb::AuditEntry {
                actor: caller.to_string(),
                counterparty: state.id.to_string(),
                exchange_id: ctx.exchange_id.clone(),
                purpose: ctx.purpose.clone(),
                legal_basis: ctx.legal_basis.clone(),
                keys_asked: keys,
                keys_evaluated: keys,
                request_digest: request_digest.to_vec(),
                response_digest: response_digest.to_vec(),
                epoch,
                detail: "evaluate".into(),
                ..state.audit.entry(Kind::ExchangeServed)
            };
            let charge = {
                let state = self.state.clone();
                let peer = peer.clone();
                tokio::task::spawn_blocking(move || {
                    state.store.charge_budget(&peer, day, keys, limit, &served)
                })
                .await
                .map_err(|_| Status::internal("budget task failed"))?
            };
            let index = match charge {
                Ok(Ok((_, index))) => index,
                Ok(Err(used)) => {
                    return Err(self
                        .refuse(
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
                Err(e) => return Err(Status::internal(format!("budget: {e}"))),
            };
            state.audit.durable().await.map_err(audit_failed)?;
            response.receipt = Some(
                state
                    .audit
                    .receipt(&ctx.exchange_id, &request_digest, &response_digest, index)
                    .map_err(audit_failed)?,
            );
            state.exchanges.fetch_add(1, Ordering::Relaxed);
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
        let request_digest = digest_of(&request);
        let (ctx, exchange) = context(request.context)?;
        let span = tracing::info_span!("get_table", %exchange, %peer, purpose = %ctx.purpose, prefix_bits = request.prefix_bits);
        async move {
            let state = self.state.clone();
            let policy = match decide_table(
                state.policies.get(&peer),
                &peer,
                &ctx.purpose,
                request.prefix_bits,
            ) {
                Ok(policy) => policy.clone(),
                Err(denial) => {
                    return Err(self
                        .refuse(
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
            let prefix = Prefix::parse(request.prefix_bits, &request.prefix)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            let (epoch, key) = state
                .epochs
                .key(request.epoch, now_secs())
                .map_err(|e| Status::failed_precondition(e.to_string()))?;
            let view = View::of(&policy);
            let today = crate::cli::today();
            let table = {
                let state = state.clone();
                tokio::task::spawn_blocking(move || {
                    state.tables.get(&state.store, epoch, &key, &view, today)
                })
                .await
                .map_err(|_| Status::internal("table task failed"))?
                .map_err(|e| Status::internal(format!("table: {e}")))?
            };
            let bucket = table.bucket(&prefix);
            let mut chunks: Vec<pb::TableChunk> = bucket
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
            if chunks.is_empty() {
                // The receipt needs a chunk to ride on.
                chunks.push(pb::TableChunk {
                    epoch,
                    entries: Vec::new(),
                    receipt: None,
                });
            }
            let response_digest = table_response_digest(&chunks);
            let served = pb::AuditEntry {
                actor: caller.to_string(),
                counterparty: state.id.to_string(),
                exchange_id: ctx.exchange_id.clone(),
                purpose: ctx.purpose.clone(),
                legal_basis: ctx.legal_basis.clone(),
                entries_served: bucket.len() as u64,
                request_digest: request_digest.to_vec(),
                response_digest: response_digest.to_vec(),
                epoch,
                detail: format!("table prefix_bits={}", request.prefix_bits),
                ..state.audit.entry(Kind::ExchangeServed)
            };
            let index = state.audit.record(&served).await.map_err(audit_failed)?;
            let receipt = state
                .audit
                .receipt(&ctx.exchange_id, &request_digest, &response_digest, index)
                .map_err(audit_failed)?;
            if let Some(last) = chunks.last_mut() {
                last.receipt = Some(receipt);
            }
            tracing::info!(
                entries = bucket.len(),
                log_index = index,
                "table entries served"
            );
            let stream: Self::GetTableStream =
                Box::pin(tokio_stream::iter(chunks.into_iter().map(Ok)));
            Ok(Response::new(stream))
        }
        .instrument(span)
        .await
    }
}

/// The digest of a streamed table answer, as both sides compute it:
/// SHA-256 over every chunk's encoding without its receipt.
pub fn table_response_digest(chunks: &[pb::TableChunk]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for chunk in chunks {
        let bare = pb::TableChunk {
            receipt: None,
            ..chunk.clone()
        };
        context.update(&bare.encode_to_vec());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}
