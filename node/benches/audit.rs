//! Audit-log benchmark: `cargo bench -p pluis-node --bench audit`.
//!
//! On a real sled store in a temporary directory: appends per second when
//! every append waits until it is on disk (fsync), one caller at a time
//! and from 64 concurrent callers (whose waits share fsyncs: group
//! commit); appends without waiting; and the cost of signing a checkpoint
//! (tree root from the stored subtree hashes, C2SP note, Ed25519).

// A benchmark measures wall time: it reads the clock `clippy.toml` keeps
// out of the product.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Instant;

use pluis_node::Store;
use pluis_node::{signer, AuditLog};
use pluis_proto::pb;

fn entry(i: u64) -> pb::AuditEntry {
    pb::AuditEntry {
        kind: pb::audit_entry::Kind::ExchangeServed as i32,
        actor: "spiffe://bench/org/police/node".into(),
        counterparty: "spiffe://bench/org/school/node".into(),
        exchange_id: i.to_be_bytes().repeat(2),
        purpose: "exploitation-assessment".into(),
        legal_basis: "partnership agreement, art. 4".into(),
        keys_asked: 5,
        keys_evaluated: 5,
        request_digest: vec![1; 32],
        response_digest: vec![2; 32],
        epoch: 1,
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(dir.path())?);
    let log = Arc::new(AuditLog::open(
        store.clone(),
        signer(&store.log_seed(), "bench", "school")?,
        "spiffe://bench/org/school/node".into(),
    )?);

    let n = 2_000u64;
    let started = Instant::now();
    for i in 0..n {
        log.record(&entry(i)).await?;
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "durable appends, 1 caller: {n} in {took:.2} s = {:.0} appends/s ({:.2} ms each)",
        n as f64 / took,
        took * 1e3 / n as f64
    );

    let callers = 64u64;
    let each = 100u64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..callers {
        let log = log.clone();
        tasks.spawn(async move {
            for i in 0..each {
                log.record(&entry(c * 1000 + i)).await?;
            }
            Ok::<_, pluis_node::AuditError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "durable appends, {callers} concurrent callers: {} in {took:.2} s = {:.0} appends/s",
        callers * each,
        (callers * each) as f64 / took
    );

    let started = Instant::now();
    for i in 0..n {
        store.append_audit(&entry(i))?;
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "appends without waiting for disk: {:.0} appends/s",
        n as f64 / took
    );
    log.durable().await?;

    let rounds = 500;
    let started = Instant::now();
    for i in 0..rounds {
        // A new entry each round, so that every checkpoint is a new one.
        log.record(&entry(i)).await?;
    }
    let with_append = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for i in 0..rounds {
        log.record(&entry(i)).await?;
        log.checkpoint()?;
    }
    let with_checkpoint = started.elapsed().as_secs_f64();
    println!(
        "checkpoint signing (root of {} entries, note, Ed25519): {:.0} µs each",
        store.audit_size()?,
        (with_checkpoint - with_append) * 1e6 / rounds as f64
    );
    Ok(())
}
