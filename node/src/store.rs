//! The node's store: one sled database in `data_dir/store`; nothing else
//! touches sled.
//!
//! Trees, each with one purpose:
//! * `meta`: schema version, the storage-key check, counters;
//! * `signals`: signal id (16 bytes) → [`SignalRecord`]: which signal, when
//!   registered, when it expires, the person's keys *sealed*, and their
//!   keyed digests;
//! * `subjects`: key digest (32) ‖ signal id (16) → (): find a person's
//!   signals by any of their keys, without the key in clear;
//! * `local_refs`: reference digest (32) ‖ signal id → (): the same for the
//!   organisation's own case reference (for erasure).
//!
//! Values carry a format byte before their postcard encoding. Writes that
//! belong together are one multi-tree transaction, flushed before a command
//! reports success, so a crash leaves either the old or the new state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pluis_proto::identifier::SubjectKey;
use pluis_proto::taxonomy::LifeDomain;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use time::Date;

use crate::vault::{IndexDigest, Vault, VaultError};

/// The store's schema version; checked at open.
pub const SCHEMA_VERSION: u32 = 1;
const RECORD_FORMAT_V1: u8 = 1;

const META_SCHEMA: &[u8] = b"schema_version";
const META_KEY_CHECK: &[u8] = b"storage_key_check";
const META_PURGED: &[u8] = b"purged_total";
const META_FORGOTTEN: &[u8] = b"forgotten_total";

/// A signal's id: a keyed digest of (keys, signal, registration date), so
/// that importing the same row twice stores it once.
pub type SignalId = [u8; 16];

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("store {path}: {error}")]
    Sled {
        /// The database directory.
        path: PathBuf,
        /// sled's error.
        error: sled::Error,
    },
    /// Another process (typically `pluis-node serve`) has the store open.
    #[error("store {0} is in use by another process (is `pluis-node serve` running on this data_dir? stop it first)")]
    Locked(PathBuf),
    /// The data directory could not be created.
    #[error("data_dir {path}: {error}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The store was written by another schema version.
    #[error(
        "store {path} has schema version {found}; this pluis-node reads version {SCHEMA_VERSION}"
    )]
    Schema {
        /// The database directory.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// The storage key does not belong to this store.
    #[error("{0}: storage.key does not belong to this store (was it replaced?)")]
    WrongKey(PathBuf),
    /// The storage secrets are unusable.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A stored value cannot be decoded.
    #[error("store: tree {tree}: record {id}: {reason}")]
    Corrupt {
        /// The tree.
        tree: &'static str,
        /// Hex of the record key (a digest, never personal data).
        id: String,
        /// What is wrong.
        reason: String,
    },
}

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

    fn encode(&self) -> Vec<u8> {
        let mut out = vec![RECORD_FORMAT_V1];
        // postcard into a Vec cannot fail for these plain types.
        out.extend(postcard::to_stdvec(self).unwrap_or_default());
        out
    }

    fn decode(id: &[u8], bytes: &[u8]) -> Result<SignalRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            tree: "signals",
            id: hex(id),
            reason,
        };
        match bytes.split_first() {
            Some((&RECORD_FORMAT_V1, body)) => {
                postcard::from_bytes(body).map_err(|e| corrupt(e.to_string()))
            }
            Some((format, _)) => Err(corrupt(format!("unknown record format {format}"))),
            None => Err(corrupt("empty value".into())),
        }
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
    id: SignalId,
    record: SignalRecord,
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

/// The node's sled store.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    signals: sled::Tree,
    subjects: sled::Tree,
    local_refs: sled::Tree,
    vault: Vault,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn transaction_error(path: &Path, e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(error) => StoreError::Sled {
            path: path.to_owned(),
            error,
        },
    }
}

impl Store {
    /// Opens (creating if need be) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(data_dir)
            .map_err(|error| StoreError::DataDir {
                path: data_dir.to_owned(),
                error,
            })?;
        let path = data_dir.join("store");
        let existed = path.exists();
        let vault = Vault::open(data_dir, !existed)?;
        let sled_error = |error: sled::Error| match &error {
            sled::Error::Io(io) if io.to_string().contains("lock") => {
                StoreError::Locked(path.clone())
            }
            _ => StoreError::Sled {
                path: path.clone(),
                error,
            },
        };
        let db = sled::Config::new()
            .path(&path)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(sled_error)?;
        if db.was_recovered() {
            tracing::debug!(store = %path.display(), "store reopened");
        }
        let tree = |name: &str| db.open_tree(name).map_err(sled_error);
        let store = Store {
            meta: tree("meta")?,
            signals: tree("signals")?,
            subjects: tree("subjects")?,
            local_refs: tree("local_refs")?,
            db,
            vault,
            path: path.clone(),
        };
        store.check_meta()?;
        Ok(store)
    }

    fn sled(&self, error: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            error,
        }
    }

    fn check_meta(&self) -> Result<(), StoreError> {
        let check = self.vault.index("check", b"pluis storage key");
        let schema = self.meta.get(META_SCHEMA).map_err(|e| self.sled(e))?;
        match schema {
            None => {
                self.meta
                    .insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(|e| self.sled(e))?;
                self.meta
                    .insert(META_KEY_CHECK, &check)
                    .map_err(|e| self.sled(e))?;
                self.db.flush().map_err(|e| self.sled(e))?;
            }
            Some(found) => {
                let found = <[u8; 4]>::try_from(found.as_ref())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0);
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema {
                        path: self.path.clone(),
                        found,
                    });
                }
                let stored = self.meta.get(META_KEY_CHECK).map_err(|e| self.sled(e))?;
                if stored.as_deref() != Some(check.as_slice()) {
                    return Err(StoreError::WrongKey(self.path.clone()));
                }
            }
        }
        Ok(())
    }

    /// Seals and digests a signal. Pure CPU work: safe to run in parallel.
    pub fn prepare(&self, signal: &NewSignal) -> Result<PreparedSignal, StoreError> {
        let mut canonical: Vec<String> = signal.keys.iter().map(SubjectKey::canonical).collect();
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
        Ok(PreparedSignal {
            id,
            record: SignalRecord {
                signal: signal.signal.clone(),
                domain: signal.domain,
                registered_on: registered,
                expires_on: signal.expires_on.to_julian_day(),
                key_digests: canonical
                    .iter()
                    .map(|k| self.vault.index("key", k.as_bytes()))
                    .collect(),
                sealed_keys: self.vault.seal(&id, keys.as_bytes())?,
                ref_digest,
                sealed_ref,
            },
        })
    }

    fn record(&self, id: &[u8]) -> Result<Option<SignalRecord>, StoreError> {
        match self.signals.get(id).map_err(|e| self.sled(e))? {
            Some(bytes) => SignalRecord::decode(id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Stores prepared signals in one atomic, flushed step. With `replace`,
    /// everything stored before is removed in the same step.
    pub fn commit(
        &self,
        prepared: &[PreparedSignal],
        replace: bool,
    ) -> Result<CommitCounts, StoreError> {
        let mut counts = CommitCounts::default();
        // Index entries to remove: everything (replace), or the old entries
        // of records this import rewrites (their local_ref may change).
        let mut removals: Vec<(&sled::Tree, Vec<u8>)> = Vec::new();
        let mut seen = BTreeSet::new();
        if replace {
            for tree in [&self.signals, &self.subjects, &self.local_refs] {
                for key in tree.iter().keys() {
                    removals.push((tree, key.map_err(|e| self.sled(e))?.to_vec()));
                }
            }
            counts.removed = self.signals.len();
        }
        for p in prepared {
            if !seen.insert(p.id) {
                counts.unchanged += 1;
                continue;
            }
            match self.record(&p.id)? {
                Some(old) => {
                    counts.unchanged += 1;
                    if !replace {
                        removals.extend(self.index_entries(&p.id, &old));
                    }
                }
                None => counts.added += 1,
            }
        }
        if replace {
            // What is re-imported was not really removed.
            counts.removed = counts.removed.saturating_sub(counts.unchanged);
            counts.added += counts.unchanged;
            counts.unchanged = 0;
        }
        (&self.signals, &self.subjects, &self.local_refs)
            .transaction(|(signals, subjects, refs)| {
                for (tree, key) in &removals {
                    let target = if std::ptr::eq(*tree, &self.signals) {
                        signals
                    } else if std::ptr::eq(*tree, &self.subjects) {
                        subjects
                    } else {
                        refs
                    };
                    target.remove(key.as_slice())?;
                }
                for p in prepared {
                    signals.insert(&p.id[..], p.record.encode())?;
                    for digest in &p.record.key_digests {
                        subjects.insert(index_key(digest, &p.id), &[] as &[u8])?;
                    }
                    if let Some(digest) = &p.record.ref_digest {
                        refs.insert(index_key(digest, &p.id), &[] as &[u8])?;
                    }
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|e| transaction_error(&self.path, e))?;
        self.db.flush().map_err(|e| self.sled(e))?;
        Ok(counts)
    }

    fn index_entries(&self, id: &SignalId, record: &SignalRecord) -> Vec<(&sled::Tree, Vec<u8>)> {
        let mut entries: Vec<(&sled::Tree, Vec<u8>)> = record
            .key_digests
            .iter()
            .map(|d| (&self.subjects, index_key(d, id)))
            .collect();
        if let Some(d) = &record.ref_digest {
            entries.push((&self.local_refs, index_key(d, id)));
        }
        entries
    }

    fn ids_under(
        &self,
        tree: &sled::Tree,
        digest: &IndexDigest,
    ) -> Result<Vec<SignalId>, StoreError> {
        let mut ids = Vec::new();
        for key in tree.scan_prefix(digest).keys() {
            let key = key.map_err(|e| self.sled(e))?;
            if let Ok(id) = <SignalId>::try_from(&key[32..]) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Removes signals and all their index entries in one flushed step,
    /// adding their number to the `counter` in `meta`.
    fn remove_signals(&self, ids: &[SignalId], counter: &[u8]) -> Result<usize, StoreError> {
        let mut records = Vec::new();
        for id in ids {
            if let Some(record) = self.record(id)? {
                records.push((*id, record));
            }
        }
        if records.is_empty() {
            return Ok(0);
        }
        let removed = records.len() as u64;
        (&self.signals, &self.subjects, &self.local_refs, &self.meta)
            .transaction(|(signals, subjects, refs, meta)| {
                for (id, record) in &records {
                    signals.remove(&id[..])?;
                    for d in &record.key_digests {
                        subjects.remove(index_key(d, id))?;
                    }
                    if let Some(d) = &record.ref_digest {
                        refs.remove(index_key(d, id))?;
                    }
                }
                let before = meta
                    .get(counter)?
                    .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                meta.insert(counter, &(before + removed).to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|e| transaction_error(&self.path, e))?;
        self.db.flush().map_err(|e| self.sled(e))?;
        Ok(records.len())
    }

    /// Erases every signal stored under `key` (right to erasure).
    pub fn forget_key(&self, key: &SubjectKey) -> Result<usize, StoreError> {
        let digest = self.vault.index("key", key.canonical().as_bytes());
        let ids = self.ids_under(&self.subjects, &digest)?;
        self.remove_signals(&ids, META_FORGOTTEN)
    }

    /// Erases every signal stored with this local case reference.
    pub fn forget_local_ref(&self, local_ref: &str) -> Result<usize, StoreError> {
        let digest = self.vault.index("ref", local_ref.as_bytes());
        let ids = self.ids_under(&self.local_refs, &digest)?;
        self.remove_signals(&ids, META_FORGOTTEN)
    }

    /// Visits every stored signal.
    pub fn for_each_signal(
        &self,
        mut visit: impl FnMut(&SignalId, &SignalRecord),
    ) -> Result<(), StoreError> {
        for entry in self.signals.iter() {
            let (id, bytes) = entry.map_err(|e| self.sled(e))?;
            let record = SignalRecord::decode(&id, &bytes)?;
            if let Ok(id) = <SignalId>::try_from(id.as_ref()) {
                visit(&id, &record);
            }
        }
        Ok(())
    }

    /// Removes every signal expired on `today`; returns how many.
    pub fn purge_expired(&self, today: Date) -> Result<usize, StoreError> {
        let mut expired = Vec::new();
        self.for_each_signal(|id, record| {
            if record.expired_on(today) {
                expired.push(*id);
            }
        })?;
        self.remove_signals(&expired, META_PURGED)
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
        let counter = |key: &[u8]| -> Result<u64, StoreError> {
            Ok(self
                .meta
                .get(key)
                .map_err(|e| self.sled(e))?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0))
        };
        counts.purged_total = counter(META_PURGED)?;
        counts.forgotten_total = counter(META_FORGOTTEN)?;
        Ok(counts)
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

    /// The number of stored signals.
    pub fn len(&self) -> usize {
        self.signals.len()
    }

    /// Whether no signal is stored.
    pub fn is_empty(&self) -> bool {
        self.signals.is_empty()
    }
}

fn index_key(digest: &IndexDigest, id: &SignalId) -> Vec<u8> {
    let mut key = Vec::with_capacity(48);
    key.extend_from_slice(digest);
    key.extend_from_slice(id);
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 28);

    fn signal(bsn: &str, code: &str, local_ref: Option<&str>) -> NewSignal {
        NewSignal {
            keys: vec![SubjectKey::parse(&format!("bsn:{bsn}"), TODAY).unwrap()],
            signal: code.into(),
            domain: LifeDomain::Safety,
            registered_on: date!(2026 - 01 - 10),
            expires_on: date!(2027 - 01 - 10),
            local_ref: local_ref.map(str::to_owned),
        }
    }

    fn commit(store: &Store, signals: &[NewSignal], replace: bool) -> CommitCounts {
        let prepared: Vec<_> = signals.iter().map(|s| store.prepare(s).unwrap()).collect();
        store.commit(&prepared, replace).unwrap()
    }

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
        assert_eq!(store.forget_local_ref("case-1").unwrap(), 1);
        assert!(store.is_empty());
        assert_eq!(
            store.subjects.len() + store.local_refs.len(),
            0,
            "no dangling index"
        );
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
        let store = Store::open(dir.path()).unwrap();
        let mut keys = Vec::new();
        store
            .for_each_signal(|id, r| keys = store.open_keys(id, r).unwrap())
            .unwrap();
        assert_eq!(keys, ["bsn:111222333"]);
        drop(store);
        std::fs::write(dir.path().join("storage.key"), [7u8; 32]).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn a_second_open_is_refused_while_the_first_holds_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another process"), "{err}");
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

    #[test]
    fn record_codec_round_trips_and_rejects_unknown_formats() {
        let record = SignalRecord {
            signal: "x".into(),
            domain: LifeDomain::YouthCare,
            registered_on: 1,
            expires_on: 2,
            key_digests: vec![[3; 32]],
            sealed_keys: vec![4, 5],
            ref_digest: None,
            sealed_ref: Some(vec![6]),
        };
        assert_eq!(
            SignalRecord::decode(b"id", &record.encode()).unwrap(),
            record
        );
        let mut bad = record.encode();
        bad[0] = 9;
        assert!(SignalRecord::decode(b"id", &bad)
            .unwrap_err()
            .to_string()
            .contains("format 9"));
        assert!(SignalRecord::decode(b"id", &record.encode()[..3]).is_err());
    }
}
