//! The requester's side of one exchange with a partner, without I/O: the
//! node moves the bytes, everything it sends or opens is made here.
//!
//! An exchange asks a partner about some keys for one purpose:
//! 1. [`Round::blind`] blinds a batch of keys into an `EvaluateRequest`
//!    (several rounds for a large exchange, all under the epoch the first
//!    answer named);
//! 2. the partner's answer becomes an [`Answer`] (its receipt taken out,
//!    its digest as both sides log it), and [`Round::finish`] unblinds it
//!    to the keys' OPRF outputs;
//! 3. an [`Opening`] of all outputs asks for the table buckets of their
//!    tags ([`Opening::bucket_request`]) and opens what comes back
//!    ([`Opening::open_chunks`]), or opens a whole table
//!    ([`Opening::open_table`]): only labels under the requester's own
//!    tags, sealed under its own outputs, open.
//!
//! [`request_digest`] and [`table_response_digest`] are the digests both
//! sides log and the receipt signs. The order of these steps — which batch
//! under which epoch, which table call and how many entries it may bring —
//! is [`sequence::Sequence`]'s, a state machine the node drives; the
//! `pair` tests run it against an in-memory responder, no sockets.

mod nouns;
#[cfg(test)]
mod pair;
pub mod sequence;

pub use nouns::{Epoch, ExchangeId};
pub use sequence::{
    entries_allowed, prefix_bits_for, Batch, Fetch, Sequence, SequenceError, SmallBuckets,
    TableCall,
};

use std::collections::{BTreeSet, HashMap};

use prost::Message;
use rand_core::{CryptoRng, RngCore};

use crate::families::Family;
use crate::log::{digest, Hash};
use crate::oprf::{blind, Blinded, OprfError, OprfOutput};
use crate::pb;
use crate::table::{open_label, tag, Flags, LabelledTable, Prefix, TableEntry, Tag};

/// Why an exchange could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// A key could not be blinded (no randomness, or not an OPRF input).
    #[error("blinding: {0}")]
    Blind(OprfError),
    /// The partner answered for another number of keys.
    #[error("{got} evaluations for {asked} keys")]
    Count {
        /// Evaluations in the answer.
        got: usize,
        /// Keys asked.
        asked: usize,
    },
    /// An evaluation does not unblind (not a valid element).
    #[error("partner's evaluation: {0}")]
    Finalize(OprfError),
}

/// SHA-256 of a message's encoding: a request's digest as both sides log it.
pub fn request_digest(message: &impl Message) -> Hash {
    digest(&message.encode_to_vec())
}

/// The digest of a streamed table answer, as both sides compute it:
/// SHA-256 over every chunk's encoding without its receipt.
pub fn table_response_digest(chunks: &[pb::TableChunk]) -> Hash {
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

/// One `Evaluate` round: a batch of keys, blinded, and the request.
pub struct Round {
    keys: Vec<String>,
    blinded: Vec<Blinded>,
    request: pb::EvaluateRequest,
    digest: Hash,
}

impl std::fmt::Debug for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Round")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Round {
    /// Blinds `keys` (canonical key encodings) for the exchange `context`
    /// under the partner's `epoch` (0: its current one).
    pub fn blind(
        context: &pb::ExchangeContext,
        epoch: u64,
        keys: Vec<String>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Round, ExchangeError> {
        let blinded = keys
            .iter()
            .map(|k| blind(k.as_bytes(), rng))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ExchangeError::Blind)?;
        // Each key under its family's key; a question of exact keys only
        // names none, as requesters did before families.
        let families: Vec<u32> = keys
            .iter()
            .map(|k| Family::of_input(k).unwrap_or(Family::Exact).wire())
            .collect();
        let families = if families.iter().all(|f| *f == Family::Exact.wire()) {
            Vec::new()
        } else {
            families
        };
        let request = pb::EvaluateRequest {
            context: Some(context.clone()),
            epoch,
            blinded: blinded.iter().map(|b| b.element.to_vec()).collect(),
            families,
        };
        let digest = request_digest(&request);
        Ok(Round {
            keys,
            blinded,
            request,
            digest,
        })
    }

    /// The request to send.
    pub fn request(&self) -> &pb::EvaluateRequest {
        &self.request
    }

    /// Its digest.
    pub fn request_digest(&self) -> Hash {
        self.digest
    }

    /// How many keys it asks about.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it asks about none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Unblinds the partner's `answer` (taking its evaluations out) to
    /// one OPRF output per key, in the order asked.
    pub fn finish(self, answer: &mut Answer) -> Result<Vec<OprfOutput>, ExchangeError> {
        let evaluated = std::mem::take(&mut answer.response.evaluated);
        if evaluated.len() != self.keys.len() {
            return Err(ExchangeError::Count {
                got: evaluated.len(),
                asked: self.keys.len(),
            });
        }
        self.blinded
            .iter()
            .zip(&self.keys)
            .zip(&evaluated)
            .map(|((b, k), e)| b.finalize(k.as_bytes(), e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ExchangeError::Finalize)
    }
}

/// A partner's `Evaluate` answer as the requester logs it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The answer, without its receipt.
    pub response: pb::EvaluateResponse,
    /// The receipt it carried.
    pub receipt: Option<pb::Receipt>,
    /// The answer's digest (without the receipt), as both sides log it.
    pub digest: Hash,
}

impl Answer {
    /// Takes the receipt out of `response` and digests the rest.
    pub fn of(mut response: pb::EvaluateResponse) -> Answer {
        let receipt = response.receipt.take();
        let digest = request_digest(&response);
        Answer {
            response,
            receipt,
            digest,
        }
    }
}

/// Every key's OPRF output and tag, to fetch and open the partner's table.
#[derive(Debug, Clone)]
pub struct Opening {
    outputs: Vec<OprfOutput>,
    tags: Vec<Tag>,
}

impl Opening {
    /// The outputs of all of an exchange's keys, in order.
    pub fn new(outputs: Vec<OprfOutput>) -> Opening {
        let tags = outputs.iter().map(tag).collect();
        Opening { outputs, tags }
    }

    /// The `GetTable` request for the buckets of every key's tag prefix
    /// of `prefix_bits`, each prefix once.
    pub fn bucket_request(
        &self,
        context: &pb::ExchangeContext,
        epoch: u64,
        prefix_bits: u32,
    ) -> pb::GetTableRequest {
        let prefixes: BTreeSet<Vec<u8>> = self
            .tags
            .iter()
            .map(|t| Prefix::of(t, prefix_bits).bytes().to_vec())
            .collect();
        let mut prefixes = prefixes.into_iter();
        pb::GetTableRequest {
            context: Some(context.clone()),
            epoch,
            prefix_bits,
            prefix: prefixes.next().unwrap_or_default(),
            more_prefixes: prefixes.collect(),
        }
    }

    /// Per key, the flags of the labels in `chunks` under its tag that
    /// open under its output.
    pub fn open_chunks(&self, chunks: &[pb::TableChunk]) -> Vec<Option<Flags>> {
        let mut wanted: HashMap<Tag, Vec<usize>> = HashMap::new();
        for (i, t) in self.tags.iter().enumerate() {
            wanted.entry(*t).or_default().push(i);
        }
        let mut flags = vec![None; self.tags.len()];
        for entry in chunks.iter().flat_map(|c| &c.entries) {
            let Ok(entry_tag) = Tag::try_from(entry.tag.as_slice()) else {
                continue;
            };
            for &i in wanted.get(&entry_tag).map_or(&[][..], Vec::as_slice) {
                open_into(&mut flags[i], &self.outputs[i], &entry.label);
            }
        }
        flags
    }

    /// Per key, the flags of `table`'s labels under its tag that open
    /// under its output.
    pub fn open_table(&self, table: &LabelledTable) -> Vec<Option<Flags>> {
        self.tags
            .iter()
            .zip(&self.outputs)
            .map(|(t, output)| {
                let mut flags = None;
                for entry in table.find(t) {
                    open_into(&mut flags, output, &entry.label);
                }
                flags
            })
            .collect()
    }
}

/// A partner's whole table from the chunks it streamed (entries with a
/// malformed tag left out: they could never match).
pub fn table_from_chunks(chunks: Vec<pb::TableChunk>) -> LabelledTable {
    let entries = chunks
        .into_iter()
        .flat_map(|c| c.entries)
        .filter_map(|e| {
            Some(TableEntry {
                tag: Tag::try_from(e.tag.as_slice()).ok()?,
                label: e.label,
            })
        })
        .collect();
    LabelledTable::new(entries)
}

/// Opens `label` for the holder of `output`, adding its flags to `into`.
/// A label that does not open is not this key's: it is skipped.
fn open_into(into: &mut Option<Flags>, output: &OprfOutput, label: &[u8]) {
    if let Ok(found) = open_label(output, label).and_then(|plain| Flags::decode(&plain)) {
        let merged = into.get_or_insert_with(Flags::default);
        merged.domains.extend(found.domains);
        merged.signals.extend(found.signals);
    }
}

/// The key family of a request's `i`th blinded element: what its
/// `families` names, or exact where it names none (checked first by
/// [`crate::limits::evaluate`]).
pub fn family_of(request: &pb::EvaluateRequest, i: usize) -> Family {
    request
        .families
        .get(i)
        .and_then(|f| Family::from_wire(*f))
        .unwrap_or(Family::Exact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oprf::EpochKey;
    use crate::table::seal_label;
    use crate::taxonomy::LifeDomain;

    fn context() -> pb::ExchangeContext {
        pb::ExchangeContext {
            exchange_id: vec![1; 16],
            purpose: "exploitation-assessment".into(),
            legal_basis: "art. 4".into(),
        }
    }

    /// The responder: evaluates as the node does.
    fn evaluate(key: &EpochKey, request: &pb::EvaluateRequest) -> pb::EvaluateResponse {
        pb::EvaluateResponse {
            epoch: 3,
            evaluated: request
                .blinded
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    key.evaluate_blinded(family_of(request, i), b)
                        .unwrap()
                        .to_vec()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The table a responder holding `entries` publishes under `key`.
    pub(super) fn table_of(key: &EpochKey, entries: &[(&str, LifeDomain)]) -> LabelledTable {
        let rng = ring::rand::SystemRandom::new();
        LabelledTable::new(
            entries
                .iter()
                .map(|(k, domain)| {
                    let output = key.evaluate_input(k.as_bytes()).unwrap();
                    let flags = Flags {
                        domains: [*domain].into(),
                        signals: Vec::new(),
                    };
                    TableEntry {
                        tag: tag(&output),
                        label: seal_label(&output, &flags.encode(), &rng).unwrap(),
                    }
                })
                .collect(),
        )
    }

    /// What a responder streams for `request`: its buckets of `table`.
    pub(super) fn chunks_of(
        table: &LabelledTable,
        request: &pb::GetTableRequest,
    ) -> Vec<pb::TableChunk> {
        let prefixes = std::iter::once(&request.prefix).chain(&request.more_prefixes);
        let entries = prefixes
            .flat_map(|p| {
                let prefix = Prefix::parse(request.prefix_bits, p).unwrap();
                table.bucket(&prefix).to_vec()
            })
            .map(|e| pb::TableEntry {
                tag: e.tag.to_vec(),
                label: e.label,
            })
            .collect();
        vec![pb::TableChunk {
            epoch: request.epoch,
            entries,
            receipt: None,
        }]
    }

    #[test]
    fn a_requester_opens_exactly_the_flags_of_the_keys_it_holds() {
        let key = EpochKey::from_seed(&[9; 32]).unwrap();
        let table = table_of(
            &key,
            &[
                ("bsn:111222333", LifeDomain::Education),
                ("bsn:123456782", LifeDomain::Health),
                ("bsn:240000006", LifeDomain::Safety),
            ],
        );
        let keys = vec!["bsn:111222333".to_owned(), "bsn:999999990".to_owned()];
        let round = Round::blind(&context(), 0, keys, &mut rand_core::OsRng).unwrap();
        assert_eq!(round.request_digest(), request_digest(round.request()));
        let mut answer = Answer::of(evaluate(&key, round.request()));
        let opening = Opening::new(round.finish(&mut answer).unwrap());
        let request = opening.bucket_request(&context(), answer.response.epoch, 16);
        assert_eq!(request.prefix_bits, 16);
        assert_eq!(1 + request.more_prefixes.len(), 2, "one prefix per key");
        let from_buckets = opening.open_chunks(&chunks_of(&table, &request));
        let from_table = opening.open_table(&table);
        assert_eq!(from_buckets, from_table);
        assert_eq!(
            from_buckets[0].as_ref().unwrap().domains,
            [LifeDomain::Education].into()
        );
        assert!(from_buckets[1].is_none(), "a key the partner does not hold");
        let streamed =
            table_from_chunks(chunks_of(&table, &opening.bucket_request(&context(), 3, 0)));
        assert_eq!(
            streamed.digest(),
            table.digest(),
            "the whole table, as streamed"
        );
    }

    #[test]
    fn an_answer_for_other_keys_or_a_bad_element_is_refused() {
        let key = EpochKey::from_seed(&[9; 32]).unwrap();
        let keys = vec!["bsn:111222333".to_owned(), "bsn:123456782".to_owned()];
        let round = Round::blind(&context(), 0, keys.clone(), &mut rand_core::OsRng).unwrap();
        let mut short = Answer::of(evaluate(&key, round.request()));
        short.response.evaluated.pop();
        assert_eq!(
            round.finish(&mut short).unwrap_err(),
            ExchangeError::Count { got: 1, asked: 2 }
        );
        let round = Round::blind(&context(), 0, keys, &mut rand_core::OsRng).unwrap();
        let mut bad = Answer::of(evaluate(&key, round.request()));
        bad.response.evaluated[1] = vec![0xff; 32];
        assert!(matches!(
            round.finish(&mut bad),
            Err(ExchangeError::Finalize(_))
        ));
    }

    #[test]
    fn the_answer_digest_leaves_the_receipt_out() {
        let response = pb::EvaluateResponse {
            epoch: 3,
            evaluated: vec![vec![1; 32]],
            ..Default::default()
        };
        let with_receipt = pb::EvaluateResponse {
            receipt: Some(pb::Receipt {
                log_index: 7,
                ..Default::default()
            }),
            ..response.clone()
        };
        let answer = Answer::of(with_receipt);
        assert_eq!(answer.digest, request_digest(&response));
        assert_eq!(answer.receipt.unwrap().log_index, 7);
        let chunk = pb::TableChunk {
            epoch: 3,
            entries: Vec::new(),
            receipt: None,
        };
        let signed = pb::TableChunk {
            receipt: Some(pb::Receipt::default()),
            ..chunk.clone()
        };
        assert_eq!(
            table_response_digest(&[signed]),
            table_response_digest(&[chunk])
        );
    }
}
