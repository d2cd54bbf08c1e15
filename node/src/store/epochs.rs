//! The epochs' OPRF key seeds: made once per epoch from the OS RNG,
//! sealed under the storage key in `meta` (`epoch/` and the epoch number),
//! each made in one batch with its `key rotation` audit entry, and
//! destroyed once the epoch's grace period is over.

use super::ledger::LedgerBatch;
use super::{Store, StoreError};

pub(super) const EPOCH: &[u8] = b"epoch/";

pub(super) fn epoch_key(epoch: u64) -> Vec<u8> {
    [EPOCH, &epoch.to_be_bytes()].concat()
}

impl Store {
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
            time_unix_ms: self.now_ms(),
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
}

#[cfg(test)]
mod tests {
    use crate::store::tests::reopen;
    use crate::store::Store;

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
}
