//! This node's view of its partners: one lazily connected mTLS channel per
//! configured peer, each pinned to that peer's SPIFFE id.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pluis_proto::exchange::Epoch;
use pluis_proto::table::LabelledTable;
use pluis_proto::OrgId;

use pluis_proto::pb;
use tokio::task::JoinSet;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::clock::Stopwatch;
use crate::config::PeerConfig;
use crate::lock;
use crate::tls::{ExpectedServer, TlsError, TlsIdentity};

/// How long a reachability check may take before the peer counts as down.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(3);

/// One partner node.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its organisation id.
    pub org: OrgId,
    /// Its URL.
    pub url: String,
    /// A channel that only accepts that org's node certificate.
    pub channel: Channel,
    /// The verifier key of its audit log, to check its receipts.
    pub log_key: Option<pluis_proto::log::NoteVerifier>,
    /// The fewest entries a bucket fetched from it must be likely to hold.
    pub min_bucket_entries: u64,
    /// The last whole table fetched from it (bulk screening), by epoch.
    table: TableCache,
}

/// A partner's whole table, kept for its epoch.
#[derive(Clone, Default)]
struct TableCache(Arc<Mutex<Option<EpochTable>>>);

/// A table and the epoch it belongs to.
type EpochTable = (Epoch, Arc<LabelledTable>);

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TableCache")
    }
}

impl Peer {
    /// The cached whole table of `epoch`, if its digest is `digest`.
    pub fn cached_table(&self, epoch: Epoch, digest: &[u8]) -> Option<Arc<LabelledTable>> {
        let cached = lock(&self.table.0);
        cached
            .as_ref()
            .filter(|(e, table)| *e == epoch && table.digest()[..] == *digest)
            .map(|(_, table)| table.clone())
    }

    /// Keeps `table` as this partner's whole table for `epoch`, in place
    /// of any earlier one.
    pub fn cache_table(&self, epoch: Epoch, table: Arc<LabelledTable>) {
        *lock(&self.table.0) = Some((epoch, table));
    }
}

/// All configured partner nodes.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    peers: Vec<Peer>,
}

impl Peers {
    /// Makes (lazy) channels to every configured peer.
    pub fn new(configs: &[PeerConfig], identity: &TlsIdentity) -> Result<Self, TlsError> {
        let peers = configs
            .iter()
            .map(|p| {
                let tls = identity.client_config(ExpectedServer::NodeOf(p.org.clone()))?;
                Ok(Peer {
                    org: p.org.clone(),
                    url: p.url.clone(),
                    channel: crate::tls::connect(&p.url, tls, CHECK_DEADLINE)?,
                    table: TableCache::default(),
                    log_key: p.log_key.clone(),
                    min_bucket_entries: p.min_bucket_entries,
                })
            })
            .collect::<Result<_, TlsError>>()?;
        Ok(Peers { peers })
    }

    /// The peers, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter()
    }

    /// Checks every peer concurrently over mTLS (gRPC health of its
    /// `Partner` service); each check is bounded by [`CHECK_DEADLINE`].
    pub async fn check_all(&self) -> Vec<pb::PeerStatus> {
        let mut checks = JoinSet::new();
        for (i, peer) in self.peers.iter().enumerate() {
            let peer = peer.clone();
            checks.spawn(async move { (i, check(peer).await) });
        }
        let mut results: Vec<Option<pb::PeerStatus>> = vec![None; self.peers.len()];
        while let Some(joined) = checks.join_next().await {
            if let Ok((i, status)) = joined {
                results[i] = Some(status);
            }
        }
        // A check task that panicked still gets a row: unreachable.
        results
            .into_iter()
            .zip(&self.peers)
            .map(|(status, peer)| {
                status.unwrap_or_else(|| pb::PeerStatus {
                    org: peer.org.to_string(),
                    url: peer.url.clone(),
                    reachable: false,
                    detail: "reachability check failed".into(),
                    latency_ms: 0,
                })
            })
            .collect()
    }
}

async fn check(peer: Peer) -> pb::PeerStatus {
    let started = Stopwatch::start();
    let mut client = HealthClient::new(peer.channel);
    let request = HealthCheckRequest {
        service: "pluis.v1.Partner".into(),
    };
    let outcome = tokio::time::timeout(CHECK_DEADLINE, client.check(request)).await;
    let latency_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    let (reachable, detail) = match outcome {
        Err(_) => (
            false,
            format!("no answer within {}s", CHECK_DEADLINE.as_secs()),
        ),
        Ok(Err(status)) => (false, crate::status_detail(&status)),
        Ok(Ok(response)) => match response.into_inner().status() {
            ServingStatus::Serving => (true, String::new()),
            other => (false, format!("health: {}", other.as_str_name())),
        },
    };
    pb::PeerStatus {
        org: peer.org.to_string(),
        url: peer.url,
        reachable,
        detail,
        latency_ms,
    }
}
