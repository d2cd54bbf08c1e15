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

pub use pluis_proto::exchange::Fetch;
use pluis_proto::exchange::{self, Answer, Batch, Epoch, ExchangeId, Round, Sequence, TableCall};
use pluis_proto::oprf::OprfOutput;
use pluis_proto::pb::partner_client::PartnerClient;
use pluis_proto::pb::{self, peer_outcome::State};
use pluis_proto::table::{Flags, LabelledTable};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

use crate::audit::AuditLog;
use crate::requester::peers::Peer;

/// How long one partner may take for a whole exchange.
pub const PEER_DEADLINE: Duration = Duration::from_secs(5);

/// Why an exchange with a partner ended without its answer: the
/// partner's doing, or this node's — never one reported as the other.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The partner refused or failed a call.
    #[error("{}", crate::status_detail(.0))]
    Partner(tonic::Status),
    /// The partner's answer broke the protocol, and was abandoned.
    #[error("the partner {0}; its answer was abandoned")]
    Answer(Broken),
    /// This node failed; the partner is not at fault.
    #[error("this node failed ({0}), not the partner")]
    Local(&'static str),
    /// The partner's policy and this node's conflict: its buckets would
    /// be too small to hide which of its records was asked about.
    #[error("{0}")]
    SmallBuckets(exchange::SmallBuckets),
}

/// How a partner's answer broke the protocol.
#[derive(Debug, thiserror::Error)]
pub enum Broken {
    /// More table entries than its announced table allows.
    #[error("sent more table entries than {0}, the most its announced table allows")]
    TooManyEntries(u64),
    /// A table entry of the wrong shape.
    #[error("sent a malformed table entry")]
    MalformedEntry,
    /// Evaluations that do not unblind, or not one per key.
    #[error("sent evaluations that do not open: {0}")]
    Evaluation(exchange::ExchangeError),
    /// An answer out of the exchange's order.
    #[error("answered out of turn: {0}")]
    Sequence(exchange::SequenceError),
}

impl From<tonic::Status> for AskError {
    fn from(status: tonic::Status) -> Self {
        AskError::Partner(status)
    }
}

impl From<exchange::SequenceError> for AskError {
    fn from(e: exchange::SequenceError) -> Self {
        AskError::Answer(Broken::Sequence(e))
    }
}

impl AskError {
    /// The call status this node's log records for it (as a partner's
    /// own refusal would be: the code says what kind of failure).
    fn code(&self) -> Code {
        match self {
            AskError::Partner(status) => status.code(),
            AskError::Answer(Broken::TooManyEntries(_)) => Code::ResourceExhausted,
            AskError::Answer(_) => Code::DataLoss,
            AskError::Local(_) => Code::Internal,
            AskError::SmallBuckets(_) => Code::FailedPrecondition,
        }
    }

    /// What this node's log records of it: the code and what went wrong.
    fn logged(&self) -> String {
        match self {
            AskError::Partner(status) => format!("{:?}: {}", status.code(), status.message()),
            other => format!("{:?}: {other}", other.code()),
        }
    }

    /// The partner's state in the coordinator's answer.
    fn state(&self) -> State {
        match self {
            AskError::Partner(status) => match status.code() {
                Code::PermissionDenied => State::Denied,
                Code::Unavailable => State::Unreachable,
                Code::DeadlineExceeded => State::TimedOut,
                _ => State::Failed,
            },
            AskError::SmallBuckets(_) => State::Denied,
            AskError::Answer(_) | AskError::Local(_) => State::Failed,
        }
    }
}

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
pub fn exchange_id() -> ExchangeId {
    ExchangeId::random()
}

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
            (Err(error), _) => detail = format!("{detail}; {}", error.logged()),
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
            call_status: call.outcome.as_ref().err().map_or(0, |e| e.code() as i32),
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
    outcome: Result<[u8; 32], &'a AskError>,
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
                org: org.to_string(),
                state: State::Answered as i32,
                table_size: exchanged.table_size,
                table_from_cache: exchanged.table_from_cache,
                ..Default::default()
            },
            flags: exchanged.flags,
            max_keys_per_request: exchanged.max_keys_per_request,
        },
        Ok(Err(error)) => PeerAnswer::failed(&org, keys.len(), error.state(), error.to_string()),
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

/// Fewer keys than this are blinded and unblinded on the calling thread.
const INLINE_BELOW: usize = 16;
/// `Evaluate` calls in flight at once to one partner in bulk screening.
const IN_FLIGHT: usize = 4;

/// Runs `work` here for a few keys, on a blocking thread for many (the
/// elliptic-curve work of blinding and unblinding).
async fn curve_work<T: Send + 'static>(
    keys: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AskError> {
    if keys < INLINE_BELOW {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| AskError::Local("a blinding or unblinding task ended"))
}

/// One `Evaluate` round trip for `keys` under `epoch` (as the wire
/// carries it): blinded, evaluated, logged, unblinded; its outputs and
/// the partner's answer.
async fn evaluate(
    asker: Asker,
    mut client: PartnerClient<Channel>,
    context: pb::ExchangeContext,
    epoch: u64,
    keys: Vec<String>,
) -> Result<(Vec<OprfOutput>, Answer), AskError> {
    let count = keys.len() as u64;
    let round = {
        let context = context.clone();
        curve_work(keys.len(), move || {
            Round::blind(&context, epoch, keys, &mut rand_core::OsRng)
        })
        .await?
        .map_err(|_| AskError::Local("blinding the keys"))?
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
            let error = AskError::Partner(status);
            asker.record(call(Err(&error), None, epoch));
            return Err(error);
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
    .map_err(|e| AskError::Answer(Broken::Evaluation(e)))?;
    Ok((outputs, answer))
}

/// Most bytes in one sealed label a partner may send (a label seals a
/// few flags: nonce, some dozen bytes, AEAD tag).
const MAX_LABEL_BYTES: usize = 1024;

/// One `GetTable` call, read to its end (or until the partner sends more
/// entries than `call` allows, or a malformed one) and logged.
async fn get_table(
    asker: &Asker,
    mut client: PartnerClient<Channel>,
    call: TableCall,
) -> Result<Vec<pb::TableChunk>, AskError> {
    let TableCall { request, allowed } = call;
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
                return Err(AskError::Answer(Broken::TooManyEntries(allowed)));
            }
            if chunk.entries.iter().any(|e| {
                e.tag.len() != pluis_proto::table::TAG_LEN || e.label.len() > MAX_LABEL_BYTES
            }) {
                return Err(AskError::Answer(Broken::MalformedEntry));
            }
            chunks.push(chunk);
        }
        Ok::<_, AskError>(chunks)
    };
    match read.await {
        Ok(chunks) => {
            let entries = chunks.iter().map(|c| c.entries.len() as u64).sum();
            asker.record(call(Ok(exchange::table_response_digest(&chunks)), entries));
            Ok(chunks)
        }
        Err(error) => {
            asker.record(call(Err(&error), 0));
            Err(error)
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

/// Drives one [`Sequence`] over the partner's channel: the first batch,
/// the rest [`IN_FLIGHT`] at a time (with the whole table of a screening
/// fetched meanwhile, unless this very table is cached), then the
/// buckets of a case query, and the flags opened. What to send next is
/// the sequence's to say; here the bytes are moved.
async fn exchange(
    asker: Asker,
    purpose: &str,
    legal_basis: &str,
    keys: &[String],
    id: ExchangeId,
    fetch: Fetch,
) -> Result<Exchanged, AskError> {
    if keys.is_empty() {
        return Ok(Exchanged::default());
    }
    let context = pb::ExchangeContext {
        exchange_id: id.to_vec(),
        purpose: purpose.to_owned(),
        legal_basis: legal_basis.to_owned(),
    };
    let mut sequence = Sequence::new(context.clone(), keys.len(), fetch);
    let client = PartnerClient::new(asker.peer.channel.clone());
    let Some(first) = sequence.next_batch() else {
        return Err(AskError::Local("an exchange without a first batch"));
    };
    let batch = |batch: &Batch| (batch.wire_epoch(), keys[batch.keys.clone()].to_vec());
    let (epoch, first_keys) = batch(&first);
    let (outputs, answer) = evaluate(
        asker.clone(),
        client.clone(),
        context.clone(),
        epoch,
        first_keys,
    )
    .await?;
    sequence.answered(first.index, &answer.response, outputs)?;
    let table = match fetch {
        Fetch::Buckets => None,
        Fetch::Whole => Some(whole_table(&asker, &client, &sequence, &answer.response)?),
    };
    let mut in_flight = std::collections::VecDeque::new();
    loop {
        while in_flight.len() < IN_FLIGHT {
            let Some(next) = sequence.next_batch() else {
                break;
            };
            let (epoch, batch_keys) = batch(&next);
            let ask = evaluate(
                asker.clone(),
                client.clone(),
                context.clone(),
                epoch,
                batch_keys,
            );
            in_flight.push_back((next.index, tokio::spawn(ask)));
        }
        let Some((index, next)) = in_flight.pop_front() else {
            break;
        };
        let (outputs, answer) = next
            .await
            .map_err(|_| AskError::Local("an evaluation task ended"))??;
        sequence.answered(index, &answer.response, outputs)?;
    }
    let opening = sequence.opening()?;
    let (flags, table_from_cache) = match table {
        Some((table, from_cache)) => {
            let table = table
                .await
                .map_err(|_| AskError::Local("a table task ended"))??;
            let pinned = sequence.pinned().map(|p| (p.epoch, p.table_digest.clone()));
            if let Some((epoch, digest)) = pinned {
                if table.digest()[..] == digest[..] {
                    asker.peer.cache_table(epoch, table.clone());
                }
            }
            let flags = tokio::task::spawn_blocking(move || opening.open_table(&table))
                .await
                .map_err(|_| AskError::Local("an opening task ended"))?;
            (flags, from_cache)
        }
        None => {
            // Case queries: the bucket of every key's tag prefix, in one call.
            let call = sequence
                .bucket_call(&opening, asker.peer.min_bucket_entries)?
                .map_err(AskError::SmallBuckets)?;
            let chunks = get_table(&asker, client, call).await?;
            (opening.open_chunks(&chunks), false)
        }
    };
    let (table_size, max_keys_per_request) = sequence
        .pinned()
        .map_or((0, 0), |p| (p.table_size, p.max_keys_per_request));
    Ok(Exchanged {
        flags,
        table_size,
        table_from_cache,
        max_keys_per_request,
    })
}

/// A whole partner table, being fetched: the cached one if its epoch and
/// digest are this answer's, else a task streaming it in.
type TableTask = tokio::task::JoinHandle<Result<Arc<LabelledTable>, AskError>>;

fn whole_table(
    asker: &Asker,
    client: &PartnerClient<Channel>,
    sequence: &Sequence,
    first: &pb::EvaluateResponse,
) -> Result<(TableTask, bool), AskError> {
    let cached = Epoch::new(first.epoch)
        .and_then(|epoch| asker.peer.cached_table(epoch, &first.table_digest));
    if let Some(table) = cached {
        return Ok((tokio::spawn(async move { Ok(table) }), true));
    }
    let call = sequence.whole_table_call()?;
    let (asker, client) = (asker.clone(), client.clone());
    let task = tokio::spawn(async move {
        let chunks = get_table(&asker, client, call).await?;
        Ok(Arc::new(exchange::table_from_chunks(chunks)))
    });
    Ok((task, false))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_failure_is_never_reported_as_the_partners() {
        let local = AskError::Local("an evaluation task ended");
        assert_eq!(local.state(), State::Failed);
        assert!(
            local.to_string().contains("this node failed")
                && local.to_string().contains("not the partner"),
            "{local}"
        );
        let partner =
            AskError::Partner(tonic::Status::permission_denied("policy rule purposes: …"));
        assert_eq!(partner.state(), State::Denied);
        assert!(partner
            .to_string()
            .starts_with("PermissionDenied: policy rule purposes"));
        let broken = AskError::Answer(Broken::TooManyEntries(64));
        assert_eq!(broken.state(), State::Failed);
        assert_eq!(broken.code(), Code::ResourceExhausted);
        assert!(broken
            .to_string()
            .starts_with("the partner sent more table entries than 64,"));
        assert!(broken
            .logged()
            .starts_with("ResourceExhausted: the partner sent"));
    }
}
