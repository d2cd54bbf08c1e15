//! What the screening benchmarks share: node processes of their own (so
//! that each node's peak memory can be read), and synthetic key sets.
//!
//! A bench binary starts its nodes by running itself again with
//! `--node-process CONFIG`; [`run_node_if_asked`] must be the first thing
//! its `main` does, before any async runtime exists.

#![allow(dead_code)] // each bench uses part of it

use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::bail;
use clap::Parser;
use pluis_client::dev::consortium::LocalConsortium;
use pluis_node::{import, ImportOptions, Quiet};

const NODE_FLAG: &str = "--node-process";

/// In a child started by [`start_node`]: serves the node of the
/// config given and exits when it stops. Otherwise returns.
pub fn run_node_if_asked() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(NODE_FLAG) {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("PLUIS_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_writer(std::io::stderr)
        .init();
    let cli = pluis_node::cli::Cli::parse_from(["pluis-node", "serve", "--config", &args[2]]);
    let code = match tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(pluis_node::cli::run(cli)))
    {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("node: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

pub use pluis_client::dev::process::NodeProcess;

/// Starts the node of `config` as a child process of this bench (the
/// bench binary run again with `--node-process CONFIG`).
pub fn start_node(config: &Path) -> anyhow::Result<NodeProcess> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg(NODE_FLAG).arg(config);
    NodeProcess::start(command, false)
}

/// SIGTERM, then waits for a clean exit.
pub fn stop_node(mut node: NodeProcess) -> anyhow::Result<()> {
    let output = node.terminate()?;
    if !output.status.success() {
        bail!(
            "a node exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// `count` distinct valid BSNs (elfproef), from the 8-digit stem `from` on.
pub fn bsns(from: u32, count: usize) -> Vec<String> {
    (from..)
        .filter_map(|stem| {
            pluis_proto::identifier::elfproef_check_digit(stem).map(|d| format!("{stem:08}{d}"))
        })
        .take(count)
        .collect()
}

/// Imports one signal per BSN into `org`'s store (before its node runs).
pub fn import_bsns(
    consortium: &LocalConsortium,
    org: &str,
    bsns: &[String],
    signal: &str,
) -> anyhow::Result<()> {
    let node = consortium.node(org)?;
    let config = pluis_node::Config::load(&node.config)?;
    let file = node.config.with_file_name("signals.csv");
    let date =
        pluis_proto::identifier::iso_date(pluis_node::cli::today() - time::Duration::days(10));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    writeln!(out, "bsn,signal,registered_on,local_ref")?;
    for (i, bsn) in bsns.iter().enumerate() {
        writeln!(out, "{bsn},{signal},{date},{org}-{i}")?;
    }
    out.flush()?;
    drop(out);
    let store = pluis_node::Store::open(&config.data_dir)?;
    let taxonomy = pluis_node::config::load_taxonomy(None)?;
    import(
        &store,
        &taxonomy,
        &ImportOptions::new(file.clone(), pluis_node::cli::today()),
        &Quiet,
    )?;
    std::fs::remove_file(file)?;
    Ok(())
}

/// Lets `responder`'s partners screen it in bulk (whole tables, budgets
/// for `keys` keys a day in batches of 2,048); the other nodes share
/// nothing, so that only `responder` has a table to build.
pub fn allow_bulk(consortium: &LocalConsortium, responder: &str, keys: u64) -> anyhow::Result<()> {
    for node in &consortium.nodes {
        if node.org != responder {
            consortium.edit_peer_policies(&node.org, |peer| peer.purposes.clear())?;
            continue;
        }
        consortium.edit_peer_policies(&node.org, |peer| {
            peer.min_prefix_bits = Some(0);
            peer.max_keys_per_request = Some(2048);
            peer.max_keys_per_day = Some(keys * 4);
        })?;
    }
    Ok(())
}
