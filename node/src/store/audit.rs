//! The audit log's trees: entries, perfect-subtree hashes and signed
//! checkpoints. Appending is a step *inside* a sled transaction, so that
//! an entry and the business write it records (a budget charge, an
//! import's switch, an erasure, a new epoch key) commit together or not
//! at all.
//!
//! * `audit/entries`: index (u64, big-endian) → the entry's exact bytes;
//! * `audit/subtrees`: (level u8, index u64) → hash of that perfect
//!   subtree (RFC 9162), written as each one completes;
//! * `audit/checkpoints`: tree size → the signed checkpoint note;
//! * `meta` `audit_size`: the number of entries.

use pluis_proto::log::merkle::{completed_subtrees, leaf_hash, Hash, ProofError, Subtrees};
use pluis_proto::pb;
use prost::Message;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{read_u64, Store, StoreError};

const META_AUDIT_SIZE: &[u8] = b"audit_size";

/// The log's trees.
#[derive(Clone)]
pub(super) struct AuditTrees {
    pub(super) entries: sled::Tree,
    pub(super) subtrees: sled::Tree,
    pub(super) checkpoints: sled::Tree,
}

impl AuditTrees {
    pub(super) fn open(db: &sled::Db) -> sled::Result<AuditTrees> {
        Ok(AuditTrees {
            entries: db.open_tree("audit/entries")?,
            subtrees: db.open_tree("audit/subtrees")?,
            checkpoints: db.open_tree("audit/checkpoints")?,
        })
    }
}

fn subtree_key(level: u32, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = level as u8;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

type Tx<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Appends `entry` (its `sequence` set to its index) within a transaction
/// over the log's trees and `meta`; returns the index.
pub(super) fn append(
    entries: &TransactionalTree,
    subtrees: &TransactionalTree,
    meta: &TransactionalTree,
    entry: &pb::AuditEntry,
) -> Tx<u64> {
    let index = read_u64(meta.get(META_AUDIT_SIZE)?);
    let bytes = pb::AuditEntry {
        sequence: index,
        ..entry.clone()
    }
    .encode_to_vec();
    // The left siblings this leaf completes subtrees with: one per
    // trailing one bit of its index.
    let mut left = Vec::new();
    for level in 0..index.trailing_ones() {
        let key = subtree_key(level, (index >> level) - 1);
        let hash = subtrees
            .get(key)?
            .and_then(|v| <Hash>::try_from(v.as_ref()).ok());
        left.push(hash);
    }
    let made = completed_subtrees(index, leaf_hash(&bytes), |level, _| {
        left.get(level as usize)
            .copied()
            .flatten()
            .ok_or_else(|| ProofError::Store(format!("subtree hash at level {level} missing")))
    })
    .map_err(|e| {
        ConflictableTransactionError::Abort(StoreError::Corrupt {
            tree: "audit/subtrees",
            id: index.to_string(),
            reason: e.to_string(),
        })
    })?;
    entries.insert(&index.to_be_bytes(), bytes)?;
    for (level, at, hash) in made {
        subtrees.insert(&subtree_key(level, at), &hash)?;
    }
    meta.insert(META_AUDIT_SIZE, &(index + 1).to_be_bytes())?;
    Ok(index)
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

impl Store {
    /// Appends one entry on its own (events with no business write, or
    /// whose write is elsewhere); returns its index. Not yet flushed: see
    /// [`Store::flush`].
    pub fn append_audit(&self, entry: &pb::AuditEntry) -> Result<u64, StoreError> {
        use sled::Transactional;
        (&self.audit.entries, &self.audit.subtrees, &self.meta)
            .transaction(|(entries, subtrees, meta)| append(entries, subtrees, meta, entry))
            .map_err(|e| super::transaction_error(&self.path, e))
    }

    /// Makes everything written so far durable (one fsync for all).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(|e| self.sled(e))
    }

    /// The number of log entries.
    pub fn audit_size(&self) -> Result<u64, StoreError> {
        Ok(read_u64(
            self.meta.get(META_AUDIT_SIZE).map_err(|e| self.sled(e))?,
        ))
    }

    /// Up to `limit` entries from `start`, with their indexes.
    pub fn audit_entries(
        &self,
        start: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.audit.entries.range(start.to_be_bytes()..).take(limit) {
            let (key, value) = item.map_err(|e| self.sled(e))?;
            let index = <[u8; 8]>::try_from(key.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    tree: "audit/entries",
                    id: super::hex(&key),
                    reason: "key is not an index".into(),
                })?;
            out.push((index, value.to_vec()));
        }
        Ok(out)
    }

    /// The perfect-subtree hashes, for roots and proofs.
    pub fn audit_subtrees(&self) -> StoredSubtrees<'_> {
        StoredSubtrees(&self.audit.subtrees)
    }

    /// Keeps a signed checkpoint note for `size`.
    pub fn store_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.audit
            .checkpoints
            .insert(size.to_be_bytes(), note.as_bytes())
            .map(|_| ())
            .map_err(|e| self.sled(e))
    }

    /// Every signed checkpoint, by size.
    pub fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.audit
            .checkpoints
            .iter()
            .map(|item| {
                let (key, value) = item.map_err(|e| self.sled(e))?;
                let size = <[u8; 8]>::try_from(key.as_ref())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                Ok((size, String::from_utf8_lossy(&value).into_owned()))
            })
            .collect()
    }

    /// The signed checkpoint with the largest size, if any.
    pub fn last_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        let Some((key, value)) = self.audit.checkpoints.last().map_err(|e| self.sled(e))? else {
            return Ok(None);
        };
        let size = <[u8; 8]>::try_from(key.as_ref())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        Ok(Some((size, String::from_utf8_lossy(&value).into_owned())))
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
        self.audit
            .entries
            .insert(index.to_be_bytes(), bytes)
            .map_err(|e| self.sled(e))?;
        self.flush()
    }

    /// The Ed25519 key (seed) that signs this node's log.
    pub fn log_seed(&self) -> [u8; 32] {
        self.vault.log_seed()
    }
}
