//! `pluis-node import`: a file of signals into the store, by the running
//! node through its admin socket when one serves, else directly.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use pluis_proto::pb;
use pluis_proto::pb::admin_client::AdminClient;

use crate::config::load_taxonomy;
use crate::ops::import::{ImportOptions, Progress};
use crate::store::Store;
use crate::Config;

pub(super) fn open_store(config: &Config) -> anyhow::Result<Store> {
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

pub(super) fn import(config: &Config, options: &ImportOptions) -> anyhow::Result<()> {
    let taxonomy = load_taxonomy(config.taxonomy.as_deref())?;
    let store = open_store(config)?;
    let progress = CliProgress {
        bar: OnceLock::new(),
        terminal: std::io::stderr().is_terminal(),
        printed: AtomicU64::new(0),
    };
    let report = crate::ops::import::import(&store, &taxonomy, options, &progress)?;
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
pub(super) async fn import_live(
    mut admin: AdminClient<tonic::transport::Channel>,
    options: &ImportOptions,
) -> anyhow::Result<()> {
    eprintln!(
        "import: handing {} to the running node (it goes on serving its partners)…",
        options.path.display()
    );
    let reply = crate::ops::admin::import(&mut admin, options).await?;
    print_import(options, &reply);
    Ok(())
}
