//! Case-query benchmark: `cargo bench -p pluis-client --bench case_query`.
//!
//! Four real nodes on loopback with mutual TLS, each holding synthetic
//! signals (`PLUIS_BENCH_ROWS` per org, default 20,000) and a day budget
//! that lasts the run; the police coordinator asks about 5 subjects (each
//! by BSN and name key, so with every key family a name yields) across
//! the 3 partners, and every partner must answer every query. Prints the
//! median and 95th-percentile latency of sequential queries, then the
//! sustained rate from 8 concurrent clients. Partners' tables are built
//! once (first query) and excluded by a warm-up.
//!
//! Then the same 8 clients run again while the school's operator imports
//! `PLUIS_BENCH_IMPORT_ROWS` (default 1,000,000) synthetic rows into the
//! running school node through its admin socket (`0` skips this phase):
//! the rate during the import as a ratio to the rate without (goal ≥ 0.7),
//! and the import's own rows/s, from the same run.

// A benchmark measures wall time: it reads the clock `clippy.toml` keeps
// out of the product.
#![allow(clippy::disallowed_methods)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use std::time::{Duration, Instant};

use pluis_client::coordinator::matching::{query, subjects_from_args};
use pluis_client::dev::consortium::{LocalConsortium, PURPOSE};
use pluis_node::config::load_taxonomy;
use pluis_node::gendata::{generate, person, GenOptions, Person};
use pluis_node::{import, ImportOptions, Quiet};
use pluis_proto::Role;

/// A person's keys as a coordinator names them: the BSN and the name key,
/// so that every key family the name supports is asked too (some 15 OPRF
/// inputs per person).
fn subject_keys(p: &Person) -> String {
    format!(
        "bsn:{};nd:{},{},{}",
        p.bsn,
        p.surname,
        p.initial,
        pluis_proto::identifier::iso_date(p.birth_date)
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The nodes' own log lines, with PLUIS_BENCH_LOG=info (say).
    if let Ok(filter) = std::env::var("PLUIS_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let rows: u64 = std::env::var("PLUIS_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let today = pluis_node::cli::today();
    let taxonomy = load_taxonomy(None)?;
    let consortium = consortium(dir.path(), rows, None).await?;
    let identity = Arc::new(
        consortium
            .tls_args("police", Role::Coordinator)
            .load(Role::Coordinator)?,
    );
    let url = consortium.node("police")?.url.clone();
    let subjects = move |i: u64| {
        let keys: Vec<String> = (0..5)
            .map(|k| subject_keys(&person(11, (i * 5 + k) % (rows * 2), today)))
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
    let stop = Arc::new(AtomicBool::new(false));
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            stop.store(true, Ordering::Release);
        })
    };
    let (total, exchanges) = run_clients(
        clients,
        &url,
        &identity,
        &subjects,
        &stop,
        0,
        &Arc::new(AtomicU64::new(0)),
    )
    .await?;
    timer.await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let rate = total as f64 / seconds;
    println!(
        "case queries from {clients} concurrent clients: {total} in {seconds:.1} s = {rate:.0} queries/s; CPU {:.2} ms per query (4 nodes and the clients), {:.0} % of {} cores",
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

    let import_rows: u64 = std::env::var("PLUIS_BENCH_IMPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if import_rows > 0 {
        // The school's nightly export, into the running school node.
        let school = consortium.node("school")?;
        let file = school.config.with_file_name("nightly.csv");
        let options = GenOptions {
            rows: import_rows,
            seed: 12,
            org: "school".into(),
            population: Some(import_rows * 2),
            today,
        };
        generate(
            &taxonomy,
            &options,
            &mut std::io::BufWriter::new(std::fs::File::create(&file)?),
        )?;
        let data_dir = pluis_node::Config::load(&school.config)?.data_dir;
        let mut admin = pluis_node::admin::connect(&data_dir)
            .await
            .context("the school node's admin socket")?;
        let import_options = ImportOptions::new(file, today);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let importing = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let reply = pluis_node::admin::import(&mut admin, &import_options).await;
                stop.store(true, Ordering::Release);
                reply
            })
        };
        let answered = Arc::new(AtomicU64::new(0));
        let timeline = {
            let (stop, answered) = (stop.clone(), answered.clone());
            tokio::spawn(async move {
                let mut rates = Vec::new();
                let (mut last, mut since) = (0, Instant::now());
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let stopped = stop.load(Ordering::Acquire);
                    if stopped || since.elapsed() >= Duration::from_secs(5) {
                        let now = answered.load(Ordering::Relaxed);
                        rates.push(((now - last) as f64 / since.elapsed().as_secs_f64()) as u64);
                        (last, since) = (now, Instant::now());
                    }
                    if stopped {
                        return rates;
                    }
                }
            })
        };
        let (total, _) =
            run_clients(clients, &url, &identity, &subjects, &stop, 1, &answered).await?;
        let reply = importing.await??;
        let seconds = started.elapsed().as_secs_f64();
        let rates: Vec<String> = timeline.await?.iter().map(u64::to_string).collect();
        println!("queries/s per 5 s during the import: {}", rates.join(" "));
        let during = total as f64 / seconds;
        println!(
            "case queries from {clients} concurrent clients during a live import of {} rows into the school node: {total} in {seconds:.1} s = {during:.0} queries/s; ratio to without the import: {:.2} (goal >= 0.70)",
            reply.rows,
            during / rate
        );
        println!(
            "the live import: {} rows in {seconds:.1} s = {:.0} rows/s ({} new signals, {} in all), every query answered by every partner throughout",
            reply.rows,
            reply.rows as f64 / seconds,
            reply.added,
            reply.total
        );
    }
    consortium.stop().await?;
    let changes: u32 = std::env::var("PLUIS_BENCH_EPOCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    if changes > 0 {
        epoch_changes(rows, changes).await?;
    }
    Ok(())
}

/// The four orgs' nodes, each with `rows` synthetic signals and a day
/// budget for the whole run, started; with `epoch` seconds per epoch if
/// given.
async fn consortium(
    dir: &std::path::Path,
    rows: u64,
    epoch: Option<u64>,
) -> anyhow::Result<LocalConsortium> {
    let orgs = ["police", "municipality", "school", "healthcare"];
    let mut consortium = LocalConsortium::create(&dir.join("bench"), "bench", &orgs).await?;
    let taxonomy = load_taxonomy(None)?;
    let today = pluis_node::cli::today();
    for node in &consortium.nodes {
        // A day budget for the whole run: the default (10,000 keys per
        // partner) runs out after some 2,000 queries, and every query
        // after that would measure a refusal.
        consortium.edit_peer_policies(&node.org, |peer| {
            peer.max_keys_per_day = Some(1_000_000_000)
        })?;
        if let Some(secs) = epoch {
            consortium.edit_config(&node.org, |file| {
                file.epoch_length = Some(format!("{secs}s"));
                file.epoch_grace = Some(format!("{}s", secs / 6));
            })?;
        }
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
        let store = pluis_node::Store::open(&config.data_dir)?;
        let import_options = ImportOptions::new(file, today);
        import(&store, &taxonomy, &import_options, &Quiet)?;
    }
    consortium.start_all()?;
    Ok(consortium)
}

/// Seconds per epoch in the epoch-change phase.
const EPOCH_SECS: u64 = 30;

/// The first case query after each of `changes` epoch changes, against
/// the median of sequential queries, in a consortium of its own whose
/// epochs last [`EPOCH_SECS`]: every partner needs a new table for the
/// new epoch, which should be ready before it starts.
async fn epoch_changes(rows: u64, changes: u32) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let consortium = consortium(dir.path(), rows, Some(EPOCH_SECS)).await?;
    let identity = consortium
        .tls_args("police", Role::Coordinator)
        .load(Role::Coordinator)?;
    let url = consortium.node("police")?.url.clone();
    let today = pluis_node::cli::today();
    let subjects = |i: u64| {
        let keys: Vec<String> = (0..5)
            .map(|k| subject_keys(&person(11, (i * 5 + k) % (rows * 2), today)))
            .collect();
        subjects_from_args(&keys)
    };
    let timed = |i: u64| {
        let (url, identity, subjects) = (&url, &identity, subjects(i));
        async move {
            let started = Instant::now();
            let answer = query(url, identity, PURPOSE, subjects).await?;
            anyhow::ensure!(
                answer.peers.iter().all(|p| p.state == 1),
                "a partner did not answer: {:?}",
                answer.peers
            );
            anyhow::Ok(started.elapsed().as_secs_f64() * 1e3)
        }
    };
    // Warm-up: partners build their first tables (on demand, so a
    // partner may miss this first deadline), channels connect.
    for i in 0..5 {
        query(&url, &identity, PURPOSE, subjects(i)).await?;
    }
    let mut sequential = Vec::new();
    for i in 0..100 {
        sequential.push(timed(100 + i).await?);
    }
    sequential.sort_by(f64::total_cmp);
    let median = sequential[sequential.len() / 2];
    // Each change comes after some 15 s without queries; so does a
    // control query half an epoch later, with no change: what the idle
    // time alone costs.
    let mut firsts = Vec::new();
    let mut idle = Vec::new();
    let since_unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let mut change = (since_unix() / EPOCH_SECS as f64).ceil() * EPOCH_SECS as f64;
    for n in 0..u64::from(changes) {
        let wait = change - since_unix() + 0.05;
        tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
        firsts.push(timed(1_000 + n).await?);
        let half = change + EPOCH_SECS as f64 / 2.0 - since_unix();
        tokio::time::sleep(Duration::from_secs_f64(half.max(0.0))).await;
        idle.push(timed(2_000 + n).await?);
        change += EPOCH_SECS as f64;
    }
    let worst = firsts.iter().copied().fold(0.0, f64::max);
    let shown = |all: &[f64]| {
        all.iter()
            .map(|ms| format!("{ms:.1} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "first case query after an epoch change ({changes} changes, {EPOCH_SECS} s epochs, 15 s after the last query): {}; median of 100 sequential queries {median:.1} ms; worst ratio {:.2} (goal <= 2.00)",
        shown(&firsts),
        worst / median
    );
    let worst_idle = idle.iter().copied().fold(0.0, f64::max);
    println!(
        "control, a query 15 s after the last with no epoch change: {}; worst change / worst control: {:.2}",
        shown(&idle),
        worst / worst_idle
    );
    consortium.stop().await?;
    Ok(())
}

/// Runs `clients` concurrent clients until `stop`; every partner must
/// answer every query. Returns the queries done and the partner
/// exchanges they rode on.
async fn run_clients(
    clients: u64,
    url: &str,
    identity: &Arc<pluis_transport::tls::TlsIdentity>,
    subjects: &(impl Fn(u64) -> Vec<pluis_proto::pb::Subject> + Clone + Send + 'static),
    stop: &Arc<AtomicBool>,
    round: u64,
    answered: &Arc<AtomicU64>,
) -> anyhow::Result<(u64, HashSet<Vec<u8>>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (url, identity, subjects, stop, answered) = (
            url.to_owned(),
            identity.clone(),
            subjects.clone(),
            stop.clone(),
            answered.clone(),
        );
        tasks.spawn(async move {
            let mut done = 0u64;
            let mut exchanges = HashSet::new();
            while !stop.load(Ordering::Acquire) {
                let subject = round * 1_000_000 + c * 10_000 + done;
                let answer = query(&url, &identity, PURPOSE, subjects(subject)).await?;
                anyhow::ensure!(
                    answer.peers.iter().all(|p| p.state == 1),
                    "a partner did not answer: {:?}",
                    answer.peers
                );
                exchanges.extend(answer.peers.into_iter().map(|p| p.exchange_id));
                done += 1;
                answered.fetch_add(1, Ordering::Relaxed);
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
    Ok((total, exchanges))
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
