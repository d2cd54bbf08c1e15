//! This node's view of its partners: one lazily connected mTLS channel per
//! configured peer, each pinned to that peer's SPIFFE id.

use std::time::{Duration, Instant};

use pluis_proto::pb;
use tokio::task::JoinSet;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::config::PeerConfig;
use crate::tls::{ExpectedServer, TlsError, TlsIdentity};

/// How long a reachability check may take before the peer counts as down.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(3);

/// One partner node.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its organisation id.
    pub org: String,
    /// Its URL.
    pub url: String,
    /// A channel that only accepts that org's node certificate.
    pub channel: Channel,
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
                    org: peer.org.clone(),
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
    let started = Instant::now();
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
        org: peer.org,
        url: peer.url,
        reachable,
        detail,
        latency_ms,
    }
}
