//! The audit log, daily budgets and epoch keys: all in the `meta` tree,
//! under key prefixes, so that an audit entry and the business write it
//! records (a budget charge, an import's switch, a new epoch key) are one
//! `sled::Batch` on one tree: atomic on disk, with no sled transaction.
//!
//! sled's transactions switch the *whole process* into a global
//! reader-writer lock, where each transaction waits for every flush in
//! progress and every reader waits behind a waiting transaction; with a
//! transaction per exchange that cut the case-query rate by half. Writers
//! here instead take one mutex ([`Store::ledger`]), read what they need,
//! and apply one batch.
//!
//! Keys in `meta`:
//! * `audit/size` → number of entries;
//! * `audit/e/` index (u64 BE) → the entry's exact bytes;
//! * `audit/s/` level (u8) index (u64 BE) → hash of that perfect subtree
//!   (RFC 9162), written as each one completes;
//! * `audit/c/` size (u64 BE) → the checkpoint note signed at that size;
//! * `budget/` peer `0x00` day (i32 BE) → keys evaluated for the peer;
//! * `epoch/` epoch (u64 BE) → that epoch's sealed OPRF key seed.

use pluis_proto::log::merkle::{completed_subtrees, leaf_hash, Hash, ProofError, Subtrees};
use pluis_proto::pb;
use prost::Message;

use super::{read_u64, Store, StoreError};

const SIZE: &[u8] = b"audit/size";
const ENTRY: &[u8] = b"audit/e/";
const SUBTREE: &[u8] = b"audit/s/";
const CHECKPOINT: &[u8] = b"audit/c/";
const BUDGET: &[u8] = b"budget/";
pub(super) const EPOCH: &[u8] = b"epoch/";

fn key(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

fn subtree_key(level: u32, index: u64) -> Vec<u8> {
    let mut rest = vec![level as u8];
    rest.extend_from_slice(&index.to_be_bytes());
    key(SUBTREE, &rest)
}

pub(super) fn budget_key(peer: &str, day: i32) -> Vec<u8> {
    let mut rest = peer.as_bytes().to_vec();
    rest.push(0);
    rest.extend_from_slice(&day.to_be_bytes());
    key(BUDGET, &rest)
}

pub(super) fn epoch_key(epoch: u64) -> Vec<u8> {
    key(EPOCH, &epoch.to_be_bytes())
}

fn index_of(tree: &'static str, prefix: &[u8], key: &[u8]) -> Result<u64, StoreError> {
    key.strip_prefix(prefix)
        .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt {
            tree,
            id: pluis_proto::hex(key),
            reason: "key is not an index".into(),
        })
}

/// The log's perfect subtrees, read from the store.
pub struct StoredSubtrees<'a>(&'a sled::Tree);

impl Subtrees for StoredSubtrees<'_> {
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.0
            .get(subtree_key(level, index))
            .map_err(|e| ProofError::Store(e.to_string()))?
            .and_then(|v| <Hash>::try_from(v.as_ref()).ok())
            .ok_or_else(|| {
                ProofError::Store(format!("no subtree hash at level {level}, index {index}"))
            })
    }
}

/// Writes in progress on the ledger keys, applied as one batch.
pub(super) struct LedgerBatch<'a> {
    store: &'a Store,
    pub(super) batch: sled::Batch,
    size: u64,
}

impl<'a> LedgerBatch<'a> {
    /// A batch after the log's current end. The caller holds the ledger lock.
    pub(super) fn new(store: &'a Store) -> Result<Self, StoreError> {
        Ok(LedgerBatch {
            store,
            batch: sled::Batch::default(),
            size: read_u64(store.meta.get(SIZE).map_err(|e| store.sled(e))?),
        })
    }

    /// Adds `entry` (its `sequence` set to its index); returns the index.
    pub(super) fn append(&mut self, entry: &pb::AuditEntry) -> Result<u64, StoreError> {
        let index = self.size;
        let bytes = pb::AuditEntry {
            sequence: index,
            ..entry.clone()
        }
        .encode_to_vec();
        let subtrees = self.store.audit_subtrees();
        let made = completed_subtrees(index, leaf_hash(&bytes), |level, at| {
            subtrees.perfect(level, at)
        })
        .map_err(|e| StoreError::Corrupt {
            tree: "meta",
            id: format!("audit entry {index}"),
            reason: e.to_string(),
        })?;
        self.batch.insert(key(ENTRY, &index.to_be_bytes()), bytes);
        for (level, at, hash) in made {
            self.batch.insert(subtree_key(level, at), &hash[..]);
        }
        self.size = index + 1;
        self.batch.insert(SIZE, &self.size.to_be_bytes());
        Ok(index)
    }

    /// Applies everything at once.
    pub(super) fn apply(self) -> Result<(), StoreError> {
        self.store
            .meta
            .apply_batch(self.batch)
            .map_err(|e| self.store.sled(e))
    }
}

impl Store {
    /// Appends one entry on its own; returns its index. Not yet flushed:
    /// see [`Store::flush`].
    pub fn append_audit(&self, entry: &pb::AuditEntry) -> Result<u64, StoreError> {
        let _ledger = crate::lock(&self.ledger);
        let mut batch = LedgerBatch::new(self)?;
        let index = batch.append(entry)?;
        batch.apply()?;
        Ok(index)
    }

    /// Makes everything written so far durable (one fsync for all).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(|e| self.sled(e))
    }

    /// The number of log entries.
    pub fn audit_size(&self) -> Result<u64, StoreError> {
        Ok(read_u64(self.meta.get(SIZE).map_err(|e| self.sled(e))?))
    }

    /// Up to `limit` entries from `start`, with their indexes.
    pub fn audit_entries(
        &self,
        start: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let from = key(ENTRY, &start.to_be_bytes());
        let to = key(ENTRY, &[0xff; 9]);
        let mut out = Vec::new();
        for item in self.meta.range(from..to).take(limit) {
            let (k, value) = item.map_err(|e| self.sled(e))?;
            out.push((index_of("meta", ENTRY, &k)?, value.to_vec()));
        }
        Ok(out)
    }

    /// The perfect-subtree hashes, for roots and proofs.
    pub fn audit_subtrees(&self) -> StoredSubtrees<'_> {
        StoredSubtrees(&self.meta)
    }

    /// Keeps a signed checkpoint note for `size`.
    pub fn store_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.meta
            .insert(key(CHECKPOINT, &size.to_be_bytes()), note.as_bytes())
            .map(|_| ())
            .map_err(|e| self.sled(e))
    }

    /// The signed checkpoints whose size lies in `sizes`, by size.
    pub fn checkpoints(
        &self,
        sizes: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let from = key(CHECKPOINT, &sizes.start().to_be_bytes());
        let to = key(CHECKPOINT, &sizes.end().to_be_bytes());
        self.meta
            .range(from..=to)
            .map(|item| {
                let (k, value) = item.map_err(|e| self.sled(e))?;
                Ok((
                    index_of("meta", CHECKPOINT, &k)?,
                    String::from_utf8_lossy(&value).into_owned(),
                ))
            })
            .collect()
    }

    /// The signed checkpoint with the largest size, if any.
    pub fn last_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        let Some(item) = self.meta.scan_prefix(CHECKPOINT).next_back() else {
            return Ok(None);
        };
        let (k, value) = item.map_err(|e| self.sled(e))?;
        Ok(Some((
            index_of("meta", CHECKPOINT, &k)?,
            String::from_utf8_lossy(&value).into_owned(),
        )))
    }

    /// Overwrites a stored entry's bytes behind the log's back. Exists only
    /// so that tamper tests can do what an attacker with disk access
    /// would; nothing in Pluis calls it.
    #[doc(hidden)]
    pub fn overwrite_audit_entry_for_tamper_tests(
        &self,
        index: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.meta
            .insert(key(ENTRY, &index.to_be_bytes()), bytes)
            .map_err(|e| self.sled(e))?;
        self.flush()
    }

    /// The Ed25519 key (seed) that signs this node's log.
    pub fn log_seed(&self) -> [u8; 32] {
        self.vault.log_seed()
    }
}
