//! Generations of the signal set, snapshots of it, and imports that build
//! a new generation beside the one in use.
//!
//! Everything that reads signals reads one [`Snapshot`]: a generation's
//! trees and the revision they hold, taken once. A reader never sees part
//! of one import and part of another, however long it takes.
//!
//! An import is in three steps, so that the node can prepare what it
//! derives from the new signal set (its labelled tables) while it goes on
//! serving the old one:
//! 1. [`Import::write`] gathers the checked rows, in memory;
//! 2. [`Import::stage`] takes the writer lock (one change to the signal set
//!    at a time), writes the new generation's trees beside the active one
//!    and flushes them; [`Staged::snapshot`] reads it, nothing else sees it;
//! 3. [`Staged::publish`] switches the `meta` keys naming the active
//!    generation (with the import's audit entry) in one batch, flushes, and
//!    only then lets readers see it.
//!
//! A crash before step 3's batch leaves the old generation active (the
//! next open drops the staged trees); after it, the new one. Every staged
//! change gets a revision number never handed out before, so that nothing
//! derived from a change that was not published can pass for the revision
//! that is.

use std::collections::BTreeSet;
use std::sync::{Arc, MutexGuard};

use super::ledger::LedgerBatch;
use super::{
    bucket_of, buckets_of, decode_bucket, encode_bucket, read_u64, write_buckets, PreparedSignal,
    SignalId, SignalRecord, Store, StoreError, SubjectEntry, BUCKET_BITS, META_COUNT,
    META_GENERATION, META_REVISION,
};

/// One generation's data trees.
#[derive(Clone)]
pub(super) struct Generation {
    pub(super) number: u64,
    pub(super) signals: sled::Tree,
    pub(super) subjects: sled::Tree,
}

/// The names of a generation's two trees.
pub(super) fn tree_names(generation: u64) -> [String; 2] {
    [
        format!("signals/{generation}"),
        format!("subjects/{generation}"),
    ]
}

/// The generation a data tree belongs to, if the name is a data tree's.
pub(super) fn generation_of(name: &[u8]) -> Option<u64> {
    let name = std::str::from_utf8(name).ok()?;
    let (kind, generation) = name.split_once('/')?;
    matches!(kind, "signals" | "subjects")
        .then(|| generation.parse().ok())
        .flatten()
}

/// One consistent view of the signal set.
#[derive(Clone)]
pub struct Snapshot {
    pub(super) generation: Generation,
    pub(super) revision: u64,
    /// Signals an erasure being staged takes out of this view.
    pub(super) excluded: Option<Arc<BTreeSet<SignalId>>>,
}

impl Snapshot {
    /// The revision of this signal set: it changes with every import and
    /// erasure, and with nothing else.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub(super) fn includes(&self, id: &SignalId) -> bool {
        self.excluded.as_ref().is_none_or(|gone| !gone.contains(id))
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation.number)
            .field("revision", &self.revision)
            .finish()
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitCounts {
    /// Signals stored that were not there before.
    pub added: usize,
    /// Signals that were already stored (same keys, code and date); updated.
    pub unchanged: usize,
    /// Signals removed (by `--replace`).
    pub removed: usize,
}

impl Store {
    /// Starts an import. Nothing is written until [`Import::stage`], and
    /// nothing is visible until [`Staged::publish`]; dropping either
    /// discards the import.
    pub fn begin_import(&self, replace: bool) -> Result<Import<'_>, StoreError> {
        Ok(Import {
            store: self,
            replace,
            pending: Vec::new(),
            actor: "local operator".into(),
        })
    }

    /// The next revision number, never handed out before, for a change
    /// being staged; durable with the caller's next flush.
    pub(super) fn reserve_revision(&self) -> Result<u64, StoreError> {
        let sled = |e| self.sled(e);
        // The active revision is META_REVISION's, read at open and set
        // with every publication; a store made before NEXT existed has
        // only that.
        let next = read_u64(self.meta.get(super::META_REVISION_NEXT).map_err(sled)?)
            .max(self.snapshot().revision + 1);
        self.meta
            .insert(super::META_REVISION_NEXT, &(next + 1).to_be_bytes())
            .map_err(sled)?;
        Ok(next)
    }

    /// Makes `snapshot` the one readers see.
    pub(super) fn set_active(&self, snapshot: Snapshot) {
        // A poisoned lock only means a panic elsewhere mid-swap; the
        // snapshot inside is still a whole one.
        let mut active = match self.active.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *active = snapshot;
    }
}

/// An import in progress: checked rows, gathered in memory.
pub struct Import<'a> {
    store: &'a Store,
    replace: bool,
    pending: Vec<PreparedSignal>,
    actor: String,
}

impl<'a> Import<'a> {
    /// Who runs the import, for its audit entry.
    pub fn set_actor(&mut self, actor: &str) {
        actor.clone_into(&mut self.actor);
    }

    /// Adds prepared signals to the import.
    pub fn write(&mut self, prepared: Vec<PreparedSignal>) -> Result<(), StoreError> {
        self.pending.extend(prepared);
        Ok(())
    }

    /// Stages and publishes at once: see [`Import::stage`].
    pub fn commit(self) -> Result<CommitCounts, StoreError> {
        self.stage()?.publish(|| ())
    }

    /// Writes the new generation beside the active one (the active one
    /// merged with the new rows, or only the new rows for `replace`) and
    /// flushes it. It becomes visible only at [`Staged::publish`]; until
    /// then no other change to the signal set can start.
    pub fn stage(mut self) -> Result<Staged<'a>, StoreError> {
        let store = self.store;
        let writer = crate::lock(&store.writer);
        let old = store.snapshot();
        let generation = fresh_generation(store, old.generation.number + 1)?;
        let mut staged = Staged {
            store,
            _writer: writer,
            old: old.clone(),
            new: Snapshot {
                generation,
                revision: 0,
                excluded: None,
            },
            counts: CommitCounts::default(),
            total: 0,
            actor: std::mem::take(&mut self.actor),
            published: false,
        };
        let (new, repeated) = last_of_each(std::mem::take(&mut self.pending));
        staged.counts.unchanged = repeated;
        let index = staged.merge(&old, new, self.replace)?;
        let sled = |e| store.sled(e);
        write_buckets(
            &staged.new.generation.subjects,
            buckets_of(&index, |e| &e.0[..]),
        )
        .map_err(sled)?;
        staged.new.revision = store.reserve_revision()?;
        store.db.flush().map_err(sled)?;
        Ok(staged)
    }
}

/// Generation `number`'s trees, empty: a leftover of the same number (an
/// import that failed in this process) must not leak into this one.
fn fresh_generation(store: &Store, number: u64) -> Result<Generation, StoreError> {
    let names = tree_names(number);
    let sled = |e| store.sled(e);
    for name in &names {
        store.db.drop_tree(name).map_err(sled)?;
    }
    Ok(Generation {
        number,
        signals: store.db.open_tree(&names[0]).map_err(sled)?,
        subjects: store.db.open_tree(&names[1]).map_err(sled)?,
    })
}

/// `pending` sorted by id with a later row for the same signal winning
/// (a stable sort, then the last of equal ids kept); and how many rows
/// that left out.
fn last_of_each(mut pending: Vec<PreparedSignal>) -> (Vec<PreparedSignal>, usize) {
    pending.sort_by_key(|p| p.id);
    let before = pending.len();
    pending.reverse();
    pending.dedup_by(|a, b| a.id == b.id);
    pending.reverse();
    let repeated = before - pending.len();
    (pending, repeated)
}

impl Staged<'_> {
    /// Writes the new generation's signals, bucket by bucket: the `old`
    /// generation is read one bucket at a time and merged with the `new`
    /// rows of that bucket (or replaced by them), so only the new rows
    /// and the keyed index are ever held whole in memory. Returns the
    /// keyed index, sorted.
    fn merge(
        &mut self,
        old: &Snapshot,
        new: Vec<PreparedSignal>,
        replace: bool,
    ) -> Result<Vec<SubjectEntry>, StoreError> {
        let store = self.store;
        let sled = |e| store.sled(e);
        let target = self.new.generation.clone();
        let mut index: Vec<SubjectEntry> = Vec::new();
        let mut batch = sled::Batch::default();
        let mut batch_bytes = 0;
        let mut new = new.into_iter().peekable();
        for bucket in 0..(1u16 << BUCKET_BITS) {
            let key = bucket.to_be_bytes();
            let mut fresh = Vec::new();
            while let Some(p) = new.next_if(|p| bucket_of(&p.id) == key) {
                fresh.push(p);
            }
            let merged = self.merge_bucket(old, &key, fresh, replace)?;
            if merged.is_empty() {
                continue;
            }
            self.total += merged.len() as u64;
            let entries: Vec<(SignalId, SignalRecord)> =
                merged.into_iter().map(|p| (p.id, p.record)).collect();
            index.extend(
                entries
                    .iter()
                    .flat_map(|(id, r)| r.key_digests.iter().map(move |d| (*d, *id))),
            );
            let value = encode_bucket(&entries);
            batch_bytes += value.len();
            batch.insert(&key[..], value);
            if batch_bytes > 8 << 20 {
                target
                    .signals
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(sled)?;
                batch_bytes = 0;
            }
        }
        target.signals.apply_batch(batch).map_err(sled)?;
        index.sort_unstable();
        Ok(index)
    }

    /// One bucket of the new generation: the old bucket `key` merged with
    /// its `fresh` rows (or replaced by them), counted.
    fn merge_bucket(
        &mut self,
        old: &Snapshot,
        key: &[u8; 2],
        fresh: Vec<PreparedSignal>,
        replace: bool,
    ) -> Result<Vec<PreparedSignal>, StoreError> {
        let stored = old
            .generation
            .signals
            .get(key)
            .map_err(|e| self.store.sled(e))?;
        let old: Vec<PreparedSignal> = match stored {
            Some(bytes) => decode_bucket::<(SignalId, SignalRecord)>("signals", key, &bytes)?
                .into_iter()
                .map(|(id, record)| PreparedSignal { id, record })
                .collect(),
            None => Vec::new(),
        };
        let again = count_common(&old, &fresh);
        Ok(if replace {
            self.counts.added += fresh.len();
            self.counts.removed += old.len() - again;
            fresh
        } else {
            self.counts.added += fresh.len() - again;
            self.counts.unchanged += again;
            merge(old, fresh)
        })
    }
}

/// A new generation written and flushed beside the active one, not yet
/// visible; dropped unpublished, it is discarded.
pub struct Staged<'a> {
    store: &'a Store,
    _writer: MutexGuard<'a, ()>,
    old: Snapshot,
    new: Snapshot,
    counts: CommitCounts,
    total: u64,
    actor: String,
    published: bool,
}

impl Staged<'_> {
    /// The staged signal set, for preparing what derives from it.
    pub fn snapshot(&self) -> &Snapshot {
        &self.new
    }

    /// What publishing it will do.
    pub fn counts(&self) -> CommitCounts {
        self.counts
    }

    /// Makes the staged generation the active one: switches the `meta`
    /// keys and logs the import in one batch, flushes, calls
    /// `before_visible` (still unseen by readers), lets readers see it,
    /// then drops the old generation.
    pub fn publish(mut self, before_visible: impl FnOnce()) -> Result<CommitCounts, StoreError> {
        let store = self.store;
        let counts = self.counts;
        let total = self.total;
        let sled = |e| store.sled(e);
        // The switch and its audit entry, in one batch.
        let entry = pluis_proto::pb::AuditEntry {
            time_unix_ms: store.now_ms(),
            kind: pluis_proto::pb::audit_entry::Kind::Import as i32,
            actor: self.actor.clone(),
            signals: counts.added as u64,
            detail: format!(
                "added={} unchanged={} removed={} total={total}",
                counts.added, counts.unchanged, counts.removed
            ),
            ..Default::default()
        };
        {
            let _ledger = crate::lock(&store.ledger);
            let mut switch = LedgerBatch::new(store);
            switch
                .batch
                .insert(META_GENERATION, &self.new.generation.number.to_be_bytes());
            switch.batch.insert(META_COUNT, &total.to_be_bytes());
            switch
                .batch
                .insert(META_REVISION, &self.new.revision.to_be_bytes());
            switch.append(&entry)?;
            switch.apply()?;
        }
        store.db.flush().map_err(sled)?;
        before_visible();
        store.set_active(self.new.clone());
        self.published = true;
        for name in tree_names(self.old.generation.number) {
            // The switch is durable; a failure here leaves only garbage that
            // the next open drops.
            if let Err(e) = store.db.drop_tree(&name) {
                tracing::warn!(error = %e, "could not drop the previous generation yet");
            }
        }
        Ok(counts)
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if !self.published {
            for name in tree_names(self.new.generation.number) {
                let _ = self.store.db.drop_tree(&name);
            }
        }
    }
}

/// How many ids two id-sorted lists share.
fn count_common(a: &[PreparedSignal], b: &[PreparedSignal]) -> usize {
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].id.cmp(&b[j].id) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common
}

/// Merges two id-sorted lists; on equal ids the second (newer) wins.
fn merge(old: Vec<PreparedSignal>, new: Vec<PreparedSignal>) -> Vec<PreparedSignal> {
    let mut out = Vec::with_capacity(old.len() + new.len());
    let mut old = old.into_iter().peekable();
    let mut new = new.into_iter().peekable();
    loop {
        let (take_new, drop_old) = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => (false, false),
            (None, Some(_)) => (true, false),
            (Some(o), Some(n)) => (n.id <= o.id, n.id == o.id),
        };
        if drop_old {
            old.next();
        }
        if let Some(item) = if take_new { new.next() } else { old.next() } {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{commit, signal};
    use pluis_proto::identifier::SubjectKey;
    use pluis_proto::taxonomy::LifeDomain;

    fn key(bsn: &str) -> SubjectKey {
        SubjectKey::parse(&format!("bsn:{bsn}"), time::macros::date!(2026 - 11 - 28)).unwrap()
    }

    fn prepared(store: &Store, bsn: &str) -> Vec<PreparedSignal> {
        vec![store
            .prepare(&signal(bsn, "weapon_possession", None))
            .unwrap()]
    }

    #[test]
    fn a_staged_import_is_seen_only_once_published_and_readers_keep_their_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit(
            &store,
            &[signal("111222333", "weapon_possession", None)],
            false,
        );
        let before = store.snapshot();
        let mut import = store.begin_import(false).unwrap();
        import.write(prepared(&store, "123456782")).unwrap();
        let staged = import.stage().unwrap();
        assert!(staged.snapshot().revision() > before.revision());
        assert_eq!(store.revision(), before.revision(), "not visible yet");
        assert!(store.records_for_key(&key("123456782")).unwrap().is_empty());
        let staged_view = staged.snapshot().clone();
        assert_eq!(
            store
                .records_for_key_in(&staged_view, &key("123456782"))
                .unwrap()
                .len(),
            1,
            "the staged snapshot already holds it"
        );
        let mut seen_before_visible = None;
        staged
            .publish(|| seen_before_visible = Some(store.revision()))
            .unwrap();
        assert_eq!(seen_before_visible, Some(before.revision()));
        assert_eq!(store.revision(), staged_view.revision());
        assert_eq!(store.records_for_key(&key("123456782")).unwrap().len(), 1);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_dropped_staged_import_leaves_the_old_set_and_its_revision_is_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let reserved = {
            let store = Store::open(dir.path()).unwrap();
            commit(
                &store,
                &[signal("111222333", "weapon_possession", None)],
                false,
            );
            let mut import = store.begin_import(true).unwrap();
            import.write(prepared(&store, "123456782")).unwrap();
            let staged = import.stage().unwrap();
            let reserved = staged.snapshot().revision();
            drop(staged);
            assert_eq!(store.len(), 1);
            assert_eq!(store.records_for_key(&key("111222333")).unwrap().len(), 1);
            reserved
        };
        let store = crate::store::tests::reopen(dir.path()).unwrap();
        assert!(store.revision() < reserved);
        commit(
            &store,
            &[signal("123456782", "weapon_possession", None)],
            false,
        );
        assert!(
            store.revision() > reserved,
            "{} after {reserved}",
            store.revision()
        );
    }

    #[test]
    fn an_erasure_waits_for_an_import_in_progress_and_applies_to_its_result() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit(
            &store,
            &[signal("111222333", "weapon_possession", None)],
            false,
        );
        let mut import = store.begin_import(false).unwrap();
        import.write(prepared(&store, "123456782")).unwrap();
        let staged = import.stage().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let erased = store.forget_key(&key("111222333"), "test").unwrap();
                tx.send(erased).unwrap();
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(rx.try_recv().is_err(), "the erasure waits for the import");
            staged.publish(|| ()).unwrap();
            assert_eq!(rx.recv().unwrap(), 1);
        });
        // The erased signal is not brought back by the import's merge.
        assert!(store.records_for_key(&key("111222333")).unwrap().is_empty());
        assert_eq!(store.records_for_key(&key("123456782")).unwrap().len(), 1);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn an_erasure_makes_a_new_revision_and_a_purge_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut old = signal("240000006", "weapon_possession", None);
        old.expires_on = time::macros::date!(2026 - 11 - 01);
        commit(
            &store,
            &[signal("111222333", "weapon_possession", None), old],
            false,
        );
        let revision = store.revision();
        assert_eq!(
            store
                .purge_expired(time::macros::date!(2026 - 11 - 28))
                .unwrap(),
            1
        );
        assert_eq!(store.revision(), revision, "a purge keeps the revision");
        let staged = store.stage_forget_key(&key("111222333"), "test").unwrap();
        assert!(staged.changes_revision());
        let mut seen = 0;
        store
            .for_each_signal_in(staged.snapshot(), |_, _| seen += 1)
            .unwrap();
        assert_eq!(seen, 0, "the staged snapshot leaves the erased signal out");
        let staged_revision = staged.snapshot().revision();
        assert_eq!(staged.publish(|| ()).unwrap(), 1);
        assert_eq!(store.revision(), staged_revision);
        assert!(staged_revision > revision);
        // Nothing found: logged, nothing changes.
        let nothing = store.stage_forget_key(&key("111222333"), "test").unwrap();
        assert!(!nothing.changes_revision());
        assert_eq!(nothing.publish(|| ()).unwrap(), 0);
        assert_eq!(store.revision(), staged_revision);
    }

    #[test]
    fn merge_keeps_order_and_prefers_the_newer() {
        let p = |id: u8, code: &str| PreparedSignal {
            id: [id; 16],
            record: SignalRecord {
                signal: code.into(),
                domain: LifeDomain::Safety,
                registered_on: 0,
                expires_on: 1,
                key_digests: vec![],
                sealed_keys: vec![],
                ref_digest: None,
                sealed_ref: None,
            },
        };
        let merged = merge(
            vec![p(1, "old"), p(3, "old"), p(5, "old")],
            vec![p(2, "new"), p(3, "new"), p(9, "new")],
        );
        let got: Vec<(u8, &str)> = merged
            .iter()
            .map(|m| (m.id[0], m.record.signal.as_str()))
            .collect();
        assert_eq!(
            got,
            [(1, "old"), (2, "new"), (3, "new"), (5, "old"), (9, "new")]
        );
        assert_eq!(
            count_common(&[p(1, ""), p(3, "")], &[p(3, ""), p(4, "")]),
            1
        );
    }
}
