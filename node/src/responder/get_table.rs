//! `GetTable`: the buckets of the peer's view of this node's table,
//! served only inside an exchange whose keys this node evaluated, for no
//! more buckets than its keys ([`crate::responder::served`]).

use pluis_proto::exchange::{self, Epoch, ExchangeId};
use pluis_proto::pb::{self, audit_entry::Kind};
use pluis_proto::table::{LabelledTable, Prefix, TableEntry};
use pluis_proto::SpiffeId;

use super::call::{Call, RespondError};
use crate::failure::Failure;
use crate::policy::View;
use crate::policy::{decide_table, Ask, Rule};
use crate::responder::served::Unserved;
use crate::server::state::NodeState;

/// Table entries per streamed chunk: about 0.5 MiB, well under gRPC's
/// 4 MiB message limit.
const TABLE_CHUNK: usize = 8 * 1024;

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
    let announced = match state
        .served
        .take(of, buckets, whole, state.clock.now_secs())
    {
        Ok(announced) => announced,
        Err(unserved) => {
            let rule = match unserved {
                Unserved::TooManyBuckets { .. } => Rule::Buckets,
                _ => Rule::Exchange,
            };
            let message = format!("policy rule {rule}: {unserved}");
            return Err(call.refuse(0, rule, message).await);
        }
    };
    let view = View::of(&policy);
    let today = state.clock.today();
    // The table the exchange's Evaluate announced, if it still serves
    // this view today; else the table as it is now.
    let announced = announced
        .filter(|a| a.serves(&view, today))
        .map(|a| a.table);
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
        let table = match announced {
            Some(table) => table,
            None => state
                .tables
                .get(&state.store, epoch, &key, &view, today)
                .map_err(Failure::store("table"))?,
        };
        let (chunks, served) = chunks_of(&table, &prefixes, epoch);
        let entry = pb::AuditEntry {
            entries_served: served as u64,
            response_digest: exchange::table_response_digest(&chunks).to_vec(),
            ..template
        };
        let index = state
            .store
            .append_audit(&entry)
            .map_err(Failure::store("audit log"))?;
        Ok::<_, RespondError>((chunks, served, index))
    })
    .await
    .map_err(|_| Failure::Task("table"))??;
    tracing::info!(entries = served, log_index = index, "table entries served");
    Ok(chunks)
}

/// The entries of `table` under `prefixes`, in chunks to stream, and
/// how many there are.
fn chunks_of(
    table: &LabelledTable,
    prefixes: &[Prefix],
    epoch: Epoch,
) -> (Vec<pb::TableChunk>, usize) {
    let bucket: Vec<&TableEntry> = prefixes
        .iter()
        .flat_map(|p| table.bucket(p).iter())
        .collect();
    let chunks = bucket
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
    (chunks, bucket.len())
}
