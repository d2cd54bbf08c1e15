//! OPRF keys per epoch, and their rotation.
//!
//! Time is cut into epochs of a configured length (default 24 h), counted
//! from the Unix epoch. The key of the current epoch is made from the OS
//! RNG the first time it is needed, stored sealed, and logged; the previous
//! epoch's key keeps answering for a grace period (so a query blinded just
//! before a rotation still completes), then is destroyed. Keys of epochs
//! that are neither current nor in grace are never served.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pluis_proto::exchange::Epoch;
use pluis_proto::oprf::EpochKey;

use crate::store::{Store, StoreError};

/// Why no key could be given.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    /// The epoch is neither current nor in its grace period.
    #[error("epoch {requested} is not served (current epoch is {current})")]
    NotServed {
        /// What was asked.
        requested: Epoch,
        /// The current epoch.
        current: Epoch,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key derivation failed.
    #[error("epoch key derivation failed")]
    Derive,
}

/// The node's epoch keys.
#[derive(Debug)]
pub struct Epochs {
    store: Arc<Store>,
    length_secs: u64,
    grace_secs: u64,
    keys: Mutex<BTreeMap<Epoch, Arc<EpochKey>>>,
}

impl Epochs {
    /// Epochs of `length_secs` (at least 1), the previous one kept for
    /// `grace_secs`.
    pub fn new(store: Arc<Store>, length_secs: u64, grace_secs: u64) -> Epochs {
        Epochs {
            store,
            length_secs: length_secs.max(1),
            grace_secs,
            keys: Mutex::new(BTreeMap::new()),
        }
    }

    /// The epoch at `now` (seconds since the Unix epoch). Epoch numbers
    /// start at 1: the wire's 0 means "the current one".
    pub fn current(&self, now: u64) -> Epoch {
        let number = (now / self.length_secs).saturating_add(1);
        // A number of at least 1 is an epoch.
        Epoch::new(number).unwrap_or_else(|| unreachable!("epoch numbers start at 1"))
    }

    /// Seconds from `now` to the start of the next epoch.
    pub fn secs_to_next(&self, now: u64) -> u64 {
        self.length_secs - now % self.length_secs
    }

    /// The length of an epoch, in seconds.
    pub fn length_secs(&self) -> u64 {
        self.length_secs
    }

    /// The next epoch's key, made now if need be (stored sealed and
    /// logged like any new key), so that its tables can be built before
    /// it starts. It is not served before then: [`Epochs::key`] serves
    /// only the current epoch and the previous one in its grace.
    pub fn next_key(&self, now: u64) -> Result<(Epoch, Arc<EpochKey>), EpochError> {
        let next = self.current(now).next();
        if let Some(key) = crate::lock(&self.keys).get(&next) {
            return Ok((next, key.clone()));
        }
        let seed = self
            .store
            .epoch_seed(next.number(), true)?
            .ok_or(EpochError::Derive)?;
        let key = Arc::new(EpochKey::from_seed(&seed).map_err(|_| EpochError::Derive)?);
        crate::lock(&self.keys).insert(next, key.clone());
        tracing::info!(epoch = next.number(), "the next epoch's OPRF key is ready");
        Ok((next, key))
    }

    /// The key for `requested` (`None`: the current epoch) at `now`.
    pub fn key(
        &self,
        requested: Option<Epoch>,
        now: u64,
    ) -> Result<(Epoch, Arc<EpochKey>), EpochError> {
        let current = self.current(now);
        let epoch = requested.unwrap_or(current);
        let grace_ends = (current.number() - 1) * self.length_secs + self.grace_secs;
        let mut keys = crate::lock(&self.keys);
        // Forget and destroy what is past its grace.
        let oldest_served = match current.previous() {
            Some(previous) if now < grace_ends => previous,
            _ => current,
        };
        keys.retain(|e, _| *e >= oldest_served);
        let destroyed = self.store.destroy_epochs_before(oldest_served.number())?;
        if destroyed > 0 {
            tracing::info!(
                destroyed,
                before_epoch = oldest_served.number(),
                "epoch keys destroyed after their grace period"
            );
        }
        let in_grace = epoch.next() == current && now < grace_ends;
        if epoch != current && !in_grace {
            return Err(EpochError::NotServed {
                requested: epoch,
                current,
            });
        }
        if let Some(key) = keys.get(&epoch) {
            return Ok((epoch, key.clone()));
        }
        let existed = self.store.epoch_seed(epoch.number(), false)?;
        let seed = match existed {
            Some(seed) => seed,
            None if epoch == current => {
                let seed = self
                    .store
                    .epoch_seed(epoch.number(), true)?
                    .ok_or(EpochError::Derive)?;
                tracing::info!(
                    epoch = epoch.number(),
                    "epoch key rotated: a new OPRF key is in use"
                );
                seed
            }
            None => {
                return Err(EpochError::NotServed {
                    requested: epoch,
                    current,
                })
            }
        };
        let key = Arc::new(EpochKey::from_seed(&seed).map_err(|_| EpochError::Derive)?);
        keys.insert(epoch, key.clone());
        Ok((epoch, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_epoch_is_served_only_within_its_grace() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let epochs = Epochs::new(store, 100, 10);
        let (e1, k1) = epochs.key(None, 150).unwrap();
        assert_eq!(e1.number(), 2);
        let probe = k1.evaluate_input(b"x").unwrap();
        // Rotation at 200: epoch 3 is current, epoch 2 still served until 210.
        let (e2, k2) = epochs.key(None, 205).unwrap();
        assert_eq!(e2.number(), 3);
        assert_ne!(k2.evaluate_input(b"x").unwrap(), probe);
        let (_, again) = epochs.key(Some(e1), 205).unwrap();
        assert_eq!(
            again.evaluate_input(b"x").unwrap(),
            probe,
            "same key in grace"
        );
        let err = epochs.key(Some(e1), 215).unwrap_err().to_string();
        assert!(err.contains("epoch 2 is not served"), "{err}");
        // And it is gone from disk, not only from memory.
        assert!(epochs
            .store
            .epoch_seed(e1.number(), false)
            .unwrap()
            .is_none());
        assert!(
            epochs.key(Epoch::new(7), 215).is_err(),
            "future epochs are not served"
        );
    }

    #[test]
    fn the_next_epochs_key_is_made_ahead_and_served_only_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let epochs = Epochs::new(store, 100, 10);
        assert_eq!(epochs.secs_to_next(150), 50);
        let (next, ahead) = epochs.next_key(150).unwrap();
        assert_eq!(next.number(), 3);
        assert!(
            epochs.key(Some(next), 150).is_err(),
            "not served before it starts"
        );
        let (current, key) = epochs.key(None, 200).unwrap();
        assert_eq!(current, next);
        assert_eq!(
            key.evaluate_input(b"x").unwrap(),
            ahead.evaluate_input(b"x").unwrap(),
            "the key made ahead is the one served"
        );
    }
}
