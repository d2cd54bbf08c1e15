//! Matching benchmark: `cargo bench -p pluis-node --bench matching`.
//!
//! Per element, on this machine: one raw ristretto255 OPRF evaluation of a
//! blinded element; one table entry's full cost (OPRF evaluation of an
//! input, HKDF tag and key, AES-GCM seal) on a sample of the store's own
//! keys and flags, single-threaded; then a whole
//! labelled-table build from a store of `PLUIS_BENCH_KEYS` signals
//! (default 1,000,000) over all cores, and its ratio to the ideal
//! `keys × per-entry cost / cores` measured in the same run (target ≤ 1.3).

// A benchmark measures wall time: it reads the clock `clippy.toml` keeps
// out of the product.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use pluis_node::config::load_taxonomy;
use pluis_node::gendata::{generate, GenOptions};
use pluis_node::Store;
use pluis_node::{build, flags_per_key, seal_entries, View};
use pluis_node::{import, ImportOptions, Quiet};
use pluis_proto::oprf::{blind, EpochKey};

fn main() -> anyhow::Result<()> {
    let keys: u64 = std::env::var("PLUIS_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let cores = rayon::current_num_threads();
    let key = EpochKey::from_seed(&[9; 32])?;

    // Raw OPRF evaluation of blinded elements, one thread.
    let samples = 20_000;
    let blinded: Vec<_> = (0..samples)
        .map(|i| blind(format!("bsn:{i:09}").as_bytes(), &mut rand_core::OsRng).map(|b| b.element))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    for b in &blinded {
        key.evaluate_blinded(pluis_proto::families::Family::Exact, b)?;
    }
    let raw = started.elapsed().as_secs_f64() / samples as f64;
    println!("OPRF evaluate (blinded ristretto255 element), 1 thread: {:.1} µs/element = {:.0} elements/s", raw * 1e6, 1.0 / raw);

    // The requester's side of one element: blind, then unblind (finalize).
    let inputs: Vec<String> = (0..samples).map(|i| format!("bsn:{i:09}")).collect();
    let started = Instant::now();
    let blinds: Vec<_> = inputs
        .iter()
        .map(|i| blind(i.as_bytes(), &mut rand_core::OsRng))
        .collect::<Result<_, _>>()?;
    let blinding = started.elapsed().as_secs_f64() / samples as f64;
    let evaluated: Vec<_> = blinds
        .iter()
        .map(|b| key.evaluate_blinded(pluis_proto::families::Family::Exact, &b.element))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    for ((b, i), e) in blinds.iter().zip(&inputs).zip(&evaluated) {
        b.finalize(i.as_bytes(), e)?;
    }
    let finalizing = started.elapsed().as_secs_f64() / samples as f64;
    println!(
        "requester per element, 1 thread: blind {:.1} µs, finalize {:.1} µs",
        blinding * 1e6,
        finalizing * 1e6
    );

    // A whole table build from a real store.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("signals.csv");
    let taxonomy = load_taxonomy(None)?;
    let today = pluis_node::cli::today();
    let options = GenOptions {
        rows: keys,
        seed: 7,
        org: "municipality".into(),
        population: Some(keys * 4),
        today,
    };
    generate(&taxonomy, &options, &mut std::fs::File::create(&file)?)?;
    let store = Store::open(&dir.path().join("data"))?;
    let import_options = ImportOptions::new(file, today);
    import(&store, &taxonomy, &import_options, &Quiet)?;

    // One table entry (OPRF on the input, HKDF, AEAD seal) on one thread,
    // for a sample of this store's own keys and flags.
    let items = flags_per_key(&store, &store.snapshot(), &View::everything(), today)?;
    let sample = &items[..items.len().min(samples)];
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let started = Instant::now();
    one_thread.install(|| seal_entries(&key, sample));
    let entry = started.elapsed().as_secs_f64() / sample.len() as f64;
    println!(
        "table entry (OPRF + HKDF + AES-GCM), 1 thread, {} of the store's keys: {:.1} µs/entry",
        sample.len(),
        entry * 1e6
    );
    drop(items);

    let started = Instant::now();
    let table = build(&store, &store.snapshot(), &key, &View::everything(), today)?;
    let took = started.elapsed().as_secs_f64();
    let ideal = table.len() as f64 * entry / cores as f64;
    println!(
        "table build: {} entries from {} signals in {:.2} s on {cores} threads = {:.0} entries/s",
        table.len(),
        store.len(),
        took,
        table.len() as f64 / took
    );
    println!(
        "table build vs ideal (entries × per-entry cost / cores = {ideal:.2} s): ratio {:.2} (target ≤ 1.30)",
        took / ideal
    );
    Ok(())
}
