//! The requester's side of matching: ask one partner about a set of keys.
//!
//! Blind every key, have the partner evaluate them (`Evaluate`), unblind to
//! OPRF outputs, derive tags, fetch the partner's table bucket for each
//! distinct tag prefix (`GetTable`), and open the labels whose tag is ours.
//! The whole exchange runs under one deadline, so a slow or dead partner
//! gives a partial answer, never a hang.

use std::collections::BTreeMap;
use std::time::Duration;

use pluis_proto::oprf::blind;
use pluis_proto::pb::partner_client::PartnerClient;
use pluis_proto::pb::{self, peer_outcome::State};
use pluis_proto::table::{open_label, tag, Flags, Prefix, Tag};
use ring::rand::{SecureRandom, SystemRandom};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::peers::Peer;

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

/// Asks `peer` about `keys` (canonical encodings) for `purpose`.
pub async fn ask_peer(
    peer: &Peer,
    purpose: &str,
    legal_basis: &str,
    keys: &[String],
    deadline: Duration,
) -> PeerAnswer {
    let id = exchange_id();
    let outcome = |state: State, detail: String| pb::PeerOutcome {
        org: peer.org.clone(),
        state: state as i32,
        detail,
        exchange_id: id.to_vec(),
    };
    match tokio::time::timeout(deadline, exchange(peer, purpose, legal_basis, keys, id)).await {
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

async fn exchange(
    peer: &Peer,
    purpose: &str,
    legal_basis: &str,
    keys: &[String],
    id: [u8; 16],
) -> Result<Vec<Option<Flags>>, tonic::Status> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let context = pb::ExchangeContext {
        exchange_id: id.to_vec(),
        purpose: purpose.to_owned(),
        legal_basis: legal_basis.to_owned(),
    };
    let mut rng = rand_core::OsRng;
    let blinded = keys
        .iter()
        .map(|k| blind(k.as_bytes(), &mut rng))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tonic::Status::internal(format!("blinding: {e}")))?;
    let mut client = PartnerClient::new(peer.channel.clone());
    let response = client
        .evaluate(pb::EvaluateRequest {
            context: Some(context.clone()),
            epoch: 0,
            blinded: blinded.iter().map(|b| b.element.to_vec()).collect(),
        })
        .await?
        .into_inner();
    if response.evaluated.len() != keys.len() {
        return Err(tonic::Status::internal(format!(
            "{} evaluations for {} keys",
            response.evaluated.len(),
            keys.len()
        )));
    }
    let mut outputs = Vec::with_capacity(keys.len());
    for ((b, k), e) in blinded.iter().zip(keys).zip(&response.evaluated) {
        let output = b
            .finalize(k.as_bytes(), e)
            .map_err(|err| tonic::Status::internal(format!("partner's evaluation: {err}")))?;
        outputs.push(output);
    }
    let tags: Vec<Tag> = outputs.iter().map(tag).collect();
    let bits = response.min_prefix_bits;
    let mut buckets: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
    for (i, t) in tags.iter().enumerate() {
        buckets
            .entry(Prefix::of(t, bits).bytes().to_vec())
            .or_default()
            .push(i);
    }
    let mut flags: Vec<Option<Flags>> = vec![None; keys.len()];
    for (prefix, members) in buckets {
        let mut stream = client
            .get_table(pb::GetTableRequest {
                context: Some(context.clone()),
                epoch: response.epoch,
                prefix_bits: bits,
                prefix,
            })
            .await?
            .into_inner();
        while let Some(chunk) = stream.next().await {
            for entry in chunk?.entries {
                for &i in &members {
                    if entry.tag == tags[i] {
                        // A label that does not open is not ours: skip it.
                        if let Ok(plain) = open_label(&outputs[i], &entry.label) {
                            if let Ok(found) = Flags::decode(&plain) {
                                let merged = flags[i].get_or_insert_with(Flags::default);
                                merged.domains.extend(found.domains);
                                merged.signals.extend(found.signals);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(flags)
}
