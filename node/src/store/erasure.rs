//! Taking signals out: erasure on request (a person's right to erasure)
//! and the expiry purge.
//!
//! Both rewrite the affected buckets of the active generation in one sled
//! transaction that carries the audit entry (how many, never who). An
//! erasure is staged first, like an import ([`super::generations`]): the
//! [`StagedRemoval`]'s snapshot already leaves the erased signals out, so
//! that the node can prepare tables without them before anyone sees the
//! change, and the erasure gets a new revision. A purge needs neither:
//! it only removes signals that are expired, which no table or lookup of
//! today shows anyway, so it leaves the revision (and the tables) as they
//! are.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, MutexGuard};

use pluis_proto::identifier::SubjectKey;
use pluis_proto::pb;
use sled::transaction::{ConflictableTransactionError, Transactional};
use time::Date;

use super::generations::Snapshot;
use super::ledger::LedgerBatch;
use super::{
    bucket_of, decode_bucket, encode_bucket, read_u64, transaction_error, SignalId, SignalRecord,
    Store, StoreError, SubjectEntry, META_COUNT, META_FORGOTTEN, META_PURGED, META_REVISION,
};

/// An erasure's audit entry: who, and how (never what).
fn forget_entry(time_unix_ms: i64, actor: &str, how: &str) -> pb::AuditEntry {
    pb::AuditEntry {
        time_unix_ms,
        kind: pb::audit_entry::Kind::Forget as i32,
        actor: actor.to_owned(),
        detail: how.to_owned(),
        ..Default::default()
    }
}

/// Signals found for removal and their buckets rewritten, in memory; the
/// change is made by [`StagedRemoval::publish`].
pub struct StagedRemoval<'a> {
    store: &'a Store,
    _writer: MutexGuard<'a, ()>,
    snapshot: Snapshot,
    signal_buckets: BTreeMap<[u8; 2], Vec<(SignalId, SignalRecord)>>,
    subject_buckets: BTreeMap<[u8; 2], Vec<SubjectEntry>>,
    removed: u64,
    counter: &'static [u8],
    entry: pb::AuditEntry,
    /// Whether the change needs a new revision (an erasure; not a purge).
    new_revision: bool,
}

impl Store {
    /// Finds every signal stored under `key` for erasure, logged as done
    /// by `actor` (never the key).
    pub fn stage_forget_key(
        &self,
        key: &SubjectKey,
        actor: &str,
    ) -> Result<StagedRemoval<'_>, StoreError> {
        let writer = crate::lock(&self.writer);
        let snapshot = self.snapshot();
        let digest = self.key_digest(key);
        let ids = self.ids_of(&snapshot.generation, &digest)?;
        self.stage_removal(
            writer,
            snapshot,
            &ids,
            META_FORGOTTEN,
            forget_entry(self.now_ms(), actor, "by key"),
            true,
        )
    }

    /// Finds every signal stored with this local case reference for
    /// erasure. Rare, so a scan over the records' reference digests rather
    /// than an index.
    pub fn stage_forget_local_ref(
        &self,
        local_ref: &str,
        actor: &str,
    ) -> Result<StagedRemoval<'_>, StoreError> {
        let writer = crate::lock(&self.writer);
        let snapshot = self.snapshot();
        let digest = self.vault.index("ref", local_ref.as_bytes());
        let mut ids = Vec::new();
        self.for_each_signal_in(&snapshot, |id, record| {
            if record.ref_digest == Some(digest) {
                ids.push(*id);
            }
        })?;
        self.stage_removal(
            writer,
            snapshot,
            &ids,
            META_FORGOTTEN,
            forget_entry(self.now_ms(), actor, "by local reference"),
            true,
        )
    }

    /// Erases every signal stored under `key` (right to erasure), logged
    /// as done by `actor` (never the key).
    pub fn forget_key(&self, key: &SubjectKey, actor: &str) -> Result<usize, StoreError> {
        self.stage_forget_key(key, actor)?.publish(|| ())
    }

    /// Erases every signal stored with this local case reference.
    pub fn forget_local_ref(&self, local_ref: &str, actor: &str) -> Result<usize, StoreError> {
        self.stage_forget_local_ref(local_ref, actor)?
            .publish(|| ())
    }

    /// Removes every signal expired on `today`; returns how many.
    pub fn purge_expired(&self, today: Date) -> Result<usize, StoreError> {
        let writer = crate::lock(&self.writer);
        let snapshot = self.snapshot();
        let mut expired = Vec::new();
        self.for_each_signal_in(&snapshot, |id, record| {
            if record.expired_on(today) {
                expired.push(*id);
            }
        })?;
        let entry = pb::AuditEntry {
            kind: pb::audit_entry::Kind::ExpiryPurge as i32,
            actor: "expiry sweep".into(),
            ..Default::default()
        };
        self.stage_removal(writer, snapshot, &expired, META_PURGED, entry, false)?
            .publish(|| ())
    }

    /// Rewrites, in memory, the buckets that hold `ids`.
    fn stage_removal<'a>(
        &'a self,
        writer: MutexGuard<'a, ()>,
        mut snapshot: Snapshot,
        ids: &[SignalId],
        counter: &'static [u8],
        entry: pb::AuditEntry,
        new_revision: bool,
    ) -> Result<StagedRemoval<'a>, StoreError> {
        let active = snapshot.generation.clone();
        let wanted: BTreeSet<SignalId> = ids.iter().copied().collect();
        let mut signal_buckets: BTreeMap<[u8; 2], Vec<(SignalId, SignalRecord)>> = BTreeMap::new();
        let mut removed_entries: BTreeSet<SubjectEntry> = BTreeSet::new();
        let mut removed = 0u64;
        for key in wanted
            .iter()
            .map(|id| bucket_of(id))
            .collect::<BTreeSet<_>>()
        {
            let Some(bytes) = active.signals.get(key).map_err(|e| self.sled(e))? else {
                continue;
            };
            let mut bucket: Vec<(SignalId, SignalRecord)> = decode_bucket("signals", &key, &bytes)?;
            bucket.retain(|(id, record)| {
                let gone = wanted.contains(id);
                if gone {
                    removed += 1;
                    removed_entries.extend(record.key_digests.iter().map(|d| (*d, *id)));
                }
                !gone
            });
            signal_buckets.insert(key, bucket);
        }
        let mut subject_buckets: BTreeMap<[u8; 2], Vec<SubjectEntry>> = BTreeMap::new();
        for key in removed_entries
            .iter()
            .map(|(d, _)| bucket_of(d))
            .collect::<BTreeSet<_>>()
        {
            let Some(bytes) = active.subjects.get(key).map_err(|e| self.sled(e))? else {
                continue;
            };
            let mut bucket: Vec<SubjectEntry> = decode_bucket("subjects", &key, &bytes)?;
            bucket.retain(|entry| !removed_entries.contains(entry));
            subject_buckets.insert(key, bucket);
        }
        let new_revision = new_revision && removed > 0;
        if new_revision {
            snapshot.revision = self.reserve_revision()?;
            snapshot.excluded = Some(Arc::new(wanted));
            self.flush()?;
        }
        Ok(StagedRemoval {
            store: self,
            _writer: writer,
            snapshot,
            signal_buckets,
            subject_buckets,
            removed,
            counter,
            entry,
            new_revision,
        })
    }
}

impl StagedRemoval<'_> {
    /// The signal set as it will be, for preparing what derives from it.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// How many signals publishing removes.
    pub fn removed(&self) -> usize {
        self.removed as usize
    }

    /// Whether publishing makes a new revision (an erasure that found
    /// something).
    pub fn changes_revision(&self) -> bool {
        self.new_revision
    }

    /// Removes the signals and their index entries in one flushed
    /// transaction with the audit entry, adding their number to the
    /// counter in `meta`; calls `before_visible` before the new revision
    /// is the one readers see. Returns how many were removed.
    pub fn publish(self, before_visible: impl FnOnce()) -> Result<usize, StoreError> {
        let store = self.store;
        let removed = self.removed;
        if removed == 0 {
            // Nothing to remove: an erasure request is still logged, an
            // hourly sweep that found nothing is not.
            if self.entry.kind() != pb::audit_entry::Kind::ExpiryPurge {
                store.append_audit(&self.entry)?;
                store.sync_log()?;
            }
            return Ok(0);
        }
        let entry = pb::AuditEntry {
            time_unix_ms: store.now_ms(),
            signals: removed,
            ..self.entry.clone()
        };
        let active = &self.snapshot.generation;
        let revision = self.new_revision.then_some(self.snapshot.revision);
        // A rare multi-tree change: a sled transaction, with the audit
        // entry prepared under the ledger lock.
        let _ledger = crate::lock(&store.ledger);
        let mut logged = LedgerBatch::new(store);
        logged.append(&entry)?;
        let counter = self.counter;
        (&active.signals, &active.subjects, &store.meta)
            .transaction(|(signals, subjects, meta)| {
                for (key, bucket) in &self.signal_buckets {
                    signals.insert(&key[..], encode_bucket(bucket))?;
                }
                for (key, bucket) in &self.subject_buckets {
                    subjects.insert(&key[..], encode_bucket(bucket))?;
                }
                let total = read_u64(meta.get(counter)?);
                meta.insert(counter, &(total + removed).to_be_bytes())?;
                let count = read_u64(meta.get(META_COUNT)?);
                meta.insert(META_COUNT, &count.saturating_sub(removed).to_be_bytes())?;
                if let Some(revision) = revision {
                    meta.insert(META_REVISION, &revision.to_be_bytes())?;
                }
                meta.apply_batch(&logged.batch)?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|e| transaction_error(&store.path, e))?;
        logged.finish()?;
        if revision.is_some() {
            before_visible();
            store.set_active(Snapshot {
                excluded: None,
                ..self.snapshot.clone()
            });
        }
        Ok(removed as usize)
    }
}
