//! The exchanges this node evaluated, and what their table calls took.
//!
//! A `GetTable` call is answered only inside an exchange whose keys this
//! node evaluated for the same peer, purpose and epoch, and never for
//! more buckets than the keys evaluated in it (each charged to the peer's
//! day budget); the whole table, where policy allows it at all, once per
//! exchange. So no sequence of calls reads more of the table than the
//! keys a peer paid for: 65,536 16-bit buckets cost 65,536 evaluated keys.
//!
//! Memory is bounded: an exchange is kept for [`KEEP_SECS`] after its last
//! `Evaluate`, and at most [`MAX_EXCHANGES`] at once (the oldest go first).

use pluis_proto::exchange::{Epoch, ExchangeId};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// How long an exchange may still fetch buckets after its last `Evaluate`.
pub const KEEP_SECS: u64 = 600;
/// Most exchanges kept at once, over all peers.
pub const MAX_EXCHANGES: usize = 65_536;

type Key = (String, ExchangeId);

#[derive(Debug, Clone)]
struct Served {
    purpose: String,
    epoch: Epoch,
    keys: u64,
    buckets: u64,
    whole: bool,
    last_secs: u64,
}

/// Why a table call is not part of an exchange that may have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unserved {
    /// No `Evaluate` of this exchange (or it is too old).
    Unknown,
    /// The exchange was for another purpose or epoch.
    Mismatch(&'static str),
    /// More buckets than keys evaluated.
    TooManyBuckets {
        /// Keys evaluated in the exchange.
        keys: u64,
        /// Buckets already served.
        served: u64,
        /// Buckets asked for now.
        asked: u64,
    },
    /// The whole table was already served in this exchange.
    WholeAgain,
}

impl std::fmt::Display for Unserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unserved::Unknown => write!(
                f,
                "table calls must follow an Evaluate of the same exchange (within {KEEP_SECS} s)"
            ),
            Unserved::Mismatch(what) => {
                write!(f, "the exchange was evaluated for another {what}")
            }
            Unserved::TooManyBuckets {
                keys,
                served,
                asked,
            } => write!(
                f,
                "{asked} buckets asked with {served} served; the exchange evaluated {keys} keys, and no more buckets than keys are served"
            ),
            Unserved::WholeAgain => {
                write!(f, "the whole table was already served in this exchange")
            }
        }
    }
}

/// One peer's exchange, as a call names it.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeOf<'a> {
    /// The peer's org.
    pub peer: &'a str,
    /// The exchange id.
    pub id: ExchangeId,
    /// The purpose it asks for.
    pub purpose: &'a str,
    /// The epoch whose key evaluates it.
    pub epoch: Epoch,
}

impl ExchangeOf<'_> {
    fn key(&self) -> Key {
        (self.peer.to_owned(), self.id)
    }
}

/// The exchanges evaluated recently.
#[derive(Debug, Default)]
pub struct ServedExchanges {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    exchanges: BTreeMap<Key, Served>,
    /// Keys in the order they came, for eviction (may hold stale ones).
    order: VecDeque<Key>,
}

impl Inner {
    fn expire(&mut self, now_secs: u64) {
        while let Some(oldest) = self.order.front() {
            let stale = match self.exchanges.get(oldest) {
                None => true,
                Some(s) => {
                    self.exchanges.len() > MAX_EXCHANGES || s.last_secs + KEEP_SECS <= now_secs
                }
            };
            if !stale {
                break;
            }
            if let Some(key) = self.order.pop_front() {
                self.exchanges.remove(&key);
            }
        }
    }
}

impl ServedExchanges {
    /// Whether `peer` may evaluate keys in exchange `id` for `purpose`
    /// in `epoch`: a new exchange, or one of the same purpose and epoch.
    pub fn may_evaluate(&self, of: ExchangeOf<'_>) -> Result<(), Unserved> {
        let inner = crate::lock(&self.inner);
        match inner.exchanges.get(&of.key()) {
            None => Ok(()),
            Some(s) if s.purpose != of.purpose => Err(Unserved::Mismatch("purpose")),
            Some(s) if s.epoch != of.epoch => Err(Unserved::Mismatch("epoch")),
            Some(_) => Ok(()),
        }
    }

    /// Records `keys` evaluated (and charged) in `peer`'s exchange `id`.
    pub fn evaluated(&self, of: ExchangeOf<'_>, keys: u64, now_secs: u64) {
        let mut inner = crate::lock(&self.inner);
        let key = of.key();
        let (purpose, epoch) = (of.purpose, of.epoch);
        match inner.exchanges.get_mut(&key) {
            Some(s) if s.purpose == purpose && s.epoch == epoch => {
                s.keys = s.keys.saturating_add(keys);
                s.last_secs = now_secs;
            }
            _ => {
                inner.exchanges.insert(
                    key.clone(),
                    Served {
                        purpose: purpose.to_owned(),
                        epoch,
                        keys,
                        buckets: 0,
                        whole: false,
                        last_secs: now_secs,
                    },
                );
                inner.order.push_back(key);
            }
        }
        inner.expire(now_secs);
    }

    /// Takes `buckets` buckets (or, with `whole`, the whole table) from
    /// `peer`'s exchange `id`, if it may have them.
    pub fn take(
        &self,
        of: ExchangeOf<'_>,
        buckets: u64,
        whole: bool,
        now_secs: u64,
    ) -> Result<(), Unserved> {
        let mut inner = crate::lock(&self.inner);
        inner.expire(now_secs);
        let served = inner
            .exchanges
            .get_mut(&of.key())
            .ok_or(Unserved::Unknown)?;
        if served.purpose != of.purpose {
            return Err(Unserved::Mismatch("purpose"));
        }
        if served.epoch != of.epoch {
            return Err(Unserved::Mismatch("epoch"));
        }
        if whole {
            if served.whole {
                return Err(Unserved::WholeAgain);
            }
            served.whole = true;
            return Ok(());
        }
        if served.buckets.saturating_add(buckets) > served.keys {
            return Err(Unserved::TooManyBuckets {
                keys: served.keys,
                served: served.buckets,
                asked: buckets,
            });
        }
        served.buckets += buckets;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(
        peer: &'static str,
        id: [u8; 16],
        purpose: &'static str,
        epoch: u64,
    ) -> ExchangeOf<'static> {
        ExchangeOf {
            peer,
            id: ExchangeId::from(id),
            purpose,
            epoch: Epoch::new(epoch).unwrap(),
        }
    }

    #[test]
    fn buckets_are_served_only_within_an_evaluated_exchange_and_never_more_than_its_keys() {
        let served = ServedExchanges::default();
        let id = [1; 16];
        assert_eq!(
            served.take(of("school", id, "p", 7), 1, false, 100),
            Err(Unserved::Unknown)
        );
        served.evaluated(of("school", id, "p", 7), 3, 100);
        assert_eq!(
            served.take(of("police", id, "p", 7), 1, false, 100),
            Err(Unserved::Unknown),
            "another peer's exchange"
        );
        assert_eq!(
            served.take(of("school", id, "q", 7), 1, false, 100),
            Err(Unserved::Mismatch("purpose"))
        );
        assert_eq!(
            served.take(of("school", id, "p", 8), 1, false, 100),
            Err(Unserved::Mismatch("epoch"))
        );
        assert_eq!(served.take(of("school", id, "p", 7), 2, false, 100), Ok(()));
        assert!(matches!(
            served.take(of("school", id, "p", 7), 2, false, 100),
            Err(Unserved::TooManyBuckets {
                keys: 3,
                served: 2,
                asked: 2
            })
        ));
        assert_eq!(served.take(of("school", id, "p", 7), 1, false, 100), Ok(()));
        // Another batch of the same exchange adds keys.
        served.evaluated(of("school", id, "p", 7), 1, 200);
        assert_eq!(served.take(of("school", id, "p", 7), 1, false, 200), Ok(()));
        assert_eq!(served.take(of("school", id, "p", 7), 0, true, 200), Ok(()));
        assert_eq!(
            served.take(of("school", id, "p", 7), 0, true, 200),
            Err(Unserved::WholeAgain)
        );
        assert_eq!(
            served.take(of("school", id, "p", 7), 0, true, 200 + KEEP_SECS),
            Err(Unserved::Unknown),
            "too old"
        );
    }

    #[test]
    fn an_exchange_keeps_its_purpose_and_epoch() {
        let served = ServedExchanges::default();
        served.evaluated(of("school", [2; 16], "p", 7), 1, 0);
        assert!(served.may_evaluate(of("school", [2; 16], "p", 7)).is_ok());
        assert!(served.may_evaluate(of("school", [2; 16], "q", 7)).is_err());
        assert!(served.may_evaluate(of("school", [2; 16], "p", 8)).is_err());
        assert!(served.may_evaluate(of("school", [3; 16], "q", 8)).is_ok());
    }

    #[test]
    fn memory_is_bounded_by_evicting_the_oldest() {
        let served = ServedExchanges::default();
        for i in 0..(MAX_EXCHANGES + 10) as u32 {
            let mut id = [0; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            served.evaluated(of("school", id, "p", 7), 1, 0);
        }
        assert!(crate::lock(&served.inner).exchanges.len() <= MAX_EXCHANGES);
        assert_eq!(
            served.take(of("school", [0; 16], "p", 7), 1, false, 0),
            Err(Unserved::Unknown),
            "the oldest went first"
        );
    }
}
