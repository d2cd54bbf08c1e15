//! `pluis status`: a node's identity, version, uptime and peers; and the
//! purposes it lets its coordinators ask for.

use std::fmt::Write;

use anyhow::Context;
use pluis_proto::pb::coordinator_client::CoordinatorClient;
use pluis_proto::pb::{PurposeInfo, PurposesRequest, StatusRequest, StatusResponse};
use pluis_transport::status_detail;
use pluis_transport::tls::TlsIdentity;

/// Asks the node at `url` for its status.
pub async fn fetch(url: &str, identity: &TlsIdentity) -> anyhow::Result<StatusResponse> {
    let channel = crate::connect::channel(url, identity)?;
    let response = CoordinatorClient::new(channel)
        .status(StatusRequest {})
        .await
        .map_err(|status| anyhow::anyhow!(status_detail(&status)))
        .with_context(|| format!("status of node {url}"))?;
    Ok(response.into_inner())
}

/// The purposes the node at `url` lets its coordinators ask for, each
/// with its legal basis.
pub async fn purposes(url: &str, identity: &TlsIdentity) -> anyhow::Result<Vec<PurposeInfo>> {
    let channel = crate::connect::channel(url, identity)?;
    let response = CoordinatorClient::new(channel)
        .purposes(PurposesRequest {})
        .await
        .map_err(|status| anyhow::anyhow!(status_detail(&status)))
        .with_context(|| format!("purposes of node {url}"))?;
    Ok(response.into_inner().purposes)
}

/// Renders a status for a terminal.
pub fn render(status: &StatusResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node {org} (consortium {consortium}), pluis-node {version}, up {uptime}",
        org = status.org,
        consortium = status.consortium,
        version = status.version,
        uptime = uptime(status.uptime_seconds),
    );
    if status.peers.is_empty() {
        let _ = writeln!(out, "  no peers configured");
        return out;
    }
    let width = status.peers.iter().map(|p| p.org.len()).max().unwrap_or(0);
    for peer in &status.peers {
        let state = if peer.reachable {
            format!("reachable ({} ms)", peer.latency_ms)
        } else {
            format!("UNREACHABLE: {}", peer.detail)
        };
        let _ = writeln!(out, "  peer {:width$}  {}  {}", peer.org, peer.url, state);
    }
    out
}

fn uptime(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}
