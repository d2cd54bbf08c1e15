//! `pluis screen`: bulk screening. The coordinator's own node checks every
//! active key it holds against every partner's whole table (fetched once
//! per epoch; partners learn only how many keys were asked) and lists this
//! organisation's own case references whose combined signals reach
//! `--min-domains` life domains.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;
use pluis_proto::pb::coordinator_client::CoordinatorClient;
use pluis_proto::pb::{ScreenProgress, ScreenRequest, ScreenResponse};
use pluis_transport::status_detail;
use pluis_transport::tls::TlsIdentity;

/// Runs a screening on the node at `url`.
pub async fn run(
    url: &str,
    identity: &TlsIdentity,
    purpose: &str,
    min_domains: u32,
) -> anyhow::Result<ScreenResponse> {
    run_reporting(url, identity, purpose, min_domains, |_| ()).await
}

/// [`run`], telling `progress` how far the node is while it runs (the
/// keys, and how many partners are done of how many).
pub async fn run_reporting(
    url: &str,
    identity: &TlsIdentity,
    purpose: &str,
    min_domains: u32,
    mut progress: impl FnMut(&ScreenProgress),
) -> anyhow::Result<ScreenResponse> {
    let channel = crate::connect::channel(url, identity)?;
    let failed = |status: tonic::Status| anyhow::anyhow!(status_detail(&status));
    let mut pages = CoordinatorClient::new(channel)
        .screen(ScreenRequest {
            purpose: purpose.to_owned(),
            min_domains,
        })
        .await
        .map_err(failed)
        .with_context(|| format!("screening on node {url}"))?
        .into_inner();
    // The answer comes in pages; the last one says so.
    let mut answer = ScreenResponse::default();
    while let Some(page) = pages
        .message()
        .await
        .map_err(failed)
        .with_context(|| format!("screening on node {url}"))?
    {
        if let Some(p) = &page.progress {
            progress(p);
            continue;
        }
        answer.hits.extend(page.hits);
        if page.last {
            answer.peers = page.peers;
            answer.keys_screened = page.keys_screened;
            answer.last = true;
        }
    }
    anyhow::ensure!(
        answer.last,
        "screening on node {url}: the answer ended before its last page"
    );
    Ok(answer)
}

/// `domain:org+org …` of a hit.
fn domains_text(hit: &pluis_proto::pb::ScreenHit) -> String {
    hit.domains
        .iter()
        .map(|d| format!("{}:{}", d.domain, d.orgs.join("+")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line per hit: reference, domain count, `domain:org+org` list.
pub fn render(response: &ScreenResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} keys screened; {} cases reach the threshold",
        response.keys_screened,
        response.hits.len()
    );
    for hit in &response.hits {
        let domains: Vec<String> = hit
            .domains
            .iter()
            .map(|d| format!("{}:{}", d.domain, d.orgs.join("+")))
            .collect();
        let _ = writeln!(
            out,
            "{}  {}  {}",
            hit.local_ref,
            hit.domain_count,
            domains.join(" ")
        );
    }
    for p in response.peers.iter().filter(|p| p.state != 1) {
        let _ = writeln!(out, "PARTIAL: {} did not answer: {}", p.org, p.detail);
    }
    out
}

/// Writes the hits as CSV (`local_ref,domain_count,domains`), mode 0600:
/// case references are the organisation's own, but still case data.
pub fn write_csv(path: &Path, response: &ScreenResponse) -> anyhow::Result<()> {
    let file = pluis_transport::private_files::create_file(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut writer = csv::Writer::from_writer(file);
    writer.write_record(["local_ref", "domain_count", "domains"])?;
    for hit in &response.hits {
        writer.write_record([
            hit.local_ref.as_str(),
            &hit.domain_count.to_string(),
            &domains_text(hit),
        ])?;
    }
    writer.flush()?;
    Ok(())
}
