//! The `pluis-node` command line: one function per subcommand.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Context};
use clap::{ArgGroup, Parser, Subcommand};
use pluis_proto::identifier::{Bsn, SubjectKey};
use time::Date;

use crate::config::load_taxonomy;
use crate::import::{ImportOptions, Progress};
use crate::store::Store;
use crate::{Config, Node};
use pluis_proto::pb::admin_client::AdminClient;
use pluis_proto::{pb, Role};

/// A Pluis partner node.
#[derive(Debug, Parser)]
#[command(name = "pluis-node", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `pluis-node` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC over mutual TLS until SIGTERM or Ctrl-C.
    Serve {
        /// The node's TOML config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Import signals from CSV or JSON Lines (`-` for stdin); all or nothing.
    Import {
        /// The node's TOML config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Replace all of this organisation's signals in one atomic step.
        #[arg(long)]
        replace: bool,
        /// Store the valid rows; write the invalid ones to a rejects file.
        #[arg(long)]
        skip_invalid: bool,
        /// Where rejects go with --skip-invalid (default: PATH.rejects).
        #[arg(long, value_name = "FILE", requires = "skip_invalid")]
        rejects: Option<PathBuf>,
        /// The file to import, or `-` for standard input.
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
    /// Have the node serving this config's data_dir read its config file
    /// (the one it was started with) again and put it in force (policy,
    /// peers, certificate and key, CRLs), as SIGHUP does; waits until it
    /// is, or says why not.
    Reload {
        /// The node's TOML config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Count stored signals per domain and signal, active and expired.
    Signals {
        /// The node's TOML config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Remove expired signals first.
        #[arg(long)]
        purge_expired: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Erase a person's signals (right to erasure).
    #[command(group(ArgGroup::new("who").required(true).args(["bsn", "key", "local_ref"])))]
    Forget {
        /// The node's TOML config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The person's BSN.
        #[arg(long)]
        bsn: Option<String>,
        /// A person key: bsn:DIGITS or nd:SURNAME,INITIAL,YYYY-MM-DD.
        #[arg(long)]
        key: Option<String>,
        /// The organisation's own case reference.
        #[arg(long)]
        local_ref: Option<String>,
    },
    /// Print the verifier key of this node's audit log, for partners'
    /// `log_key` and for auditors (`pluis audit verify --pubkey`).
    Pubkey {
        /// The node's TOML config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print the signal taxonomy in force.
    Taxonomy {
        /// The node's TOML config file (for its `taxonomy` setting).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write synthetic import CSV (for demos, tests, benchmarks).
    GenData {
        /// Number of rows.
        #[arg(long)]
        rows: u64,
        /// Population seed: the same seed gives overlapping populations.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The organisation the rows are for (decides the domains).
        #[arg(long, default_value = "police")]
        org: String,
        /// Population size (default: 2 × rows).
        #[arg(long)]
        population: Option<u64>,
        /// Output file (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Today's date, UTC (by the system clock: see [`crate::clock`]).
pub fn today() -> Date {
    crate::clock::today()
}

/// Runs one subcommand to completion. `import`, `signals` and `forget`
/// go to the node serving the config's data directory, through its admin
/// socket, if one does; otherwise they open the store themselves.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => serve(&config).await,
        Command::Import {
            config,
            replace,
            skip_invalid,
            rejects,
            path,
        } => {
            let options = ImportOptions {
                path,
                replace,
                skip_invalid,
                rejects,
                today: today(),
            };
            let config = Config::load(&config)?;
            match crate::admin::connect(&config.data_dir).await {
                Some(admin) => import_live(admin, &options).await,
                None => tokio::task::block_in_place(|| import(&config, &options)),
            }
        }
        Command::Reload { config } => reload(&config).await,
        Command::Signals {
            config,
            purge_expired,
            json,
        } => signals(&config, purge_expired, json).await,
        Command::Forget {
            config,
            bsn,
            key,
            local_ref,
        } => forget(&config, bsn, key, local_ref).await,
        Command::Taxonomy { config, json } => taxonomy(config.as_deref(), json),
        Command::Pubkey { config } => pubkey(&config),
        Command::GenData {
            rows,
            seed,
            org,
            population,
            out,
        } => gen_data(rows, seed, org, population, out.as_deref()),
    }
}

async fn serve(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let mut node = Node::new(config)?.reload_on_sighup();
    let listener = node.bind().await?;
    let metrics = node.bind_metrics()?;
    // Stable lines on stdout, for scripts and test harnesses that bind
    // port 0 and need to know the port: first the gRPC address, then the
    // metrics address if there is one.
    println!("listening on https://{}", listener.local_addr()?);
    if let Some(addr) = metrics {
        println!("metrics on http://{addr}/metrics");
    }
    node.serve(listener, shutdown_signal()).await?;
    Ok(())
}

/// A client of the node serving `config`'s data directory, or why there
/// is none.
async fn admin_of(config: &Config) -> anyhow::Result<AdminClient<tonic::transport::Channel>> {
    match crate::admin::connect(&config.data_dir).await {
        Some(admin) => Ok(admin),
        None => bail!(
            "no node is serving {} (nothing answers on {}); a node reads its config when it starts",
            config.data_dir.display(),
            crate::admin::socket_path(&config.data_dir).display()
        ),
    }
}

async fn reload(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let mut admin = admin_of(&config).await?;
    let reply = admin
        .reload(pb::ReloadRequest {})
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    println!(
        "policy loaded: sha256 {} ({})",
        pluis_proto::hex(&reply.config_sha256),
        reply.detail
    );
    Ok(())
}

fn pubkey(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let tls = &config.tls;
    let identity = crate::tls::TlsIdentity::load(&tls.ca, &tls.cert, &tls.key, Role::Node)?;
    let id = identity.id();
    let key = crate::audit::log_verifier(&config.data_dir, id.consortium(), id.org())?;
    println!("{key}");
    Ok(())
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&config.data_dir)?)
}

/// Progress for a terminal (a live counter) or a pipe (a line per 100,000).
struct CliProgress {
    bar: OnceLock<indicatif::ProgressBar>,
    terminal: bool,
    printed: AtomicU64,
}

impl Progress for CliProgress {
    fn rows_checked(&self, rows: u64) {
        if self.terminal && rows > 10_000 {
            let bar = self.bar.get_or_init(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{spinner} {human_pos} rows checked and sealed ({per_sec}) {elapsed}",
                ) {
                    bar.set_style(style);
                }
                bar
            });
            bar.set_position(rows);
        } else if !self.terminal && rows / 100_000 > self.printed.load(Ordering::Relaxed) {
            self.printed.store(rows / 100_000, Ordering::Relaxed);
            eprintln!("import: {rows} rows checked");
        }
    }

    fn writing(&self, signals: u64) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
        if self.terminal || signals > 100_000 {
            eprintln!("import: writing {signals} signals in one atomic step…");
        }
    }
}

fn import(config: &Config, options: &ImportOptions) -> anyhow::Result<()> {
    let taxonomy = load_taxonomy(config.taxonomy.as_deref())?;
    let store = open_store(config)?;
    let progress = CliProgress {
        bar: OnceLock::new(),
        terminal: std::io::stderr().is_terminal(),
        printed: AtomicU64::new(0),
    };
    let report = crate::import::import(&store, &taxonomy, options, &progress)?;
    tracing::info!(
        rows = report.rows,
        added = report.stored.added,
        unchanged = report.stored.unchanged,
        removed = report.stored.removed,
        expired = report.already_expired,
        rejected = report.rejected,
        replace = options.replace,
        "import committed"
    );
    print_import(options, &report.reply(store.len() as u64));
    Ok(())
}

/// What an import did, as one block of lines (the same for a stopped
/// node and a running one).
fn print_import(options: &ImportOptions, reply: &pb::ImportReply) {
    println!(
        "imported {}: {} rows; {} new signals, {} already stored{}{}",
        options.path.display(),
        reply.rows,
        reply.added,
        reply.unchanged,
        if options.replace {
            format!(", {} removed (replace)", reply.removed)
        } else {
            String::new()
        },
        if reply.already_expired > 0 {
            format!(", {} already expired (not stored)", reply.already_expired)
        } else {
            String::new()
        }
    );
    if !reply.rejects_file.is_empty() {
        println!(
            "{} invalid rows written to {}",
            reply.rejected, reply.rejects_file
        );
    }
    println!("{} signals stored in all", reply.total);
}

/// Hands the file to the running node, over its admin socket.
async fn import_live(
    mut admin: AdminClient<tonic::transport::Channel>,
    options: &ImportOptions,
) -> anyhow::Result<()> {
    eprintln!(
        "import: handing {} to the running node (it goes on serving its partners)…",
        options.path.display()
    );
    let reply = crate::admin::import(&mut admin, options).await?;
    print_import(options, &reply);
    Ok(())
}

async fn signals(config_path: &Path, purge: bool, json: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let today = today();
    let (purged, counts) = match crate::admin::connect(&config.data_dir).await {
        Some(mut admin) => {
            let reply = admin
                .signals(pb::SignalsRequest {
                    purge_expired: purge,
                })
                .await
                .map_err(|status| anyhow::anyhow!("the node: {}", status.message()))?
                .into_inner();
            let mut counts = crate::store::SignalCounts {
                purged_total: reply.purged_total,
                forgotten_total: reply.forgotten_total,
                ..Default::default()
            };
            for row in reply.signals {
                let domain = row
                    .domain
                    .parse()
                    .map_err(|e| anyhow::anyhow!("the node sent domain {:?}: {e}", row.domain))?;
                counts
                    .by_signal
                    .insert((domain, row.signal), (row.active, row.expired));
            }
            (reply.purged as usize, counts)
        }
        None => tokio::task::block_in_place(|| -> anyhow::Result<_> {
            let store = open_store(&config)?;
            let purged = if purge {
                store.purge_expired(today)?
            } else {
                0
            };
            Ok((purged, store.counts(today)?))
        })?,
    };
    if purge {
        tracing::info!(purged, "expired signals purged");
        if !json {
            println!("purged {purged} expired signals");
        }
    }
    if json {
        let rows: Vec<serde_json::Value> = counts
            .by_signal
            .iter()
            .map(|((domain, signal), (active, expired))| {
                serde_json::json!({"domain": domain, "signal": signal, "active": active, "expired": expired})
            })
            .collect();
        let out = serde_json::json!({
            "signals": rows,
            "purged_total": counts.purged_total,
            "forgotten_total": counts.forgotten_total,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{:<12} {:<32} {:>9} {:>9}",
        "domain", "signal", "active", "expired"
    );
    let (mut active, mut expired) = (0, 0);
    for ((domain, signal), (a, e)) in &counts.by_signal {
        println!("{:<12} {:<32} {:>9} {:>9}", domain.code(), signal, a, e);
        active += a;
        expired += e;
    }
    println!("{:<12} {:<32} {:>9} {:>9}", "total", "", active, expired);
    println!(
        "purged for expiry so far: {}; erased on request so far: {}",
        counts.purged_total, counts.forgotten_total
    );
    Ok(())
}

async fn forget(
    config_path: &Path,
    bsn: Option<String>,
    key: Option<String>,
    local_ref: Option<String>,
) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let by = match (&bsn, &key, &local_ref) {
        (Some(_), _, _) => "bsn",
        (_, Some(_), _) => "key",
        (_, _, Some(_)) => "local_ref",
        _ => bail!("give --bsn, --key or --local-ref"),
    };
    let erased = match crate::admin::connect(&config.data_dir).await {
        Some(mut admin) => {
            use pb::forget_request::Who;
            let who = match (bsn, key, local_ref) {
                (Some(bsn), _, _) => Who::Bsn(bsn),
                (_, Some(key), _) => Who::Key(key),
                (_, _, Some(local_ref)) => Who::LocalRef(local_ref),
                _ => bail!("give --bsn, --key or --local-ref"),
            };
            admin
                .forget(pb::ForgetRequest { who: Some(who) })
                .await
                .map_err(|status| anyhow::anyhow!("{}", status.message()))?
                .into_inner()
                .erased as usize
        }
        None => tokio::task::block_in_place(|| -> anyhow::Result<usize> {
            let store = open_store(&config)?;
            let actor = format!("operator of {} (pluis-node forget)", config.org);
            Ok(match (bsn, key, local_ref) {
                (Some(bsn), _, _) => {
                    store.forget_key(&SubjectKey::Bsn(Bsn::parse(&bsn)?), &actor)?
                }
                (_, Some(key), _) => {
                    store.forget_key(&SubjectKey::parse(&key, today())?, &actor)?
                }
                (_, _, Some(local_ref)) => store.forget_local_ref(&local_ref, &actor)?,
                _ => bail!("give --bsn, --key or --local-ref"),
            })
        })?,
    };
    // Logged with how many and by which kind of key, never the key itself.
    tracing::info!(erased, by, "forget: signals erased on request");
    println!("erased {erased} signals");
    Ok(())
}

fn taxonomy(config_path: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let file = match config_path {
        Some(path) => Config::load(path)?.taxonomy,
        None => None,
    };
    let taxonomy = load_taxonomy(file.as_deref())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&taxonomy)?);
        return Ok(());
    }
    for domain in taxonomy.domains() {
        println!("{} — {}", domain.code, domain.label);
        for s in &domain.signals {
            println!(
                "  {:<30} {:>3} mo  {}: {}",
                s.code, s.retention_months, s.label, s.description
            );
        }
    }
    Ok(())
}

fn gen_data(
    rows: u64,
    seed: u64,
    org: String,
    population: Option<u64>,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let taxonomy = load_taxonomy(None)?;
    let options = crate::gendata::GenOptions {
        rows,
        seed,
        org,
        population,
        today: today(),
    };
    match out {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            crate::gendata::generate(&taxonomy, &options, &mut file)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => crate::gendata::generate(&taxonomy, &options, &mut std::io::stdout().lock())
            .context("writing standard output")?,
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
