//! The audit log's place in the store, daily budgets and epoch keys.
//!
//! The log is in files of its own ([`LogFile`], `data_dir/audit`), not in
//! sled. Two kinds of writes go with an entry:
//! * a *budget charge* (a served `Evaluate`) lives only in its entry
//!   (`budget_used`, `budget_day`): budgets are kept in memory and rebuilt
//!   from the log at open, so the entry *is* the charge and appending it
//!   is one atomic step;
//! * a *sled change* (an import's switch, an erasure or purge, a new epoch
//!   key) carries its entry in the same sled batch, under
//!   `audit/pending` in `meta`, as the index it will get and its bytes.
//!   Once sled is flushed the entry is appended to the log and synced, and
//!   the pending key removed; an open that finds one left over finishes
//!   the append. So a crash at any point leaves both or neither.
//!
//! Writers of the log hold one mutex ([`Store::ledger`]), so the index a
//! pending entry was given is the one it gets.
//!
//! Key in `meta`: `audit/pending` → index (u64 BE) ‖ entry bytes.

use std::collections::HashMap;

use pluis_proto::families::Charge;
use pluis_proto::pb;
use prost::Message;

use super::{Store, StoreError};
pub use crate::store::logfile::{LogFile, LogFileError};

const PENDING: &[u8] = b"audit/pending";

/// Per (peer org, day), what was evaluated (keys, keys per tier, persons),
/// as the log records it.
pub(super) type Budgets = HashMap<(String, i32), Charge>;

/// Which daily budget a charge would overrun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// All keys.
    Keys,
    /// Keys of the probable tier's families.
    Probable,
    /// Keys of the possible tier's families.
    Possible,
    /// Persons.
    Persons,
}

/// A charge's outcome: the day's new totals and the index of the entry
/// that holds them, or the counter that refused it and its use before.
pub type Charged = Result<(Charge, u64), (Counter, u64)>;

/// The counters of `use_` in [`Counter`] order.
fn counters(use_: &Charge) -> [(Counter, u64); 4] {
    [
        (Counter::Keys, use_.keys),
        (Counter::Probable, use_.probable),
        (Counter::Possible, use_.possible),
        (Counter::Persons, use_.persons),
    ]
}

/// Counts a served entry's charge into `budgets`.
pub(super) fn replay_budget(budgets: &mut Budgets, bytes: &[u8]) {
    let Ok(entry) = pb::AuditEntry::decode(bytes) else {
        return;
    };
    if entry.kind() != pb::audit_entry::Kind::ExchangeServed || entry.budget_day == 0 {
        return;
    }
    if let Some(org) = org_of(&entry.actor) {
        let used = budgets.entry((org, entry.budget_day)).or_default();
        *used = used.max(&Charge {
            keys: entry.budget_used,
            probable: entry.probable_keys_used,
            possible: entry.possible_keys_used,
            persons: entry.persons_used,
        });
    }
}

fn org_of(actor: &str) -> Option<String> {
    actor
        .parse::<pluis_proto::SpiffeId>()
        .ok()
        .map(|id| id.org().to_string())
}

fn encode(entry: &pb::AuditEntry, index: u64) -> Vec<u8> {
    pb::AuditEntry {
        sequence: index,
        ..entry.clone()
    }
    .encode_to_vec()
}

/// A sled batch that carries one audit entry: see the module text.
pub(super) struct LedgerBatch<'a> {
    store: &'a Store,
    pub(super) batch: sled::Batch,
    pending: Option<(u64, Vec<u8>)>,
}

impl<'a> LedgerBatch<'a> {
    /// A batch; the caller holds the ledger lock until it is finished.
    pub(super) fn new(store: &'a Store) -> Self {
        LedgerBatch {
            store,
            batch: sled::Batch::default(),
            pending: None,
        }
    }

    /// Adds `entry` (its `sequence` set to its index); returns the index.
    pub(super) fn append(&mut self, entry: &pb::AuditEntry) -> Result<u64, StoreError> {
        let index = self.store.log.size();
        if self.pending.is_some() {
            return Err(StoreError::Corrupt {
                tree: "meta",
                id: format!("audit entry {index}"),
                reason: "one audit entry per batch".into(),
            });
        }
        let bytes = encode(entry, index);
        let mut value = index.to_be_bytes().to_vec();
        value.extend_from_slice(&bytes);
        self.batch.insert(PENDING, value);
        self.pending = Some((index, bytes));
        Ok(index)
    }

    /// Applies the batch, then [`LedgerBatch::finish`]es.
    pub(super) fn apply(mut self) -> Result<(), StoreError> {
        self.store
            .meta
            .apply_batch(std::mem::take(&mut self.batch))
            .map_err(|e| self.store.sled(e))?;
        self.finish()
    }

    /// After the batch was applied (here or inside a transaction): flushes
    /// sled, appends the entry to the log, syncs it, drops the pending key.
    pub(super) fn finish(self) -> Result<(), StoreError> {
        self.store.flush()?;
        if let Some((index, bytes)) = self.pending {
            self.store.finish_pending(index, &bytes)?;
        }
        Ok(())
    }
}

impl Store {
    /// Appends the entry a sled change left pending (at open, or right
    /// after the change), unless the log already holds it.
    pub(super) fn finish_pending(&self, index: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let size = self.log.size();
        if size == index {
            self.log.append(bytes)?;
            self.log.sync()?;
        } else if size < index || self.log.entry(index)? != bytes {
            return Err(StoreError::Corrupt {
                tree: "meta",
                id: "audit/pending".into(),
                reason: format!(
                    "the entry pending for index {index} does not fit a log of {size} entries"
                ),
            });
        }
        self.meta.remove(PENDING).map_err(|e| self.sled(e))?;
        Ok(())
    }

    /// At open: finishes an entry a crash left pending.
    pub(super) fn settle_pending(&self) -> Result<(), StoreError> {
        let Some(value) = self.meta.get(PENDING).map_err(|e| self.sled(e))? else {
            return Ok(());
        };
        let (index, bytes) = value
            .split_at_checked(8)
            .ok_or_else(|| StoreError::Corrupt {
                tree: "meta",
                id: "audit/pending".into(),
                reason: "too short".into(),
            })?;
        let index = u64::from_be_bytes(index.try_into().unwrap_or_default());
        self.finish_pending(index, bytes)?;
        tracing::info!(index, "finished an audit entry a previous run left pending");
        self.flush()
    }

    /// Appends one entry on its own; returns its index. Not yet synced:
    /// see [`Store::sync_log`].
    pub fn append_audit(&self, entry: &pb::AuditEntry) -> Result<u64, StoreError> {
        let _ledger = crate::lock(&self.ledger);
        self.append_locked(entry)
    }

    /// Appends `entry` at the log's end, its `sequence` set to its index;
    /// the caller holds the ledger lock.
    fn append_locked(&self, entry: &pb::AuditEntry) -> Result<u64, StoreError> {
        let index = self.log.size();
        Ok(self.log.append(&encode(entry, index))?)
    }

    /// Makes every entry appended so far durable (one `fdatasync`).
    pub fn sync_log(&self) -> Result<(), StoreError> {
        Ok(self.log.sync()?)
    }

    /// Makes everything written to sled so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(|e| self.sled(e))
    }

    /// The number of log entries.
    pub fn audit_size(&self) -> Result<u64, StoreError> {
        Ok(self.log.size())
    }

    /// The log's size on disk, in bytes of entries.
    pub fn audit_bytes(&self) -> u64 {
        self.log.bytes()
    }

    /// Up to `limit` entries from `start`, with their indexes.
    pub fn audit_entries(
        &self,
        start: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let end = self.log.size().min(start.saturating_add(limit as u64));
        (start..end)
            .map(|index| Ok((index, self.log.entry(index)?)))
            .collect()
    }

    /// The perfect-subtree hashes, for roots and proofs.
    pub fn audit_subtrees(&self) -> &LogFile {
        &self.log
    }

    /// Keeps a signed checkpoint note for `size`.
    pub fn store_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        Ok(self.log.store_checkpoint(size, note)?)
    }

    /// Signed checkpoints whose size lies in `sizes`, by size (about one
    /// per 64 entries, and the latest).
    pub fn checkpoints(
        &self,
        sizes: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        Ok(self.log.checkpoints(sizes)?)
    }

    /// The latest stored checkpoint, if any.
    pub fn last_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self.log.last_checkpoint()?)
    }

    /// Overwrites a stored entry's bytes (and its check) behind the log's
    /// back. Exists only so that tamper tests can do what an attacker with
    /// disk access would; built only with the `tamper-tests` feature.
    #[cfg(feature = "tamper-tests")]
    pub fn overwrite_audit_entry_for_tamper_tests(
        &self,
        index: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        Ok(self.log.overwrite_for_tamper_tests(index, bytes)?)
    }

    /// The Ed25519 key (seed) that signs this node's log.
    pub fn log_seed(&self) -> [u8; 32] {
        self.vault.log_seed()
    }

    /// Keys evaluated for `peer` on day `day` (a Julian day number).
    pub fn budget_used(&self, peer: &str, day: i32) -> Result<u64, StoreError> {
        Ok(self.budgets_used(peer, day).keys)
    }

    /// Everything evaluated for `peer` on day `day`: keys, keys per tier,
    /// persons.
    pub fn budgets_used(&self, peer: &str, day: i32) -> Charge {
        crate::lock(&self.budgets)
            .get(&(peer.to_owned(), day))
            .copied()
            .unwrap_or_default()
    }

    /// Adds `charge` to `peer`'s use on `day` if every counter stays
    /// within its `limits`, by appending `served` (whose actor must be
    /// `peer`'s node) with the new totals: the entry is the charge. Not
    /// yet synced.
    /// `Ok(Ok((totals, index)))`: charged, logged at `index`;
    /// `Ok(Err((counter, used)))`: refused by `counter`, `used` of it
    /// already; nothing written.
    pub fn charge_budgets(
        &self,
        peer: &str,
        day: i32,
        charge: &Charge,
        limits: &Charge,
        served: &pb::AuditEntry,
    ) -> Result<Charged, StoreError> {
        if org_of(&served.actor).as_deref() != Some(peer) {
            return Err(StoreError::Corrupt {
                tree: "budgets",
                id: peer.to_owned(),
                reason: "the served entry's actor is not this peer's node".into(),
            });
        }
        let _ledger = crate::lock(&self.ledger);
        let used = self.budgets_used(peer, day);
        let total = used.plus(charge);
        let over = counters(&total)
            .into_iter()
            .zip(counters(limits))
            .zip(counters(&used))
            .find(|(((_, total), (_, limit)), _)| total > limit);
        if let Some((((counter, _), _), (_, before))) = over {
            return Ok(Err((counter, before)));
        }
        let entry = pb::AuditEntry {
            budget_used: total.keys,
            budget_limit: limits.keys,
            budget_day: day,
            probable_keys_used: total.probable,
            probable_keys_limit: limits.probable,
            possible_keys_used: total.possible,
            possible_keys_limit: limits.possible,
            persons_used: total.persons,
            persons_limit: limits.persons,
            kind: pb::audit_entry::Kind::ExchangeServed as i32,
            ..served.clone()
        };
        let index = self.append_locked(&entry)?;
        crate::lock(&self.budgets).insert((peer.to_owned(), day), total);
        Ok(Ok((total, index)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::reopen;

    fn entry(detail: &str) -> pb::AuditEntry {
        pb::AuditEntry {
            kind: pb::audit_entry::Kind::Import as i32,
            detail: detail.into(),
            ..Default::default()
        }
    }

    /// A crash after sled took a change but before its entry reached the
    /// log, and one after the log took it but before the pending key went.
    #[test]
    fn an_entry_left_pending_is_appended_once_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let leave_pending = |store: &Store, detail: &str| {
            let mut batch = LedgerBatch::new(store);
            let index = batch.append(&entry(detail)).unwrap();
            store.meta.apply_batch(batch.batch).unwrap();
            store.flush().unwrap();
            index
        };
        {
            let store = reopen(dir.path()).unwrap();
            store.append_audit(&entry("first")).unwrap();
            assert_eq!(leave_pending(&store, "second"), 1);
            assert_eq!(store.audit_size().unwrap(), 1);
        }
        {
            let store = reopen(dir.path()).unwrap();
            assert_eq!(store.audit_size().unwrap(), 2);
            assert!(store.meta.get(PENDING).unwrap().is_none());
            let (index, bytes) = store.audit_entries(1, 1).unwrap().remove(0);
            assert_eq!(index, 1);
            assert_eq!(pb::AuditEntry::decode(&bytes[..]).unwrap().detail, "second");
            // Appended, but the pending key survived.
            assert_eq!(leave_pending(&store, "third"), 2);
            let value = store.meta.get(PENDING).unwrap().unwrap();
            store.log.append(&value[8..]).unwrap();
            store.log.sync().unwrap();
        }
        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.audit_size().unwrap(), 3, "not appended twice");
        assert!(store.meta.get(PENDING).unwrap().is_none());
    }

    #[test]
    fn a_pending_entry_that_does_not_fit_the_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = reopen(dir.path()).unwrap();
            let mut value = 7u64.to_be_bytes().to_vec();
            value.extend_from_slice(&entry("x").encode_to_vec());
            store.meta.insert(PENDING, value).unwrap();
            store.flush().unwrap();
        }
        let err = reopen(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("audit/pending") && err.contains("index 7"),
            "{err}"
        );
    }

    #[test]
    fn budgets_are_charged_atomically_within_their_limit() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let served = pluis_proto::pb::AuditEntry {
                keys_evaluated: 1,
                actor: "spiffe://c/org/school/node".into(),
                ..Default::default()
            };
            let limits = Charge {
                keys: 100,
                probable: 50,
                possible: 10,
                persons: 40,
            };
            let charge = |day, keys, probable, possible, persons| {
                let charge = Charge {
                    keys,
                    probable,
                    possible,
                    persons,
                };
                store
                    .charge_budgets("school", day, &charge, &limits, &served)
                    .unwrap()
                    .map(|(total, index)| (total.keys, index))
            };
            assert_eq!(charge(100, 60, 40, 8, 20), Ok((60, 0)));
            assert_eq!(charge(100, 50, 0, 0, 1), Err((Counter::Keys, 60)));
            assert_eq!(charge(100, 20, 0, 3, 1), Err((Counter::Possible, 8)));
            assert_eq!(charge(100, 20, 11, 0, 1), Err((Counter::Probable, 40)));
            assert_eq!(charge(100, 20, 0, 0, 21), Err((Counter::Persons, 20)));
            assert_eq!(charge(101, 50, 0, 0, 17), Ok((50, 1)));
            store.sync_log().unwrap();
            let other = pluis_proto::pb::AuditEntry {
                actor: "spiffe://c/org/police/node".into(),
                ..served.clone()
            };
            let one = Charge {
                keys: 1,
                ..Charge::default()
            };
            assert!(store
                .charge_budgets("school", 100, &one, &limits, &other)
                .is_err());
        }
        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.budget_used("school", 100).unwrap(), 60);
        let replayed = store.budgets_used("school", 100);
        assert_eq!(
            (replayed.probable, replayed.possible, replayed.persons),
            (40, 8, 20),
            "every counter is rebuilt from the log"
        );
        assert_eq!(store.budget_used("police", 100).unwrap(), 0);
        // Each charge and its log entry went together; the refusals wrote
        // nothing.
        let entries = store.audit_entries(0, 10).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(store.audit_size().unwrap(), 2);
    }
}
