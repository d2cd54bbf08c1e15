//! The requester's side of matching: ask one partner about a set of keys.
//!
//! Blind every key, have the partner evaluate them (`Evaluate`), unblind to
//! OPRF outputs, derive tags, fetch the partner's table bucket for each
//! distinct tag prefix (`GetTable`), and open the labels whose tag is ours.
//! The whole exchange runs under one deadline, so a slow or dead partner
//! gives a partial answer, never a hang.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use pluis_proto::oprf::blind;
use pluis_proto::oprf::OprfOutput;
use pluis_proto::pb::partner_client::PartnerClient;
use pluis_proto::pb::{self, peer_outcome::State};
use pluis_proto::table::{open_label, tag, Flags, LabelledTable, Prefix, TableEntry, Tag};
use prost::Message;
use rayon::prelude::*;
use ring::rand::{SecureRandom, SystemRandom};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

use std::sync::Arc;

use tokio::task::JoinSet;

use crate::audit::AuditLog;
use crate::peers::{Peer, Peers};
use crate::policy::Purpose;

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

/// Asks every partner at once, each under its own `deadline`; collect
/// the answers with [`gather`]. Case queries ([`Fetch::Buckets`]) ride on
/// the next exchange with each partner, merged with others
/// ([`crate::batch`]).
pub fn ask_all(
    peers: &Peers,
    audit: &Arc<AuditLog>,
    purpose: &Purpose,
    keys: &[String],
    deadline: Duration,
    fetch: Fetch,
) -> JoinSet<PeerAnswer> {
    let mut asks = JoinSet::new();
    let keys: Arc<[String]> = keys.into();
    for peer in peers.iter() {
        let (peer, purpose, keys, audit) =
            (peer.clone(), purpose.clone(), keys.clone(), audit.clone());
        asks.spawn(async move {
            let asker = Asker { peer, audit };
            match fetch {
                Fetch::Buckets => crate::batch::ask(asker, &purpose, keys, deadline).await,
                Fetch::Whole => {
                    ask_peer(
                        asker,
                        &purpose.name,
                        &purpose.legal_basis,
                        &keys,
                        deadline,
                        fetch,
                    )
                    .await
                }
            }
        });
    }
    asks
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

/// Every answer of [`ask_all`], in org order.
pub async fn gather(mut asks: JoinSet<PeerAnswer>) -> Vec<PeerAnswer> {
    let mut answers = Vec::new();
    while let Some(joined) = asks.join_next().await {
        // A task that panicked has no answer; its partner is simply missing.
        if let Ok(answer) = joined {
            answers.push(answer);
        }
    }
    answers.sort_by(|a, b| a.outcome.org.cmp(&b.outcome.org));
    answers
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

/// Opens `label` for the holder of `output`, adding its flags to `into`.
fn open_into(into: &mut Option<Flags>, output: &pluis_proto::oprf::OprfOutput, label: &[u8]) {
    // A label that does not open is not ours: skip it.
    if let Ok(found) = open_label(output, label).and_then(|plain| Flags::decode(&plain)) {
        let merged = into.get_or_insert_with(Flags::default);
        merged.domains.extend(found.domains);
        merged.signals.extend(found.signals);
    }
}

/// Keys per `Evaluate` when the partner allows more than the first batch.
const MAX_BATCH: usize = 2048;
/// Fewer keys than this are blinded and unblinded on the calling thread.
const INLINE_BELOW: usize = 16;
/// `Evaluate` calls in flight at once to one partner in bulk screening.
const IN_FLIGHT: usize = 4;

/// One `Evaluate` round trip, unblinded.
struct Evaluated {
    outputs: Vec<OprfOutput>,
    response: pb::EvaluateResponse,
}

/// Blinds `keys`, has the partner evaluate them under `epoch` (0: its
/// current one) and unblinds the answers; the elliptic-curve work runs on
/// all cores, off the async runtime.
async fn evaluate(
    asker: Asker,
    mut client: PartnerClient<Channel>,
    context: pb::ExchangeContext,
    epoch: u64,
    keys: Arc<[String]>,
) -> Result<Evaluated, tonic::Status> {
    let blinding_keys = keys.clone();
    let blind_all = move || {
        blinding_keys
            .par_iter()
            .map(|k| blind(k.as_bytes(), &mut rand_core::OsRng))
            .collect::<Result<Vec<_>, _>>()
    };
    // A few keys (case queries) are cheaper here than on other threads.
    let blinded = if keys.len() < INLINE_BELOW {
        blind_all()
    } else {
        tokio::task::spawn_blocking(blind_all)
            .await
            .map_err(|_| tonic::Status::internal("blinding task failed"))?
    }
    .map_err(|e| tonic::Status::internal(format!("blinding: {e}")))?;
    let request = pb::EvaluateRequest {
        context: Some(context.clone()),
        epoch,
        blinded: blinded.iter().map(|b| b.element.to_vec()).collect(),
    };
    let request_digest = pluis_proto::log::digest(&request.encode_to_vec());
    let call = |outcome, receipt, epoch| Call {
        context: &context,
        what: "evaluate",
        keys: keys.len() as u64,
        entries: 0,
        epoch,
        request_digest,
        outcome,
        receipt,
    };
    let mut response = match client.evaluate(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            asker.record(call(Err(&status), None, epoch));
            return Err(status);
        }
    };
    let receipt = response.receipt.take();
    let response_digest = pluis_proto::log::digest(&response.encode_to_vec());
    asker.record(call(Ok(response_digest), receipt, response.epoch));
    if response.evaluated.len() != keys.len() {
        return Err(tonic::Status::internal(format!(
            "{} evaluations for {} keys",
            response.evaluated.len(),
            keys.len()
        )));
    }
    let evaluated = std::mem::take(&mut response.evaluated);
    let small = keys.len() < INLINE_BELOW;
    let finalize_all = move || {
        blinded
            .par_iter()
            .zip(keys.par_iter())
            .zip(evaluated.par_iter())
            .map(|((b, k), e)| b.finalize(k.as_bytes(), e))
            .collect::<Result<Vec<_>, _>>()
    };
    let outputs = if small {
        finalize_all()
    } else {
        tokio::task::spawn_blocking(finalize_all)
            .await
            .map_err(|_| tonic::Status::internal("unblinding task failed"))?
    }
    .map_err(|err| tonic::Status::internal(format!("partner's evaluation: {err}")))?;
    Ok(Evaluated { outputs, response })
}

/// Streams a partner's whole table for `epoch`.
async fn fetch_whole(
    asker: Asker,
    client: PartnerClient<Channel>,
    context: pb::ExchangeContext,
    epoch: u64,
) -> Result<LabelledTable, tonic::Status> {
    let chunks = get_table(asker, client, &context, epoch, 0, Vec::new(), Vec::new()).await?;
    let mut entries = Vec::new();
    for chunk in chunks {
        for entry in chunk.entries {
            if let Ok(tag) = Tag::try_from(entry.tag.as_slice()) {
                entries.push(TableEntry {
                    tag,
                    label: entry.label,
                });
            }
        }
    }
    Ok(LabelledTable::new(entries))
}

/// One `GetTable` call, read to its end and logged with its receipt
/// (which rides on the last chunk).
async fn get_table(
    asker: Asker,
    mut client: PartnerClient<Channel>,
    context: &pb::ExchangeContext,
    epoch: u64,
    prefix_bits: u32,
    prefix: Vec<u8>,
    more_prefixes: Vec<Vec<u8>>,
) -> Result<Vec<pb::TableChunk>, tonic::Status> {
    let buckets = 1 + more_prefixes.len();
    let request = pb::GetTableRequest {
        context: Some(context.clone()),
        epoch,
        prefix_bits,
        prefix,
        more_prefixes,
    };
    let request_digest = pluis_proto::log::digest(&request.encode_to_vec());
    let what = format!("table prefix_bits={prefix_bits} buckets={buckets}");
    let call = |outcome, receipt, entries| Call {
        context,
        what: &what,
        keys: 0,
        entries,
        epoch,
        request_digest,
        outcome,
        receipt,
    };
    let read = async {
        let mut stream = client.get_table(request).await?.into_inner();
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next().await {
            chunks.push(chunk?);
        }
        Ok::<_, tonic::Status>(chunks)
    };
    match read.await {
        Ok(mut chunks) => {
            let receipt = chunks.last_mut().and_then(|c| c.receipt.take());
            let digest = crate::service::partner::table_response_digest(&chunks);
            let entries = chunks.iter().map(|c| c.entries.len() as u64).sum();
            asker.record(call(Ok(digest), receipt, entries));
            Ok(chunks)
        }
        Err(status) => {
            asker.record(call(Err(&status), None, 0));
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
    let first = evaluate(
        asker.clone(),
        client.clone(),
        context.clone(),
        0,
        keys[..first_len].into(),
    )
    .await?;
    let epoch = first.response.epoch;
    let min_prefix_bits = first.response.min_prefix_bits;
    let table_size = first.response.table_size;
    let max_keys_per_request = u64::from(first.response.max_keys_per_request);
    let mut table_from_cache = false;
    // In bulk, fetch the whole table (unless this very table is cached)
    // while the remaining keys are evaluated.
    let table = match fetch {
        Fetch::Buckets => None,
        Fetch::Whole => Some(
            match peer.cached_table(epoch, &first.response.table_digest) {
                Some(table) => {
                    table_from_cache = true;
                    tokio::spawn(async move { Ok(table) })
                }
                None => {
                    let fetching =
                        fetch_whole(asker.clone(), client.clone(), context.clone(), epoch);
                    tokio::spawn(async move { fetching.await.map(Arc::new) })
                }
            },
        ),
    };
    let mut outputs = first.outputs;
    let batch = (first.response.max_keys_per_request as usize).clamp(1, MAX_BATCH);
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
                chunk.into(),
            )));
        }
        let Some(next) = in_flight.pop_front() else {
            break;
        };
        let evaluated = next
            .await
            .map_err(|_| tonic::Status::internal("evaluation task failed"))??;
        outputs.extend(evaluated.outputs);
    }
    let tags: Vec<Tag> = outputs.iter().map(tag).collect();
    if let Some(table) = table {
        let table = table
            .await
            .map_err(|_| tonic::Status::internal("table task failed"))??;
        if table.digest()[..] == first.response.table_digest[..] {
            peer.cache_table(epoch, table.clone());
        }
        let flags = tokio::task::spawn_blocking(move || {
            tags.par_iter()
                .zip(outputs.par_iter())
                .map(|(t, output)| {
                    let mut flags = None;
                    for entry in table.find(t) {
                        open_into(&mut flags, output, &entry.label);
                    }
                    flags
                })
                .collect()
        })
        .await
        .map_err(|_| tonic::Status::internal("opening task failed"))?;
        return Ok(Exchanged {
            flags,
            table_size,
            table_from_cache,
            max_keys_per_request,
        });
    }

    // Case queries: the bucket of every key's tag prefix, in one call.
    let mut flags: Vec<Option<Flags>> = vec![None; keys.len()];
    let mut wanted: HashMap<Tag, Vec<usize>> = HashMap::new();
    let mut prefixes: BTreeSet<Vec<u8>> = BTreeSet::new();
    for (i, t) in tags.iter().enumerate() {
        wanted.entry(*t).or_default().push(i);
        prefixes.insert(Prefix::of(t, min_prefix_bits).bytes().to_vec());
    }
    let mut prefixes = prefixes.into_iter();
    let first = prefixes.next().unwrap_or_default();
    let chunks = get_table(
        asker.clone(),
        client.clone(),
        &context,
        epoch,
        min_prefix_bits,
        first,
        prefixes.collect(),
    )
    .await?;
    for chunk in chunks {
        for entry in chunk.entries {
            let Ok(entry_tag) = Tag::try_from(entry.tag.as_slice()) else {
                continue;
            };
            for &i in wanted.get(&entry_tag).map_or(&[][..], Vec::as_slice) {
                open_into(&mut flags[i], &outputs[i], &entry.label);
            }
        }
    }
    Ok(Exchanged {
        flags,
        table_size,
        table_from_cache,
        max_keys_per_request,
    })
}
