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

#[tonic::async_trait]
impl pb::partner_server::Partner for PartnerService {
    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let caller = caller(&request)?;
        let peer = caller.org().to_owned();
        let request = request.into_inner();
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
            tracing::warn!(rule = denial.rule, "exchange denied");
            return Err(self.deny(denial.to_string()));
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

        // Charge the day's budget only for a request that was served; a
        // concurrent request may have used it up meanwhile.
        let limit = policy.map_or(0, |p| p.max_keys_per_day);
        match state.store.charge_budget(&peer, day, keys, limit) {
            Ok(Ok(_)) => {}
            Ok(Err(used)) => {
                tracing::warn!(rule = "max_keys_per_day", "exchange denied");
                return Err(self.deny(format!(
                    "policy rule max_keys_per_day: {keys} keys asked with {used} used today; {peer} allows {limit} per day"
                )));
            }
            Err(e) => return Err(Status::internal(format!("budget: {e}"))),
        }
        // The size of this peer's table view, built now if need be so that
        // the GetTable calls that follow find it ready.
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
        state.exchanges.fetch_add(1, Ordering::Relaxed);
        tracing::info!(epoch, table_size, "exchange served");
        Ok(Response::new(pb::EvaluateResponse {
            epoch,
            evaluated,
            table_size,
            min_prefix_bits: policy.map_or(0, |p| p.min_prefix_bits),
            receipt: None,
            table_digest,
            max_keys_per_request: policy.map_or(0, |p| {
                u32::try_from(p.max_keys_per_request).unwrap_or(u32::MAX)
            }),
        }))
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
                    tracing::warn!(rule = denial.rule, "table request denied");
                    return Err(self.deny(denial.to_string()));
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
            let table = tokio::task::spawn_blocking(move || {
                state.tables.get(&state.store, epoch, &key, &view, today)
            })
            .await
            .map_err(|_| Status::internal("table task failed"))?
            .map_err(|e| Status::internal(format!("table: {e}")))?;
            let bucket = table.bucket(&prefix);
            tracing::info!(entries = bucket.len(), "table entries served");
            let chunks: Vec<Result<pb::TableChunk, Status>> = bucket
                .chunks(TABLE_CHUNK)
                .map(|chunk| {
                    Ok(pb::TableChunk {
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
                })
                .collect();
            let stream: Self::GetTableStream = Box::pin(tokio_stream::iter(chunks));
            Ok(Response::new(stream))
        }
        .instrument(span)
        .await
    }
}
