//! Signals: what a stored record holds, how a checked row is sealed for
//! storage, and how records are found and read back.
//!
//! A record never holds a person's key or case reference in clear: the
//! keys and the reference are sealed (AES-256-GCM under the storage key,
//! bound to the record id), and found through keyed digests (HMAC-SHA256).
//! Every read goes through a [`Snapshot`], so that it sees one signal set.

use std::collections::BTreeMap;

use pluis_proto::hex;
use pluis_proto::identifier::SubjectKey;
use pluis_proto::taxonomy::LifeDomain;
use serde::{Deserialize, Serialize};
use time::Date;

use super::generations::{Generation, Snapshot};
use super::{
    bucket_of, decode_bucket, read_u64, SignalId, Store, StoreError, SubjectEntry, META_FORGOTTEN,
    META_PURGED,
};
use crate::store::vault::IndexDigest;

/// One stored signal about one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRecord {
    /// The signal code (from the taxonomy).
    pub signal: String,
    /// Its life domain.
    pub domain: LifeDomain,
    /// Registration date, as a Julian day number.
    pub registered_on: i32,
    /// Expiry date, as a Julian day number: from that day on it never matches.
    pub expires_on: i32,
    /// Keyed digests of the person's keys.
    pub key_digests: Vec<IndexDigest>,
    /// The canonical keys, newline-separated, sealed under the record id.
    pub sealed_keys: Vec<u8>,
    /// Keyed digest of the local case reference, if any.
    pub ref_digest: Option<IndexDigest>,
    /// The local case reference, sealed under the record id.
    pub sealed_ref: Option<Vec<u8>>,
}

impl SignalRecord {
    /// Whether the signal has expired on `today`.
    pub fn expired_on(&self, today: Date) -> bool {
        today.to_julian_day() >= self.expires_on
    }
}

/// A validated signal, ready to be prepared for storage.
#[derive(Debug, Clone)]
pub struct NewSignal {
    /// The person's keys (at least one).
    pub keys: Vec<SubjectKey>,
    /// The signal code.
    pub signal: String,
    /// Its domain.
    pub domain: LifeDomain,
    /// Registration date.
    pub registered_on: Date,
    /// Expiry date.
    pub expires_on: Date,
    /// The organisation's own case reference.
    pub local_ref: Option<String>,
}

/// A signal sealed and digested, ready to commit.
#[derive(Debug, Clone)]
pub struct PreparedSignal {
    pub(super) id: SignalId,
    pub(super) record: SignalRecord,
}

/// Counts per signal, for `pluis-node signals`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignalCounts {
    /// (domain, signal) → (active, expired).
    pub by_signal: BTreeMap<(LifeDomain, String), (u64, u64)>,
    /// Signals purged for expiry since the store was made.
    pub purged_total: u64,
    /// Signals erased on request since the store was made.
    pub forgotten_total: u64,
}

impl Store {
    /// The keyed digest under which `key` is indexed: its lookup form
    /// (a given name, which a question may not know, left out).
    pub(super) fn key_digest(&self, key: &SubjectKey) -> IndexDigest {
        self.vault.index("key", key.lookup().as_bytes())
    }

    /// Seals and digests a signal. Pure CPU work: safe to run in parallel.
    pub fn prepare(&self, signal: &NewSignal) -> Result<PreparedSignal, StoreError> {
        let canonical: Vec<String> = signal.keys.iter().map(SubjectKey::canonical).collect();
        let lookups: Vec<String> = signal.keys.iter().map(SubjectKey::lookup).collect();
        self.prepare_as(signal, canonical, &lookups)
    }

    /// [`Store::prepare`] with the keys as `canonical` texts, found under
    /// the digests of `lookups`.
    pub(super) fn prepare_as(
        &self,
        signal: &NewSignal,
        mut canonical: Vec<String>,
        lookups: &[String],
    ) -> Result<PreparedSignal, StoreError> {
        canonical.sort_unstable();
        canonical.dedup();
        let keys = canonical.join("\n");
        let registered = signal.registered_on.to_julian_day();
        let mut id_input = keys.clone().into_bytes();
        id_input.push(0);
        id_input.extend_from_slice(signal.signal.as_bytes());
        id_input.push(0);
        id_input.extend_from_slice(&registered.to_be_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.vault.index("signal", &id_input)[..16]);
        let (ref_digest, sealed_ref) = match &signal.local_ref {
            Some(r) => (
                Some(self.vault.index("ref", r.as_bytes())),
                Some(self.vault.seal(&id, r.as_bytes())?),
            ),
            None => (None, None),
        };
        let record = SignalRecord {
            signal: signal.signal.clone(),
            domain: signal.domain,
            registered_on: registered,
            expires_on: signal.expires_on.to_julian_day(),
            key_digests: {
                let mut digests: Vec<IndexDigest> = lookups
                    .iter()
                    .map(|k| self.vault.index("key", k.as_bytes()))
                    .collect();
                digests.sort_unstable();
                digests.dedup();
                digests
            },
            sealed_keys: self.vault.seal(&id, keys.as_bytes())?,
            ref_digest,
            sealed_ref,
        };
        Ok(PreparedSignal { id, record })
    }

    /// The ids of the signals stored under a key digest.
    pub(super) fn ids_of(
        &self,
        generation: &Generation,
        digest: &IndexDigest,
    ) -> Result<Vec<SignalId>, StoreError> {
        let key = bucket_of(digest);
        let Some(bytes) = generation.subjects.get(key).map_err(|e| self.sled(e))? else {
            return Ok(Vec::new());
        };
        let bucket: Vec<SubjectEntry> = decode_bucket("subjects", &key, &bytes)?;
        let start = bucket.partition_point(|(d, _)| d < digest);
        Ok(bucket[start..]
            .iter()
            .take_while(|(d, _)| d == digest)
            .map(|(_, id)| *id)
            .collect())
    }

    /// Every signal stored under `key`, expired or not.
    pub fn records_for_key(&self, key: &SubjectKey) -> Result<Vec<SignalRecord>, StoreError> {
        self.records_for_key_in(&self.snapshot(), key)
    }

    /// Every signal stored under `key` in `snapshot`, expired or not.
    pub fn records_for_key_in(
        &self,
        snapshot: &Snapshot,
        key: &SubjectKey,
    ) -> Result<Vec<SignalRecord>, StoreError> {
        let generation = &snapshot.generation;
        let mut records = Vec::new();
        for id in self.ids_of(generation, &self.key_digest(key))? {
            if !snapshot.includes(&id) {
                continue;
            }
            let bucket_key = bucket_of(&id);
            let Some(bytes) = generation
                .signals
                .get(bucket_key)
                .map_err(|e| self.sled(e))?
            else {
                continue;
            };
            let bucket: Vec<(SignalId, SignalRecord)> =
                decode_bucket("signals", &bucket_key, &bytes)?;
            if let Ok(i) = bucket.binary_search_by(|(other, _)| other.cmp(&id)) {
                records.push(bucket[i].1.clone());
            }
        }
        Ok(records)
    }

    /// Visits every stored signal of the active generation, in id order.
    pub fn for_each_signal(
        &self,
        visit: impl FnMut(&SignalId, &SignalRecord),
    ) -> Result<(), StoreError> {
        self.for_each_signal_in(&self.snapshot(), visit)
    }

    /// Visits every signal of `snapshot`, in id order.
    pub fn for_each_signal_in(
        &self,
        snapshot: &Snapshot,
        mut visit: impl FnMut(&SignalId, &SignalRecord),
    ) -> Result<(), StoreError> {
        for entry in snapshot.generation.signals.iter() {
            let (key, bytes) = entry.map_err(|e| self.sled(e))?;
            let bucket: Vec<(SignalId, SignalRecord)> = decode_bucket("signals", &key, &bytes)?;
            for (id, record) in &bucket {
                if snapshot.includes(id) {
                    visit(id, record);
                }
            }
        }
        Ok(())
    }

    /// Active and expired counts per signal, and the lifetime counters.
    pub fn counts(&self, today: Date) -> Result<SignalCounts, StoreError> {
        let mut counts = SignalCounts::default();
        self.for_each_signal(|_, record| {
            let entry = counts
                .by_signal
                .entry((record.domain, record.signal.clone()))
                .or_default();
            if record.expired_on(today) {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
        })?;
        counts.purged_total = read_u64(self.meta.get(META_PURGED).map_err(|e| self.sled(e))?);
        counts.forgotten_total = read_u64(self.meta.get(META_FORGOTTEN).map_err(|e| self.sled(e))?);
        Ok(counts)
    }

    /// The local case reference of a record, unsealed, if it has one.
    pub fn open_local_ref(
        &self,
        id: &SignalId,
        record: &SignalRecord,
    ) -> Result<Option<String>, StoreError> {
        let Some(sealed) = &record.sealed_ref else {
            return Ok(None);
        };
        let plain = self.vault.open_sealed(id, sealed)?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| StoreError::Corrupt {
                tree: "signals",
                id: hex(id),
                reason: "sealed reference is not UTF-8".into(),
            })
    }

    /// The canonical keys of a record, unsealed.
    pub fn open_keys(
        &self,
        id: &SignalId,
        record: &SignalRecord,
    ) -> Result<Vec<String>, StoreError> {
        let plain = self.vault.open_sealed(id, &record.sealed_keys)?;
        let text = String::from_utf8(plain).map_err(|_| StoreError::Corrupt {
            tree: "signals",
            id: hex(id),
            reason: "sealed keys are not UTF-8".into(),
        })?;
        Ok(text.split('\n').map(str::to_owned).collect())
    }

    /// A record's stored keys, each read again as today's normalisation
    /// reads keys (a store written before a normalisation change holds
    /// some in an older form). Stored keys passed their checks when
    /// imported, so no date check applies. One that no longer reads at
    /// all comes back unread, for the caller to keep or refuse.
    pub fn read_keys(
        &self,
        id: &SignalId,
        record: &SignalRecord,
    ) -> Result<Vec<StoredKey>, StoreError> {
        Ok(self
            .open_keys(id, record)?
            .into_iter()
            .map(|stored| StoredKey {
                read: SubjectKey::parse(&stored, Date::MAX).ok(),
                stored,
            })
            .collect())
    }
}

/// A stored key and how it reads today.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// As stored.
    pub stored: String,
    /// As it reads (`None`: it no longer reads as a key).
    pub read: Option<SubjectKey>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{commit, reopen, signal, TODAY};
    use time::macros::date;

    #[test]
    fn import_is_idempotent_and_replace_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = signal("111222333", "weapon_possession", Some("case-1"));
        let b = signal("123456782", "weapon_possession", None);
        assert_eq!(commit(&store, &[a.clone(), b.clone()], false).added, 2);
        let again = commit(&store, &[a.clone(), b.clone()], false);
        assert_eq!((again.added, again.unchanged), (0, 2));
        assert_eq!(store.len(), 2);
        let replaced = commit(&store, &[a], true);
        assert_eq!((replaced.added, replaced.removed), (1, 1));
        assert_eq!(store.len(), 1);
        assert_eq!(store.forget_local_ref("case-1", "test").unwrap(), 1);
        assert!(store.is_empty());
        let mut dangling = 0;
        for entry in store.snapshot().generation.subjects.iter() {
            let (key, bytes) = entry.unwrap();
            dangling += decode_bucket::<SubjectEntry>("subjects", &key, &bytes)
                .unwrap()
                .len();
        }
        assert_eq!(dangling, 0, "no dangling index entries");
        assert_eq!(store.counts(TODAY).unwrap().forgotten_total, 1);
    }

    #[test]
    fn survives_reopen_and_refuses_a_foreign_key() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            commit(
                &store,
                &[signal("111222333", "weapon_possession", None)],
                false,
            );
        }
        let store = reopen(dir.path()).unwrap();
        let mut keys = Vec::new();
        store
            .for_each_signal(|id, r| keys = store.open_keys(id, r).unwrap())
            .unwrap();
        assert_eq!(keys, ["bsn:111222333"]);
        drop(store);
        std::fs::write(dir.path().join("storage.key"), [7u8; 32]).unwrap();
        let err = reopen(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn expired_signals_are_counted_and_purged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut old = signal("111222333", "weapon_possession", None);
        old.expires_on = date!(2026 - 11 - 28);
        commit(
            &store,
            &[old, signal("123456782", "weapon_possession", None)],
            false,
        );
        let counts = store.counts(TODAY).unwrap();
        assert_eq!(
            counts.by_signal[&(LifeDomain::Safety, "weapon_possession".into())],
            (1, 1)
        );
        assert_eq!(store.purge_expired(TODAY).unwrap(), 1);
        assert_eq!(store.purge_expired(TODAY).unwrap(), 0);
        assert_eq!(store.counts(TODAY).unwrap().purged_total, 1);
    }
}
