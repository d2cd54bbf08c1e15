//! Case-query benchmark: `cargo bench -p pluis-client --bench case_query`.
//!
//! Four real nodes on loopback with mutual TLS, each holding synthetic
//! signals (`PLUIS_BENCH_ROWS` per org, default 20,000) and a day budget
//! that lasts the run; the police coordinator asks about 5 subjects
//! across the 3 partners, and every partner must answer every query. Prints the
//! median and 95th-percentile latency of sequential queries, then the
//! sustained rate from 8 concurrent clients. Partners' tables are built
//! once (first query) and excluded by a warm-up.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pluis_client::consortium::{LocalConsortium, PURPOSE};
use pluis_client::matching::{query, subjects_from_args};
use pluis_node::config::load_taxonomy;
use pluis_node::gendata::{generate, person, GenOptions};
use pluis_node::import::{import, ImportOptions, Quiet};
use pluis_proto::Role;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rows: u64 = std::env::var("PLUIS_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let orgs = ["police", "municipality", "school", "healthcare"];
    let mut consortium = LocalConsortium::create(&dir.path().join("bench"), "bench", &orgs).await?;
    let taxonomy = load_taxonomy(None)?;
    let today = pluis_node::cli::today();
    for node in &consortium.nodes {
        // A day budget for the whole run: the default (10,000 keys per
        // partner) runs out after some 2,000 queries, and every query
        // after that would measure a refusal.
        let text = std::fs::read_to_string(&node.config)?.replace(
            "granularity = \"domain\"",
            "granularity = \"domain\"\nmax_keys_per_day = 1000000000",
        );
        std::fs::write(&node.config, text)?;
        let config = pluis_node::Config::load(&node.config)?;
        let file = node.config.with_file_name("signals.csv");
        let options = GenOptions {
            rows,
            seed: 11,
            org: node.org.clone(),
            population: Some(rows * 2),
            today,
        };
        generate(&taxonomy, &options, &mut std::fs::File::create(&file)?)?;
        let store = pluis_node::store::Store::open(&config.data_dir)?;
        let import_options = ImportOptions::new(file, today);
        import(&store, &taxonomy, &import_options, &Quiet)?;
    }
    consortium.start_all()?;
    let identity = Arc::new(
        consortium
            .tls_args("police", Role::Coordinator)
            .load(Role::Coordinator)?,
    );
    let url = consortium.node("police")?.url.clone();
    let subjects = move |i: u64| {
        let keys: Vec<String> = (0..5)
            .map(|k| format!("bsn:{}", person(11, (i * 5 + k) % (rows * 2), today).bsn))
            .collect();
        subjects_from_args(&keys)
    };
    // Warm-up: partners build their tables, channels connect.
    for i in 0..5 {
        query(&url, &identity, PURPOSE, subjects(i)).await?;
    }

    let mut latencies = Vec::new();
    for i in 0..200 {
        let started = Instant::now();
        let answer = query(&url, &identity, PURPOSE, subjects(i)).await?;
        latencies.push(started.elapsed());
        anyhow::ensure!(
            answer.peers.iter().all(|p| p.state == 1),
            "a partner did not answer"
        );
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "case query, 5 subjects, 3 partners + own signals ({rows} signals per org): median {:.1} ms, p95 {:.1} ms (sequential, 200 queries)",
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 95 / 100])
    );

    let clients = 8;
    let window = Duration::from_secs(10);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (url, identity) = (url.clone(), identity.clone());
        tasks.spawn(async move {
            let mut done = 0u64;
            let mut exchanges = HashSet::new();
            while started.elapsed() < window {
                let answer = query(&url, &identity, PURPOSE, subjects(c * 10_000 + done)).await?;
                anyhow::ensure!(
                    answer.peers.iter().all(|p| p.state == 1),
                    "a partner did not answer: {:?}",
                    answer.peers
                );
                exchanges.extend(answer.peers.into_iter().map(|p| p.exchange_id));
                done += 1;
            }
            anyhow::Ok((done, exchanges))
        });
    }
    let mut total = 0;
    let mut exchanges = HashSet::new();
    while let Some(done) = tasks.join_next().await {
        let (done, seen) = done??;
        total += done;
        exchanges.extend(seen);
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "case queries from {clients} concurrent clients: {total} in {seconds:.1} s = {:.0} queries/s; CPU {:.2} ms per query (4 nodes and the clients), {:.0} % of {} cores",
        total as f64 / seconds,
        cpu * 1e3 / total as f64,
        cpu / seconds / cores() * 100.0,
        cores()
    );
    // Queries that came while an exchange with a partner ran share the next.
    println!(
        "partner exchanges: {} for {total} queries × 3 partners = {:.2} queries per exchange",
        exchanges.len(),
        (total * 3) as f64 / exchanges.len().max(1) as f64
    );
    consortium.stop().await?;
    Ok(())
}

/// CPU time (user + system) this process has used, in seconds.
fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second
    // on Linux); after the command name, which may hold spaces.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let fields: Vec<u64> = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect();
            Some(fields.iter().sum::<u64>() as f64 / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}
