//! Asking every partner at once, for a coordinator's question: each
//! partner on a task of its own under its own deadline, so that a dead
//! partner gives a partial answer that names it. Case queries
//! ([`Fetch::Buckets`]) ride on the next exchange with each partner,
//! merged with others ([`crate::requester::batch`]); bulk screening
//! ([`Fetch::Whole`]) asks each partner on its own ([`crate::requester::exchange`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pluis_proto::OrgId;
use tokio::task::JoinSet;

use crate::audit::AuditLog;
use crate::policy::Purpose;
use crate::requester::batch::Batches;
use crate::requester::exchange::{ask_peer, Asker, Fetch, PeerAnswer};
use crate::requester::peers::Peers;

/// The partners to ask, and where case queries to each wait their turn.
#[derive(Debug, Clone, Copy)]
pub struct Partners<'a> {
    /// The partner nodes.
    pub peers: &'a Peers,
    /// Per partner org, its queue of case queries.
    pub batches: &'a BTreeMap<OrgId, Batches>,
}

/// Asks every partner at once about `keys` for `purpose`; collect the
/// answers with [`gather`].
pub fn ask_all(
    partners: Partners<'_>,
    audit: &Arc<AuditLog>,
    purpose: &Purpose,
    keys: &[String],
    deadline: Duration,
    fetch: Fetch,
) -> JoinSet<PeerAnswer> {
    let mut asks = JoinSet::new();
    let keys: Arc<[String]> = keys.into();
    for peer in partners.peers.iter() {
        let batches = partners.batches.get(&peer.org).cloned().unwrap_or_default();
        let (peer, purpose, keys, audit) =
            (peer.clone(), purpose.clone(), keys.clone(), audit.clone());
        asks.spawn(async move {
            let asker = Asker { peer, audit };
            match fetch {
                Fetch::Buckets => {
                    crate::requester::batch::ask(asker, batches, &purpose, keys, deadline).await
                }
                Fetch::Whole => {
                    ask_peer(
                        asker,
                        &purpose.name,
                        &purpose.legal_basis,
                        &keys,
                        deadline,
                        fetch,
                    )
                    .await
                }
            }
        });
    }
    asks
}

/// Asks partner `org` alone about `keys` (as [`ask_all`] asks each, for
/// a case query); `None` if it is not a partner.
pub async fn ask_one(
    partners: Partners<'_>,
    audit: &Arc<AuditLog>,
    purpose: &Purpose,
    org: &str,
    keys: &[String],
    deadline: Duration,
) -> Option<PeerAnswer> {
    let peer = partners
        .peers
        .iter()
        .find(|p| p.org.as_str() == org)?
        .clone();
    let batches = partners.batches.get(&peer.org).cloned().unwrap_or_default();
    let asker = Asker {
        peer,
        audit: audit.clone(),
    };
    Some(crate::requester::batch::ask(asker, batches, purpose, keys.into(), deadline).await)
}

/// Every answer of [`ask_all`], in org order.
pub async fn gather(asks: JoinSet<PeerAnswer>) -> Vec<PeerAnswer> {
    gather_reporting(asks, |_| ()).await
}

/// [`gather`], telling `done` how many partners are done each time one
/// is (answered, refused, failed).
pub async fn gather_reporting(
    mut asks: JoinSet<PeerAnswer>,
    mut done: impl FnMut(usize),
) -> Vec<PeerAnswer> {
    let mut answers = Vec::new();
    let mut finished = 0;
    while let Some(joined) = asks.join_next().await {
        finished += 1;
        done(finished);
        // A task that panicked has no answer; its partner is simply missing.
        if let Ok(answer) = joined {
            answers.push(answer);
        }
    }
    answers.sort_by(|a, b| a.outcome.org.cmp(&b.outcome.org));
    answers
}
