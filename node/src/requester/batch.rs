//! Case queries to one partner, merged while an exchange with it runs.
//!
//! A case query asks every partner about a handful of keys. Under load
//! that is many small exchanges, and each costs the partner a durable log
//! append (an fsync it must finish before it answers) and a signed
//! receipt, and both sides a round trip and log entries. So at most one
//! case-query exchange per partner, purpose and legal basis runs at a
//! time; queries that arrive meanwhile wait and go together in the next
//! one. There is no timer: a query that finds nothing running is asked at
//! once, on its own task, so an idle node answers as fast as before.
//!
//! A merged exchange is an ordinary exchange: one purpose and legal
//! basis, logged once on each side, charged for its distinct keys. It
//! never holds more keys than the partner's `max_keys_per_request` (as
//! its last answer said; until then, one query per exchange). Each query
//! gets back only its own keys' flags and the id of the exchange it rode
//! on, which its own log entry names. If the partner refuses a merged
//! exchange (its day budget, say), each query is asked again on its own,
//! so merging never turns a query away that would have been answered.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pluis_proto::pb::peer_outcome::State;
use pluis_proto::table::Flags;
use tokio::sync::oneshot;

use crate::lock;
use crate::policy::Purpose;
use crate::requester::exchange::{ask_peer, Asker, Fetch, PeerAnswer};

/// The waiting case queries to one partner, per purpose and legal basis.
#[derive(Clone, Default)]
pub struct Batches(Arc<Mutex<HashMap<Slot, Queue>>>);

impl Batches {
    /// How many case-query exchanges with this partner run now, and how
    /// many case queries wait for the next one (over all purposes).
    pub fn load(&self) -> (u64, u64) {
        let queues = lock(&self.0);
        let running = queues.values().filter(|q| q.running).count() as u64;
        let waiting = queues.values().map(|q| q.waiting.len() as u64).sum();
        (running, waiting)
    }
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batches")
    }
}

/// Purpose name and legal basis: only queries under both merge.
type Slot = (String, String);

#[derive(Default)]
struct Queue {
    /// Whether an exchange (and the task that drives the queue) runs.
    running: bool,
    waiting: VecDeque<Waiter>,
    /// The partner's `max_keys_per_request`, from its last answer; 0
    /// until it has answered.
    limit: u64,
}

/// One case query's keys, and where its answer goes.
struct Waiter {
    keys: Arc<[String]>,
    reply: oneshot::Sender<PeerAnswer>,
}

impl Queue {
    /// The next exchange's queries: the first waiting one, and as many
    /// after it as fit under the partner's limit together. Queries
    /// whose caller stopped waiting are dropped.
    fn next_batch(&mut self) -> Vec<Waiter> {
        let mut batch: Vec<Waiter> = Vec::new();
        let mut keys = 0u64;
        while let Some(next) = self.waiting.pop_front() {
            if next.reply.is_closed() {
                continue;
            }
            let more = next.keys.len() as u64;
            if !batch.is_empty() && keys + more > self.limit {
                self.waiting.push_front(next);
                break;
            }
            keys += more;
            batch.push(next);
        }
        batch
    }
}

/// Asks the partner about `keys` for `purpose` (reading table buckets,
/// as a case query does), in the next exchange with it; waits at most
/// `deadline` in all.
pub async fn ask(
    asker: Asker,
    batches: Batches,
    purpose: &Purpose,
    keys: Arc<[String]>,
    deadline: Duration,
) -> PeerAnswer {
    let slot: Slot = (purpose.name.clone(), purpose.legal_basis.clone());
    let (reply, answer) = oneshot::channel();
    let idle = {
        let mut queues = lock(&batches.0);
        let queue = queues.entry(slot.clone()).or_default();
        let idle = !std::mem::replace(&mut queue.running, true);
        if !idle {
            queue.waiting.push_back(Waiter {
                keys: keys.clone(),
                reply,
            });
        }
        idle
    };
    if idle {
        // Nothing runs: ask at once, on this task. Whoever comes meanwhile
        // is handed on when this exchange ends, or if this task is dropped.
        let handover = Handover {
            asker: asker.clone(),
            batches: batches.clone(),
            slot,
            deadline,
        };
        let answer = ask_alone(&asker, &handover.slot, &keys, deadline).await;
        learned(&batches, &handover.slot, answer.max_keys_per_request);
        return answer;
    }
    let org = asker.peer.org.clone();
    match tokio::time::timeout(deadline, answer).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => PeerAnswer::failed(
            &org,
            keys.len(),
            State::Failed,
            "the exchange with this partner ended without an answer".into(),
        ),
        Err(_) => PeerAnswer::failed(
            &org,
            keys.len(),
            State::TimedOut,
            format!("no answer within {} s", deadline.as_secs()),
        ),
    }
}

/// The end of an exchange run on a caller's own task: the queries that
/// came meanwhile go to a task of their own ([`drive`]), or the queue is
/// idle again. Done on drop, so a caller that stops waiting (its client
/// went away) never leaves the queue stuck.
struct Handover {
    asker: Asker,
    batches: Batches,
    slot: Slot,
    deadline: Duration,
}

impl Drop for Handover {
    fn drop(&mut self) {
        let mut queues = lock(&self.batches.0);
        let queue = queues.entry(self.slot.clone()).or_default();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !queue.waiting.is_empty() => {
                runtime.spawn(drive(
                    self.asker.clone(),
                    self.batches.clone(),
                    self.slot.clone(),
                    self.deadline,
                ));
            }
            // Nobody waits (or the runtime is gone, and they with it).
            _ => queue.running = false,
        }
    }
}

/// Runs exchanges for `slot` until nobody waits.
async fn drive(asker: Asker, batches: Batches, slot: Slot, deadline: Duration) {
    loop {
        let batch = {
            let mut queues = lock(&batches.0);
            let queue = queues.entry(slot.clone()).or_default();
            let batch = queue.next_batch();
            if batch.is_empty() {
                queue.running = false;
                return;
            }
            batch
        };
        let limit = exchange(&asker, &slot, batch, deadline).await;
        learned(&batches, &slot, limit);
    }
}

/// Notes the partner's `max_keys_per_request` (0: it did not say).
fn learned(batches: &Batches, slot: &Slot, limit: u64) {
    if limit > 0 {
        lock(&batches.0).entry(slot.clone()).or_default().limit = limit;
    }
}

/// One exchange for `batch`; returns the partner's `max_keys_per_request`
/// if it said (0 if not).
async fn exchange(asker: &Asker, slot: &Slot, batch: Vec<Waiter>, deadline: Duration) -> u64 {
    let (keys, positions) = merge(batch.iter().map(|w| &w.keys[..]));
    let answer = ask_alone(asker, slot, &keys, deadline).await;
    if batch.len() > 1 && answer.outcome.state() == State::Denied {
        // Refused together: ask for each query on its own, as it would
        // have been asked without merging.
        let mut limit = answer.max_keys_per_request;
        for waiter in batch {
            let alone = ask_alone(asker, slot, &waiter.keys, deadline).await;
            limit = limit.max(alone.max_keys_per_request);
            // A caller that stopped waiting needs no answer.
            let _ = waiter.reply.send(alone);
        }
        return limit;
    }
    for (waiter, positions) in batch.into_iter().zip(positions) {
        let _ = waiter.reply.send(PeerAnswer {
            outcome: answer.outcome.clone(),
            flags: split(&answer.flags, &positions),
            max_keys_per_request: answer.max_keys_per_request,
        });
    }
    answer.max_keys_per_request
}

/// One exchange about `keys` under `slot`'s purpose and legal basis,
/// reading table buckets as a case query does.
async fn ask_alone(asker: &Asker, slot: &Slot, keys: &[String], deadline: Duration) -> PeerAnswer {
    let (purpose, legal_basis) = slot;
    ask_peer(
        asker.clone(),
        purpose,
        legal_basis,
        keys,
        deadline,
        Fetch::Buckets,
    )
    .await
}

/// The distinct keys of some queries, in the order first asked, and for
/// each query where its keys are among them.
fn merge<'a>(queries: impl Iterator<Item = &'a [String]>) -> (Vec<String>, Vec<Vec<usize>>) {
    let mut keys: Vec<String> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    let positions = queries
        .map(|query| {
            query
                .iter()
                .map(|key| {
                    *at.entry(key.as_str()).or_insert_with(|| {
                        keys.push(key.clone());
                        keys.len() - 1
                    })
                })
                .collect()
        })
        .collect();
    (keys, positions)
}

/// One query's flags, out of the answer about the merged keys.
fn split(flags: &[Option<Flags>], positions: &[usize]) -> Vec<Option<Flags>> {
    positions
        .iter()
        .map(|&p| flags.get(p).cloned().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pluis_proto::taxonomy::LifeDomain;

    fn waiter(keys: &[&str]) -> (Waiter, oneshot::Receiver<PeerAnswer>) {
        let (reply, answer) = oneshot::channel();
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        (
            Waiter {
                keys: keys.into(),
                reply,
            },
            answer,
        )
    }

    fn sizes(batch: &[Waiter]) -> Vec<usize> {
        batch.iter().map(|w| w.keys.len()).collect()
    }

    #[test]
    fn a_batch_holds_as_many_queries_as_fit_under_the_limit() {
        let mut queue = Queue {
            limit: 5,
            ..Queue::default()
        };
        let mut answers = Vec::new();
        for keys in [&["a", "b"][..], &["c", "d"], &["e"], &["f"]] {
            let (w, a) = waiter(keys);
            queue.waiting.push_back(w);
            answers.push(a);
        }
        assert_eq!(sizes(&queue.next_batch()), [2, 2, 1]);
        assert_eq!(sizes(&queue.next_batch()), [1]);
        assert!(queue.next_batch().is_empty());
    }

    #[test]
    fn before_the_partner_said_its_limit_each_query_goes_alone() {
        let mut queue = Queue::default();
        let (first, _a) = waiter(&["a"]);
        let (second, _b) = waiter(&["b"]);
        queue.waiting.extend([first, second]);
        assert_eq!(sizes(&queue.next_batch()), [1]);
        assert_eq!(sizes(&queue.next_batch()), [1]);
    }

    #[test]
    fn a_query_over_the_limit_goes_alone_and_a_gone_caller_is_skipped() {
        let mut queue = Queue {
            limit: 3,
            ..Queue::default()
        };
        let (gone, answer) = waiter(&["x"]);
        drop(answer);
        let (big, _big) = waiter(&["a", "b", "c", "d"]);
        let (small, _small) = waiter(&["e"]);
        queue.waiting.extend([gone, big, small]);
        assert_eq!(sizes(&queue.next_batch()), [4]);
        assert_eq!(sizes(&queue.next_batch()), [1]);
        assert!(queue.waiting.is_empty());
    }

    #[test]
    fn merged_keys_are_asked_once_and_each_query_gets_its_own_back() {
        let q1: Vec<String> = vec!["k1".into(), "k2".into()];
        let q2: Vec<String> = vec!["k2".into(), "k3".into(), "k1".into()];
        let (keys, positions) = merge([&q1[..], &q2[..]].into_iter());
        assert_eq!(keys, ["k1", "k2", "k3"]);
        assert_eq!(positions, [vec![0, 1], vec![1, 2, 0]]);
        let flag = |domain| {
            Some(Flags {
                domains: [domain].into(),
                ..Flags::default()
            })
        };
        let (one, three) = (LifeDomain::Education, LifeDomain::Health);
        let answer = vec![flag(one), None, flag(three)];
        assert_eq!(split(&answer, &positions[0]), [flag(one), None]);
        assert_eq!(
            split(&answer, &positions[1]),
            [None, flag(three), flag(one)]
        );
        // An answer short of keys (a partner's error) gives nothing.
        assert_eq!(split(&answer[..1], &positions[1]), [None, None, flag(one)]);
    }
}
