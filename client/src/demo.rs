//! `pluis demo`: a local consortium from nothing, end to end.
//!
//! Four organisations (police, municipality, school, healthcare) get a dev
//! PKI and a real node each on loopback; each org's coordinator asks its own
//! node for its status over mutual TLS, which makes every node check every
//! peer. Then all nodes stop cleanly. Any failure fails the demo.

use std::path::PathBuf;

use anyhow::{bail, Context};
use pluis_proto::Role;

use crate::consortium::LocalConsortium;

/// The demo's organisations.
pub const ORGS: [&str; 4] = ["police", "municipality", "school", "healthcare"];

/// Runs the demo; with `keep`, its consortium is left in that directory.
pub async fn run(keep: Option<PathBuf>) -> anyhow::Result<()> {
    let temp;
    let dir = match keep {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().join("consortium")
        }
    };
    println!(
        "== Pluis demo: a consortium of {} organisations",
        ORGS.len()
    );
    println!("   dev PKI and configs in {}", dir.display());
    let consortium = LocalConsortium::start(&dir, "demo", &ORGS).await?;
    for node in &consortium.nodes {
        println!("   node {:13} listening on {}", node.org, node.url);
    }

    println!("\n== Each coordinator asks its own node for its status (mTLS)");
    let mut unreachable = 0;
    for node in &consortium.nodes {
        let identity = consortium
            .tls_args(&node.org, Role::Coordinator)
            .load(Role::Coordinator)?;
        let status = crate::status::fetch(&node.url, &identity).await?;
        print!("{}", crate::status::render(&status));
        unreachable += status.peers.iter().filter(|p| !p.reachable).count();
    }

    println!("\n== Stopping the nodes");
    consortium.stop().await?;
    if unreachable > 0 {
        bail!("{unreachable} peer links were unreachable");
    }
    println!(
        "   all {} nodes stopped cleanly; every peer link was reachable",
        ORGS.len()
    );
    println!("\nDemo complete.");
    Ok(())
}
