//! `pluis demo`: a local consortium from nothing, end to end.
//!
//! Four organisations (police, municipality, school, healthcare) get a dev
//! PKI and a real node each on loopback; each org's coordinator asks its own
//! node for its status over mutual TLS, which makes every node check every
//! peer. The police coordinator asks about a family; the municipality then
//! loads a new signal into its running node and the same question shows
//! it; a stolen coordinator laptop is locked out by revoking its
//! certificate. Every node's log is exported, verified and cross-checked,
//! then all nodes stop cleanly. Any failure fails the demo.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pluis_proto::Role;
use pluis_transport::tls::TlsIdentity;

use crate::dev::consortium::{LocalConsortium, PURPOSE};

/// The demo's organisations.
pub const ORGS: [&str; 4] = ["police", "municipality", "school", "healthcare"];

/// The demo family: which partner knows whom, with which signal.
const FAMILY: [(&str, &str, &str); 4] = [
    ("police", "111222333", "picked_up_by_unrelated_adult"),
    ("school", "111222333", "frequent_absence"),
    ("healthcare", "123456782", "unexplained_injuries"),
    ("municipality", "240000006", "household_debts"),
];

/// Synthetic rows per organisation; one shared population, so they overlap.
const DEMO_ROWS: u64 = 5_000;
const DEMO_SEED: u64 = 2026;

/// Generates and imports an org's synthetic signals; returns a summary.
fn import_synthetic(org: &str, config_path: &std::path::Path) -> anyhow::Result<String> {
    use pluis_node::config::load_taxonomy;
    use pluis_node::gendata::{generate, GenOptions};
    use pluis_node::{import, ImportOptions, Quiet};

    let config = pluis_node::Config::load(config_path)?;
    let taxonomy = load_taxonomy(config.taxonomy.as_deref())?;
    let today = pluis_node::cli::today();
    let file = config_path.with_file_name("signals.csv");
    let options = GenOptions {
        rows: DEMO_ROWS,
        seed: DEMO_SEED,
        org: org.to_owned(),
        population: Some(4 * DEMO_ROWS),
        today,
    };
    let mut csv = Vec::new();
    generate(&taxonomy, &options, &mut csv)?;
    // The family the demo's case query is about, known to three partners.
    let recent = pluis_proto::identifier::iso_date(today - time::Duration::days(40));
    for (family_org, bsn, signal) in FAMILY {
        if family_org == org {
            csv.extend(format!("{bsn},,,,{signal},{recent},demo-family\n").bytes());
        }
    }
    std::fs::write(&file, csv)?;
    let store = pluis_node::Store::open(&config.data_dir)?;
    let report = import(
        &store,
        &taxonomy,
        &ImportOptions::new(file.clone(), today),
        &Quiet,
    )?;
    let domains: Vec<&str> = pluis_node::gendata::domains_of(org)
        .iter()
        .map(|d| d.code())
        .collect();
    Ok(format!(
        "{} rows → {} signals stored, sealed ({})",
        report.rows,
        store.len(),
        domains.join(", ")
    ))
}

/// `path` as the demo shows it: whole where it outlives the demo
/// (`--keep`), else only its file name (the directory will be gone).
fn shown(path: &Path, kept: bool) -> String {
    if kept {
        return path.display().to_string();
    }
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// The operator's day: a live import into a running node, and a stolen
/// laptop's certificate revoked, both without stopping anything.
async fn live_operations(
    consortium: &LocalConsortium,
    police: &str,
    coordinator: &TlsIdentity,
    subjects: Vec<pluis_proto::pb::Subject>,
    kept: bool,
) -> anyhow::Result<()> {
    println!("\n== Live: the municipality loads new signals into its running node");
    let municipality = consortium.node("municipality")?;
    let config = pluis_node::Config::load(&municipality.config)?;
    let file = municipality.config.with_file_name("today.csv");
    let recent =
        pluis_proto::identifier::iso_date(pluis_node::cli::today() - time::Duration::days(1));
    std::fs::write(
        &file,
        format!("bsn,signal,registered_on,local_ref\n240000006,unregistered_address,{recent},demo-family\n"),
    )?;
    let mut admin = pluis_node::admin::connect(&config.data_dir)
        .await
        .context("the municipality node's admin socket")?;
    let options = pluis_node::ImportOptions::new(file, pluis_node::cli::today());
    let reply = pluis_node::admin::import(&mut admin, &options).await?;
    println!(
        "   {} row through the admin socket: {} new signal, {} in all; partners were served throughout",
        reply.rows, reply.added, reply.total
    );
    let answer =
        crate::coordinator::matching::query(police, coordinator, PURPOSE, subjects).await?;
    let case: Vec<&str> = answer
        .case_total
        .as_ref()
        .map(|c| c.domains.iter().map(|d| d.domain.as_str()).collect())
        .unwrap_or_default();
    let expected = ["safety", "education", "health", "finances", "housing"];
    if case != expected {
        bail!("after the live import the case query found {case:?}, expected {expected:?}");
    }
    println!(
        "   the same question now shows {} life domains: {}",
        case.len(),
        case.join(", ")
    );
    stolen_laptop(consortium, police, coordinator, kept).await
}

/// A police coordinator's laptop is stolen: its certificate is revoked,
/// the police node reloads its CRL, the laptop is refused and the
/// coordinator's own certificate still works.
async fn stolen_laptop(
    consortium: &LocalConsortium,
    police: &str,
    coordinator: &TlsIdentity,
    kept: bool,
) -> anyhow::Result<()> {
    println!("\n== Live: a police coordinator's laptop is stolen; its certificate is revoked");
    let laptop = crate::dev::certs::issue(&crate::dev::certs::IssueOptions {
        dir: consortium.dir.clone(),
        org: "police".into(),
        role: Role::Coordinator,
        out: Some(consortium.dir.join("police").join("laptop")),
    })?;
    let laptop_identity = crate::connect::TlsArgs {
        ca: consortium.dir.join("ca.pem"),
        cert: laptop.cert.clone(),
        key: laptop.key.clone(),
    }
    .load(Role::Coordinator)?;
    crate::coordinator::status::fetch(police, &laptop_identity).await?;
    println!(
        "   the laptop's certificate works: {}",
        shown(&laptop.cert, kept)
    );
    let revoked = crate::dev::certs::revoke(&crate::dev::certs::RevokeOptions {
        dir: consortium.dir.clone(),
        serials: Vec::new(),
        certs: vec![laptop.cert.clone()],
        reason: crate::dev::certs::Reason::KeyCompromise,
        crl: None,
    })?;
    let police_config = pluis_node::Config::load(&consortium.node("police")?.config)?;
    let mut admin = pluis_node::admin::connect(&police_config.data_dir)
        .await
        .context("the police node's admin socket")?;
    let reloaded = admin
        .reload(pluis_proto::pb::ReloadRequest {})
        .await
        .map_err(|status| anyhow::anyhow!("reload: {}", status.message()))?
        .into_inner();
    println!(
        "   {} now lists {} certificate (CRL number {}); the police node reloaded it ({})",
        shown(&revoked.crl, kept),
        revoked.total,
        revoked.number,
        reloaded.detail
    );
    match crate::coordinator::status::fetch(police, &laptop_identity).await {
        Ok(_) => bail!("the revoked laptop certificate was still accepted"),
        Err(e) => println!("   the laptop is refused: {e:#}"),
    }
    crate::coordinator::status::fetch(police, coordinator).await?;
    println!("   the coordinator's own certificate still works");
    Ok(())
}

/// Runs the demo; with `keep`, its consortium is left in that directory;
/// with `ui`, the nodes keep running after the checks and the police
/// coordinator's page is served until Ctrl-C.
pub async fn run(keep: Option<PathBuf>, ui: bool) -> anyhow::Result<()> {
    let temp;
    // Paths are shown only where they outlive the demo.
    let kept = keep.is_some();
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
    if kept {
        println!("   dev PKI and configs in {}", dir.display());
    } else {
        println!("   dev PKI and configs in a temporary directory, removed at the end (--keep DIR keeps them)");
    }
    let mut consortium = LocalConsortium::create(&dir, "demo", &ORGS).await?;

    println!("\n== Each organisation imports its (synthetic) signals");
    for node in &consortium.nodes {
        let counts = import_synthetic(&node.org, &node.config)?;
        println!("   {:13} {counts}", node.org);
    }

    consortium.start_all()?;
    println!("\n== Four nodes on loopback, mutual TLS");
    for node in &consortium.nodes {
        println!("   node {:13} listening on {}", node.org, node.url);
    }
    let unreachable = statuses(&consortium).await?;
    let coordinator = consortium
        .tls_args("police", Role::Coordinator)
        .load(Role::Coordinator)?;
    let police = consortium.node("police")?.url.clone();
    family_query(&police, &coordinator).await?;
    live_operations(&consortium, &police, &coordinator, family(), kept).await?;
    audit_all(&consortium, &dir.join("audit"), kept).await?;
    if ui {
        serve_ui(&police, coordinator).await?;
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

/// The police coordinator's page on the running consortium, until Ctrl-C
/// or the page's stop button.
async fn serve_ui(police: &str, coordinator: TlsIdentity) -> anyhow::Result<()> {
    println!("\n== The police coordinator's page (pluis ui), on the running consortium");
    let options = crate::ui::UiOptions {
        node: police.to_owned(),
        identity: coordinator,
        idle: std::time::Duration::from_secs(30 * 60),
    };
    let then = [
        format!(
            "   open the link once, within {} minutes; ask about the family: BSN 111222333, 123456782 and 240000006",
            crate::ui::LAUNCH_MINUTES
        ),
        "   the nodes run until Ctrl-C (or the page's stop button)".to_owned(),
    ];
    crate::ui::serve_until_stopped(options, &then, false).await
}

/// Each coordinator asks its own node for its status, which makes every
/// node check every peer; how many peer links were unreachable.
async fn statuses(consortium: &LocalConsortium) -> anyhow::Result<usize> {
    println!("\n== Each coordinator asks its own node for its status (mTLS)");
    let mut unreachable = 0;
    for node in &consortium.nodes {
        let identity = consortium
            .tls_args(&node.org, Role::Coordinator)
            .load(Role::Coordinator)?;
        let status = crate::coordinator::status::fetch(&node.url, &identity).await?;
        print!("{}", crate::coordinator::status::render(&status));
        unreachable += status.peers.iter().filter(|p| !p.reachable).count();
    }
    Ok(unreachable)
}

/// The family the police coordinator asks about: three persons.
fn family() -> Vec<pluis_proto::pb::Subject> {
    crate::coordinator::matching::subjects_from_args(&[
        "bsn:111222333".to_owned(),
        "bsn:123456782".to_owned(),
        "bsn:240000006".to_owned(),
    ])
}

/// The police coordinator's question about the family, which must show
/// the four domains the synthetic data gives it.
async fn family_query(police: &str, coordinator: &TlsIdentity) -> anyhow::Result<()> {
    println!("\n== The police coordinator asks about a family (three persons) across all partners");
    let answer =
        crate::coordinator::matching::query(police, coordinator, PURPOSE, family()).await?;
    print!("{}", crate::coordinator::matching::render(&answer));
    let case = answer.case_total.as_ref().map(|c| {
        c.domains
            .iter()
            .map(|d| d.domain.as_str())
            .collect::<Vec<_>>()
    });
    let expected = ["safety", "education", "health", "finances"];
    if case.as_deref() != Some(&expected[..]) {
        bail!("the case query found {case:?}, expected {expected:?}");
    }
    println!(
        "   as expected: the case shows signals in {} life domains",
        expected.len()
    );
    Ok(())
}

/// Each organisation's auditor exports its node's log and verifies it
/// against the pinned key; the police and school logs are cross-checked
/// and a report is written for the privacy officer.
async fn audit_all(
    consortium: &LocalConsortium,
    audit_dir: &Path,
    kept: bool,
) -> anyhow::Result<()> {
    println!("\n== Each organisation's auditor exports and verifies its node's signed log");
    std::fs::create_dir_all(audit_dir)
        .with_context(|| format!("creating {}", audit_dir.display()))?;
    let mut logs = std::collections::BTreeMap::new();
    for node in &consortium.nodes {
        let auditor = consortium
            .tls_args(&node.org, Role::Auditor)
            .load(Role::Auditor)?;
        let bundle_path = audit_dir.join(format!("{}.jsonl", node.org));
        crate::auditor::export(&node.url, &auditor, &bundle_path).await?;
        // Pinned: the key the partners' configs name, not the bundle's word.
        let config = pluis_node::Config::load(&node.config)?;
        let key = pluis_node::log_verifier(&config.data_dir, &consortium.name, &node.org)?;
        let bundle = crate::auditor::read_bundle(&bundle_path)?;
        let verified = crate::auditor::verify(&bundle, Some(&key.to_string()))
            .with_context(|| format!("{}'s log", node.org))?;
        println!(
            "   {:13} {} entries, {} signed checkpoints: verified ({})",
            node.org,
            verified.entries.len(),
            verified.checkpoints.len(),
            shown(&bundle_path, kept)
        );
        logs.insert(node.org.clone(), (verified, key));
    }
    let (Some(police), Some(school)) = (logs.get("police"), logs.get("school")) else {
        bail!("the police and school logs are missing");
    };
    let crossed = crate::auditor::cross_check((&police.0, &police.1), (&school.0, &school.1));
    println!("   cross-check of the police and school logs:");
    for line in crate::auditor::render_cross_check(&crossed, "police", "school").lines() {
        println!("     {line}");
    }
    if !crossed.discrepancies.is_empty() || crossed.matched == 0 {
        bail!("the police and school logs do not agree");
    }
    let logs: Vec<crate::auditor::report::NodeLog> = logs
        .into_iter()
        .map(|(org, (log, key))| crate::auditor::report::NodeLog {
            origin: pluis_proto::log::origin(&consortium.name, &org),
            verifier_key: key.to_string(),
            log,
        })
        .collect();
    let report = audit_dir.join("report.html");
    std::fs::write(&report, crate::auditor::report::render(&logs))
        .with_context(|| format!("writing {}", report.display()))?;
    if kept {
        println!("   report for the privacy officer: {}", report.display());
    } else {
        println!("   report for the privacy officer written (kept with --keep DIR)");
    }
    Ok(())
}
