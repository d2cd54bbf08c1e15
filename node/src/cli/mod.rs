//! The `pluis-node` command line: the arguments here, the work of each
//! subcommand group in a file of its own (`serve`, `import`, `signals`,
//! `tools`, and the synthetic data of `gen-data` in `gendata`).

use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};
use time::Date;

use crate::ops::import::ImportOptions;
use crate::Config;

pub mod gendata;
mod import;
mod serve;
mod signals;
mod tools;

use import::{import, import_live};
pub use serve::shutdown_signal;
use serve::{pubkey, reload, serve};
use signals::{forget, signals};
use tools::{gen_data, taxonomy};

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
            match crate::ops::admin::connect(&config.data_dir).await {
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
