//! Pluis against OpenMined PSI on the same data, in one run:
//! `cargo bench -p pluis-client --bench vs_openmined`.
//!
//! Makes `PLUIS_BENCH_KEYS` keys (default 100,000) for each side, 10 % of
//! them shared, then
//! 1. runs `openmined_psi.py` (next to this file) with the Python in
//!    `PLUIS_OPENMINED_PYTHON` (default `python3`), which must have
//!    `openmined-psi==2.0.6` installed; it times setup, request, response
//!    and intersection in one process;
//! 2. starts two Pluis node processes on loopback with mutual TLS, the
//!    requester holding one key set and the partner the other, and times
//!    from node start to the end of `pluis screen`: the partner's table
//!    build, blinding, `Evaluate`, the whole-table fetch and opening, all
//!    over real mTLS gRPC.
//!
//! Both must find exactly the shared keys. Prints both times and the
//! ratio (target ≥ 3).

// A benchmark measures wall time: it reads the clock `clippy.toml` keeps
// out of the product.
#![allow(clippy::disallowed_methods)]

mod support;

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use pluis_client::dev::consortium::{LocalConsortium, PURPOSE};
use pluis_proto::Role;
use support::{allow_bulk, bsns, import_bsns, run_node_if_asked, start_node, stop_node};

fn main() -> anyhow::Result<()> {
    run_node_if_asked();
    tokio::runtime::Runtime::new()?.block_on(bench())
}

fn write_keys(path: &std::path::Path, bsns: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for bsn in bsns {
        // The canonical subject key, as Pluis matches it.
        writeln!(out, "bsn:{bsn}")?;
    }
    out.flush()?;
    Ok(())
}

async fn bench() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let keys: usize = std::env::var("PLUIS_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let shared = keys / 10;
    let partner = bsns(10_000_000, keys);
    let mut requester = partner[..shared].to_vec();
    requester.extend(bsns(50_000_000, keys - shared));
    println!("Pluis vs OpenMined PSI: {keys} × {keys} keys, {shared} shared");

    // 1. OpenMined PSI, in one Python process.
    let dir = tempfile::tempdir()?;
    let (client_file, server_file) = (dir.path().join("client.txt"), dir.path().join("server.txt"));
    write_keys(&client_file, &requester)?;
    write_keys(&server_file, &partner)?;
    let python = std::env::var("PLUIS_OPENMINED_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/openmined_psi.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&client_file)
        .arg(&server_file)
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "OpenMined PSI run failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)
        .context("reading the OpenMined script's JSON line")?;
    let openmined = result["seconds"].as_f64().context("seconds")?;
    if result["intersection"].as_u64() != Some(shared as u64) {
        bail!(
            "OpenMined found {} shared keys, expected {shared}",
            result["intersection"]
        );
    }
    println!(
        "OpenMined PSI {} (ECDH P-256, one process): {openmined:.2} s = {:.0} elements/s",
        result["version"].as_str().unwrap_or("?"),
        keys as f64 / openmined
    );

    // 2. Pluis: two node processes, real mTLS gRPC.
    let mut consortium =
        LocalConsortium::create(&dir.path().join("pluis"), "bench", &["police", "school"]).await?;
    allow_bulk(&consortium, "school", keys as u64)?;
    import_bsns(&consortium, "school", &partner, "frequent_absence")?;
    import_bsns(&consortium, "police", &requester, "weapon_possession")?;
    consortium.release_listeners();
    let coordinator = consortium
        .tls_args("police", Role::Coordinator)
        .load(Role::Coordinator)?;
    let url = consortium.node("police")?.url.clone();
    let started = Instant::now();
    let nodes = ["school", "police"]
        .iter()
        .map(|org| start_node(&consortium.node(org)?.config))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let response = pluis_client::coordinator::screen::run(&url, &coordinator, PURPOSE, 2).await?;
    let pluis = started.elapsed().as_secs_f64();
    for node in nodes {
        stop_node(node)?;
    }
    if response.hits.len() != shared {
        bail!(
            "Pluis found {} shared keys, expected {shared}",
            response.hits.len()
        );
    }
    println!(
        "Pluis (2 node processes, mTLS gRPC, from node start incl. the partner's table build): {pluis:.2} s = {:.0} elements/s",
        keys as f64 / pluis
    );
    println!(
        "ratio OpenMined / Pluis wall time: {:.2} (target ≥ 3.00)",
        openmined / pluis
    );
    Ok(())
}
