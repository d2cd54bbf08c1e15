//! The requester's side of matching: ask one partner about a set of keys.
//!
//! What is sent and opened is made by [`pluis_proto::exchange`] (blind,
//! unblind, bucket requests, opening labels, digests); here the bytes are
//! moved — `Evaluate` and `GetTable` calls over the partner's channel — and
//! every call is logged with the partner's receipt. The whole exchange
//! runs under one deadline, so a slow or dead partner gives a partial
//! answer, never a hang. Asking every partner at once, and merging case
//! queries into shared exchanges, is [`crate::requester::fanout`] and
//! [`crate::requester::batch`], which call in here.

use std::sync::Arc;
use std::time::Duration;

use pluis_proto::exchange::{self, Answer, Opening, Round};
use pluis_proto::oprf::OprfOutput;
use pluis_proto::pb::partner_client::PartnerClient;
use pluis_proto::pb::{self, peer_outcome::State};
use pluis_proto::table::Flags;
use ring::rand::{SecureRandom, SystemRandom};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

use crate::audit::AuditLog;
use crate::requester::peers::Peer;

/// How long one partner may take for a whole exchange.
pub const PEER_DEADLINE: Duration = Duration::from_secs(5);

/// What one partner answered.
#[derive(Debug, Clone)]
pub struct PeerAnswer {
    /// The outcome, for the coordinator's report.
    pub outcome: pb::PeerOutcome,
    /// Per key (in the order asked), the flags the partner holds, if any.
    pub flags: Vec<Option<Flags>>,
    /// The partner's `max_keys_per_request` for us, if it answered (else 0).
    pub max_keys_per_request: u64,
}

impl PeerAnswer {
    /// No answer from `org` about `keys` keys: `state`, and why.
    pub fn failed(org: &str, keys: usize, state: State, detail: String) -> Self {
        PeerAnswer {
            outcome: pb::PeerOutcome {
                org: org.to_owned(),
                state: state as i32,
                detail,
                ..Default::default()
            },
            flags: vec![None; keys],
            max_keys_per_request: 0,
        }
    }
}

/// A fresh random exchange id.
pub fn exchange_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    // Without an OS RNG nothing else works either; a zero id is still
    // unique enough to be logged, and the blinding below would fail anyway.
    let _ = SystemRandom::new().fill(&mut id);
    id
}

/// How a partner's table is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Only the buckets of our own tags' prefixes (case queries).
    Buckets,
    /// The whole table (bulk screening).
    Whole,
}

/// Keys per `Evaluate` request in bulk screening (the default policy limit).
pub const BULK_BATCH: usize = 100;

/// Who asks whom: the partner, and this node's log, where every call to
/// it is recorded with the partner's receipt.
#[derive(Clone)]
pub struct Asker {
    /// The partner.
    pub peer: Peer,
    /// This node's audit log.
    pub audit: Arc<AuditLog>,
}

impl Asker {
    /// Records one call to the partner: what was asked, the digests of
    /// request and answer, and the partner's receipt (checked against its
    /// `log_key`), or why there is none. Appended, not yet flushed: the
    /// query flushes once at its end.
    fn record(&self, call: Call<'_>) {
        let audit = &self.audit;
        let mut detail = call.what.to_owned();
        let mut receipt = None;
        match (&call.outcome, call.receipt) {
            (Err(status), _) => {
                detail = format!("{detail}; {:?}: {}", status.code(), status.message());
            }
            // Receipts ride on Evaluate, the call that releases anything.
            (Ok(_), None) if call.keys > 0 => detail.push_str("; no receipt"),
            (Ok(_), None) => {}
            (Ok(response_digest), Some(r)) => {
                match &self.peer.log_key {
                    None => detail.push_str("; receipt not checked: no log_key for this peer"),
                    Some(key) => {
                        if let Err(e) = pluis_proto::log::verify_receipt(
                            key,
                            &r,
                            &call.context.exchange_id,
                            &call.request_digest,
                            response_digest,
                        ) {
                            detail = format!("{detail}; no valid receipt: {e}");
                        }
                    }
                }
                receipt = Some(r);
            }
        }
        let entry = pb::AuditEntry {
            call_status: call.outcome.as_ref().err().map_or(0, |s| s.code() as i32),
            counterparty: audit.peer_id(&self.peer.org),
            exchange_id: call.context.exchange_id.clone(),
            purpose: call.context.purpose.clone(),
            legal_basis: call.context.legal_basis.clone(),
            keys_asked: call.keys,
            entries_served: call.entries,
            request_digest: call.request_digest.to_vec(),
            response_digest: call
                .outcome
                .as_ref()
                .map(|d| d.to_vec())
                .unwrap_or_default(),
            epoch: call.epoch,
            receipt,
            detail,
            ..audit.entry(pb::audit_entry::Kind::ExchangeRequested)
        };
        if let Err(e) = audit.store().append_audit(&entry) {
            tracing::error!(error = %e, "could not log a request to a partner");
        }
    }
}

/// One call to a partner, as the requester logs it.
struct Call<'a> {
    context: &'a pb::ExchangeContext,
    what: &'a str,
    keys: u64,
    entries: u64,
    epoch: u64,
    request_digest: [u8; 32],
    /// The answer's digest, or the refusal.
    outcome: Result<[u8; 32], &'a tonic::Status>,
    receipt: Option<pb::Receipt>,
}

/// Asks `peer` about `keys` (canonical encodings) for `purpose`, reading
/// its table as `fetch` says.
pub async fn ask_peer(
    asker: Asker,
    purpose: &str,
    legal_basis: &str,
    keys: &[String],
    deadline: Duration,
    fetch: Fetch,
) -> PeerAnswer {
    let id = exchange_id();
    let org = asker.peer.org.clone();
    let work = exchange(asker, purpose, legal_basis, keys, id, fetch);
    let mut answer = match tokio::time::timeout(deadline, work).await {
        Ok(Ok(exchanged)) => PeerAnswer {
            outcome: pb::PeerOutcome {
                org,
                state: State::Answered as i32,
                table_size: exchanged.table_size,
                table_from_cache: exchanged.table_from_cache,
                ..Default::default()
            },
            flags: exchanged.flags,
            max_keys_per_request: exchanged.max_keys_per_request,
        },
        Ok(Err(status)) => {
            let state = match status.code() {
                Code::PermissionDenied => State::Denied,
                Code::Unavailable => State::Unreachable,
                Code::DeadlineExceeded => State::TimedOut,
                _ => State::Failed,
            };
            PeerAnswer::failed(&org, keys.len(), state, crate::status_detail(&status))
        }
        Err(_) => PeerAnswer::failed(
            &org,
            keys.len(),
            State::TimedOut,
            format!("no answer within {} s", deadline.as_secs()),
        ),
    };
    answer.outcome.exchange_id = id.to_vec();
    answer
}

/// Keys per `Evaluate` when the partner allows more than the first batch.
const MAX_BATCH: usize = 2048;
/// Fewer keys than this are blinded and unblinded on the calling thread.
const INLINE_BELOW: usize = 16;
/// `Evaluate` calls in flight at once to one partner in bulk screening.
const IN_FLIGHT: usize = 4;

/// Runs `work` here for a few keys, on a blocking thread for many (the
/// elliptic-curve work of blinding and unblinding).
async fn curve_work<T: Send + 'static>(
    keys: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tonic::Status> {
    if keys < INLINE_BELOW {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| tonic::Status::internal("blinding or unblinding task failed"))
}

/// One `Evaluate` round trip: `keys` blinded, evaluated under `epoch` (0:
/// the partner's current one), logged, unblinded.
async fn evaluate(
    asker: Asker,
    mut client: PartnerClient<Channel>,
    context: pb::ExchangeContext,
    epoch: u64,
    keys: Vec<String>,
) -> Result<(Vec<OprfOutput>, Answer), tonic::Status> {
    let count = keys.len() as u64;
    let round = {
        let context = context.clone();
        curve_work(keys.len(), move || {
            Round::blind(&context, epoch, keys, &mut rand_core::OsRng)
        })
        .await?
        .map_err(|e| tonic::Status::internal(e.to_string()))?
    };
    let call = |outcome, receipt, epoch| Call {
        context: &context,
        what: "evaluate",
        keys: count,
        entries: 0,
        epoch,
        request_digest: round.request_digest(),
        outcome,
        receipt,
    };
    let mut answer = match client.evaluate(round.request().clone()).await {
        Ok(response) => Answer::of(response.into_inner()),
        Err(status) => {
            asker.record(call(Err(&status), None, epoch));
            return Err(status);
        }
    };
    asker.record(call(
        Ok(answer.digest),
        answer.receipt.clone(),
        answer.response.epoch,
    ));
    let (outputs, answer) = curve_work(round.len(), move || {
        round.finish(&mut answer).map(|outputs| (outputs, answer))
    })
    .await?
    .map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok((outputs, answer))
}

/// Most bytes in one sealed label a partner may send (a label seals a
/// few flags: nonce, some dozen bytes, AEAD tag).
const MAX_LABEL_BYTES: usize = 1024;

/// The most table entries a `GetTable` answer may hold: what the partner
/// announced for its whole table, half again and 1,024 more (its table
/// may change between its `Evaluate` and its `GetTable`, when a live
/// import is published in between); for buckets, `buckets` of the size
/// such a table makes likely, with a wide margin (tags are uniform: a
/// 16-bit bucket of a 1,000,000-entry table holds about 15). A partner
/// that sends more is abandoned, so it cannot grow this node's memory
/// beyond what it announced and what this node asked for.
pub fn entries_allowed(table_size: u64, prefix_bits: u32, buckets: u64) -> u64 {
    let table = table_size
        .saturating_add(table_size / 2)
        .saturating_add(1024);
    if prefix_bits == 0 {
        return table;
    }
    let expected = table.checked_shr(prefix_bits).unwrap_or(0);
    buckets.saturating_mul(expected.saturating_mul(8).saturating_add(64))
}

/// One `GetTable` call, read to its end (or until the partner sends more
/// than `allowed` entries, or a malformed one) and logged.
async fn get_table(
    asker: &Asker,
    mut client: PartnerClient<Channel>,
    request: pb::GetTableRequest,
    allowed: u64,
) -> Result<Vec<pb::TableChunk>, tonic::Status> {
    let context = request.context.clone().unwrap_or_default();
    let request_digest = exchange::request_digest(&request);
    let (epoch, prefix_bits) = (request.epoch, request.prefix_bits);
    let what = format!(
        "table prefix_bits={prefix_bits} buckets={}",
        1 + request.more_prefixes.len()
    );
    let call = |outcome, entries| Call {
        context: &context,
        what: &what,
        keys: 0,
        entries,
        epoch,
        request_digest,
        outcome,
        receipt: None,
    };
    let read = async {
        let mut stream = client.get_table(request).await?.into_inner();
        let mut chunks = Vec::new();
        let mut entries = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            entries += chunk.entries.len() as u64;
            if entries > allowed {
                return Err(tonic::Status::resource_exhausted(format!(
                    "the partner sent more table entries than {allowed}, the most its announced table allows; its answer was abandoned"
                )));
            }
            if chunk.entries.iter().any(|e| {
                e.tag.len() != pluis_proto::table::TAG_LEN || e.label.len() > MAX_LABEL_BYTES
            }) {
                return Err(tonic::Status::data_loss(
                    "the partner sent a malformed table entry; its answer was abandoned",
                ));
            }
            chunks.push(chunk);
        }
        Ok::<_, tonic::Status>(chunks)
    };
    match read.await {
        Ok(chunks) => {
            let entries = chunks.iter().map(|c| c.entries.len() as u64).sum();
            asker.record(call(Ok(exchange::table_response_digest(&chunks)), entries));
            Ok(chunks)
        }
        Err(status) => {
            asker.record(call(Err(&status), 0));
            Err(status)
        }
    }
}

/// What one exchange with a partner found.
#[derive(Debug, Default)]
struct Exchanged {
    /// Per key, the partner's flags, if any.
    flags: Vec<Option<Flags>>,
    /// The size of the partner's table for us.
    table_size: u64,
    /// Whether a cached whole table was used.
    table_from_cache: bool,
    /// The partner's `max_keys_per_request` for us.
    max_keys_per_request: u64,
}

async fn exchange(
    asker: Asker,
    purpose: &str,
    legal_basis: &str,
    keys: &[String],
    id: [u8; 16],
    fetch: Fetch,
) -> Result<Exchanged, tonic::Status> {
    if keys.is_empty() {
        return Ok(Exchanged::default());
    }
    let context = pb::ExchangeContext {
        exchange_id: id.to_vec(),
        purpose: purpose.to_owned(),
        legal_basis: legal_basis.to_owned(),
    };
    let peer = asker.peer.clone();
    let client = PartnerClient::new(peer.channel.clone());
    // The first call learns the epoch, the limits and the table digest;
    // every later batch is asked under the same epoch.
    let first_len = match fetch {
        Fetch::Buckets => keys.len(),
        Fetch::Whole => BULK_BATCH.min(keys.len()),
    };
    let (mut outputs, first) = evaluate(
        asker.clone(),
        client.clone(),
        context.clone(),
        0,
        keys[..first_len].to_vec(),
    )
    .await?;
    let first = first.response;
    let epoch = first.epoch;
    let table_size = first.table_size;
    let max_keys_per_request = u64::from(first.max_keys_per_request);
    let mut table_from_cache = false;
    // In bulk, fetch the whole table (unless this very table is cached)
    // while the remaining keys are evaluated.
    let table = match fetch {
        Fetch::Buckets => None,
        Fetch::Whole => Some(match peer.cached_table(epoch, &first.table_digest) {
            Some(table) => {
                table_from_cache = true;
                tokio::spawn(async move { Ok(table) })
            }
            None => {
                let (asker, client) = (asker.clone(), client.clone());
                let request = Opening::new(Vec::new()).bucket_request(&context, epoch, 0);
                tokio::spawn(async move {
                    let chunks = get_table(&asker, client, request, table_size).await?;
                    Ok::<_, tonic::Status>(Arc::new(exchange::table_from_chunks(chunks)))
                })
            }
        }),
    };
    let batch = (first.max_keys_per_request as usize).clamp(1, MAX_BATCH);
    let mut batches = keys[first_len..].chunks(batch);
    let mut in_flight = std::collections::VecDeque::new();
    loop {
        while in_flight.len() < IN_FLIGHT {
            let Some(chunk) = batches.next() else { break };
            in_flight.push_back(tokio::spawn(evaluate(
                asker.clone(),
                client.clone(),
                context.clone(),
                epoch,
                chunk.to_vec(),
            )));
        }
        let Some(next) = in_flight.pop_front() else {
            break;
        };
        let (more, _) = next
            .await
            .map_err(|_| tonic::Status::internal("evaluation task failed"))??;
        outputs.extend(more);
    }
    let opening = Opening::new(outputs);
    let flags = match table {
        Some(table) => {
            let table = table
                .await
                .map_err(|_| tonic::Status::internal("table task failed"))??;
            if table.digest()[..] == first.table_digest[..] {
                peer.cache_table(epoch, table.clone());
            }
            tokio::task::spawn_blocking(move || opening.open_table(&table))
                .await
                .map_err(|_| tonic::Status::internal("opening task failed"))?
        }
        None => {
            // Case queries: the bucket of every key's tag prefix, in one call.
            let request = opening.bucket_request(&context, epoch, first.min_prefix_bits);
            let buckets = 1 + request.more_prefixes.len() as u64;
            let allowed = entries_allowed(table_size, request.prefix_bits, buckets);
            let chunks = get_table(&asker, client, request, allowed).await?;
            opening.open_chunks(&chunks)
        }
    };
    Ok(Exchanged {
        flags,
        table_size,
        table_from_cache,
        max_keys_per_request,
    })
}

#[cfg(test)]
mod tests {
    use super::entries_allowed;

    #[test]
    fn a_table_answer_may_hold_no_more_than_announced() {
        assert_eq!(entries_allowed(10, 0, 0), 10 + 5 + 1024, "the whole table");
        // A 1,000,000-entry table (and half again): about 22 per 16-bit
        // bucket, allowed 8× and 64 more.
        assert_eq!(entries_allowed(1_000_000, 16, 3), 3 * (22 * 8 + 64));
        // A table that grew from one entry to 100,000 since it was
        // announced still fits in a bucket's allowance.
        assert_eq!(entries_allowed(1, 16, 5), 5 * 64);
        assert_eq!(entries_allowed(u64::MAX, 128, u64::MAX), u64::MAX);
    }
}
