//! Import benchmark: `cargo bench -p pluis-node --bench import`.
//!
//! Generates synthetic rows (default 1,000,000; `PLUIS_BENCH_ROWS` to
//! change) for one organisation, then imports them into a fresh store the
//! way `pluis-node import` does — parse, validate, normalise, seal, digest,
//! one atomic generation switch, flush — and prints rows per second and the
//! process's peak resident memory. A second import of the same file into
//! the now-full store measures the merge path (re-import, all unchanged).
//!
//! A bench binary, not criterion: one import of a million rows is the unit
//! of interest, and its peak memory must be read from the same process.

// A benchmark measures wall time: it reads the clock `clippy.toml` keeps
// out of the product.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use pluis_node::config::load_taxonomy;
use pluis_node::gendata::{generate, GenOptions};
use pluis_node::Store;
use pluis_node::{import, ImportOptions, Quiet};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let rows: u64 = std::env::var("PLUIS_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("signals.csv");
    let taxonomy = load_taxonomy(None)?;
    let today = pluis_node::cli::today();
    let options = GenOptions {
        rows,
        seed: 42,
        org: "municipality".into(),
        population: None,
        today,
    };
    generate(&taxonomy, &options, &mut std::fs::File::create(&file)?)?;
    let size = std::fs::metadata(&file)?.len();
    println!(
        "import bench: {rows} rows, {:.1} MiB CSV, {} threads",
        size as f64 / 1048576.0,
        rayon::current_num_threads()
    );
    let rss_before = peak_rss_mib();

    let store = Store::open(&dir.path().join("data"))?;
    let import_options = ImportOptions::new(file.clone(), today);
    for (label, what) in [
        ("fresh store", "first import"),
        ("full store", "re-import (merge, all unchanged)"),
    ] {
        let started = Instant::now();
        let report = import(&store, &taxonomy, &import_options, &Quiet)?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{what} into a {label}: {} rows in {seconds:.2} s = {:.0} rows/s ({} new, {} unchanged); peak resident memory so far {:.0} MiB",
            report.rows,
            report.rows as f64 / seconds,
            report.stored.added,
            report.stored.unchanged,
            peak_rss_mib(),
        );
    }
    println!("peak resident memory before importing: {rss_before:.0} MiB");
    Ok(())
}
