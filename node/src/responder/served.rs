//! The exchanges this node evaluated, and what their table calls took.
//!
//! A `GetTable` call is answered only inside an exchange whose keys this
//! node evaluated for the same peer, purpose and epoch, and never for
//! more buckets than the keys evaluated in it (each charged to the peer's
//! day budget); the whole table, where policy allows it at all, once per
//! exchange. So no sequence of calls reads more of the table than the
//! keys a peer paid for: 65,536 16-bit buckets cost 65,536 evaluated keys.
//!
//! An exchange's table calls are served from the table its last
//! `Evaluate` announced (its size and digest), for [`ANNOUNCED_SECS`]
//! after it: an import published in between does not change what the
//! exchange reads, so a requester that sized its buckets by the announced
//! table gets that table. An erasure, or an import that replaces the
//! signal set, [`ServedExchanges::withdraw_before`] its revision: no
//! exchange is served a table with withdrawn signals after it is
//! published. Past [`ANNOUNCED_SECS`], or for another view or day (a
//! policy reload, midnight), the table as it is now is served.
//!
//! Memory is bounded: an exchange is kept for [`KEEP_SECS`] after its last
//! `Evaluate`, and at most [`MAX_EXCHANGES`] at once (the oldest go first).
//! An announced table is one this node built itself; the exchanges keep
//! at most the tables of the last [`ANNOUNCED_SECS`], whatever a peer asks.

use pluis_proto::exchange::{Epoch, ExchangeId};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use super::tables::Announced;

/// How long an exchange may still fetch buckets after its last `Evaluate`.
pub const KEEP_SECS: u64 = 600;
/// Most exchanges kept at once, over all peers.
pub const MAX_EXCHANGES: usize = 65_536;
/// How long after an `Evaluate` its exchange's table calls are served
/// the table it announced. A requester fetches its buckets right after
/// its `Evaluate`; this only has to outlast that.
pub const ANNOUNCED_SECS: u64 = 30;

type Key = (String, ExchangeId);

#[derive(Debug, Clone)]
struct Served {
    purpose: String,
    epoch: Epoch,
    keys: u64,
    buckets: u64,
    whole: bool,
    last_secs: u64,
    /// The table the last `Evaluate` announced, until when it is served.
    announced: Option<(Announced, u64)>,
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
    /// Until when, and which exchange's, announced tables are kept, in
    /// the order they came (may hold stale ones).
    announced: VecDeque<(u64, Key)>,
    /// Tables of revisions below this hold withdrawn signals.
    floor: u64,
}

impl Inner {
    fn expire(&mut self, now_secs: u64) {
        while let Some((until, _)) = self.announced.front() {
            if *until > now_secs && self.announced.len() <= MAX_EXCHANGES {
                break;
            }
            if let Some((until, key)) = self.announced.pop_front() {
                if let Some(s) = self.exchanges.get_mut(&key) {
                    if s.announced.as_ref().is_some_and(|(_, u)| *u == until) {
                        s.announced = None;
                    }
                }
            }
        }
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

    /// Records `keys` evaluated (and charged) in `peer`'s exchange `id`,
    /// and the table the `Evaluate` announced (none: the peer has no view).
    pub fn evaluated(
        &self,
        of: ExchangeOf<'_>,
        keys: u64,
        announced: Option<Announced>,
        now_secs: u64,
    ) {
        let mut inner = crate::lock(&self.inner);
        let key = of.key();
        let (purpose, epoch) = (of.purpose, of.epoch);
        let until = now_secs.saturating_add(ANNOUNCED_SECS);
        let floor = inner.floor;
        let announced = announced
            .filter(|a| a.revision >= floor)
            .map(|a| (a, until));
        if announced.is_some() {
            inner.announced.push_back((until, key.clone()));
        }
        match inner.exchanges.get_mut(&key) {
            Some(s) if s.purpose == purpose && s.epoch == epoch => {
                s.keys = s.keys.saturating_add(keys);
                s.last_secs = now_secs;
                s.announced = announced;
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
                        announced,
                    },
                );
                inner.order.push_back(key);
            }
        }
        inner.expire(now_secs);
    }

    /// Withdraws every announced table older than `revision`: it holds
    /// signals a change published now erased or replaced.
    pub fn withdraw_before(&self, revision: u64) {
        let mut inner = crate::lock(&self.inner);
        inner.floor = inner.floor.max(revision);
        for served in inner.exchanges.values_mut() {
            if served
                .announced
                .as_ref()
                .is_some_and(|(a, _)| a.revision < revision)
            {
                served.announced = None;
            }
        }
    }

    /// Takes `buckets` buckets (or, with `whole`, the whole table) from
    /// `peer`'s exchange `id`, if it may have them; with the table its
    /// `Evaluate` announced, if that is still kept. Once the exchange may
    /// take no more, its announced table is let go.
    pub fn take(
        &self,
        of: ExchangeOf<'_>,
        buckets: u64,
        whole: bool,
        now_secs: u64,
    ) -> Result<Option<Announced>, Unserved> {
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
            return Ok(served.announced.take().map(|(a, _)| a));
        }
        if served.buckets.saturating_add(buckets) > served.keys {
            return Err(Unserved::TooManyBuckets {
                keys: served.keys,
                served: served.buckets,
                asked: buckets,
            });
        }
        served.buckets += buckets;
        let announced = if served.buckets >= served.keys {
            served.announced.take()
        } else {
            served.announced.clone()
        };
        Ok(announced.map(|(a, _)| a))
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

    /// What `take` gave, by the revision of the announced table.
    fn revision(took: Result<Option<Announced>, Unserved>) -> Result<Option<u64>, Unserved> {
        took.map(|a| a.map(|a| a.revision))
    }

    fn announced(revision: u64) -> Option<Announced> {
        Some(Announced {
            table: std::sync::Arc::new(pluis_proto::table::LabelledTable::new(Vec::new())),
            view: crate::policy::View {
                domains: Default::default(),
                signals: false,
            },
            day: 0,
            revision,
        })
    }

    #[test]
    fn table_calls_get_the_table_their_evaluate_announced_until_it_is_withdrawn_or_old() {
        let served = ServedExchanges::default();
        let (a, b, c) = ([1; 16], [2; 16], [3; 16]);
        served.evaluated(of("school", a, "p", 7), 3, announced(4), 100);
        served.evaluated(of("school", b, "p", 7), 3, announced(4), 100);
        served.evaluated(of("school", c, "p", 7), 3, announced(5), 100);
        assert_eq!(
            revision(served.take(of("school", a, "p", 7), 1, false, 100)),
            Ok(Some(4))
        );
        // Once the exchange may take no more, the table is let go.
        assert_eq!(
            revision(served.take(of("school", a, "p", 7), 2, false, 101)),
            Ok(Some(4))
        );
        served.evaluated(of("school", a, "p", 7), 1, None, 102);
        assert_eq!(
            revision(served.take(of("school", a, "p", 7), 1, false, 102)),
            Ok(None)
        );
        // A whole table takes it too.
        assert_eq!(
            revision(served.take(of("school", b, "p", 7), 0, true, 103)),
            Ok(Some(4))
        );
        assert_eq!(
            revision(served.take(of("school", b, "p", 7), 1, false, 103)),
            Ok(None)
        );
        // An erasure published as revision 5 withdraws revision 4's tables,
        // also ones an Evaluate that read them before it announces later.
        served.evaluated(of("school", b, "p", 7), 1, announced(4), 104);
        served.withdraw_before(5);
        assert_eq!(
            revision(served.take(of("school", b, "p", 7), 1, false, 104)),
            Ok(None)
        );
        served.evaluated(of("school", [4; 16], "p", 7), 1, announced(4), 104);
        assert_eq!(
            revision(served.take(of("school", [4; 16], "p", 7), 1, false, 104)),
            Ok(None)
        );
        assert_eq!(
            revision(served.take(of("school", c, "p", 7), 1, false, 104)),
            Ok(Some(5))
        );
        // Past ANNOUNCED_SECS, the table as it is now.
        assert_eq!(
            revision(served.take(of("school", c, "p", 7), 1, false, 100 + ANNOUNCED_SECS)),
            Ok(None)
        );
        let inner = crate::lock(&served.inner);
        assert!(
            inner.exchanges.values().all(|s| s.announced.is_none()),
            "every table let go"
        );
    }

    #[test]
    fn buckets_are_served_only_within_an_evaluated_exchange_and_never_more_than_its_keys() {
        let served = ServedExchanges::default();
        let id = [1; 16];
        assert_eq!(
            revision(served.take(of("school", id, "p", 7), 1, false, 100)),
            Err(Unserved::Unknown)
        );
        served.evaluated(of("school", id, "p", 7), 3, None, 100);
        assert_eq!(
            revision(served.take(of("police", id, "p", 7), 1, false, 100)),
            Err(Unserved::Unknown),
            "another peer's exchange"
        );
        assert_eq!(
            revision(served.take(of("school", id, "q", 7), 1, false, 100)),
            Err(Unserved::Mismatch("purpose"))
        );
        assert_eq!(
            revision(served.take(of("school", id, "p", 8), 1, false, 100)),
            Err(Unserved::Mismatch("epoch"))
        );
        assert_eq!(
            revision(served.take(of("school", id, "p", 7), 2, false, 100)),
            Ok(None)
        );
        assert!(matches!(
            revision(served.take(of("school", id, "p", 7), 2, false, 100)),
            Err(Unserved::TooManyBuckets {
                keys: 3,
                served: 2,
                asked: 2
            })
        ));
        assert_eq!(
            revision(served.take(of("school", id, "p", 7), 1, false, 100)),
            Ok(None)
        );
        // Another batch of the same exchange adds keys.
        served.evaluated(of("school", id, "p", 7), 1, None, 200);
        assert_eq!(
            revision(served.take(of("school", id, "p", 7), 1, false, 200)),
            Ok(None)
        );
        assert_eq!(
            revision(served.take(of("school", id, "p", 7), 0, true, 200)),
            Ok(None)
        );
        assert_eq!(
            revision(served.take(of("school", id, "p", 7), 0, true, 200)),
            Err(Unserved::WholeAgain)
        );
        assert_eq!(
            revision(served.take(of("school", id, "p", 7), 0, true, 200 + KEEP_SECS)),
            Err(Unserved::Unknown),
            "too old"
        );
    }

    #[test]
    fn an_exchange_keeps_its_purpose_and_epoch() {
        let served = ServedExchanges::default();
        served.evaluated(of("school", [2; 16], "p", 7), 1, None, 0);
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
            served.evaluated(of("school", id, "p", 7), 1, None, 0);
        }
        assert!(crate::lock(&served.inner).exchanges.len() <= MAX_EXCHANGES);
        assert_eq!(
            revision(served.take(of("school", [0; 16], "p", 7), 1, false, 0)),
            Err(Unserved::Unknown),
            "the oldest went first"
        );
    }
}
