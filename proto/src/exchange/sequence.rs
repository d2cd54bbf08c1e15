//! The requester's sequence of one exchange, as a state machine without
//! I/O (as quinn-proto's `Connection`): the node asks it what to send,
//! moves the bytes, and hands back what came; the sequence decides.
//!
//! 1. The first batch is asked under the partner's current epoch (none
//!    named): all the keys of a case query, [`BULK_BATCH`] of a screening.
//! 2. Its answer pins the exchange: the epoch every later batch is asked
//!    under, the partner's `max_keys_per_request` (later batches are that
//!    large, at most [`MAX_BATCH`]), the table's announced size and
//!    digest, and the shortest bucket prefix the partner serves.
//! 3. The table call: the buckets of every key's tag once all outputs are
//!    in, or the whole table (screening) as soon as the first answer is —
//!    with the most entries its answer may hold ([`entries_allowed`]).
//! 4. The flags are opened from what came back.
//!
//! The blinding and unblinding of each batch is [`super::Round`]'s, which the
//! node runs where the curve work belongs (a blocking thread for many
//! keys); this module only orders the steps.

use std::ops::Range;

use crate::oprf::OprfOutput;
use crate::pb;

use super::{Epoch, Opening};

/// Keys per `Evaluate` in the first batch of bulk screening (the default
/// policy limit), before the partner's own limit is known.
pub const BULK_BATCH: usize = 100;

/// Keys per `Evaluate` when the partner allows more than the first batch.
pub const MAX_BATCH: usize = 2048;

/// How a partner's table is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Only the buckets of our own tags' prefixes (case queries).
    Buckets,
    /// The whole table (bulk screening).
    Whole,
}

/// The most table entries a `GetTable` answer may hold: what the partner
/// announced for its whole table, half again and 1,024 more (its table
/// may change between its `Evaluate` and its `GetTable`, when a live
/// import is published in between); for buckets, `buckets` of the size
/// such a table makes likely, with a wide margin (tags are uniform: a
/// 16-bit bucket of a 1,000,000-entry table holds about 15). A partner
/// that sends more is abandoned, so it cannot grow the requester's memory
/// beyond what it announced and what was asked for.
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

/// One batch of keys to blind and send in an `Evaluate`: which of the
/// exchange's keys (the caller holds them; the sequence only counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Its place among the exchange's batches (answers may come back in
    /// any order).
    pub index: usize,
    /// The epoch to ask under: `None` for the partner's current one.
    pub epoch: Option<Epoch>,
    /// The places of its keys among the exchange's keys.
    pub keys: Range<usize>,
}

impl Batch {
    /// The epoch as the wire carries it (0: the partner's current one).
    pub fn wire_epoch(&self) -> u64 {
        Epoch::to_wire(self.epoch)
    }
}

/// A `GetTable` to send, and the most entries its answer may hold.
#[derive(Debug, Clone, PartialEq)]
pub struct TableCall {
    /// The request.
    pub request: pb::GetTableRequest,
    /// More entries than this and the answer is abandoned.
    pub allowed: u64,
}

/// What the first answer pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// The epoch every later call is asked under.
    pub epoch: Epoch,
    /// The partner's table for this requester: its announced size.
    pub table_size: u64,
    /// Its digest, to know a cached whole table.
    pub table_digest: Vec<u8>,
    /// The shortest bucket prefix the partner serves.
    pub min_prefix_bits: u32,
    /// The partner's `max_keys_per_request` for this requester.
    pub max_keys_per_request: u64,
}

/// Why the sequence cannot take what it was handed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// An answer for a batch that was never handed out, or answered twice.
    #[error("an answer for batch {0}, which is not awaited")]
    Unexpected(usize),
    /// A batch's outputs are not one per key.
    #[error("{got} outputs for batch {batch} of {asked} keys")]
    Count {
        /// The batch.
        batch: usize,
        /// Outputs handed in.
        got: usize,
        /// Keys in the batch.
        asked: usize,
    },
    /// A step asked for before the answer it needs.
    #[error("{0} before the first answer")]
    TooEarly(&'static str),
    /// The first answer names no epoch (the wire's 0), so nothing after it
    /// could be asked under the same key.
    #[error("the first answer names no epoch")]
    NoEpoch,
}

/// The requester's side of one exchange with one partner.
#[derive(Debug)]
pub struct Sequence {
    context: pb::ExchangeContext,
    keys: usize,
    fetch: Fetch,
    /// Keys handed out in batches so far.
    handed: usize,
    /// Per batch handed out: its key count and, once answered, outputs.
    batches: Vec<(usize, Option<Vec<OprfOutput>>)>,
    pinned: Option<Pinned>,
}

impl Sequence {
    /// An exchange about `keys` keys for `context`, reading the table as
    /// `fetch` says.
    pub fn new(context: pb::ExchangeContext, keys: usize, fetch: Fetch) -> Sequence {
        Sequence {
            context,
            keys,
            fetch,
            handed: 0,
            batches: Vec::new(),
            pinned: None,
        }
    }

    /// The exchange's context.
    pub fn context(&self) -> &pb::ExchangeContext {
        &self.context
    }

    /// How the table is read.
    pub fn fetch(&self) -> Fetch {
        self.fetch
    }

    /// What the first answer pinned, once it came.
    pub fn pinned(&self) -> Option<&Pinned> {
        self.pinned.as_ref()
    }

    /// The next batch to send, if one may be sent now: the first at once;
    /// the rest only after the first answer (they are asked under its
    /// epoch, as large as its limit allows); none when every key is out.
    pub fn next_batch(&mut self) -> Option<Batch> {
        if self.handed >= self.keys {
            return None;
        }
        let (size, epoch) = match (&self.pinned, self.batches.is_empty()) {
            (_, true) => match self.fetch {
                Fetch::Buckets => (self.keys, None),
                Fetch::Whole => (BULK_BATCH, None),
            },
            (None, false) => return None,
            (Some(pinned), false) => {
                let limit = usize::try_from(pinned.max_keys_per_request).unwrap_or(usize::MAX);
                (limit.clamp(1, MAX_BATCH), Some(pinned.epoch))
            }
        };
        let end = self.handed.saturating_add(size).min(self.keys);
        let keys = self.handed..end;
        self.handed = end;
        let index = self.batches.len();
        self.batches.push((keys.len(), None));
        Some(Batch { index, epoch, keys })
    }

    /// Takes batch `index`'s answer: its unblinded `outputs` (one per key,
    /// in order) and the `response` they came in (the first one pins the
    /// exchange).
    pub fn answered(
        &mut self,
        index: usize,
        response: &pb::EvaluateResponse,
        outputs: Vec<OprfOutput>,
    ) -> Result<(), SequenceError> {
        let Some((asked, slot)) = self.batches.get_mut(index) else {
            return Err(SequenceError::Unexpected(index));
        };
        if slot.is_some() {
            return Err(SequenceError::Unexpected(index));
        }
        let pinned = match (index, Epoch::new(response.epoch)) {
            (0, None) => return Err(SequenceError::NoEpoch),
            (0, Some(epoch)) => Some(Pinned {
                epoch,
                table_size: response.table_size,
                table_digest: response.table_digest.clone(),
                min_prefix_bits: response.min_prefix_bits,
                max_keys_per_request: u64::from(response.max_keys_per_request),
            }),
            _ => None,
        };
        if outputs.len() != *asked {
            return Err(SequenceError::Count {
                batch: index,
                got: outputs.len(),
                asked: *asked,
            });
        }
        *slot = Some(outputs);
        if pinned.is_some() {
            self.pinned = pinned;
        }
        Ok(())
    }

    /// Whether every key has been evaluated.
    pub fn all_answered(&self) -> bool {
        self.handed == self.keys && self.batches.iter().all(|(_, o)| o.is_some())
    }

    /// The whole-table call of a screening: possible as soon as the first
    /// answer pinned the epoch and size.
    pub fn whole_table_call(&self) -> Result<TableCall, SequenceError> {
        let pinned = self
            .pinned
            .as_ref()
            .ok_or(SequenceError::TooEarly("the table call"))?;
        Ok(TableCall {
            request: Opening::new(Vec::new()).bucket_request(
                &self.context,
                pinned.epoch.number(),
                0,
            ),
            allowed: entries_allowed(pinned.table_size, 0, 1),
        })
    }

    /// Every key's output, in the order asked, once all are in. The
    /// outputs are moved out, not copied (a screening holds a million);
    /// so this is asked once, and [`Sequence::all_answered`] is false
    /// after it.
    pub fn opening(&mut self) -> Result<Opening, SequenceError> {
        if !self.all_answered() {
            return Err(SequenceError::TooEarly("opening"));
        }
        let outputs = self
            .batches
            .iter_mut()
            .flat_map(|(_, o)| o.take().unwrap_or_default())
            .collect();
        Ok(Opening::new(outputs))
    }

    /// The bucket call of a case query, once every key is evaluated: the
    /// bucket of every key's tag, at the longest prefix that leaves about
    /// `min_entries` of the partner's announced table in each bucket (so
    /// that it cannot tell which of its entries was asked about). `None`
    /// where the partner's shortest prefix would make smaller buckets.
    pub fn bucket_call(
        &self,
        opening: &Opening,
        min_entries: u64,
    ) -> Result<Result<TableCall, SmallBuckets>, SequenceError> {
        let pinned = self
            .pinned
            .as_ref()
            .ok_or(SequenceError::TooEarly("the bucket call"))?;
        let bits = prefix_bits_for(pinned.table_size, min_entries);
        if bits < pinned.min_prefix_bits {
            return Ok(Err(SmallBuckets {
                partner_bits: pinned.min_prefix_bits,
                table_size: pinned.table_size,
                min_entries,
            }));
        }
        let request = opening.bucket_request(&self.context, pinned.epoch.number(), bits);
        let buckets = 1 + request.more_prefixes.len() as u64;
        let allowed = entries_allowed(pinned.table_size, request.prefix_bits, buckets);
        Ok(Ok(TableCall { request, allowed }))
    }
}

/// The longest prefix a case query asks buckets of.
pub const MAX_BUCKET_PREFIX_BITS: u32 = 16;

/// The longest prefix (at most [`MAX_BUCKET_PREFIX_BITS`]) at which a table
/// of `table_size` entries holds at least `min_entries` per bucket on
/// average; 0 — the whole table — for a table smaller than that. More key
/// families mean more buckets asked per person, so each must hide among
/// enough others that asking many does not single a record out.
pub fn prefix_bits_for(table_size: u64, min_entries: u64) -> u32 {
    let min_entries = min_entries.max(1);
    let mut bits = 0;
    while bits < MAX_BUCKET_PREFIX_BITS && table_size >> (bits + 1) >= min_entries {
        bits += 1;
    }
    bits
}

/// Why a case query fetched no buckets from a partner: its shortest prefix
/// would leave fewer than `min_entries` of its table in a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "not asked for buckets: the partner allows no prefix shorter than {partner_bits} bits, which would leave fewer than {min_entries} of its {table_size} table entries in a bucket (min_bucket_entries)"
)]
pub struct SmallBuckets {
    /// The partner's shortest prefix.
    pub partner_bits: u32,
    /// Its announced table size.
    pub table_size: u64,
    /// This node's `min_bucket_entries`.
    pub min_entries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_at_least_min_entries() {
        assert_eq!(prefix_bits_for(0, 32), 0);
        assert_eq!(prefix_bits_for(31, 32), 0, "a small table is fetched whole");
        assert_eq!(prefix_bits_for(64, 32), 1);
        assert_eq!(prefix_bits_for(100_000, 32), 11);
        assert_eq!(prefix_bits_for(1 << 40, 32), MAX_BUCKET_PREFIX_BITS);
        for size in [1u64, 33, 1000, 65_537, 10_000_000] {
            let bits = prefix_bits_for(size, 32);
            assert!(bits == 0 || size >> bits >= 32, "{size}: {bits}");
        }
    }

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
