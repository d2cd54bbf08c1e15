//! Building and caching this node's labelled tables, one per (epoch,
//! policy view).
//!
//! For every key of every active signal the node holds, the flags a view
//! allows (its domains; signal codes and registration months at signal
//! granularity) are sealed under that key's OPRF output. Keys are
//! evaluated in parallel over all cores. Tables live in memory for the
//! epoch: imports happen while the node is stopped, so a table only goes
//! stale with the epoch, and expiry is re-checked by date.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use pluis_proto::oprf::EpochKey;
use pluis_proto::table::{seal_label, tag, Flags, LabelledTable, SignalFlag, TableEntry};
use pluis_proto::taxonomy::LifeDomain;
use rayon::prelude::*;
use ring::rand::SystemRandom;
use time::Date;

use crate::policy::{Granularity, PeerPolicy};
use crate::store::{SignalId, SignalRecord, Store, StoreError};

/// What a requester may see: which domains, and whether signals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct View {
    /// Visible domains.
    pub domains: BTreeSet<LifeDomain>,
    /// Whether signal codes and months are included.
    pub signals: bool,
}

impl View {
    /// The view a peer's policy grants.
    pub fn of(policy: &PeerPolicy) -> View {
        View {
            domains: policy.domains.clone(),
            signals: policy.granularity == Granularity::Signal,
        }
    }

    /// Everything (this node's own coordinators looking at its own data).
    pub fn everything() -> View {
        View {
            domains: LifeDomain::ALL.into_iter().collect(),
            signals: true,
        }
    }
}

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

/// Builds the table of `view` under `key` from the active signals on `today`.
pub fn build(
    store: &Store,
    key: &EpochKey,
    view: &View,
    today: Date,
) -> Result<LabelledTable, StoreError> {
    let mut records: Vec<(SignalId, SignalRecord)> = Vec::new();
    store.for_each_signal(|id, record| {
        if !record.expired_on(today) && view.domains.contains(&record.domain) {
            records.push((*id, record.clone()));
        }
    })?;
    let opened: Vec<(Vec<String>, &SignalRecord)> = records
        .par_iter()
        .map(|(id, record)| store.open_keys(id, record).map(|keys| (keys, record)))
        .collect::<Result<_, _>>()?;
    let mut per_key: HashMap<String, Flags> = HashMap::new();
    for (keys, record) in opened {
        for k in keys {
            add_flags(per_key.entry(k).or_default(), record, view);
        }
    }
    let rng = SystemRandom::new();
    let entries: Vec<TableEntry> = per_key
        .into_par_iter()
        .filter_map(|(k, mut flags)| {
            flags.signals.sort();
            flags.signals.dedup();
            let output = key.evaluate_input(k.as_bytes()).ok()?;
            let label = seal_label(&output, &flags.encode(), &rng).ok()?;
            Some(TableEntry {
                tag: tag(&output),
                label,
            })
        })
        .collect();
    Ok(LabelledTable::new(entries))
}

/// Tables built so far, per (epoch, view, day).
#[derive(Debug, Default)]
pub struct Tables {
    cache: Mutex<HashMap<(u64, View, i32), Arc<LabelledTable>>>,
}

impl Tables {
    /// The table for `epoch` and `view`, built on first use.
    pub fn get(
        &self,
        store: &Store,
        epoch: u64,
        key: &EpochKey,
        view: &View,
        today: Date,
    ) -> Result<Arc<LabelledTable>, StoreError> {
        let id = (epoch, view.clone(), today.to_julian_day());
        if let Some(table) = self.lock().get(&id) {
            return Ok(table.clone());
        }
        let started = std::time::Instant::now();
        let table = Arc::new(build(store, key, view, today)?);
        tracing::info!(
            epoch,
            entries = table.len(),
            ms = started.elapsed().as_millis() as u64,
            "labelled table built"
        );
        let mut cache = self.lock();
        // Older epochs and days are of no further use.
        cache.retain(|(e, _, d), _| *e + 1 >= epoch && *d >= id.2);
        cache.insert(id, table.clone());
        Ok(table)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, View, i32), Arc<LabelledTable>>> {
        match self.cache.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            let table = build(&store, &epoch_key, view, today).unwrap();
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
}
