//! Re-keying a store written before a change to how names are normalised.
//!
//! Key format 2 added the pre-fold table (`ı`, `đ`, `ß`, … written as
//! registers without them write them) and unglued particles
//! (`Vandenberg` as `van den Berg`). A store written before holds some
//! keys in the old form: its labelled tables re-read them (so partners
//! find those persons), but its own index would not find them under
//! today's form. At the first open after the upgrade every stored key is
//! read again; where any reads differently, the whole signal set is
//! written again as one replace import (one atomic switch, logged as an
//! import by `pluis-node (re-key)`), and the store is marked current.

use time::Date;

use super::{read_u64, NewSignal, Store, StoreError};
use pluis_proto::hex;

/// The key format this version writes.
pub const KEY_FORMAT: u64 = 2;
/// Key in `meta`: the key format the stored keys are in (absent: 1).
const META_KEY_FORMAT: &[u8] = b"key_format";

/// Marks `store`'s keys as in the current format.
pub(super) fn mark_current(store: &Store) -> Result<(), StoreError> {
    store
        .meta
        .insert(META_KEY_FORMAT, &KEY_FORMAT.to_be_bytes())
        .map_err(|e| store.sled(e))?;
    store.db.flush().map_err(|e| store.sled(e))?;
    Ok(())
}

impl Store {
    /// Re-keys a store of an older key format (see the module); returns
    /// how many stored keys read differently (0: nothing rewritten).
    pub(super) fn rekey(&self) -> Result<usize, StoreError> {
        let format = read_u64(self.meta.get(META_KEY_FORMAT).map_err(|e| self.sled(e))?);
        if format >= KEY_FORMAT {
            return Ok(0);
        }
        let snapshot = self.snapshot();
        let mut records = Vec::new();
        self.for_each_signal_in(&snapshot, |id, record| records.push((*id, record.clone())))?;
        let mut signals = Vec::with_capacity(records.len());
        let mut changed = 0usize;
        for (id, record) in &records {
            let corrupt = |reason: &str| StoreError::Corrupt {
                tree: "signals",
                id: hex(id),
                reason: reason.to_owned(),
            };
            let mut keys = Vec::new();
            for key in self.read_keys(id, record)? {
                let read = key
                    .read
                    .ok_or_else(|| corrupt("a stored key does not read as a key"))?;
                changed += usize::from(read.canonical() != key.stored);
                keys.push(read);
            }
            let day =
                |julian| Date::from_julian_day(julian).map_err(|_| corrupt("a date out of range"));
            signals.push(NewSignal {
                keys,
                signal: record.signal.clone(),
                domain: record.domain,
                registered_on: day(record.registered_on)?,
                expires_on: day(record.expires_on)?,
                local_ref: self.open_local_ref(id, record)?,
            });
        }
        if changed > 0 {
            let prepared = signals
                .iter()
                .map(|s| self.prepare(s))
                .collect::<Result<Vec<_>, _>>()?;
            let mut import = self.begin_import(true)?;
            import.set_actor("pluis-node (re-key to key format 2)");
            import.write(prepared)?;
            import.commit()?;
            tracing::info!(keys = changed, "stored keys re-keyed to key format 2");
        }
        mark_current(self)?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{reopen, TODAY};
    use pluis_proto::identifier::SubjectKey;
    use pluis_proto::taxonomy::LifeDomain;

    #[test]
    fn a_store_of_the_old_key_format_is_rekeyed_once_and_finds_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let new_form = |text: &str| SubjectKey::parse(text, TODAY).unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let signal = NewSignal {
                keys: vec![new_form("nd:Đorđević,A,2012-03-04")],
                signal: "frequent_absence".into(),
                domain: LifeDomain::Education,
                registered_on: TODAY,
                expires_on: TODAY + time::Duration::days(400),
                local_ref: Some("S-1".into()),
            };
            // As version 1 folded it: NFKD leaves đ alone.
            let old = "nd:đorđevic,a,2012-03-04".to_owned();
            let prepared = store
                .prepare_as(&signal, vec![old.clone()], std::slice::from_ref(&old))
                .unwrap();
            let mut import = store.begin_import(false).unwrap();
            import.write(vec![prepared]).unwrap();
            import.commit().unwrap();
            store.meta.remove(META_KEY_FORMAT).unwrap();
            store.flush().unwrap();
            assert!(
                store
                    .records_for_key(&new_form("nd:Djordjevic,A,2012-03-04"))
                    .unwrap()
                    .is_empty(),
                "the old form is not found under today's"
            );
        }
        let store = reopen(dir.path()).unwrap();
        let found = store
            .records_for_key(&new_form("nd:Djordjevic,A,2012-03-04"))
            .unwrap();
        assert_eq!(found.len(), 1, "re-keyed at open");
        assert_eq!(store.len(), 1);
        let entries = store.audit_entries(0, 100).unwrap();
        let rekeyed = entries.iter().any(|(_, bytes)| {
            use prost::Message;
            let e = pluis_proto::pb::AuditEntry::decode(bytes.as_slice()).unwrap();
            e.actor.contains("re-key") && e.kind() == pluis_proto::pb::audit_entry::Kind::Import
        });
        assert!(rekeyed, "the re-key is logged as an import");
        // Once: a further open rewrites nothing.
        drop(store);
        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.rekey().unwrap(), 0);
        assert_eq!(store.audit_entries(0, 100).unwrap().len(), entries.len());
    }
}
