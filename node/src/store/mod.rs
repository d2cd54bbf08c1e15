//! The node's store: one sled database in `data_dir/store` (nothing else
//! touches sled) and the audit log's files in `data_dir/audit`
//! ([`LogFile`]), which also hold the daily budgets: see [`audit`].
//!
//! Trees, each with one purpose:
//! * `meta`: schema version, the storage-key check, the active generation,
//!   the signal count, lifetime counters, the epochs' sealed OPRF key
//!   seeds (`epoch/`; deleted when an epoch's grace period is over) and an
//!   audit entry pending with a change (see [`audit`]);
//! * `signals/G`: the signals. Each value is a *bucket*: every signal whose
//!   id (a keyed digest, so uniformly spread) starts with the bucket's 12
//!   bits, sorted by id, as [`SignalRecord`]s: which signal, when
//!   registered, when it expires, the person's keys *sealed*, their keyed
//!   digests, and the sealed local case reference with its digest;
//! * `subjects/G`: the keyed index: buckets of (key digest, signal id),
//!   sorted, by the digest's first 12 bits. It finds a person's signals by
//!   any of their keys without the key in clear.
//!
//! Buckets keep sled to a few thousand large values instead of millions of
//! small ones: sled writes ~30,000 entries a second here, far too few for
//! a million-row import, but moves large values at disk speed.
//!
//! `G` is the *generation*. An import builds a whole new generation beside
//! the active one (the active one merged with the new rows, or only the new
//! rows for `--replace`); it becomes visible only when the `meta` keys
//! naming the active generation and its count are switched in one batch,
//! after everything before was flushed: see [`generations`]. A crash at
//! any point leaves the old generation active; leftovers of an unfinished
//! one are dropped at the next open. Small changes (erasure, expiry purge)
//! rewrite the affected buckets in one multi-tree transaction: see
//! [`erasure`]. Readers take a [`Snapshot`] and read only it. Values carry
//! a format byte before their postcard encoding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use pluis_proto::identifier::SubjectKey;
use pluis_proto::taxonomy::LifeDomain;
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionError;
use time::Date;

use crate::vault::{IndexDigest, Vault, VaultError};
use pluis_proto::hex;

mod audit;
mod erasure;
mod generations;
mod logfile;
use audit::{epoch_key, replay_budget, Budgets, LedgerBatch};
pub use audit::{LogFile, LogFileError};
pub use erasure::StagedRemoval;
use generations::{generation_of, tree_names, Generation};
pub use generations::{CommitCounts, Import, Snapshot, Staged};

/// The store's schema version; checked at open.
pub const SCHEMA_VERSION: u32 = 3;
const BUCKET_FORMAT_V1: u8 = 1;
/// Buckets per tree: 2^12.
const BUCKET_BITS: u32 = 12;

const META_SCHEMA: &[u8] = b"schema_version";
const META_KEY_CHECK: &[u8] = b"storage_key_check";
const META_GENERATION: &[u8] = b"generation";
const META_COUNT: &[u8] = b"signal_count";
const META_PURGED: &[u8] = b"purged_total";
const META_FORGOTTEN: &[u8] = b"forgotten_total";
/// Changed by every import and erasure, so that anything derived from the
/// signal set (labelled tables) knows when it is stale.
const META_REVISION: &[u8] = b"revision";
/// The next revision number never handed out (see [`generations`]).
const META_REVISION_NEXT: &[u8] = b"revision_next";
/// sled's page cache; the default (1 GiB) is more than a node needs.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

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
        "store {path} has schema version {found}; this pluis-node reads version {SCHEMA_VERSION} (a store of an earlier version: make a new data_dir and import again)"
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
    /// The audit log's files are unusable or were altered.
    #[error(transparent)]
    AuditLog(#[from] LogFileError),
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

/// One (key digest, signal id) pair of the keyed index.
type SubjectEntry = ([u8; 32], SignalId);

/// The node's sled store.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    /// Held by every writer of the audit log (and so of budgets and
    /// epoch keys): see [`audit`].
    ledger: std::sync::Mutex<()>,
    /// Held by every change to the signal set (import, erasure, purge)
    /// from the snapshot it starts from until it is published, so that
    /// none is lost to another; taken before `ledger`.
    writer: std::sync::Mutex<()>,
    /// The audit log, in `data_dir/audit`.
    log: LogFile,
    /// Keys evaluated per (peer, day), rebuilt from the log at open.
    budgets: std::sync::Mutex<Budgets>,
    active: RwLock<Snapshot>,
    vault: Vault,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// The bucket of an id or digest: its first [`BUCKET_BITS`] bits.
fn bucket_of(bytes: &[u8]) -> [u8; 2] {
    let prefix = u16::from_be_bytes([bytes[0], bytes[1]]) >> (16 - BUCKET_BITS);
    prefix.to_be_bytes()
}

fn encode_bucket<T: Serialize>(entries: &[T]) -> Vec<u8> {
    let mut out = vec![BUCKET_FORMAT_V1];
    // postcard into a Vec cannot fail for these plain types.
    out.extend(postcard::to_stdvec(entries).unwrap_or_default());
    out
}

fn decode_bucket<T: for<'de> Deserialize<'de>>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<Vec<T>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        tree,
        id: hex(key),
        reason,
    };
    match bytes.split_first() {
        Some((&BUCKET_FORMAT_V1, body)) => {
            postcard::from_bytes(body).map_err(|e| corrupt(e.to_string()))
        }
        Some((format, _)) => Err(corrupt(format!("unknown bucket format {format}"))),
        None => Err(corrupt("empty value".into())),
    }
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

fn read_u64(value: Option<sled::IVec>) -> u64 {
    value
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// Writes `(bucket, encoded)` pairs in sled batches.
fn write_buckets(
    tree: &sled::Tree,
    buckets: impl Iterator<Item = ([u8; 2], Vec<u8>)>,
) -> Result<(), sled::Error> {
    let mut batch = sled::Batch::default();
    let mut size = 0;
    for (key, value) in buckets {
        size += value.len();
        batch.insert(&key[..], value);
        if size > 8 << 20 {
            tree.apply_batch(std::mem::take(&mut batch))?;
            size = 0;
        }
    }
    tree.apply_batch(batch)
}

/// Groups sorted items into buckets by `key`, encoding each bucket.
fn buckets_of<'a, T: Serialize + 'a>(
    items: &'a [T],
    key: impl Fn(&T) -> &[u8] + Copy + 'a,
) -> impl Iterator<Item = ([u8; 2], Vec<u8>)> + 'a {
    items
        .chunk_by(move |a, b| bucket_of(key(a)) == bucket_of(key(b)))
        .map(move |group| (bucket_of(key(&group[0])), encode_bucket(group)))
}

impl Store {
    /// Opens (creating if need be) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        crate::private_files::create_dir(data_dir).map_err(|error| StoreError::DataDir {
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
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(sled_error)?;
        if db.was_recovered() {
            tracing::debug!(store = %path.display(), "store reopened after a previous run");
        }
        let meta = db.open_tree("meta").map_err(sled_error)?;
        let number = read_u64(meta.get(META_GENERATION).map_err(sled_error)?);
        // Drop what an unfinished import left behind.
        for name in db.tree_names() {
            if generation_of(&name).is_some_and(|g| g != number) {
                db.drop_tree(&name).map_err(sled_error)?;
                tracing::info!(tree = %String::from_utf8_lossy(&name), "dropped an unfinished import");
            }
        }
        let [signals, subjects] = tree_names(number);
        let active = Snapshot {
            generation: Generation {
                number,
                signals: db.open_tree(signals).map_err(sled_error)?,
                subjects: db.open_tree(subjects).map_err(sled_error)?,
            },
            revision: read_u64(meta.get(META_REVISION).map_err(sled_error)?),
            excluded: None,
        };
        let mut budgets = Budgets::new();
        let log = LogFile::open(&data_dir.join("audit"), |_, bytes| {
            replay_budget(&mut budgets, bytes)
        })?;
        let store = Store {
            path: path.clone(),
            ledger: std::sync::Mutex::new(()),
            writer: std::sync::Mutex::new(()),
            log,
            budgets: std::sync::Mutex::new(budgets),
            db,
            meta,
            active: RwLock::new(active),
            vault,
        };
        store.check_meta()?;
        store.settle_pending()?;
        Ok(store)
    }

    fn sled(&self, error: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            error,
        }
    }

    /// The signal set as it is now, to read consistently however long
    /// the reading takes.
    pub fn snapshot(&self) -> Snapshot {
        // A poisoned lock only means a panic elsewhere mid-swap; the
        // snapshot inside is still a whole one.
        match self.active.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The keyed digest under which `key` is indexed.
    fn key_digest(&self, key: &SubjectKey) -> IndexDigest {
        self.vault.index("key", key.canonical().as_bytes())
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
        let record = SignalRecord {
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
        };
        Ok(PreparedSignal { id, record })
    }

    /// The ids of the signals stored under a key digest.
    fn ids_of(
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

    /// The OPRF key seed of `epoch`, made (from the OS RNG, sealed,
    /// flushed) if `create` and there is none yet. `None`: no such seed,
    /// because the epoch was never made here or has been destroyed.
    pub fn epoch_seed(&self, epoch: u64, create: bool) -> Result<Option<[u8; 32]>, StoreError> {
        let key = epoch_key(epoch);
        let context = [b"epoch/".as_slice(), &epoch.to_be_bytes()].concat();
        let read = |store: &Store| -> Result<Option<[u8; 32]>, StoreError> {
            let Some(sealed) = store.meta.get(&key).map_err(|e| store.sled(e))? else {
                return Ok(None);
            };
            let plain = store.vault.open_sealed(&context, &sealed)?;
            <[u8; 32]>::try_from(plain.as_slice())
                .map(Some)
                .map_err(|_| StoreError::Corrupt {
                    tree: "meta",
                    id: format!("epoch {epoch}"),
                    reason: "seed is not 32 bytes".into(),
                })
        };
        if let Some(seed) = read(self)? {
            return Ok(Some(seed));
        }
        if !create {
            return Ok(None);
        }
        // Two callers racing to create the same epoch: the first one wins.
        // The new key and its audit entry are one batch.
        let _ledger = crate::lock(&self.ledger);
        if let Some(seed) = read(self)? {
            return Ok(Some(seed));
        }
        let seed = self.vault.random_seed()?;
        let mut created = LedgerBatch::new(self);
        created
            .batch
            .insert(key.clone(), self.vault.seal(&context, &seed)?);
        created.append(&pluis_proto::pb::AuditEntry {
            time_unix_ms: audit_now_ms(),
            kind: pluis_proto::pb::audit_entry::Kind::KeyRotation as i32,
            actor: "epoch rotation".into(),
            epoch,
            ..Default::default()
        })?;
        created.apply()?;
        Ok(Some(seed))
    }

    /// Destroys every epoch seed before `epoch`; returns how many.
    pub fn destroy_epochs_before(&self, epoch: u64) -> Result<usize, StoreError> {
        let _ledger = crate::lock(&self.ledger);
        let mut destroyed = 0;
        for key in self.meta.range(epoch_key(0)..epoch_key(epoch)).keys() {
            let key = key.map_err(|e| self.sled(e))?;
            self.meta.remove(key).map_err(|e| self.sled(e))?;
            destroyed += 1;
        }
        if destroyed > 0 {
            self.flush()?;
        }
        Ok(destroyed)
    }

    /// The number of stored signals.
    pub fn len(&self) -> usize {
        self.meta
            .get(META_COUNT)
            .map(|v| read_u64(v) as usize)
            .unwrap_or(0)
    }

    /// The revision of the signal set now: it changes with every import
    /// and erasure, and with nothing else.
    pub fn revision(&self) -> u64 {
        self.snapshot().revision
    }

    /// Whether the store holds no signals.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Now, in Unix milliseconds, for audit entries.
pub fn audit_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 28);

    pub(super) fn signal(bsn: &str, code: &str, local_ref: Option<&str>) -> NewSignal {
        NewSignal {
            keys: vec![SubjectKey::parse(&format!("bsn:{bsn}"), TODAY).unwrap()],
            signal: code.into(),
            domain: LifeDomain::Safety,
            registered_on: date!(2026 - 01 - 10),
            expires_on: date!(2027 - 01 - 10),
            local_ref: local_ref.map(str::to_owned),
        }
    }

    /// Opens a store just closed in this process: sled's background
    /// flusher can hold the file lock for a moment after the last handle
    /// is dropped.
    pub(super) fn reopen(dir: &Path) -> Result<Store, StoreError> {
        for _ in 0..100 {
            match Store::open(dir) {
                Err(StoreError::Locked(_)) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other,
            }
        }
        Store::open(dir)
    }

    pub(super) fn commit(store: &Store, signals: &[NewSignal], replace: bool) -> CommitCounts {
        let prepared: Vec<_> = signals.iter().map(|s| store.prepare(s).unwrap()).collect();
        let mut import = store.begin_import(replace).unwrap();
        import.write(prepared).unwrap();
        import.commit().unwrap()
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
    fn an_unfinished_import_is_invisible_and_dropped_at_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            commit(
                &store,
                &[signal("111222333", "weapon_possession", None)],
                false,
            );
            // What a crash between writing generation 2 and switching to
            // it leaves behind.
            let half = store.db.open_tree("signals/2").unwrap();
            half.insert([0u8, 0], b"half-written".to_vec()).unwrap();
            assert_eq!(store.len(), 1, "not visible before the switch");
            store.db.flush().unwrap();
        }
        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.len(), 1);
        let names: Vec<_> = store
            .db
            .tree_names()
            .into_iter()
            .filter_map(|n| generation_of(&n))
            .collect();
        assert!(names.iter().all(|g| *g == 1), "{names:?}");
    }

    #[test]
    fn another_schema_version_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .meta
                .insert(META_SCHEMA, &99u32.to_be_bytes())
                .unwrap();
            store.db.flush().unwrap();
        }
        let err = reopen(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("schema version 99") && err.contains("reads version 3"),
            "{err}"
        );
    }

    #[test]
    fn epoch_seeds_persist_sealed_and_can_be_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let seed = {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.epoch_seed(5, false).unwrap(), None);
            let seed = store.epoch_seed(5, true).unwrap().unwrap();
            assert_eq!(store.epoch_seed(5, true).unwrap(), Some(seed), "made once");
            store.epoch_seed(6, true).unwrap();
            seed
        };
        let store = reopen(dir.path()).unwrap();
        assert_eq!(
            store.epoch_seed(5, false).unwrap(),
            Some(seed),
            "survives a restart"
        );
        assert_eq!(store.destroy_epochs_before(6).unwrap(), 1);
        assert_eq!(store.epoch_seed(5, false).unwrap(), None);
        assert!(store.epoch_seed(6, false).unwrap().is_some());
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
            let charge = |day, keys| store.charge_budget("school", day, keys, 100, &served);
            assert_eq!(charge(100, 60).unwrap(), Ok((60, 0)));
            assert_eq!(charge(100, 50).unwrap(), Err(60));
            assert_eq!(charge(101, 50).unwrap(), Ok((50, 1)));
            store.sync_log().unwrap();
            let other = pluis_proto::pb::AuditEntry {
                actor: "spiffe://c/org/police/node".into(),
                ..served.clone()
            };
            assert!(store.charge_budget("school", 100, 1, 100, &other).is_err());
        }
        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.budget_used("school", 100).unwrap(), 60);
        assert_eq!(store.budget_used("police", 100).unwrap(), 0);
        // Each charge and its log entry went together; the refusal wrote neither.
        let entries = store.audit_entries(0, 10).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(store.audit_size().unwrap(), 2);
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
    fn bucket_codec_round_trips_and_rejects_unknown_formats() {
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
        let bucket = vec![([9u8; 16], record)];
        let bytes = encode_bucket(&bucket);
        let back: Vec<(SignalId, SignalRecord)> = decode_bucket("signals", b"k", &bytes).unwrap();
        assert_eq!(back, bucket);
        let mut bad = bytes.clone();
        bad[0] = 9;
        let err = decode_bucket::<(SignalId, SignalRecord)>("signals", b"k", &bad).unwrap_err();
        assert!(err.to_string().contains("format 9"), "{err}");
        assert!(decode_bucket::<(SignalId, SignalRecord)>("signals", b"k", &bytes[..4]).is_err());
    }
}
