//! The requester's side of matching: ask one partner about a set of keys.
//!
//! Blind every key, have the partner evaluate them (`Evaluate`), unblind to
//! OPRF outputs, derive tags, fetch the partner's table bucket for each
//! distinct tag prefix (`GetTable`), and open the labels whose tag is ours.
//! The whole exchange runs under one deadline, so a slow or dead partner
//! gives a partial answer, never a hang.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use pluis_proto::oprf::blind;
use pluis_proto::pb::partner_client::PartnerClient;
use pluis_proto::pb::{self, peer_outcome::State};
use pluis_proto::table::{open_label, tag, Flags, Prefix, Tag};
use ring::rand::{SecureRandom, SystemRandom};
use tokio_stream::StreamExt;
use tonic::Code;

use std::sync::Arc;

use tokio::task::JoinSet;

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
/// the answers with [`gather`].
pub fn ask_all(
    peers: &Peers,
    purpose: &Purpose,
    keys: &[String],
    deadline: Duration,
    fetch: Fetch,
) -> JoinSet<PeerAnswer> {
    let mut asks = JoinSet::new();
    let keys: Arc<[String]> = keys.into();
    for peer in peers.iter() {
        let (peer, purpose, keys) = (peer.clone(), purpose.clone(), keys.clone());
        asks.spawn(async move {
            ask_peer(
                &peer,
                &purpose.name,
                &purpose.legal_basis,
                &keys,
                deadline,
                fetch,
            )
            .await
        });
    }
    asks
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
    peer: &Peer,
    purpose: &str,
    legal_basis: &str,
    keys: &[String],
    deadline: Duration,
    fetch: Fetch,
) -> PeerAnswer {
    let id = exchange_id();
    let outcome = |state: State, detail: String| pb::PeerOutcome {
        org: peer.org.clone(),
        state: state as i32,
        detail,
        exchange_id: id.to_vec(),
    };
    let work = exchange(peer, purpose, legal_basis, keys, id, fetch);
    match tokio::time::timeout(deadline, work).await {
        Ok(Ok(flags)) => PeerAnswer {
            outcome: outcome(State::Answered, String::new()),
            flags,
        },
        Ok(Err(status)) => {
            let state = match status.code() {
                Code::PermissionDenied => State::Denied,
                Code::Unavailable => State::Unreachable,
                Code::DeadlineExceeded => State::TimedOut,
                _ => State::Failed,
            };
            PeerAnswer {
                outcome: outcome(state, crate::status_detail(&status)),
                flags: vec![None; keys.len()],
            }
        }
        Err(_) => PeerAnswer {
            outcome: outcome(
                State::TimedOut,
                format!("no answer within {} s", deadline.as_secs()),
            ),
            flags: vec![None; keys.len()],
        },
    }
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

async fn exchange(
    peer: &Peer,
    purpose: &str,
    legal_basis: &str,
    keys: &[String],
    id: [u8; 16],
    fetch: Fetch,
) -> Result<Vec<Option<Flags>>, tonic::Status> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let context = pb::ExchangeContext {
        exchange_id: id.to_vec(),
        purpose: purpose.to_owned(),
        legal_basis: legal_basis.to_owned(),
    };
    let mut client = PartnerClient::new(peer.channel.clone());
    let batch = match fetch {
        Fetch::Buckets => keys.len(),
        Fetch::Whole => BULK_BATCH,
    };
    let mut outputs = Vec::with_capacity(keys.len());
    let mut epoch = 0;
    let mut min_prefix_bits = 0;
    for chunk in keys.chunks(batch) {
        let mut rng = rand_core::OsRng;
        let blinded = chunk
            .iter()
            .map(|k| blind(k.as_bytes(), &mut rng))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tonic::Status::internal(format!("blinding: {e}")))?;
        let response = client
            .evaluate(pb::EvaluateRequest {
                context: Some(context.clone()),
                // Every batch under the epoch of the first.
                epoch,
                blinded: blinded.iter().map(|b| b.element.to_vec()).collect(),
            })
            .await?
            .into_inner();
        if response.evaluated.len() != chunk.len() {
            return Err(tonic::Status::internal(format!(
                "{} evaluations for {} keys",
                response.evaluated.len(),
                chunk.len()
            )));
        }
        epoch = response.epoch;
        min_prefix_bits = response.min_prefix_bits;
        for ((b, k), e) in blinded.iter().zip(chunk).zip(&response.evaluated) {
            let output = b
                .finalize(k.as_bytes(), e)
                .map_err(|err| tonic::Status::internal(format!("partner's evaluation: {err}")))?;
            outputs.push(output);
        }
    }
    let tags: Vec<Tag> = outputs.iter().map(tag).collect();
    let mut flags: Vec<Option<Flags>> = vec![None; keys.len()];
    let (bits, prefixes): (u32, BTreeMap<Vec<u8>, Vec<usize>>) = match fetch {
        Fetch::Whole => (0, [(Vec::new(), (0..keys.len()).collect())].into()),
        Fetch::Buckets => {
            let mut buckets: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
            for (i, t) in tags.iter().enumerate() {
                buckets
                    .entry(Prefix::of(t, min_prefix_bits).bytes().to_vec())
                    .or_default()
                    .push(i);
            }
            (min_prefix_bits, buckets)
        }
    };
    for (prefix, members) in prefixes {
        // Our tags in this bucket, to look entries up by.
        let mut wanted: HashMap<Tag, Vec<usize>> = HashMap::new();
        for i in members {
            wanted.entry(tags[i]).or_default().push(i);
        }
        let mut stream = client
            .get_table(pb::GetTableRequest {
                context: Some(context.clone()),
                epoch,
                prefix_bits: bits,
                prefix,
            })
            .await?
            .into_inner();
        while let Some(chunk) = stream.next().await {
            for entry in chunk?.entries {
                let Ok(entry_tag) = Tag::try_from(entry.tag.as_slice()) else {
                    continue;
                };
                for &i in wanted.get(&entry_tag).map_or(&[][..], Vec::as_slice) {
                    open_into(&mut flags[i], &outputs[i], &entry.label);
                }
            }
        }
    }
    Ok(flags)
}
