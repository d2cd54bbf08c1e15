//! The exchange's nouns as types: its id, and the epoch of the
//! responder's OPRF key. On the wire both are plain bytes and numbers
//! (`bytes exchange_id`, `uint64 epoch` where 0 means "the current one");
//! inside, an id is always 16 bytes and an epoch never 0.

use std::num::NonZeroU64;

use ring::rand::{SecureRandom, SystemRandom};

/// An exchange's id: 16 random bytes the requester chooses; both sides
/// log it, and the receipt signs it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeId([u8; ExchangeId::LEN]);

impl ExchangeId {
    /// Its length in bytes.
    pub const LEN: usize = 16;

    /// A fresh random id. Without an OS RNG nothing else works either (the
    /// blinding that follows fails); a zero id is still logged as such.
    pub fn random() -> ExchangeId {
        let mut id = [0u8; ExchangeId::LEN];
        let _ = SystemRandom::new().fill(&mut id);
        ExchangeId(id)
    }

    /// The id a request carries, if it is 16 bytes.
    pub fn from_wire(bytes: &[u8]) -> Option<ExchangeId> {
        bytes.try_into().ok().map(ExchangeId)
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8; ExchangeId::LEN] {
        &self.0
    }

    /// Its bytes, for a message.
    pub fn to_vec(self) -> Vec<u8> {
        self.0.to_vec()
    }
}

impl From<[u8; ExchangeId::LEN]> for ExchangeId {
    fn from(bytes: [u8; ExchangeId::LEN]) -> Self {
        ExchangeId(bytes)
    }
}

impl std::fmt::Display for ExchangeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::hex(&self.0))
    }
}

impl std::fmt::Debug for ExchangeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExchangeId({self})")
    }
}

/// An epoch of a responder's OPRF keys: time cut into epochs of its
/// configured length, numbered from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(NonZeroU64);

impl Epoch {
    /// Epoch `number`; there is no epoch 0.
    pub fn new(number: u64) -> Option<Epoch> {
        NonZeroU64::new(number).map(Epoch)
    }

    /// The epoch a request asks for: `None` (the wire's 0) for the
    /// responder's current one.
    pub fn asked(wire: u64) -> Option<Epoch> {
        Epoch::new(wire)
    }

    /// `asked` as the wire carries it.
    pub fn to_wire(asked: Option<Epoch>) -> u64 {
        asked.map_or(0, Epoch::number)
    }

    /// Its number.
    pub fn number(self) -> u64 {
        self.0.get()
    }

    /// The epoch after this one.
    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }

    /// The epoch before this one, if there is one.
    pub fn previous(self) -> Option<Epoch> {
        Epoch::new(self.number() - 1)
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wires_zero_is_the_current_epoch_and_never_an_epoch() {
        assert_eq!(Epoch::asked(0), None);
        assert_eq!(Epoch::asked(7).map(Epoch::number), Some(7));
        assert_eq!(Epoch::to_wire(None), 0);
        assert_eq!(Epoch::to_wire(Epoch::new(7)), 7);
        assert_eq!(Epoch::new(1).and_then(Epoch::previous), None);
        assert_eq!(Epoch::new(7).map(|e| e.next().number()), Some(8));
    }

    #[test]
    fn an_exchange_id_is_exactly_sixteen_bytes() {
        assert!(ExchangeId::from_wire(&[1; 15]).is_none());
        assert!(ExchangeId::from_wire(&[1; 17]).is_none());
        let id = ExchangeId::from_wire(&[0xab; 16]).unwrap();
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_ne!(ExchangeId::random(), ExchangeId::random());
    }
}
