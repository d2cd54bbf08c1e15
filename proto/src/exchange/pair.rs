//! Both ends of an exchange in memory (as quinn-proto's `tests/util.rs`
//! `Pair`): the requester's [`Sequence`] and [`Round`]s against a
//! responder that evaluates and serves buckets as a node does — its
//! epochs, its per-request limit, its shortest prefix — with no sockets,
//! no clock and no sleeps. Time is the responder's epoch, set by the test.

use std::collections::BTreeMap;

use super::sequence::{BULK_BATCH, MAX_BATCH};
use super::*;
use crate::oprf::EpochKey;
use crate::taxonomy::LifeDomain;

/// The answering side: one key per epoch, a table per epoch, limits.
struct Responder {
    keys: BTreeMap<u64, EpochKey>,
    current: u64,
    held: Vec<(String, LifeDomain)>,
    max_keys_per_request: u32,
    min_prefix_bits: u32,
    /// Every Evaluate seen: (epoch asked on the wire, keys).
    evaluated: Vec<(u64, usize)>,
    /// Every GetTable seen: (epoch, prefix bits, buckets).
    tables: Vec<(u64, u32, usize)>,
}

impl Responder {
    fn new(held: &[(&str, LifeDomain)], max_keys_per_request: u32) -> Responder {
        let mut responder = Responder {
            keys: BTreeMap::new(),
            current: 0,
            held: held.iter().map(|(k, d)| ((*k).to_owned(), *d)).collect(),
            max_keys_per_request,
            min_prefix_bits: 0,
            evaluated: Vec::new(),
            tables: Vec::new(),
        };
        responder.rotate();
        responder
    }

    /// The next epoch begins; the old key stays for its grace period.
    fn rotate(&mut self) {
        self.current += 1;
        let seed = [u8::try_from(self.current).unwrap_or(0); 32];
        self.keys
            .insert(self.current, EpochKey::from_seed(&seed).unwrap());
    }

    fn epoch(&self, asked: u64) -> u64 {
        if asked == 0 {
            self.current
        } else {
            asked
        }
    }

    fn table(&self, epoch: u64) -> LabelledTable {
        let held: Vec<(&str, LifeDomain)> =
            self.held.iter().map(|(k, d)| (k.as_str(), *d)).collect();
        super::tests::table_of(&self.keys[&epoch], &held)
    }

    fn evaluate(&mut self, request: &pb::EvaluateRequest) -> pb::EvaluateResponse {
        assert!(
            request.blinded.len() <= self.max_keys_per_request as usize,
            "the requester kept to the responder's limit"
        );
        self.evaluated.push((request.epoch, request.blinded.len()));
        let epoch = self.epoch(request.epoch);
        let key = &self.keys[&epoch];
        let table = self.table(epoch);
        pb::EvaluateResponse {
            epoch,
            evaluated: request
                .blinded
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    key.evaluate_blinded(super::family_of(request, i), b)
                        .unwrap()
                        .to_vec()
                })
                .collect(),
            table_size: table.len() as u64,
            table_digest: table.digest().to_vec(),
            min_prefix_bits: self.min_prefix_bits,
            max_keys_per_request: self.max_keys_per_request,
            receipt: None,
        }
    }

    fn get_table(&mut self, request: &pb::GetTableRequest) -> Vec<pb::TableChunk> {
        let buckets = 1 + request.more_prefixes.len();
        self.tables
            .push((request.epoch, request.prefix_bits, buckets));
        let table = self.table(self.epoch(request.epoch));
        super::tests::chunks_of(&table, request)
    }
}

/// The requester's sequence and the responder, and what is in flight.
struct Pair {
    /// The requester's keys; the sequence hands out their places.
    keys: Vec<String>,
    sequence: Sequence,
    responder: Responder,
    /// Rounds sent and not yet answered, with their batch.
    in_flight: Vec<(Batch, Round)>,
}

impl Pair {
    fn new(keys: &[&str], fetch: Fetch, responder: Responder) -> Pair {
        let context = pb::ExchangeContext {
            exchange_id: vec![7; 16],
            purpose: "exploitation-assessment".into(),
            legal_basis: "art. 4".into(),
        };
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        Pair {
            sequence: Sequence::new(context, keys.len(), fetch),
            keys,
            responder,
            in_flight: Vec::new(),
        }
    }

    /// Blinds and "sends" every batch the sequence allows now.
    fn send_batches(&mut self) {
        while let Some(batch) = self.sequence.next_batch() {
            let round = Round::blind(
                self.sequence.context(),
                batch.wire_epoch(),
                self.keys[batch.keys.clone()].to_vec(),
                &mut rand_core::OsRng,
            )
            .unwrap();
            assert_eq!(round.request().epoch, batch.wire_epoch());
            self.in_flight.push((batch, round));
        }
    }

    /// Delivers the answer to the in-flight batch at `at`.
    fn deliver(&mut self, at: usize) {
        let (batch, round) = self.in_flight.remove(at);
        let mut answer = Answer::of(self.responder.evaluate(round.request()));
        let outputs = round.finish(&mut answer).unwrap();
        self.sequence
            .answered(batch.index, &answer.response, outputs)
            .unwrap();
    }

    /// Runs the whole exchange, answering in-flight batches newest first
    /// (answers may come back in any order); the flags per key.
    fn run(&mut self) -> Vec<Option<Flags>> {
        self.send_batches();
        self.deliver(0);
        let whole = match self.sequence.fetch() {
            Fetch::Whole => Some(self.sequence.whole_table_call().unwrap()),
            Fetch::Buckets => None,
        };
        self.send_batches();
        while let Some(last) = self.in_flight.len().checked_sub(1) {
            self.deliver(last);
            self.send_batches();
        }
        assert!(self.sequence.all_answered());
        let opening = self.sequence.opening().unwrap();
        match whole {
            Some(call) => {
                let chunks = self.responder.get_table(&call.request);
                let entries: usize = chunks.iter().map(|c| c.entries.len()).sum();
                assert!(entries as u64 <= call.allowed);
                opening.open_table(&table_from_chunks(chunks))
            }
            None => {
                let call = self.sequence.bucket_call(&opening, 1).unwrap().unwrap();
                let chunks = self.responder.get_table(&call.request);
                opening.open_chunks(&chunks)
            }
        }
    }
}

fn domains(flags: &Option<Flags>) -> Vec<LifeDomain> {
    flags
        .as_ref()
        .map(|f| f.domains.iter().copied().collect())
        .unwrap_or_default()
}

const HELD: [(&str, LifeDomain); 3] = [
    ("bsn:111222333", LifeDomain::Education),
    ("bsn:123456782", LifeDomain::Health),
    ("bsn:240000006", LifeDomain::Safety),
];

#[test]
fn a_case_query_is_one_evaluate_and_one_bucket_call_and_opens_only_held_keys() {
    let mut pair = Pair::new(
        &["bsn:111222333", "bsn:999999990", "bsn:240000006"],
        Fetch::Buckets,
        Responder::new(&HELD, 100),
    );
    let flags = pair.run();
    assert_eq!(domains(&flags[0]), [LifeDomain::Education]);
    assert!(flags[1].is_none(), "a key the partner does not hold");
    assert_eq!(domains(&flags[2]), [LifeDomain::Safety]);
    assert_eq!(
        pair.responder.evaluated,
        [(0, 3)],
        "one Evaluate, current epoch"
    );
    let (epoch, bits, buckets) = pair.responder.tables[0];
    assert_eq!(pair.responder.tables.len(), 1, "one bucket call");
    assert_eq!(epoch, 1, "under the pinned epoch");
    assert_eq!(
        bits,
        super::sequence::prefix_bits_for(3, 1),
        "at the longest prefix that leaves a bucket its entries"
    );
    assert!((1..=3).contains(&buckets), "at most a bucket per key");
}

#[test]
fn a_partner_whose_shortest_prefix_makes_small_buckets_is_not_asked() {
    let mut responder = Responder::new(&HELD, 100);
    responder.min_prefix_bits = 16;
    let mut pair = Pair::new(&["bsn:111222333"], Fetch::Buckets, responder);
    pair.send_batches();
    pair.deliver(0);
    let opening = pair.sequence.opening().unwrap();
    let refused = pair
        .sequence
        .bucket_call(&opening, 32)
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (
            refused.partner_bits,
            refused.table_size,
            refused.min_entries
        ),
        (16, 3, 32)
    );
    assert!(refused.to_string().contains("min_bucket_entries"));
}

#[test]
fn screening_batches_by_the_partners_limit_under_the_first_answers_epoch() {
    // 250 keys, the partner allowing 100 per request: a first batch of
    // the bulk default, then batches of the partner's limit.
    let mut keys: Vec<String> = (0..247)
        .map(|i| format!("nd:kind{i},a,2010-01-01"))
        .collect();
    keys.extend(HELD.iter().map(|(k, _)| (*k).to_owned()));
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut pair = Pair::new(&keys, Fetch::Whole, Responder::new(&HELD, 100));
    pair.send_batches();
    assert_eq!(
        pair.in_flight.len(),
        1,
        "nothing more before the first answer"
    );
    pair.deliver(0);
    // The partner rotates its epoch between the first answer and the rest:
    // every later batch is still asked under the first answer's epoch.
    pair.responder.rotate();
    let flags = {
        let whole = pair.sequence.whole_table_call().unwrap();
        pair.send_batches();
        while let Some(last) = pair.in_flight.len().checked_sub(1) {
            pair.deliver(last);
        }
        let opening = pair.sequence.opening().unwrap();
        let chunks = pair.responder.get_table(&whole.request);
        opening.open_table(&table_from_chunks(chunks))
    };
    assert_eq!(
        pair.responder.evaluated,
        [(0, 100), (1, 50), (1, 100)],
        "the first under the current epoch, the rest under the pinned one, 100 at a time (answered newest first)"
    );
    assert_eq!(
        pair.responder.tables,
        [(1, 0, 1)],
        "the whole table, pinned epoch"
    );
    let found: Vec<usize> = (0..flags.len()).filter(|&i| flags[i].is_some()).collect();
    assert_eq!(
        found,
        [247, 248, 249],
        "answers out of order, outputs in order"
    );
    assert_eq!(domains(&flags[248]), [LifeDomain::Health]);
}

#[test]
fn a_large_partner_limit_is_capped_and_a_small_one_kept() {
    let mut sequence = Sequence::new(pb::ExchangeContext::default(), 5000, Fetch::Whole);
    let first = sequence.next_batch().unwrap();
    assert_eq!((first.keys.len(), first.epoch), (BULK_BATCH, None));
    assert_eq!(
        sequence.next_batch(),
        None,
        "nothing before the first answer"
    );
    let response = pb::EvaluateResponse {
        epoch: 9,
        max_keys_per_request: 100_000,
        table_size: 40,
        ..Default::default()
    };
    let outputs = vec![[0u8; 64]; BULK_BATCH];
    sequence.answered(0, &response, outputs).unwrap();
    let second = sequence.next_batch().unwrap();
    assert_eq!(
        (second.keys.len(), second.epoch),
        (MAX_BATCH, Epoch::new(9))
    );
    assert_eq!(
        sequence.whole_table_call().unwrap().allowed,
        entries_allowed(40, 0, 1),
        "the whole table may bring what was announced, and the margin"
    );
}

#[test]
fn answers_out_of_turn_are_refused() {
    let mut sequence = Sequence::new(pb::ExchangeContext::default(), 2, Fetch::Buckets);
    assert_eq!(
        sequence.whole_table_call().unwrap_err(),
        SequenceError::TooEarly("the table call")
    );
    let response = pb::EvaluateResponse {
        epoch: 4,
        ..Default::default()
    };
    assert_eq!(
        sequence.answered(0, &response, Vec::new()),
        Err(SequenceError::Unexpected(0)),
        "no batch was handed out"
    );
    let batch = sequence.next_batch().unwrap();
    assert_eq!(
        sequence.answered(batch.index, &response, vec![[0u8; 64]]),
        Err(SequenceError::Count {
            batch: 0,
            got: 1,
            asked: 2
        })
    );
    assert_eq!(
        sequence.answered(
            batch.index,
            &pb::EvaluateResponse::default(),
            vec![[0u8; 64]; 2]
        ),
        Err(SequenceError::NoEpoch),
        "a first answer under no epoch pins nothing"
    );
    assert!(sequence.opening().is_err(), "not every key is in");
    sequence
        .answered(batch.index, &response, vec![[0u8; 64]; 2])
        .unwrap();
    assert_eq!(
        sequence.answered(batch.index, &response, vec![[0u8; 64]; 2]),
        Err(SequenceError::Unexpected(0)),
        "answered twice"
    );
    assert!(sequence.opening().is_ok());
}
