//! Building and caching this node's labelled tables, one per (epoch,
//! policy view).
//!
//! For every key of every active signal the node holds, the flags a view
//! allows (its domains; signal codes and registration months at signal
//! granularity) are sealed under that key's OPRF output. Keys are
//! evaluated in parallel over all cores. Tables are kept in memory and on
//! disk per (epoch, view, day, store revision): a restart loads them, and
//! an import, erasure, purge, new day or new epoch makes a new one.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pluis_proto::exchange::Epoch;
use pluis_proto::families::{self, Family, Tier};
use pluis_proto::oprf::EpochKey;
use pluis_proto::table::{seal_label, tag, Flags, LabelledTable, SignalFlag, TableEntry};
use rayon::prelude::*;
use ring::rand::SystemRandom;
use time::Date;

use crate::clock::Stopwatch;
use crate::lock;
use crate::policy::View;
use crate::store::{SignalId, SignalRecord, Snapshot, Store, StoreError, StoredKey};

/// The registration month of a record, as `year * 12 + month - 1`.
pub fn month_of(record: &SignalRecord) -> u16 {
    Date::from_julian_day(record.registered_on).map_or(0, |d| {
        (d.year() * 12 + i32::from(u8::from(d.month())) - 1).clamp(0, i32::from(u16::MAX)) as u16
    })
}

/// Adds what `view` allows of `record` to `flags`.
pub fn add_flags(flags: &mut Flags, record: &SignalRecord, view: &View) {
    if !view.domains.contains(&record.domain) {
        return;
    }
    flags.domains.insert(record.domain);
    if view.signals {
        flags.signals.push(SignalFlag {
            domain: record.domain,
            code: record.signal.clone(),
            month: month_of(record),
        });
    }
}

/// Builds the table of `view` under `key` from the signals of `snapshot`
/// active on `today`.
pub fn build(
    store: &Store,
    snapshot: &Snapshot,
    key: &EpochKey,
    view: &View,
    today: Date,
) -> Result<LabelledTable, StoreError> {
    let items = flags_per_key(store, snapshot, view, today)?;
    Ok(LabelledTable::new(seal_entries(key, &items)))
}

/// The table inputs of a record's stored keys, as they read today (so a
/// store written before a normalisation change is keyed as today's
/// questions are), each expanded into every key family it supports. A
/// stored key that no longer reads is kept as it was stored.
fn table_inputs(stored: Vec<StoredKey>) -> Vec<String> {
    let mut inputs = Vec::with_capacity(stored.len() * 16);
    for key in stored {
        match key.read {
            Some(read) => inputs.extend(families::table_inputs(&read).into_iter().map(|v| v.input)),
            None => inputs.push(key.stored),
        }
    }
    inputs.sort_unstable();
    inputs.dedup();
    inputs
}

/// Every table input (every family's, de-duplicated per family and
/// value) of a key with an active signal in `view` on `today`, with the
/// flags `view` lets its holder see — none for the weak families of the
/// possible tier, whose entries only say that a person may be known;
/// grouped in parallel.
pub fn flags_per_key(
    store: &Store,
    snapshot: &Snapshot,
    view: &View,
    today: Date,
) -> Result<Vec<(String, Flags)>, StoreError> {
    let mut records: Vec<(SignalId, SignalRecord)> = Vec::new();
    store.for_each_signal_in(snapshot, |id, record| {
        if !record.expired_on(today) && view.domains.contains(&record.domain) {
            records.push((*id, record.clone()));
        }
    })?;
    let opened: Vec<Vec<String>> = records
        .par_iter()
        .map(|(id, record)| Ok(table_inputs(store.read_keys(id, record)?)))
        .collect::<Result<_, StoreError>>()?;
    let mut pairs: Vec<(&str, usize)> = opened
        .par_iter()
        .enumerate()
        .flat_map_iter(|(i, keys)| keys.iter().map(move |k| (k.as_str(), i)))
        .collect();
    pairs.par_sort_unstable();
    Ok(pairs
        .par_chunk_by(|a, b| a.0 == b.0)
        .map(|group| {
            let mut flags = Flags::default();
            let possible = Family::of_input(group[0].0).map(Family::tier) == Some(Tier::Possible);
            for (_, i) in group.iter().filter(|_| !possible) {
                add_flags(&mut flags, &records[*i].1, view);
            }
            flags.signals.sort();
            flags.signals.dedup();
            (group[0].0.to_owned(), flags)
        })
        .collect())
}

/// One table entry per item, on all cores: the key's OPRF output under
/// `key`, its tag, and its flags sealed under it.
pub fn seal_entries(key: &EpochKey, items: &[(String, Flags)]) -> Vec<TableEntry> {
    let rng = SystemRandom::new();
    items
        .par_iter()
        .filter_map(|(k, flags)| {
            // An input voprf refuses (empty or over 64 KiB) cannot be a
            // stored key; a failed nonce leaves the entry out.
            let output = key.evaluate_input(k.as_bytes()).ok()?;
            let label = seal_label(&output, &flags.encode(), &rng).ok()?;
            Some(TableEntry {
                tag: tag(&output),
                label,
            })
        })
        .collect()
}

/// A table as an exchange's `Evaluate` announced it (its size and
/// digest): of which view, day and signal-set revision.
#[derive(Debug, Clone)]
pub struct Announced {
    /// The table.
    pub table: Arc<LabelledTable>,
    /// The view it was built for.
    pub view: View,
    /// The day (Julian) whose expiry it reflects.
    pub day: i32,
    /// The store revision (signal set) it was built from.
    pub revision: u64,
}

impl Announced {
    /// Whether it still is what a table call for `view` on `today` may
    /// be served: the same view and day. (The revision is checked where
    /// announced tables are kept: see [`super::served`].)
    pub fn serves(&self, view: &View, today: Date) -> bool {
        &self.view == view && self.day == today.to_julian_day()
    }
}

/// Which table: the epoch's key, the view, the day (expiry) and the
/// store's revision (its signal set).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TableId {
    epoch: u64,
    view: View,
    day: i32,
    revision: u64,
}

impl TableId {
    /// The file name, unique per id: `e1-d2461000-r3-0a1b2c3d4e5f6071.table`.
    fn file_name(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.view.describe().as_bytes());
        let short = pluis_proto::hex(&digest.as_ref()[..8]);
        format!(
            "e{}-d{}-r{}-{short}.table",
            self.epoch, self.day, self.revision
        )
    }

    /// The first line of the file, checked on load.
    fn header(&self) -> String {
        format!(
            "pluis-table v1 epoch={} day={} revision={} view={}\n",
            self.epoch,
            self.day,
            self.revision,
            self.view.describe()
        )
    }
}

/// Parses `e{epoch}-d{day}-r{revision}-…` back, for pruning.
fn parse_file_name(name: &str) -> Option<(u64, i32, u64)> {
    let rest = name.strip_suffix(".table")?.strip_prefix('e')?;
    let (epoch, rest) = rest.split_once("-d")?;
    let (day, rest) = rest.split_once("-r")?;
    let (revision, _) = rest.split_once('-')?;
    Some((
        epoch.parse().ok()?,
        day.parse().ok()?,
        revision.parse().ok()?,
    ))
}

impl View {
    /// A stable description: domain codes and granularity.
    fn describe(&self) -> String {
        let domains: Vec<&str> = self.domains.iter().map(|d| d.code()).collect();
        format!(
            "{};{}",
            domains.join(","),
            if self.signals { "signal" } else { "domain" }
        )
    }
}

/// This node's labelled tables: in memory for the epoch, and on disk
/// under `data_dir/tables` so that a restart does not rebuild them.
///
/// A table is rebuilt when the epoch, the day (expiry), the view or the
/// store's revision (imports, erasures) changes; files of older epochs,
/// days and revisions are deleted as soon as a newer one exists. Builds
/// on demand are one at a time (each uses every core). A change to the
/// signal set can [`Tables::prepare`] the tables of its new revision
/// beforehand and [`Tables::install`] them just before readers see it, so
/// that no exchange waits for a build.
#[derive(Debug, Default)]
pub struct Tables {
    dir: Option<PathBuf>,
    cache: Mutex<HashMap<TableId, Arc<LabelledTable>>>,
    building: Mutex<()>,
    metrics: Option<Arc<crate::ops::metrics::Metrics>>,
}

/// Tables made for a revision not yet visible, to install with it.
#[derive(Debug, Default)]
pub struct Prepared(Vec<(TableId, Arc<LabelledTable>)>);

impl Prepared {
    /// How many tables, and how many entries in all.
    pub fn size(&self) -> (usize, usize) {
        (self.0.len(), self.0.iter().map(|(_, t)| t.len()).sum())
    }
}

impl Tables {
    /// Tables kept in `dir` as well as in memory (`None`: memory only).
    pub fn new(dir: Option<PathBuf>) -> Tables {
        Tables {
            dir,
            ..Tables::default()
        }
    }

    /// Times every build into `metrics`.
    pub fn with_build_timer(mut self, metrics: Arc<crate::ops::metrics::Metrics>) -> Tables {
        self.metrics = Some(metrics);
        self
    }

    fn cached(&self, id: &TableId) -> Option<Arc<LabelledTable>> {
        lock(&self.cache).get(id).cloned()
    }

    /// The table for `epoch` and `view` on `today` of the signal set as it
    /// is now: from memory, from disk, or built now.
    pub fn get(
        &self,
        store: &Store,
        epoch: Epoch,
        key: &EpochKey,
        view: &View,
        today: Date,
    ) -> Result<Arc<LabelledTable>, StoreError> {
        self.current(store, epoch, key, view, today)
            .map(|t| t.table)
    }

    /// [`Tables::get`], with which table it is: what an `Evaluate`
    /// announces, for its exchange's table calls to be served from.
    pub fn current(
        &self,
        store: &Store,
        epoch: Epoch,
        key: &EpochKey,
        view: &View,
        today: Date,
    ) -> Result<Announced, StoreError> {
        let (table, revision, made) = self.obtain(store, epoch, key, view, today)?;
        if made {
            self.prune(revision, epoch, today);
        }
        Ok(Announced {
            table,
            view: view.clone(),
            day: today.to_julian_day(),
            revision,
        })
    }

    /// Makes (or loads) the table of `view` for an epoch and day still to
    /// come, so that the first exchange of that epoch or day finds it
    /// ready; nothing served now is pruned for it.
    pub fn prepare_ahead(
        &self,
        store: &Store,
        epoch: Epoch,
        key: &EpochKey,
        view: &View,
        day: Date,
    ) -> Result<(), StoreError> {
        self.obtain(store, epoch, key, view, day).map(|_| ())
    }

    /// The table of `view` for `epoch` on `day`, of the signal set as it
    /// is now, with its revision: from memory, or loaded or built now and
    /// installed (then `true`).
    fn obtain(
        &self,
        store: &Store,
        epoch: Epoch,
        key: &EpochKey,
        view: &View,
        day: Date,
    ) -> Result<(Arc<LabelledTable>, u64, bool), StoreError> {
        let id = |revision| TableId {
            epoch: epoch.number(),
            view: view.clone(),
            day: day.to_julian_day(),
            revision,
        };
        let revision = store.revision();
        if let Some(table) = self.cached(&id(revision)) {
            return Ok((table, revision, false));
        }
        let _building = lock(&self.building);
        // Read the signal set again: a change published meanwhile
        // installed its tables before anyone could see it.
        let snapshot = store.snapshot();
        let revision = snapshot.revision();
        let id = id(revision);
        if let Some(table) = self.cached(&id) {
            return Ok((table, revision, false));
        }
        let table = self.load_or_build(store, &snapshot, &id, key)?;
        self.install(Prepared(vec![(id, table.clone())]));
        Ok((table, revision, true))
    }

    /// Makes the tables of `views` for `snapshot` (a change not yet
    /// visible), without serving them: see [`Tables::install`].
    pub fn prepare(
        &self,
        store: &Store,
        snapshot: &Snapshot,
        epoch: Epoch,
        key: &EpochKey,
        views: &[View],
        today: Date,
    ) -> Result<Prepared, StoreError> {
        let mut prepared = Vec::new();
        for view in views {
            let id = TableId {
                epoch: epoch.number(),
                view: view.clone(),
                day: today.to_julian_day(),
                revision: snapshot.revision(),
            };
            let table = match self.cached(&id) {
                Some(table) => table,
                None => self.load_or_build(store, snapshot, &id, key)?,
            };
            prepared.push((id, table));
        }
        Ok(Prepared(prepared))
    }

    /// Puts prepared tables where readers of their revision find them.
    pub fn install(&self, prepared: Prepared) {
        lock(&self.cache).extend(prepared.0);
    }

    /// Drops (from memory and disk) the tables no reader of `revision`,
    /// `epoch` and `today` or later can use: older epochs but the one in
    /// grace, older days, older revisions. Newer revisions stay: they may
    /// belong to a change about to be published.
    pub fn prune(&self, revision: u64, epoch: Epoch, today: Date) {
        let (epoch, day) = (epoch.number(), today.to_julian_day());
        let stale = move |e: u64, d: i32, r: u64| e + 1 < epoch || d < day || r < revision;
        lock(&self.cache).retain(|k, _| !stale(k.epoch, k.day, k.revision));
        self.prune_files(stale);
    }

    fn load_or_build(
        &self,
        store: &Store,
        snapshot: &Snapshot,
        id: &TableId,
        key: &EpochKey,
    ) -> Result<Arc<LabelledTable>, StoreError> {
        let started = Stopwatch::start();
        let epoch = id.epoch;
        if let Some(table) = self.load(id) {
            tracing::info!(
                epoch,
                entries = table.len(),
                ms = started.elapsed().as_millis() as u64,
                "labelled table loaded"
            );
            return Ok(Arc::new(table));
        }
        let today = Date::from_julian_day(id.day).map_err(|e| StoreError::Corrupt {
            tree: "tables",
            id: id.file_name(),
            reason: e.to_string(),
        })?;
        let table = build(store, snapshot, key, &id.view, today)?;
        if let Some(metrics) = &self.metrics {
            metrics.table_build.observe(started.elapsed());
        }
        tracing::info!(
            epoch,
            entries = table.len(),
            ms = started.elapsed().as_millis() as u64,
            "labelled table built"
        );
        self.save(id, &table);
        Ok(Arc::new(table))
    }

    fn load(&self, id: &TableId) -> Option<LabelledTable> {
        let path = self.dir.as_ref()?.join(id.file_name());
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "stored table unreadable; rebuilding");
                return None;
            }
        };
        let header = id.header();
        let Some(body) = bytes.strip_prefix(header.as_bytes()) else {
            tracing::warn!(path = %path.display(), "stored table is for another epoch, day or view; rebuilding");
            return None;
        };
        match LabelledTable::decode(body) {
            Ok(table) => Some(table),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "stored table damaged; rebuilding");
                None
            }
        }
    }

    /// Writes the table beside its final name, syncs, then renames: a
    /// crash leaves the old file or the whole new one. Failing to store
    /// costs only a rebuild after a restart, so it is logged, not fatal.
    fn save(&self, id: &TableId, table: &LabelledTable) {
        let Some(dir) = &self.dir else {
            return;
        };
        let path = dir.join(id.file_name());
        let write = || -> std::io::Result<()> {
            crate::private_files::create_dir(dir)?;
            let tmp = path.with_extension("tmp");
            let mut file = crate::private_files::create_file(&tmp)?;
            file.write_all(id.header().as_bytes())?;
            file.write_all(&table.encode())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        if let Err(e) = write() {
            tracing::warn!(path = %path.display(), error = %e, "could not store the labelled table");
        }
    }

    /// Deletes stored tables for which `stale(epoch, day, revision)` holds,
    /// and leftovers of interrupted writes.
    fn prune_files(&self, stale: impl Fn(u64, i32, u64) -> bool) {
        let Some(dir) = &self.dir else {
            return;
        };
        let Ok(listing) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let remove = name.ends_with(".tmp")
                || parse_file_name(&name).is_some_and(|(e, d, r)| stale(e, d, r));
            if remove {
                if let Err(e) = std::fs::remove_file(entry.path()) {
                    tracing::warn!(file = %name, error = %e, "could not delete a stale table");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pluis_proto::taxonomy::LifeDomain;

    fn epoch(number: u64) -> Epoch {
        Epoch::new(number).unwrap()
    }
    use crate::store::NewSignal;
    use pluis_proto::identifier::SubjectKey;
    use pluis_proto::table::{open_label, Prefix};
    use time::macros::date;

    #[test]
    fn expired_signals_and_hidden_domains_never_reach_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SubjectKey::parse("bsn:111222333", date!(2026 - 11 - 28)).unwrap();
        let signal = |code: &str, domain, expires_on| NewSignal {
            keys: vec![key.clone()],
            signal: code.into(),
            domain,
            registered_on: date!(2026 - 06 - 01),
            expires_on,
            local_ref: None,
        };
        let prepared = vec![
            store
                .prepare(&signal(
                    "weapon_possession",
                    LifeDomain::Safety,
                    date!(2026 - 12 - 01),
                ))
                .unwrap(),
            store
                .prepare(&signal(
                    "exhaustion",
                    LifeDomain::Health,
                    date!(2027 - 06 - 01),
                ))
                .unwrap(),
        ];
        let mut import = store.begin_import(false).unwrap();
        import.write(prepared).unwrap();
        import.commit().unwrap();
        let epoch_key = EpochKey::from_seed(&[3; 32]).unwrap();
        let output = epoch_key
            .evaluate_input(key.canonical().as_bytes())
            .unwrap();
        let flags_on = |today: Date, view: &View| -> Option<Flags> {
            let table = build(&store, &store.snapshot(), &epoch_key, view, today).unwrap();
            let entry = table
                .bucket(&Prefix::all())
                .iter()
                .find(|e| e.tag == tag(&output))?;
            Some(Flags::decode(&open_label(&output, &entry.label).unwrap()).unwrap())
        };
        let all = View::everything();
        let before = flags_on(date!(2026 - 11 - 28), &all).unwrap();
        assert_eq!(
            before.domains,
            [LifeDomain::Safety, LifeDomain::Health].into()
        );
        assert_eq!(before.signals.len(), 2);
        // On its expiry day the safety signal is gone from the table.
        let after = flags_on(date!(2026 - 12 - 01), &all).unwrap();
        assert_eq!(after.domains, [LifeDomain::Health].into());
        // A view without health, at domain granularity, sees only safety,
        // and no signal codes.
        let safety_only = View {
            domains: [LifeDomain::Safety, LifeDomain::Education].into(),
            signals: false,
        };
        let seen = flags_on(date!(2026 - 11 - 28), &safety_only).unwrap();
        assert_eq!(seen.domains, [LifeDomain::Safety].into());
        assert!(seen.signals.is_empty());
        assert!(
            flags_on(date!(2026 - 12 - 01), &safety_only).is_none(),
            "nothing left to show"
        );
    }

    fn one_signal(store: &Store, bsn: &str) {
        let key = SubjectKey::parse(bsn, date!(2026 - 11 - 28)).unwrap();
        let prepared = store
            .prepare(&NewSignal {
                keys: vec![key],
                signal: "truancy".into(),
                domain: LifeDomain::Education,
                registered_on: date!(2026 - 06 - 01),
                expires_on: date!(2027 - 06 - 01),
                local_ref: None,
            })
            .unwrap();
        let mut import = store.begin_import(false).unwrap();
        import.write(vec![prepared]).unwrap();
        import.commit().unwrap();
    }

    #[test]
    fn tables_prepared_for_a_staged_import_are_served_from_its_publication_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        one_signal(&store, "bsn:111222333");
        let key = EpochKey::from_seed(&[5; 32]).unwrap();
        let today = date!(2026 - 11 - 28);
        let view = View::everything();
        let tables = Tables::new(Some(dir.path().join("tables")));
        let old = tables.get(&store, epoch(1), &key, &view, today).unwrap();
        assert_eq!(old.len(), 1);

        let signal = NewSignal {
            keys: vec![SubjectKey::parse("bsn:123456782", today).unwrap()],
            signal: "truancy".into(),
            domain: LifeDomain::Education,
            registered_on: date!(2026 - 06 - 01),
            expires_on: date!(2027 - 06 - 01),
            local_ref: None,
        };
        let mut import = store.begin_import(false).unwrap();
        import.write(vec![store.prepare(&signal).unwrap()]).unwrap();
        let staged = import.stage().unwrap();
        let prepared = tables
            .prepare(
                &store,
                staged.snapshot(),
                epoch(1),
                &key,
                std::slice::from_ref(&view),
                today,
            )
            .unwrap();
        assert_eq!(prepared.size(), (1, 2));
        // Until published, readers get the old table.
        let during = tables.get(&store, epoch(1), &key, &view, today).unwrap();
        assert!(Arc::ptr_eq(&during, &old));
        let new_digest = prepared.0[0].1.digest();
        staged.publish(|| tables.install(prepared)).unwrap();
        let after = tables.get(&store, epoch(1), &key, &view, today).unwrap();
        assert_eq!(
            after.digest(),
            new_digest,
            "the prepared table, not a rebuild"
        );
        assert_eq!(after.len(), 2);
        tables.prune(store.revision(), epoch(1), today);
        assert_eq!(lock(&tables.cache).len(), 1, "the old revision is gone");
    }

    fn stored_files(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn tables_survive_a_restart_and_go_stale_with_the_signal_set() {
        let dir = tempfile::tempdir().unwrap();
        let tables_dir = dir.path().join("tables");
        let store = Store::open(&dir.path().join("data")).unwrap();
        one_signal(&store, "bsn:111222333");
        let key = EpochKey::from_seed(&[5; 32]).unwrap();
        let today = date!(2026 - 11 - 28);
        let view = View::everything();

        let first = Tables::new(Some(tables_dir.clone()))
            .get(&store, epoch(1), &key, &view, today)
            .unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(stored_files(&tables_dir).len(), 1);
        // Labels carry random nonces: the same digest after a "restart"
        // means the table was loaded, not rebuilt.
        let again = Tables::new(Some(tables_dir.clone()))
            .get(&store, epoch(1), &key, &view, today)
            .unwrap();
        assert_eq!(again.digest(), first.digest());
        // Memory-only tables are rebuilt.
        let fresh = Tables::new(None)
            .get(&store, epoch(1), &key, &view, today)
            .unwrap();
        assert_ne!(fresh.digest(), first.digest());

        // A damaged file is rebuilt, not served.
        let file = tables_dir.join(&stored_files(&tables_dir)[0]);
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        let rebuilt = Tables::new(Some(tables_dir.clone()))
            .get(&store, epoch(1), &key, &view, today)
            .unwrap();
        assert_ne!(rebuilt.digest(), first.digest());
        assert_eq!(rebuilt.len(), 1);

        // An import changes the revision: a new table, the old file gone.
        let before = stored_files(&tables_dir);
        one_signal(&store, "bsn:123456782");
        let tables = Tables::new(Some(tables_dir.clone()));
        let after_import = tables.get(&store, epoch(1), &key, &view, today).unwrap();
        assert_eq!(after_import.len(), 2);
        let after = stored_files(&tables_dir);
        assert_eq!(after.len(), 1);
        assert_ne!(after, before);
        // A new epoch keeps the previous one (grace), not the one before.
        tables.get(&store, epoch(2), &key, &view, today).unwrap();
        assert_eq!(stored_files(&tables_dir).len(), 2);
        tables.get(&store, epoch(3), &key, &view, today).unwrap();
        let names = stored_files(&tables_dir);
        assert_eq!(names.len(), 2);
        assert!(names.iter().all(|n| !n.starts_with("e1-")), "{names:?}");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(tables_dir.join(&names[0]))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
