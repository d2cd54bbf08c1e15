//! The node's store: one sled database in `data_dir/store` (nothing else
//! touches sled) and the audit log's files in `data_dir/audit`
//! ([`LogFile`]), which also hold the daily budgets: see `ledger.rs`.
//!
//! Trees, each with one purpose:
//! * `meta`: schema version, the storage-key check, the active generation,
//!   the signal count, lifetime counters, the epochs' sealed OPRF key
//!   seeds (`epoch/`; deleted when an epoch's grace period is over) and an
//!   audit entry pending with a change (see `ledger.rs`);
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
//! after everything before was flushed: see `generations.rs`. A crash at
//! any point leaves the old generation active; leftovers of an unfinished
//! one are dropped at the next open. Small changes (erasure, expiry purge)
//! rewrite the affected buckets in one multi-tree transaction: see
//! `erasure.rs`. Readers take a [`Snapshot`] and read only it. Values carry
//! a format byte before their postcard encoding.
//!
//! One file per concern: `signals.rs` (records, sealing, look-ups),
//! `generations.rs` (snapshots, staged imports), `erasure.rs`, `epochs.rs`
//! (OPRF key seeds), `ledger.rs` (the audit log's place in the store,
//! budgets) and `logfile.rs` (the log's own files); this file opens the
//! store and holds what they share.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sled::transaction::TransactionError;

use crate::clock::Clock;
use crate::store::vault::{Vault, VaultError};
use pluis_proto::hex;

mod epochs;
mod erasure;
mod generations;
mod ledger;
mod logfile;
mod rekey;
mod signals;
pub(crate) mod vault;
use generations::{generation_of, tree_names, Generation};
pub use generations::{CommitCounts, Import, Snapshot, Staged};
use ledger::{replay_budget, Budgets};
pub use ledger::{Charged, Counter, LogFile, LogFileError};
pub use signals::{NewSignal, PreparedSignal, SignalCounts, SignalRecord, StoredKey};

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

/// One (key digest, signal id) pair of the keyed index.
type SubjectEntry = ([u8; 32], SignalId);

/// The node's sled store.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    /// Held by every writer of the audit log (and so of budgets and
    /// epoch keys): see `ledger.rs`.
    ledger: std::sync::Mutex<()>,
    /// Held by every change to the signal set (import, erasure, purge)
    /// from the snapshot it starts from until it is published, so that
    /// none is lost to another; taken before `ledger`.
    writer: std::sync::Mutex<()>,
    /// The audit log, in `data_dir/audit`.
    log: LogFile,
    /// Keys evaluated per (peer, day), rebuilt from the log at open.
    budgets: std::sync::Mutex<Budgets>,
    /// The time its audit entries carry: the system's, or a test's.
    clock: Clock,
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
        // sled makes its files with the process's umask; the store is the
        // organisation's case data, so only its owner may read any of it.
        private_tree(&path).map_err(|error| StoreError::DataDir {
            path: path.clone(),
            error,
        })?;
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
            clock: Clock::System,
            db,
            meta,
            active: RwLock::new(active),
            vault,
        };
        store.check_meta()?;
        store.settle_pending()?;
        store.rekey()?;
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
                // A new store holds keys as this version writes them.
                rekey::mark_current(self)?;
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

/// Sets every file under `dir` to mode 0600 and every directory to 0700.
fn private_tree(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                private_tree(&entry.path())?;
            } else {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

impl Store {
    /// The same store, its audit entries timed by `clock` (a test's).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Now, in Unix milliseconds, for audit entries.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use pluis_proto::identifier::SubjectKey;
    use pluis_proto::taxonomy::LifeDomain;
    use time::macros::date;
    use time::Date;

    pub(super) const TODAY: Date = date!(2026 - 11 - 28);

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
    fn a_second_open_is_refused_while_the_first_holds_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another process"), "{err}");
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
